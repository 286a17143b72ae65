//! What-if drills as plain transforms of a [`Scenario`]: a demand shock
//! multiplies or shifts the weekly forecasts of matching (region, exam)
//! rows; a capacity shock appends an `unavailable` range with its factor to
//! a location or rater pool (factors multiply, as DESIGN.md defines). The
//! result is an ordinary scenario, validated and solved like any other, so
//! a drill needs no special path through the solver.

use std::collections::{BTreeSet, HashMap, HashSet};

use examcap_solver::scenario::{Scenario, Unavailable};
use examcap_solver::validate::{FieldError, Num, ValidationErrors, MAX_VALUE};
use serde::{Deserialize, Serialize};

/// How a demand shock changes each affected weekly forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandChange {
    /// new = old · m (m ≥ 0).
    Multiplier(f64),
    /// new = max(0, old + d).
    Delta(f64),
}

/// What a capacity shock hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityTarget {
    Location(String),
    RatingPool(String),
}

/// One shock, in scenario terms (week indices 0-based, inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShockSpec {
    Demand {
        /// `None`: every region.
        region: Option<String>,
        /// `None`: every exam.
        exam: Option<String>,
        from_week: usize,
        to_week: usize,
        change: DemandChange,
    },
    Capacity {
        target: CapacityTarget,
        from_week: usize,
        to_week: usize,
        /// In [0, 1].
        factor: f64,
    },
}

/// A shock that does not fit the scenario, with its path in the request
/// (e.g. `shocks[2].demand.exam`).
fn err(i: usize, field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: format!("shocks[{i}].{field}"),
        message: message.into(),
    }
}

fn past_horizon(sc: &Scenario, i: usize, field: &str, from_week: usize) -> Option<FieldError> {
    (from_week >= sc.horizon_weeks).then(|| {
        err(
            i,
            field,
            format!(
                "week {from_week} is past the horizon (weeks 0-{}): the shock would change nothing",
                sc.horizon_weeks.saturating_sub(1)
            ),
        )
    })
}

/// The exams `shocks` name: a demand shock's exam (every exam if it names
/// none), the exams of a kind at a shocked location, the exams of a shocked
/// rater pool. They count as touched for a re-plan even where the shock
/// changes no number (a surge on weeks without demand).
pub fn named_exams(base: &Scenario, shocks: &[ShockSpec]) -> BTreeSet<String> {
    // Looked up by id, not scanned per shock: a request may hold 100,000.
    let kinds_at: HashMap<&str, BTreeSet<&str>> = base
        .locations
        .iter()
        .map(|l| {
            (
                l.id.as_str(),
                l.resources.iter().map(|r| r.kind.as_str()).collect(),
            )
        })
        .collect();
    let mut of_kind: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut of_pool: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &base.exams {
        of_kind.entry(&e.resource).or_default().push(&e.id);
        if let Some(q) = &e.rating_pool {
            of_pool.entry(q).or_default().push(&e.id);
        }
    }
    let mut named: BTreeSet<&str> = BTreeSet::new();
    let mut every = false;
    for shock in shocks {
        match shock {
            ShockSpec::Demand { exam: None, .. } => every = true,
            ShockSpec::Demand { exam: Some(x), .. } => {
                named.extend(
                    base.exams
                        .iter()
                        .filter(|e| &e.id == x)
                        .map(|e| e.id.as_str()),
                );
            }
            ShockSpec::Capacity {
                target: CapacityTarget::Location(l),
                ..
            } => {
                for k in kinds_at.get(l.as_str()).into_iter().flatten() {
                    named.extend(of_kind.get(k).into_iter().flatten());
                }
            }
            ShockSpec::Capacity {
                target: CapacityTarget::RatingPool(q),
                ..
            } => named.extend(of_pool.get(q.as_str()).into_iter().flatten()),
        }
    }
    if every {
        named.extend(base.exams.iter().map(|e| e.id.as_str()));
    }
    named.into_iter().map(str::to_string).collect()
}

