//! Bad input over gRPC never breaks the service: a fixed-seed stream of
//! requests with odd field values (empty, unknown, huge, control and
//! right-to-left characters, NaN, ±inf, u32::MAX, ...) to every RPC that
//! takes them. Each call must answer OK or a status that blames the input
//! or the state (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
//! ALREADY_EXISTS, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED); INTERNAL, UNKNOWN or a dropped
//! connection (a panic in a handler) fails the test. Afterwards the server
//! still serves, and the stock is never oversold.

mod common;

use std::time::Duration;

use common::{publish_scenario, req, stock, tiny, Registration, DRILL, PLANNER, REGISTRATION};
use examcap::proto::{
    self, capacity_shock, demand_shock, drill_service_client::DrillServiceClient,
    plan_service_client::PlanServiceClient, reschedule_service_client::RescheduleServiceClient,
};
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// SplitMix64: the same requests on every run. `odd` in tenths is how
/// often a field gets an odd value: high, most requests fail on their first
/// field; low, most get through to the solver and the stock.
struct Rng(u64, u64);

impl Rng {
    fn odd(&mut self) -> bool {
        let rate = self.1;
        self.below(10) < rate
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }

    /// A valid id of the tiny scenario half of the time, else something odd.
    fn id(&mut self, valid: &str) -> String {
        if !self.odd() {
            return valid.into();
        }
        match self.below(5) {
            0 => String::new(),
            1 => "X".into(),
            2 => "\u{0}é\u{202e}".into(),
            3 => "a".repeat(10_000),
            _ => "../../etc/passwd".into(),
        }
    }

    fn week(&mut self) -> u32 {
        if !self.odd() {
            return self.below(3) as u32;
        }
        [3, 52, 520, 521, u32::MAX][self.below(5) as usize]
    }

    fn number(&mut self) -> f64 {
        if !self.odd() {
            return [0.5, 1.0, 1.6][self.below(3) as usize];
        }
        [
            0.0,
            -0.0,
            -1.0,
            0.5,
            1.0,
            1.6,
            1e300,
            -1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
        ][self.below(12) as usize]
    }

    fn shocks(&mut self) -> Vec<proto::Shock> {
        let n = if self.odd() {
            self.below(3)
        } else {
            1 + self.below(2)
        };
        (0..n)
            .map(|_| {
                let from_week = self.week();
                let to_week = if self.odd() {
                    self.week()
                } else {
                    from_week.saturating_add(self.below(2) as u32)
                };
                let kind = if self.below(2) == 0 {
                    let change = if self.below(2) == 0 {
                        demand_shock::Change::Multiplier(self.number())
                    } else {
                        demand_shock::Change::Delta(self.number())
                    };
                    proto::shock::Kind::Demand(proto::DemandShock {
                        region: self.id("AMSTERDAM"),
                        exam: self.id("SPK"),
                        from_week,
                        to_week,
                        change: (!self.odd()).then_some(change),
                    })
                } else {
                    // The tiny scenario has no rating pool.
                    let target = if self.odd() {
                        capacity_shock::Target::RatingPool(self.id("P"))
                    } else {
                        capacity_shock::Target::Location(self.id("AMS"))
                    };
                    proto::shock::Kind::Capacity(proto::CapacityShock {
                        target: (!self.odd()).then_some(target),
                        from_week,
                        to_week,
                        factor: self.number(),
                    })
                };
                proto::Shock {
                    kind: (!self.odd()).then_some(kind),
                }
            })
            .collect()
    }
}

/// The status of a call that must not fail on the service's side.
fn check(what: &str, r: Result<(), Status>) {
    if let Err(s) = r {
        assert!(
            matches!(
                s.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::FailedPrecondition
                    | Code::AlreadyExists
                    | Code::ResourceExhausted
                    | Code::DeadlineExceeded
            ),
            "{what}: {:?} {}",
            s.code(),
            s.message()
        );
        // Every input error names its field as a BadRequest detail.
        if s.code() == Code::InvalidArgument {
            let fields: Vec<String> = s
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            assert!(
                !fields.is_empty() && fields.iter().all(|f| !f.is_empty()),
                "{what}: INVALID_ARGUMENT without field violations: {}",
                s.message()
            );
        }
    }
}

