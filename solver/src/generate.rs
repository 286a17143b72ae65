//! A deterministic generator of national Dutch scenarios.
//!
//! [`national`] builds a year-sized scenario for the inburgering B1 exams and
//! the staatsexamen NT2 I/II components: 12 exam locations in the big cities,
//! the 40 COROP regions as demand regions, seasonal noisy demand, holidays,
//! a renovation closure, summer rater holidays and a Spreken B1 queue that is
//! already over target. Everything random comes from a self-written SplitMix64
//! and the only floating-point operations are `+ - * / sqrt round`, so the same
//! options give the same bytes on every platform and toolchain.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

use crate::scenario::{
    parse_iso_week, Backlog, Demand, Exam, Location, RatingPool, Region, RegionOption, Resource,
    Scenario, Unavailable, Weights, FORMAT,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    /// Horizon in weeks (the format allows 1..=520).
    pub weeks: usize,
    /// ISO week of week index 0, `YYYY-Www`.
    pub start_week: String,
    /// Split every region into this many identical parts (see [`split_regions`]).
    pub regions_split: usize,
    pub surges: Vec<Surge>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            weeks: 52,
            start_week: "2027-W01".to_string(),
            regions_split: 1,
            surges: Vec::new(),
        }
    }
}

/// Multiply one exam's demand in the horizon weeks `from_week..=to_week`.
#[derive(Debug, Clone, PartialEq)]
pub struct Surge {
    pub exam: String,
    pub multiplier: f64,
    pub from_week: usize,
    pub to_week: usize,
}

/// The `FROM`, `TO` week indexes of a command-line value `s` (of the
/// flag `label`), with FROM ≤ TO; else why not, quoting `s`.
pub fn week_range(label: &str, s: &str, from: &str, to: &str) -> Result<(usize, usize), String> {
    let week = |w: &str, what: &str| {
        w.parse::<usize>().map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow => {
                format!(
                    "{label} {s:?}: {what} {w:?} is too large (at most {})",
                    usize::MAX
                )
            }
            _ => format!("{label} {s:?}: {what} {w:?} must be a week index >= 0"),
        })
    };
    let (from_week, to_week) = (week(from, "from week")?, week(to, "to week")?);
    if from_week > to_week {
        return Err(format!(
            "{label} {s:?}: from week {from_week} is after to week {to_week}"
        ));
    }
    Ok((from_week, to_week))
}

impl Surge {
    /// Parses `EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK` for any exam id: a
    /// reschedule applies it to whatever scenario it is given, which names
    /// its own exams (the generator's [`FromStr`] only knows its own).
    pub fn parse_any_exam(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let [exam, mult, from, to] = parts[..] else {
            return Err(format!(
                "surge {s:?}: expected EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK, e.g. SPREKEN_B1:1.6:10:16"
            ));
        };
        let multiplier = mult
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && (0.0..=1000.0).contains(m))
            .ok_or_else(|| {
                format!("surge {s:?}: multiplier {mult:?} must be a number in 0..=1000")
            })?;
        let (from_week, to_week) = week_range("surge", s, from, to)?;
        if exam.is_empty() {
            return Err(format!("surge {s:?}: the exam id is empty"));
        }
        Ok(Surge {
            exam: exam.to_string(),
            multiplier,
            from_week,
            to_week,
        })
    }
}

impl FromStr for Surge {
    type Err = String;

    /// Parses `EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK`, e.g. `SPREKEN_B1:1.6:10:16`,
    /// for one of the generator's exams.
    fn from_str(s: &str) -> Result<Self, String> {
        let surge = Surge::parse_any_exam(s)?;
        let exam = surge.exam.as_str();
        if !EXAMS.iter().any(|e| e.id == exam) {
            let ids: Vec<&str> = EXAMS.iter().map(|e| e.id).collect();
            return Err(format!(
                "surge {s:?}: unknown exam {exam:?}; expected one of {}",
                ids.join(", ")
            ));
        }
        Ok(surge)
    }
}

impl fmt::Display for Surge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.exam, self.multiplier, self.from_week, self.to_week
        )
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, identical everywhere.
struct Rng(u64);