/// Applies the shocks in order to a copy of `base`, renamed to `name`.
/// A range reaching past the horizon is clipped, as in the scenario format;
/// one that starts past it would change nothing and is refused. Every
/// shock is checked, and every field that does not fit is reported (kept
/// and counted as a scenario's errors are).
pub fn apply(
    base: &Scenario,
    shocks: &[ShockSpec],
    name: &str,
) -> Result<Scenario, ValidationErrors> {
    apply_parsed(base, shocks.iter().map(Ok), name)
}

/// [`apply`] of a request's shocks in their order, some of which may lack
/// a part (`Err`: what is missing, found while reading the request). Every
/// shock is still checked, so one answer names what each one lacks and
/// every field of the others that does not fit.
pub fn apply_parsed<'a>(
    base: &Scenario,
    shocks: impl IntoIterator<Item = Result<&'a ShockSpec, FieldError>>,
    name: &str,
) -> Result<Scenario, ValidationErrors> {
    let mut sc = base.clone();
    sc.name = name.to_string();
    let ids = Ids::of(base);
    let mut work = 0u64;
    let mut errors = Vec::new();
    for (i, shock) in shocks.into_iter().enumerate() {
        let shock = match shock {
            Ok(s) => s,
            Err(missing) => {
                errors.push(missing);
                continue;
            }
        };
        let found = check(&sc, &ids, i, shock);
        if found.is_empty() {
            errors.extend(apply_one(&mut sc, &ids, &mut work, i, shock).err());
        } else {
            errors.extend(found);
        }
    }
    errors
        .into_iter()
        .collect::<ValidationErrors>()
        .into_result()?;
    Ok(sc)
}

/// The most demand cells (row × week) one request's shocks may change in
/// all: each shock with no region or exam changes every row, so 100,000 of
/// them on a national scenario held a core for minutes (before the solve,
/// so no deadline stopped it). A national scenario has ~27,000 cells.
pub const MAX_SHOCKED_CELLS: u64 = 20_000_000;

/// The base scenario's ids, looked up once for all shocks.
struct Ids {
    regions: HashSet<String>,
    exams: HashSet<String>,
    locations: HashMap<String, usize>,
    pools: HashMap<String, usize>,
}

impl Ids {
    fn of(sc: &Scenario) -> Ids {
        let index = |ids: &mut dyn Iterator<Item = &String>| -> HashMap<String, usize> {
            ids.enumerate().map(|(i, id)| (id.clone(), i)).collect()
        };
        Ids {
            regions: sc.regions.iter().map(|r| r.id.clone()).collect(),
            exams: sc.exams.iter().map(|e| e.id.clone()).collect(),
            locations: index(&mut sc.locations.iter().map(|l| &l.id)),
            pools: index(&mut sc.rating_pools.iter().map(|q| &q.id)),
        }
    }
}

/// The fields of shock `i` that are wrong whatever the scenario: a week
/// range backwards, a multiplier, delta or factor out of range.
fn check_own(i: usize, shock: &ShockSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    match shock {
        ShockSpec::Demand {
            from_week,
            to_week,
            change,
            ..
        } => {
            if from_week > to_week {
                out.push(err(i, "demand.to_week", "must be >= from_week"));
            }
            match *change {
                DemandChange::Multiplier(m) if !(m.is_finite() && m >= 0.0) => out.push(err(
                    i,
                    "demand.multiplier",
                    format!("must be a finite number >= 0, got {}", Num(m)),
                )),
                DemandChange::Delta(d) if !d.is_finite() => out.push(err(
                    i,
                    "demand.delta",
                    format!("must be a finite number, got {}", Num(d)),
                )),
                _ => {}
            }
        }
        ShockSpec::Capacity {
            from_week,
            to_week,
            factor,
            ..
        } => {
            if from_week > to_week {
                out.push(err(i, "capacity.to_week", "must be >= from_week"));
            }
            if !(factor.is_finite() && (0.0..=1.0).contains(factor)) {
                out.push(err(
                    i,
                    "capacity.factor",
                    format!("must be in [0, 1], got {}", Num(*factor)),
                ));
            }
        }
    }
    out
}

