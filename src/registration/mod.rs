//! RegistrationService: quotes and seat reservations against the published
//! plan (DESIGN.md "Registration against a published plan").
//!
//! The stock of a (location, exam, week) cell is the published integral
//! allocation. It lives in memory ([`stock::Stock`], rebuilt at start-up and
//! swapped on Publish), so a quote never touches disk. Reservations go
//! through [`book::Book`]: the seat is taken under a lock and the call is
//! acknowledged only after the record is flushed by the group-committing
//! writer. Re-publishing keeps every reservation; cells left with more
//! reservations than seats are reported as conflicts.
//!
//! RESOURCE_EXHAUSTED (no free seat) carries an `ErrorInfo` detail with
//! reason `NO_FREE_SEAT`, domain `examcap.v1`, and, when there is a next
//! offer, its fields as metadata: `location`, `week`, `iso_week`, `monday`,
//! `first_session_date`, `free_seats`, `predicted_wait_weeks`.

pub mod book;
pub mod rules;
pub mod stock;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::{clip, need, status, Api, ApiError, MAX_STATUS_MESSAGE};
use crate::auth::Rpc;
use crate::proto;
use crate::store::{PlanRecord, ReservationAsk, ReservationRecord, ScenarioRecord, Store};
use book::{Book, Durability, OpenError};
use rules::{page_token, parse_page_token, parse_reservation_id, reservation_id};
use stock::{CellCount, Clock, Search, Slot, Stock};

/// Offers when a quote asks for none, and the most it may ask for.
const DEFAULT_OFFERS: u32 = 3;
const MAX_OFFERS: u32 = 10;
/// The `ErrorInfo` domain and reason of a sold-out cell.
pub const ERROR_DOMAIN: &str = "examcap.v1";
pub const NO_FREE_SEAT: &str = "NO_FREE_SEAT";
/// The `ErrorInfo` reason of an idempotency key reused with another body.
pub const KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";

/// Every way a registration call can fail.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("no plan is published: the registration calls work on the published plan (PlanService.Publish)")]
    NoPublishedPlan,
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// Its `ErrorInfo` names the reservation the key made, so a caller
    /// that lost its first request's body can still find the seat.
    #[error("idempotency_key {key:?} was used before for a different request (reservation {reservation_id})")]
    KeyReused { key: String, reservation_id: String },
    #[error("{message}")]
    SoldOut {
        message: String,
        next: Option<Box<proto::Offer>>,
    },
    #[error("reservation storage unavailable, try again: {0}")]
    Unavailable(String),
}

impl RegistrationError {
    /// The one place that decides what a registration failure means to a
    /// gRPC client.
    pub fn code(&self) -> Code {
        match self {
            RegistrationError::Api(e) => e.code(),
            RegistrationError::NoPublishedPlan => Code::FailedPrecondition,
            RegistrationError::NotFound { .. } => Code::NotFound,
            RegistrationError::KeyReused { .. } => Code::AlreadyExists,
            RegistrationError::SoldOut { .. } => Code::ResourceExhausted,
            RegistrationError::Unavailable(_) => Code::Unavailable,
        }
    }
}