impl Rng {
    /// An independent stream per purpose, so that e.g. the renovation windows
    /// do not change when the horizon (and so the number of demand draws) does.
    fn new(seed: u64, stream: u64) -> Self {
        Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// New inburgering candidates per year; each sits the five B1 exams.
const NEW_B1: f64 = 30_000.0;
/// Staatsexamen NT2 sittings per year over the eight components.
const STAATS: f64 = 25_000.0;
/// Per component of programme I (45 %) and II (55 %).
const STAATS_I: f64 = STAATS * 0.45 / 4.0;
const STAATS_II: f64 = STAATS * 0.55 / 4.0;
/// Demand weight of a Randstad region relative to its population.
const RANDSTAD_WEIGHT: f64 = 1.3;
const TRAVEL_COST_PER_KM: f64 = 0.04;

struct ExamSpec {
    id: &'static str,
    name: &'static str,
    resource: &'static str,
    seat_minutes: f64,
    /// Rater pool and rater minutes per candidate.
    rating: Option<(&'static str, f64)>,
    target_wait_weeks: i64,
    priority: f64,
    /// Sittings per year, retakes included.
    annual: f64,
}

#[rustfmt::skip]
static EXAMS: [ExamSpec; 13] = [
    ExamSpec { id: "LEZEN_B1", name: "Lezen B1", resource: "pc_seat", seat_minutes: 65.0, rating: None, target_wait_weeks: 6, priority: 1.0, annual: NEW_B1 * 1.15 },
    ExamSpec { id: "LUISTEREN_B1", name: "Luisteren B1", resource: "pc_seat", seat_minutes: 45.0, rating: None, target_wait_weeks: 6, priority: 1.0, annual: NEW_B1 * 1.15 },
    ExamSpec { id: "SCHRIJVEN_B1", name: "Schrijven B1", resource: "writing_seat", seat_minutes: 60.0, rating: Some(("writing_raters", 20.0)), target_wait_weeks: 8, priority: 1.2, annual: NEW_B1 * 1.25 },
    ExamSpec { id: "SPREKEN_B1", name: "Spreken B1", resource: "speaking_booth", seat_minutes: 40.0, rating: Some(("speaking_raters", 15.0)), target_wait_weeks: 8, priority: 1.5, annual: NEW_B1 * 1.35 },
    ExamSpec { id: "KNM", name: "Kennis van de Nederlandse Maatschappij", resource: "pc_seat", seat_minutes: 45.0, rating: None, target_wait_weeks: 6, priority: 1.0, annual: NEW_B1 * 1.15 },
    ExamSpec { id: "STAATS_I_LEZEN", name: "Staatsexamen NT2 I Lezen", resource: "staats_pc", seat_minutes: 90.0, rating: None, target_wait_weeks: 10, priority: 1.0, annual: STAATS_I },
    ExamSpec { id: "STAATS_I_LUISTEREN", name: "Staatsexamen NT2 I Luisteren", resource: "staats_pc", seat_minutes: 60.0, rating: None, target_wait_weeks: 10, priority: 1.0, annual: STAATS_I },
    ExamSpec { id: "STAATS_I_SCHRIJVEN", name: "Staatsexamen NT2 I Schrijven", resource: "writing_seat", seat_minutes: 90.0, rating: Some(("writing_raters", 25.0)), target_wait_weeks: 10, priority: 1.0, annual: STAATS_I },
    ExamSpec { id: "STAATS_I_SPREKEN", name: "Staatsexamen NT2 I Spreken", resource: "speaking_booth", seat_minutes: 40.0, rating: Some(("speaking_raters", 18.0)), target_wait_weeks: 10, priority: 1.0, annual: STAATS_I },
    ExamSpec { id: "STAATS_II_LEZEN", name: "Staatsexamen NT2 II Lezen", resource: "staats_pc", seat_minutes: 100.0, rating: None, target_wait_weeks: 10, priority: 1.0, annual: STAATS_II },
    ExamSpec { id: "STAATS_II_LUISTEREN", name: "Staatsexamen NT2 II Luisteren", resource: "staats_pc", seat_minutes: 60.0, rating: None, target_wait_weeks: 10, priority: 1.0, annual: STAATS_II },
    ExamSpec { id: "STAATS_II_SCHRIJVEN", name: "Staatsexamen NT2 II Schrijven", resource: "writing_seat", seat_minutes: 100.0, rating: Some(("writing_raters", 30.0)), target_wait_weeks: 10, priority: 1.0, annual: STAATS_II },
    ExamSpec { id: "STAATS_II_SPREKEN", name: "Staatsexamen NT2 II Spreken", resource: "speaking_booth", seat_minutes: 45.0, rating: Some(("speaking_raters", 20.0)), target_wait_weeks: 10, priority: 1.0, annual: STAATS_II },
];

/// Capacity of a seat kind or rater pool relative to its average weekly
/// demand (in minutes), the extra that can be bought as a fraction of the
/// regular capacity, and the price of an extra minute. Speaking is tight:
/// regular capacity matches average demand, so holidays, the backlog and
/// the seasonal peaks must be bought as extra; pc seats are comfortable.
#[rustfmt::skip]
static KINDS: [(&str, f64, f64, f64); 4] = [
    // kind,            regular, extra, cost/min
    ("pc_seat",         1.35,    0.20,  0.6),
    ("staats_pc",       1.40,    0.20,  0.7),
    ("writing_seat",    1.15,    0.25,  0.9),
    ("speaking_booth",  1.00,    0.30,  1.2),
];

#[rustfmt::skip]
static POOLS: [(&str, f64, f64, f64); 2] = [
    ("writing_raters",  1.10,    0.25,  1.5),
    ("speaking_raters", 1.00,    0.30,  1.5),
];

/// Rater pools work at this factor in ISO weeks 29–34 (raters' holidays).
const SUMMER_RATERS: f64 = 0.7;

/// Backlog at week 0 per B1 exam: (lo, hi) weeks of average demand per
/// region, spread over registered weeks -span..=-1 with weight
/// `1 + slope * age`, so a positive slope puts more in the older weeks.
#[rustfmt::skip]
static BACKLOGS: [(&str, f64, f64, i64, f64); 5] = [
    ("LEZEN_B1",     2.0,  4.0, 4, 0.0),
    ("LUISTEREN_B1", 2.0,  4.0, 4, 0.0),
    ("SCHRIJVEN_B1", 2.0,  4.0, 4, 0.0),
    ("SPREKEN_B1",  10.0, 14.0, 12, 0.25),
    ("KNM",          2.0,  4.0, 4, 0.0),
];

/// Exam locations: id, name, lat, lon. Coordinates stay in the generator.
#[rustfmt::skip]
static LOCATIONS: [(&str, &str, f64, f64); 12] = [
    ("AMS", "Amsterdam",  52.370, 4.895),
    ("RTM", "Rotterdam",  51.922, 4.479),
    ("DHG", "Den Haag",   52.078, 4.300),
    ("UTR", "Utrecht",    52.091, 5.122),
    ("EHV", "Eindhoven",  51.441, 5.470),
    ("GRN", "Groningen",  53.219, 6.567),
    ("ZWL", "Zwolle",     52.517, 6.083),
    ("ARN", "Arnhem",     51.985, 5.899),
    ("TLB", "Tilburg",    51.560, 5.091),
    ("MST", "Maastricht", 50.851, 5.691),
    ("ALM", "Almere",     52.370, 5.214),
    ("ENS", "Enschede",   52.222, 6.894),
];

/// The 40 COROP regions in CBS order: name, population (thousands, approx.),
/// centroid lat, lon, Randstad.
#[rustfmt::skip]
static REGIONS: [(&str, f64, f64, f64, bool); 40] = [
    ("Oost-Groningen",                      110.0, 53.10, 6.95, false),
    ("Delfzijl en omgeving",                 45.0, 53.32, 6.88, false),
    ("Overig Groningen",                    430.0, 53.22, 6.50, false),
    ("Noord-Friesland",                     345.0, 53.20, 5.80, false),
    ("Zuidwest-Friesland",                  115.0, 52.98, 5.55, false),
    ("Zuidoost-Friesland",                  200.0, 53.00, 6.05, false),
    ("Noord-Drenthe",                       180.0, 53.00, 6.55, false),
    ("Zuidoost-Drenthe",                    165.0, 52.78, 6.90, false),
    ("Zuidwest-Drenthe",                    150.0, 52.72, 6.40, false),
    ("Noord-Overijssel",                    370.0, 52.52, 6.15, false),
    ("Zuidwest-Overijssel",                 150.0, 52.27, 6.15, false),
    ("Twente",                              635.0, 52.30, 6.75, false),
    ("Veluwe",                              730.0, 52.20, 5.85, false),
    ("Achterhoek",                          395.0, 51.98, 6.50, false),
    ("Arnhem/Nijmegen",                     780.0, 51.90, 5.90, false),
    ("Zuidwest-Gelderland",                 225.0, 51.85, 5.35, false),
    ("Utrecht",                            1390.0, 52.08, 5.17, true),
    ("Kop van Noord-Holland",               370.0, 52.85, 4.85, false),
    ("Alkmaar en omgeving",                 305.0, 52.60, 4.75, false),
    ("IJmond",                              170.0, 52.47, 4.63, true),
    ("Agglomeratie Haarlem",                225.0, 52.37, 4.62, true),
    ("Zaanstreek",                          165.0, 52.45, 4.82, true),
    ("Groot-Amsterdam",                    1450.0, 52.35, 4.90, true),
    ("Het Gooi en Vechtstreek",             255.0, 52.23, 5.17, true),
    ("Agglomeratie Leiden en Bollenstreek", 445.0, 52.17, 4.50, true),
    ("Agglomeratie 's-Gravenhage",          860.0, 52.07, 4.33, true),
    ("Delft en Westland",                   300.0, 52.00, 4.28, true),
    ("Oost-Zuid-Holland",                   420.0, 52.07, 4.70, true),
    ("Groot-Rijnmond",                     1470.0, 51.90, 4.45, true),
    ("Zuidoost-Zuid-Holland",               450.0, 51.82, 4.70, true),
    ("Zeeuwsch-Vlaanderen",                 105.0, 51.30, 3.85, false),
    ("Overig Zeeland",                      285.0, 51.50, 3.85, false),
    ("West-Noord-Brabant",                  670.0, 51.55, 4.60, false),
    ("Midden-Noord-Brabant",                480.0, 51.60, 5.05, false),
    ("Noordoost-Noord-Brabant",             690.0, 51.70, 5.45, false),
    ("Zuidoost-Noord-Brabant",              790.0, 51.45, 5.50, false),
    ("Noord-Limburg",                       290.0, 51.42, 6.05, false),
    ("Midden-Limburg",                      245.0, 51.20, 5.95, false),
    ("Zuid-Limburg",                        600.0, 50.88, 5.85, false),
    ("Flevoland",                           440.0, 52.45, 5.50, true),
];

/// Seasonal factor of an ISO week: Christmas and summer dips, spring and
/// autumn bumps (normalised by the caller to mean 1 over weeks 1..=52).
fn season_raw(iso_week: u32) -> f64 {
    match iso_week {
        1 | 52 | 53 => 0.5,
        2 | 51 => 0.85,
        28 | 35 => 0.85,
        29..=34 => 0.65,
        10..=22 | 37..=48 => 1.12,
        _ => 1.0,
    }
}

/// cos by its Taylor series (|x| ≤ 1 rad here, error < 1e-9): unlike libm's
/// `cos`, `+` and `*` give the same bits on every platform.
fn cos(x: f64) -> f64 {
    let x2 = x * x;
    let terms = [
        -1.0 / 2.0,
        1.0 / 24.0,
        -1.0 / 720.0,
        1.0 / 40_320.0,
        -1.0 / 3_628_800.0,
    ];
    terms.iter().rev().fold(0.0, |acc, c| (acc + c) * x2) + 1.0
}

/// Equirectangular distance in km.
fn km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let rad = std::f64::consts::PI / 180.0;
    let dy = (lat2 - lat1) * rad;
    let dx = (lon2 - lon1) * rad * cos((lat1 + lat2) / 2.0 * rad);
    6371.0 * (dx * dx + dy * dy).sqrt()
}

/// Rounds to whole tens (capacity minutes).
fn round10(v: f64) -> f64 {
    (v / 10.0).round() * 10.0
}

/// Rounds to cents; dividing (not multiplying by 0.01) gives the shortest decimal.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Rounds a sequence to whole numbers so that every prefix sum stays within
/// 0.5 of the exact one (no bias for small values, totals preserved).
fn round_cumulative(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let (mut cum, mut prev) = (0.0, 0.0);
    values
        .into_iter()
        .map(|v| {
            cum += v;
            let r: f64 = cum.round();
            let out = r - prev;
            prev = r;
            out
        })
        .collect()
}

/// Merges (week, factor) pairs, sorted by week, into ranges of consecutive
/// weeks with the same factor.
fn to_ranges(weeks: impl IntoIterator<Item = (usize, f64)>) -> Vec<Unavailable> {
    let mut out: Vec<Unavailable> = Vec::new();
    for (t, factor) in weeks {
        let t = t as i64;
        match out.last_mut() {
            Some(u) if u.to_week + 1 == t && u.factor == factor => u.to_week = t,
            _ => out.push(Unavailable {
                from_week: t,
                to_week: t,
                factor,
            }),
        }
    }
    out
}

/// The national scenario. An unparsable `start_week` is kept as given (the
/// validator rejects it) and the calendar falls back to 2027-W01.
pub fn national(opts: &GenerateOptions) -> Scenario {
    let weeks = opts.weeks;
    let monday = parse_iso_week(&opts.start_week)
        .or_else(|| NaiveDate::from_isoywd_opt(2027, 1, chrono::Weekday::Mon))
        .unwrap_or_default();
    let iso_weeks: Vec<u32> = (0..weeks)
        .map(|t| crate::scenario::monday_of(monday, t).map_or(10, |d| d.iso_week().week()))
        .collect();
    let week_of = |date: NaiveDate| {
        let days = (date - monday).num_days();
        (days >= 0 && ((days / 7) as usize) < weeks).then_some((days / 7) as usize)
    };

    // Regions: the 3 nearest locations, plus a 4th within 1.25x the 3rd's distance.
    let regions: Vec<Region> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, &(name, _, lat, lon, _))| {
            let mut by_km: Vec<(f64, usize)> = LOCATIONS
                .iter()
                .enumerate()
                .map(|(j, l)| (km(lat, lon, l.2, l.3), j))
                .collect();
            by_km.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let n = if by_km[3].0 <= 1.25 * by_km[2].0 {
                4
            } else {
                3
            };
            let options = by_km[..n]
                .iter()
                .map(|&(d, j)| RegionOption {
                    location: LOCATIONS[j].0.to_string(),
                    travel_cost: round2(d * TRAVEL_COST_PER_KM),
                })
                .collect();
            Region {
                id: format!("COROP{:02}", i + 1),
                name: name.to_string(),
                options,
            }
        })
        .collect();

