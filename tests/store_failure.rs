//! A store whose sled failed a write. In a process of its own: the failed
//! store's flush never returns, and it holds sled's background threads,
//! behind which every other store's flush in the process then waits.

use std::time::Duration;

use examcap::store::{
    ReservationAsk, ReservationRecord, ScenarioRecord, SledStore, Store, StoreError,
};

fn scenario(id: &str, json_bytes: usize) -> ScenarioRecord {
    ScenarioRecord {
        id: id.into(),
        name: id.into(),
        start_week: "2026-W14".into(),
        horizon_weeks: 3,
        created_unix: 1,
        drill: None,
        scenario_json: "x".repeat(json_bytes),
    }
}

fn reservation() -> ReservationRecord {
    ReservationRecord {
        seq: 1,
        idempotency_key: "k".into(),
        made_by: String::new(),
        ask: ReservationAsk {
            candidate_ref: "cand-0001".into(),
            region: "R".into(),
            exam: "E".into(),
            location: None,
            week: None,
            from_week: 0,
        },
        location: "L".into(),
        week: 1,
        iso_week: "2026-W15".into(),
        monday: "2026-04-06".into(),
        plan_id: "p".into(),
        cancelled: false,
        created_unix_ms: 1,
    }
}

/// A write sled fails (here: a large value's blob file cannot be created,
/// the store's `blobs` directory gone) becomes the store's failure: every
/// later write is refused before sled is asked (sled would refuse it, or
/// hang in it), and reads still work.
#[test]
fn after_a_failed_write_every_write_is_refused_and_reads_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    s.put_scenario(&scenario("small", 10), &[]).unwrap();
    s.put_scenario(&scenario("a", 500_000), &[]).unwrap();
    assert!(s.failure().is_none());
    std::fs::remove_dir_all(dir.path().join("blobs")).unwrap();
    let e = s.put_scenario(&scenario("b", 500_000), &[]).unwrap_err();
    assert!(matches!(e, StoreError::Db(_)), "{e}");
    assert!(s.failure().is_some());
    // On a thread: sled, asked, hangs in such a write.
    let s = std::sync::Arc::new(s);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send([
            writer.put_scenario(&scenario("c", 10), &[]).map(|_| ()),
            writer.set_published("p", &[]).map(|_| ()),
            writer.put_reservations(&[reservation()]),
        ]);
    });
    let refused = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("writes after the failure returned");
    for e in refused.map(Result::unwrap_err) {
        assert!(
            matches!(e, StoreError::Failed(_)) && e.nothing_written(),
            "{e}"
        );
        assert!(e.to_string().contains("restart"), "{e}");
    }
    assert_eq!(s.get_scenario("small").unwrap().unwrap().id, "small");
    assert!(s.get_scenario("c").unwrap().is_none());
    assert!(s.published().unwrap().is_none());
}