/// What is wrong with parsed shocks before any scenario is known (their
/// missing parts and [`check_own`]): said beside a request's missing base,
/// so that one answer names every bad field the request can show.
pub fn check_without_scenario<'a>(
    shocks: impl IntoIterator<Item = Result<&'a ShockSpec, FieldError>>,
) -> Result<(), ValidationErrors> {
    shocks
        .into_iter()
        .enumerate()
        .flat_map(|(i, s)| match s {
            Ok(s) => check_own(i, s),
            Err(missing) => vec![missing],
        })
        .collect::<ValidationErrors>()
        .into_result()
}

/// The fields of shock `i` that do not fit `sc`: [`check_own`]'s, then
/// the horizon and the ids.
fn check(sc: &Scenario, ids: &Ids, i: usize, shock: &ShockSpec) -> Vec<FieldError> {
    let mut out = check_own(i, shock);
    match shock {
        ShockSpec::Demand {
            region,
            exam,
            from_week,
            ..
        } => {
            out.extend(past_horizon(sc, i, "demand.from_week", *from_week));
            if let Some(r) = region.as_ref().filter(|r| !ids.regions.contains(*r)) {
                out.push(err(i, "demand.region", format!("unknown region {r:?}")));
            }
            if let Some(e) = exam.as_ref().filter(|e| !ids.exams.contains(*e)) {
                out.push(err(i, "demand.exam", format!("unknown exam {e:?}")));
            }
        }
        ShockSpec::Capacity {
            target, from_week, ..
        } => {
            out.extend(past_horizon(sc, i, "capacity.from_week", *from_week));
            match target {
                CapacityTarget::Location(id) if !ids.locations.contains_key(id) => out.push(err(
                    i,
                    "capacity.location",
                    format!("unknown location {id:?}"),
                )),
                CapacityTarget::RatingPool(id) if !ids.pools.contains_key(id) => out.push(err(
                    i,
                    "capacity.rating_pool",
                    format!("unknown rating pool {id:?}"),
                )),
                _ => {}
            }
        }
    }
    out
}

