//! The session calendar: a plan's weekly integral allocation as dated exam
//! sessions per location.
//!
//! Days are Monday to Friday; Saturday is added only in a week where the plan
//! buys extra seat minutes of that exam's resource kind at that location,
//! and holds the candidates those minutes seat: whole candidates of the
//! exams of that kind there whose seat minutes reach the minutes bought
//! (each exam's share rounded down, then one candidate at a time by largest
//! remainder), so the weekdays use no more than the regular minutes and
//! Saturday less than one candidate more than was bought. A location with
//! only extra capacity examines on Saturdays only.
//! Dutch public holidays ([`dutch_holidays`]) are closed. When one closes
//! the Saturday, the candidates it would hold are
//! [`CalendarResult::unplaced`] (the weekdays have no minutes for them, so
//! registration must not sell them) and the week is reported
//! ([`CalendarResult::closed_saturdays`]). A week whose
//! holidays close weekdays while the scenario keeps more than the open
//! weekdays' share of the location's capacity is reported
//! ([`CalendarResult::crowded`]) where it has weekday sessions: they then
//! sit in fewer blocks than the plan assumed. Every open day has
//! a morning and an afternoon block. An exam's candidates of one (location,
//! week), summed over regions, are spread over that week's weekday (day,
//! block) slots in order, those of Saturday over its two blocks: slot `i`
//! of `s` gets `n / s` plus one if `i < n % s`.
//! Pure: no I/O, the same plan and scenario always give the same calendar.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::scenario::{availability, Scenario};

/// Easter Sunday of `year` (the anonymous Gregorian algorithm); `None`
/// before the Gregorian calendar (1583) or outside chrono's range.
pub fn easter(year: i32) -> Option<NaiveDate> {
    if year < 1583 {
        return None;
    }
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

fn shift(d: NaiveDate, days: i64) -> Option<NaiveDate> {
    d.checked_add_signed(chrono::TimeDelta::try_days(days)?)
}

/// The Dutch public holidays of `year` on which exam locations are closed,
/// sorted by date: the days the Algemene termijnenwet recognises — New
/// Year, Easter Sunday and Monday, King's Day (27 April, or 26 April when
/// the 27th is a Sunday), Ascension Day (Easter + 39), Whit Sunday and
/// Monday (Easter + 49, + 50), Christmas (25 and 26 December) — with
/// Liberation Day (5 May) only in lustrum years (divisible by 5), when
/// government offices close. Good Friday is not one: the law does not
/// recognise it, and the generator keeps that week's capacity.
pub fn dutch_holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let mut out = Vec::new();
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    if let Some(d) = ymd(1, 1) {
        out.push((d, "Nieuwjaarsdag"));
    }
    if let Some(e) = easter(year) {
        for (offset, name) in [
            (0, "Eerste Paasdag"),
            (1, "Tweede Paasdag"),
            (39, "Hemelvaartsdag"),
            (49, "Eerste Pinksterdag"),
            (50, "Tweede Pinksterdag"),
        ] {
            if let Some(d) = shift(e, offset) {
                out.push((d, name));
            }
        }
    }
    if let Some(d27) = ymd(4, 27) {
        let kings = if d27.weekday() == Weekday::Sun {
            ymd(4, 26)
        } else {
            Some(d27)
        };
        if let Some(d) = kings {
            out.push((d, "Koningsdag"));
        }
    }
    if year % 5 == 0 {
        if let Some(d) = ymd(5, 5) {
            out.push((d, "Bevrijdingsdag"));
        }
    }
    for (day, name) in [(25, "Eerste Kerstdag"), (26, "Tweede Kerstdag")] {
        if let Some(d) = ymd(12, day) {
            out.push((d, name));
        }
    }
    out.sort();
    out
}

/// Whether `d` is one of [`dutch_holidays`].
pub fn is_holiday(d: NaiveDate) -> bool {
    dutch_holidays(d.year()).iter().any(|(h, _)| *h == d)
}

/// Half a day of exams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Morning,
    Afternoon,
}

impl Block {
    pub fn name(self) -> &'static str {
        match self {
            Block::Morning => "morning",
            Block::Afternoon => "afternoon",
        }
    }
}

/// One exam in one block of one day at one location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub location: String,
    /// `YYYY-MM-DD`.
    #[serde(with = "iso_date")]
    pub date: NaiveDate,
    pub block: Block,
    pub exam: String,
    /// The exam's resource kind (the seats it occupies).
    pub kind: String,
    pub candidates: u64,
    /// candidates × the exam's seat minutes.
    pub seat_minutes: f64,
}

/// A date as `YYYY-MM-DD` (chrono's serde feature is not enabled).
mod iso_date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&d.format("%Y-%m-%d"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let s = String::deserialize(d)?;
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(serde::de::Error::custom)
    }
}

/// Allocated candidates the calendar could not date: their week has no open
/// day for them (every day a holiday, or they are the share of extra
/// minutes whose Saturday is a holiday), or the plan names an exam the
/// scenario does not have, or its start week does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub location: String,
    pub exam: String,
    pub week: usize,
    pub candidates: u64,
}