    // Demand shares: population, a bit heavier in the Randstad.
    let weight: Vec<f64> = REGIONS
        .iter()
        .map(|r| r.1 * if r.4 { RANDSTAD_WEIGHT } else { 1.0 })
        .collect();
    let total_weight: f64 = weight.iter().sum();
    let share: Vec<f64> = weight.iter().map(|w| w / total_weight).collect();

    let season_mean = (1..=52).map(season_raw).sum::<f64>() / 52.0;
    let season: Vec<f64> = iso_weeks
        .iter()
        .map(|&w| season_raw(w) / season_mean)
        .collect();

    let mut rng = Rng::new(opts.seed, 1);
    let mut demand = Vec::with_capacity(regions.len() * EXAMS.len());
    for (region, &sh) in regions.iter().zip(&share) {
        for e in &EXAMS {
            let mean = e.annual / 52.0 * sh;
            let weekly = round_cumulative(season.iter().map(|s| mean * s * rng.range(0.9, 1.1)));
            demand.push(Demand {
                region: region.id.clone(),
                exam: e.id.to_string(),
                weekly,
            });
        }
    }
    for surge in &opts.surges {
        for d in demand.iter_mut().filter(|d| d.exam == surge.exam) {
            let to = surge.to_week.min(weeks.saturating_sub(1));
            for v in d.weekly.iter_mut().take(to + 1).skip(surge.from_week) {
                *v = (*v * surge.multiplier).round();
            }
        }
    }

