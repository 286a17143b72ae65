//! Rescheduling after a surge (DESIGN.md "Rescheduling after a surge"):
//! which exams a shock touches, and the re-plan of a published plan that
//! re-optimises only their blocks, keeps the first F weeks as published
//! and (σ > 0) prefers moving few candidates.

use crate::model::{Instance, Replan};
use crate::plan::{
    run_pipeline, AllocationRow, ExtraRaters, ExtraSeats, Plan, PlanError, PlanOptions,
    PlanProgress, Restriction,
};
use crate::rounding::{self, Allocation, Cell};
use crate::scenario::Scenario;
use crate::validate::{Num, ValidationErrors};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Exams a shock touches: those whose demand or backlog differs, those
/// using a resource kind at a location whose capacity or unavailability
/// differs, those of a rater pool that differs; then, one step, every exam
/// sharing a resource kind or rater pool with one of those.
pub fn touched_exams(base: &Scenario, shocked: &Scenario) -> BTreeSet<String> {
    touched_by(base, shocked, &BTreeSet::new())
}

/// [`touched_exams`], with `named` (the exams the shocks name, say a surge
/// of SPREKEN_B1) touched even where their numbers do not change: a ×1.6
/// on weeks without demand still asks for that exam to be re-planned.
pub fn touched_by(
    base: &Scenario,
    shocked: &Scenario,
    named: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut direct: BTreeSet<String> = shocked
        .exams
        .iter()
        .filter(|e| named.contains(&e.id))
        .map(|e| e.id.clone())
        .collect();
    // Demand and backlog per exam, as (region, values) lists.
    let demand = |sc: &Scenario, exam: &str| {
        let mut d: Vec<(String, Vec<u64>)> = sc
            .demand
            .iter()
            .filter(|d| d.exam == exam)
            .map(|d| {
                (
                    d.region.clone(),
                    d.weekly.iter().map(|v| v.to_bits()).collect(),
                )
            })
            .collect();
        d.sort();
        let mut b: Vec<(String, i64, u64)> = sc
            .backlog
            .iter()
            .filter(|b| b.exam == exam)
            .map(|b| (b.region.clone(), b.registered_week, b.candidates.to_bits()))
            .collect();
        b.sort();
        (d, b)
    };
    let exams: BTreeSet<&str> = base
        .exams
        .iter()
        .chain(&shocked.exams)
        .map(|e| e.id.as_str())
        .collect();
    for &e in &exams {
        if demand(base, e) != demand(shocked, e) {
            direct.insert(e.to_string());
        }
    }
    // Changed (location, kind) capacities and changed pools.
    let mut kinds_changed: BTreeSet<String> = BTreeSet::new();
    let locs = |sc: &Scenario| -> HashMap<String, crate::scenario::Location> {
        sc.locations
            .iter()
            .map(|l| (l.id.clone(), l.clone()))
            .collect()
    };
    let (lb, ls) = (locs(base), locs(shocked));
    let ids: BTreeSet<&String> = lb.keys().chain(ls.keys()).collect();
    for id in ids {
        let (a, b) = (lb.get(id), ls.get(id));
        let kinds_of = |l: Option<&crate::scenario::Location>| -> Vec<String> {
            l.map_or(Vec::new(), |l| {
                l.resources.iter().map(|r| r.kind.clone()).collect()
            })
        };
        let all: BTreeSet<String> = kinds_of(a).into_iter().chain(kinds_of(b)).collect();
        let unavailable_differs = a.map(|l| &l.unavailable) != b.map(|l| &l.unavailable);
        for k in all {
            let res = |l: Option<&crate::scenario::Location>| {
                l.and_then(|l| l.resources.iter().find(|r| r.kind == k).cloned())
            };
            if unavailable_differs || res(a) != res(b) {
                kinds_changed.insert(k);
            }
        }
    }
    let pools = |sc: &Scenario| -> HashMap<String, crate::scenario::RatingPool> {
        sc.rating_pools
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect()
    };
    let (pb, ps) = (pools(base), pools(shocked));
    let pools_changed: BTreeSet<&String> = pb
        .keys()
        .chain(ps.keys())
        .filter(|id| pb.get(*id) != ps.get(*id))
        .collect();
    for e in &shocked.exams {
        let pool_changed = e
            .rating_pool
            .as_ref()
            .is_some_and(|p| pools_changed.contains(p));
        if kinds_changed.contains(&e.resource) || pool_changed {
            direct.insert(e.id.clone());
        }
    }
    // One step: exams sharing a kind or pool with a directly touched one.
    let mut touched = direct.clone();
    for a in shocked.exams.iter().filter(|e| direct.contains(&e.id)) {
        for b in &shocked.exams {
            let share_pool = a.rating_pool.is_some() && a.rating_pool == b.rating_pool;
            if a.resource == b.resource || share_pool {
                touched.insert(b.id.clone());
            }
        }
    }
    touched
}

/// Why a reschedule cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RescheduleError {
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    /// The published plan names what its scenario does not have (see
    /// [`validate_published`]).
    #[error("the published plan does not fit the scenario: {0}")]
    Published(ValidationErrors),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl From<ValidationErrors> for RescheduleError {
    fn from(e: ValidationErrors) -> Self {
        RescheduleError::Plan(PlanError::Invalid(e))
    }
}