/// What [`sessions`] returns. For every (location, exam, week) the
/// candidates of `sessions` plus those of `unplaced` equal the allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalendarResult {
    /// Sorted by location, date, block, then the scenario's exam order.
    pub sessions: Vec<Session>,
    /// Sorted by location, week, exam order.
    pub unplaced: Vec<Unplaced>,
    /// Weeks with sessions at a location where holidays close weekdays but
    /// the scenario's availability factor there is above the open share
    /// (open weekdays / 5): the plan used capacity the closed days do not
    /// have. Sorted by location (scenario order), week.
    #[serde(default)]
    pub crowded: Vec<Crowded>,
    /// Weeks where the plan buys extra seat minutes at a location, which the
    /// calendar puts on Saturday, but that Saturday is a public holiday
    /// (King's Day on the 26th, Christmas): the candidates the extra minutes
    /// were bought for are unplaced (the weekdays have only the regular
    /// minutes).
    /// Sorted by location (scenario order), week.
    #[serde(default)]
    pub closed_saturdays: Vec<ClosedSaturday>,
}

/// A location's week whose bought extra minutes have no Saturday (see
/// [`CalendarResult::closed_saturdays`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedSaturday {
    pub location: String,
    pub week: usize,
    #[serde(with = "iso_date")]
    pub date: NaiveDate,
    pub holiday: String,
    /// The resource kinds with extra minutes bought that week (and sessions).
    pub kinds: Vec<String>,
}

/// A location's week whose holidays the scenario's capacity does not
/// account for (see [`CalendarResult::crowded`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crowded {
    pub location: String,
    pub week: usize,
    /// The closed weekdays, with their holiday names.
    #[serde(with = "holidays_json")]
    pub closed: Vec<(NaiveDate, String)>,
    /// The location's availability factor that week, from the scenario.
    pub factor: f64,
    /// The most it should be: open weekdays / 5.
    pub open_share: f64,
}

mod holidays_json {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Day {
        #[serde(with = "super::iso_date")]
        date: NaiveDate,
        name: String,
    }

