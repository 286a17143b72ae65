//! Untrusted bytes → a validated [`Scenario`], or every violation with its
//! field path (`demand[3].weekly[7]: must be >= 0, got -2`).
//!
//! Two phases, as DESIGN.md "Scenario format `examcap/scenario@1`" asks:
//! [`parse_scenario`] reads the JSON value by hand and checks its shape
//! (types, required and unknown fields, JSON integers); then
//! [`validate_scenario`] checks ranges, ids, references, duplicates and the
//! model size. A document with shape errors gets only those: its semantic
//! errors would be guesses built on data that is not there.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::scenario::{
    parse_iso_week, Backlog, Demand, Exam, Location, RatingPool, Region, RegionOption, Resource,
    Scenario, Unavailable, Weights, FORMAT,
};

/// Largest scenario document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Longest planning horizon accepted.
pub const MAX_HORIZON_WEEKS: i64 = 520;
/// Errors kept in [`ValidationErrors::errors`]; [`ValidationErrors::total`] counts all.
pub const MAX_REPORTED_ERRORS: usize = 20;
/// Largest model accepted: the estimated LP column count, i.e. the horizon
/// times, per week, the x columns of every (region, exam) with demand or
/// backlog (one per option of the region) plus its B and s columns, one y
/// per location resource and one z per rating pool.
/// About 26× the national scenario (151k): the 4× split of it unmerged
/// (598k) peaks under 1 GiB, so this stays well inside a 24 GiB machine.
pub const MAX_MODEL_VARIABLES: u64 = 4_000_000;

/// Longest id (exam, location, region, pool) and resource kind, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest name (the scenario's, an exam's, a location's, a region's), in
/// characters. Names travel in every plan, list and report: unbounded, two
/// stored scenarios with 15 MiB names made `ListScenarios` too large to
/// answer for good.
pub const MAX_NAME_CHARS: usize = 200;

/// `base` with `suffix` appended, `base` cut so the result stays within
/// [`MAX_NAME_CHARS`] (a drill or re-plan names its scenario this way).
pub fn derived_name(base: &str, suffix: &str) -> String {
    let keep = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    base.chars().take(keep).chain(suffix.chars()).collect()
}

/// Why `name` cannot name a scenario, if it cannot. A drill or re-plan
/// request checks its `name` with its other fields, before the shocked
/// scenario (which carries it) is validated.
pub fn name_problem(name: &str) -> Option<String> {
    too_long(name, MAX_NAME_CHARS)
}

/// Largest magnitude of any number, integers (week indices) included.
pub const MAX_VALUE: f64 = 1e9;
const MAX_INT: i64 = 1_000_000_000;

/// One violation: `path` like `demand[3].weekly[7]`, message like `must be >= 0, got -2`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All violations found: at most [`MAX_REPORTED_ERRORS`] kept, in document
/// order; `total` is how many were found before truncation.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
    pub total: usize,
}

/// One `path: message` per line, then `... and N more` if truncated.
impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        let more = self.total.saturating_sub(self.errors.len());
        if more > 0 {
            write!(f, "\n... and {more} more")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Records one error; formats it only if it is kept.
    fn push(&mut self, path: &Path, message: impl fmt::Display) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            let (path, message) = (path.to_string(), message.to_string());
            self.errors.push(FieldError { path, message });
        }
    }

    /// Records one error at a path built by the caller (for documents
    /// other than a scenario, such as a published plan).
    pub(crate) fn push_at(&mut self, path: String, message: impl fmt::Display) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            let message = message.to_string();
            self.errors.push(FieldError { path, message });
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), Self> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// Errors found outside a scenario document (a request's shocks, say),
/// kept and counted as a scenario's are.
impl FromIterator<FieldError> for ValidationErrors {
    fn from_iter<I: IntoIterator<Item = FieldError>>(errors: I) -> Self {
        let mut out = ValidationErrors::default();
        for e in errors {
            out.push_at(e.path, e.message);
        }
        out
    }
}

/// Parses and validates an `examcap/scenario@1` document.
pub fn parse_scenario(bytes: &[u8]) -> Result<Scenario, ValidationErrors> {
    let mut r = Reader::default();
    if bytes.len() > MAX_DOCUMENT_BYTES {
        let n = bytes.len();
        r.errs.push(
            &Path::Root,
            format_args!("larger than the 16 MiB limit (read {n} bytes)"),
        );
        return Err(r.errs);
    }
    let value = match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(v)) => v,
        Err(e) => {
            r.errs
                .push(&Path::Root, format_args!("not valid JSON: {e}"));
            return Err(r.errs);
        }
    };
    match scenario(&mut r, &value) {
        Some(s) if r.errs.total == 0 => validate_scenario(&s).map(|()| s),
        _ => Err(r.errs),
    }
}