/// A frozen week the shocked scenario cannot honour: invitations for it
/// are out, yet the shock took away the capacity or the candidates they
/// were sent to. Found before any LP is built, so the caller learns which
/// week and which resource instead of a bare "infeasible".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FreezeError {
    #[error(
        "frozen week {week}: the published plan uses {used} {kind} minutes at {location}, \
         but the shocked scenario has only {capacity} (regular + extra); freeze fewer weeks"
    )]
    Seats {
        week: usize,
        location: String,
        kind: String,
        used: f64,
        capacity: f64,
    },
    #[error(
        "frozen week {week}: the published plan uses {used} minutes of rater pool {pool}, \
         but the shocked scenario has only {capacity} (regular + extra); freeze fewer weeks"
    )]
    Raters {
        week: usize,
        pool: String,
        used: f64,
        capacity: f64,
    },
    #[error(
        "frozen week {week}: the published plan has examined {examined} {exam} candidates \
         of region {region} by then, but the shocked scenario registers only {registered}; \
         freeze fewer weeks"
    )]
    Demand {
        week: usize,
        region: String,
        exam: String,
        examined: f64,
        registered: f64,
    },
}

/// Relative slack on the capacity bounds of [`validate_published`]: a
/// plan's extra minutes are LP values, equal to the bound up to rounding.
const PUBLISHED_SLACK: f64 = 1e-9;

/// Checks that `published` fits `sc`, field by field: one row per cell;
/// every allocation row names a known region and exam, one of the region's locations that has
/// the exam's resource kind, a week inside the horizon, and no more
/// candidates than that location's regular + extra minutes of the kind
/// could ever seat in a week; every extra-capacity row names a known
/// location and kind (or rating pool), a week inside the horizon, and
/// minutes in [0, extra_weekly_minutes]. The bounds are the scenario's raw
/// weekly minutes, before unavailability factors, which a capacity shock
/// only lowers: so a plan this crate solved for `sc`, or for the scenario
/// `sc` is a shock of, always passes. A plan file handed to the offline CLI
/// may not, and a row that does not fit would otherwise be dropped or
/// distort the repair without a word.
pub fn validate_published(sc: &Scenario, published: &Plan) -> Result<(), ValidationErrors> {
    validate_rows(sc, published, false)
}