/// Applies shock `i`, which [`check`] passed, to `sc`. A demand it would
/// take past the scenario limit is the shock's fault, named so; so are
/// shocks past [`MAX_SHOCKED_CELLS`] (`work` counts the cells so far).
///
/// A demand shock changes the rows that match it. One that names both a
/// region and an exam without a row adds the row (demand 0 until then)
/// when its delta is positive: "40 more a week" where nobody registered
/// yet. A shock that matches no row and adds none changes nothing, and is
/// refused as one starting past the horizon is.
fn apply_one(
    sc: &mut Scenario,
    ids: &Ids,
    work: &mut u64,
    i: usize,
    shock: &ShockSpec,
) -> Result<(), FieldError> {
    match shock {
        ShockSpec::Demand {
            region,
            exam,
            from_week,
            to_week,
            change,
        } => {
            let (field, f): (&str, Box<dyn Fn(f64) -> f64>) = match *change {
                DemandChange::Multiplier(m) => ("demand.multiplier", Box::new(move |v| v * m)),
                DemandChange::Delta(d) => ("demand.delta", Box::new(move |v| (v + d).max(0.0))),
            };
            let hits = |row: &examcap_solver::scenario::Demand| {
                region.as_ref().is_none_or(|r| &row.region == r)
                    && exam.as_ref().is_none_or(|e| &row.exam == e)
            };
            let mut rows = sc.demand.iter().filter(|row| hits(row)).count();
            if rows == 0 {
                match (region, exam, change) {
                    (Some(r), Some(e), DemandChange::Delta(d)) if *d > 0.0 => {
                        sc.demand.push(examcap_solver::scenario::Demand {
                            region: r.clone(),
                            exam: e.clone(),
                            weekly: vec![0.0; sc.horizon_weeks],
                        });
                        rows = 1;
                    }
                    _ => {
                        let (what, path) = match (region, exam) {
                            (Some(r), Some(e)) => (
                                format!("region {r:?} has no demand row for exam {e:?}"),
                                "demand",
                            ),
                            (Some(r), None) => {
                                (format!("region {r:?} has no demand row"), "demand.region")
                            }
                            (None, Some(e)) => {
                                (format!("exam {e:?} has no demand row"), "demand.exam")
                            }
                            (None, None) => {
                                ("the scenario has no demand row".to_string(), "demand")
                            }
                        };
                        return Err(err(
                            i,
                            path,
                            format!(
                                "{what}: the shock would change nothing (a positive delta \
                                 naming both a region and an exam adds the row)"
                            ),
                        ));
                    }
                }
            }
            let last = (*to_week).min(sc.horizon_weeks.saturating_sub(1));
            let weeks = (last + 1).saturating_sub(*from_week) as u64;
            *work = work.saturating_add(weeks.saturating_mul(rows as u64));
            if *work > MAX_SHOCKED_CELLS {
                return Err(err(
                    i,
                    "demand",
                    format!(
                        "the shocks up to this one change {} demand cells (row × week), more \
                         than the {MAX_SHOCKED_CELLS} a request may change: combine shocks \
                         of one region and exam into one",
                        *work
                    ),
                ));
            }
            for (j, row) in sc.demand.iter_mut().enumerate() {
                if !hits(row) {
                    continue;
                }
                let last = (*to_week).min(row.weekly.len().saturating_sub(1));
                for (t, w) in row
                    .weekly
                    .iter_mut()
                    .enumerate()
                    .take(last + 1)
                    .skip(*from_week)
                {
                    *w = f(*w);
                    // Named here, not as the shocked scenario's
                    // `demand[j].weekly[t]` the caller never wrote.
                    if *w > MAX_VALUE {
                        return Err(err(
                            i,
                            field,
                            format!(
                                "makes demand[{j}].weekly[{t}] {}, more than {}",
                                Num(*w),
                                Num(MAX_VALUE)
                            ),
                        ));
                    }
                }
            }
        }
        ShockSpec::Capacity {
            target,
            from_week,
            to_week,
            factor,
        } => {
            // Clipped to the horizon as a demand shock is: the range is the
            // caller's, and the scenario's own limit on `to_week` must not
            // be reported against a field the caller never wrote.
            let last = (*to_week).min(sc.horizon_weeks.saturating_sub(1));
            let range = Unavailable {
                from_week: i64::try_from(*from_week).unwrap_or(i64::MAX),
                to_week: i64::try_from(last).unwrap_or(i64::MAX),
                factor: *factor,
            };
            let ranges = match target {
                CapacityTarget::Location(id) => ids
                    .locations
                    .get(id)
                    .and_then(|&l| sc.locations.get_mut(l))
                    .map(|l| &mut l.unavailable),
                CapacityTarget::RatingPool(id) => ids
                    .pools
                    .get(id)
                    .and_then(|&q| sc.rating_pools.get_mut(q))
                    .map(|q| &mut q.unavailable),
            };
            // `check` found the target; were it gone, the shock is named.
            ranges
                .ok_or_else(|| err(i, "capacity", "its target is not in the scenario"))?
                .push(range);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use examcap_solver::parse_scenario;

    fn tiny() -> Scenario {
        parse_scenario(
            br#"{"format":"examcap/scenario@1","name":"tiny","start_week":"2026-W14",
            "horizon_weeks":3,
            "exams":[{"id":"SPK","name":"S","resource":"booth","seat_minutes":45,"target_wait_weeks":1}],
            "locations":[{"id":"AMS","name":"A","resources":[{"kind":"booth","weekly_minutes":450,
              "extra_weekly_minutes":90,"extra_cost_per_minute":0.9}]}],
            "regions":[{"id":"R","name":"R","options":[{"location":"AMS","travel_cost":0.5}]}],
            "demand":[{"region":"R","exam":"SPK","weekly":[8,12,10]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn named_exams_are_those_a_shock_names_even_where_nothing_changes() {
        let base = parse_scenario(
            br#"{"format":"examcap/scenario@1","name":"n","start_week":"2026-W14",
            "horizon_weeks":3,
            "exams":[{"id":"A","name":"A","resource":"booth","seat_minutes":45,"target_wait_weeks":1,
                      "rating_pool":"P","rating_minutes":5},
                     {"id":"B","name":"B","resource":"pc","seat_minutes":45,"target_wait_weeks":1},
                     {"id":"C","name":"C","resource":"desk","seat_minutes":45,"target_wait_weeks":1,
                      "rating_pool":"P","rating_minutes":5}],
            "locations":[{"id":"L1","name":"L1","resources":[
                {"kind":"booth","weekly_minutes":450,"extra_weekly_minutes":0,"extra_cost_per_minute":0},
                {"kind":"pc","weekly_minutes":450,"extra_weekly_minutes":0,"extra_cost_per_minute":0}]},
              {"id":"L2","name":"L2","resources":[
                {"kind":"desk","weekly_minutes":450,"extra_weekly_minutes":0,"extra_cost_per_minute":0}]}],
            "rating_pools":[{"id":"P","weekly_minutes":100,"extra_weekly_minutes":0,"extra_cost_per_minute":0}],
            "regions":[{"id":"R","name":"R","options":[{"location":"L1","travel_cost":0},
                                                       {"location":"L2","travel_cost":0}]}],
            "demand":[{"region":"R","exam":"A","weekly":[0,0,5]},
                      {"region":"R","exam":"B","weekly":[1,1,1]}]}"#,
        )
        .unwrap();
        let names = |shocks: &[ShockSpec]| -> Vec<String> {
            named_exams(&base, shocks).into_iter().collect()
        };
        let surge = |exam: Option<&str>| ShockSpec::Demand {
            region: None,
            exam: exam.map(Into::into),
            from_week: 0,
            to_week: 1,
            change: DemandChange::Multiplier(1.6),
        };
        let capacity = |target: CapacityTarget| ShockSpec::Capacity {
            target,
            from_week: 0,
            to_week: 0,
            factor: 0.5,
        };
        // A surge on A's weeks without demand changes no number; A is named.
        assert_eq!(
            apply(&base, &[surge(Some("A"))], "n").unwrap().demand,
            base.demand
        );
        assert_eq!(names(&[surge(Some("A"))]), ["A"]);
        assert_eq!(names(&[surge(None)]), ["A", "B", "C"]);
        assert_eq!(
            names(&[capacity(CapacityTarget::Location("L1".into()))]),
            ["A", "B"]
        );
        assert_eq!(
            names(&[capacity(CapacityTarget::Location("L2".into()))]),
            ["C"]
        );
        assert_eq!(
            names(&[capacity(CapacityTarget::RatingPool("P".into()))]),
            ["A", "C"]
        );
        assert!(names(&[]).is_empty());
    }

    fn demand(region: Option<&str>, exam: Option<&str>, change: DemandChange) -> ShockSpec {
        ShockSpec::Demand {
            region: region.map(Into::into),
            exam: exam.map(Into::into),
            from_week: 1,
            to_week: 99,
            change,
        }
    }

    /// "40 more a week in R for an exam nobody in R registered for": the
    /// row is added (demand 0 until then), in the shock's weeks only. A
    /// shock that matches no row and adds none changes nothing, and says
    /// so at the field that matched nothing (it was silently a no-op).
    #[test]
    fn a_positive_delta_on_a_pair_without_a_row_adds_it_other_shocks_on_no_row_are_refused() {
        let mut base = tiny();
        base.exams.push(examcap_solver::scenario::Exam {
            id: "LEZ".into(),
            name: "L".into(),
            ..base.exams[0].clone()
        });
        let out = apply(
            &base,
            &[demand(Some("R"), Some("LEZ"), DemandChange::Delta(40.0))],
            "d",
        )
        .unwrap();
        assert_eq!(out.demand.len(), 2);
        assert_eq!(out.demand[0], base.demand[0]);
        assert_eq!(
            (out.demand[1].region.as_str(), out.demand[1].exam.as_str()),
            ("R", "LEZ")
        );
        assert_eq!(out.demand[1].weekly, [0.0, 40.0, 40.0]);
        examcap_solver::validate::validate_scenario(&out).unwrap();
        // Applied twice, the second finds the row the first added.
        let delta = demand(Some("R"), Some("LEZ"), DemandChange::Delta(40.0));
        let twice = apply(&base, &[delta.clone(), delta], "d").unwrap();
        assert_eq!(twice.demand[1].weekly, [0.0, 80.0, 80.0]);

        let refused = |shock: ShockSpec| -> String {
            let e = apply(&base, &[shock], "d").unwrap_err();
            assert_eq!(e.errors.len(), 1, "{e}");
            format!("{}: {}", e.errors[0].path, e.errors[0].message)
        };
        for (shock, want) in [
            (
                demand(Some("R"), Some("LEZ"), DemandChange::Multiplier(2.0)),
                "shocks[0].demand: region \"R\" has no demand row for exam \"LEZ\": the shock would change nothing",
            ),
            (
                demand(Some("R"), Some("LEZ"), DemandChange::Delta(-3.0)),
                "shocks[0].demand: region \"R\" has no demand row for exam \"LEZ\"",
            ),
            (
                demand(None, Some("LEZ"), DemandChange::Delta(40.0)),
                "shocks[0].demand.exam: exam \"LEZ\" has no demand row",
            ),
        ] {
            let got = refused(shock);
            assert!(got.starts_with(want), "{got}");
        }
        // A shock on a row that exists, in weeks without demand, is no
        // such case: it names a row, whose numbers happen to stay.
        let mut zeros = tiny();
        zeros.demand[0].weekly = vec![0.0; 3];
        let out = apply(
            &zeros,
            &[demand(
                Some("R"),
                Some("SPK"),
                DemandChange::Multiplier(2.0),
            )],
            "d",
        )
        .unwrap();
        assert_eq!(out.demand, zeros.demand);
    }

    /// Shocks that together change more than [`MAX_SHOCKED_CELLS`] demand
    /// cells are refused at the shock that passes it: 2,000 rows × 520
    /// weeks is 1,040,000 cells a shock on every row, so the 20th passes
    /// 20 million.
    #[test]
    fn shocks_changing_too_many_demand_cells_are_refused() {
        let mut base = tiny();
        base.horizon_weeks = 520;
        base.regions = (0..2000)
            .map(|i| examcap_solver::scenario::Region {
                id: format!("R{i}"),
                ..base.regions[0].clone()
            })
            .collect();
        base.demand = (0..2000)
            .map(|i| examcap_solver::scenario::Demand {
                region: format!("R{i}"),
                exam: "SPK".into(),
                weekly: vec![1.0; 520],
            })
            .collect();
        let every = ShockSpec::Demand {
            region: None,
            exam: None,
            from_week: 0,
            to_week: 519,
            change: DemandChange::Multiplier(1.0),
        };
        apply(&base, &vec![every.clone(); 19], "d").expect("19,760,000 cells");
        let e = apply(&base, &vec![every; 20], "d").unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        assert_eq!(e.errors[0].path, "shocks[19].demand");
        assert!(
            e.errors[0].message.contains("change 20800000 demand cells"),
            "{}",
            e.errors[0].message
        );
    }

    #[test]
    fn demand_and_capacity_shocks() {
        let base = tiny();
        let out = apply(
            &base,
            &[
                ShockSpec::Demand {
                    region: None,
                    exam: Some("SPK".into()),
                    from_week: 1,
                    to_week: 99,
                    change: DemandChange::Multiplier(1.5),
                },
                ShockSpec::Demand {
                    region: Some("R".into()),
                    exam: None,
                    from_week: 0,
                    to_week: 0,
                    change: DemandChange::Delta(-100.0),
                },
                ShockSpec::Capacity {
                    target: CapacityTarget::Location("AMS".into()),
                    from_week: 2,
                    to_week: 2,
                    factor: 0.5,
                },
            ],
            "tiny+drill",
        )
        .unwrap();
        assert_eq!(out.demand[0].weekly, vec![0.0, 18.0, 15.0]);
        assert_eq!(out.locations[0].unavailable.len(), 1);
        assert_eq!(out.name, "tiny+drill");
        assert_ne!(out.content_hash(), base.content_hash());
        examcap_solver::validate::validate_scenario(&out).unwrap();
    }

    /// A capacity range past the horizon is clipped like a demand range,
    /// not refused as the shocked scenario's `locations[0].unavailable[0]`.
    #[test]
    fn a_capacity_range_past_the_horizon_is_clipped() {
        let out = apply(
            &tiny(),
            &[ShockSpec::Capacity {
                target: CapacityTarget::Location("AMS".into()),
                from_week: 1,
                to_week: u32::MAX as usize,
                factor: 0.5,
            }],
            "x",
        )
        .unwrap();
        let u = &out.locations[0].unavailable;
        assert_eq!((u.len(), u[0].from_week, u[0].to_week), (1, 1, 2));
        examcap_solver::validate::validate_scenario(&out).unwrap();
    }

    #[test]
    fn bad_shocks_name_their_field() {
        let base = tiny();
        let e = apply(
            &base,
            &[ShockSpec::Capacity {
                target: CapacityTarget::RatingPool("nope".into()),
                from_week: 0,
                to_week: 1,
                factor: 0.5,
            }],
            "x",
        )
        .unwrap_err();
        assert_eq!(e.errors[0].path, "shocks[0].capacity.rating_pool");
        let e = apply(
            &base,
            &[ShockSpec::Demand {
                region: None,
                exam: None,
                from_week: 0,
                to_week: 1,
                change: DemandChange::Multiplier(f64::NAN),
            }],
            "x",
        )
        .unwrap_err();
        assert_eq!(e.errors[0].path, "shocks[0].demand.multiplier");
        // A shock that starts past the 3-week horizon changes nothing.
        let late = ShockSpec::Demand {
            region: None,
            exam: None,
            from_week: 3,
            to_week: 5,
            change: DemandChange::Multiplier(2.0),
        };
        let e = apply(&base, &[late], "x").unwrap_err();
        assert_eq!(e.errors[0].path, "shocks[0].demand.from_week");
        assert!(
            e.to_string().contains("past the horizon (weeks 0-2)"),
            "{e}"
        );
        let late = ShockSpec::Capacity {
            target: CapacityTarget::Location("AMS".into()),
            from_week: 9,
            to_week: 9,
            factor: 0.0,
        };
        let e = apply(&base, &[late], "x").unwrap_err();
        assert_eq!(e.errors[0].path, "shocks[0].capacity.from_week");
        // Demand past the scenario limit is the shock's fault, named so.
        for (change, field) in [
            (
                DemandChange::Multiplier(1e300),
                "shocks[1].demand.multiplier",
            ),
            (DemandChange::Delta(2e9), "shocks[1].demand.delta"),
        ] {
            let shocks = [
                ShockSpec::Demand {
                    region: None,
                    exam: None,
                    from_week: 0,
                    to_week: 0,
                    change: DemandChange::Multiplier(2.0),
                },
                ShockSpec::Demand {
                    region: None,
                    exam: Some("SPK".into()),
                    from_week: 1,
                    to_week: 2,
                    change,
                },
            ];
            let e = apply(&base, &shocks, "x").unwrap_err();
            assert_eq!(e.errors[0].path, field);
            assert!(e.to_string().contains("makes demand[0].weekly[1]"), "{e}");
        }
    }

    fn location_shock(id: &str, week: usize, factor: f64) -> ShockSpec {
        ShockSpec::Capacity {
            target: CapacityTarget::Location(id.into()),
            from_week: week,
            to_week: week,
            factor,
        }
    }

    #[test]
    fn every_bad_field_of_every_shock_is_named() {
        let base = tiny();
        let shocks = [
            ShockSpec::Demand {
                region: Some("NOWHERE".into()),
                exam: Some("XX".into()),
                from_week: 2,
                to_week: 1,
                change: DemandChange::Multiplier(-1.0),
            },
            location_shock("AMS", 0, 0.5),
            location_shock("NOPE", 7, 2.0),
        ];
        let e = apply(&base, &shocks, "x").unwrap_err();
        let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "shocks[0].demand.to_week",
                "shocks[0].demand.multiplier",
                "shocks[0].demand.region",
                "shocks[0].demand.exam",
                "shocks[2].capacity.factor",
                "shocks[2].capacity.from_week",
                "shocks[2].capacity.location",
            ]
        );
        assert_eq!(e.total, 7);
        // At most MAX_REPORTED_ERRORS kept, and the rest counted.
        let many = vec![shocks[2].clone(); 10];
        let e = apply(&base, &many, "x").unwrap_err();
        let kept = examcap_solver::validate::MAX_REPORTED_ERRORS;
        assert_eq!((e.errors.len(), e.total), (kept, 30));
        assert!(e.to_string().ends_with("\n... and 10 more"), "{e}");
    }
}
