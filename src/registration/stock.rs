//! The seat stock of the published plan, held in memory: planned seats per
//! (location, exam, week) from the integral allocation, the seats reserved
//! in them, the region → locations table and the week labels. Quote and
//! Reserve only read and bump arrays here, so they never touch disk
//! or deserialise the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use examcap_solver::calendar;
use examcap_solver::scenario::{iso_week_label, monday_of, parse_iso_week};
use examcap_solver::{Plan, Scenario};

use crate::store::ReservationRecord;

/// A (location, exam, week) cell by id, for cells outside the plan's grid.
/// The week counts from the plan's start week and may lie outside its
/// horizon (negative: before it), since a reservation keeps its calendar
/// week when a plan with another start week is published.
pub type CellKey = (String, String, i64);

/// Labels of one week of the horizon.
#[derive(Debug, Clone)]
pub struct WeekLabel {
    /// `YYYY-Www`.
    pub iso: String,
    /// `YYYY-MM-DD`.
    pub monday: String,
}

/// A cell with a free seat, as offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub location: usize,
    pub week: u32,
    pub free: u32,
}

/// Where a search for a seat may look.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub exam: usize,
    /// Location indexes in the region's option order.
    pub options: &'a [usize],
    /// Only this location (an index among `options`' values).
    pub location: Option<usize>,
    /// Only this week.
    pub week: Option<u32>,
    /// From this week on.
    pub from_week: u32,
    /// The booking date: cells whose sessions have begun are passed over.
    pub today: NaiveDate,
}

/// The date bookings are judged against. A seat in a session that has
/// already been held (or is held today) cannot be sold: the candidate would
/// be told a date in the past, and the reservation would count as demand in
/// a week the next re-plan cannot change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// A fixed date (the config's `today`), for rehearsals and tests.
    pinned: Option<NaiveDate>,
}

impl Clock {
    /// The date in the Netherlands now, from the server's clock.
    pub fn system() -> Clock {
        Clock { pinned: None }
    }

    /// Always `date`.
    pub fn pinned(date: NaiveDate) -> Clock {
        Clock { pinned: Some(date) }
    }

    pub fn today(&self) -> NaiveDate {
        self.pinned.unwrap_or_else(|| dutch_date(Utc::now()))
    }

    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }
}

/// The calendar date in the Netherlands at `now`. Sessions are dated in
/// Dutch local time, so "the day before the first session" must be too: by
/// the UTC date, a cell whose first session is this morning would still be
/// sold between midnight and 01:00 (02:00 in summer), Amsterdam time.
///
/// The Netherlands keeps Central European Time, UTC+1, and summer time,
/// UTC+2, from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
/// last Sunday of October (the EU rule in force since 1996). Written out
/// rather than read from a time-zone database: the server needs no tzdata,
/// and this one rule is all it uses.
pub fn dutch_date(now: DateTime<Utc>) -> NaiveDate {
    let summer = |month| {
        last_sunday(now.year(), month)
            .and_hms_opt(1, 0, 0)
            .map(|t| t.and_utc())
    };
    let offset = match (summer(3), summer(10)) {
        (Some(start), Some(end)) if (start..end).contains(&now) => 2,
        _ => 1,
    };
    (now + Duration::hours(offset)).date_naive()
}

/// The last Sunday of `month` (March or October) in `year`.
fn last_sunday(year: i32, month: u32) -> NaiveDate {
    // The 31st exists in both months.
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or(NaiveDate::MAX);
    let back = last.weekday().days_since(Weekday::Sun);
    last - Duration::days(i64::from(back))
}

/// Planned and reserved seats of one cell, for GetStock and conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellCount {
    pub location: String,
    pub exam: String,
    /// Week index in the plan; 0 when `outside_horizon`.
    pub week: u32,
    /// `YYYY-Www`: what identifies the week across plans.
    pub iso_week: String,
    /// Reservations kept from an earlier plan in a calendar week this plan
    /// does not cover.
    pub outside_horizon: bool,
    pub planned: u32,
    pub reserved: u32,
}

impl CellCount {
    pub fn free(&self) -> u32 {
        self.planned.saturating_sub(self.reserved)
    }
    pub fn conflict(&self) -> u32 {
        self.reserved.saturating_sub(self.planned)
    }
}

/// Why a plan cannot be turned into a stock.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("plan start week {0:?} does not parse")]
    StartWeek(String),
    #[error("plan horizon {0} weeks is out of range")]
    Horizon(usize),
}