/// [`validate_published`]; with `factored`, extra minutes are bounded by
/// the week's extra capacity (extra_weekly_minutes times its availability
/// factor), which holds only against the scenario the plan was solved for.
fn validate_rows(sc: &Scenario, published: &Plan, factored: bool) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    // The header dates the rows (calendar, report, registration stock):
    // an edited one would shift every date while the rows still fit.
    if published.scenario.start_week != sc.start_week {
        errs.push_at(
            "scenario.start_week".to_string(),
            format_args!(
                "the plan says {:?}, its scenario starts in {}",
                published
                    .scenario
                    .start_week
                    .chars()
                    .take(40)
                    .collect::<String>(),
                sc.start_week
            ),
        );
    }
    if published.scenario.horizon_weeks != sc.horizon_weeks {
        errs.push_at(
            "scenario.horizon_weeks".to_string(),
            format_args!(
                "the plan says {}, its scenario has {}",
                published.scenario.horizon_weeks, sc.horizon_weeks
            ),
        );
    }
    let weeks = sc.horizon_weeks;
    let over = |x: f64, bound: f64| x > bound + PUBLISHED_SLACK * bound.max(1.0);
    // Paths and messages are formatted only for rows that fail: a national
    // plan has ~20k rows and this runs before every first answer.
    let week_ok = |errs: &mut ValidationErrors, path: &dyn Fn() -> String, week: usize| {
        if week >= weeks {
            errs.push_at(
                format!("{}.week", path()),
                format_args!("must be below the horizon of {weeks} weeks, got {week}"),
            );
        }
    };
    // A row's minutes and lp_minutes, against the extra there is that
    // week: extra_weekly_minutes times the week's availability factor.
    let minutes_ok = |errs: &mut ValidationErrors,
                      path: &dyn Fn() -> String,
                      row: (f64, f64),
                      extra: f64,
                      unavailable: &[crate::scenario::Unavailable],
                      week: usize| {
        let factor = if factored {
            crate::scenario::availability(unavailable, week)
        } else {
            1.0
        };
        let bound = extra * factor;
        for (field, m) in [("minutes", row.0), ("lp_minutes", row.1)] {
            if !(m.is_finite() && m >= 0.0) || over(m, bound) {
                let there = if factor < 1.0 {
                    format!(
                        "the extra_weekly_minutes there, {} × the factor {} of week {week}",
                        Num(extra),
                        Num(factor)
                    )
                } else {
                    "the extra_weekly_minutes there".to_string()
                };
                errs.push_at(
                    format!("{}.{field}", path()),
                    format_args!(
                        "must be a number in [0, {}] ({there}), got {}",
                        Num(bound),
                        Num(m)
                    ),
                );
            }
        }
    };
    let regions: HashMap<&str, HashSet<&str>> = sc
        .regions
        .iter()
        .map(|r| {
            let options = r.options.iter().map(|o| o.location.as_str()).collect();
            (r.id.as_str(), options)
        })
        .collect();
    let exams: HashMap<&str, &crate::scenario::Exam> =
        sc.exams.iter().map(|e| (e.id.as_str(), e)).collect();
    // Per location and kind: (regular, extra) raw weekly minutes.
    let locations: HashMap<&str, HashMap<&str, (f64, f64)>> = sc
        .locations
        .iter()
        .map(|l| {
            let kinds = l
                .resources
                .iter()
                .map(|k| (k.kind.as_str(), (k.weekly_minutes, k.extra_weekly_minutes)))
                .collect();
            (l.id.as_str(), kinds)
        })
        .collect();
    let unavailable: HashMap<&str, &[crate::scenario::Unavailable]> = sc
        .locations
        .iter()
        .map(|l| (l.id.as_str(), l.unavailable.as_slice()))
        .collect();
    // One row per (region, exam, location, week), as a plan is written,
    // and as `extra_seats` and `extra_raters` are held to below.
    let mut cells: HashMap<(&str, &str, &str, usize), usize> = HashMap::new();
    for (i, row) in published.allocation.iter().enumerate() {
        let path = || format!("allocation[{i}]");
        let key = (
            row.region.as_str(),
            row.exam.as_str(),
            row.location.as_str(),
            row.week,
        );
        let first = *cells.entry(key).or_insert(i);
        if first != i {
            errs.push_at(
                path(),
                format_args!(
                    "a second row for region {:?}, exam {:?} at {:?} in week {} (the first is \
                     allocation[{first}]): a plan has one row per region, exam, location and week",
                    row.region, row.exam, row.location, row.week
                ),
            );
        }
        let region = regions.get(row.region.as_str());
        let exam = exams.get(row.exam.as_str());
        if region.is_none() {
            errs.push_at(
                format!("{}.region", path()),
                format_args!("unknown region {:?}", row.region),
            );
        }
        if exam.is_none() {
            errs.push_at(
                format!("{}.exam", path()),
                format_args!("unknown exam {:?}", row.exam),
            );
        }
        week_ok(&mut errs, &path, row.week);
        let Some(kinds) = locations.get(row.location.as_str()) else {
            errs.push_at(
                format!("{}.location", path()),
                format_args!("unknown location {:?}", row.location),
            );
            continue;
        };
        let (Some(options), Some(exam)) = (region, exam) else {
            continue;
        };
        let (regular, extra) = kinds
            .get(exam.resource.as_str())
            .copied()
            .unwrap_or_default();
        if !(regular + extra > 0.0 && options.contains(row.location.as_str())) {
            errs.push_at(
                format!("{}.location", path()),
                format_args!(
                    "{:?} is not one of region {:?}'s locations for exam {:?}",
                    row.location, row.region, row.exam
                ),
            );
        } else if over(row.candidates as f64 * exam.seat_minutes, regular + extra) {
            errs.push_at(
                format!("{}.candidates", path()),
                format_args!(
                    "{} candidates of {} minutes do not fit the {} minutes a week of {:?} at {:?}",
                    row.candidates,
                    Num(exam.seat_minutes),
                    Num(regular + extra),
                    exam.resource,
                    row.location
                ),
            );
        }
    }
    // One row per cell, as a plan is written: rows that split a cell would
    // each pass the bound below while together they buy more than there
    // is (and the repair would read only one of them).
    let mut seat_rows: HashMap<(&str, &str, usize), usize> = HashMap::new();
    for (i, x) in published.extra_seats.iter().enumerate() {
        let path = || format!("extra_seats[{i}]");
        let first = *seat_rows.entry((&x.location, &x.kind, x.week)).or_insert(i);
        if first != i {
            errs.push_at(
                path(),
                format_args!(
                    "a second row for {:?} {:?} in week {} (the first is extra_seats[{first}]): \
                     a plan has one row per location, kind and week",
                    x.location, x.kind, x.week
                ),
            );
        }
        week_ok(&mut errs, &path, x.week);
        match locations.get(x.location.as_str()) {
            None => errs.push_at(
                format!("{}.location", path()),
                format_args!("unknown location {:?}", x.location),
            ),
            Some(kinds) => match kinds.get(x.kind.as_str()) {
                None => errs.push_at(
                    format!("{}.kind", path()),
                    format_args!("location {:?} has no resource {:?}", x.location, x.kind),
                ),
                Some(&(_, extra)) => minutes_ok(
                    &mut errs,
                    &path,
                    (x.minutes, x.lp_minutes),
                    extra,
                    unavailable[x.location.as_str()],
                    x.week,
                ),
            },
        }
    }
    let mut rater_rows: HashMap<(&str, usize), usize> = HashMap::new();
    for (i, x) in published.extra_raters.iter().enumerate() {
        let path = || format!("extra_raters[{i}]");
        let first = *rater_rows.entry((&x.pool, x.week)).or_insert(i);
        if first != i {
            errs.push_at(
                path(),
                format_args!(
                    "a second row for pool {:?} in week {} (the first is extra_raters[{first}]): \
                     a plan has one row per pool and week",
                    x.pool, x.week
                ),
            );
        }
        week_ok(&mut errs, &path, x.week);
        match sc.rating_pools.iter().find(|q| q.id == x.pool) {
            None => errs.push_at(
                format!("{}.pool", path()),
                format_args!("unknown rating pool {:?}", x.pool),
            ),
            Some(q) => minutes_ok(
                &mut errs,
                &path,
                (x.minutes, x.lp_minutes),
                q.extra_weekly_minutes,
                &q.unavailable,
                x.week,
            ),
        }
    }
    errs.into_result()
}

