//! The shock flags `examcap drill` and `examcap reschedule` share: demand
//! surges and deltas, location and rater-pool capacity factors, as DESIGN's
//! "surge, location closure, rater shortage". Each flag parses into a
//! [`ShockSpec`]; the server (or the offline re-plan) checks them against
//! the scenario, and its errors about `shocks[i]` are said back as the flag
//! that set shock i (`--location #2`).

use clap::Args;
use examcap::drill::{CapacityTarget, DemandChange, ShockSpec};
use examcap_solver::generate::{week_range as weeks, Surge};

#[derive(Debug, Args)]
#[group(id = "shocks", required = true, multiple = true)]
pub struct ShockArgs {
    /// Multiply one exam's demand in weeks FROM..=TO (all regions), e.g.
    /// SPREKEN_B1:1.6:10:16. Repeat for several.
    #[arg(long = "surge", value_name = "EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK",
          value_parser = surge)]
    surges: Vec<ShockSpec>,
    /// Add DELTA candidates a week (negative: fewer, never below 0) to a
    /// region's demand for an exam in weeks FROM..=TO, e.g.
    /// AMSTERDAM:SPREKEN_B1:40:10:16. `*` for every region or exam (that
    /// has a demand row); a region and exam without a row get one.
    #[arg(long = "delta", value_name = "REGION:EXAM:DELTA:FROM_WEEK:TO_WEEK",
          value_parser = delta, allow_hyphen_values = true)]
    deltas: Vec<ShockSpec>,
    /// Scale a location's capacity (every resource kind, regular and extra)
    /// by FACTOR in [0, 1] in weeks FROM..=TO; 0 closes it, e.g. AMS:0:10:11.
    #[arg(long = "location", value_name = "LOCATION:FACTOR:FROM_WEEK:TO_WEEK",
          value_parser = location)]
    locations: Vec<ShockSpec>,
    /// Scale a rater pool's capacity by FACTOR in [0, 1] in weeks
    /// FROM..=TO (a rater shortage), e.g. speaking_raters:0.7:10:20.
    #[arg(long = "raters", value_name = "POOL:FACTOR:FROM_WEEK:TO_WEEK",
          value_parser = raters)]
    raters: Vec<ShockSpec>,
}

impl ShockArgs {
    /// The shocks in the order they are applied: surges, then deltas (a
    /// delta after a surge adds to the surged demand), then capacity
    /// factors (which multiply, in any order); each with its flag, e.g.
    /// `--delta #2`.
    pub fn shocks(&self) -> Vec<(String, ShockSpec)> {
        let mut out = Vec::new();
        for (flag, list) in [
            ("--surge", &self.surges),
            ("--delta", &self.deltas),
            ("--location", &self.locations),
            ("--raters", &self.raters),
        ] {
            for (i, s) in list.iter().enumerate() {
                out.push((format!("{flag} #{}", i + 1), s.clone()));
            }
        }
        out
    }
}

/// The flag of a request field about shock i (`shocks[i]...`), from
/// `labels` (see [`ShockArgs::shocks`]); other fields through `other`.
pub fn flag_of(field: &str, labels: &[String], other: impl Fn(&str) -> String) -> String {
    match field.strip_prefix("shocks[") {
        Some(rest) => rest
            .split(']')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| labels.get(i).cloned())
            .unwrap_or_else(|| "the shocks".to_string()),
        None if field == "shocks" => "the shocks".to_string(),
        None => other(field),
    }
}

/// A refused request's field violations in the flags that set them (see
/// [`flag_of`]): the request's field paths are not what the user typed.
/// `None` without a BadRequest detail.
pub fn in_flags(
    s: &tonic::Status,
    labels: &[String],
    other: impl Fn(&str) -> String,
) -> Option<String> {
    use tonic_types::StatusExt;
    let br = s.get_details_bad_request()?;
    let said: Vec<String> = br
        .field_violations
        .iter()
        .map(|v| format!("{}: {}", flag_of(&v.field, labels, &other), v.description))
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// Parses `EXAM:MULTIPLIER:FROM:TO` into a demand shock on every region,
/// with the generator's `--surge` syntax; any exam id is accepted here (the
/// scenario decides which exist, and the error then names it).
pub fn surge(s: &str) -> Result<ShockSpec, String> {
    let g = Surge::parse_any_exam(s)?;
    Ok(ShockSpec::Demand {
        region: None,
        exam: Some(g.exam),
        from_week: g.from_week,
        to_week: g.to_week,
        change: DemandChange::Multiplier(g.multiplier),
    })
}

/// [`weeks`], with FROM within what a request carries (a week index is
/// 32-bit there; a larger one read as the largest, and the error named a
/// week nobody typed).
fn flag_weeks(flag: &str, s: &str, from: &str, to: &str) -> Result<(usize, usize), String> {
    let (from_week, to_week) = weeks(flag, s, from, to)?;
    if u32::try_from(from_week).is_err() {
        return Err(format!(
            "{flag} {s:?}: from week {from_week} is too large (at most {})",
            u32::MAX
        ));
    }
    Ok((from_week, to_week))
}

/// An id part of a flag's value: non-empty; `*` (where `any`) is `None`.
fn id(flag: &str, s: &str, what: &str, v: &str, any: bool) -> Result<Option<String>, String> {
    match v {
        "" => Err(format!("{flag} {s:?}: the {what} is empty")),
        "*" if any => Ok(None),
        v => Ok(Some(v.to_string())),
    }
}

/// Parses `REGION:EXAM:DELTA:FROM:TO` (`*` for every region or exam).
pub fn delta(s: &str) -> Result<ShockSpec, String> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let [region, exam, delta, from, to] = parts[..] else {
        return Err(format!(
            "--delta {s:?}: expected REGION:EXAM:DELTA:FROM_WEEK:TO_WEEK, e.g. \
             AMSTERDAM:SPREKEN_B1:40:10:16"
        ));
    };
    let d = delta
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && d.abs() <= examcap_solver::validate::MAX_VALUE)
        .ok_or_else(|| format!("--delta {s:?}: delta {delta:?} must be a number in -1e9..=1e9"))?;
    let (from_week, to_week) = flag_weeks("--delta", s, from, to)?;
    Ok(ShockSpec::Demand {
        region: id("--delta", s, "region", region, true)?,
        exam: id("--delta", s, "exam", exam, true)?,
        from_week,
        to_week,
        change: DemandChange::Delta(d),
    })
}