    // Closures: Christmas and New Year weeks closed; a week with other
    // public holidays on weekdays keeps the open share of its weekdays, the
    // holidays being those the session calendar closes (one list for both).
    let mut holidays: BTreeMap<usize, f64> = BTreeMap::new();
    let last_year = crate::scenario::monday_of(monday, weeks).map_or(monday.year(), |d| d.year());
    for year in monday.year()..=last_year {
        let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
        for date in [ymd(12, 25), ymd(1, 1)].into_iter().flatten() {
            if let Some(t) = week_of(date) {
                holidays.insert(t, 0.0);
            }
        }
    }
    for t in 0..weeks {
        let closed = crate::calendar::closed_weekdays(monday, t).len();
        if closed > 0 {
            holidays
                .entry(t)
                .or_insert((5 - closed.min(5)) as f64 / 5.0);
        }
    }
    let holidays = to_ranges(holidays);

    // Capacity: each location serves the regions it is nearest to.
    let mut catchment = [0.0; LOCATIONS.len()];
    for (region, sh) in regions.iter().zip(&share) {
        if let Some(j) = LOCATIONS
            .iter()
            .position(|l| l.0 == region.options[0].location)
        {
            catchment[j] += sh;
        }
    }
    let weekly_minutes = |matches: &dyn Fn(&ExamSpec) -> Option<f64>| -> f64 {
        EXAMS
            .iter()
            .filter_map(|e| matches(e).map(|m| e.annual / 52.0 * m))
            .sum()
    };
    let mut rng = Rng::new(opts.seed, 2);
    let mut locations: Vec<Location> = LOCATIONS
        .iter()
        .zip(catchment)
        .map(|(&(id, name, _, _), c)| Location {
            id: id.to_string(),
            name: name.to_string(),
            resources: KINDS
                .iter()
                .map(|&(kind, ratio, extra, cost)| {
                    let need = weekly_minutes(&|e| (e.resource == kind).then_some(e.seat_minutes));
                    let regular = round10(ratio * need * c * rng.range(0.95, 1.05));
                    Resource {
                        kind: kind.to_string(),
                        weekly_minutes: regular,
                        extra_weekly_minutes: round10(regular * extra),
                        extra_cost_per_minute: cost,
                    }
                })
                .collect(),
            unavailable: holidays.clone(),
        })
        .collect();

