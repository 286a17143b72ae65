//! The scenario format `examcap/scenario@1` as Rust types.
//!
//! These types are what a *validated* scenario looks like: every reference
//! resolves, every number is in range. Build them from untrusted bytes with
//! [`crate::validate::parse_scenario`], never by deserialising directly, so
//! that errors carry field paths. They serialise back to the same JSON shape.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` value every scenario document carries.
pub const FORMAT: &str = "examcap/scenario@1";

/// A planning scenario: demand forecasts and capacities over a horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Always [`FORMAT`]; kept so a stored document is self-describing.
    pub format: String,
    /// Free-form name, e.g. `nl-2026-q2`.
    pub name: String,
    /// ISO 8601 week (`2026-W14`) of week index 0.
    pub start_week: String,
    /// Number of planned weeks T (1..=520).
    pub horizon_weeks: usize,
    pub exams: Vec<Exam>,
    pub locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rating_pools: Vec<RatingPool>,
    pub regions: Vec<Region>,
    pub demand: Vec<Demand>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backlog: Vec<Backlog>,
    #[serde(default)]
    pub weights: Weights,
}

/// One exam component (e.g. Spreken B1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exam {
    pub id: String,
    pub name: String,
    /// The kind of seat this exam occupies at a location (e.g. `speaking_booth`).
    pub resource: String,
    /// Seat minutes one candidate occupies.
    pub seat_minutes: f64,
    /// Rater pool that marks this exam, if it is rated by people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_pool: Option<String>,
    /// Rater minutes per candidate; present exactly when `rating_pool` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_minutes: Option<f64>,
    /// W_e: a candidate registered in week τ should sit the exam by week τ + W_e.
    pub target_wait_weeks: i64,
    /// π_e: weight of this exam's over-target candidate-weeks in stage 1.
    #[serde(default = "one")]
    pub priority: f64,
}

fn one() -> f64 {
    1.0
}

/// An exam location with its seat capacities per resource kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
    pub resources: Vec<Resource>,
    /// Weeks with reduced capacity (holidays, closures); factors multiply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
}

/// Weekly seat minutes of one resource kind at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: String,
    /// Regular seat minutes per week, paid for already.
    pub weekly_minutes: f64,
    /// Extra seat minutes per week that can be bought (evening/Saturday sessions).
    pub extra_weekly_minutes: f64,
    /// Price of one extra seat minute.
    pub extra_cost_per_minute: f64,
}

/// A range of weeks (0-based, inclusive) whose capacity is scaled by `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unavailable {
    pub from_week: i64,
    pub to_week: i64,
    /// In [0, 1]; 0 closes the capacity for those weeks.
    pub factor: f64,
}

/// A pool of raters (examiners who mark speaking or writing exams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingPool {
    pub id: String,
    pub weekly_minutes: f64,
    pub extra_weekly_minutes: f64,
    pub extra_cost_per_minute: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
}

/// A demand region (a COROP region in the national scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub id: String,
    pub name: String,
    /// Locations candidates from this region may be sent to, with the cost of the trip.
    pub options: Vec<RegionOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionOption {
    pub location: String,
    pub travel_cost: f64,
}

/// Forecast registrations per week for one (region, exam).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    pub region: String,
    pub exam: String,
    /// Exactly `horizon_weeks` entries.
    pub weekly: Vec<f64>,
}

/// Candidates who registered before week 0 and are still waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    pub region: String,
    pub exam: String,
    /// Negative: weeks before week 0 in which they registered.
    pub registered_week: i64,
    pub candidates: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// w: cost of one candidate waiting one week (any wait, within target or not).
    pub waiting_per_candidate_week: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            waiting_per_candidate_week: 1.0,
        }
    }
}