/// Reads a server stream to its end (or its first error).
async fn drain<T>(r: Result<tonic::Response<tonic::Streaming<T>>, Status>) -> Result<(), Status> {
    let mut stream = r?.into_inner();
    while let Some(item) = stream.next().await {
        item?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_input_errors_and_the_service_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(common::config(dir.path())).await;
    let ch = srv.channel().await;
    let published = publish_scenario(ch.clone(), &tiny()).await;
    let plan_id = published.plan_id.clone();
    let scenario_id = PlanServiceClient::new(ch.clone())
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: plan_id.clone(),
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner()
        .summary
        .unwrap()
        .scenario_id;

    let mut reg = Registration::new(ch.clone());
    let mut plans = PlanServiceClient::new(ch.clone());
    let mut drills = DrillServiceClient::new(ch.clone());
    let mut re = RescheduleServiceClient::new(ch.clone());
    let mut rng = Rng(20261130, 5);
    let mut reserved = Vec::new();
    for i in 0..450 {
        let what = format!("call {i}");
        // Every other request is mostly valid, so it reaches the solver.
        rng.1 = if rng.below(2) == 0 { 5 } else { 1 };
        let r = match i % 9 {
            0 => reg
                .quote(req(
                    proto::QuoteRequest {
                        region: rng.id("AMSTERDAM"),
                        exam: rng.id("SPK"),
                        from_week: rng.week(),
                        max_offers: [0, 1, 3, u32::MAX][rng.below(4) as usize],
                    },
                    REGISTRATION,
                ))
                .await
                .map(drop),
            1 => reg
                .reserve(req(
                    proto::ReserveRequest {
                        idempotency_key: rng.id(&format!("key-{i}")),
                        candidate_ref: rng.id(&format!("cand-ref-{i:04}")),
                        region: rng.id("AMSTERDAM"),
                        exam: rng.id("SPK"),
                        location: (rng.below(2) == 0).then(|| rng.id("AMS")),
                        week: (rng.below(2) == 0).then(|| rng.week()),
                        from_week: rng.week(),
                    },
                    REGISTRATION,
                ))
                .await
                .map(|r| {
                    if let Some(x) = r.into_inner().reservation {
                        reserved.push(x.id);
                    }
                }),
            2 => {
                let known = reserved.get(rng.below(reserved.len() as u64 + 1) as usize);
                let id = match known {
                    Some(id) if rng.below(2) == 0 => id.clone(),
                    _ => rng.id("r-0"),
                };
                reg.cancel(req(
                    proto::CancelRequest { reservation_id: id },
                    REGISTRATION,
                ))
                .await
                .map(drop)
            }
            3 => reg
                .list_reservations(req(
                    proto::ListReservationsRequest {
                        exam: rng.id("SPK"),
                        region: rng.id("AMSTERDAM"),
                        location: rng.id("AMS"),
                        from_week: (rng.below(2) == 0).then(|| rng.week()),
                        to_week: (rng.below(2) == 0).then(|| rng.week()),
                        include_cancelled: rng.below(2) == 0,
                        page_size: [0, 1, 1000, u32::MAX][rng.below(4) as usize],
                        page_token: rng.id("MTA"),
                        candidate_ref: rng.id("cand-0001"),
                    },
                    REGISTRATION,
                ))
                .await
                .map(drop),
            4 => reg
                .get_stock(req(
                    proto::GetStockRequest {
                        exam: rng.id("SPK"),
                        from_week: rng.week(),
                        to_week: (rng.below(2) == 0).then(|| rng.week()),
                        location: rng.id("AMS"),
                    },
                    REGISTRATION,
                ))
                .await
                .map(drop),
            5 => plans
                .get_plan(req(
                    proto::GetPlanRequest {
                        plan_id: rng.id(&plan_id),
                        exam: rng.id("SPK"),
                        location: rng.id("AMS"),
                        from_week: (rng.below(2) == 0)
                            .then(|| [i64::MIN, -1, 0, 2, i64::MAX][rng.below(5) as usize]),
                        to_week: (rng.below(2) == 0)
                            .then(|| [i64::MIN, -1, 0, 2, i64::MAX][rng.below(5) as usize]),
                    },
                    PLANNER,
                ))
                .await
                .map(drop),
            6 => drills
                .run_drill(req(
                    proto::RunDrillRequest {
                        base_scenario_id: rng.id(&scenario_id),
                        shocks: rng.shocks(),
                        name: rng.id("drill"),
                    },
                    DRILL,
                ))
                .await
                .map(drop),
            7 => {
                drain(
                    re.reschedule(req(
                        proto::RescheduleRequest {
                            plan_id: if rng.below(2) == 0 {
                                String::new()
                            } else {
                                rng.id(&plan_id)
                            },
                            shocks: rng.shocks(),
                            freeze_weeks: rng.week(),
                            sigma: rng.number(),
                            replan_time_limit_seconds: rng.number(),
                            name: rng.id("re"),
                        },
                        PLANNER,
                    ))
                    .await,
                )
                .await
            }
            _ => {
                drain(
                    plans
                        .solve(req(
                            proto::SolveRequest {
                                scenario_id: rng.id(&scenario_id),
                                session_minutes: rng.number(),
                                recommendations: [0, 5, u32::MAX][rng.below(3) as usize],
                                time_limit_seconds: rng.number(),
                            },
                            PLANNER,
                        ))
                        .await,
                )
                .await
            }
        };
        check(&what, r);
    }

    // Still serving, with the same published plan, and never oversold.
    let now = plans
        .get_published(req(proto::GetPublishedRequest {}, PLANNER))
        .await
        .expect("the server still answers")
        .into_inner();
    assert_eq!(now.summary.unwrap().plan_id, plan_id);
    for cell in stock(&mut reg).await {
        assert!(cell.reserved <= cell.planned, "{cell:?}");
    }
    tokio::time::timeout(Duration::from_secs(30), srv.stop())
        .await
        .expect("the server stops");
}