    pub fn serialize<S: Serializer>(v: &[(NaiveDate, String)], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|(date, name)| Day {
                date: *date,
                name: name.clone(),
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(NaiveDate, String)>, D::Error> {
        Ok(Vec::<Day>::deserialize(d)?
            .into_iter()
            .map(|x| (x.date, x.name))
            .collect())
    }
}

/// Candidates of slot `i` when `n` are spread over `slots` slots in order.
pub fn spread(n: u64, slots: usize, i: usize) -> u64 {
    if slots == 0 {
        return 0;
    }
    let s = slots as u64;
    n / s + u64::from((i as u64) < n % s)
}

/// The open days of week `week` (0-based from `start_monday`): Monday to
/// Friday that are not holidays, and Saturday (if not a holiday) when
/// `saturday` is set.
pub fn open_days(start_monday: NaiveDate, week: usize, saturday: bool) -> Vec<NaiveDate> {
    let Some(monday) = crate::scenario::monday_of(start_monday, week) else {
        return Vec::new();
    };
    let last = if saturday { 6 } else { 5 };
    (0..last)
        .filter_map(|i| monday.checked_add_days(Days::new(i)))
        .filter(|d| !is_holiday(*d))
        .collect()
}

/// The holidays, with their names, on Monday to Saturday of week `week`
/// (0-based from `start_monday`).
fn week_holidays(start_monday: NaiveDate, week: usize) -> Vec<(NaiveDate, String)> {
    let Some(monday) = crate::scenario::monday_of(start_monday, week) else {
        return Vec::new();
    };
    // A week may run into the next year (Monday 29 December).
    dutch_holidays(monday.year())
        .into_iter()
        .chain(dutch_holidays(monday.year() + 1))
        .filter(|(d, _)| *d >= monday && (*d - monday).num_days() < 6)
        .map(|(d, n)| (d, n.to_string()))
        .collect()
}

/// The holidays, with their names, on Monday to Friday of week `week`.
pub(crate) fn closed_weekdays(start_monday: NaiveDate, week: usize) -> Vec<(NaiveDate, String)> {
    let mut days = week_holidays(start_monday, week);
    days.retain(|(d, _)| d.weekday() != Weekday::Sat);
    days
}

/// The Saturday of week `week` with its name, if it is a public holiday.
fn saturday_holiday(start_monday: NaiveDate, week: usize) -> Option<(NaiveDate, String)> {
    week_holidays(start_monday, week)
        .into_iter()
        .find(|(d, _)| d.weekday() == Weekday::Sat)
}

/// The session calendar of `plan` (solved from `scenario`): see the module
/// documentation for the rules.
pub fn sessions(plan: &Plan, scenario: &Scenario) -> CalendarResult {
    let start = scenario.start_monday();
    // (location, week, exam index or usize::MAX with its id) → candidates.
    let mut cells: BTreeMap<(&str, usize, usize, &str), u64> = BTreeMap::new();
    for row in &plan.allocation {
        let idx = scenario.exam_index(&row.exam).unwrap_or(usize::MAX);
        let n = cells
            .entry((&row.location, row.week, idx, &row.exam))
            .or_default();
        // Saturating: rows of an edited plan file may add up past u64.
        *n = n.saturating_add(row.candidates);
    }
    // Extra seat minutes bought per (location, kind, week).
    let mut extra: BTreeMap<(&str, &str, usize), f64> = BTreeMap::new();
    for x in plan.extra_seats.iter().filter(|x| x.minutes > 0.0) {
        *extra
            .entry((x.location.as_str(), x.kind.as_str(), x.week))
            .or_default() += x.minutes;
    }
    let on_saturday = saturday_shares(&cells, &extra, scenario);
    let mut out = CalendarResult::default();
    // (location, week) with weekday sessions: where a crowded week would show.
    let mut weekday_busy: BTreeSet<(&str, usize)> = BTreeSet::new();
    // (location, week, kind) with extra minutes bought and sessions.
    let mut saturday_kinds: BTreeSet<(&str, usize, &str)> = BTreeSet::new();
    for (&(location, week, idx, exam_id), &n) in &cells {
        if n == 0 {
            continue;
        }
        let unplaced = |candidates| Unplaced {
            location: location.to_string(),
            exam: exam_id.to_string(),
            week,
            candidates,
        };
        let (Some(exam), Some(start)) = (scenario.exams.get(idx), start) else {
            out.unplaced.push(unplaced(n));
            continue;
        };
        let kind_week = (location, exam.resource.as_str(), week);
        let bought = extra.contains_key(&kind_week);
        if bought {
            saturday_kinds.insert((location, week, exam.resource.as_str()));
        }
        let weekdays = open_days(start, week, false);
        let saturday: Vec<NaiveDate> = open_days(start, week, bought)
            .into_iter()
            .filter(|d| d.weekday() == Weekday::Sat)
            .collect();
        let share = on_saturday
            .get(&(location, week, idx))
            .copied()
            .unwrap_or(0);
        let (on_weekdays, on_sat, lost) = match (weekdays.is_empty(), saturday.is_empty()) {
            (false, false) => (n - share, share, 0),
            (true, false) => (0, n, 0),
            // A holiday Saturday: its share has no day. On the weekdays it
            // would use minutes the location does not have that week (a
            // reviewer found them sold there, 29% over the regular ones).
            (false, true) => (n - share, 0, share),
            (true, true) => (0, 0, n),
        };
        if lost > 0 {
            out.unplaced.push(unplaced(lost));
        }
        let blocks = |days: &[NaiveDate]| -> Vec<(NaiveDate, Block)> {
            days.iter()
                .flat_map(|d| [(*d, Block::Morning), (*d, Block::Afternoon)])
                .collect()
        };
        let (weekday_slots, saturday_slots) = (blocks(&weekdays), blocks(&saturday));
        if on_weekdays > 0 {
            weekday_busy.insert((location, week));
        }
        let placed = weekday_slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (slot, spread(on_weekdays, weekday_slots.len(), i)))
            .chain(
                saturday_slots
                    .iter()
                    .enumerate()
                    .map(|(i, slot)| (slot, spread(on_sat, saturday_slots.len(), i))),
            );
        for ((date, block), c) in placed {
            if c > 0 {
                out.sessions.push(Session {
                    location: location.to_string(),
                    date: *date,
                    block: *block,
                    exam: exam.id.clone(),
                    kind: exam.resource.clone(),
                    candidates: c,
                    seat_minutes: c as f64 * exam.seat_minutes,
                });
            }
        }
    }
    if let Some(start) = start {
        holiday_warnings(scenario, start, &weekday_busy, &saturday_kinds, &mut out);
    }
    // Cells come by (location, week, exam): a stable sort by date and block
    // keeps the exam order within a block.
    out.sessions
        .sort_by(|a, b| (&a.location, a.date, a.block).cmp(&(&b.location, b.date, b.block)));
    out
}

#[cfg(test)]
/// Regular seat minutes of `(location, kind, week)`: the scenario's weekly
/// minutes times the week's availability factor (0 if it has none).
fn regular_minutes(scenario: &Scenario, (location, kind, week): (&str, &str, usize)) -> f64 {
    scenario
        .locations
        .iter()
        .find(|l| l.id == location)
        .and_then(|l| {
            let r = l.resources.iter().find(|r| r.kind == kind)?;
            Some(r.weekly_minutes * availability(&l.unavailable, week))
        })
        .unwrap_or(0.0)
}

/// Candidates of each (location, week, exam) cell that sit on Saturday:
/// per (location, kind, week) with extra minutes bought, whole candidates
/// whose seat minutes reach the extra minutes (at most all of them). Each
/// exam first gets its share of them rounded down, then one more candidate
/// at a time by largest remainder until the extra minutes are reached, so
/// the weekdays use at most the rest (the regular minutes) and Saturday
/// holds little more than what was bought.
fn saturday_shares<'a>(
    cells: &BTreeMap<(&'a str, usize, usize, &'a str), u64>,
    extra: &BTreeMap<(&str, &str, usize), f64>,
    scenario: &Scenario,
) -> BTreeMap<(&'a str, usize, usize), u64> {
    /// An exam's cell: its index, candidates, and seat minutes each.
    type Cell = (usize, u64, f64);
    // (location, kind, week) → its cells.
    let mut groups: BTreeMap<(&str, &str, usize), Vec<Cell>> = BTreeMap::new();
    for (&(location, week, idx, _), &n) in cells {
        if let Some(exam) = scenario.exams.get(idx) {
            let key = (location, exam.resource.as_str(), week);
            if n > 0 && extra.contains_key(&key) {
                groups
                    .entry(key)
                    .or_default()
                    .push((idx, n, exam.seat_minutes));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (key, group) in groups {
        let (location, _, week) = key;
        let used: f64 = group.iter().map(|&(_, n, m)| n as f64 * m).sum();
        let bought = extra[&key].min(used);
        let share = if used > 0.0 { bought / used } else { 0.0 };
        // Rounded down first, then by largest remainder.
        let mut taken: Vec<u64> = group
            .iter()
            .map(|&(_, n, _)| ((n as f64 * share).floor() as u64).min(n))
            .collect();
        let mut seated: f64 = group
            .iter()
            .zip(&taken)
            .map(|(&(_, _, m), &t)| t as f64 * m)
            .sum();
        let mut order: Vec<usize> = (0..group.len()).collect();
        let remainder = |i: usize| group[i].1 as f64 * share - taken[i] as f64;
        order.sort_by(|&a, &b| remainder(b).total_cmp(&remainder(a)).then(a.cmp(&b)));
        // Each pass adds at most one candidate per exam; a pass adds none
        // only when every exam is all on Saturday.
        while seated < bought - 1e-9 {
            let mut added = false;
            for &i in &order {
                if seated >= bought - 1e-9 {
                    break;
                }
                if taken[i] < group[i].1 {
                    taken[i] += 1;
                    seated += group[i].2;
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        for (&(idx, _, _), t) in group.iter().zip(taken) {
            out.insert((location, week, idx), t);
        }
    }
    out
}

/// Holiday weeks the scenario's capacity does not account for: weekday
/// sessions at a location whose closed weekdays the availability factor
/// does not reflect ([`CalendarResult::crowded`]), and extra minutes whose
/// Saturday is a holiday ([`CalendarResult::closed_saturdays`]). A week's
/// closed days are the same at every location: found once per week.
fn holiday_warnings(
    scenario: &Scenario,
    start: NaiveDate,
    weekday_busy: &BTreeSet<(&str, usize)>,
    saturday_kinds: &BTreeSet<(&str, usize, &str)>,
    out: &mut CalendarResult,
) {
    let mut closed_in: BTreeMap<usize, Vec<(NaiveDate, String)>> = BTreeMap::new();
    for loc in &scenario.locations {
        let id = loc.id.as_str();
        for &(_, week) in weekday_busy.range((id, 0)..=(id, usize::MAX)) {
            let closed = closed_in
                .entry(week)
                .or_insert_with(|| closed_weekdays(start, week));
            let factor = availability(&loc.unavailable, week);
            let open_share = (5 - closed.len()) as f64 / 5.0;
            if !closed.is_empty() && factor > open_share + 1e-9 {
                out.crowded.push(Crowded {
                    location: loc.id.clone(),
                    week,
                    closed: closed.clone(),
                    factor,
                    open_share,
                });
            }
        }
        let mut weeks: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for &(_, week, kind) in saturday_kinds
            .range((id, 0, "")..)
            .take_while(|(l, _, _)| *l == id)
        {
            weeks.entry(week).or_default().push(kind.to_string());
        }
        for (week, kinds) in weeks {
            if let Some((date, holiday)) = saturday_holiday(start, week) {
                out.closed_saturdays.push(ClosedSaturday {
                    location: loc.id.clone(),
                    week,
                    date,
                    holiday,
                    kinds,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{national, GenerateOptions};
    use crate::plan::{plan_scenario, PlanOptions};
    use crate::validate::parse_scenario;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn named(year: i32, name: &str) -> Vec<NaiveDate> {
        dutch_holidays(year)
            .into_iter()
            .filter(|(_, n)| *n == name)
            .map(|(d, _)| d)
            .collect()
    }

    #[test]
    fn easter_dates_2026_to_2030() {
        // (Easter, Good Friday, Easter Monday, Ascension, Whit Monday)
        let known = [
            (2026, (4, 5), (4, 3), (4, 6), (5, 14), (5, 25)),
            (2027, (3, 28), (3, 26), (3, 29), (5, 6), (5, 17)),
            (2028, (4, 16), (4, 14), (4, 17), (5, 25), (6, 5)),
            (2029, (4, 1), (3, 30), (4, 2), (5, 10), (5, 21)),
            (2030, (4, 21), (4, 19), (4, 22), (5, 30), (6, 10)),
        ];
        for (y, e, gf, em, asc, wm) in known {
            assert_eq!(easter(y), Some(ymd(y, e.0, e.1)), "{y}");
            // Good Friday is not a holiday the law recognises: open.
            assert!(!is_holiday(ymd(y, gf.0, gf.1)), "{y}: Good Friday");
            assert_eq!(named(y, "Tweede Paasdag"), [ymd(y, em.0, em.1)], "{y}");
            assert_eq!(named(y, "Hemelvaartsdag"), [ymd(y, asc.0, asc.1)], "{y}");
            assert_eq!(named(y, "Tweede Pinksterdag"), [ymd(y, wm.0, wm.1)], "{y}");
            for d in [e, em, asc, wm] {
                assert!(is_holiday(ymd(y, d.0, d.1)), "{y}-{d:?}");
            }
        }
        // A few further known dates: 2019-04-21, 2024-03-31, 2038-04-25.
        assert_eq!(easter(2019), Some(ymd(2019, 4, 21)));
        assert_eq!(easter(2024), Some(ymd(2024, 3, 31)));
        assert_eq!(easter(2038), Some(ymd(2038, 4, 25)));
        assert_eq!(easter(1500), None);
    }

    #[test]
    fn kings_day_moves_to_saturday_when_the_27th_is_a_sunday() {
        assert_eq!(named(2025, "Koningsdag"), [ymd(2025, 4, 26)]);
        assert_eq!(named(2026, "Koningsdag"), [ymd(2026, 4, 27)]);
        assert!(!is_holiday(ymd(2025, 4, 27)));
    }

    #[test]
    fn liberation_day_only_in_lustrum_years() {
        assert!(is_holiday(ymd(2025, 5, 5)));
        assert!(is_holiday(ymd(2030, 5, 5)));
        assert!(!is_holiday(ymd(2026, 5, 5)));
        assert!(named(2026, "Bevrijdingsdag").is_empty());
    }

    #[test]
    fn fixed_holidays_and_count() {
        for y in 2020..2040 {
            assert!(is_holiday(ymd(y, 1, 1)));
            assert!(is_holiday(ymd(y, 12, 25)));
            assert!(is_holiday(ymd(y, 12, 26)));
            assert!(!is_holiday(ymd(y, 12, 24)));
            let n = dutch_holidays(y).len();
            assert_eq!(n, if y % 5 == 0 { 10 } else { 9 }, "{y}");
        }
    }

    #[test]
    fn spread_is_even_and_in_order() {
        let v: Vec<u64> = (0..4).map(|i| spread(10, 4, i)).collect();
        assert_eq!(v, [3, 3, 2, 2]);
        assert_eq!((0..10).map(|i| spread(3, 10, i)).sum::<u64>(), 3);
        assert_eq!(spread(5, 0, 0), 0);
    }

    #[test]
    fn open_days_skip_holidays_and_add_saturday() {
        // 2026-W14: Monday 30 March to Friday 3 April (Good Friday, open).
        let monday = ymd(2026, 3, 30);
        assert_eq!(open_days(monday, 0, false).len(), 5);
        assert_eq!(open_days(monday, 0, true).len(), 6);
        // 2025-W19: Liberation Day (lustrum) on Monday 5 May closes.
        let lustrum = ymd(2025, 5, 5);
        assert_eq!(open_days(lustrum, 0, false)[0], ymd(2025, 5, 6));
        // 2026-W19: Tuesday 5 May 2026 is not a lustrum year: open.
        assert_eq!(open_days(ymd(2026, 5, 4), 0, false).len(), 5);
        // Week 1: Easter Monday 6 April closed.
        assert_eq!(open_days(monday, 1, false)[0], ymd(2026, 4, 7));
    }

    /// Every property of a calendar against its plan.
    fn check(plan: &Plan, sc: &Scenario) -> CalendarResult {
        let cal = sessions(plan, sc);
        let mut want: BTreeMap<(String, String, usize), u64> = BTreeMap::new();
        for r in &plan.allocation {
            *want
                .entry((r.location.clone(), r.exam.clone(), r.week))
                .or_default() += r.candidates;
        }
        let monday = sc.start_monday().unwrap();
        let mut got: BTreeMap<(String, String, usize), u64> = BTreeMap::new();
        let mut minutes: BTreeMap<(String, String, usize), f64> = BTreeMap::new();
        for s in &cal.sessions {
            assert!(!is_holiday(s.date), "{s:?} on a holiday");
            assert_ne!(s.date.weekday(), Weekday::Sun, "{s:?}");
            assert!(s.candidates > 0);
            let week = ((s.date - monday).num_days() / 7) as usize;
            if s.date.weekday() == Weekday::Sat {
                assert!(
                    plan.extra_seats.iter().any(|x| x.location == s.location
                        && x.kind == s.kind
                        && x.week == week
                        && x.minutes > 0.0),
                    "{s:?}: Saturday without extra seats"
                );
            }
            let key = (s.location.clone(), s.exam.clone(), week);
            *got.entry(key.clone()).or_default() += s.candidates;
            *minutes.entry(key).or_default() += s.seat_minutes;
        }
        // A session's minutes are its candidates' (before the unplaced).
        let placed = got.clone();
        for u in &cal.unplaced {
            *got.entry((u.location.clone(), u.exam.clone(), u.week))
                .or_default() += u.candidates;
        }
        assert_eq!(got, want);
        // Where the extra minutes' Saturday is open, the weekdays use at
        // most the minutes the plan does not buy (the regular ones).
        let mut used: BTreeMap<(String, String, usize), (f64, f64)> = BTreeMap::new();
        for s in &cal.sessions {
            let week = ((s.date - monday).num_days() / 7) as usize;
            let u = used
                .entry((s.location.clone(), s.kind.clone(), week))
                .or_default();
            u.0 += s.seat_minutes;
            if s.date.weekday() != Weekday::Sat {
                u.1 += s.seat_minutes;
            }
        }
        for ((loc, kind, week), (all, weekdays)) in used {
            let bought: f64 = plan
                .extra_seats
                .iter()
                .filter(|x| x.location == loc && x.kind == kind && x.week == week)
                .map(|x| x.minutes)
                .sum();
            // The weekdays never use more than the regular minutes, open
            // Saturday or not.
            let regular = regular_minutes(sc, (&loc, &kind, week));
            assert!(
                weekdays <= regular + 1e-6,
                "{loc} {kind} week {week}: weekdays use {weekdays} of {regular} regular minutes"
            );
            if bought > 0.0 && saturday_holiday(monday, week).is_none() {
                assert!(
                    weekdays <= all - bought + 1e-6,
                    "{loc} {kind} week {week}: weekdays use {weekdays} of {all} minutes, {bought} bought"
                );
                // Saturday holds less than one more candidate than bought.
                let longest = sc
                    .exams
                    .iter()
                    .filter(|e| e.resource == kind)
                    .map(|e| e.seat_minutes)
                    .fold(0.0, f64::max);
                let saturday = all - weekdays;
                assert!(
                    saturday < bought + longest + 1e-6,
                    "{loc} {kind} week {week}: Saturday holds {saturday} minutes, {bought} bought"
                );
            }
            // No weekday sessions where the kind has no regular minutes.
            if weekdays > 0.0 {
                assert!(
                    regular_minutes(sc, (&loc, &kind, week)) > 0.0,
                    "{loc} {kind} week {week}: weekday sessions without regular minutes"
                );
            }
        }
        for ((loc, exam, week), m) in minutes {
            let e = &sc.exams[sc.exam_index(&exam).unwrap()];
            let n = placed[&(loc.clone(), exam.clone(), week)];
            assert!(
                (m - n as f64 * e.seat_minutes).abs() < 1e-6,
                "{loc} {exam} {week}"
            );
        }
        cal
    }

    #[test]
    fn national_plan_over_christmas_and_new_year() {
        let sc = national(&GenerateOptions {
            weeks: 4,
            start_week: "2026-W52".into(),
            ..GenerateOptions::default()
        });
        let bytes = serde_json::to_vec(&sc).unwrap();
        let sc = parse_scenario(&bytes).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        assert!(!cal.sessions.is_empty());
        assert!(cal.unplaced.is_empty(), "{:?}", cal.unplaced);
        // The generator closes or reduces every holiday week.
        assert!(cal.crowded.is_empty(), "{:?}", cal.crowded);
        // The horizon runs from 21 December 2026 to 17 January 2027
        // (the generator closes most capacity around Christmas itself).
        for s in &cal.sessions {
            assert!(
                ymd(2026, 12, 21) <= s.date && s.date <= ymd(2027, 1, 16),
                "{s:?}"
            );
        }
    }

    /// One location with 450 regular booth minutes (ten candidates a week)
    /// and 180 extra, demand 8, 13, 10: week 1 buys extra minutes.
    fn one_booth(start_week: &str) -> String {
        include_str!("../tests/fixtures/one_booth.json").replace("2026-W14", start_week)
    }

    #[test]
    fn small_plan_over_easter_with_a_saturday() {
        // 2026-W14: Easter Monday in week 1; demand 13 in week 1 needs
        // the extra seats.
        let doc = one_booth("2026-W14");
        let sc = parse_scenario(doc.as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        assert!(cal.unplaced.is_empty());
        let saturday = cal
            .sessions
            .iter()
            .any(|s| s.date.weekday() == Weekday::Sat);
        assert!(
            !saturday || plan.extra_seats.iter().any(|x| x.minutes > 0.0),
            "{:?}",
            plan.extra_seats
        );
        // Week 1 buys extra booth minutes: Saturday 11 April opens.
        assert!(plan
            .extra_seats
            .iter()
            .any(|x| x.week == 1 && x.minutes > 0.0));
        assert!(cal.sessions.iter().any(|s| s.date == ymd(2026, 4, 11)));
        assert!(!cal.sessions.iter().any(|s| s.date == ymd(2026, 4, 4)));
        assert!(!cal.sessions.iter().any(|s| s.date == ymd(2026, 4, 6)));
        // The scenario keeps all of week 1's capacity with Easter Monday
        // closed: reported, and only that week.
        assert_eq!(
            cal.crowded,
            [Crowded {
                location: "AMS".into(),
                week: 1,
                closed: vec![(ymd(2026, 4, 6), "Tweede Paasdag".into())],
                factor: 1.0,
                open_share: 0.8,
            }]
        );
        // With week 1 at 0.8 (or less) it fits the four open days.
        for (factor, crowded) in [(0.8, false), (0.5, false), (0.9, true)] {
            let mut reduced = sc.clone();
            reduced.locations[0].unavailable = vec![crate::scenario::Unavailable {
                from_week: 1,
                to_week: 1,
                factor,
            }];
            let plan = plan_scenario(&reduced, &PlanOptions::default(), &|_| {}).unwrap();
            let cal = check(&plan, &reduced);
            assert_eq!(!cal.crowded.is_empty(), crowded, "factor {factor}");
        }
    }

    /// AMS seats 10 a week; UTR has no regular booth minutes, only extra
    /// ones (a location that opens on Saturdays when needed).
    const SATURDAY_ONLY: &str = r#"{
          "format": "examcap/scenario@1", "name": "saturday-only",
          "start_week": "2026-W14", "horizon_weeks": 3,
          "exams": [{"id": "SPK", "name": "Spreken B1", "resource": "speaking_booth",
                     "seat_minutes": 45, "target_wait_weeks": 0}],
          "locations": [
            {"id": "AMS", "name": "Amsterdam",
             "resources": [{"kind": "speaking_booth", "weekly_minutes": 450,
                            "extra_weekly_minutes": 0, "extra_cost_per_minute": 0.9}]},
            {"id": "UTR", "name": "Utrecht",
             "resources": [{"kind": "speaking_booth", "weekly_minutes": 0,
                            "extra_weekly_minutes": 180, "extra_cost_per_minute": 0.9}]}],
          "regions": [{"id": "R", "name": "R",
                       "options": [{"location": "AMS", "travel_cost": 0.5},
                                   {"location": "UTR", "travel_cost": 0.5}]}],
          "demand": [{"region": "R", "exam": "SPK", "weekly": [12, 12, 12]}]
        }"#;

    /// UTR has no regular booth minutes, only extra ones: a location that
    /// opens on Saturdays when needed. AMS seats 10 a week (450 minutes),
    /// demand is 12 a week with no waiting allowed, so 2 a week go to UTR
    /// on bought minutes: on Saturday, both blocks, never a weekday.
    #[test]
    fn a_location_with_only_extra_minutes_examines_on_saturday() {
        let doc = SATURDAY_ONLY;
        let sc = parse_scenario(doc.as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        assert!(cal.unplaced.is_empty());
        let utr: Vec<&Session> = cal
            .sessions
            .iter()
            .filter(|s| s.location == "UTR")
            .collect();
        // Week 0 (Easter Monday is in week 1; Saturdays 4, 11, 18 April).
        let dates: BTreeSet<NaiveDate> = utr.iter().map(|s| s.date).collect();
        assert_eq!(
            dates,
            [ymd(2026, 4, 4), ymd(2026, 4, 11), ymd(2026, 4, 18)].into(),
            "{utr:?}"
        );
        assert!(utr
            .iter()
            .all(|s| s.candidates == 1 && s.date.weekday() == Weekday::Sat));
        assert_eq!(utr.len(), 6, "{utr:?}");
        // AMS buys nothing: weekdays only.
        assert!(cal
            .sessions
            .iter()
            .filter(|s| s.location == "AMS")
            .all(|s| s.date.weekday() != Weekday::Sat));
    }

    /// The scenario above from 2031-W16: Easter Monday closes week 0's
    /// Monday, and week 1's Saturday is King's Day (26 April). UTR, with
    /// only extra minutes, examines on week 0's Saturday and is not
    /// "crowded" by a Monday it does not use; in week 1 it has no day at
    /// all: its candidates are unplaced, and the closed Saturday is
    /// reported (they were put on weekdays UTR has no minutes for, and
    /// registration sold those days).
    #[test]
    fn a_location_with_only_extra_minutes_has_no_day_when_its_saturday_is_a_holiday() {
        let sc = parse_scenario(SATURDAY_ONLY.replace("2026-W14", "2031-W16").as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        let utr = |week: usize| -> u64 {
            plan.allocation
                .iter()
                .filter(|r| r.location == "UTR" && r.week == week)
                .map(|r| r.candidates)
                .sum()
        };
        assert!(utr(1) > 0, "{:?}", plan.allocation);
        assert_eq!(
            cal.unplaced,
            [Unplaced {
                location: "UTR".into(),
                exam: "SPK".into(),
                week: 1,
                candidates: utr(1),
            }]
        );
        assert!(cal
            .sessions
            .iter()
            .filter(|s| s.location == "UTR")
            .all(|s| s.date == ymd(2031, 4, 19) || s.date == ymd(2031, 5, 3)));
        assert_eq!(
            cal.closed_saturdays
                .iter()
                .map(|c| (c.location.as_str(), c.week, c.date))
                .collect::<Vec<_>>(),
            [("UTR", 1, ymd(2031, 4, 26))]
        );
        // Week 0's closed Monday crowds AMS (factor 1, four open days), not
        // UTR, which has no weekday sessions.
        assert_eq!(
            cal.crowded
                .iter()
                .map(|c| (c.location.as_str(), c.week))
                .collect::<Vec<_>>(),
            [("AMS", 0)]
        );
    }

    /// Four exams of one kind, one candidate each, where the plan buys 8
    /// extra minutes: one candidate (the first exam's, on a tie of
    /// remainders) covers them on Saturday, the other three sit on weekdays.
    /// Rounding each exam's share up put all four on Saturday (a reviewer
    /// found Saturdays 16% over the extra bought on the national surge plan).
    #[test]
    fn saturday_holds_the_bought_minutes_not_one_candidate_per_exam() {
        let exam = |id: &str, minutes: u32| {
            format!(
                r#"{{"id": "{id}", "name": "{id}", "resource": "pc", "seat_minutes": {minutes},
                    "target_wait_weeks": 0}}"#
            )
        };
        let exams = [exam("A", 60), exam("B", 70), exam("C", 80), exam("D", 60)].join(",");
        let doc = format!(
            r#"{{"format": "examcap/scenario@1", "name": "four", "start_week": "2026-W20",
                "horizon_weeks": 1, "exams": [{exams}],
                "locations": [{{"id": "L", "name": "L", "resources": [{{"kind": "pc",
                    "weekly_minutes": 262, "extra_weekly_minutes": 100,
                    "extra_cost_per_minute": 1}}]}}],
                "regions": [{{"id": "R", "name": "R",
                              "options": [{{"location": "L", "travel_cost": 0}}]}}],
                "demand": [{{"region": "R", "exam": "A", "weekly": [1]}},
                           {{"region": "R", "exam": "B", "weekly": [1]}},
                           {{"region": "R", "exam": "C", "weekly": [1]}},
                           {{"region": "R", "exam": "D", "weekly": [1]}}]}}"#
        );
        let sc = parse_scenario(doc.as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        // 270 minutes against 262 regular: the plan buys 8.
        let bought: f64 = plan.extra_seats.iter().map(|x| x.minutes).sum();
        assert!((bought - 8.0).abs() < 1e-6, "{:?}", plan.extra_seats);
        let cal = check(&plan, &sc);
        let saturday: Vec<(&str, u64)> = cal
            .sessions
            .iter()
            .filter(|s| s.date.weekday() == Weekday::Sat)
            .map(|s| (s.exam.as_str(), s.candidates))
            .collect();
        assert_eq!(saturday, [("A", 1)]);
        assert_eq!(cal.sessions.len(), 4);
    }

    /// The national plan with a surge, where extra minutes are bought for
    /// kinds that several exams share: every bound of `check` holds.
    #[test]
    fn a_national_surge_plan_keeps_the_calendar_bounds() {
        let sc = national(&GenerateOptions {
            weeks: 16,
            surges: vec![crate::generate::Surge {
                exam: "SPREKEN_B1".into(),
                multiplier: 1.6,
                from_week: 10,
                to_week: 15,
            }],
            ..GenerateOptions::default()
        });
        let sc = parse_scenario(&serde_json::to_vec(&sc).unwrap()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        assert!(cal
            .sessions
            .iter()
            .any(|s| s.date.weekday() == Weekday::Sat));
    }

    /// The Easter scenario of the test above, moved so that its week 1 is
    /// 2031-W17: King's Day falls on Saturday 26 April (the 27th is a
    /// Sunday), the Saturday week 1's extra booth minutes would use.
    #[test]
    fn extra_minutes_on_a_closed_saturday_are_reported() {
        let sc = parse_scenario(one_booth("2031-W16").as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        assert!(plan
            .extra_seats
            .iter()
            .any(|x| x.week == 1 && x.minutes > 0.0));
        let cal = check(&plan, &sc);
        assert!(!cal.sessions.iter().any(|s| s.date == ymd(2031, 4, 26)));
        assert_eq!(
            cal.closed_saturdays,
            [ClosedSaturday {
                location: "AMS".into(),
                week: 1,
                date: ymd(2031, 4, 26),
                holiday: "Koningsdag".into(),
                kinds: vec!["speaking_booth".into()],
            }]
        );
        // The candidates the extra minutes were bought for have no day: on
        // the weekdays they would use more than the 450 regular minutes
        // (`check` holds every week's weekdays to those), and registration
        // would sell seats that do not exist.
        let week1: u64 = plan
            .allocation
            .iter()
            .filter(|r| r.week == 1)
            .map(|r| r.candidates)
            .sum();
        assert!(week1 * 45 > 450, "{:?}", plan.allocation);
        assert_eq!(
            cal.unplaced,
            [Unplaced {
                location: "AMS".into(),
                exam: "SPK".into(),
                week: 1,
                candidates: week1 - 450 / 45,
            }]
        );
        // No weekday of week 1 is closed: not crowded by the factor (week 0
        // is, by Easter Monday 14 April).
        assert!(cal.crowded.iter().all(|c| c.week != 1), "{:?}", cal.crowded);
        // A year later the Saturday is open and used.
        let sc = parse_scenario(one_booth("2032-W16").as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let cal = check(&plan, &sc);
        assert!(
            cal.closed_saturdays.is_empty(),
            "{:?}",
            cal.closed_saturdays
        );
        assert!(cal
            .sessions
            .iter()
            .any(|s| s.date.weekday() == Weekday::Sat));
    }

    #[test]
    fn unknown_exams_are_reported_not_dropped() {
        let doc = r#"{
          "format": "examcap/scenario@1", "name": "t",
          "start_week": "2026-W14", "horizon_weeks": 1,
          "exams": [{"id": "SPK", "name": "Spreken B1", "resource": "speaking_booth",
                     "seat_minutes": 45, "target_wait_weeks": 1}],
          "locations": [{"id": "AMS", "name": "Amsterdam",
                         "resources": [{"kind": "speaking_booth", "weekly_minutes": 450,
                                        "extra_weekly_minutes": 0,
                                        "extra_cost_per_minute": 0.9}]}],
          "regions": [{"id": "R", "name": "R",
                       "options": [{"location": "AMS", "travel_cost": 0.5}]}],
          "demand": [{"region": "R", "exam": "SPK", "weekly": [5]}]
        }"#;
        let sc = parse_scenario(doc.as_bytes()).unwrap();
        let mut plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        plan.allocation[0].exam = "LEZEN".into();
        let n = plan.allocation[0].candidates;
        let cal = sessions(&plan, &sc);
        assert!(cal.sessions.is_empty());
        assert_eq!(cal.unplaced.len(), 1);
        assert_eq!(cal.unplaced[0].candidates, n);
    }
}