/// The published integral allocation on `inst`'s streams (one per region
/// and exam, twins unmerged), with the extra capacity it buys. Cells the
/// shocked scenario has no stream or week for are left out.
pub(crate) fn published_allocation(sc: &Scenario, inst: &Instance, published: &Plan) -> Allocation {
    let idx = |ids: Vec<&str>| -> HashMap<String, usize> {
        ids.into_iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i))
            .collect()
    };
    let regions = idx(sc.regions.iter().map(|r| r.id.as_str()).collect());
    let exams = idx(sc.exams.iter().map(|e| e.id.as_str()).collect());
    let locations = idx(sc.locations.iter().map(|l| l.id.as_str()).collect());
    let pools = idx(sc.rating_pools.iter().map(|p| p.id.as_str()).collect());
    let stream_of: HashMap<(usize, usize), usize> = inst
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.region, s.exam), i))
        .collect();
    let mut out = Allocation::default();
    for row in published.allocation.iter().filter(|r| r.week < inst.weeks) {
        let (Some(&r), Some(&e), Some(&l)) = (
            regions.get(&row.region),
            exams.get(&row.exam),
            locations.get(&row.location),
        ) else {
            continue;
        };
        if let Some(&stream) = stream_of.get(&(r, e)) {
            let cell = Cell {
                stream,
                t: row.week,
                l,
            };
            *out.x.entry(cell).or_insert(0.0) += row.candidates as f64;
        }
    }
    let kind_idx = |k: &str| inst.kinds.iter().position(|x| x == k);
    for x in published.extra_seats.iter().filter(|x| x.week < inst.weeks) {
        if let (Some(&l), Some(k)) = (locations.get(&x.location), kind_idx(&x.kind)) {
            if x.minutes > 0.0 {
                out.extra_seats.insert((l, k, x.week), x.minutes);
            }
        }
    }
    for x in published
        .extra_raters
        .iter()
        .filter(|x| x.week < inst.weeks)
    {
        if let Some(&q) = pools.get(&x.pool) {
            if x.minutes > 0.0 {
                out.extra_raters.insert((q, x.week), x.minutes);
            }
        }
    }
    out
}

/// One way rows held as published break the shocked scenario.
enum Breach {
    /// Seat minutes at (location, kind, week) above regular + extra.
    Seats {
        l: usize,
        k: usize,
        t: usize,
        used: f64,
        capacity: f64,
    },
    /// Rater minutes of (pool, week) above regular + extra.
    Raters {
        q: usize,
        t: usize,
        used: f64,
        capacity: f64,
    },
    /// A stream examined beyond its registrations by week t (its first).
    Demand {
        stream: usize,
        t: usize,
        examined: f64,
        registered: f64,
    },
}

/// The extra capacity a check allows on top of the regular.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    /// All the scenario offers: a re-plan may buy it.
    Offered,
    /// Only what the allocation buys: a plan against its own scenario
    /// (a calendar puts no session on minutes the plan did not buy).
    Bought,
}

impl Extra {
    fn label(self) -> &'static str {
        match self {
            Extra::Offered => "regular + extra",
            Extra::Bought => "regular + the extra the plan buys",
        }
    }
}

/// Every breach of the cells of `alloc` that `held` keeps: seats, then
/// raters, then streams, each in index order. Cells not held count for
/// nothing, so a week or stream without held cells cannot break.
fn breaches(
    inst: &Instance,
    alloc: &Allocation,
    held: impl Fn(&Cell) -> bool,
    extra: Extra,
) -> Vec<Breach> {
    const TOL: f64 = 1e-6;
    let over = |used: f64, capacity: f64| used > capacity * (1.0 + TOL) + TOL;
    let held = Allocation {
        x: alloc
            .x
            .iter()
            .filter(|(c, _)| held(c))
            .map(|(&c, &v)| (c, v))
            .collect(),
        ..Allocation::default()
    };
    let mut out = Vec::new();
    let (seats, raters) = rounding::usage(inst, &held);
    for (&(l, k, t), &used) in &seats {
        let (cap, mut xcap) = inst.seat_capacity(l, k, t);
        if extra == Extra::Bought {
            xcap = alloc.extra_seats.get(&(l, k, t)).copied().unwrap_or(0.0);
        }
        if over(used, cap + xcap) {
            out.push(Breach::Seats {
                l,
                k,
                t,
                used,
                capacity: cap + xcap,
            });
        }
    }
    for (&(q, t), &used) in &raters {
        let (cap, mut xcap) = inst.rater_capacity(q, t);
        if extra == Extra::Bought {
            xcap = alloc.extra_raters.get(&(q, t)).copied().unwrap_or(0.0);
        }
        if over(used, cap + xcap) {
            out.push(Breach::Raters {
                q,
                t,
                used,
                capacity: cap + xcap,
            });
        }
    }
    let served = rounding::exams_per_week(inst, &held);
    for (stream, st) in inst.streams.iter().enumerate() {
        let (mut registered, mut examined) = (st.initial_backlog(), 0.0);
        for (t, (d, x)) in st.demand.iter().zip(&served[stream]).enumerate() {
            registered += d;
            examined += x;
            if over(examined, registered) {
                out.push(Breach::Demand {
                    stream,
                    t,
                    examined,
                    registered,
                });
                break;
            }
        }
    }
    out
}