/// `ID:FACTOR:FROM:TO` of a capacity flag.
fn capacity(
    flag: &str,
    s: &str,
    target: fn(String) -> CapacityTarget,
) -> Result<ShockSpec, String> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let [who, factor, from, to] = parts[..] else {
        return Err(format!(
            "{flag} {s:?}: expected ID:FACTOR:FROM_WEEK:TO_WEEK, e.g. AMS:0:10:11"
        ));
    };
    let f = factor
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("{flag} {s:?}: factor {factor:?} must be a number in [0, 1]"))?;
    let (from_week, to_week) = flag_weeks(flag, s, from, to)?;
    let who = id(flag, s, "id", who, false)?.unwrap_or_default();
    Ok(ShockSpec::Capacity {
        target: target(who),
        from_week,
        to_week,
        factor: f,
    })
}

/// Parses `LOCATION:FACTOR:FROM:TO`.
pub fn location(s: &str) -> Result<ShockSpec, String> {
    capacity("--location", s, CapacityTarget::Location)
}

/// Parses `POOL:FACTOR:FROM:TO`.
pub fn raters(s: &str) -> Result<ShockSpec, String> {
    capacity("--raters", s, CapacityTarget::RatingPool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shock_flags_parse_or_say_why() {
        assert_eq!(
            delta("AMSTERDAM:SPK:40:10:16").unwrap(),
            ShockSpec::Demand {
                region: Some("AMSTERDAM".into()),
                exam: Some("SPK".into()),
                from_week: 10,
                to_week: 16,
                change: DemandChange::Delta(40.0),
            }
        );
        assert_eq!(
            delta("*:*:-5:0:3").unwrap(),
            ShockSpec::Demand {
                region: None,
                exam: None,
                from_week: 0,
                to_week: 3,
                change: DemandChange::Delta(-5.0),
            }
        );
        assert_eq!(
            location("AMS:0:10:11").unwrap(),
            ShockSpec::Capacity {
                target: CapacityTarget::Location("AMS".into()),
                from_week: 10,
                to_week: 11,
                factor: 0.0,
            }
        );
        assert_eq!(
            raters("speaking_raters:0.7:10:20").unwrap(),
            ShockSpec::Capacity {
                target: CapacityTarget::RatingPool("speaking_raters".into()),
                from_week: 10,
                to_week: 20,
                factor: 0.7,
            }
        );
        for (got, says) in [
            (delta("A:B:40:10"), "expected REGION:EXAM:DELTA"),
            (delta("A:B:NaN:1:2"), "delta \"NaN\" must be a number"),
            (delta(":B:4:1:2"), "the region is empty"),
            (delta("A:B:4:3:2"), "from week 3 is after to week 2"),
            (
                location("AMS:1.5:1:2"),
                "factor \"1.5\" must be a number in [0, 1]",
            ),
            (
                raters("P:0.5:-1:2"),
                "from week \"-1\" must be a week index >= 0",
            ),
            (raters("P:0.5:1"), "expected ID:FACTOR:FROM_WEEK:TO_WEEK"),
            (
                location("AMS:0:4294967296:4294967297"),
                "from week 4294967296 is too large (at most 4294967295)",
            ),
        ] {
            let e = got.unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_shocks_field_is_said_as_its_flag() {
        let labels: Vec<String> = ["--surge #1", "--location #1", "--location #2"]
            .map(String::from)
            .to_vec();
        let other = |f: &str| format!("<{f}>");
        assert_eq!(
            flag_of("shocks[2].capacity.factor", &labels, other),
            "--location #2"
        );
        assert_eq!(
            flag_of("shocks[0].demand.exam", &labels, other),
            "--surge #1"
        );
        assert_eq!(flag_of("shocks[9].x", &labels, other), "the shocks");
        assert_eq!(flag_of("shocks", &labels, other), "the shocks");
        assert_eq!(flag_of("freeze_weeks", &labels, other), "<freeze_weeks>");
    }
}