impl Scenario {
    /// Hex SHA-256 of the canonical JSON form: the same content gives the same
    /// hash whatever the whitespace or key order of the document it came from.
    pub fn content_hash(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a scenario always serialises");
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Monday of week index 0. Valid for every validated scenario.
    pub fn start_monday(&self) -> Option<chrono::NaiveDate> {
        parse_iso_week(&self.start_week)
    }

    pub fn exam_index(&self, id: &str) -> Option<usize> {
        self.exams.iter().position(|e| e.id == id)
    }
}

/// Parses `YYYY-Www` into that ISO week's Monday; `None` if malformed or the
/// year has no such week.
pub fn parse_iso_week(s: &str) -> Option<chrono::NaiveDate> {
    let (y, w) = s.split_once("-W")?;
    if y.len() != 4 || w.len() != 2 {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let week: u32 = w.parse().ok()?;
    chrono::NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)
}

/// Monday of week `week` counted from `start` (the Monday of week 0), any
/// week before or after it, as a horizon index (`usize`) or a signed week;
/// `None` past the calendar's ends.
pub fn monday_of(start: chrono::NaiveDate, week: impl TryInto<i64>) -> Option<chrono::NaiveDate> {
    let week: i64 = week.try_into().ok()?;
    let days = chrono::Days::new(week.unsigned_abs().checked_mul(7)?);
    if week < 0 {
        start.checked_sub_days(days)
    } else {
        start.checked_add_days(days)
    }
}

/// `YYYY-Www` of the ISO week holding `day`, as `start_week` is written
/// (the year in four digits, also before 1000: `0000-W03`).
pub fn iso_week_label(day: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let w = day.iso_week();
    format!("{:04}-W{:02}", w.year(), w.week())
}

/// Product of the unavailability factors that cover week `t`.
pub fn availability(unavailable: &[Unavailable], t: usize) -> f64 {
    let t = t as i64;
    unavailable
        .iter()
        .filter(|u| u.from_week <= t && t <= u.to_week)
        .map(|u| u.factor)
        .product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mondays_before_and_after_week_zero() {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(); // 2026-W02
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(monday_of(start, 0), day(2026, 1, 5));
        assert_eq!(monday_of(start, 3usize), day(2026, 1, 26));
        assert_eq!(monday_of(start, usize::MAX), None);
        assert_eq!(monday_of(start, 1), day(2026, 1, 12));
        // Back across the year: 2026-W01 begins on 29 December 2025.
        assert_eq!(monday_of(start, -1), day(2025, 12, 29));
        assert_eq!(
            monday_of(start, -1).map(iso_week_label).unwrap(),
            "2026-W01"
        );
        assert_eq!(
            monday_of(start, 52).map(iso_week_label).unwrap(),
            "2027-W01"
        );
        // Past the calendar's ends: no date, and no panic.
        assert_eq!(monday_of(start, i64::MAX), None);
        assert_eq!(monday_of(start, i64::MIN), None);
    }

    #[test]
    fn iso_week_labels_read_back_as_their_monday() {
        for label in ["2026-W14", "2027-W01", "2026-W53", "0999-W10", "0000-W03"] {
            let monday = parse_iso_week(label).unwrap();
            assert_eq!(iso_week_label(monday), label);
            assert_eq!(iso_week_label(monday + chrono::Days::new(6)), label);
        }
    }

    #[test]
    fn iso_week_parses_to_monday() {
        let d = parse_iso_week("2026-W14").unwrap();
        assert_eq!(d, chrono::NaiveDate::from_ymd_opt(2026, 3, 30).unwrap());
        assert!(parse_iso_week("2026-W54").is_none());
        assert!(parse_iso_week("2026-14").is_none());
        assert!(parse_iso_week("2020-W53").is_some());
        assert!(parse_iso_week("2021-W53").is_none());
    }

    #[test]
    fn overlapping_unavailability_multiplies() {
        let u = vec![
            Unavailable {
                from_week: 1,
                to_week: 3,
                factor: 0.5,
            },
            Unavailable {
                from_week: 2,
                to_week: 2,
                factor: 0.5,
            },
        ];
        assert_eq!(availability(&u, 0), 1.0);
        assert_eq!(availability(&u, 1), 0.5);
        assert_eq!(availability(&u, 2), 0.25);
        assert_eq!(availability(&u, 4), 1.0);
    }
}