/// Checks that the shocked scenario can hold the published allocation in
/// weeks < `freeze_weeks`: seat and rater use within regular + extra
/// capacity, and no stream examined beyond its registrations.
pub(crate) fn check_freeze(
    sc: &Scenario,
    inst: &Instance,
    alloc: &Allocation,
    freeze_weeks: usize,
) -> Result<(), FreezeError> {
    let Some(first) = breaches(inst, alloc, |c| c.t < freeze_weeks, Extra::Offered)
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    Err(match first {
        Breach::Seats {
            l,
            k,
            t,
            used,
            capacity,
        } => FreezeError::Seats {
            week: t,
            location: sc.locations[l].id.clone(),
            kind: inst.kinds[k].clone(),
            used,
            capacity,
        },
        Breach::Raters {
            q,
            t,
            used,
            capacity,
        } => FreezeError::Raters {
            week: t,
            pool: sc.rating_pools[q].id.clone(),
            used,
            capacity,
        },
        Breach::Demand {
            stream,
            t,
            examined,
            registered,
        } => FreezeError::Demand {
            week: t,
            region: sc.regions[inst.streams[stream].region].id.clone(),
            exam: sc.exams[inst.streams[stream].exam].id.clone(),
            examined,
            registered,
        },
    })
}

/// Checks the published rows that a reschedule holds fixed in every week,
/// those of exams it does not re-plan, as [`check_freeze`] checks the
/// frozen weeks. No shock reaches them (a shock on their kind, pool or
/// demand would make them touched), so a plan this crate made always
/// passes; a plan file whose rows each fit but add up to more than a
/// location holds would otherwise be carried into the re-plan as it is.
pub(crate) fn check_fixed(
    sc: &Scenario,
    inst: &Instance,
    alloc: &Allocation,
    touched: &BTreeSet<String>,
) -> Result<(), ValidationErrors> {
    let fixed = |c: &Cell| !touched.contains(&sc.exams[inst.streams[c.stream].exam].id);
    breach_errors(sc, inst, alloc, fixed, Extra::Offered)
}

/// Checks a published plan against the scenario it was solved for, every
/// row in every week: together they must fit each location's and pool's
/// regular capacity plus the extra the plan itself buys there (not all the
/// scenario offers: a calendar of such a plan put sessions on minutes
/// nobody bought), buy no more extra minutes than the week has (its
/// availability factor included), and never examine more candidates than
/// have registered. A plan this crate made always passes. A hand-edited one that
/// does not would otherwise be re-planned as it is: its impossible cells
/// counted as published, the repair "removing" candidates no shock moved,
/// and refused or not depending on `--freeze`.
pub fn check_published(base: &Scenario, published: &Plan) -> Result<(), ValidationErrors> {
    validate_rows(base, published, true)?;
    let inst = Instance::new(base, false);
    // Rows of a (region, exam) that registers nobody: the solver never
    // makes them, and the capacity sums below (per stream) would not see
    // them, so a calendar or report would show their sessions unchecked.
    let streams: BTreeSet<(&str, &str)> = inst
        .streams
        .iter()
        .map(|st| {
            (
                base.regions[st.region].id.as_str(),
                base.exams[st.exam].id.as_str(),
            )
        })
        .collect();
    let mut errs = ValidationErrors::default();
    for (i, row) in published.allocation.iter().enumerate() {
        if row.candidates > 0 && !streams.contains(&(row.region.as_str(), row.exam.as_str())) {
            errs.push_at(
                format!("allocation[{i}]"),
                format!(
                    "region {:?} has no demand or backlog for exam {:?}, yet the row examines {} of them",
                    row.region, row.exam, row.candidates
                ),
            );
        }
    }
    errs.into_result()?;
    let all = published_allocation(base, &inst, published);
    breach_errors(base, &inst, &all, |_| true, Extra::Bought)
}

/// The breaches of the `held` cells as `allocation` errors a planner reads.
fn breach_errors(
    sc: &Scenario,
    inst: &Instance,
    alloc: &Allocation,
    held: impl Fn(&Cell) -> bool,
    extra: Extra,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    for b in breaches(inst, alloc, held, extra) {
        let message = match b {
            Breach::Seats {
                l,
                k,
                t,
                used,
                capacity,
            } => format!(
                "week {t}: the rows of {:?} at {:?} use {} minutes, more than its {} ({})",
                inst.kinds[k],
                sc.locations[l].id,
                Num(used),
                Num(capacity),
                extra.label()
            ),
            Breach::Raters {
                q,
                t,
                used,
                capacity,
            } => format!(
                "week {t}: the rows rated by pool {:?} use {} minutes, more than its {} ({})",
                sc.rating_pools[q].id,
                Num(used),
                Num(capacity),
                extra.label()
            ),
            Breach::Demand {
                stream,
                t,
                examined,
                registered,
            } => format!(
                "week {t}: the rows examine {} {} candidates of region {} by then, \
                 but only {} registered",
                Num(examined),
                sc.exams[inst.streams[stream].exam].id,
                sc.regions[inst.streams[stream].region].id,
                Num(registered)
            ),
        };
        errs.push_at("allocation".to_string(), message);
    }
    errs.into_result()
}

/// Progress reports and the cancel flag of a re-plan, as in
/// [`crate::plan::plan_scenario_cancellable`].
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    pub progress: &'a (dyn Fn(PlanProgress) + Sync),
    pub cancel: Option<&'a Arc<AtomicBool>>,
}

impl Default for Hooks<'_> {
    fn default() -> Self {
        Hooks {
            progress: &|_| {},
            cancel: None,
        }
    }
}

