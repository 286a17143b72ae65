//! Crash safety of reservations: the real `examcap serve` binary is killed
//! with SIGKILL in the middle of concurrent reservations and cancellations,
//! restarted on the same data directory, and must still hold every
//! acknowledged reservation (and cancellation), with no cell oversold.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    channel, list_all, publish_scenario, req, reserve_req, stock, tiny, Registration as Client,
    BOOKING_DATE, PLANNER, REGISTRATION,
};
use examcap::proto::{self, ReservationState};
use serde_json::json;

/// Starts `examcap serve` on 127.0.0.1:0 over `data`; returns the child and
/// its address (read from its log), and keeps draining its log.
fn serve(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_examcap"))
        .arg("serve")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("EXAMCAP_LISTEN", "127.0.0.1:0")
        .env("EXAMCAP_DATA_DIR", data)
        // The fixture's weeks are in 2026: pin the clock before them.
        .env("EXAMCAP_TODAY", BOOKING_DATE)
        .env(
            "EXAMCAP_TOKENS",
            format!("alice:planner:{PLANNER},regsys:registration:{REGISTRATION}"),
        )
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve logs before exiting").unwrap();
        if line.contains("examcap serving") {
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{addr}"))
}

/// What the clients were told before the crash.
#[derive(Default)]
struct Acked {
    /// id → (idempotency key, location, week).
    reserved: BTreeMap<String, (String, String, u32)>,
    cancelled: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reservations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, url) = serve(&data);
    let mut sc = tiny();
    let r = &mut sc["locations"][0]["resources"][0];
    r["weekly_minutes"] = json!(45 * 200);
    sc["demand"][0]["weekly"] = json!([200, 200, 200]);
    publish_scenario(channel(&url).await, &sc).await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let count = Arc::new(AtomicUsize::new(0));
    let ch = channel(&url).await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (acked, count, mut c) = (acked.clone(), count.clone(), Client::new(ch.clone()));
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("t{t}-{i}");
                    let r = c
                        .reserve(req(reserve_req(&key, &format!("cand-{key}")), REGISTRATION))
                        .await;
                    // The server is gone (or full): stop.
                    let Ok(r) = r else { return };
                    let res = r.into_inner().reservation.unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .reserved
                        .insert(res.id.clone(), (key, res.location, res.week));
                    count.fetch_add(1, Ordering::SeqCst);
                    if i % 4 == 3 {
                        let cancel = proto::CancelRequest {
                            reservation_id: res.id.clone(),
                        };
                        let Ok(_) = c.cancel(req(cancel, REGISTRATION)).await else {
                            return;
                        };
                        acked.lock().unwrap().cancelled.push(res.id);
                    }
                }
            })
        })
        .collect();
    while count.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.reserved.len() >= 200);

    let (mut child, url) = serve(&data);
    let mut c = Client::new(channel(&url).await);
    let listed: HashMap<String, proto::Reservation> = list_all(&mut c, true, 1000)
        .await
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    for (id, (key, location, week)) in &acked.reserved {
        let r = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged reservation {id} lost"));
        assert_eq!(
            (&r.idempotency_key, &r.location, r.week),
            (key, location, *week)
        );
    }
    for id in &acked.cancelled {
        assert_eq!(listed[id].state, ReservationState::Cancelled as i32, "{id}");
    }
    let cells = stock(&mut c).await;
    let mut active: HashMap<(String, u32), u32> = HashMap::new();
    for r in listed.values() {
        if r.state == ReservationState::Active as i32 {
            *active.entry((r.location.clone(), r.week)).or_default() += 1;
        }
    }
    for cell in &cells {
        assert!(cell.reserved <= cell.planned, "oversold: {cell:?}");
        assert_eq!(cell.conflict, 0);
        let n = active
            .get(&(cell.location.clone(), cell.week))
            .copied()
            .unwrap_or(0);
        assert_eq!(cell.reserved, n, "{cell:?}");
    }
    assert_eq!(
        active.values().sum::<u32>(),
        cells.iter().map(|c| c.reserved).sum::<u32>()
    );
    // A retry of an acknowledged request after the crash is a replay.
    let (id, (key, _, _)) = acked.reserved.iter().next().unwrap();
    let again = c
        .reserve(req(reserve_req(key, &format!("cand-{key}")), REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(&again.reservation.unwrap().id, id);
    child.kill().unwrap();
    child.wait().unwrap();
}