/// A cell that plans more candidates than the stock counts (`u32`, as the
/// registration protocol's counts are): selling it would show a number
/// that is not the plan's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{location} {exam} week {week} plans {candidates} candidates, more than the \
     registration stock counts in a cell ({max})",
    max = u32::MAX
)]
pub struct CellTooLarge {
    pub location: String,
    pub exam: String,
    pub week: usize,
    pub candidates: u64,
}

/// The first cell (location, exam, week; its rows summed over regions) of
/// `plan` whose candidates the stock cannot count, if any.
pub fn oversized_cell(plan: &Plan) -> Option<CellTooLarge> {
    let mut cells: HashMap<(&str, &str, usize), u64> = HashMap::new();
    for row in &plan.allocation {
        let n = cells
            .entry((&row.location, &row.exam, row.week))
            .or_insert(0);
        *n = n.saturating_add(row.candidates);
        if *n > u64::from(u32::MAX) {
            return Some(CellTooLarge {
                location: row.location.clone(),
                exam: row.exam.clone(),
                week: row.week,
                candidates: *n,
            });
        }
    }
    None
}

/// The stock of one published plan.
#[derive(Debug, Clone)]
pub struct Stock {
    pub plan_id: String,
    pub horizon: u32,
    /// Monday of week 0: reservations are placed by calendar week.
    start: NaiveDate,
    pub exams: Vec<String>,
    exam_idx: HashMap<String, usize>,
    pub locations: Vec<String>,
    loc_idx: HashMap<String, usize>,
    /// Region id → its option locations, in the scenario's order.
    regions: HashMap<String, Vec<usize>>,
    /// The resource kind of each exam, as an index into the kinds of
    /// `location_kinds`.
    exam_kind: Vec<usize>,
    /// (location, kind) pairs the scenario has: the location holds the
    /// kind. A Reserve that names a location without its exam's kind is a
    /// wrong request, not a sold-out one.
    location_kinds: HashSet<(usize, usize)>,
    /// The (exam, location) pairs that can have seats: the location holds
    /// the exam's kind and is an option of a region registering for the
    /// exam (the x of the model). Each has `horizon` cells, from
    /// `pair × horizon` on. Sparse, so that the stock is no larger than the
    /// model: a dense exams × locations × weeks grid of a scenario with
    /// many idle exams or locations took gigabytes.
    pairs: HashMap<(usize, usize), usize>,
    /// Per exam, its pairs' (location, pair), by location.
    exam_pairs: Vec<Vec<(usize, usize)>>,
    /// `[pair][week]`.
    planned: Vec<u32>,
    reserved: Vec<u32>,
    /// The first dated session of each cell (session calendar).
    first_session: Vec<Option<NaiveDate>>,
    /// Active reservations in cells this plan does not have (a location,
    /// exam or week it does not know): kept and reported as conflicts.
    orphans: BTreeMap<CellKey, u32>,
    pub weeks: Vec<WeekLabel>,
}

/// Where a reservation's seat is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Cell(usize),
    Orphan(CellKey),
}

