//! `examcap serve` as a process: configuration errors exit 2, and SIGTERM
//! stops a running server cleanly (exit 0) after it served a request (on
//! one runtime thread, `worker_threads = 1`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn examcap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_examcap"));
    for k in [
        "EXAMCAP_LISTEN",
        "EXAMCAP_DATA_DIR",
        "EXAMCAP_TOKENS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        c.env_remove(k);
    }
    c
}

#[test]
fn serve_without_tokens_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = examcap()
        .args(["serve"])
        .env("EXAMCAP_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--allow-unauthenticated"), "{err}");

    let cfg = dir.path().join("examcap.toml");
    std::fs::write(&cfg, "listen = \"not an address\"\n").unwrap();
    let o = examcap()
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("examcap.toml"), "{err}");

    std::fs::write(&cfg, "worker_threads = 100000\n").unwrap();
    let o = examcap()
        .args([
            "serve",
            "--allow-unauthenticated",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .env("EXAMCAP_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("worker_threads"), "{err}");
}

#[test]
fn serve_with_unusable_tls_files_exits_2_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (cert_pem, key_pem) = (fixtures.join("server.pem"), fixtures.join("server.key"));
    let encrypted = dir.path().join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    // Each bad file is named with what it lacks.
    for (cert, key, what) in [
        (
            &cert_pem,
            &encrypted,
            format!("{}: key: the private key is encrypted", encrypted.display()),
        ),
        (&missing, &garbage, "cannot read".to_string()),
        (
            &garbage,
            &key_pem,
            format!("{}: cert: no PEM certificate", garbage.display()),
        ),
        // Both settings naming the certificate (rustls: "PrivateKeyParseError").
        (
            &cert_pem,
            &cert_pem,
            format!("{}: key: no PEM private key", cert_pem.display()),
        ),
    ] {
        let cfg = dir.path().join("examcap.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[tls]\ncert = {:?}\nkey = {:?}\n",
                data, cert, key
            ),
        )
        .unwrap();
        let o = examcap()
            .args(["serve", "--allow-unauthenticated", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("TLS") && err.contains(what.as_str()), "{err}");
        assert!(!err.contains("examcap serving"), "{err}");
        assert!(
            !data.exists(),
            "the store was created before TLS was checked"
        );
    }
}

/// `examcap serve` with `config_toml`, a planner token and a store under
/// `dir`, logging at info on a piped stderr; returns the child, its log
/// lines and the address it serves on.
fn spawn_serve(
    dir: &std::path::Path,
    config_toml: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
    String,
) {
    let cfg = dir.join("examcap.toml");
    std::fs::write(&cfg, config_toml).unwrap();
    let mut child = examcap()
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("EXAMCAP_LISTEN", "127.0.0.1:0")
        .env("EXAMCAP_DATA_DIR", dir.join("data"))
        .env("EXAMCAP_TOKENS", "alice:planner:planner-secret-1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve logs before exiting").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            if line.contains("examcap serving") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    };
    (child, lines, addr)
}

fn sigterm(child: &std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// The exit code of `child`, which must exit within `limit` (else it is
/// killed and the test fails), and the rest of its log.
fn exit_code(
    child: &mut std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    limit: Duration,
) -> (Option<i32>, Vec<String>) {
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let mut waited = Duration::ZERO;
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if waited >= limit {
            let _ = child.kill();
            panic!("serve did not stop within {limit:?}: {:?}", reader.join());
        }
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    };
    (code, reader.join().unwrap())
}

async fn health(
    addr: &str,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // One runtime thread (`worker_threads`) is enough to serve. A pinned
    // registration clock is logged, so one left in production shows.
    let (mut child, lines, addr) =
        spawn_serve(dir.path(), "worker_threads = 1\ntoday = 2027-01-03\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let mut h = health(&addr).await;
        h.check(tonic_health::pb::HealthCheckRequest {
            service: "examcap.v1.PlanService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    sigterm(&child);
    let (code, rest) = exit_code(&mut child, lines, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("examcap stopped")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("registration clock pinned") && l.contains("2027-01-03")),
        "{rest:?}"
    );
    // A store created now is said to be new, with its absolute path.
    let data = std::fs::canonicalize(dir.path().join("data")).unwrap();
    assert!(
        rest.iter().any(|l| l.contains("created a new, empty one")
            && l.contains(&format!("data_dir={}", data.display()))),
        "{rest:?}"
    );
    // The same store again is not.
    let (mut child, lines, _) = spawn_serve(dir.path(), "worker_threads = 1\n");
    sigterm(&child);
    let (code, rest) = exit_code(&mut child, lines, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        !rest.iter().any(|l| l.contains("created a new")),
        "{rest:?}"
    );
}

/// A health Watch holds the drain for the grace period (600 s here); a
/// second SIGTERM stops the server at once, cleanly (exit 0, store closed).
#[test]
fn a_second_sigterm_stops_a_draining_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, addr) = spawn_serve(dir.path(), "shutdown_grace_seconds = 600\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let watch = rt.block_on(async {
        let mut w = health(&addr)
            .await
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        w.message().await.unwrap().unwrap();
        w
    });
    sigterm(&child);
    for line in lines.by_ref() {
        if line.unwrap().contains("SIGTERM: shutting down") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the open watch holds the drain"
    );
    sigterm(&child);
    let (code, rest) = exit_code(&mut child, lines, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("told to stop again")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("examcap stopped")),
        "{rest:?}"
    );
    drop(watch);
}

