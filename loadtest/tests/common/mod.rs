//! Shared by the suites: a real examcap server on 127.0.0.1:0 (in-process,
//! sled store in a temp dir) and the `loadtest` binary.
#![allow(dead_code)] // each suite uses part of it

use std::net::SocketAddr;
use std::process::Command;

use examcap::auth::{Role, Token};
use examcap::config::Config;
use tonic::Request;

pub const PLANNER: &str = "planner-secret-1";
pub const REGISTRATION: &str = "registration-secret-1";

pub struct Server {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), examcap::server::ServerError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with a planner and a registration token.
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let token = |name: &str, role, token: &str| Token {
            name: name.into(),
            role,
            token: token.into(),
        };
        let config = Config {
            data_dir: dir.path().to_owned(),
            tokens: vec![
                token("alice", Role::Planner, PLANNER),
                token("regsys", Role::Registration, REGISTRATION),
            ],
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(examcap::server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop,
            task,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

pub fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// The `loadtest` binary, without a token from the environment.
pub fn loadtest() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    c.env_remove("EXAMCAP_TOKEN");
    c
}