/// Checks an already-built scenario (e.g. converted from a proto message)
/// against every rule that its types do not enforce.
pub fn validate_scenario(s: &Scenario) -> Result<(), ValidationErrors> {
    let mut e = ValidationErrors::default();
    let root = Path::Root;
    if s.format != FORMAT {
        wrong_format(&mut e, &s.format);
    }
    if let Some(problem) = iso_week_problem(&s.start_week) {
        e.push(&root.key("start_week"), problem);
    }
    let horizon = s.horizon_weeks;
    let horizon = (1..=MAX_HORIZON_WEEKS as usize)
        .contains(&horizon)
        .then_some(horizon);
    if horizon.is_none() {
        horizon_error(&mut e, s.horizon_weeks);
    }
    // Plans, calendars and reservations name weeks as YYYY-Www and dates
    // as YYYY-MM-DD: the last week must still have a four-digit year.
    if let (Some(h), Some(monday)) = (horizon, parse_iso_week(&s.start_week)) {
        let last = monday + chrono::Duration::weeks(h as i64 - 1);
        if chrono::Datelike::iso_week(&last).year() > 9999 {
            e.push(
                &root.key("horizon_weeks"),
                format_args!(
                    "{h} weeks from {} run past 9999-W52, the last week a plan can name",
                    Quoted(&s.start_week)
                ),
            );
        }
    }

    let exam_ids = first_index(s.exams.iter().map(|x| x.id.as_str()));
    let location_ids = first_index(s.locations.iter().map(|x| x.id.as_str()));
    let pool_ids = first_index(s.rating_pools.iter().map(|x| x.id.as_str()));
    let region_ids = first_index(s.regions.iter().map(|x| x.id.as_str()));
    let kinds: HashSet<&str> = s
        .locations
        .iter()
        .flat_map(|l| &l.resources)
        .map(|r| r.kind.as_str())
        .collect();

    // Names and kinds are bounded, so every list and plan that carries them is.
    at_most(&mut e, &root.key("name"), &s.name, MAX_NAME_CHARS);

    let exams = root.key("exams");
    not_empty(&mut e, &exams, s.exams.is_empty());
    for (i, x) in s.exams.iter().enumerate() {
        let p = exams.at(i);
        check_id(&mut e, &exams, i, &x.id, &exam_ids);
        at_most(&mut e, &p.key("name"), &x.name, MAX_NAME_CHARS);
        at_most(&mut e, &p.key("resource"), &x.resource, MAX_ID_CHARS);
        if !kinds.contains(x.resource.as_str()) {
            let k = Quoted(&x.resource);
            e.push(
                &p.key("resource"),
                format_args!("no location has resource kind {k}"),
            );
        }
        amount(&mut e, &p.key("seat_minutes"), x.seat_minutes);
        match (&x.rating_pool, x.rating_minutes) {
            (Some(q), minutes) => {
                resolve(&mut e, &p.key("rating_pool"), "rating pool", q, &pool_ids);
                match minutes {
                    Some(m) => amount(&mut e, &p.key("rating_minutes"), m),
                    None => e.push(&p.key("rating_pool"), "given without rating_minutes"),
                }
            }
            (None, Some(_)) => e.push(&p.key("rating_minutes"), "given without rating_pool"),
            (None, None) => {}
        }
        int_range(
            &mut e,
            &p.key("target_wait_weeks"),
            x.target_wait_weeks,
            0,
            MAX_INT,
        );
        amount(&mut e, &p.key("priority"), x.priority);
    }

    let locations = root.key("locations");
    not_empty(&mut e, &locations, s.locations.is_empty());
    for (i, l) in s.locations.iter().enumerate() {
        let p = locations.at(i);
        check_id(&mut e, &locations, i, &l.id, &location_ids);
        at_most(&mut e, &p.key("name"), &l.name, MAX_NAME_CHARS);
        let resources = p.key("resources");
        let mut seen = HashMap::new();
        for (j, r) in l.resources.iter().enumerate() {
            let q = resources.at(j);
            at_most(&mut e, &q.key("kind"), &r.kind, MAX_ID_CHARS);
            let first = *seen.entry(r.kind.as_str()).or_insert(j);
            if first != j {
                let k = Quoted(&r.kind);
                e.push(
                    &q.key("kind"),
                    format_args!("kind {k} listed twice, first at {resources}[{first}]"),
                );
            }
            capacity(
                &mut e,
                &q,
                r.weekly_minutes,
                r.extra_weekly_minutes,
                r.extra_cost_per_minute,
            );
        }
        unavailable(&mut e, &p.key("unavailable"), &l.unavailable);
    }

    let pools = root.key("rating_pools");
    for (i, q) in s.rating_pools.iter().enumerate() {
        let p = pools.at(i);
        check_id(&mut e, &pools, i, &q.id, &pool_ids);
        capacity(
            &mut e,
            &p,
            q.weekly_minutes,
            q.extra_weekly_minutes,
            q.extra_cost_per_minute,
        );
        unavailable(&mut e, &p.key("unavailable"), &q.unavailable);
    }

    let regions = root.key("regions");
    not_empty(&mut e, &regions, s.regions.is_empty());
    for (i, r) in s.regions.iter().enumerate() {
        let p = regions.at(i);
        check_id(&mut e, &regions, i, &r.id, &region_ids);
        at_most(&mut e, &p.key("name"), &r.name, MAX_NAME_CHARS);
        let options = p.key("options");
        not_empty(&mut e, &options, r.options.is_empty());
        let mut seen = HashMap::new();
        for (j, o) in r.options.iter().enumerate() {
            let q = options.at(j);
            let lp = q.key("location");
            resolve(&mut e, &lp, "location", &o.location, &location_ids);
            let first = *seen.entry(o.location.as_str()).or_insert(j);
            if first != j {
                let l = Quoted(&o.location);
                e.push(
                    &lp,
                    format_args!("location {l} listed twice, first at {options}[{first}]"),
                );
            }
            amount(&mut e, &q.key("travel_cost"), o.travel_cost);
        }
    }

    let demand = root.key("demand");
    let mut rows = HashMap::new();
    for (i, d) in s.demand.iter().enumerate() {
        let p = demand.at(i);
        let first = *rows
            .entry((d.region.as_str(), d.exam.as_str()))
            .or_insert(i);
        if first != i {
            let (r, x) = (Quoted(&d.region), Quoted(&d.exam));
            e.push(
                &p,
                format_args!("second row for region {r} and exam {x}, first at demand[{first}]"),
            );
        }
        resolve(&mut e, &p.key("region"), "region", &d.region, &region_ids);
        resolve(&mut e, &p.key("exam"), "exam", &d.exam, &exam_ids);
        let weekly = p.key("weekly");
        if let Some(h) = horizon.filter(|&h| h != d.weekly.len()) {
            let n = d.weekly.len();
            e.push(&weekly, format_args!("expected {h} entries, got {n}"));
        }
        for (t, &x) in d.weekly.iter().enumerate() {
            amount(&mut e, &weekly.at(t), x);
        }
    }

    let backlog = root.key("backlog");
    for (i, b) in s.backlog.iter().enumerate() {
        let p = backlog.at(i);
        resolve(&mut e, &p.key("region"), "region", &b.region, &region_ids);
        resolve(&mut e, &p.key("exam"), "exam", &b.exam, &exam_ids);
        let week = p.key("registered_week");
        if b.registered_week >= 0 {
            e.push(
                &week,
                format_args!("must be < 0, got {}", b.registered_week),
            );
        } else {
            int_range(&mut e, &week, b.registered_week, -MAX_INT, -1);
        }
        amount(&mut e, &p.key("candidates"), b.candidates);
    }

    let weights = root.key("weights");
    amount(
        &mut e,
        &weights.key("waiting_per_candidate_week"),
        s.weights.waiting_per_candidate_week,
    );

    if let Some(h) = horizon {
        let options = |r: &str| {
            region_ids
                .get(r)
                .and_then(|&i| s.regions.get(i))
                .map_or(0, |r| r.options.len())
        };
        let mut pairs: HashSet<(&str, &str)> = rows.into_keys().collect();
        pairs.extend(
            s.backlog
                .iter()
                .map(|b| (b.region.as_str(), b.exam.as_str())),
        );
        let per_week = pairs.iter().map(|(r, _)| options(r) + 2).sum::<usize>()
            + s.locations.iter().map(|l| l.resources.len()).sum::<usize>()
            + s.rating_pools.len();
        let columns = (per_week as u64).saturating_mul(h as u64);
        if columns > MAX_MODEL_VARIABLES {
            e.push(
                &demand,
                format_args!("the model would be too large: about {columns} variables, at most {MAX_MODEL_VARIABLES}"),
            );
        }
    }
    e.into_result()
}

// ---------------------------------------------------------------------------
// Field paths, rendered only when an error is kept.

#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    At(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn at(&'a self, index: usize) -> Path<'a> {
        Path::At(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("document"),
            Path::Key(Path::Root, k) => f.write_str(k),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::At(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// A string from the document, quoted and escaped, cut at 64 characters.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(64) {
            Some((end, _)) => write!(f, "{:?}...", self.0.get(..end).unwrap_or_default()),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// A number as people write it: `-2`, `0.5`, `2e9` (not 1e300's 301
/// digits), for messages that quote the caller's input.
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_finite() && x != 0.0 && !(1e-6..1e9).contains(&x.abs()) {
            write!(f, "{x:e}")
        } else {
            write!(f, "{x}")
        }
    }
}

// ---------------------------------------------------------------------------
// Phase 1: the shape of the JSON value.

/// A JSON value whose objects have no duplicate keys (serde_json's `Value`
/// keeps the last silently; other parsers keep the first).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    Quoted(&key)
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Reads typed values out of a JSON value, recording every shape error.
/// Each reader returns `None` only after recording an error.
#[derive(Default)]
struct Reader {
    errs: ValidationErrors,
}

/// An object being read: the keys asked for so far are the known ones.
struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: Path<'p>,
    known: Vec<&'static str>,
}