    // One or two locations closed for a 2–3 week renovation.
    let mut rng = Rng::new(opts.seed, 3);
    let closures = 1 + rng.below(2);
    let mut closed: Vec<usize> = Vec::new();
    while closed.len() < closures {
        let j = rng.below(locations.len());
        if !closed.contains(&j) {
            closed.push(j);
        }
    }
    for j in closed {
        let len = 2 + rng.below(2);
        let from = rng.below(weeks.saturating_sub(len) + 1);
        let u = &mut locations[j].unavailable;
        u.push(Unavailable {
            from_week: from as i64,
            to_week: (from + len - 1) as i64,
            factor: 0.0,
        });
        u.sort_by_key(|u| (u.from_week, u.to_week));
    }

    let summer = to_ranges(
        iso_weeks
            .iter()
            .enumerate()
            .filter(|(_, w)| (29..=34).contains(*w))
            .map(|(t, _)| (t, SUMMER_RATERS)),
    );
    let rating_pools = POOLS
        .iter()
        .map(|&(id, ratio, extra, cost)| {
            let need = weekly_minutes(&|e| e.rating.filter(|r| r.0 == id).map(|r| r.1));
            let regular = round10(ratio * need);
            RatingPool {
                id: id.to_string(),
                weekly_minutes: regular,
                extra_weekly_minutes: round10(regular * extra),
                extra_cost_per_minute: cost,
                unavailable: summer.clone(),
            }
        })
        .collect();

    // Backlog: candidates registered before week 0 and still waiting.
    let mut rng = Rng::new(opts.seed, 4);
    let mut backlog = Vec::new();
    for (region, &sh) in regions.iter().zip(&share) {
        for &(exam, lo, hi, span, slope) in &BACKLOGS {
            let annual = EXAMS
                .iter()
                .find(|e| e.id == exam)
                .map_or(0.0, |e| e.annual);
            let total = annual / 52.0 * sh * rng.range(lo, hi);
            let ages: Vec<i64> = (1..=span).rev().collect();
            let wsum: f64 = ages.iter().map(|&a| 1.0 + slope * a as f64).sum();
            let counts = round_cumulative(
                ages.iter()
                    .map(|&a| total * (1.0 + slope * a as f64) / wsum),
            );
            for (&age, candidates) in ages.iter().zip(counts) {
                if candidates > 0.0 {
                    backlog.push(Backlog {
                        region: region.id.clone(),
                        exam: exam.to_string(),
                        registered_week: -age,
                        candidates,
                    });
                }
            }
        }
    }

    let exams = EXAMS
        .iter()
        .map(|e| Exam {
            id: e.id.to_string(),
            name: e.name.to_string(),
            resource: e.resource.to_string(),
            seat_minutes: e.seat_minutes,
            rating_pool: e.rating.map(|r| r.0.to_string()),
            rating_minutes: e.rating.map(|r| r.1),
            target_wait_weeks: e.target_wait_weeks,
            priority: e.priority,
        })
        .collect();

    let scenario = Scenario {
        format: FORMAT.to_string(),
        // Surges are part of the name, so a surge plan is not mistaken for the baseline.
        name: std::iter::once(format!("nl-national-seed{}-{}w", opts.seed, weeks))
            .chain(
                opts.surges
                    .iter()
                    .map(|s| format!("surge-{s}").replace(':', "_")),
            )
            .collect::<Vec<_>>()
            .join("+"),
        start_week: opts.start_week.clone(),
        horizon_weeks: weeks,
        exams,
        locations,
        rating_pools,
        regions,
        demand,
        backlog,
        weights: Weights {
            waiting_per_candidate_week: 1.0,
        },
    };
    split_regions(&scenario, opts.regions_split)
}