impl From<RegistrationError> for Status {
    fn from(e: RegistrationError) -> Status {
        let code = e.code();
        match e {
            RegistrationError::Api(e) => e.into(),
            RegistrationError::SoldOut { ref next, .. } => {
                let mut md = HashMap::new();
                if let Some(o) = next {
                    md.insert("location".into(), o.location.clone());
                    md.insert("week".into(), o.week.to_string());
                    md.insert("iso_week".into(), o.iso_week.clone());
                    md.insert("monday".into(), o.monday.clone());
                    md.insert("first_session_date".into(), o.first_session_date.clone());
                    md.insert("free_seats".into(), o.free_seats.to_string());
                    md.insert(
                        "predicted_wait_weeks".into(),
                        o.predicted_wait_weeks.to_string(),
                    );
                }
                Status::with_error_details(
                    code,
                    clip(e.to_string(), MAX_STATUS_MESSAGE),
                    ErrorDetails::with_error_info(NO_FREE_SEAT, ERROR_DOMAIN, md),
                )
            }
            RegistrationError::KeyReused {
                ref reservation_id, ..
            } => Status::with_error_details(
                code,
                clip(e.to_string(), MAX_STATUS_MESSAGE),
                ErrorDetails::with_error_info(
                    KEY_REUSED,
                    ERROR_DOMAIN,
                    HashMap::from([("reservation_id".to_string(), reservation_id.clone())]),
                ),
            ),
            RegistrationError::Unavailable(_) => {
                tracing::error!(error = %e, "reservation write failed");
                status(code, e.to_string())
            }
            _ => status(code, e.to_string()),
        }
    }
}

type Result<T, E = RegistrationError> = std::result::Result<T, E>;

/// ListReservations filters (exam, region, location) that neither the
/// published plan nor any reservation holds: a typo, since an empty answer
/// would read as "no seats held" (GetStock names unknown ids the same way).
fn unknown_filters(
    st: &book::State,
    r: &proto::ListReservationsRequest,
) -> Vec<(&'static str, String)> {
    let stock = st.stock.as_ref();
    // A filter left empty is never looked up: the reservations are read
    // only for an id the plan does not know.
    let held = |f: &dyn Fn(&ReservationRecord) -> bool| st.reservations.values().any(|e| f(&e.rec));
    [
        (
            "exam",
            &r.exam,
            r.exam.is_empty()
                || stock.is_some_and(|s| s.exam(&r.exam).is_some())
                || held(&|rec| rec.ask.exam == r.exam),
        ),
        (
            "region",
            &r.region,
            r.region.is_empty()
                || stock.is_some_and(|s| s.options(&r.region).is_some())
                || held(&|rec| rec.ask.region == r.region),
        ),
        (
            "location",
            &r.location,
            r.location.is_empty()
                || stock.is_some_and(|s| s.location(&r.location).is_some())
                || held(&|rec| rec.location == r.location),
        ),
    ]
    .into_iter()
    .filter(|(_, _, known)| !known)
    .map(|(name, id, _)| {
        (
            name,
            format!("unknown {name} {id:?}: neither the published plan nor any reservation has it"),
        )
    })
    .collect()
}

/// A bad request field, as every service says it ([`ApiError::invalid`]).
fn field(field: &'static str, message: impl Into<String>) -> RegistrationError {
    ApiError::invalid(field, message).into()
}

fn required(name: &'static str, v: &str) -> Result<()> {
    crate::api::given(name, v)?;
    Ok(())
}

