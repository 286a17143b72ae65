//! RegistrationService end to end: a real server on 127.0.0.1:0 and a real
//! tonic client. Seats come from solving small variants of the tiny
//! scenario; counts are read back from GetStock, never assumed.

mod common;

use std::collections::BTreeSet;

use common::{
    code, config, list_all, publish_scenario, req, reserve_req, start, stock, tiny,
    violation_fields, Registration as Client, DRILL, PLANNER, REGISTRATION,
};
use examcap::auth::Role;
use examcap::proto::{self, ReservationState};
use serde_json::{json, Value};
use tonic::Code;
use tonic_types::StatusExt;

/// The tiny scenario with `seats` seats a week (no extra seats) and a
/// demand that fills them.
fn seats(seats: u32) -> Value {
    let mut v = tiny();
    let r = &mut v["locations"][0]["resources"][0];
    r["weekly_minutes"] = json!(45 * seats);
    r["extra_weekly_minutes"] = json!(0);
    v["demand"][0]["weekly"] = json!([seats, seats, seats]);
    v
}

async fn reserve(
    c: &mut Client,
    r: proto::ReserveRequest,
) -> Result<proto::ReserveResponse, tonic::Status> {
    c.reserve(req(r, REGISTRATION))
        .await
        .map(|r| r.into_inner())
}

/// One ListReservations call as the registration system.
async fn list(
    c: &mut Client,
    r: proto::ListReservationsRequest,
) -> Result<Vec<proto::Reservation>, tonic::Status> {
    c.list_reservations(req(r, REGISTRATION))
        .await
        .map(|r| r.into_inner().reservations)
}

fn cell(cells: &[proto::StockCell], week: u32) -> proto::StockCell {
    cells
        .iter()
        .find(|c| c.location == "AMS" && c.week == week)
        .cloned()
        .unwrap_or_else(|| panic!("no cell for week {week} in {cells:?}"))
}

