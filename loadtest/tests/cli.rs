//! `loadtest` refusing to run: bad targets and arguments (exit 2), and a
//! server that turns it away (exit 1, naming the RPC and the code).

mod common;

use common::{config, loadtest, start};

#[test]
fn remote_servers_unbounded_runs_and_unknown_rpcs_are_refused() {
    for (args, says) in [
        (
            &["--server", "http://10.1.2.3:50051", "--requests", "10"][..],
            "--allow-remote",
        ),
        (&["--server", "http://127.0.0.1:9"][..], "--duration"),
        (
            &["--requests", "10", "--mix", "quote=1,reschedule=1"][..],
            "reschedule",
        ),
    ] {
        let o = loadtest().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let url = format!("http://{}", srv.addr);
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