/// Splits every region into k identical parts with 1/k of the demand and
/// backlog (ids "<REGION>.1".."<REGION>.k", same options/travel costs). k=1
/// returns a clone. Used to check the model's invariance and for the 4x
/// benchmark. k=0 is treated as 1.
pub fn split_regions(s: &Scenario, k: usize) -> Scenario {
    if k <= 1 {
        return s.clone();
    }
    let part = |id: &str, i: usize| format!("{id}.{i}");
    let kf = k as f64;
    Scenario {
        name: format!("{}-split{k}", s.name),
        regions: s
            .regions
            .iter()
            .flat_map(|r| {
                (1..=k).map(move |i| Region {
                    id: part(&r.id, i),
                    name: format!("{} ({i}/{k})", r.name),
                    options: r.options.clone(),
                })
            })
            .collect(),
        demand: s
            .demand
            .iter()
            .flat_map(|d| {
                (1..=k).map(move |i| Demand {
                    region: part(&d.region, i),
                    exam: d.exam.clone(),
                    weekly: d.weekly.iter().map(|v| v / kf).collect(),
                })
            })
            .collect(),
        backlog: s
            .backlog
            .iter()
            .flat_map(|b| {
                (1..=k).map(move |i| Backlog {
                    region: part(&b.region, i),
                    candidates: b.candidates / kf,
                    ..b.clone()
                })
            })
            .collect(),
        ..s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::availability;
    use std::collections::BTreeSet;

    fn base() -> Scenario {
        national(&GenerateOptions::default())
    }

    fn annual(s: &Scenario, exam: &str) -> f64 {
        s.demand
            .iter()
            .filter(|d| d.exam == exam)
            .flat_map(|d| &d.weekly)
            .sum()
    }

    fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> bool {
        let v: Vec<&str> = ids.collect();
        v.iter().collect::<BTreeSet<_>>().len() == v.len()
    }

    #[test]
    fn deterministic_per_seed() {
        let opts = GenerateOptions {
            seed: 7,
            ..Default::default()
        };
        let a = serde_json::to_string(&national(&opts)).unwrap();
        let b = serde_json::to_string(&national(&opts.clone())).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_string(&national(&GenerateOptions { seed: 8, ..opts })).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn shape_ids_and_references() {
        let s = base();
        assert_eq!(s.format, FORMAT);
        assert_eq!(s.name, "nl-national-seed1-52w");
        assert_eq!(
            (s.exams.len(), s.locations.len(), s.regions.len()),
            (13, 12, 40)
        );
        assert_eq!(s.rating_pools.len(), 2);
        assert!(unique(s.exams.iter().map(|e| e.id.as_str())));
        assert!(unique(s.locations.iter().map(|l| l.id.as_str())));
        assert!(unique(s.regions.iter().map(|r| r.id.as_str())));
        assert!(unique(s.rating_pools.iter().map(|p| p.id.as_str())));
        let valid_id = |id: &str| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        let loc = |id: &str| s.locations.iter().find(|l| l.id == id);
        for e in &s.exams {
            assert!(valid_id(&e.id));
            assert_eq!(e.rating_pool.is_some(), e.rating_minutes.is_some());
            if let Some(p) = &e.rating_pool {
                assert!(s.rating_pools.iter().any(|q| &q.id == p), "{p}");
            }
            assert!(s
                .locations
                .iter()
                .all(|l| l.resources.iter().any(|r| r.kind == e.resource)));
        }
        for l in &s.locations {
            assert!(valid_id(&l.id));
            assert!(unique(l.resources.iter().map(|r| r.kind.as_str())));
            for r in &l.resources {
                assert!(
                    r.weekly_minutes > 0.0 && r.extra_weekly_minutes > 0.0,
                    "{} {}",
                    l.id,
                    r.kind
                );
            }
            for u in &l.unavailable {
                assert!(u.from_week <= u.to_week && (0.0..=1.0).contains(&u.factor));
            }
        }
        for r in &s.regions {
            assert!(valid_id(&r.id));
            assert!(
                (3..=4).contains(&r.options.len()),
                "{} {}",
                r.id,
                r.options.len()
            );
            assert!(unique(r.options.iter().map(|o| o.location.as_str())));
            assert!(r
                .options
                .iter()
                .all(|o| loc(&o.location).is_some() && o.travel_cost >= 0.0));
        }
        let rows: Vec<String> = s
            .demand
            .iter()
            .map(|d| format!("{}/{}", d.region, d.exam))
            .collect();
        assert!(unique(rows.iter().map(String::as_str)));
        assert_eq!(rows.len(), 40 * 13);
        for d in &s.demand {
            assert!(s.regions.iter().any(|r| r.id == d.region) && s.exam_index(&d.exam).is_some());
            assert_eq!(d.weekly.len(), s.horizon_weeks);
            assert!(d.weekly.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));
        }
        for b in &s.backlog {
            assert!(s.regions.iter().any(|r| r.id == b.region) && s.exam_index(&b.exam).is_some());
            assert!(b.registered_week < 0 && b.candidates > 0.0);
        }
    }

    #[test]
    fn sizes_and_volumes() {
        let s = base();
        let t = s.horizon_weeks;
        let options = |region: &str| {
            s.regions
                .iter()
                .find(|r| r.id == region)
                .map_or(0, |r| r.options.len())
        };
        let x: usize = s.demand.iter().map(|d| options(&d.region) * t).sum();
        let y = s.locations.iter().map(|l| l.resources.len()).sum::<usize>() * t;
        let z = s.rating_pools.len() * t;
        let bs = 2 * s.demand.len() * t;
        eprintln!(
            "LP size: x {x}, y {y}, z {z}, B+s {bs}, total {}",
            x + y + z + bs
        );
        assert!((80_000..130_000).contains(&x), "x vars {x}");

        let mut staats = 0.0;
        for e in &s.exams {
            let a = annual(&s, &e.id);
            eprintln!("annual demand {:<20} {a:>8.0}", e.id);
            if e.id.starts_with("STAATS") {
                staats += a;
            } else {
                assert!((30_000.0..45_000.0).contains(&a), "{} {a}", e.id);
            }
        }
        eprintln!("annual demand staatsexamen total {staats:.0}");
        assert!((20_000.0..30_000.0).contains(&staats));

        // Average weekly regular capacity (after closures) vs average weekly demand, in minutes.
        for (kind, ..) in KINDS {
            let need: f64 = s
                .demand
                .iter()
                .filter_map(|d| {
                    let e = &s.exams[s.exam_index(&d.exam)?];
                    (e.resource == kind).then(|| d.weekly.iter().sum::<f64>() * e.seat_minutes)
                })
                .sum::<f64>()
                / t as f64;
            let (mut regular, mut extra) = (0.0, 0.0);
            for l in &s.locations {
                let r = l.resources.iter().find(|r| r.kind == kind).unwrap();
                let f: f64 =
                    (0..t).map(|w| availability(&l.unavailable, w)).sum::<f64>() / t as f64;
                regular += r.weekly_minutes * f;
                extra += r.extra_weekly_minutes * f;
            }
            eprintln!(
                "{kind:<16} demand {need:>9.0} min/wk  regular {regular:>9.0} ({:.2}x)  +extra {extra:>8.0} ({:.2}x)",
                regular / need,
                (regular + extra) / need
            );
        }
        for p in &s.rating_pools {
            let need: f64 = s
                .demand
                .iter()
                .filter_map(|d| {
                    let e = &s.exams[s.exam_index(&d.exam)?];
                    (e.rating_pool.as_ref() == Some(&p.id))
                        .then(|| d.weekly.iter().sum::<f64>() * e.rating_minutes.unwrap_or(0.0))
                })
                .sum::<f64>()
                / t as f64;
            let f: f64 = (0..t).map(|w| availability(&p.unavailable, w)).sum::<f64>() / t as f64;
            eprintln!(
                "{:<16} demand {need:>9.0} min/wk  regular {:>9.0} ({:.2}x)  +extra {:>8.0}",
                p.id,
                p.weekly_minutes * f,
                p.weekly_minutes * f / need,
                p.extra_weekly_minutes * f
            );
        }
        let spreken: f64 = s
            .backlog
            .iter()
            .filter(|b| b.exam == "SPREKEN_B1")
            .map(|b| b.candidates)
            .sum();
        let weeks_of_demand = spreken / (annual(&s, "SPREKEN_B1") / t as f64);
        eprintln!("SPREKEN_B1 backlog {spreken:.0} = {weeks_of_demand:.1} weeks of demand");
        assert!((10.0..14.0).contains(&weeks_of_demand));
        let mut regions_per_location: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &s.regions {
            *regions_per_location
                .entry(&r.options[0].location)
                .or_default() += 1;
        }
        eprintln!("nearest-location regions: {regions_per_location:?}");
    }

    /// Every week whose weekdays the session calendar closes keeps at most
    /// the open share of its capacity (what the calendar's crowded check
    /// asks), Liberation Day of lustrum years included: 2025–2030.
    #[test]
    fn holiday_weeks_keep_only_their_open_share() {
        let s = national(&GenerateOptions {
            start_week: "2025-W01".into(),
            weeks: 310,
            ..GenerateOptions::default()
        });
        let monday = s.start_monday().unwrap();
        let liberation =
            ((NaiveDate::from_ymd_opt(2025, 5, 5).unwrap() - monday).num_days() / 7) as usize;
        let mut reduced = 0;
        for t in 0..s.horizon_weeks {
            let closed = crate::calendar::closed_weekdays(monday, t).len();
            let open = (5 - closed.min(5)) as f64 / 5.0;
            for l in &s.locations {
                assert!(
                    availability(&l.unavailable, t) <= open + 1e-12,
                    "{} week {t}: {closed} weekdays closed",
                    l.id
                );
            }
            reduced += usize::from(closed > 0);
        }
        assert!(crate::calendar::closed_weekdays(monday, liberation).len() == 1);
        assert!(reduced >= 6 * 4, "{reduced}");
    }

    #[test]
    fn holidays_and_closures() {
        let s = base();
        let monday = s.start_monday().unwrap();
        let week = |y, m, d| {
            ((NaiveDate::from_ymd_opt(y, m, d).unwrap() - monday).num_days() / 7) as usize
        };
        let (xmas, new_year) = (week(2027, 12, 25), week(2028, 1, 1));
        assert_eq!((xmas, new_year), (50, 51));
        for l in &s.locations {
            assert_eq!(availability(&l.unavailable, xmas), 0.0, "{}", l.id);
            assert_eq!(availability(&l.unavailable, new_year), 0.0, "{}", l.id);
            // Easter Monday 29 Mar 2027, King's Day, Ascension 6 May, Whit Monday 17 May.
            for t in [
                week(2027, 3, 29),
                week(2027, 4, 27),
                week(2027, 5, 6),
                week(2027, 5, 17),
            ] {
                assert!(availability(&l.unavailable, t) <= 0.8, "{} week {t}", l.id);
            }
        }
        let renovated = s
            .locations
            .iter()
            .filter(|l| {
                (0..s.horizon_weeks).any(|t| {
                    ![xmas, new_year].contains(&t) && availability(&l.unavailable, t) == 0.0
                })
            })
            .count();
        assert!((1..=2).contains(&renovated));
        // Summer weeks (ISO 29–34 = indices 28..=33 for 2027-W01) at 0.7 for raters.
        for p in &s.rating_pools {
            assert_eq!(availability(&p.unavailable, 28), 0.7);
            assert_eq!(availability(&p.unavailable, 33), 0.7);
            assert_eq!(availability(&p.unavailable, 27), 1.0);
        }
    }

    #[test]
    fn seasonality_follows_the_real_iso_week() {
        // Starting in ISO week 27, horizon weeks 2..=7 are the summer dip.
        let s = national(&GenerateOptions {
            start_week: "2027-W27".into(),
            weeks: 10,
            ..Default::default()
        });
        let week_total = |t: usize| s.demand.iter().map(|d| d.weekly[t]).sum::<f64>();
        assert!(week_total(4) < 0.8 * week_total(0));
        assert!(s
            .rating_pools
            .iter()
            .all(|p| availability(&p.unavailable, 2) == 0.7));
    }

    #[test]
    fn spreken_backlog_is_partly_over_target() {
        let s = base();
        let target = s.exams[s.exam_index("SPREKEN_B1").unwrap()].target_wait_weeks;
        let old: f64 = s
            .backlog
            .iter()
            .filter(|b| b.exam == "SPREKEN_B1" && b.registered_week < -target)
            .map(|b| b.candidates)
            .sum();
        assert!(old > 0.0);
        for b in s.backlog.iter().filter(|b| b.exam != "SPREKEN_B1") {
            let e = &s.exams[s.exam_index(&b.exam).unwrap()];
            assert!(b.registered_week >= -e.target_wait_weeks, "{b:?}");
        }
    }

    #[test]
    fn split_keeps_totals() {
        let s = base();
        let p = split_regions(&s, 4);
        assert_eq!(p.regions.len(), 160);
        assert_eq!(p.regions[1].id, "COROP01.2");
        assert_eq!(p.regions[0].options, s.regions[0].options);
        let total = |s: &Scenario| s.demand.iter().flat_map(|d| &d.weekly).sum::<f64>();
        let backlog = |s: &Scenario| s.backlog.iter().map(|b| b.candidates).sum::<f64>();
        assert!((total(&p) - total(&s)).abs() < 1e-9);
        assert!((backlog(&p) - backlog(&s)).abs() < 1e-9);
        assert_eq!(split_regions(&s, 1), s);
        let via_opts = national(&GenerateOptions {
            regions_split: 4,
            ..Default::default()
        });
        assert_eq!(via_opts, p);
    }

    #[test]
    fn surge_parsing() {
        let s: Surge = "SPREKEN_B1:1.6:10:16".parse().unwrap();
        assert_eq!(
            s,
            Surge {
                exam: "SPREKEN_B1".into(),
                multiplier: 1.6,
                from_week: 10,
                to_week: 16
            }
        );
        assert_eq!(s.to_string().parse::<Surge>(), Ok(s));
        for bad in [
            "SPREKEN_B1:1.6:10",
            "SPREKEN_B1:1.6:10:16:1",
            "X:abc:1:2",
            "SPREKEN_B1:abc:1:2",
            "SPREKEN_B1:1.5:5:3",
            "SPREKEN_B1:-1.5:1:2",
            "SPREKEN_B1:NaN:1:2",
            "SPREKEN_B1:inf:1:2",
            "SPREKEN_B1:1.5:-1:2",
            "SPREKEN_B1:1.5:1:x",
            "NOPE:1.5:1:2",
            "",
        ] {
            let err = bad.parse::<Surge>().unwrap_err();
            assert!(err.starts_with("surge "), "{bad}: {err}");
        }
        assert!("SPREKEN_B1:1.5:5:3"
            .parse::<Surge>()
            .unwrap_err()
            .contains("after"));
        assert!("SPREKEN_B1:-1:1:2"
            .parse::<Surge>()
            .unwrap_err()
            .contains("multiplier"));
        assert!("NOPE:1.5:1:2"
            .parse::<Surge>()
            .unwrap_err()
            .contains("unknown exam"));
        // A week index past usize says so, not "must be >= 0".
        let err = "SPREKEN_B1:1.5:1:99999999999999999999999"
            .parse::<Surge>()
            .unwrap_err();
        assert!(
            err.contains("to week") && err.contains("too large"),
            "{err}"
        );
        let err = "SPREKEN_B1:1.5:-1:2".parse::<Surge>().unwrap_err();
        assert!(err.contains(">= 0"), "{err}");
    }

    #[test]
    fn surge_multiplies_only_its_weeks() {
        let a = base();
        let surge = "SPREKEN_B1:1.6:10:16".parse().unwrap();
        let b = national(&GenerateOptions {
            surges: vec![surge],
            ..Default::default()
        });
        for (da, db) in a.demand.iter().zip(&b.demand) {
            for (t, (va, vb)) in da.weekly.iter().zip(&db.weekly).enumerate() {
                let expect = if da.exam == "SPREKEN_B1" && (10..=16).contains(&t) {
                    (va * 1.6).round()
                } else {
                    *va
                };
                assert_eq!(*vb, expect, "{} {} week {t}", da.region, da.exam);
            }
        }
        assert!(annual(&b, "SPREKEN_B1") > annual(&a, "SPREKEN_B1") + 1000.0);
        assert_eq!(a.locations, b.locations);
        assert_eq!(a.backlog, b.backlog);
        // A range past the horizon is clipped, not a panic.
        let c = national(&GenerateOptions {
            weeks: 12,
            surges: vec![
                "KNM:2:10:100".parse().unwrap(),
                "KNM:2:50:60".parse().unwrap(),
            ],
            ..Default::default()
        });
        assert!(c.demand.iter().all(|d| d.weekly.len() == 12));
    }

    #[test]
    fn odd_options_do_not_panic() {
        for (weeks, start) in [(1, "2027-W01"), (520, "2026-W53"), (3, "garbage")] {
            let s = national(&GenerateOptions {
                weeks,
                start_week: start.into(),
                ..Default::default()
            });
            assert!(s.demand.iter().all(|d| d.weekly.len() == weeks));
        }
    }
}