impl Reader {
    fn wrong_type<T>(&mut self, v: &Value, p: Path, expected: &str) -> Option<T> {
        let got = match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        self.errs
            .push(&p, format_args!("must be {expected}, got {got}"));
        None
    }

    fn object<'v, 'p>(&mut self, v: &'v Value, path: Path<'p>) -> Option<Obj<'v, 'p>> {
        match v {
            Value::Object(map) => Some(Obj {
                map,
                path,
                known: Vec::new(),
            }),
            _ => self.wrong_type(v, path, "an object"),
        }
    }

    /// A required field.
    fn req<T>(
        &mut self,
        o: &mut Obj,
        key: &'static str,
        read: impl FnOnce(&mut Self, &Value, Path) -> Option<T>,
    ) -> Option<T> {
        o.known.push(key);
        match o.map.get(key) {
            Some(v) => read(self, v, o.path.key(key)),
            None => {
                self.errs.push(&o.path.key(key), "missing required field");
                None
            }
        }
    }

    /// An optional field: `Some(None)` when absent or null.
    fn opt<T>(
        &mut self,
        o: &mut Obj,
        key: &'static str,
        read: impl FnOnce(&mut Self, &Value, Path) -> Option<T>,
    ) -> Option<Option<T>> {
        o.known.push(key);
        match o.map.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => read(self, v, o.path.key(key)).map(Some),
        }
    }

    /// Rejects the fields no reader asked for (typos, fields of other formats).
    fn end(&mut self, o: Obj) {
        for key in o.map.keys().filter(|k| !o.known.contains(&k.as_str())) {
            let plain = !key.is_empty() && key.len() <= 64 && is_id(key);
            let shown = if plain {
                key.clone()
            } else {
                Quoted(key).to_string()
            };
            let known = o.known.join(", ");
            self.errs.push(
                &o.path.key(&shown),
                format_args!("unknown field, expected one of: {known}"),
            );
        }
    }

    fn array<T>(
        &mut self,
        v: &Value,
        p: Path,
        mut item: impl FnMut(&mut Self, &Value, Path) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = v else {
            return self.wrong_type(v, p, "an array");
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            out.push(item(self, v, p.at(i)));
        }
        out.into_iter().collect()
    }

    fn string(&mut self, v: &Value, p: Path) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => self.wrong_type(v, p, "a string"),
        }
    }

    fn number(&mut self, v: &Value, p: Path) -> Option<f64> {
        match v.as_f64() {
            Some(x) => Some(x),
            None => self.wrong_type(v, p, "a number"),
        }
    }

    /// A JSON integer: `8.0` is rejected.
    fn integer(&mut self, v: &Value, p: Path) -> Option<i64> {
        let Value::Number(n) = v else {
            return self.wrong_type(v, p, "an integer");
        };
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
        // A JSON integer past i64/u64 is read as a float, so `1e30` written
        // out in digits is an integer too large, not "not an integer". (A
        // float small enough to fit, `8.0`, is refused as a fraction.)
        let whole_float = n
            .as_f64()
            .filter(|x| x.is_finite() && x.fract() == 0.0 && x.abs() >= 2f64.powi(63));
        let rule = if n.is_u64() || whole_float.is_some_and(|x| x > 0.0) {
            "must be <= 1e9"
        } else if whole_float.is_some_and(|x| x < 0.0) {
            "must be >= -1e9"
        } else {
            "must be an integer"
        };
        self.errs.push(&p, format_args!("{rule}, got {n}"));
        None
    }

    fn horizon(&mut self, v: &Value, p: Path) -> Option<usize> {
        let h = self.integer(v, p)?;
        usize::try_from(h).ok().or_else(|| {
            horizon_error(&mut self.errs, h);
            None
        })
    }

    fn numbers(&mut self, v: &Value, p: Path) -> Option<Vec<f64>> {
        self.array(v, p, Self::number)
    }
}

fn scenario(r: &mut Reader, v: &Value) -> Option<Scenario> {
    let mut o = r.object(v, Path::Root)?;
    // A document of another format is not read any further.
    let format = r.req(&mut o, "format", Reader::string)?;
    if format != FORMAT {
        wrong_format(&mut r.errs, &format);
        return None;
    }
    let name = r.req(&mut o, "name", Reader::string);
    let start_week = r.req(&mut o, "start_week", Reader::string);
    let horizon_weeks = r.req(&mut o, "horizon_weeks", Reader::horizon);
    let exams = r.req(&mut o, "exams", |r, v, p| r.array(v, p, exam));
    let locations = r.req(&mut o, "locations", |r, v, p| r.array(v, p, location));
    let rating_pools = r.opt(&mut o, "rating_pools", |r, v, p| r.array(v, p, rating_pool));
    let regions = r.req(&mut o, "regions", |r, v, p| r.array(v, p, region));
    let demand = r.req(&mut o, "demand", |r, v, p| r.array(v, p, demand));
    let backlog = r.opt(&mut o, "backlog", |r, v, p| r.array(v, p, backlog));
    let weights = r.opt(&mut o, "weights", weights);
    r.end(o);
    Some(Scenario {
        format,
        name: name?,
        start_week: start_week?,
        horizon_weeks: horizon_weeks?,
        exams: exams?,
        locations: locations?,
        rating_pools: rating_pools?.unwrap_or_default(),
        regions: regions?,
        demand: demand?,
        backlog: backlog?.unwrap_or_default(),
        weights: weights?.unwrap_or_default(),
    })
}

fn exam(r: &mut Reader, v: &Value, p: Path) -> Option<Exam> {
    let mut o = r.object(v, p)?;
    let id = r.req(&mut o, "id", Reader::string);
    let name = r.req(&mut o, "name", Reader::string);
    let resource = r.req(&mut o, "resource", Reader::string);
    let seat_minutes = r.req(&mut o, "seat_minutes", Reader::number);
    let rating_pool = r.opt(&mut o, "rating_pool", Reader::string);
    let rating_minutes = r.opt(&mut o, "rating_minutes", Reader::number);
    let target_wait_weeks = r.req(&mut o, "target_wait_weeks", Reader::integer);
    let priority = r.opt(&mut o, "priority", Reader::number);
    r.end(o);
    Some(Exam {
        id: id?,
        name: name?,
        resource: resource?,
        seat_minutes: seat_minutes?,
        rating_pool: rating_pool?,
        rating_minutes: rating_minutes?,
        target_wait_weeks: target_wait_weeks?,
        priority: priority?.unwrap_or(1.0),
    })
}

fn location(r: &mut Reader, v: &Value, p: Path) -> Option<Location> {
    let mut o = r.object(v, p)?;
    let id = r.req(&mut o, "id", Reader::string);
    let name = r.req(&mut o, "name", Reader::string);
    let resources = r.req(&mut o, "resources", |r, v, p| r.array(v, p, resource));
    let unavailable = r.opt(&mut o, "unavailable", |r, v, p| {
        r.array(v, p, unavailable_range)
    });
    r.end(o);
    Some(Location {
        id: id?,
        name: name?,
        resources: resources?,
        unavailable: unavailable?.unwrap_or_default(),
    })
}

