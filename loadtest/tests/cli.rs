//! `loadtest` refusing to run: bad targets and arguments (exit 2), and a
//! server that turns it away (exit 1, naming the RPC and the code).

mod common;

use common::{loadtest, Server};

#[test]
fn remote_servers_and_unbounded_runs_are_refused() {
    let o = loadtest()
        .args(["--server", "http://10.1.2.3:50051", "--requests", "10"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-remote"));
    let o = loadtest()
        .args(["--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--duration"));
    let o = loadtest()
        .args(["--requests", "10", "--mix", "quote=1,reschedule=1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reschedule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_the_run() {
    let srv = Server::start().await;
    let url = srv.url();
    let out = tokio::task::spawn_blocking(move || {
        loadtest()
            .args([
                "--server",
                &url,
                "--token",
                "wrong-token",
                "--requests",
                "10",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GetPublished: UNAUTHENTICATED"), "{err}");
    srv.stop().await;
}