/// Bad request fields, gathered so that one answer names them all.
type Bad = Vec<(&'static str, String)>;

/// `Ok` when nothing is bad, else the error naming every field.
fn all(bad: Bad) -> Result<()> {
    ApiError::fields(bad)?;
    Ok(())
}

/// The stock of a plan record: its scenario from the store, validated, and
/// the allocation counted per cell.
pub fn stock_of(store: &dyn Store, rec: &PlanRecord) -> Result<Stock, OpenError> {
    let sc = store
        .get_scenario(&rec.scenario_id)?
        .ok_or_else(|| OpenError::Published {
            plan_id: rec.id.clone(),
            message: format!("its scenario {} is not stored", rec.scenario_id),
        })?;
    stock_from(rec, &sc)
}

/// The stock of `rec` from its scenario's record `sc`.
fn stock_from(rec: &PlanRecord, sc: &ScenarioRecord) -> Result<Stock, OpenError> {
    let broken = |message: String| OpenError::Published {
        plan_id: rec.id.clone(),
        message,
    };
    let sc = Api::load_scenario(sc).map_err(|e| broken(e.to_string()))?;
    Stock::build(&rec.id, &rec.plan, &sc).map_err(|e| broken(e.to_string()))
}

/// Opens the reservation book: every stored reservation, counted into the
/// stock of the published plan (if any), and the writer thread.
pub fn open(store: Arc<dyn Store>, clock: Clock) -> Result<Book, OpenError> {
    let stock = match store.published()? {
        None => None,
        Some(id) => {
            let rec = store.get_plan(&id)?.ok_or_else(|| OpenError::Published {
                plan_id: id.clone(),
                message: "the plan is not stored".into(),
            })?;
            Some(stock_of(&*store, &rec)?)
        }
    };
    Book::open(store, stock, clock)
}

/// The stock of a plan about to be published, built on the blocking pool
/// from its scenario's record, which Publish has read already (to check
/// that it is no drill's).
pub(crate) async fn stock_for_publish(
    rec: PlanRecord,
    sc: ScenarioRecord,
) -> Result<Stock, ApiError> {
    crate::api::off_runtime(None, "building the stock", move || {
        stock_from(&rec, &sc).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
}

/// A cell count as the proto says it.
pub fn stock_cell(c: &CellCount) -> proto::StockCell {
    proto::StockCell {
        location: c.location.clone(),
        exam: c.exam.clone(),
        week: c.week,
        planned: c.planned,
        reserved: c.reserved,
        free: c.free(),
        conflict: c.conflict(),
        iso_week: c.iso_week.clone(),
        outside_horizon: c.outside_horizon,
        closed: false,
    }
}

fn reservation_proto(rec: &ReservationRecord) -> proto::Reservation {
    proto::Reservation {
        id: reservation_id(rec.seq),
        idempotency_key: rec.idempotency_key.clone(),
        candidate_ref: rec.ask.candidate_ref.clone(),
        region: rec.ask.region.clone(),
        exam: rec.ask.exam.clone(),
        location: rec.location.clone(),
        week: rec.week,
        iso_week: rec.iso_week.clone(),
        monday: rec.monday.clone(),
        plan_id: rec.plan_id.clone(),
        state: if rec.cancelled {
            proto::ReservationState::Cancelled
        } else {
            proto::ReservationState::Active
        } as i32,
        created_unix_ms: rec.created_unix_ms,
        made_by: rec.made_by.clone(),
    }
}

fn offer(stock: &Stock, exam: usize, s: &Slot, from_week: u32) -> proto::Offer {
    let label = &stock.weeks[s.week as usize];
    proto::Offer {
        location: stock.locations[s.location].clone(),
        week: s.week,
        iso_week: label.iso.clone(),
        monday: label.monday.clone(),
        first_session_date: stock
            .first_session(exam, s.location, s.week)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        free_seats: s.free,
        predicted_wait_weeks: s.week.saturating_sub(from_week),
    }
}

/// A week (`from_week`, `week`) inside the published plan's horizon: past
/// it there is no seat to offer, and "sold out" would be the wrong answer.
/// A Reserve's `week`, or its `from_week` when it names no week, inside
/// the horizon.
fn reserve_weeks_within(stock: &Stock, week: Option<u32>, from_week: u32, bad: &mut Bad) {
    match week {
        None => within_horizon(stock, "from_week", from_week, bad),
        Some(w) => within_horizon(stock, "week", w, bad),
    }
}

fn within_horizon(stock: &Stock, name: &'static str, week: u32, bad: &mut Bad) {
    if week >= stock.horizon {
        bad.push((
            name,
            format!(
                "{week} is beyond the plan's horizon of {} weeks",
                stock.horizon
            ),
        ));
    }
}

/// A `week` asked for whose sessions (at `location`, or at every option)
/// have begun on the clock's date.
fn closed_week(
    stock: &Stock,
    week: u32,
    location: Option<&str>,
    today: chrono::NaiveDate,
    clock: Clock,
) -> RegistrationError {
    field(
        "week",
        format!(
            "week {week} ({}) is closed for booking{}: a cell is sold until the day \
             before its first session, and today is {} ({})",
            stock.weeks[week as usize].iso,
            location.map(|l| format!(" at {l}")).unwrap_or_default(),
            today,
            if clock.is_pinned() {
                "pinned by the server's `today` setting or EXAMCAP_TODAY"
            } else {
                "the date in the Netherlands"
            },
        ),
    )
}

/// The exam index and the region's option locations. Each unknown one of
/// those given goes to `bad` (an empty one is [`need`]'s to name).
fn resolve(stock: &Stock, region: &str, exam: &str, bad: &mut Bad) -> Option<(usize, Vec<usize>)> {
    let e = stock.exam(exam);
    if e.is_none() && !exam.is_empty() {
        bad.push((
            "exam",
            format!("unknown exam {exam:?} in the published plan"),
        ));
    }
    let options = stock.options(region);
    if options.is_none() && !region.is_empty() {
        bad.push((
            "region",
            format!("unknown region {region:?} in the published plan"),
        ));
    }
    Some((e?, options?.to_vec()))
}

/// What [`resolve`] found once `bad` is empty (it always finds both then).
fn resolved(found: Option<(usize, Vec<usize>)>, bad: Bad) -> Result<(usize, Vec<usize>)> {
    all(bad)?;
    found.ok_or_else(|| field("exam", "neither exam nor region is given"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the lock-holding part of Reserve decided.
enum Step {
    /// A new reservation queued for the writer.
    New(ReservationRecord, tokio::sync::oneshot::Receiver<book::Ack>),
    /// A replay of a flushed reservation.
    Replay(ReservationRecord),
    /// A replay of one still being written: answer after the barrier.
    Wait(u64, tokio::sync::oneshot::Receiver<book::Ack>),
}

impl Api {
    fn quote_inner(&self, r: &proto::QuoteRequest) -> Result<proto::QuoteResponse> {
        let mut bad = Bad::new();
        need(&mut bad, "region", &r.region);
        need(&mut bad, "exam", &r.exam);
        let max = match r.max_offers {
            0 => DEFAULT_OFFERS,
            n => n.min(MAX_OFFERS),
        };
        let today = self.book().today();
        let st = self.book().lock();
        let Some(stock) = st.stock.as_ref() else {
            all(bad)?;
            return Err(RegistrationError::NoPublishedPlan);
        };
        let found = resolve(stock, &r.region, &r.exam, &mut bad);
        within_horizon(stock, "from_week", r.from_week, &mut bad);
        let (exam, options) = resolved(found, bad)?;
        let q = Search {
            exam,
            options: &options,
            location: None,
            week: None,
            from_week: r.from_week,
            today,
        };
        let offers: Vec<proto::Offer> = stock
            .slots(&q, max as usize)
            .iter()
            .map(|s| offer(stock, exam, s, r.from_week))
            .collect();
        let next_week_with_seats = if offers.is_empty() {
            stock.next_week_with_seats(exam, &options, r.from_week, today)
        } else {
            None
        };
        Ok(proto::QuoteResponse {
            plan_id: stock.plan_id.clone(),
            offers,
            next_week_with_seats,
        })
    }

    /// Checks a reservation request's fields before a seat is looked for.
    fn reserve_ask(&self, r: &proto::ReserveRequest) -> Result<ReservationAsk> {
        let mut bad = Bad::new();
        if let Err(m) = rules::check_idempotency_key(&r.idempotency_key) {
            bad.push(("idempotency_key", m));
        }
        if let Err(m) = rules::check_candidate_ref(&r.candidate_ref) {
            bad.push(("candidate_ref", m));
        }
        need(&mut bad, "region", &r.region);
        need(&mut bad, "exam", &r.exam);
        if r.location.as_deref() == Some("") {
            bad.push(("location", "empty: leave it out for the first offer".into()));
        }
        if !bad.is_empty() {
            // What the published plan tells (an unknown exam or region, a
            // week past its horizon) goes in the same answer.
            let book = self.book();
            let st = book.lock();
            if let Some(stock) = st.stock.as_ref() {
                resolve(stock, &r.region, &r.exam, &mut bad);
                reserve_weeks_within(stock, r.week, r.from_week, &mut bad);
            }
        }
        all(bad)?;
        Ok(ReservationAsk {
            candidate_ref: r.candidate_ref.clone(),
            region: r.region.clone(),
            exam: r.exam.clone(),
            location: r.location.clone(),
            week: r.week,
            from_week: r.from_week,
        })
    }

    /// Under the lock: a replay, or a seat taken and its record queued.
    fn reserve_step(&self, made_by: &str, key: &str, ask: ReservationAsk) -> Result<Step> {
        let book = self.book();
        let today = book.today();
        let mut st = book.lock();
        if let Some((seq, e)) = st.by_key(made_by, key) {
            if !e.rec.ask.same_request(&ask) {
                return Err(RegistrationError::KeyReused {
                    key: key.to_string(),
                    reservation_id: reservation_id(seq),
                });
            }
            return match e.durability {
                Durability::Committed => Ok(Step::Replay(e.rec.clone())),
                Durability::Pending => Ok(Step::Wait(seq, book.barrier(&st))),
                Durability::InDoubt => Err(RegistrationError::Unavailable(
                    "the first request under this key failed to write; its outcome is \
                     known after a restart"
                        .into(),
                )),
            };
        }
        book.writable()
            .map_err(|e| RegistrationError::Unavailable(e.to_string()))?;
        let seq = st.next_seq;
        let stock = st
            .stock
            .as_mut()
            .ok_or(RegistrationError::NoPublishedPlan)?;
        // Every bad field in one answer: exam, region, location, weeks.
        let mut bad = Bad::new();
        let found = resolve(stock, &ask.region, &ask.exam, &mut bad);
        let location = match (&ask.location, &found) {
            (Some(l), Some((exam, options))) => {
                let i = stock.location(l).filter(|i| options.contains(i));
                match i {
                    None => bad.push((
                        "location",
                        format!("{l:?} is not among the options of region {}", ask.region),
                    )),
                    Some(i) if !stock.holds(*exam, i) => bad.push((
                        "location",
                        format!(
                            "{l:?} has no resources of the kind exam {} is taken in: it never \
                             holds that exam",
                            ask.exam
                        ),
                    )),
                    Some(_) => {}
                }
                i
            }
            // The region or exam is unknown: named above.
            _ => None,
        };
        // With a `week`, `from_week` is not used (ReserveRequest): a next
        // offer's wait counts from the week asked for.
        let origin = ask.week.unwrap_or(ask.from_week);
        reserve_weeks_within(stock, ask.week, ask.from_week, &mut bad);
        let (exam, options) = resolved(found, bad)?;
        if let Some(w) = ask.week {
            let mut cells = options.iter().filter(|&&l| location.is_none_or(|x| x == l));
            if !cells.any(|&l| stock.bookable(exam, l, w, today)) {
                return Err(closed_week(
                    stock,
                    w,
                    ask.location.as_deref(),
                    today,
                    book.clock(),
                ));
            }
        }
        let q = Search {
            exam,
            options: &options,
            location,
            week: ask.week,
            from_week: ask.from_week,
            today,
        };
        let Some(slot) = stock.slots(&q, 1).pop() else {
            // The next offer: from the asked week on, at the asked location
            // if it has one, else at any of the region's options.
            let next_q = Search {
                week: None,
                from_week: origin,
                ..q
            };
            let anywhere = Search {
                location: None,
                ..next_q
            };
            let next = stock
                .slots(&next_q, 1)
                .pop()
                .or_else(|| stock.slots(&anywhere, 1).pop())
                .map(|s| Box::new(offer(stock, exam, &s, origin)));
            // Free seats that are only in held sessions: say so, or "no
            // free seat" would contradict GetStock's free counts.
            let ever = Search {
                today: chrono::NaiveDate::MIN,
                ..anywhere
            };
            let held = next.is_none() && stock.slots(&ever, 1).pop().is_some();
            return Err(RegistrationError::SoldOut {
                message: format!(
                    "no free seat for exam {} in region {}{}{}{}",
                    ask.exam,
                    ask.region,
                    ask.location
                        .as_deref()
                        .map(|l| format!(" at {l}"))
                        .unwrap_or_default(),
                    ask.week
                        .map(|w| format!(" in week {w}"))
                        .unwrap_or_default(),
                    if held {
                        format!(
                            "; the free seats left are in sessions that have begun (today is {today})"
                        )
                    } else {
                        String::new()
                    },
                ),
                next,
            });
        };
        let taken = stock.take(exam, slot.location, slot.week);
        debug_assert!(taken, "a slot with a free seat can be taken");
        let label = &stock.weeks[slot.week as usize];
        let rec = ReservationRecord {
            seq,
            idempotency_key: key.to_string(),
            made_by: made_by.to_string(),
            location: stock.locations[slot.location].clone(),
            week: slot.week,
            iso_week: label.iso.clone(),
            monday: label.monday.clone(),
            plan_id: stock.plan_id.clone(),
            cancelled: false,
            created_unix_ms: now_ms(),
            ask,
        };
        st.next_seq += 1;
        let ack = book.add(&mut st, rec.clone());
        Ok(Step::New(rec, ack))
    }

    async fn reserve_inner(
        &self,
        made_by: &str,
        r: proto::ReserveRequest,
    ) -> Result<proto::ReserveResponse> {
        let ask = self.reserve_ask(&r)?;
        let (rec, replayed) = match self.reserve_step(made_by, &r.idempotency_key, ask)? {
            Step::Replay(rec) => (rec, true),
            Step::New(rec, ack) => {
                settled(ack).await?;
                (rec, false)
            }
            Step::Wait(seq, ack) => {
                settled(ack).await?;
                let st = self.book().lock();
                match st.reservations.get(&seq) {
                    Some(e) if e.durability == Durability::Committed => (e.rec.clone(), true),
                    _ => {
                        return Err(RegistrationError::Unavailable(
                            "the first request under this key failed to write".into(),
                        ))
                    }
                }
            }
        };
        Ok(proto::ReserveResponse {
            reservation: Some(reservation_proto(&rec)),
            replayed,
        })
    }

    async fn cancel_inner(&self, id: &str) -> Result<proto::CancelResponse> {
        required("reservation_id", id)?;
        let seq = parse_reservation_id(id)
            .ok_or_else(|| field("reservation_id", format!("{id:?} is not a reservation id")))?;
        let not_found = || RegistrationError::NotFound {
            what: "reservation",
            id: id.to_string(),
        };
        let ack = {
            let book = self.book();
            let st = book.lock();
            let e = st.reservations.get(&seq).ok_or_else(not_found)?;
            match e.durability {
                // Not acknowledged to anyone yet, so not known to the caller.
                Durability::Pending => return Err(not_found()),
                Durability::InDoubt => {
                    return Err(RegistrationError::Unavailable(
                        "the reservation's write failed; its outcome is known after a restart"
                            .into(),
                    ))
                }
                Durability::Committed => {}
            }
            if e.rec.cancelled {
                return Ok(proto::CancelResponse {
                    reservation: Some(reservation_proto(&e.rec)),
                    already_cancelled: true,
                });
            }
            book.writable()
                .map_err(|e| RegistrationError::Unavailable(e.to_string()))?;
            book.cancel(&st, e.rec.clone())
        };
        let changed = settled(ack).await?;
        let st = self.book().lock();
        let e = st.reservations.get(&seq).ok_or_else(not_found)?;
        Ok(proto::CancelResponse {
            reservation: Some(reservation_proto(&e.rec)),
            already_cancelled: !changed,
        })
    }

    fn list_inner(
        &self,
        r: &proto::ListReservationsRequest,
    ) -> Result<proto::ListReservationsResponse> {
        let size = crate::api::page_size(r.page_size);
        // Every bad field is named in one answer, one violation each.
        let mut bad: Vec<(&'static str, String)> = Vec::new();
        let start = if r.page_token.is_empty() {
            Some(0)
        } else {
            let start = parse_page_token(&r.page_token).and_then(|s| s.checked_add(1));
            if start.is_none() {
                bad.push(("page_token", "not a token from a previous response".into()));
            }
            start
        };
        // A filter that could never match is a typo; one that looks like a
        // citizen service number is refused as Reserve refuses it.
        if !r.candidate_ref.is_empty() {
            if let Err(m) = rules::check_candidate_ref(&r.candidate_ref) {
                bad.push(("candidate_ref", m.to_string()));
            }
        }
        if let (Some(f), Some(t)) = (r.from_week, r.to_week) {
            if f > t {
                bad.push(("to_week", format!("{t} is before from_week {f}")));
            }
        }
        let st = self.book().lock();
        if !bad.is_empty() {
            // Unknown filters go in the same answer (also beside a bad
            // page token, which said nothing of them).
            bad.extend(unknown_filters(&st, r));
            all(bad)?;
        }
        let start = start.unwrap_or(0);
        // Weeks of the published plan, by calendar week (a reservation from
        // an earlier plan may count its weeks from another start week).
        let from = r.from_week.map_or(i64::MIN, i64::from);
        let to = r.to_week.map_or(i64::MAX, i64::from);
        let in_weeks = |rec: &ReservationRecord| {
            if r.from_week.is_none() && r.to_week.is_none() {
                return true;
            }
            let week = st
                .stock
                .as_ref()
                .map_or(i64::from(rec.week), |s| s.week_of(rec));
            (from..=to).contains(&week)
        };
        let matches = |rec: &ReservationRecord| {
            (r.include_cancelled || !rec.cancelled)
                && (r.exam.is_empty() || rec.ask.exam == r.exam)
                && (r.region.is_empty() || rec.ask.region == r.region)
                && (r.location.is_empty() || rec.location == r.location)
                && (r.candidate_ref.is_empty() || rec.ask.candidate_ref == r.candidate_ref)
                && in_weeks(rec)
        };
        // One candidate's reservations come from their index, in seq order
        // as the whole book's do.
        let entries: Box<dyn Iterator<Item = &book::Entry>> = if r.candidate_ref.is_empty() {
            Box::new(st.reservations.range(start..).map(|(_, e)| e))
        } else {
            let seqs = st.by_candidate.get(&r.candidate_ref);
            Box::new(
                seqs.into_iter()
                    .flat_map(|s| s.range(start..))
                    .filter_map(|seq| st.reservations.get(seq)),
            )
        };
        let mut page: Vec<&ReservationRecord> = entries
            .filter(|e| e.durability == Durability::Committed && matches(&e.rec))
            .map(|e| &e.rec)
            .take(size + 1)
            .collect();
        // On a first page that comes back empty, as GetStock says it.
        if page.is_empty() && start == 0 {
            all(unknown_filters(&st, r))?;
        }
        let next_page_token = if page.len() > size {
            page.truncate(size);
            page.last().map(|r| page_token(r.seq)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(proto::ListReservationsResponse {
            reservations: page.into_iter().map(reservation_proto).collect(),
            next_page_token,
        })
    }

    fn stock_inner(&self, r: &proto::GetStockRequest) -> Result<proto::GetStockResponse> {
        let mut bad = Bad::new();
        need(&mut bad, "exam", &r.exam);
        let to = r.to_week.unwrap_or(u32::MAX);
        if to < r.from_week {
            bad.push((
                "to_week",
                format!("{to} is before from_week {}", r.from_week),
            ));
        }
        let today = self.book().today();
        let st = self.book().lock();
        let Some(stock) = st.stock.as_ref() else {
            all(bad)?;
            return Err(RegistrationError::NoPublishedPlan);
        };
        // As Quote and Reserve say it: no cell lies past the horizon, and
        // an empty answer would read as "no seats".
        within_horizon(stock, "from_week", r.from_week, &mut bad);
        let location = Some(r.location.as_str()).filter(|l| !l.is_empty());
        // The cells asked for; with a bad week range, those of every week,
        // to tell whether the exam and location are known.
        let weeks = if bad.is_empty() {
            r.from_week..=to
        } else {
            0..=u32::MAX
        };
        let cells = stock.cells(&r.exam, weeks, location);
        // As Quote says it; an exam or location that left the plan but
        // still holds reservations has cells, and is no error.
        if cells.is_empty() && !r.exam.is_empty() && stock.exam(&r.exam).is_none() {
            bad.push((
                "exam",
                format!("unknown exam {:?} in the published plan", r.exam),
            ));
        }
        if let Some(l) = location.filter(|l| cells.is_empty() && stock.location(l).is_none()) {
            bad.push((
                "location",
                format!("unknown location {l:?} in the published plan"),
            ));
        }
        all(bad)?;
        Ok(proto::GetStockResponse {
            plan_id: stock.plan_id.clone(),
            cells: cells
                .iter()
                .map(|c| proto::StockCell {
                    closed: stock.closed(c, today),
                    ..stock_cell(c)
                })
                .collect(),
        })
    }
}

/// Waits for the writer's answer.
async fn settled(ack: tokio::sync::oneshot::Receiver<book::Ack>) -> Result<bool> {
    match ack.await {
        Ok(Ok(changed)) => Ok(changed),
        Ok(Err(e)) => Err(RegistrationError::Unavailable(e)),
        Err(_) => Err(RegistrationError::Unavailable(
            "the reservation writer stopped".into(),
        )),
    }
}

#[tonic::async_trait]
impl proto::registration_service_server::RegistrationService for Api {
    #[tracing::instrument(name = "RegistrationService/Quote", skip_all, fields(caller))]
    async fn quote(
        &self,
        req: Request<proto::QuoteRequest>,
    ) -> Result<Response<proto::QuoteResponse>, Status> {
        self.check(&req, Rpc::Quote)?;
        Ok(Response::new(self.quote_inner(req.get_ref())?))
    }

    #[tracing::instrument(name = "RegistrationService/Reserve", skip_all, fields(caller))]
    async fn reserve(
        &self,
        req: Request<proto::ReserveRequest>,
    ) -> Result<Response<proto::ReserveResponse>, Status> {
        let caller = self.check(&req, Rpc::Reserve)?;
        Ok(Response::new(
            self.reserve_inner(&caller.name, req.into_inner()).await?,
        ))
    }

    #[tracing::instrument(name = "RegistrationService/Cancel", skip_all, fields(caller))]
    async fn cancel(
        &self,
        req: Request<proto::CancelRequest>,
    ) -> Result<Response<proto::CancelResponse>, Status> {
        self.check(&req, Rpc::Cancel)?;
        Ok(Response::new(
            self.cancel_inner(&req.get_ref().reservation_id).await?,
        ))
    }

    #[tracing::instrument(
        name = "RegistrationService/ListReservations",
        skip_all,
        fields(caller)
    )]
    async fn list_reservations(
        &self,
        req: Request<proto::ListReservationsRequest>,
    ) -> Result<Response<proto::ListReservationsResponse>, Status> {
        self.check(&req, Rpc::ListReservations)?;
        Ok(Response::new(self.list_inner(req.get_ref())?))
    }

    #[tracing::instrument(name = "RegistrationService/GetStock", skip_all, fields(caller))]
    async fn get_stock(
        &self,
        req: Request<proto::GetStockRequest>,
    ) -> Result<Response<proto::GetStockResponse>, Status> {
        self.check(&req, Rpc::GetStock)?;
        Ok(Response::new(self.stock_inner(req.get_ref())?))
    }
}