fn resource(r: &mut Reader, v: &Value, p: Path) -> Option<Resource> {
    let mut o = r.object(v, p)?;
    let kind = r.req(&mut o, "kind", Reader::string);
    let weekly_minutes = r.req(&mut o, "weekly_minutes", Reader::number);
    let extra_weekly_minutes = r.req(&mut o, "extra_weekly_minutes", Reader::number);
    let extra_cost_per_minute = r.req(&mut o, "extra_cost_per_minute", Reader::number);
    r.end(o);
    Some(Resource {
        kind: kind?,
        weekly_minutes: weekly_minutes?,
        extra_weekly_minutes: extra_weekly_minutes?,
        extra_cost_per_minute: extra_cost_per_minute?,
    })
}

fn unavailable_range(r: &mut Reader, v: &Value, p: Path) -> Option<Unavailable> {
    let mut o = r.object(v, p)?;
    let from_week = r.req(&mut o, "from_week", Reader::integer);
    let to_week = r.req(&mut o, "to_week", Reader::integer);
    let factor = r.req(&mut o, "factor", Reader::number);
    r.end(o);
    Some(Unavailable {
        from_week: from_week?,
        to_week: to_week?,
        factor: factor?,
    })
}

fn rating_pool(r: &mut Reader, v: &Value, p: Path) -> Option<RatingPool> {
    let mut o = r.object(v, p)?;
    let id = r.req(&mut o, "id", Reader::string);
    let weekly_minutes = r.req(&mut o, "weekly_minutes", Reader::number);
    let extra_weekly_minutes = r.req(&mut o, "extra_weekly_minutes", Reader::number);
    let extra_cost_per_minute = r.req(&mut o, "extra_cost_per_minute", Reader::number);
    let unavailable = r.opt(&mut o, "unavailable", |r, v, p| {
        r.array(v, p, unavailable_range)
    });
    r.end(o);
    Some(RatingPool {
        id: id?,
        weekly_minutes: weekly_minutes?,
        extra_weekly_minutes: extra_weekly_minutes?,
        extra_cost_per_minute: extra_cost_per_minute?,
        unavailable: unavailable?.unwrap_or_default(),
    })
}

fn region(r: &mut Reader, v: &Value, p: Path) -> Option<Region> {
    let mut o = r.object(v, p)?;
    let id = r.req(&mut o, "id", Reader::string);
    let name = r.req(&mut o, "name", Reader::string);
    let options = r.req(&mut o, "options", |r, v, p| r.array(v, p, region_option));
    r.end(o);
    Some(Region {
        id: id?,
        name: name?,
        options: options?,
    })
}

fn region_option(r: &mut Reader, v: &Value, p: Path) -> Option<RegionOption> {
    let mut o = r.object(v, p)?;
    let location = r.req(&mut o, "location", Reader::string);
    let travel_cost = r.req(&mut o, "travel_cost", Reader::number);
    r.end(o);
    Some(RegionOption {
        location: location?,
        travel_cost: travel_cost?,
    })
}

fn demand(r: &mut Reader, v: &Value, p: Path) -> Option<Demand> {
    let mut o = r.object(v, p)?;
    let region = r.req(&mut o, "region", Reader::string);
    let exam = r.req(&mut o, "exam", Reader::string);
    let weekly = r.req(&mut o, "weekly", Reader::numbers);
    r.end(o);
    Some(Demand {
        region: region?,
        exam: exam?,
        weekly: weekly?,
    })
}

fn backlog(r: &mut Reader, v: &Value, p: Path) -> Option<Backlog> {
    let mut o = r.object(v, p)?;
    let region = r.req(&mut o, "region", Reader::string);
    let exam = r.req(&mut o, "exam", Reader::string);
    let registered_week = r.req(&mut o, "registered_week", Reader::integer);
    let candidates = r.req(&mut o, "candidates", Reader::number);
    r.end(o);
    Some(Backlog {
        region: region?,
        exam: exam?,
        registered_week: registered_week?,
        candidates: candidates?,
    })
}

fn weights(r: &mut Reader, v: &Value, p: Path) -> Option<Weights> {
    let mut o = r.object(v, p)?;
    let waiting = r.opt(&mut o, "waiting_per_candidate_week", Reader::number);
    r.end(o);
    let default = Weights::default().waiting_per_candidate_week;
    Some(Weights {
        waiting_per_candidate_week: waiting?.unwrap_or(default),
    })
}

// ---------------------------------------------------------------------------
// Phase 2 helpers.

fn wrong_format(e: &mut ValidationErrors, format: &str) {
    let got = Quoted(format);
    e.push(
        &Path::Root.key("format"),
        format_args!("must be {FORMAT:?}, got {got}"),
    );
}

fn horizon_error(e: &mut ValidationErrors, h: impl fmt::Display) {
    e.push(
        &Path::Root.key("horizon_weeks"),
        format_args!("must be between 1 and {MAX_HORIZON_WEEKS}, got {h}"),
    );
}

/// `YYYY-Www` exactly (`parse_iso_week` alone also takes `+202-W14`), naming a week that exists.
/// Why `s` is not an existing ISO week `YYYY-Www`, or `None` if it is.
/// Shared with the CLI's `--start-week` flags, so both say that a year has
/// no week 53 rather than that the form is wrong.
pub fn iso_week_problem(s: &str) -> Option<String> {
    if is_iso_week(s) {
        return None;
    }
    let w = Quoted(s);
    // Well formed but past the year's last ISO week (2021-W53, say).
    let weeks_of = |y: &str| {
        let y: i32 = y.parse().ok()?;
        let dec28 = chrono::NaiveDate::from_ymd_opt(y, 12, 28)?;
        Some((y, chrono::Datelike::iso_week(&dec28).week()))
    };
    let short_year = s
        .split_once("-W")
        .filter(|(y, w)| y.len() == 4 && w.len() == 2 && w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(y, _)| weeks_of(y));
    Some(match short_year {
        Some((year, 52)) if s.ends_with("-W53") => format!("{year} has 52 ISO weeks, so no {w}"),
        _ => format!("must be an existing ISO week YYYY-Www, got {w}"),
    })
}

fn is_iso_week(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    b.len() == 8
        && digits(&b[..4])
        && &b[4..6] == b"-W"
        && digits(&b[6..])
        && parse_iso_week(s).is_some()
}

fn is_id(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The index of each key's first occurrence.
fn first_index<'a, K: Hash + Eq>(keys: impl Iterator<Item = K> + 'a) -> HashMap<K, usize> {
    let mut index = HashMap::new();
    for (i, k) in keys.enumerate() {
        index.entry(k).or_insert(i);
    }
    index
}

/// What is wrong with `text` if it is longer than `max` characters (not bytes).
fn too_long(text: &str, max: usize) -> Option<String> {
    let n = text.chars().count();
    (n > max).then(|| format!("longer than {max} characters ({n})"))
}

fn at_most(e: &mut ValidationErrors, p: &Path, text: &str, max: usize) {
    if let Some(m) = too_long(text, max) {
        e.push(p, m);
    }
}

fn check_id(
    e: &mut ValidationErrors,
    list: &Path,
    i: usize,
    id: &str,
    index: &HashMap<&str, usize>,
) {
    let item = list.at(i);
    let p = item.key("id");
    if id.is_empty() {
        e.push(&p, "must not be empty");
    } else if let Some(m) = too_long(id, MAX_ID_CHARS) {
        e.push(&p, m);
    } else if !is_id(id) {
        e.push(
            &p,
            format_args!("must contain only A-Z a-z 0-9 _ . -, got {}", Quoted(id)),
        );
    } else if let Some(&first) = index.get(id).filter(|&&first| first != i) {
        e.push(
            &p,
            format_args!("duplicate id {}, first at {list}[{first}]", Quoted(id)),
        );
    }
}