impl Stock {
    /// The stock of `plan` (solved from `scenario`), with nothing reserved.
    pub fn build<'s>(
        plan_id: &str,
        plan: &Plan,
        scenario: &'s Scenario,
    ) -> Result<Stock, StockError> {
        let start = parse_iso_week(&plan.scenario.start_week)
            .ok_or_else(|| StockError::StartWeek(plan.scenario.start_week.clone()))?;
        let horizon = u32::try_from(plan.scenario.horizon_weeks)
            .ok()
            .filter(|h| (1..=10_000).contains(h))
            .ok_or(StockError::Horizon(plan.scenario.horizon_weeks))?;
        let exams: Vec<String> = scenario.exams.iter().map(|e| e.id.clone()).collect();
        let locations: Vec<String> = scenario.locations.iter().map(|l| l.id.clone()).collect();
        let exam_idx = index(&exams);
        let loc_idx = index(&locations);
        let regions: HashMap<String, Vec<usize>> = scenario
            .regions
            .iter()
            .map(|r| {
                let opts = r
                    .options
                    .iter()
                    .filter_map(|o| loc_idx.get(&o.location).copied())
                    .collect();
                (r.id.clone(), opts)
            })
            .collect();
        let weeks = (0..horizon)
            .map(|w| {
                // Past the calendar's end: the horizon is too long for it.
                let monday =
                    monday_of(start, w).ok_or(StockError::Horizon(plan.scenario.horizon_weeks))?;
                Ok(WeekLabel {
                    iso: iso_week_label(monday),
                    monday: monday.format("%Y-%m-%d").to_string(),
                })
            })
            .collect::<Result<_, StockError>>()?;
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        let mut kind_of = |k: &'s str| {
            let n = kinds.len();
            *kinds.entry(k).or_insert(n)
        };
        let exam_kind: Vec<usize> = scenario
            .exams
            .iter()
            .map(|e| kind_of(&e.resource))
            .collect();
        let location_kinds: HashSet<(usize, usize)> = scenario
            .locations
            .iter()
            .enumerate()
            .flat_map(|(l, loc)| loc.resources.iter().map(move |r| (l, r.kind.as_str())))
            .map(|(l, k)| (l, kind_of(k)))
            .collect();
        // The (region, exam)s that register, as the model's streams.
        let registering: BTreeSet<(&str, &str)> = scenario
            .demand
            .iter()
            .map(|d| (d.region.as_str(), d.exam.as_str()))
            .chain(
                scenario
                    .backlog
                    .iter()
                    .map(|b| (b.region.as_str(), b.exam.as_str())),
            )
            .collect();
        let mut exam_pairs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); exams.len()];
        let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
        for (region, exam) in &registering {
            let (Some(opts), Some(&e)) = (regions.get(*region), exam_idx.get(*exam)) else {
                continue;
            };
            for &l in opts {
                if location_kinds.contains(&(l, exam_kind[e])) {
                    let n = pairs.len();
                    pairs.entry((e, l)).or_insert_with(|| {
                        exam_pairs[e].push((l, n));
                        n
                    });
                }
            }
        }
        for p in &mut exam_pairs {
            p.sort_unstable();
        }
        let n = pairs.len() * horizon as usize;
        let mut stock = Stock {
            plan_id: plan_id.to_string(),
            horizon,
            start,
            exams,
            exam_idx,
            locations,
            loc_idx,
            regions,
            exam_kind,
            location_kinds,
            pairs,
            exam_pairs,
            planned: vec![0; n],
            reserved: vec![0; n],
            first_session: vec![None; n],
            orphans: BTreeMap::new(),
            weeks,
        };
        for row in &plan.allocation {
            let Ok(week) = u32::try_from(row.week) else {
                continue;
            };
            if let Some(i) = stock.cell(&row.location, &row.exam, week) {
                // Publish refuses a plan with a cell past u32 counts
                // ([`oversized_cell`]); one published before that check
                // still loads, its cell counted up to u32::MAX.
                let add = u32::try_from(row.candidates).unwrap_or(u32::MAX);
                stock.planned[i] = stock.planned[i].saturating_add(add);
            }
        }
        // The session calendar dates each cell; its first session is what a
        // candidate is told. Sessions come sorted by location then date.
        let cal = calendar::sessions(plan, scenario);
        // Seats the calendar finds no day for (extra minutes whose Saturday
        // is a holiday, at a location without regular ones) are not sold.
        for u in &cal.unplaced {
            let week = u32::try_from(u.week).ok();
            if let Some(i) = week.and_then(|w| stock.cell(&u.location, &u.exam, w)) {
                let lost = u32::try_from(u.candidates).unwrap_or(u32::MAX);
                stock.planned[i] = stock.planned[i].saturating_sub(lost);
            }
        }
        for s in cal.sessions {
            let week = (s.date - start).num_days().div_euclid(7);
            let Ok(week) = u32::try_from(week) else {
                continue;
            };
            if let Some(i) = stock.cell(&s.location, &s.exam, week) {
                let f = &mut stock.first_session[i];
                if f.is_none_or(|d| s.date < d) {
                    *f = Some(s.date);
                }
            }
        }
        Ok(stock)
    }

    /// The index of a cell, if its exam and location are a pair that can
    /// have seats (see [`Stock::pairs`]) and its week is in the horizon.
    fn cell_idx(&self, exam: usize, location: usize, week: u32) -> Option<usize> {
        let pair = *self.pairs.get(&(exam, location))?;
        (week < self.horizon).then(|| pair * self.horizon as usize + week as usize)
    }

    /// The index of a cell by ids; `None` outside this plan's grid.
    pub fn cell(&self, location: &str, exam: &str, week: u32) -> Option<usize> {
        let e = *self.exam_idx.get(exam)?;
        let l = *self.loc_idx.get(location)?;
        self.cell_idx(e, l, week)
    }

    pub fn exam(&self, id: &str) -> Option<usize> {
        self.exam_idx.get(id).copied()
    }

    pub fn location(&self, id: &str) -> Option<usize> {
        self.loc_idx.get(id).copied()
    }

    /// Whether `location` has the resource kind `exam` is taken in.
    pub fn holds(&self, exam: usize, location: usize) -> bool {
        self.location_kinds
            .contains(&(location, self.exam_kind[exam]))
    }

    /// The option locations of a region.
    pub fn options(&self, region: &str) -> Option<&[usize]> {
        self.regions.get(region).map(Vec::as_slice)
    }

    /// Seats planned in a cell: 0 where the plan can have none.
    pub fn planned(&self, exam: usize, location: usize, week: u32) -> u32 {
        self.cell_idx(exam, location, week)
            .map_or(0, |i| self.planned[i])
    }

    pub fn free(&self, exam: usize, location: usize, week: u32) -> u32 {
        self.cell_idx(exam, location, week)
            .map_or(0, |i| self.planned[i].saturating_sub(self.reserved[i]))
    }

    pub fn first_session(&self, exam: usize, location: usize, week: u32) -> Option<NaiveDate> {
        self.first_session[self.cell_idx(exam, location, week)?]
    }

    /// Whether a listed cell no longer sells on `today`: a cell of the
    /// grid by [`Stock::bookable`], any other (an orphan) once its calendar
    /// week has begun.
    pub fn closed(&self, c: &CellCount, today: NaiveDate) -> bool {
        match (self.exam(&c.exam), self.location(&c.location)) {
            (Some(e), Some(l)) if !c.outside_horizon && c.week < self.horizon => {
                !self.bookable(e, l, c.week, today)
            }
            _ => parse_iso_week(&c.iso_week).is_none_or(|monday| today >= monday),
        }
    }

    /// Whether a cell can still be booked on `today`: until the day before
    /// its first session, or before its week's Monday when no session is
    /// dated.
    pub fn bookable(&self, exam: usize, location: usize, week: u32, today: NaiveDate) -> bool {
        let begins =
            (self.first_session(exam, location, week)).or_else(|| monday_of(self.start, week));
        begins.is_none_or(|b| today < b)
    }

    /// The week of this plan that holds a reservation's calendar week (its
    /// Monday), which may lie outside the horizon. A reservation taken from
    /// an earlier plan keeps its date, whatever that plan's start week was.
    pub fn week_of(&self, rec: &ReservationRecord) -> i64 {
        match NaiveDate::parse_from_str(&rec.monday, "%Y-%m-%d") {
            Ok(monday) => (monday - self.start).num_days().div_euclid(7),
            // Every record is written with its Monday; an unreadable one
            // can only be counted where its own plan put it.
            Err(_) => i64::from(rec.week),
        }
    }

    /// Where a reservation is counted: its cell in this plan, by calendar
    /// week, or an orphan cell when the plan lacks its location, exam or week.
    pub fn place(&self, rec: &ReservationRecord) -> Place {
        self.place_at(&rec.location, &rec.ask.exam, self.week_of(rec))
    }

    /// Where a reservation in (location, exam, week of this plan) is counted.
    pub fn place_at(&self, location: &str, exam: &str, week: i64) -> Place {
        match u32::try_from(week)
            .ok()
            .and_then(|w| self.cell(location, exam, w))
        {
            Some(i) => Place::Cell(i),
            None => Place::Orphan((location.to_string(), exam.to_string(), week)),
        }
    }

    /// `YYYY-Www` of week `week` of this plan (any week, in or out of it).
    fn iso_label(&self, week: i64) -> String {
        if let Some(label) = usize::try_from(week).ok().and_then(|w| self.weeks.get(w)) {
            return label.iso.clone();
        }
        monday_of(self.start, week)
            .map(iso_week_label)
            .unwrap_or_default()
    }

    /// Counts one more active reservation, whatever the seats: used when
    /// loading reservations, which may exceed a re-published plan.
    pub fn count(&mut self, place: Place) {
        match place {
            Place::Cell(i) => self.reserved[i] += 1,
            Place::Orphan(k) => *self.orphans.entry(k).or_default() += 1,
        }
    }

    /// Returns the seat of a cancelled reservation.
    pub fn release(&mut self, place: Place) {
        match place {
            Place::Cell(i) => self.reserved[i] = self.reserved[i].saturating_sub(1),
            Place::Orphan(k) => {
                if let Some(n) = self.orphans.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.orphans.remove(&k);
                    }
                }
            }
        }
    }

    /// Takes a seat of a cell if one is free; never exceeds the planned seats.
    pub fn take(&mut self, exam: usize, location: usize, week: u32) -> bool {
        let Some(i) = self.cell_idx(exam, location, week) else {
            return false;
        };
        if self.reserved[i] < self.planned[i] {
            self.reserved[i] += 1;
            true
        } else {
            false
        }
    }

    /// Cells with a free seat matching `q`, earliest week first, then in
    /// the region's option order; at most `max`.
    pub fn slots(&self, q: &Search<'_>, max: usize) -> Vec<Slot> {
        let mut out = Vec::new();
        let weeks = match q.week {
            Some(w) if w < self.horizon => w..w + 1,
            Some(_) => 0..0,
            None => q.from_week.min(self.horizon)..self.horizon,
        };
        for week in weeks {
            for &l in q.options {
                if q.location.is_some_and(|x| x != l) {
                    continue;
                }
                let free = self.free(q.exam, l, week);
                if free > 0 && self.bookable(q.exam, l, week, q.today) {
                    out.push(Slot {
                        location: l,
                        week,
                        free,
                    });
                    if out.len() >= max {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// The first week ≥ `from_week` in which any of `options` has planned
    /// seats for the exam (free or not) that can still be booked on `today`.
    pub fn next_week_with_seats(
        &self,
        exam: usize,
        options: &[usize],
        from_week: u32,
        today: NaiveDate,
    ) -> Option<u32> {
        (from_week..self.horizon).find(|&w| {
            options
                .iter()
                .any(|&l| self.planned(exam, l, w) > 0 && self.bookable(exam, l, w, today))
        })
    }

    /// Cells of `exam` with planned or reserved seats, by location id then
    /// week, within `weeks` and at `location` if given. Orphan cells outside
    /// the horizon are in no week range: [`Stock::conflicts`] lists them.
    pub fn cells(
        &self,
        exam: &str,
        weeks: std::ops::RangeInclusive<u32>,
        location: Option<&str>,
    ) -> Vec<CellCount> {
        let mut out = self.grid_cells(exam, weeks.clone(), location);
        // Orphans in the plan's weeks only (their location or exam left the
        // plan); those outside its weeks are Publish's conflicts, not stock.
        let horizon = 0..i64::from(self.horizon);
        let weeks = i64::from(*weeks.start())..=i64::from(*weeks.end());
        out.extend(self.orphan_cells(|(l, e, w)| {
            e == exam && horizon.contains(w) && weeks.contains(w) && location.is_none_or(|x| x == l)
        }));
        out.sort_by(|a, b| (&a.location, a.week).cmp(&(&b.location, b.week)));
        out
    }

    /// The cells of the plan's own grid with planned or reserved seats.
    fn grid_cells(
        &self,
        exam: &str,
        weeks: std::ops::RangeInclusive<u32>,
        location: Option<&str>,
    ) -> Vec<CellCount> {
        let mut out = Vec::new();
        let Some(e) = self.exam(exam) else {
            return out;
        };
        for &(l, pair) in &self.exam_pairs[e] {
            let lid = &self.locations[l];
            if location.is_some_and(|x| x != lid) {
                continue;
            }
            for w in weeks.clone() {
                if w >= self.horizon {
                    break;
                }
                let i = pair * self.horizon as usize + w as usize;
                if self.planned[i] > 0 || self.reserved[i] > 0 {
                    out.push(CellCount {
                        location: lid.clone(),
                        exam: exam.to_string(),
                        week: w,
                        iso_week: self.weeks[w as usize].iso.clone(),
                        outside_horizon: false,
                        planned: self.planned[i],
                        reserved: self.reserved[i],
                    });
                }
            }
        }
        out
    }

    /// Every cell with more reservations than planned seats: those of the
    /// grid, then every orphan cell (a reservation this plan has no seat
    /// for), whatever its exam or week.
    pub fn conflicts(&self) -> Vec<CellCount> {
        let mut out: Vec<CellCount> = self
            .exams
            .iter()
            .flat_map(|e| self.grid_cells(e, 0..=u32::MAX, None))
            .filter(|c| c.conflict() > 0)
            .collect();
        out.extend(self.orphan_cells(|_| true));
        out
    }

    /// The orphan cells that `keep` selects, as counts with no seats.
    fn orphan_cells<'a>(
        &'a self,
        keep: impl Fn(&CellKey) -> bool + 'a,
    ) -> impl Iterator<Item = CellCount> + 'a {
        self.orphans
            .iter()
            .filter(move |(k, _)| keep(k))
            .map(|((l, e, w), n)| {
                let inside = u32::try_from(*w).ok().filter(|&w| w < self.horizon);
                CellCount {
                    location: l.clone(),
                    exam: e.clone(),
                    week: inside.unwrap_or(0),
                    iso_week: self.iso_label(*w),
                    outside_horizon: inside.is_none(),
                    planned: 0,
                    reserved: *n,
                }
            })
    }
}

fn index(ids: &[String]) -> HashMap<String, usize> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};

    fn tiny() -> (Plan, Scenario) {
        let sc = parse_scenario(include_bytes!("../../tests/fixtures/tiny.json")).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        (plan, sc)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The stock holds cells only where the model has an x: a scenario of
    /// 200 exams and 200 locations of one kind over 520 weeks, of which one
    /// region registers for one exam at one location, holds 520 cells (a
    /// dense grid held 20.8 million, and a 200 KB scenario of 1000 × 1000
    /// took 2 GB at Publish and at every restart). The idle cells answer
    /// as cells without seats.
    #[test]
    fn the_stock_holds_only_the_cells_a_region_can_book() {
        let n = 200;
        let weeks = 520;
        let booth = serde_json::json!([{"kind": "booth", "weekly_minutes": 600,
            "extra_weekly_minutes": 0, "extra_cost_per_minute": 0}]);
        let v = serde_json::json!({
            "format": "examcap/scenario@1", "name": "idle", "start_week": "2027-W01",
            "horizon_weeks": weeks,
            "exams": (0..n).map(|i| serde_json::json!({"id": format!("E{i}"), "name": "e",
                "resource": "booth", "seat_minutes": 60, "target_wait_weeks": 2}))
                .collect::<Vec<_>>(),
            "locations": (0..n).map(|i| serde_json::json!({"id": format!("L{i}"), "name": "l",
                "resources": booth.clone()})).collect::<Vec<_>>(),
            "regions": [{"id": "R", "name": "r", "options": [{"location": "L7", "travel_cost": 0}]}],
            "demand": [{"region": "R", "exam": "E3", "weekly": vec![2; weeks]}]
        });
        let sc = parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let s = Stock::build("p", &plan, &sc).unwrap();
        assert_eq!(s.planned.len(), weeks);
        assert_eq!(s.reserved.len(), weeks);
        assert_eq!(s.first_session.len(), weeks);
        let (e3, e4) = (s.exam("E3").unwrap(), s.exam("E4").unwrap());
        let (l7, l8) = (s.location("L7").unwrap(), s.location("L8").unwrap());
        assert_eq!(s.planned(e3, l7, 5), 2);
        assert!(s.first_session(e3, l7, 5).is_some());
        // Every location holds the kind: a Reserve there is no wrong
        // request, it finds no seat.
        assert!(s.holds(e4, l8));
        assert_eq!((s.planned(e4, l8, 5), s.free(e4, l8, 5)), (0, 0));
        assert_eq!(s.first_session(e4, l8, 5), None);
        let mut s = s;
        assert!(!s.take(e4, l8, 5));
        assert!(s.take(e3, l7, 5));
        assert_eq!(s.free(e3, l7, 5), 1);
        assert_eq!(s.cell("L8", "E4", 5), None);
        assert_eq!(s.cells("E3", 5..=5, None).len(), 1);
    }

    /// A cell past the stock's u32 counts is found, summed over its
    /// regions' rows (Publish refuses the plan on it).
    #[test]
    fn a_cell_the_stock_cannot_count_is_refused() {
        let (mut plan, sc) = tiny();
        assert_eq!(oversized_cell(&plan), None);
        Stock::build("p", &plan, &sc).unwrap();
        let mut row = plan.allocation[0].clone();
        row.candidates = 3_000_000_000;
        let mut other = row.clone();
        other.region = "ELSEWHERE".into();
        other.candidates = 2_000_000_000;
        plan.allocation.extend([row.clone(), other]);
        let want = CellTooLarge {
            location: row.location.clone(),
            exam: row.exam.clone(),
            week: row.week,
            candidates: 5_000_000_000 + plan.allocation[0].candidates,
        };
        assert_eq!(oversized_cell(&plan), Some(want));
        // Such a plan published before the check still loads.
        let s = Stock::build("p", &plan, &sc).unwrap();
        let (e, l) = (
            s.exam(&row.exam).unwrap(),
            s.location(&row.location).unwrap(),
        );
        assert_eq!(s.planned(e, l, row.week as u32), u32::MAX);
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// UTR has only extra booth minutes, for Saturdays; in 2031-W17 its
    /// Saturday is King's Day. The calendar finds no day for UTR's
    /// candidates that week, so the stock does not sell those seats (it
    /// sold them, dated on the Monday, a day UTR has no minutes for).
    #[test]
    fn seats_the_calendar_finds_no_day_for_are_not_sold() {
        let doc = include_bytes!("../../tests/fixtures/saturday_only.json");
        let sc = parse_scenario(doc).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let at = |week: usize| -> u32 {
            plan.allocation
                .iter()
                .filter(|r| r.location == "UTR" && r.week == week)
                .map(|r| r.candidates as u32)
                .sum()
        };
        assert!(at(0) > 0 && at(1) > 0, "{:?}", plan.allocation);
        let stock = Stock::build("p", &plan, &sc).unwrap();
        let (e, utr) = (stock.exam("SPK").unwrap(), stock.location("UTR").unwrap());
        // Week 0 sells its Saturday, 19 April; week 1 sells nothing.
        assert_eq!(stock.planned(e, utr, 0), at(0));
        assert_eq!(stock.first_session(e, utr, 0), Some(date("2031-04-19")));
        assert_eq!(stock.planned(e, utr, 1), 0);
        assert_eq!(stock.free(e, utr, 1), 0);
        assert_eq!(stock.first_session(e, utr, 1), None);
    }

    /// AMS has 450 regular booth minutes (ten candidates) and buys extra
    /// ones in week 1, for Saturday 26 April 2031: King's Day. The stock
    /// sells the ten the weekdays hold, not the Saturday's on top (it sold
    /// them on weekdays that have no minutes for them).
    #[test]
    fn a_holiday_saturdays_seats_are_not_sold_beside_regular_ones() {
        let doc = include_str!("../../solver/tests/fixtures/one_booth.json")
            .replace("2026-W14", "2031-W16");
        let sc = parse_scenario(doc.as_bytes()).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        let week1: u32 = plan
            .allocation
            .iter()
            .filter(|r| r.week == 1)
            .map(|r| r.candidates as u32)
            .sum();
        assert!(week1 > 10, "{:?}", plan.allocation);
        let stock = Stock::build("p", &plan, &sc).unwrap();
        let (e, ams) = (stock.exam("SPK").unwrap(), stock.location("AMS").unwrap());
        assert_eq!(stock.planned(e, ams, 1), 10);
        assert_eq!(stock.first_session(e, ams, 1), Some(date("2031-04-21")));
    }

    #[test]
    fn the_dutch_date_turns_at_local_midnight_in_winter_and_summer() {
        // Winter, UTC+1: Amsterdam's midnight is 23:00 UTC.
        assert_eq!(dutch_date(utc("2027-01-04T22:59:59Z")), date("2027-01-04"));
        assert_eq!(dutch_date(utc("2027-01-04T23:00:00Z")), date("2027-01-05"));
        // Summer, UTC+2: 22:00 UTC.
        assert_eq!(dutch_date(utc("2027-06-01T21:59:59Z")), date("2027-06-01"));
        assert_eq!(dutch_date(utc("2027-06-01T22:00:00Z")), date("2027-06-02"));
        // The year turns an hour before UTC's.
        assert_eq!(dutch_date(utc("2027-12-31T23:30:00Z")), date("2028-01-01"));
    }

    #[test]
    fn summer_time_runs_from_the_last_sunday_of_march_to_that_of_october() {
        // 2027: Sunday 28 March and Sunday 31 October, 01:00 UTC each.
        assert_eq!(last_sunday(2027, 3), date("2027-03-28"));
        assert_eq!(last_sunday(2027, 10), date("2027-10-31"));
        // 2026: March 29, October 25; a month ending on a Sunday is its own.
        assert_eq!(last_sunday(2026, 3), date("2026-03-29"));
        assert_eq!(last_sunday(2026, 10), date("2026-10-25"));
        // The evening before summer time starts is still winter: 22:30 UTC
        // is 23:30 local on Saturday 27 March.
        assert_eq!(dutch_date(utc("2027-03-27T22:30:00Z")), date("2027-03-27"));
        // 22:30 UTC on Sunday 28 March is 00:30 local on Monday (summer).
        assert_eq!(dutch_date(utc("2027-03-28T22:30:00Z")), date("2027-03-29"));
        // Saturday 30 October, 22:30 UTC: still summer, 00:30 on Sunday.
        assert_eq!(dutch_date(utc("2027-10-30T22:30:00Z")), date("2027-10-31"));
        // Sunday 31 October, 22:30 UTC: winter again, 23:30 on Sunday.
        assert_eq!(dutch_date(utc("2027-10-31T22:30:00Z")), date("2027-10-31"));
    }

    #[test]
    fn the_counter_never_exceeds_the_planned_seats() {
        let (plan, sc) = tiny();
        let mut s = Stock::build("p", &plan, &sc).unwrap();
        let (e, l) = (s.exam("SPK").unwrap(), s.location("AMS").unwrap());
        let planned = s.planned(e, l, 0);
        let expected: u64 = plan
            .allocation
            .iter()
            .filter(|r| r.week == 0)
            .map(|r| r.candidates)
            .sum();
        assert_eq!(u64::from(planned), expected);
        assert!(planned > 0);
        for _ in 0..planned {
            assert!(s.take(e, l, 0));
        }
        assert!(!s.take(e, l, 0));
        assert_eq!(s.free(e, l, 0), 0);
        s.release(Place::Cell(s.cell("AMS", "SPK", 0).unwrap()));
        assert_eq!(s.free(e, l, 0), 1);
        assert!(s.take(e, l, 0));
        // Counting past the seats (reservations loaded after a re-publish)
        // shows up as a conflict, never as negative free seats.
        s.count(s.place_at("AMS", "SPK", 0));
        assert_eq!(s.free(e, l, 0), 0);
        let c = s.conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].week, c[0].conflict()), (0, 1));
        s.count(s.place_at("UTR", "SPK", 1));
        assert_eq!(s.cells("SPK", 1..=1, Some("UTR"))[0].conflict(), 1);
    }

    #[test]
    fn weeks_are_labelled_from_the_start_week() {
        let (plan, sc) = tiny();
        let s = Stock::build("p", &plan, &sc).unwrap();
        assert_eq!(s.weeks[0].iso, "2026-W14");
        assert_eq!(s.weeks[0].monday, "2026-03-30");
        assert_eq!(s.weeks[2].iso, "2026-W16");
        // Week 1 of 2026-W14 holds Easter Monday (6 April): the first
        // session is on Tuesday.
        let (e, l) = (s.exam("SPK").unwrap(), s.location("AMS").unwrap());
        assert!(s.planned(e, l, 1) > 0);
        assert_eq!(
            s.first_session(e, l, 1),
            NaiveDate::from_ymd_opt(2026, 4, 7)
        );
    }

    #[test]
    fn a_cell_is_sold_until_the_day_before_its_first_session() {
        let (plan, sc) = tiny();
        let s = Stock::build("p", &plan, &sc).unwrap();
        let (e, l) = (s.exam("SPK").unwrap(), s.location("AMS").unwrap());
        let day = |d| NaiveDate::from_ymd_opt(2026, 4, d).unwrap();
        // Week 1's first session is Tuesday 7 April (Easter Monday is
        // closed): its Monday still sells, its Tuesday does not.
        assert!(s.bookable(e, l, 1, day(6)));
        assert!(!s.bookable(e, l, 1, day(7)));
        assert!(!s.bookable(e, l, 0, day(6)));
        let options = [l];
        let q = |today| Search {
            exam: e,
            options: &options,
            location: None,
            week: None,
            from_week: 0,
            today,
        };
        let weeks = |today| -> Vec<u32> { s.slots(&q(today), 10).iter().map(|x| x.week).collect() };
        let sunday_before = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(weeks(sunday_before), vec![0, 1, 2]);
        assert_eq!(weeks(day(6)), vec![1, 2]);
        assert_eq!(weeks(day(7)), vec![2]);
        assert_eq!(s.next_week_with_seats(e, &options, 0, day(7)), Some(2));
        // A cell without a dated session (nothing planned in it) closes
        // when its week begins.
        let mut bare = plan.clone();
        bare.allocation.retain(|r| r.week != 2);
        let s = Stock::build("p", &bare, &sc).unwrap();
        assert_eq!(s.first_session(e, l, 2), None);
        assert!(s.bookable(e, l, 2, day(12)));
        assert!(!s.bookable(e, l, 2, day(13)));
    }
}