/// Re-plans `shocked` from the `published` plan: only the blocks holding a
/// touched exam are solved (with twins unmerged, so one stream per region);
/// every other stream keeps its published allocation and extra capacity
/// (such blocks share no capacity with solved ones). In a solved block, the
/// streams of exams outside `touched` keep their published x in every week
/// (pinned), and x in weeks < `freeze_weeks` is fixed to the
/// published value and, for σ > 0, stage 2 adds σ·Σ|x − x_published| over
/// the later weeks; the integral plan keeps frozen weeks and fixed streams
/// exactly as published. Published cells without a stream in the shocked
/// scenario are dropped; a freeze the shocked scenario cannot honour (less
/// capacity or demand in a frozen week) is a [`FreezeError`].
///
/// The result is a normal [`Plan`]. Its `stage1_violation` is Σ V*_b over
/// the re-optimised blocks plus Σ π·s of the fixed streams evaluated on
/// their published allocation; its `stage2_cost` is Σ C_b over the
/// re-optimised blocks *without* the σ term plus the fixed streams' travel,
/// waiting and published extra capacity (as `rounding::evaluate` counts
/// them). With nothing fixed (all exams touched), F = 0 and σ = 0, both are
/// those of a full solve. Shadow prices cover the re-optimised blocks only,
/// and a re-plan lists no recommendations (see the end of [`replan_with`]).
pub fn replan(
    shocked: &Scenario,
    published: &Plan,
    touched: &BTreeSet<String>,
    freeze_weeks: usize,
    sigma: f64,
    opts: &PlanOptions,
) -> Result<Plan, RescheduleError> {
    replan_with(
        shocked,
        published,
        touched,
        freeze_weeks,
        sigma,
        opts,
        Hooks::default(),
    )
}

/// [`replan`] with progress reports and a cancel flag.
pub fn replan_with(
    shocked: &Scenario,
    published: &Plan,
    touched: &BTreeSet<String>,
    freeze_weeks: usize,
    sigma: f64,
    opts: &PlanOptions,
    hooks: Hooks,
) -> Result<Plan, RescheduleError> {
    crate::validate::validate_scenario(shocked)?;
    validate_published(shocked, published).map_err(RescheduleError::Published)?;
    let inst = Instance::new(shocked, false);
    let all = published_allocation(shocked, &inst, published);
    check_freeze(shocked, &inst, &all, freeze_weeks)?;
    check_fixed(shocked, &inst, &all, touched).map_err(RescheduleError::Published)?;
    let touched_idx: BTreeSet<usize> = shocked
        .exams
        .iter()
        .enumerate()
        .filter(|(_, e)| touched.contains(&e.id))
        .map(|(i, _)| i)
        .collect();
    // The exams of the blocks that get re-optimised, and their streams. A
    // touched exam may have no stream left (a surge ×0 with no backlog):
    // its block's kinds and pools are re-optimised all the same, or the
    // published plan's extra capacity for them would be kept and paid for.
    let roots = inst.exam_blocks();
    let solved_roots: BTreeSet<usize> = touched_idx.iter().map(|&e| roots[e]).collect();
    let solved_exams: Vec<usize> = (0..roots.len())
        .filter(|&e| solved_roots.contains(&roots[e]))
        .collect();
    let solved: BTreeSet<usize> = (0..inst.lp_streams.len())
        .filter(|&s| solved_roots.contains(&roots[inst.lp_streams[s].exam]))
        .collect();
    let solved_kinds: BTreeSet<usize> = solved_exams.iter().map(|&e| inst.exam_kind[e]).collect();
    let solved_pools: BTreeSet<usize> = solved_exams
        .iter()
        .filter_map(|&e| inst.exam_pool[e])
        .collect();

    // A block is re-optimised if it holds a touched exam; its other exams
    // (linked to a touched one only through a chain of kinds and pools)
    // keep their published x and consume capacity.
    let pinned_streams = solved
        .iter()
        .copied()
        .filter(|&s| !touched_idx.contains(&inst.streams[s].exam))
        .collect();
    let mut replan = Replan {
        freeze_weeks,
        sigma,
        published: BTreeMap::new(),
        pinned_streams,
    };
    let mut fixed = Allocation::default();
    for (&c, &v) in &all.x {
        if solved.contains(&c.stream) {
            replan.published.insert((c.stream, c.l, c.t), v);
        } else {
            fixed.x.insert(c, v);
        }
    }
    fixed.extra_seats = all
        .extra_seats
        .into_iter()
        .filter(|((_, k, _), _)| !solved_kinds.contains(k))
        .collect();
    fixed.extra_raters = all
        .extra_raters
        .into_iter()
        .filter(|((q, _), _)| !solved_pools.contains(q))
        .collect();
    let restriction = Restriction {
        replan: &replan,
        touched: &touched_idx,
        fixed: &fixed,
    };
    // No session search: it re-solves each listed place (0.4–0.8 s on the
    // national re-plan), and this is the call ops make while the phones
    // ring. A drill of the shocked scenario lists the places.
    let opts = PlanOptions {
        recommendations: 0,
        ..opts.clone()
    };
    Ok(run_pipeline(
        shocked,
        &opts,
        hooks.progress,
        hooks.cancel.cloned(),
        Some(&restriction),
    )?)
}

/// One (location, week, exam) whose candidates change between two plans.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    pub location: String,
    pub week: usize,
    pub exam: String,
    /// Candidates in the published plan (summed over regions).
    pub published: u64,
    /// Candidates in the re-plan.
    pub replanned: u64,
}

impl Move {
    /// replanned − published.
    pub fn delta(&self) -> i64 {
        self.replanned as i64 - self.published as i64
    }
}