/// The drain cuts a solve still in stage 1 after the grace; the process must
/// then exit, not wait for HiGHS to finish the cut solve (half a minute and
/// more on a five-year national scenario, past Kubernetes' SIGKILL).
#[test]
fn a_solve_cut_by_the_drain_does_not_keep_the_process_alive() {
    use examcap::proto::scenario_service_client::ScenarioServiceClient;
    use examcap::proto::{self, plan_service_client::PlanServiceClient};
    use examcap_solver::generate::{national, GenerateOptions};

    let big = national(&GenerateOptions {
        weeks: 260,
        ..GenerateOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, addr) = spawn_serve(dir.path(), "shutdown_grace_seconds = 1\n");
    fn bearer<T>(msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", "Bearer planner-secret-1".parse().unwrap());
        r
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stream, stage1) = rt.block_on(async {
        let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let id = ScenarioServiceClient::new(ch.clone())
            .max_encoding_message_size(usize::MAX)
            .put_scenario(bearer(proto::PutScenarioRequest {
                scenario_json: serde_json::to_string(&big).unwrap(),
                scenario: None,
            }))
            .await
            .unwrap()
            .into_inner()
            .scenario_id;
        let mut stream = PlanServiceClient::new(ch)
            .solve(bearer(proto::SolveRequest {
                scenario_id: id,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        // Wait until stage 1 runs: from then on the solve is inside HiGHS.
        let stage1 = loop {
            match stream.message().await.unwrap().unwrap().event {
                Some(proto::solve_event::Event::Progress(p)) if p.step == "stage1" => {
                    break std::time::Instant::now()
                }
                Some(proto::solve_event::Event::Done(_)) => panic!("solved before the test"),
                _ => {}
            }
        };
        (stream, stage1)
    });
    sigterm(&child);
    for line in lines.by_ref() {
        if line.unwrap().contains("SIGTERM: shutting down") {
            break;
        }
    }
    let (code, rest) = exit_code(&mut child, lines, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("calls still open after the shutdown grace")),
        "the solve was still running when the grace ran out: {rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("examcap stopped")),
        "{rest:?}"
    );
    eprintln!("exited {:?} after stage 1 began", stage1.elapsed());
    drop(stream);
}

/// A write sled fails (here: the store's `blobs` directory removed under
/// it, so a large value's file cannot be created) turns every service
/// NOT_SERVING, for an orchestrator to restart the process; later writes
/// are UNAVAILABLE and say to restart (sled would refuse or hang in them),
/// and reads still answer.
#[test]
fn a_failed_store_write_turns_health_not_serving() {
    use examcap::proto::scenario_service_client::ScenarioServiceClient;
    use examcap::proto::{GetScenarioRequest, PutScenarioRequest};
    use examcap_solver::generate::{national, GenerateOptions};
    use tonic_health::pb::health_check_response::ServingStatus;

    fn bearer<T>(msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", "Bearer planner-secret-1".parse().unwrap());
        r
    }
    let put = |name: &str, weeks: usize| PutScenarioRequest {
        scenario_json: serde_json::to_string(&examcap_solver::Scenario {
            name: name.into(),
            ..national(&GenerateOptions {
                weeks,
                ..GenerateOptions::default()
            })
        })
        .unwrap(),
        scenario: None,
    };
    /// Killed however the test ends: a server left behind keeps the test
    /// run's output open.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, _lines, addr) = spawn_serve(dir.path(), "");
    let _child = Killed(child);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut s = ScenarioServiceClient::new(ch).max_decoding_message_size(64 << 20);
        let small = s.put_scenario(bearer(put("small", 2))).await.unwrap();
        s.put_scenario(bearer(put("big", 52))).await.unwrap();
        let mut h = health(&addr).await;
        let status = |r: tonic_health::pb::HealthCheckResponse| r.status;
        let overall = || tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        assert_eq!(
            status(h.check(overall()).await.unwrap().into_inner()),
            ServingStatus::Serving as i32
        );

        std::fs::remove_dir_all(dir.path().join("data").join("blobs")).unwrap();
        let e = s
            .put_scenario(bearer(put("big again", 52)))
            .await
            .unwrap_err();
        // The failed write itself is UNAVAILABLE, as every write after it
        // is (the server is to be restarted), in the system's words.
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(e.message().contains("(os error 2)"), "{e:?}");
        assert!(!e.message().contains("Os {"), "{e:?}");
        let mut said = None;
        for _ in 0..100 {
            said = Some(status(h.check(overall()).await.unwrap().into_inner()));
            if said == Some(ServingStatus::NotServing as i32) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(said, Some(ServingStatus::NotServing as i32));
        let e = s
            .put_scenario(bearer(put("small again", 2)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(e.message().contains("restart"), "{e:?}");
        assert!(!e.message().contains("Os {"), "{e:?}");
        let got = s
            .get_scenario(bearer(GetScenarioRequest {
                scenario_id: small.into_inner().scenario_id,
            }))
            .await
            .unwrap();
        assert_eq!(got.into_inner().scenario.unwrap().name, "small");
    });
}