fn violation_field(s: &tonic::Status) -> String {
    violation_fields(s)[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quote_reserve_cancel_and_stock() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut c = Client::new(srv.channel().await);
    let quote = proto::QuoteRequest {
        region: "AMSTERDAM".into(),
        exam: "SPK".into(),
        ..Default::default()
    };
    let before = c.quote(req(quote.clone(), REGISTRATION)).await.unwrap_err();
    assert_eq!(before.code(), Code::FailedPrecondition);
    assert_eq!(
        reserve(&mut c, reserve_req("k0", "cand-0000"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    let published = publish_scenario(srv.channel().await, &seats(5)).await;
    assert!(published.conflicts.is_empty());
    let cells = stock(&mut c).await;
    let w0 = cell(&cells, 0);
    assert!(w0.planned > 0 && w0.reserved == 0 && w0.free == w0.planned);

    let q = c
        .quote(req(quote.clone(), REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.plan_id, published.plan_id);
    assert!(!q.offers.is_empty() && q.offers.len() <= 3);
    let weeks: Vec<u32> = q.offers.iter().map(|o| o.week).collect();
    assert!(
        weeks.windows(2).all(|w| w[0] <= w[1]),
        "earliest first: {weeks:?}"
    );
    let first = &q.offers[0];
    assert_eq!(
        (
            first.location.as_str(),
            first.week,
            first.iso_week.as_str(),
            first.monday.as_str()
        ),
        ("AMS", 0, "2026-W14", "2026-03-30")
    );
    assert_eq!(first.free_seats, w0.planned);
    assert_eq!(first.predicted_wait_weeks, 0);
    // Week 0 starts on Monday 30 March 2026, an ordinary working day.
    assert_eq!(first.first_session_date, "2026-03-30");
    let later = c
        .quote(req(
            proto::QuoteRequest {
                from_week: 1,
                max_offers: 1,
                ..quote.clone()
            },
            REGISTRATION,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.offers.len(), 1);
    assert_eq!(later.offers[0].week, 1);
    assert_eq!(later.offers[0].iso_week, "2026-W15");
    // Monday 6 April 2026 is Easter Monday: the first session is Tuesday.
    assert_eq!(later.offers[0].first_session_date, "2026-04-07");

    let r = reserve(&mut c, reserve_req("k1", "cand-0001"))
        .await
        .unwrap();
    assert!(!r.replayed);
    let res = r.reservation.unwrap();
    assert_eq!((res.location.as_str(), res.week), ("AMS", 0));
    assert_eq!(res.state, ReservationState::Active as i32);
    assert_eq!(res.plan_id, published.plan_id);
    let w0 = cell(&stock(&mut c).await, 0);
    assert_eq!((w0.reserved, w0.free), (1, w0.planned - 1));

    // Cancel gives the seat back; a second cancel changes nothing.
    let cancel = proto::CancelRequest {
        reservation_id: res.id.clone(),
    };
    let c1 = c
        .cancel(req(cancel.clone(), REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert!(!c1.already_cancelled);
    assert_eq!(
        c1.reservation.unwrap().state,
        ReservationState::Cancelled as i32
    );
    let c2 = c
        .cancel(req(cancel, REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert!(c2.already_cancelled);
    let w0b = cell(&stock(&mut c).await, 0);
    assert_eq!((w0b.reserved, w0b.free), (0, w0b.planned));
    assert_eq!(list_all(&mut c, false, 10).await.len(), 0);
    let all = list_all(&mut c, true, 10).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, ReservationState::Cancelled as i32);

    for (id, want) in [
        ("r00000000000000ff", Code::NotFound),
        ("nope", Code::InvalidArgument),
    ] {
        let e = c
            .cancel(req(
                proto::CancelRequest {
                    reservation_id: id.into(),
                },
                REGISTRATION,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), want, "{id}");
    }
    // A reservation at a named location and week.
    let r = reserve(
        &mut c,
        proto::ReserveRequest {
            location: Some("AMS".into()),
            week: Some(2),
            ..reserve_req("k2", "cand-0002")
        },
    )
    .await
    .unwrap();
    assert_eq!(r.reservation.unwrap().week, 2);
    srv.stop().await;
}

/// Quote, Reserve and GetStock name every bad field in one answer, so a
/// registration system mends them at once; nothing is reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_field_is_named_in_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut c = Client::new(srv.channel().await);
    publish_scenario(srv.channel().await, &seats(5)).await;
    let quote = |region: &str, exam: &str, from_week: u32| proto::QuoteRequest {
        region: region.into(),
        exam: exam.into(),
        from_week,
        ..Default::default()
    };
    for (q, want) in [
        (quote("", "", 99), &["region", "exam", "from_week"][..]),
        (quote("NOPE", "NOPE", 99), &["exam", "region", "from_week"]),
        (quote("AMSTERDAM", "NOPE", 1), &["exam"]),
    ] {
        let e = c.quote(req(q, REGISTRATION)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_fields(&e), want);
    }
    let bad_shape = proto::ReserveRequest {
        idempotency_key: String::new(),
        candidate_ref: "x".into(),
        region: String::new(),
        location: Some(String::new()),
        ..reserve_req("k", "cand-0000")
    };
    let e = reserve(&mut c, bad_shape).await.unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["idempotency_key", "candidate_ref", "region", "location"]
    );
    // With the plan's own checks in the same answer (a reviewer's request
    // named four fields, not the week past the horizon).
    let both = proto::ReserveRequest {
        idempotency_key: String::new(),
        exam: "NOPE".into(),
        week: Some(99),
        ..reserve_req("k", "cand-0000")
    };
    let e = reserve(&mut c, both).await.unwrap_err();
    assert_eq!(violation_fields(&e), ["idempotency_key", "exam", "week"]);
    let unknown = proto::ReserveRequest {
        region: "NOPE".into(),
        exam: "NOPE".into(),
        location: Some("NOPE".into()),
        week: Some(99),
        ..reserve_req("k1", "cand-0001")
    };
    let e = reserve(&mut c, unknown).await.unwrap_err();
    assert_eq!(violation_fields(&e), ["exam", "region", "week"]);
    // A known region and exam: the location is checked against them.
    let elsewhere = proto::ReserveRequest {
        location: Some("NOPE".into()),
        week: Some(99),
        ..reserve_req("k2", "cand-0002")
    };
    let e = reserve(&mut c, elsewhere).await.unwrap_err();
    assert_eq!(violation_fields(&e), ["location", "week"]);
    let e = c
        .get_stock(req(
            proto::GetStockRequest {
                exam: "NOPE".into(),
                location: "NOPE".into(),
                from_week: 99,
                to_week: Some(98),
            },
            REGISTRATION,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["to_week", "from_week", "exam", "location"]
    );
    assert!(stock(&mut c).await.iter().all(|c| c.reserved == 0));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_seats_go_to_exactly_as_many_callers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(30)).await;
    let ch = srv.channel().await;
    let mut c = Client::new(ch.clone());
    let planned = cell(&stock(&mut c).await, 1).planned;
    assert!(planned >= 10, "the plan fills week 1: {planned}");
    // Leave 7 seats in the cell, then let 40 callers race for them.
    for i in 0..planned - 7 {
        let r = proto::ReserveRequest {
            week: Some(1),
            ..reserve_req(&format!("pre-{i}"), &format!("cand-pre-{i}"))
        };
        reserve(&mut c, r).await.unwrap();
    }
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let mut c = Client::new(ch.clone());
            tokio::spawn(async move {
                let r = proto::ReserveRequest {
                    week: Some(1),
                    ..reserve_req(&format!("race-{i}"), &format!("cand-race-{i}"))
                };
                reserve(&mut c, r).await
            })
        })
        .collect();
    let mut won = BTreeSet::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                let res = r.reservation.unwrap();
                assert_eq!(res.week, 1);
                assert!(won.insert(res.id), "ids are unique");
            }
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                let info = e.get_details_error_info().expect("an ErrorInfo detail");
                assert_eq!(info.reason, "NO_FREE_SEAT");
                // The next offer is a later week (week 1 is sold out).
                let next: u32 = info.metadata["week"].parse().unwrap();
                assert!(next > 1, "{info:?}");
                exhausted += 1;
            }
        }
    }
    assert_eq!(won.len(), 7);
    assert_eq!(exhausted, 33);
    let w1 = cell(&stock(&mut c).await, 1);
    assert_eq!((w1.reserved, w1.free, w1.conflict), (planned, 0, 0));
    assert_eq!(list_all(&mut c, false, 7).await.len() as u32, planned);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_gives_one_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(5)).await;
    let ch = srv.channel().await;
    let mut c = Client::new(ch.clone());
    let a = reserve(&mut c, reserve_req("same-key", "cand-0001"))
        .await
        .unwrap();
    let b = reserve(&mut c, reserve_req("same-key", "cand-0001"))
        .await
        .unwrap();
    assert!(!a.replayed && b.replayed);
    assert_eq!(a.reservation, b.reservation);
    let other = reserve(&mut c, reserve_req("same-key", "cand-0002"))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    let other_week = proto::ReserveRequest {
        week: Some(2),
        ..reserve_req("same-key", "cand-0001")
    };
    assert_eq!(
        reserve(&mut c, other_week).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    // With `week` named, `from_week` is not used: a retry that fills it in
    // otherwise is the same request (found by an independent review: it
    // was ALREADY_EXISTS). Without `week` it picks the offer, so it counts.
    let at_week = |from_week| proto::ReserveRequest {
        week: Some(1),
        from_week,
        ..reserve_req("week-key", "cand-0004")
    };
    let first = reserve(&mut c, at_week(0)).await.unwrap();
    let retry = reserve(&mut c, at_week(1)).await.unwrap();
    assert!(retry.replayed);
    assert_eq!(first.reservation, retry.reservation);
    let from = |from_week| proto::ReserveRequest {
        from_week,
        ..reserve_req("from-key", "cand-0005")
    };
    reserve(&mut c, from(0)).await.unwrap();
    assert_eq!(
        reserve(&mut c, from(1)).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    // Concurrent retries of one key: one seat, one id.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut c = Client::new(ch.clone());
            tokio::spawn(async move { reserve(&mut c, reserve_req("burst", "cand-0003")).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().reservation.unwrap().id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(cell(&stock(&mut c).await, 0).reserved, 3);
    srv.stop().await;
}

/// Two registration systems may number their requests alike: a key is
/// the caller's token name's own (tokens sharing a name, as in rotation,
/// share its keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_belong_to_the_system_that_used_them() {
    const ROTATED: &str = "registration-secret-2";
    const OTHER: &str = "other-system-secret";
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tokens.extend([
        common::token("regsys", Role::Registration, ROTATED),
        common::token("othersys", Role::Registration, OTHER),
    ]);
    let srv = start(cfg).await;
    publish_scenario(srv.channel().await, &seats(5)).await;
    let mut c = Client::new(srv.channel().await);
    let as_ = |token: &'static str, r: proto::ReserveRequest| {
        let mut c = c.clone();
        async move { c.reserve(req(r, token)).await.map(|r| r.into_inner()) }
    };
    let mine = as_(REGISTRATION, reserve_req("order-1", "cand-0001"))
        .await
        .unwrap();
    let mine = mine.reservation.unwrap();
    assert_eq!(mine.made_by, "regsys");
    let rotated = as_(ROTATED, reserve_req("order-1", "cand-0001"))
        .await
        .unwrap();
    assert!(rotated.replayed);
    assert_eq!(rotated.reservation.unwrap(), mine);
    let theirs = as_(OTHER, reserve_req("order-1", "cand-0002"))
        .await
        .unwrap();
    assert!(!theirs.replayed, "another system's key replayed ours");
    let theirs = theirs.reservation.unwrap();
    assert_eq!(theirs.made_by, "othersys");
    assert_ne!(theirs.id, mine.id);
    // A key reused with another body names the reservation it made.
    let e = as_(REGISTRATION, reserve_req("order-1", "cand-0009"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let info = e.get_details_error_info().expect("an ErrorInfo detail");
    assert_eq!(info.reason, examcap::registration::KEY_REUSED);
    assert_eq!(info.metadata.get("reservation_id"), Some(&mine.id));
    // The seats one candidate holds, e.g. after a lost reply.
    let found = list(
        &mut c,
        proto::ListReservationsRequest {
            candidate_ref: "cand-0002".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(found, std::slice::from_ref(&theirs));
    // Page by page, in booking order, and only theirs.
    let second = c
        .clone()
        .reserve(req(reserve_req("order-2", "cand-0002"), OTHER))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    let page = |token: String| {
        let mut c = c.clone();
        async move {
            let r = proto::ListReservationsRequest {
                candidate_ref: "cand-0002".into(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            };
            c.list_reservations(req(r, REGISTRATION))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(String::new()).await;
    assert_eq!(first.reservations, [theirs]);
    let next = page(first.next_page_token).await;
    assert_eq!(next.reservations, [second]);
    assert!(next.next_page_token.is_empty());
    // A filter Reserve would refuse is refused, naming it.
    for bad in ["111222333", "a b", "ab"] {
        let e = list(
            &mut c,
            proto::ListReservationsRequest {
                candidate_ref: bad.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(violation_field(&e), "candidate_ref", "{bad}: {e:?}");
    }
    assert_eq!(cell(&stock(&mut c).await, 0).reserved, 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(5)).await;
    let mut c = Client::new(srv.channel().await);

    // 111222333 passes the 11-check: it could be a citizen service number.
    let bsn = reserve(&mut c, reserve_req("k1", "111222333"))
        .await
        .unwrap_err();
    assert_eq!(bsn.code(), Code::InvalidArgument);
    assert_eq!(violation_field(&bsn), "candidate_ref");
    assert!(
        bsn.message().contains("citizen service number"),
        "{}",
        bsn.message()
    );
    // 123456789 fails the 11-check: an allowed opaque token.
    reserve(&mut c, reserve_req("k2", "123456789"))
        .await
        .unwrap();

    let cases = [
        (reserve_req("k3", "short"), "candidate_ref"),
        (reserve_req("k 3", "cand-0003"), "idempotency_key"),
        (reserve_req("", "cand-0003"), "idempotency_key"),
        (
            proto::ReserveRequest {
                region: "NOWHERE".into(),
                ..reserve_req("k3", "cand-0003")
            },
            "region",
        ),
        (
            proto::ReserveRequest {
                exam: "XYZ".into(),
                ..reserve_req("k3", "cand-0003")
            },
            "exam",
        ),
        (
            proto::ReserveRequest {
                location: Some("UTR".into()),
                ..reserve_req("k3", "cand-0003")
            },
            "location",
        ),
        (
            proto::ReserveRequest {
                week: Some(3),
                ..reserve_req("k3", "cand-0003")
            },
            "week",
        ),
    ];
    for (r, want) in cases {
        let e = reserve(&mut c, r.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{r:?}");
        assert_eq!(violation_field(&e), want, "{r:?}");
    }
    let e = list(
        &mut c,
        proto::ListReservationsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(violation_field(&e), "page_token");
    // A ListReservations filter naming what neither the plan nor any
    // reservation has is a typo: named, not an empty page.
    let listed = |exam: &str, region: &str, location: &str| proto::ListReservationsRequest {
        exam: exam.into(),
        region: region.into(),
        location: location.into(),
        include_cancelled: true,
        ..Default::default()
    };
    for (r, named) in [
        (listed("XYZ", "", ""), "exam"),
        (listed("SPK", "NOWHERE", ""), "region"),
        (listed("", "", "NOPE"), "location"),
    ] {
        let e = list(&mut c, r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), named);
        assert!(e.message().contains("neither the published plan"), "{e:?}");
    }
    // Several unknown filters: each is named, in one answer.
    let e = list(&mut c, listed("XYZ", "NOWHERE", "NOPE"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violation_fields(&e), ["exam", "region", "location"]);
    assert!(e.message().contains("region: unknown region"), "{e:?}");
    // Bad fields of different kinds, too: every one in the same answer.
    let e = list(
        &mut c,
        proto::ListReservationsRequest {
            candidate_ref: "a b".into(),
            from_week: Some(5),
            to_week: Some(2),
            ..listed("XYZ", "", "")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violation_fields(&e), ["candidate_ref", "to_week", "exam"]);
    // A bad page token beside them hides none (it hid the unknown ids).
    let e = list(
        &mut c,
        proto::ListReservationsRequest {
            page_token: "zz".into(),
            from_week: Some(5),
            to_week: Some(2),
            ..listed("XYZ", "NOWHERE", "")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["page_token", "to_week", "exam", "region"]
    );
    // Known ids that hold nothing here are an empty page.
    let none = proto::ListReservationsRequest {
        candidate_ref: "cand-7777".into(),
        ..listed("SPK", "AMSTERDAM", "AMS")
    };
    assert_eq!(list(&mut c, none).await.unwrap(), []);
    // Unknown ids in GetStock are named as in Quote.
    for (exam, location, named) in [("XYZ", "", "exam"), ("SPK", "NOPE", "location")] {
        let e = c
            .get_stock(req(
                proto::GetStockRequest {
                    exam: exam.into(),
                    location: location.into(),
                    ..Default::default()
                },
                REGISTRATION,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), named);
    }
    // Nothing but the one valid reservation was stored.
    assert_eq!(list_all(&mut c, true, 100).await.len(), 1);
    // An exam that left the published plan but holds reservations is
    // still a filter: an empty page, not an error.
    let mut renamed = seats(5);
    renamed["exams"][0]["id"] = json!("SPK2");
    renamed["demand"][0]["exam"] = json!("SPK2");
    publish_scenario(srv.channel().await, &renamed).await;
    let none = proto::ListReservationsRequest {
        exam: "SPK".into(),
        candidate_ref: "cand-7777".into(),
        ..Default::default()
    };
    assert_eq!(list(&mut c, none).await.unwrap(), []);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(5)).await;
    let mut c = Client::new(srv.channel().await);
    let quote = proto::QuoteRequest {
        region: "AMSTERDAM".into(),
        exam: "SPK".into(),
        ..Default::default()
    };
    assert_eq!(
        code(c.quote(req(quote.clone(), DRILL)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(c.quote(tonic::Request::new(quote.clone())).await),
        Code::Unauthenticated
    );
    c.quote(req(quote, PLANNER)).await.unwrap();
    let r = req(reserve_req("k1", "cand-0001"), PLANNER);
    assert_eq!(code(c.reserve(r).await), Code::PermissionDenied);
    let r = req(reserve_req("k1", "cand-0001"), DRILL);
    assert_eq!(code(c.reserve(r).await), Code::PermissionDenied);
    let stock_req = proto::GetStockRequest {
        exam: "SPK".into(),
        ..Default::default()
    };
    c.get_stock(req(stock_req.clone(), PLANNER)).await.unwrap();
    assert_eq!(
        code(c.get_stock(req(stock_req, DRILL)).await),
        Code::PermissionDenied
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_keeps_reservations_and_reports_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(6)).await;
    let mut c = Client::new(srv.channel().await);
    let planned = cell(&stock(&mut c).await, 0).planned;
    for i in 0..planned {
        let r = proto::ReserveRequest {
            week: Some(0),
            ..reserve_req(&format!("k{i}"), &format!("cand-{i:04}"))
        };
        reserve(&mut c, r).await.unwrap();
    }
    let before = list_all(&mut c, false, 100).await;

    // A plan with 2 seats a week: week 0 now has more reservations than seats.
    let republished = publish_scenario(srv.channel().await, &seats(2)).await;
    let new_planned = cell(&stock(&mut c).await, 0).planned;
    assert!(new_planned < planned, "{new_planned} < {planned}");
    assert_eq!(
        republished.conflicts.len(),
        1,
        "{:?}",
        republished.conflicts
    );
    let conflict = &republished.conflicts[0];
    assert_eq!((conflict.location.as_str(), conflict.week), ("AMS", 0));
    assert_eq!(conflict.conflict, planned - new_planned);
    assert_eq!(conflict.reserved, planned);
    let w0 = cell(&stock(&mut c).await, 0);
    assert_eq!(
        (w0.reserved, w0.free, w0.conflict),
        (planned, 0, planned - new_planned)
    );
    // Nothing dropped or moved.
    assert_eq!(list_all(&mut c, false, 100).await, before);
    // A full cell takes no more reservations.
    let full = proto::ReserveRequest {
        week: Some(0),
        ..reserve_req("more", "cand-more")
    };
    assert_eq!(
        reserve(&mut c, full).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    srv.stop().await;
}

/// A plan that starts a week earlier leaves the reservations of the old
/// plan's last week past its horizon: they are Publish's conflicts, and
/// GetStock (whose weeks are the plan's) lists none of them, with or
/// without a week range (it used to list them as week 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_past_a_new_horizon_are_conflicts_not_stock() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut later = seats(6);
    later["start_week"] = json!("2026-W15");
    publish_scenario(srv.channel().await, &later).await;
    let mut c = Client::new(srv.channel().await);
    for i in 0..2 {
        let r = proto::ReserveRequest {
            week: Some(2),
            ..reserve_req(&format!("k{i}"), &format!("cand-last-{i:04}"))
        };
        let got = reserve(&mut c, r)
            .await
            .unwrap()
            .reservation
            .expect("a reservation");
        assert_eq!(got.iso_week, "2026-W17");
    }
    let republished = publish_scenario(srv.channel().await, &seats(6)).await;
    let outside: Vec<_> = republished
        .conflicts
        .iter()
        .filter(|c| c.outside_horizon)
        .map(|c| (c.iso_week.as_str(), c.reserved))
        .collect();
    assert_eq!(outside, [("2026-W17", 2)], "{:?}", republished.conflicts);
    let now = stock(&mut c).await;
    assert!(
        now.iter().all(|c| !c.outside_horizon && c.week < 3),
        "{now:?}"
    );
    assert_eq!(now.iter().map(|c| c.reserved).sum::<u32>(), 0, "{now:?}");
    // Past the horizon, stock is not asked for at all (weeks from 3 are a
    // bad from_week); up to past it, no cell lies outside.
    for (from_week, to_week) in [(0, Some(10)), (3, None), (3, Some(3))] {
        let r = c
            .get_stock(req(
                proto::GetStockRequest {
                    exam: "SPK".into(),
                    from_week,
                    to_week,
                    ..Default::default()
                },
                REGISTRATION,
            ))
            .await;
        match r {
            Ok(r) => assert!(
                from_week < 3 && r.get_ref().cells.iter().all(|c| !c.outside_horizon),
                "{from_week}-{to_week:?}: {r:?}"
            ),
            Err(e) => assert!(
                from_week >= 3 && violation_field(&e) == "from_week",
                "{from_week}-{to_week:?}: {e:?}"
            ),
        }
    }
    srv.stop().await;
}

/// A `from_week` past the horizon is a bad request naming the field, not
/// "no free seat" (which a registration system would show as sold out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_week_past_the_horizon_is_invalid_not_sold_out() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(6)).await;
    let mut c = Client::new(srv.channel().await);
    for from_week in [3, 4_000_000_000] {
        let r = proto::ReserveRequest {
            from_week,
            ..reserve_req("k-far", "cand-far-0001")
        };
        let e = reserve(&mut c, r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), "from_week");
        let q = proto::QuoteRequest {
            region: "AMSTERDAM".into(),
            exam: "SPK".into(),
            from_week,
            max_offers: 0,
        };
        let e = c.quote(req(q, REGISTRATION)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), "from_week");
        // GetStock says it too, rather than an empty list of cells.
        let s = proto::GetStockRequest {
            exam: "SPK".into(),
            from_week,
            ..Default::default()
        };
        let e = c.get_stock(req(s, REGISTRATION)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), "from_week");
    }
    // The last week is fine.
    let r = proto::ReserveRequest {
        from_week: 2,
        ..reserve_req("k-last", "cand-last-0001")
    };
    let got = reserve(&mut c, r)
        .await
        .unwrap()
        .reservation
        .expect("a reservation");
    assert_eq!(got.week, 2);
    srv.stop().await;
}

/// A plan that starts a week later counts the reservations by calendar
/// week: week 1 of the first plan is week 0 of the second, and week 0 of
/// the first lies before the second's horizon (a conflict outside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_start_week_keeps_reservations_in_their_calendar_week() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(6)).await;
    let mut c = Client::new(srv.channel().await);
    let first = stock(&mut c).await;
    let (w0, w1) = (cell(&first, 0), cell(&first, 1));
    assert_eq!(
        (w0.iso_week.as_str(), w1.iso_week.as_str()),
        ("2026-W14", "2026-W15")
    );
    for (week, n) in [(0, 2), (1, w1.planned)] {
        for i in 0..n {
            let r = proto::ReserveRequest {
                week: Some(week),
                ..reserve_req(&format!("k{week}-{i}"), &format!("cand-{week}-{i:04}"))
            };
            reserve(&mut c, r).await.unwrap();
        }
    }
    let before = list_all(&mut c, false, 100).await;

    let mut later = seats(6);
    later["start_week"] = json!("2026-W15");
    let republished = publish_scenario(srv.channel().await, &later).await;
    let now = stock(&mut c).await;
    let n0 = cell(&now, 0);
    assert_eq!(n0.iso_week, "2026-W15");
    assert_eq!(n0.reserved, w1.planned, "{now:?}");
    assert_eq!(
        now.iter()
            .filter(|c| c.week > 0)
            .map(|c| c.reserved)
            .sum::<u32>(),
        0,
        "nothing moved into later weeks: {now:?}"
    );
    assert!(now.iter().all(|c| !c.outside_horizon), "{now:?}");
    // The two reservations of 2026-W14 have no week in the new plan.
    let outside: Vec<_> = republished
        .conflicts
        .iter()
        .filter(|c| c.outside_horizon)
        .collect();
    assert_eq!(outside.len(), 1, "{:?}", republished.conflicts);
    assert_eq!(
        (
            outside[0].iso_week.as_str(),
            outside[0].reserved,
            outside[0].conflict
        ),
        ("2026-W14", 2, 2)
    );
    // The list filters by the published plan's weeks; nothing was changed.
    let in_week0 = list(
        &mut c,
        proto::ListReservationsRequest {
            from_week: Some(0),
            to_week: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(in_week0.len() as u32, w1.planned);
    assert!(in_week0.iter().all(|r| r.iso_week == "2026-W15"));
    assert_eq!(list_all(&mut c, false, 100).await, before);
    // A cancelled seat goes back to the cell that counts it.
    let seat = in_week0[0].id.clone();
    c.cancel(req(
        proto::CancelRequest {
            reservation_id: seat,
        },
        REGISTRATION,
    ))
    .await
    .unwrap();
    assert_eq!(cell(&stock(&mut c).await, 0).reserved, w1.planned - 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(8)).await;
    let mut c = Client::new(srv.channel().await);
    let mut made = Vec::new();
    for i in 0..12 {
        let r = reserve(
            &mut c,
            reserve_req(&format!("k{i}"), &format!("cand-{i:04}")),
        )
        .await
        .unwrap();
        made.push(r.reservation.unwrap());
    }
    let cancelled = c
        .cancel(req(
            proto::CancelRequest {
                reservation_id: made[3].id.clone(),
            },
            REGISTRATION,
        ))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    made[3] = cancelled;
    let cells = stock(&mut c).await;
    srv.stop().await;

    let srv = start(config(dir.path())).await;
    let mut c = Client::new(srv.channel().await);
    // Pages of 5 in id order give back exactly what was made.
    assert_eq!(list_all(&mut c, true, 5).await, made);
    assert_eq!(stock(&mut c).await, cells);
    // The key is still taken after the restart.
    let again = reserve(&mut c, reserve_req("k0", "cand-0000"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.reservation.unwrap(), made[0]);
    // New ids continue after the old ones.
    let next = reserve(&mut c, reserve_req("k12", "cand-0012"))
        .await
        .unwrap();
    assert!(next.reservation.unwrap().id > made[11].id);
    srv.stop().await;
}

/// `examcap backlog export` from `source` args (and `EXAMCAP_TOKEN` if
/// `token` is given); the exported array.
async fn export(source: Vec<String>, token: Option<&str>) -> Vec<Value> {
    let token = token.map(str::to_string);
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_examcap"));
        cmd.env_remove("EXAMCAP_TOKEN");
        if let Some(t) = token {
            cmd.env("EXAMCAP_TOKEN", t);
        }
        cmd.args(["backlog", "export", "--start-week", "2026-W14"])
            .args(source)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_export_as_the_next_scenarios_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &seats(4)).await;
    let mut c = Client::new(srv.channel().await);
    let mut ids = Vec::new();
    for i in 0..7 {
        let r = reserve(
            &mut c,
            reserve_req(&format!("k{i}"), &format!("cand-{i:04}")),
        )
        .await
        .unwrap();
        ids.push(r.reservation.unwrap().id);
    }
    c.cancel(req(
        proto::CancelRequest {
            reservation_id: ids[0].clone(),
        },
        REGISTRATION,
    ))
    .await
    .unwrap();
    let url = format!("http://{}", srv.addr);
    let from_server = export(
        vec![
            "--server".into(),
            url.clone(),
            "--token".into(),
            REGISTRATION.into(),
        ],
        None,
    )
    .await;
    // The token from the environment, off the command line.
    let from_env = export(vec!["--server".into(), url], Some(REGISTRATION)).await;
    assert_eq!(from_server, from_env);
    srv.stop().await;
    let from_dir = export(
        vec!["--data-dir".into(), dir.path().display().to_string()],
        None,
    )
    .await;
    assert_eq!(from_server, from_dir);
    // The 6 active reservations were made this week, counted from week 0
    // (Monday 30 March 2026), and at most week −1.
    let today = chrono::Utc::now().date_naive();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
    let week = (today - start).num_days().div_euclid(7).min(-1);
    assert_eq!(
        from_dir,
        [json!({"region": "AMSTERDAM", "exam": "SPK", "registered_week": week, "candidates": 6.0})]
    );
    // It is a valid backlog of the next scenario.
    let mut next = seats(4);
    next["backlog"] = Value::Array(from_dir);
    examcap_solver::parse_scenario(next.to_string().as_bytes()).unwrap();
}

/// `sc` with a second location UTR, a copy of AMS whose resource is of
/// `kind`, as the region's second option.
fn with_utr(mut sc: Value, kind: &str) -> Value {
    let mut utr = sc["locations"][0].clone();
    utr["id"] = json!("UTR");
    utr["resources"][0]["kind"] = json!(kind);
    sc["locations"].as_array_mut().unwrap().push(utr);
    sc["regions"][0]["options"]
        .as_array_mut()
        .unwrap()
        .push(json!({"location": "UTR", "travel_cost": 1.0}));
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_location_points_to_another_option() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    // Two locations of 2 seats a week, both options of the region.
    let mut sc = with_utr(seats(4), "speaking_booth");
    sc["locations"][0]["resources"][0]["weekly_minutes"] = json!(90);
    sc["locations"][1]["resources"][0]["weekly_minutes"] = json!(90);
    publish_scenario(srv.channel().await, &sc).await;
    let mut c = Client::new(srv.channel().await);
    let at_ams = |i: u32| proto::ReserveRequest {
        location: Some("AMS".into()),
        ..reserve_req(&format!("k{i}"), &format!("cand-{i:04}"))
    };
    let ams_seats: u32 = stock(&mut c)
        .await
        .iter()
        .filter(|c| c.location == "AMS")
        .map(|c| c.planned)
        .sum();
    assert!(ams_seats > 0);
    for i in 0..ams_seats {
        assert_eq!(
            reserve(&mut c, at_ams(i))
                .await
                .unwrap()
                .reservation
                .unwrap()
                .location,
            "AMS"
        );
    }
    let e = reserve(&mut c, at_ams(ams_seats)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let info = e.get_details_error_info().unwrap();
    assert_eq!(info.metadata["location"], "UTR", "{info:?}");
    assert_eq!(info.metadata["predicted_wait_weeks"], info.metadata["week"]);
    srv.stop().await;
}

/// UTR is an option of the region but has only desks, no speaking booths:
/// a Reserve of SPK there is a wrong request naming `location`, not "no
/// free seat" with a next offer (found by an independent review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_without_the_exams_resource_is_a_bad_location() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let sc = with_utr(seats(4), "desk");
    publish_scenario(srv.channel().await, &sc).await;
    let mut c = Client::new(srv.channel().await);
    let at = |loc: &str| proto::ReserveRequest {
        location: Some(loc.into()),
        ..reserve_req("k-utr", "cand-0001")
    };
    let e = reserve(&mut c, at("UTR")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violation_field(&e), "location");
    assert!(e.message().contains("never holds"), "{}", e.message());
    // The key was not used up: the same key books at AMS.
    let ok = reserve(&mut c, at("AMS")).await.unwrap();
    assert_eq!(ok.reservation.unwrap().location, "AMS");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_leave_pointer_and_stock_on_one_plan() {
    // Two Publishes at once, many times: whichever lands last, the plan
    // GetPublished names is the one whose seats GetStock sells.
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let a = common::solve_scenario(srv.channel().await, &seats(2)).await;
    let b = common::solve_scenario(srv.channel().await, &seats(6)).await;
    let plans = srv.plans().await;
    let mut c = Client::new(srv.channel().await);
    for round in 0..40 {
        let publish = |id: &str| {
            let mut p = plans.clone();
            let id = id.to_string();
            async move {
                p.publish(req(proto::PublishRequest { plan_id: id }, PLANNER))
                    .await
                    .map(|_| ())
            }
        };
        let (ra, rb) = tokio::join!(publish(&a), publish(&b));
        ra.unwrap();
        rb.unwrap();
        let published = plans
            .clone()
            .get_published(req(proto::GetPublishedRequest {}, PLANNER))
            .await
            .unwrap()
            .into_inner()
            .summary
            .expect("a summary")
            .plan_id;
        let stock_plan = common::stock_response(&mut c).await.plan_id;
        assert_eq!(published, stock_plan, "round {round}");
    }
    srv.stop().await;
}

/// With the clock on Easter Monday 2026 (week 1 of the tiny plan, whose
/// sessions that week begin on Tuesday), week 0 has been held: Quote
/// passes it over, and Reserve refuses it by name. Week 1 still sells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weeks_whose_sessions_have_begun_are_not_sold() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(examcap::config::Config {
        today: Some("2026-04-06".parse().unwrap()),
        ..config(dir.path())
    })
    .await;
    publish_scenario(srv.channel().await, &seats(6)).await;
    let mut c = Client::new(srv.channel().await);
    let q = proto::QuoteRequest {
        region: "AMSTERDAM".into(),
        exam: "SPK".into(),
        from_week: 0,
        max_offers: 10,
    };
    let offers = c
        .quote(req(q, REGISTRATION))
        .await
        .unwrap()
        .into_inner()
        .offers;
    let weeks: Vec<u32> = offers.iter().map(|o| o.week).collect();
    assert_eq!(weeks, vec![1, 2], "{offers:?}");
    assert_eq!(offers[0].first_session_date, "2026-04-07");
    assert_eq!(offers[0].predicted_wait_weeks, 1);
    for location in [None, Some("AMS".to_string())] {
        let r = proto::ReserveRequest {
            week: Some(0),
            location: location.clone(),
            ..reserve_req("k-held", "cand-held-0001")
        };
        let e = reserve(&mut c, r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violation_field(&e), "week");
        assert!(e.message().contains("2026-W14"), "{}", e.message());
        assert!(e.message().contains("2026-04-06"), "{}", e.message());
        assert!(e.message().contains("EXAMCAP_TODAY"), "{}", e.message());
    }
    // Nothing was taken by the refusals; the first offer is week 1.
    assert_eq!(cell(&stock(&mut c).await, 0).reserved, 0);
    let got = reserve(&mut c, reserve_req("k-next", "cand-next-0001"))
        .await
        .unwrap()
        .reservation
        .expect("a reservation");
    assert_eq!((got.week, got.iso_week.as_str()), (1, "2026-W15"));
    // GetStock lists every week, and says which no longer sell.
    let closed: Vec<(u32, bool)> = stock(&mut c)
        .await
        .iter()
        .map(|x| (x.week, x.closed))
        .collect();
    assert_eq!(closed, vec![(0, true), (1, false), (2, false)]);
    // Week 1 sold out: asking for it gives the next offer, week 2, with
    // its wait counted from the week asked for (from_week is not used
    // with a week, and so may lie anywhere).
    let free = cell(&stock(&mut c).await, 1).free;
    for i in 0..free {
        let r = proto::ReserveRequest {
            week: Some(1),
            ..reserve_req(&format!("k-w1-{i}"), &format!("cand-w1-{i:04}"))
        };
        reserve(&mut c, r).await.unwrap();
    }
    let r = proto::ReserveRequest {
        week: Some(1),
        from_week: 0,
        ..reserve_req("k-w1-full", "cand-w1-full")
    };
    let e = reserve(&mut c, r).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let info = e.get_details_error_info().expect("an ErrorInfo detail");
    assert_eq!(info.metadata["week"], "2");
    assert_eq!(info.metadata["predicted_wait_weeks"], "1");
    let r = proto::ReserveRequest {
        week: Some(2),
        from_week: 9,
        ..reserve_req("k-w2", "cand-w2-0001")
    };
    assert_eq!(
        reserve(&mut c, r).await.unwrap().reservation.unwrap().week,
        2
    );
    srv.stop().await;

    // After the plan's last session, the seats left are not sold, and the
    // refusal says why rather than contradicting GetStock's free counts.
    let srv = start(examcap::config::Config {
        today: Some("2026-04-20".parse().unwrap()),
        ..config(dir.path())
    })
    .await;
    let mut c = Client::new(srv.channel().await);
    let cells = stock(&mut c).await;
    assert!(cells.iter().all(|x| x.closed), "{cells:?}");
    assert!(cell(&cells, 2).free > 0);
    let e = reserve(&mut c, reserve_req("k-late", "cand-late-0001"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message()
            .contains("sessions that have begun (today is 2026-04-20)"),
        "{}",
        e.message()
    );
    srv.stop().await;
}