/// The candidates moved per (location, week, exam) from `published` to
/// `replanned`, in (location, week, exam) order; unchanged cells are left out.
pub fn diff(published: &Plan, replanned: &Plan) -> Vec<Move> {
    diff_rows(&published.allocation, &replanned.allocation)
}

/// [`diff`] of two allocations (a plan's, or a [`crate::repair::Repair`]'s).
pub fn diff_rows(published: &[AllocationRow], replanned: &[AllocationRow]) -> Vec<Move> {
    let mut cells: BTreeMap<(String, usize, String), (u64, u64)> = BTreeMap::new();
    for a in published {
        cells
            .entry((a.location.clone(), a.week, a.exam.clone()))
            .or_default()
            .0 += a.candidates;
    }
    for a in replanned {
        cells
            .entry((a.location.clone(), a.week, a.exam.clone()))
            .or_default()
            .1 += a.candidates;
    }
    cells
        .into_iter()
        .filter(|(_, (p, r))| p != r)
        .map(|((location, week, exam), (published, replanned))| Move {
            location,
            week,
            exam,
            published,
            replanned,
        })
        .collect()
}

/// Extra capacity bought in one week, before and after: seats of a kind
/// at a location (`pool` empty) or minutes of a rater pool (`location`
/// and `kind` empty).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtraChange {
    pub location: String,
    pub kind: String,
    pub pool: String,
    pub week: usize,
    pub before_minutes: f64,
    pub after_minutes: f64,
}