fn resolve(e: &mut ValidationErrors, p: &Path, what: &str, id: &str, index: &HashMap<&str, usize>) {
    if !index.contains_key(id) {
        e.push(p, format_args!("unknown {what} {}", Quoted(id)));
    }
}

fn not_empty(e: &mut ValidationErrors, p: &Path, empty: bool) {
    if empty {
        e.push(p, "must not be empty");
    }
}

/// Finite, >= 0 and <= `max`.
fn bounded(e: &mut ValidationErrors, p: &Path, x: f64, max: f64) {
    if !x.is_finite() {
        e.push(p, format_args!("must be finite, got {x}"));
    } else if x < 0.0 {
        e.push(p, format_args!("must be >= 0, got {}", Num(x)));
    } else if x > max {
        e.push(p, format_args!("must be <= {}, got {}", Num(max), Num(x)));
    }
}

fn amount(e: &mut ValidationErrors, p: &Path, x: f64) {
    bounded(e, p, x, MAX_VALUE);
}

fn int_range(e: &mut ValidationErrors, p: &Path, x: i64, min: i64, max: i64) {
    if x < min {
        e.push(p, format_args!("must be >= {}, got {x}", Num(min as f64)));
    } else if x > max {
        e.push(p, format_args!("must be <= {}, got {x}", Num(max as f64)));
    }
}

fn capacity(e: &mut ValidationErrors, p: &Path, weekly: f64, extra: f64, cost: f64) {
    amount(e, &p.key("weekly_minutes"), weekly);
    amount(e, &p.key("extra_weekly_minutes"), extra);
    amount(e, &p.key("extra_cost_per_minute"), cost);
}

