//! Reservations as observed demand: the candidates who hold a seat when the
//! next plan starts, as an `examcap/scenario@1` `backlog` array.
//!
//! The rule: a reservation is in the backlog of a scenario starting on
//! Monday `start` when it is active and its reserved week starts on or after
//! `start` (the candidate registered and is still waiting at week 0). Its
//! registration week is the week it was made (by the date in the
//! Netherlands, as the sessions are dated), counted from `start`:
//! `floor((monday of creation − start) / 7)`. A reservation made in week 0
//! or later is counted in week −1, the latest week a backlog entry may have,
//! so that no candidate holding a seat is left out of the next plan.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use examcap_solver::scenario::Backlog;

use crate::client::{authed, call_failure, connect, ClientError};
use crate::proto;
use crate::store::{ReservationRecord, SledStore, Store, StoreError};

/// Why the reservations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("ListReservations: {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("reservation {id}: {message}")]
    Record { id: String, message: String },
}

impl BacklogError {
    /// The caller's mistake (address, token, directory), not the server's
    /// or the network's: as `report --server` tells them apart.
    pub fn is_input(&self) -> bool {
        match self {
            BacklogError::Client(e) => e.is_input(),
            BacklogError::Rpc { code, .. } => crate::client::is_caller_code(*code),
            BacklogError::Store(e) => e.is_wrong_directory(),
            BacklogError::Record { .. } => false,
        }
    }
}

/// An active reservation as the backlog sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub region: String,
    pub exam: String,
    /// When the reservation was made, Unix milliseconds.
    pub created_unix_ms: i64,
    /// Monday of the reserved week.
    pub monday: NaiveDate,
}

fn waiting(
    id: &str,
    region: &str,
    exam: &str,
    created_unix_ms: i64,
    monday: &str,
) -> Result<Waiting, BacklogError> {
    let monday =
        NaiveDate::parse_from_str(monday, "%Y-%m-%d").map_err(|e| BacklogError::Record {
            id: id.to_string(),
            message: format!("monday {monday:?}: {e}"),
        })?;
    Ok(Waiting {
        region: region.to_string(),
        exam: exam.to_string(),
        created_unix_ms,
        monday,
    })
}

impl Waiting {
    fn from_record(r: &ReservationRecord) -> Result<Waiting, BacklogError> {
        waiting(
            &crate::registration::rules::reservation_id(r.seq),
            &r.ask.region,
            &r.ask.exam,
            r.created_unix_ms,
            &r.monday,
        )
    }
}

/// The active reservations in a data directory (the server must not be
/// running on it: sled locks the directory).
pub fn from_data_dir(dir: &std::path::Path) -> Result<Vec<Waiting>, BacklogError> {
    SledStore::open_existing(dir)?
        .list_reservations()?
        .iter()
        .filter(|r| !r.cancelled)
        .map(Waiting::from_record)
        .collect()
}

/// The active reservations of a running server, read page by page with
/// ListReservations (role registration or planner).
pub async fn from_server(url: &str, token: Option<&str>) -> Result<Vec<Waiting>, BacklogError> {
    let mut client =
        proto::registration_service_client::RegistrationServiceClient::new(connect(url).await?);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = authed(
            proto::ListReservationsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            },
            token,
        )?;
        let page = client
            .list_reservations(req)
            .await
            .map_err(|s| BacklogError::Rpc {
                code: s.code(),
                message: call_failure(&s, token.is_some()),
            })?
            .into_inner();
        for r in &page.reservations {
            out.push(waiting(
                &r.id,
                &r.region,
                &r.exam,
                r.created_unix_ms,
                &r.monday,
            )?);
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// The Monday of `d`'s ISO week.
pub fn monday_of(d: NaiveDate) -> NaiveDate {
    d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()))
}

/// The backlog of a scenario whose week 0 starts on Monday `start`: see the
/// module documentation for the rule. Sorted by region, exam, week.
pub fn backlog(waiting: &[Waiting], start: NaiveDate) -> Vec<Backlog> {
    let mut counts: BTreeMap<(&str, &str, i64), u64> = BTreeMap::new();
    for w in waiting.iter().filter(|w| w.monday >= start) {
        let created = chrono::DateTime::from_timestamp_millis(w.created_unix_ms)
            .map_or(start, crate::registration::stock::dutch_date);
        let week = (monday_of(created) - start)
            .num_days()
            .div_euclid(7)
            .min(-1);
        *counts.entry((&w.region, &w.exam, week)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((region, exam, week), n)| Backlog {
            region: region.to_string(),
            exam: exam.to_string(),
            registered_week: week,
            candidates: n as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn w(exam: &str, created: i64, monday: (i32, u32, u32)) -> Waiting {
        Waiting {
            region: "R".into(),
            exam: exam.into(),
            created_unix_ms: created,
            monday: NaiveDate::from_ymd_opt(monday.0, monday.1, monday.2).unwrap(),
        }
    }

    #[test]
    fn weeks_are_counted_back_from_the_start() {
        // Week 0 starts on Monday 13 April 2026.
        let start = NaiveDate::from_ymd_opt(2026, 4, 13).unwrap();
        let b = backlog(
            &[
                // Made on Wednesday 1 April (week −2), seat in week 0: −2.
                w("A", ms(2026, 4, 1), (2026, 4, 13)),
                w("A", ms(2026, 4, 1), (2026, 4, 20)),
                // Made on Sunday 12 April (week −1).
                w("A", ms(2026, 4, 12), (2026, 4, 20)),
                // Made in week 0 itself: counted in week −1.
                w("B", ms(2026, 4, 14), (2026, 4, 27)),
                // Seat before week 0: sat already, not waiting.
                w("B", ms(2026, 3, 2), (2026, 4, 6)),
            ],
            start,
        );
        let got: Vec<(&str, i64, f64)> = b
            .iter()
            .map(|b| (b.exam.as_str(), b.registered_week, b.candidates))
            .collect();
        assert_eq!(got, [("A", -2, 2.0), ("A", -1, 1.0), ("B", -1, 1.0)]);
    }

    #[test]
    fn the_week_made_is_the_dutch_one() {
        // Week 0 starts on Monday 12 April 2027. 22:30 UTC on Sunday 4
        // April is 00:30 on Monday 5 April in Amsterdam (summer time): week
        // −1, not the UTC date's week −2.
        let start = NaiveDate::from_ymd_opt(2027, 4, 12).unwrap();
        let made = NaiveDate::from_ymd_opt(2027, 4, 4)
            .unwrap()
            .and_hms_opt(22, 30, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let b = backlog(&[w("A", made, (2027, 4, 19))], start);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].registered_week, -1);
    }
}