/// Every cell whose bought extra minutes differ (by more than 1e-6)
/// between two plans' integral purchases, seats first, in key order.
pub fn extra_changes(
    before: (&[ExtraSeats], &[ExtraRaters]),
    after: (&[ExtraSeats], &[ExtraRaters]),
) -> Vec<ExtraChange> {
    type Key = (String, String, String, usize);
    let mut cells: BTreeMap<(bool, Key), (f64, f64)> = BTreeMap::new();
    let seat_key = |x: &ExtraSeats| {
        (
            false,
            (x.location.clone(), x.kind.clone(), String::new(), x.week),
        )
    };
    let rater_key =
        |x: &ExtraRaters| (true, (String::new(), String::new(), x.pool.clone(), x.week));
    for x in before.0 {
        cells.entry(seat_key(x)).or_default().0 += x.minutes;
    }
    for x in after.0 {
        cells.entry(seat_key(x)).or_default().1 += x.minutes;
    }
    for x in before.1 {
        cells.entry(rater_key(x)).or_default().0 += x.minutes;
    }
    for x in after.1 {
        cells.entry(rater_key(x)).or_default().1 += x.minutes;
    }
    cells
        .into_iter()
        .filter(|(_, (b, a))| (a - b).abs() > 1e-6)
        .map(
            |((_, (location, kind, pool, week)), (before_minutes, after_minutes))| ExtraChange {
                location,
                kind,
                pool,
                week,
                before_minutes,
                after_minutes,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::model::{build_block, Col, Instance, Replan};
    use serde_json::json;

    fn instance() -> Instance {
        let v = json!({
            "format": "examcap/scenario@1", "name": "t", "start_week": "2026-W10",
            "horizon_weeks": 3,
            "exams": [{"id": "A", "name": "A", "resource": "car", "seat_minutes": 60,
                       "target_wait_weeks": 1, "priority": 1}],
            "locations": [{"id": "L0", "name": "L0", "resources": [
                {"kind": "car", "weekly_minutes": 600, "extra_weekly_minutes": 60,
                 "extra_cost_per_minute": 1.0}], "unavailable": []}],
            "rating_pools": [],
            "regions": [{"id": "R0", "name": "R0",
                         "options": [{"location": "L0", "travel_cost": 0.5}]}],
            "demand": [{"region": "R0", "exam": "A", "weekly": [5, 6, 7]}],
            "backlog": [],
            "weights": {"waiting_per_candidate_week": 1.0}
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        Instance::new(&sc, false)
    }

    #[test]
    fn empty_replan_extras_build_the_plain_lp() {
        let inst = instance();
        let plain = build_block(&inst, &[0], None);
        let extras = Replan::default();
        let same = build_block(&inst, &[0], Some(&extras));
        assert_eq!(plain.cols, same.cols);
        assert_eq!(plain.rows, same.rows);
        assert_eq!(plain.col_lower, same.col_lower);
        assert_eq!(plain.col_upper, same.col_upper);
        assert_eq!(plain.cost2, same.cost2);
        assert!(plain.col_lower.iter().all(|&l| l == 0.0));
    }

    #[test]
    fn replan_extras_fix_frozen_x_and_split_later_x_at_the_published_value() {
        let inst = instance();
        let extras = Replan {
            freeze_weeks: 1,
            sigma: 2.0,
            published: [((0, 0, 0), 4.0), ((0, 0, 1), 6.0)].into_iter().collect(),
            pinned_streams: Default::default(),
        };
        let lp = build_block(&inst, &[0], Some(&extras));
        let mut above = Vec::new();
        for (j, col) in lp.cols.iter().enumerate() {
            let got = (
                lp.col_lower[j],
                lp.col_upper[j],
                lp.cost2[j],
                lp.stability_cost[j],
            );
            match *col {
                // Frozen: fixed to what was published, no stability term.
                Col::X { t: 0, .. } => assert_eq!(got, (4.0, 4.0, 0.5, 0.0)),
                // Published 6: x up to 6 earns σ back, x above 6 pays σ.
                Col::X { t: 1, .. } => assert_eq!(got, (0.0, 6.0, 0.5 - 2.0, -2.0)),
                Col::XAbove { t, .. } => {
                    assert_eq!(got, (0.0, f64::INFINITY, 0.5 + 2.0, 2.0));
                    above.push(t);
                }
                // Nothing published: σ joins x's cost, no split.
                Col::X { .. } => assert_eq!(got, (0.0, f64::INFINITY, 0.5 + 2.0, 2.0)),
                _ => assert_eq!(lp.stability_cost[j], 0.0, "{col:?}"),
            }
        }
        assert_eq!(above, vec![1]);
        // XAbove stands in the same rows as its X, with the same entries.
        let entries = |want: Col| {
            let j = lp.cols.iter().position(|&c| c == want).expect("column");
            lp.column(j).collect::<Vec<_>>()
        };
        assert_eq!(
            entries(Col::X {
                stream: 0,
                l: 0,
                t: 1
            }),
            entries(Col::XAbove {
                stream: 0,
                l: 0,
                t: 1
            })
        );
        // No row beyond the plain LP's.
        assert_eq!(lp.rows, build_block(&inst, &[0], None).rows);
    }

    /// A plan row for a (region, exam) that registers nobody is refused by
    /// name: the per-stream capacity sums would not see it, so two such
    /// rows, each within a week's minutes, could overbook a room unseen.
    #[test]
    fn rows_of_a_region_without_demand_are_refused() {
        let v = json!({
            "format": "examcap/scenario@1", "name": "t", "start_week": "2026-W10",
            "horizon_weeks": 2,
            "exams": [{"id": "A", "name": "A", "resource": "car", "seat_minutes": 60,
                       "target_wait_weeks": 1}],
            "locations": [{"id": "L0", "name": "L0", "resources": [
                {"kind": "car", "weekly_minutes": 120, "extra_weekly_minutes": 0,
                 "extra_cost_per_minute": 1.0}]}],
            "regions": [
                {"id": "R0", "name": "R0", "options": [{"location": "L0", "travel_cost": 0}]},
                {"id": "R1", "name": "R1", "options": [{"location": "L0", "travel_cost": 0}]}],
            "demand": [{"region": "R0", "exam": "A", "weekly": [1, 1]}]
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        let mut plan = crate::plan::plan_scenario(&sc, &Default::default(), &|_| {}).unwrap();
        super::check_published(&sc, &plan).expect("the solver's own plan fits");
        plan.allocation.push(crate::plan::AllocationRow {
            region: "R1".into(),
            exam: "A".into(),
            location: "L0".into(),
            week: 0,
            candidates: 2,
        });
        let e = super::check_published(&sc, &plan).unwrap_err();
        let paths: Vec<&str> = e.errors.iter().map(|f| f.path.as_str()).collect();
        let n = plan.allocation.len() - 1;
        assert_eq!(paths, [format!("allocation[{n}]")], "{e}");
        assert!(e.to_string().contains("no demand or backlog"), "{e}");
    }

    /// A plan needs 2 extra candidates a week of 60 minutes at L0 (regular
    /// 120, extra 120 on offer) and of 30 rater minutes (pool regular 60,
    /// extra 60): it buys 120 seat and 60 rater minutes a week. Without
    /// those rows its rows fit what the scenario offers, not what the plan
    /// buys: refused, naming the week, the kind and the pool.
    #[test]
    fn rows_must_fit_the_extra_the_plan_buys() {
        let v = json!({
            "format": "examcap/scenario@1", "name": "t", "start_week": "2026-W10",
            "horizon_weeks": 2,
            "exams": [{"id": "A", "name": "A", "resource": "car", "seat_minutes": 60,
                       "target_wait_weeks": 0, "rating_pool": "P", "rating_minutes": 30}],
            "locations": [{"id": "L0", "name": "L0", "resources": [
                {"kind": "car", "weekly_minutes": 120, "extra_weekly_minutes": 120,
                 "extra_cost_per_minute": 1.0}]}],
            "rating_pools": [{"id": "P", "weekly_minutes": 60, "extra_weekly_minutes": 60,
                              "extra_cost_per_minute": 1.0}],
            "regions": [{"id": "R0", "name": "R0", "options": [{"location": "L0", "travel_cost": 0}]}],
            "demand": [{"region": "R0", "exam": "A", "weekly": [4, 4]}]
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        let mut plan = crate::plan::plan_scenario(&sc, &Default::default(), &|_| {}).unwrap();
        super::check_published(&sc, &plan).expect("the solver's own plan fits");
        let bought = |p: &crate::plan::Plan| {
            (
                p.extra_seats.iter().map(|x| x.minutes).sum::<f64>(),
                p.extra_raters.iter().map(|x| x.minutes).sum::<f64>(),
            )
        };
        assert_eq!(bought(&plan), (240.0, 120.0));
        // Week 1's rows gone: week 0 still fits, week 1 does not.
        plan.extra_seats.retain(|x| x.week == 0);
        plan.extra_raters.retain(|x| x.week == 0);
        let e = super::check_published(&sc, &plan).unwrap_err();
        let messages: Vec<&str> = e.errors.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "week 1: the rows of \"car\" at \"L0\" use 240 minutes, more than its 120 \
                 (regular + the extra the plan buys)",
                "week 1: the rows rated by pool \"P\" use 120 minutes, more than its 60 \
                 (regular + the extra the plan buys)"
            ],
            "{e}"
        );
    }
}