fn unavailable(e: &mut ValidationErrors, list: &Path, ranges: &[Unavailable]) {
    for (i, u) in ranges.iter().enumerate() {
        let p = list.at(i);
        let from = p.key("from_week");
        int_range(e, &from, u.from_week, 0, MAX_INT);
        int_range(e, &p.key("to_week"), u.to_week, 0, MAX_INT);
        if u.from_week > u.to_week {
            e.push(
                &from,
                format_args!("from_week {} > to_week {}", u.from_week, u.to_week),
            );
        }
        bounded(e, &p.key("factor"), u.factor, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small valid scenario: two exams (one rated), two locations, two regions.
    fn valid() -> Value {
        let res = |kind: &str| json!({"kind": kind, "weekly_minutes": 1000, "extra_weekly_minutes": 200, "extra_cost_per_minute": 0.9});
        json!({
            "format": FORMAT,
            "name": "test",
            "start_week": "2026-W14",
            "horizon_weeks": 4,
            "exams": [
                {"id": "SPK", "name": "Spreken", "resource": "booth", "seat_minutes": 45,
                 "rating_pool": "raters", "rating_minutes": 15, "target_wait_weeks": 2},
                {"id": "LEZ", "name": "Lezen", "resource": "pc", "seat_minutes": 60,
                 "target_wait_weeks": 1, "priority": 2.0}
            ],
            "locations": [
                {"id": "AMS", "name": "Amsterdam", "resources": [res("booth"), res("pc")],
                 "unavailable": [{"from_week": 1, "to_week": 2, "factor": 0.5}]},
                {"id": "UTR", "name": "Utrecht", "resources": [res("pc")]}
            ],
            "rating_pools": [
                {"id": "raters", "weekly_minutes": 5000, "extra_weekly_minutes": 0, "extra_cost_per_minute": 1.5}
            ],
            "regions": [
                {"id": "R1", "name": "Noord", "options": [{"location": "AMS", "travel_cost": 0},
                                                         {"location": "UTR", "travel_cost": 2.5}]},
                {"id": "R2", "name": "Zuid", "options": [{"location": "UTR", "travel_cost": 0}]}
            ],
            "demand": [
                {"region": "R1", "exam": "SPK", "weekly": [10, 12, 0, 5]},
                {"region": "R2", "exam": "LEZ", "weekly": [3, 3, 3, 3.5]}
            ],
            "backlog": [{"region": "R1", "exam": "SPK", "registered_week": -2, "candidates": 7}],
            "weights": {"waiting_per_candidate_week": 1.0}
        })
    }

    fn parse(v: &Value) -> Result<Scenario, ValidationErrors> {
        parse_scenario(&serde_json::to_vec(v).unwrap())
    }

    fn remove(v: &mut Value, key: &str) {
        v.as_object_mut().unwrap().remove(key);
    }

    /// Asserts that `v` is rejected and its first error is at `path` with `message` in it.
    #[track_caller]
    fn rejects(v: Value, path: &str, message: &str) -> ValidationErrors {
        let err = parse(&v).expect_err("should be rejected");
        assert_eq!(err.errors[0].path, path, "{err}");
        assert!(err.errors[0].message.contains(message), "{err}");
        err
    }

    #[test]
    fn valid_scenario_parses() {
        let s = parse(&valid()).unwrap();
        assert_eq!(s.horizon_weeks, 4);
        assert_eq!(s.exams[0].priority, 1.0);
        assert_eq!(s.exams[1].priority, 2.0);
        assert_eq!(s.exams[0].rating_pool.as_deref(), Some("raters"));
        assert_eq!(s.demand[1].weekly, vec![3.0, 3.0, 3.0, 3.5]);
        assert_eq!(validate_scenario(&s), Ok(()));
    }

    #[test]
    fn round_trips() {
        let s = parse(&valid()).unwrap();
        let again = parse_scenario(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        assert_eq!(again.content_hash(), s.content_hash());
    }

    #[test]
    fn format_must_match() {
        let mut v = valid();
        v["format"] = json!("examcap/scenario@2");
        v["exmas"] = json!([]);
        let err = rejects(
            v,
            "format",
            "must be \"examcap/scenario@1\", got \"examcap/scenario@2\"",
        );
        assert_eq!(err.total, 1, "nothing else is read: {err}");
        let mut v = valid();
        remove(&mut v, "format");
        rejects(v, "format", "missing required field");
    }

    #[test]
    fn name_must_be_a_string() {
        let mut v = valid();
        v["name"] = json!(7);
        rejects(v, "name", "must be a string, got a number");
    }

    #[test]
    fn the_horizon_ends_by_the_year_9999() {
        let mut v = valid();
        v["start_week"] = json!("9999-W49");
        assert!(parse(&v).is_ok(), "{:?}", parse(&v).err());
        v["start_week"] = json!("9999-W50");
        rejects(
            v,
            "horizon_weeks",
            "4 weeks from \"9999-W50\" run past 9999-W52",
        );
    }

    #[test]
    fn start_week_must_exist() {
        for bad in ["2026-W54", "2026-14", "2026-W1", "+202-W14", "2026-W+1", ""] {
            let mut v = valid();
            v["start_week"] = json!(bad);
            rejects(v, "start_week", "must be an existing ISO week");
        }
        let mut v = valid();
        v["start_week"] = json!("2020-W53");
        parse(&v).unwrap();
    }

    #[test]
    fn horizon_in_range() {
        for (h, msg) in [
            (json!(0), "must be between 1 and 520, got 0"),
            (json!(521), "got 521"),
            (json!(-3), "got -3"),
            (json!(8.0), "must be an integer, got 8.0"),
            (json!(u64::MAX), "must be <= 1e9"),
            (json!(1e30), "must be <= 1e9, got 1e+30"),
            (json!("4"), "must be an integer, got a string"),
        ] {
            let mut v = valid();
            v["horizon_weeks"] = h;
            let err = rejects(v, "horizon_weeks", msg);
            assert_eq!(err.total, 1, "no cascade onto weekly lengths: {err}");
        }
    }

    /// Integers too large for i64/u64 reach the reader as floats: written
    /// out in digits they are still integers, too large (found by an
    /// independent review: "must be an integer, got 1e+30").
    #[test]
    fn integers_past_u64_written_in_digits_are_too_large_not_fractions() {
        let text = serde_json::to_string(&valid()).unwrap();
        for (field, digits, message) in [
            (
                "\"horizon_weeks\":4",
                "18446744073709551616",
                "must be <= 1e9",
            ),
            (
                "\"horizon_weeks\":4",
                "1000000000000000000000000000000",
                "must be <= 1e9",
            ),
            (
                "\"registered_week\":-2",
                "-9223372036854775809",
                "must be >= -1e9",
            ),
        ] {
            assert!(text.contains(field), "{field} not in {text}");
            let key = field.split(':').next().unwrap();
            let bad = text.replacen(field, &format!("{key}:{digits}"), 1);
            let err = parse_scenario(bad.as_bytes()).expect_err("too large");
            assert!(err.errors[0].message.contains(message), "{digits}: {err}");
            assert!(
                !err.errors[0].message.contains("integer"),
                "{digits}: {err}"
            );
        }
    }

    #[test]
    fn integers_reject_fractions() {
        let mut v = valid();
        v["exams"][0]["target_wait_weeks"] = json!(8.0);
        rejects(
            v,
            "exams[0].target_wait_weeks",
            "must be an integer, got 8.0",
        );
        let mut v = valid();
        v["locations"][0]["unavailable"][0]["to_week"] = json!(2.5);
        rejects(
            v,
            "locations[0].unavailable[0].to_week",
            "must be an integer, got 2.5",
        );
        let mut v = valid();
        v["backlog"][0]["registered_week"] = json!(-2.0);
        rejects(
            v,
            "backlog[0].registered_week",
            "must be an integer, got -2.0",
        );
    }

    #[test]
    fn target_wait_weeks_non_negative() {
        let mut v = valid();
        v["exams"][1]["target_wait_weeks"] = json!(0);
        assert_eq!(parse(&v).unwrap().exams[1].target_wait_weeks, 0);
        v["exams"][1]["target_wait_weeks"] = json!(-1);
        rejects(v, "exams[1].target_wait_weeks", "must be >= 0, got -1");
        let mut v = valid();
        v["exams"][1]["target_wait_weeks"] = json!(2_000_000_000);
        rejects(
            v,
            "exams[1].target_wait_weeks",
            "must be <= 1e9, got 2000000000",
        );
    }

    #[test]
    fn unavailable_ranges() {
        let mut v = valid();
        v["locations"][0]["unavailable"][0] = json!({"from_week": 5, "to_week": 3, "factor": 0.5});
        rejects(
            v,
            "locations[0].unavailable[0].from_week",
            "from_week 5 > to_week 3",
        );
        let mut v = valid();
        v["rating_pools"][0]["unavailable"] =
            json!([{"from_week": -1, "to_week": 3, "factor": 0.5}]);
        rejects(
            v,
            "rating_pools[0].unavailable[0].from_week",
            "must be >= 0, got -1",
        );
        let mut v = valid();
        v["locations"][0]["unavailable"][0]["factor"] = json!(1.5);
        rejects(
            v,
            "locations[0].unavailable[0].factor",
            "must be <= 1, got 1.5",
        );
        // Past the horizon is kept as given.
        let mut v = valid();
        v["locations"][0]["unavailable"][0] = json!({"from_week": 3, "to_week": 100, "factor": 0});
        assert_eq!(parse(&v).unwrap().locations[0].unavailable[0].to_week, 100);
    }

    #[test]
    fn registered_week_negative() {
        let mut v = valid();
        v["backlog"][0]["registered_week"] = json!(0);
        rejects(v, "backlog[0].registered_week", "must be < 0, got 0");
        let mut v = valid();
        v["backlog"][0]["registered_week"] = json!(i64::MIN);
        rejects(v, "backlog[0].registered_week", "must be >= -1e9");
    }

    #[test]
    fn numbers_in_range() {
        let mut v = valid();
        v["exams"][0]["seat_minutes"] = json!(-2);
        rejects(v, "exams[0].seat_minutes", "must be >= 0, got -2");
        let mut v = valid();
        v["locations"][1]["resources"][0]["weekly_minutes"] = json!(2e9);
        rejects(
            v,
            "locations[1].resources[0].weekly_minutes",
            "must be <= 1e9, got 2e9",
        );
        let mut v = valid();
        v["regions"][0]["options"][1]["travel_cost"] = json!(-0.5);
        rejects(
            v,
            "regions[0].options[1].travel_cost",
            "must be >= 0, got -0.5",
        );
        let mut v = valid();
        v["weights"]["waiting_per_candidate_week"] = json!(-1);
        rejects(
            v,
            "weights.waiting_per_candidate_week",
            "must be >= 0, got -1",
        );
        let mut v = valid();
        v["exams"][1]["priority"] = json!(-1);
        rejects(v, "exams[1].priority", "must be >= 0");
        let mut v = valid();
        v["backlog"][0]["candidates"] = json!("7");
        rejects(v, "backlog[0].candidates", "must be a number, got a string");
    }

    #[test]
    fn non_finite_numbers_from_other_sources() {
        let mut s = parse(&valid()).unwrap();
        s.exams[0].seat_minutes = f64::NAN;
        s.rating_pools[0].extra_cost_per_minute = f64::INFINITY;
        let err = validate_scenario(&s).unwrap_err();
        assert_eq!(err.errors[0].path, "exams[0].seat_minutes");
        assert_eq!(err.errors[0].message, "must be finite, got NaN");
        assert_eq!(err.errors[1].path, "rating_pools[0].extra_cost_per_minute");
    }

    #[test]
    fn rating_pool_and_minutes_come_together() {
        let mut v = valid();
        v["exams"][1]["rating_minutes"] = json!(10);
        rejects(v, "exams[1].rating_minutes", "given without rating_pool");
        let mut v = valid();
        remove(&mut v["exams"][0], "rating_minutes");
        rejects(v, "exams[0].rating_pool", "given without rating_minutes");
        let mut v = valid();
        v["exams"][0]["rating_pool"] = json!("writers");
        rejects(v, "exams[0].rating_pool", "unknown rating pool \"writers\"");
    }

    #[test]
    fn ids_well_formed() {
        let mut v = valid();
        v["regions"][1]["id"] = json!("");
        rejects(v, "regions[1].id", "must not be empty");
        let mut v = valid();
        v["rating_pools"][0]["id"] = json!("rater pool");
        v["exams"][0]["rating_pool"] = json!("rater pool");
        rejects(
            v,
            "rating_pools[0].id",
            "must contain only A-Z a-z 0-9 _ . -, got \"rater pool\"",
        );
    }

    #[test]
    fn duplicate_ids() {
        let mut v = valid();
        v["exams"][1]["id"] = json!("SPK");
        rejects(v, "exams[1].id", "duplicate id \"SPK\", first at exams[0]");
        let mut v = valid();
        v["locations"][1]["id"] = json!("AMS");
        rejects(v, "locations[1].id", "first at locations[0]");
        let mut v = valid();
        let pool = v["rating_pools"][0].clone();
        v["rating_pools"].as_array_mut().unwrap().push(pool);
        rejects(v, "rating_pools[1].id", "first at rating_pools[0]");
        let mut v = valid();
        v["regions"][1]["id"] = json!("R1");
        rejects(v, "regions[1].id", "first at regions[0]");
    }

    #[test]
    fn references_resolve() {
        let mut v = valid();
        v["regions"][1]["options"][0]["location"] = json!("RTM");
        rejects(
            v,
            "regions[1].options[0].location",
            "unknown location \"RTM\"",
        );
        let mut v = valid();
        v["demand"][1]["exam"] = json!("SPK2");
        rejects(v, "demand[1].exam", "unknown exam \"SPK2\"");
        let mut v = valid();
        v["demand"][0]["region"] = json!("R9");
        rejects(v, "demand[0].region", "unknown region \"R9\"");
        let mut v = valid();
        v["backlog"][0]["region"] = json!("R9");
        rejects(v, "backlog[0].region", "unknown region \"R9\"");
        let mut v = valid();
        v["backlog"][0]["exam"] = json!("X");
        rejects(v, "backlog[0].exam", "unknown exam \"X\"");
    }

    #[test]
    fn region_options() {
        let mut v = valid();
        v["regions"][1]["options"] = json!([]);
        rejects(v, "regions[1].options", "must not be empty");
        let mut v = valid();
        v["regions"][0]["options"][1]["location"] = json!("AMS");
        rejects(
            v,
            "regions[0].options[1].location",
            "location \"AMS\" listed twice, first at regions[0].options[0]",
        );
    }

    #[test]
    fn resource_kinds() {
        let mut v = valid();
        v["locations"][0]["resources"][1]["kind"] = json!("booth");
        rejects(
            v,
            "locations[0].resources[1].kind",
            "kind \"booth\" listed twice, first at locations[0].resources[0]",
        );
        let mut v = valid();
        v["exams"][1]["resource"] = json!("desk");
        rejects(
            v,
            "exams[1].resource",
            "no location has resource kind \"desk\"",
        );
    }

    #[test]
    fn demand_rows() {
        let mut v = valid();
        v["demand"][1] = json!({"region": "R1", "exam": "SPK", "weekly": [1, 1, 1, 1]});
        rejects(v, "demand[1]", "first at demand[0]");
        let mut v = valid();
        v["demand"][0]["weekly"] = json!([1, 2, 3]);
        rejects(v, "demand[0].weekly", "expected 4 entries, got 3");
        let mut v = valid();
        v["demand"][1]["weekly"][2] = json!(-2);
        let err = rejects(v, "demand[1].weekly[2]", "must be >= 0, got -2");
        assert_eq!(err.to_string(), "demand[1].weekly[2]: must be >= 0, got -2");
    }

    #[test]
    fn backlog_rows_may_repeat() {
        let mut v = valid();
        let row = v["backlog"][0].clone();
        v["backlog"].as_array_mut().unwrap().push(row);
        let s = parse(&v).unwrap();
        assert_eq!(s.backlog.len(), 2);
        assert_eq!(s.backlog[0], s.backlog[1]);
    }

    #[test]
    fn optional_fields_default() {
        let mut v = valid();
        for key in ["rating_pools", "backlog", "weights"] {
            remove(&mut v, key);
        }
        remove(&mut v["exams"][0], "rating_pool");
        remove(&mut v["exams"][0], "rating_minutes");
        remove(&mut v["locations"][0], "unavailable");
        v["exams"][1]["priority"] = Value::Null;
        let s = parse(&v).unwrap();
        assert!(
            s.rating_pools.is_empty()
                && s.backlog.is_empty()
                && s.locations[0].unavailable.is_empty()
        );
        assert_eq!(s.weights, Weights::default());
        assert_eq!(s.exams[1].priority, 1.0);
        assert_eq!(s.exams[0].rating_pool, None);

        let mut v = valid();
        v["weights"] = json!({});
        assert_eq!(parse(&v).unwrap().weights.waiting_per_candidate_week, 1.0);
    }

    #[test]
    fn required_lists_not_empty() {
        for key in ["exams", "locations", "regions"] {
            let mut v = valid();
            v[key] = json!([]);
            let err = parse(&v).unwrap_err();
            assert!(
                err.errors
                    .iter()
                    .any(|e| e.path == key && e.message == "must not be empty"),
                "{err}"
            );
        }
        let mut v = valid();
        v["demand"] = json!([]);
        v["backlog"] = json!([]);
        parse(&v).unwrap();
    }

    #[test]
    fn missing_and_unknown_fields() {
        let mut v = valid();
        remove(&mut v, "demand");
        rejects(v, "demand", "missing required field");
        let mut v = valid();
        remove(
            &mut v["locations"][1]["resources"][0],
            "extra_cost_per_minute",
        );
        rejects(
            v,
            "locations[1].resources[0].extra_cost_per_minute",
            "missing required field",
        );
        let mut v = valid();
        v["exmas"] = json!([]);
        rejects(v, "exmas", "unknown field, expected one of: format, name,");
        let mut v = valid();
        v["exams"][1]["seat_minute"] = json!(60);
        rejects(v, "exams[1].seat_minute", "unknown field");
        let mut v = valid();
        v["weights"]["bad key\n"] = json!(1);
        rejects(v, "weights.\"bad key\\n\"", "unknown field");
        let mut v = valid();
        v["weights"][""] = json!(1);
        rejects(v, "weights.\"\"", "unknown field");
    }

    #[test]
    fn shape_errors_are_all_reported_without_cascade() {
        let mut v = valid();
        v["exams"][0]["id"] = json!(1);
        v["demand"][1]["weekly"][0] = json!("3");
        v["regions"] = json!({});
        let err = parse(&v).unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["exams[0].id", "regions", "demand[1].weekly[0]"]);
        assert_eq!(err.total, 3);
    }

    #[test]
    fn errors_truncated_in_document_order() {
        let mut v = valid();
        v["horizon_weeks"] = json!(30);
        v["demand"][0]["weekly"] = json!(vec![-1; 30]);
        v["demand"][1]["weekly"] = json!(vec![-1; 30]);
        let err = parse(&v).unwrap_err();
        assert_eq!(err.total, 60);
        assert_eq!(err.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(err.errors[0].path, "demand[0].weekly[0]");
        assert_eq!(err.errors[19].path, "demand[0].weekly[19]");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 21);
        assert!(text.ends_with("... and 40 more"), "{text}");
    }

    #[test]
    fn model_size_guard() {
        let mut v = valid();
        let n = 1000;
        v["horizon_weeks"] = json!(520);
        v["locations"] = (0..n).map(|i| json!({"id": format!("L{i}"), "name": "x", "resources": [
            {"kind": "booth", "weekly_minutes": 1, "extra_weekly_minutes": 0, "extra_cost_per_minute": 0},
            {"kind": "pc", "weekly_minutes": 1, "extra_weekly_minutes": 0, "extra_cost_per_minute": 0}]})).collect();
        let options: Vec<Value> = (0..n)
            .map(|i| json!({"location": format!("L{i}"), "travel_cost": 0}))
            .collect();
        v["regions"] = json!([{"id": "R1", "name": "x", "options": options}]);
        v["exams"] = (0..40)
            .map(|i| json!({"id": format!("E{i}"), "name": "x", "resource": "pc", "seat_minutes": 1, "target_wait_weeks": 1}))
            .collect();
        v["demand"] = (0..40)
            .map(|i| json!({"region": "R1", "exam": format!("E{i}"), "weekly": vec![1; 520]}))
            .collect();
        remove(&mut v, "backlog");
        rejects(v.clone(), "demand", "the model would be too large");
        // 5 rows × (1000 options + B + s) × 520 weeks + one y per resource ≈ 3.65M.
        v["demand"].as_array_mut().unwrap().truncate(5);
        parse(&v).unwrap();
    }

    #[test]
    fn garbage_is_rejected() {
        let cases: [(&[u8], &str); 10] = [
            (b"", "EOF while parsing"),
            (b"hello", "at line 1 column 1"),
            (
                br#"{"format": "examcap/scenario@1", "name": "#,
                "EOF while parsing",
            ),
            (br#"{"horizon_weeks": NaN}"#, "at line 1 column 19"),
            (br#"{"horizon_weeks": 1e400}"#, "number out of range"),
            (b"\xff\xfe{}", "at line 1 column 1"),
            (b"{\"name\": \"\xc3\x28\"}", "invalid unicode"),
            (
                br#"{"format": 1, "format": 2}"#,
                "duplicate key \"format\" at line 1 column",
            ),
            (b"{} {}", "trailing characters"),
            (&[b'['; 100_000], "recursion limit exceeded"),
        ];
        for (bytes, msg) in cases {
            let err = parse_scenario(bytes).unwrap_err();
            assert_eq!(err.total, 1);
            assert_eq!(err.errors[0].path, "document");
            assert!(
                err.errors[0].message.starts_with("not valid JSON: "),
                "{err}"
            );
            assert!(err.errors[0].message.contains(msg), "{err}");
        }
        for (doc, path, msg) in [
            (json!([]), "document", "must be an object, got an array"),
            (json!(null), "document", "must be an object, got null"),
            (
                json!({"format": FORMAT, "horizon_weeks": "26"}),
                "name",
                "missing required field",
            ),
        ] {
            rejects(doc, path, msg);
        }
    }

    #[test]
    fn oversized_document() {
        let bytes = vec![b' '; 17 * 1024 * 1024];
        let err = parse_scenario(&bytes).unwrap_err();
        assert_eq!(
            err.errors,
            [FieldError {
                path: "document".into(),
                message: "larger than the 16 MiB limit (read 17825792 bytes)".into()
            }]
        );
    }

    /// Deterministic xorshift, so failures reproduce.
    fn rng(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"{}[]\",: 0123456789-.eEtruefalsnl\\abcW";
        for _ in 0..5000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r & 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            assert!(
                parse_scenario(&bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn mutated_documents_never_panic() {
        let doc = serde_json::to_vec(&valid()).unwrap();
        let mut next = rng(42);
        for _ in 0..3000 {
            let mut bytes = doc.clone();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            if let Ok(s) = parse_scenario(&bytes) {
                assert_eq!(validate_scenario(&s), Ok(()));
            }
        }
    }

    /// The example of DESIGN.md, with the UTR location it refers to and 26 weeks of demand.
    const DESIGN_EXAMPLE: &str = r#"{
      "format": "examcap/scenario@1",
      "name": "nl-2026-q2",
      "start_week": "2026-W14",
      "horizon_weeks": 26,
      "exams": [
        {"id": "SPREKEN_B1", "name": "Spreken B1", "resource": "speaking_booth",
         "seat_minutes": 45, "rating_pool": "speaking_raters", "rating_minutes": 15,
         "target_wait_weeks": 8, "priority": 1.0}
      ],
      "locations": [
        {"id": "AMS", "name": "Amsterdam",
         "resources": [{"kind": "speaking_booth", "weekly_minutes": 12000,
                        "extra_weekly_minutes": 3000, "extra_cost_per_minute": 0.9}],
         "unavailable": [{"from_week": 10, "to_week": 11, "factor": 0.0}]},
        {"id": "UTR", "name": "Utrecht",
         "resources": [{"kind": "speaking_booth", "weekly_minutes": 9000,
                        "extra_weekly_minutes": 2000, "extra_cost_per_minute": 1.0}]}
      ],
      "rating_pools": [
        {"id": "speaking_raters", "weekly_minutes": 40000,
         "extra_weekly_minutes": 10000, "extra_cost_per_minute": 1.5,
         "unavailable": []}
      ],
      "regions": [
        {"id": "AMSTERDAM", "name": "Groot-Amsterdam",
         "options": [{"location": "AMS", "travel_cost": 0.0},
                     {"location": "UTR", "travel_cost": 2.5}]}
      ],
      "demand": [
        {"region": "AMSTERDAM", "exam": "SPREKEN_B1",
         "weekly": [120, 118, 131, 120, 118, 131, 120, 118, 131, 120, 118, 131, 120,
                    118, 131, 120, 118, 131, 120, 118, 131, 120, 118, 131, 120, 118]}
      ],
      "backlog": [
        {"region": "AMSTERDAM", "exam": "SPREKEN_B1", "registered_week": -3, "candidates": 240}
      ],
      "weights": {"waiting_per_candidate_week": 1.0}
    }"#;

    #[test]
    fn design_example_parses() {
        let s = parse_scenario(DESIGN_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(s.name, "nl-2026-q2");
        assert_eq!(s.demand[0].weekly.len(), 26);
        assert_eq!(s.locations[0].unavailable[0].factor, 0.0);
        assert_eq!(parse_scenario(&serde_json::to_vec(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn names_ids_and_kinds_are_bounded() {
        let mut v = valid();
        v["name"] = json!("n".repeat(MAX_NAME_CHARS + 1));
        v["exams"][0]["id"] = json!("E".repeat(MAX_ID_CHARS + 1));
        v["locations"][0]["name"] = json!("é".repeat(MAX_NAME_CHARS + 1));
        let err = parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|f| f.path.as_str()).collect();
        for p in ["name", "exams[0].id", "locations[0].name"] {
            assert!(paths.contains(&p), "{p} not in {paths:?}");
        }
        // Exactly at the limits (in characters, not bytes) is fine.
        let mut v = valid();
        v["name"] = json!("é".repeat(MAX_NAME_CHARS));
        parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        let d = derived_name(&"b".repeat(MAX_NAME_CHARS), "+drill");
        assert_eq!(d.chars().count(), MAX_NAME_CHARS);
        assert!(d.ends_with("+drill"));
        assert_eq!(derived_name("tiny", "+drill"), "tiny+drill");
    }

    #[test]
    fn a_53rd_week_of_a_52_week_year_says_so() {
        let mut v = valid();
        v["start_week"] = json!("2021-W53");
        let err = parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.errors[0].path, "start_week");
        assert!(
            err.errors[0].message.contains("2021 has 52 ISO weeks"),
            "{err}"
        );
        v["start_week"] = json!("2020-W53");
        parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        v["start_week"] = json!("2021-W54");
        let err = parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.errors[0].message.contains("existing ISO week"), "{err}");
    }
}
