//! The end-of-run check, on plain data so it can be tested without a server:
//! no cell holds more reservations than it may (zero oversold), and every
//! acknowledged reservation is on the server in the state we left it (zero
//! lost acks).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

/// One (location, exam, week) cell, by calendar week: a reservation's
/// `week` counts from the start week of the plan it was taken from, which a
/// re-publish may move, while GetStock counts from the published plan's.
/// The ISO week is the same in both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CellKey {
    pub location: String,
    pub exam: String,
    /// `YYYY-Www`.
    pub iso_week: String,
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.location, self.exam, self.iso_week)
    }
}

/// A cell as GetStock reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockCount {
    pub planned: u32,
    pub reserved: u32,
    /// reserved − planned left by a re-publish (the server's own figure).
    pub conflict: u32,
}

pub type Stock = HashMap<CellKey, StockCount>;

/// Reservation id → the cell it was acknowledged in and its expected state.
pub type Expected = BTreeMap<String, (CellKey, Expect)>;

/// Reservation id → what ListReservations says of it.
pub type Listing = HashMap<String, Found>;

/// What the load generator knows of a reservation it was answered about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Expect {
    /// Reserve acknowledged it and it was not cancelled.
    Active,
    /// Cancel acknowledged it.
    Cancelled,
    /// A Cancel was sent but its answer was lost (timeout, transport): either
    /// state is right.
    Either,
}

/// A reservation's state as ListReservations reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Listed {
    Active,
    Cancelled,
    /// An unspecified or unknown state value.
    Other(i32),
}

/// A listed reservation: its state and cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub state: Listed,
    pub cell: CellKey,
}

/// A cell with more active reservations than it may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Oversold {
    pub cell: CellKey,
    pub planned: u32,
    pub reserved: u32,
    /// The most it may hold: its planned seats, or the reservations a
    /// re-publish conflict had already left in it before the run.
    pub allowed: u32,
}

/// Why an acknowledged reservation does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LostKind {
    /// Not listed at all.
    Missing,
    WrongState {
        expected: Expect,
        found: Listed,
    },
    WrongCell {
        expected: CellKey,
        found: CellKey,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub id: String,
    pub kind: LostKind,
}

/// A cell whose GetStock count differs from its active reservations in
/// ListReservations (both read after the load stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub cell: CellKey,
    pub stock_reserved: u32,
    pub listed_active: u32,
}

/// An acknowledged Reserve sent again with the same key and body that did
/// not return the same reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayMismatch {
    pub key: String,
    /// The reservation id of the first answer.
    pub first: String,
    /// What the replay returned instead (an id, or a gRPC code).
    pub got: String,
}

/// The outcome of the check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub cells_checked: usize,
    pub reservations_checked: usize,
    pub oversold: Vec<Oversold>,
    pub lost: Vec<Lost>,
    pub mismatched: Vec<Mismatch>,
    /// Idempotent replays checked during the run (filled in by the caller).
    pub replays_checked: u64,
    pub replays_wrong: Vec<ReplayMismatch>,
    /// Another plan was published during the run (see [`verify`]).
    pub republished: bool,
}

/// Another plan was published while the load ran. The service keeps the
/// reservations a cell held at that moment, even above its new planned
/// seats (and lists them as the publish's conflicts), so a cell may hold
/// what it had before the run plus what this run booked there; `unknown`
/// reserves (answers lost) may have booked anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Republished {
    pub unknown_reserves: u64,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.oversold.is_empty()
            && self.lost.is_empty()
            && self.mismatched.is_empty()
            && self.replays_wrong.is_empty()
    }
}

/// Checks the server's state after the load against what it acknowledged.
///
/// - `before`/`after`: GetStock of every exam touched, before and after the
///   load. A cell may hold at most its planned seats; one a re-publish had
///   already left over its seats before the run may keep what it had then
///   (the service keeps such reservations) but must not grow.
/// - `expected`: every reservation id the run was answered about.
/// - `listed`: every reservation of those exams, cancelled ones included.
/// - `republished`: set when another plan was published during the run
///   ([`Republished`]): the bound on a cell is then what it held before
///   plus what the run booked there, as the publish may have kept them all.
pub fn verify(
    before: &Stock,
    after: &Stock,
    expected: &Expected,
    listed: &Listing,
    republished: Option<Republished>,
) -> Verdict {
    let mut v = Verdict {
        cells_checked: after.len(),
        reservations_checked: expected.len(),
        republished: republished.is_some(),
        ..Verdict::default()
    };
    let mut booked: HashMap<&CellKey, u64> = HashMap::new();
    for (cell, _) in expected.values() {
        *booked.entry(cell).or_default() += 1;
    }
    let mut cells: Vec<(&CellKey, &StockCount)> = after.iter().collect();
    cells.sort_by(|a, b| a.0.cmp(b.0));
    for (cell, now) in &cells {
        let inherited = match republished {
            None => before
                .get(*cell)
                .filter(|b| b.conflict > 0 || b.reserved > b.planned)
                .map_or(0, |b| b.reserved),
            Some(r) => {
                let held = before.get(*cell).map_or(0, |b| u64::from(b.reserved));
                let kept = held + booked.get(*cell).copied().unwrap_or(0) + r.unknown_reserves;
                u32::try_from(kept).unwrap_or(u32::MAX)
            }
        };
        let allowed = now.planned.max(inherited);
        if now.reserved > allowed {
            v.oversold.push(Oversold {
                cell: (*cell).clone(),
                planned: now.planned,
                reserved: now.reserved,
                allowed,
            });
        }
    }
    for (id, (cell, expect)) in expected {
        let kind = match listed.get(id) {
            None => Some(LostKind::Missing),
            Some(f) if f.cell != *cell => Some(LostKind::WrongCell {
                expected: cell.clone(),
                found: f.cell.clone(),
            }),
            Some(f) => match (expect, f.state) {
                (Expect::Active, Listed::Active)
                | (Expect::Cancelled, Listed::Cancelled)
                | (Expect::Either, Listed::Active | Listed::Cancelled) => None,
                (e, found) => Some(LostKind::WrongState {
                    expected: *e,
                    found,
                }),
            },
        };
        if let Some(kind) = kind {
            v.lost.push(Lost {
                id: id.clone(),
                kind,
            });
        }
    }
    let mut active: HashMap<&CellKey, u32> = HashMap::new();
    for f in listed.values().filter(|f| f.state == Listed::Active) {
        *active.entry(&f.cell).or_default() += 1;
    }
    for (cell, now) in &cells {
        let n = active.get(*cell).copied().unwrap_or(0);
        if n != now.reserved {
            v.mismatched.push(Mismatch {
                cell: (*cell).clone(),
                stock_reserved: now.reserved,
                listed_active: n,
            });
        }
    }
    // A listed cell GetStock does not show is a mismatch only inside the
    // published horizon: reservations kept from an earlier plan in weeks
    // the published one does not cover are not in GetStock.
    let horizon: std::collections::HashSet<(&str, &str)> = after
        .keys()
        .map(|c| (c.exam.as_str(), c.iso_week.as_str()))
        .collect();
    let mut orphans: Vec<&CellKey> = active
        .keys()
        .copied()
        .filter(|c| !after.contains_key(*c))
        .filter(|c| horizon.contains(&(c.exam.as_str(), c.iso_week.as_str())))
        .collect();
    orphans.sort();
    for cell in orphans {
        v.mismatched.push(Mismatch {
            cell: cell.clone(),
            stock_reserved: 0,
            listed_active: active[cell],
        });
    }
    v
}

/// The verdict as text: the counts, then each failure (the first 20 of each kind).
pub fn render_verdict(v: &Verdict) -> String {
    let mut out = format!(
        "verification: {} cells, {} acknowledged reservations checked\n\
         oversold: {}, lost acks: {}, stock/list mismatches: {}, \
         wrong idempotent replays: {} of {}\n",
        v.cells_checked,
        v.reservations_checked,
        v.oversold.len(),
        v.lost.len(),
        v.mismatched.len(),
        v.replays_wrong.len(),
        v.replays_checked,
    );
    if v.republished {
        out.push_str(
            "  another plan was published during the run: a cell may keep what it held then, \
             so it is checked against what it held before plus what this run booked there\n",
        );
    }
    for o in v.oversold.iter().take(20) {
        out.push_str(&format!(
            "  OVERSOLD {}: {} reserved, {} planned, at most {} allowed\n",
            o.cell, o.reserved, o.planned, o.allowed
        ));
    }
    for l in v.lost.iter().take(20) {
        let why = match &l.kind {
            LostKind::Missing => "not on the server".to_string(),
            LostKind::WrongState { expected, found } => {
                format!("expected {expected:?}, server says {found:?}")
            }
            LostKind::WrongCell { expected, found } => {
                format!("acknowledged in {expected}, server has it in {found}")
            }
        };
        out.push_str(&format!("  LOST {}: {why}\n", l.id));
    }
    for r in v.replays_wrong.iter().take(20) {
        out.push_str(&format!(
            "  REPLAY {}: first answer {}, the same request again gave {}\n",
            r.key, r.first, r.got
        ));
    }
    for m in v.mismatched.iter().take(20) {
        out.push_str(&format!(
            "  MISMATCH {}: GetStock says {} reserved, ListReservations lists {} active\n",
            m.cell, m.stock_reserved, m.listed_active
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(loc: &str, week: u32) -> CellKey {
        CellKey {
            location: loc.into(),
            exam: "KNM".into(),
            iso_week: format!("2027-W{:02}", week + 1),
        }
    }

    fn stock(cells: &[(CellKey, u32, u32, u32)]) -> Stock {
        cells
            .iter()
            .map(|(c, planned, reserved, conflict)| {
                (
                    c.clone(),
                    StockCount {
                        planned: *planned,
                        reserved: *reserved,
                        conflict: *conflict,
                    },
                )
            })
            .collect()
    }

    fn found(state: Listed, c: &CellKey) -> Found {
        Found {
            state,
            cell: c.clone(),
        }
    }

    /// A consistent run: r1 active in AMS/0, r2 cancelled, r3 with a lost
    /// cancel answer (cancelled on the server).
    fn consistent() -> (Stock, Stock, Expected, Listing) {
        let (a0, u1) = (cell("AMS", 0), cell("UTR", 1));
        let before = stock(&[(a0.clone(), 2, 0, 0), (u1.clone(), 1, 0, 0)]);
        let after = stock(&[(a0.clone(), 2, 1, 0), (u1.clone(), 1, 0, 0)]);
        let expected = Expected::from([
            ("r1".to_string(), (a0.clone(), Expect::Active)),
            ("r2".to_string(), (u1.clone(), Expect::Cancelled)),
            ("r3".to_string(), (a0.clone(), Expect::Either)),
        ]);
        let listed = Listing::from([
            ("r1".to_string(), found(Listed::Active, &a0)),
            ("r2".to_string(), found(Listed::Cancelled, &u1)),
            ("r3".to_string(), found(Listed::Cancelled, &a0)),
        ]);
        (before, after, expected, listed)
    }

    #[test]
    fn a_consistent_run_passes() {
        let (before, after, expected, listed) = consistent();
        let v = verify(&before, &after, &expected, &listed, None);
        assert!(v.passed(), "{v:?}");
        assert_eq!((v.cells_checked, v.reservations_checked), (2, 3));
        assert!(render_verdict(&v).contains("oversold: 0, lost acks: 0"));
    }

    #[test]
    fn a_cell_over_its_seats_is_oversold() {
        let (before, mut after, expected, mut listed) = consistent();
        let a0 = cell("AMS", 0);
        after.get_mut(&a0).unwrap().reserved = 3;
        listed.insert("x1".into(), found(Listed::Active, &a0));
        listed.insert("x2".into(), found(Listed::Active, &a0));
        let v = verify(&before, &after, &expected, &listed, None);
        assert_eq!(
            v.oversold,
            [Oversold {
                cell: a0,
                planned: 2,
                reserved: 3,
                allowed: 2
            }]
        );
        assert!(v.lost.is_empty() && v.mismatched.is_empty(), "{v:?}");
        assert!(!v.passed());
        assert!(render_verdict(&v).contains("OVERSOLD AMS/KNM/2027-W01: 3 reserved"));
    }

    #[test]
    fn a_republish_conflict_may_stay_but_not_grow() {
        let c = cell("AMS", 0);
        // A re-publish cut the cell to 1 seat under 3 reservations.
        let before = stock(&[(c.clone(), 1, 3, 2)]);
        let none = Expected::new();
        let listed = |n: usize| -> Listing {
            (0..n)
                .map(|i| (format!("r{i}"), found(Listed::Active, &c)))
                .collect()
        };
        let same = stock(&[(c.clone(), 1, 3, 2)]);
        assert!(verify(&before, &same, &none, &listed(3), None).passed());
        let fewer = stock(&[(c.clone(), 1, 2, 1)]);
        assert!(verify(&before, &fewer, &none, &listed(2), None).passed());
        let grew = stock(&[(c.clone(), 1, 4, 3)]);
        let v = verify(&before, &grew, &none, &listed(4), None);
        assert_eq!(v.oversold.len(), 1, "{v:?}");
        assert_eq!(v.oversold[0].allowed, 3);
    }

    /// A plan published during the run may cut a cell under the seats this
    /// run booked there: it keeps them (a reviewer's run failed with 92
    /// such cells, every one in that publish's conflicts). More than held
    /// before plus booked (plus lost answers) is still oversold.
    #[test]
    fn a_publish_during_the_run_may_keep_what_the_run_booked() {
        let c = cell("AMS", 0);
        let before = stock(&[(c.clone(), 2, 1, 0)]);
        let mut booked = Expected::new();
        for i in 0..2 {
            booked.insert(format!("r{i}"), (c.clone(), Expect::Active));
        }
        let listed = |n: usize| -> Listing {
            (0..n)
                .map(|i| (format!("r{i}"), found(Listed::Active, &c)))
                .collect()
        };
        // The new plan has no seats there; 1 held before, 2 booked since.
        let cut = stock(&[(c.clone(), 0, 3, 3)]);
        let republished = Some(Republished {
            unknown_reserves: 0,
        });
        let v = verify(&before, &cut, &booked, &listed(3), republished);
        assert!(v.passed(), "{v:?}");
        assert!(render_verdict(&v).contains("another plan was published during the run"));
        // Without the publish it would be oversold, as it would with more.
        assert_eq!(
            verify(&before, &cut, &booked, &listed(3), None)
                .oversold
                .len(),
            1
        );
        let more = stock(&[(c.clone(), 0, 4, 4)]);
        let v = verify(&before, &more, &booked, &listed(4), republished);
        assert_eq!(v.oversold.len(), 1, "{v:?}");
        assert_eq!(v.oversold[0].allowed, 3);
        // A lost answer may have booked there too.
        let lost = Some(Republished {
            unknown_reserves: 1,
        });
        assert!(verify(&before, &more, &booked, &listed(4), lost)
            .oversold
            .is_empty());
    }

    #[test]
    fn missing_or_changed_reservations_are_lost_acks() {
        let (before, after, mut expected, mut listed) = consistent();
        // Acknowledged but never stored.
        expected.insert("r4".into(), (cell("AMS", 0), Expect::Active));
        // Acknowledged cancel, still active on the server.
        listed.insert("r2".into(), found(Listed::Active, &cell("UTR", 1)));
        // Moved to another cell.
        listed.insert("r1".into(), found(Listed::Active, &cell("AMS", 1)));
        // A lost cancel answer accepts either state, not an unknown one.
        listed.insert("r3".into(), found(Listed::Other(0), &cell("AMS", 0)));
        let v = verify(&before, &after, &expected, &listed, None);
        let kinds: BTreeMap<&str, &LostKind> =
            v.lost.iter().map(|l| (l.id.as_str(), &l.kind)).collect();
        assert_eq!(kinds.len(), 4, "{v:?}");
        assert_eq!(kinds["r4"], &LostKind::Missing);
        assert_eq!(
            kinds["r2"],
            &LostKind::WrongState {
                expected: Expect::Cancelled,
                found: Listed::Active
            }
        );
        assert!(matches!(kinds["r1"], LostKind::WrongCell { .. }));
        assert!(matches!(
            kinds["r3"],
            LostKind::WrongState {
                expected: Expect::Either,
                found: Listed::Other(0)
            }
        ));
        let text = render_verdict(&v);
        assert!(text.contains("lost acks: 4"), "{text}");
        assert!(text.contains("LOST r4: not on the server"), "{text}");
    }

    #[test]
    fn a_wrong_replay_fails_the_check() {
        let (before, after, expected, listed) = consistent();
        let mut v = verify(&before, &after, &expected, &listed, None);
        v.replays_checked = 2;
        assert!(v.passed());
        v.replays_wrong.push(ReplayMismatch {
            key: "lt-1".into(),
            first: "r1".into(),
            got: "r9 (replayed: false)".into(),
        });
        assert!(!v.passed());
        let text = render_verdict(&v);
        assert!(text.contains("wrong idempotent replays: 1 of 2"), "{text}");
        assert!(text.contains("REPLAY lt-1: first answer r1"), "{text}");
    }

    #[test]
    fn stock_and_listing_must_agree() {
        let (before, mut after, expected, listed) = consistent();
        after.get_mut(&cell("UTR", 1)).unwrap().reserved = 1;
        let mut listed2 = listed.clone();
        listed2.insert("y".into(), found(Listed::Active, &cell("DHG", 1)));
        // A week the published plan does not cover: GetStock leaves it out.
        listed2.insert("z".into(), found(Listed::Active, &cell("DHG", 40)));
        let v = verify(&before, &after, &expected, &listed2, None);
        assert_eq!(
            v.mismatched,
            [
                Mismatch {
                    cell: cell("UTR", 1),
                    stock_reserved: 1,
                    listed_active: 0
                },
                Mismatch {
                    cell: cell("DHG", 1),
                    stock_reserved: 0,
                    listed_active: 1
                }
            ]
        );
        assert!(v.oversold.is_empty() && v.lost.is_empty());
    }
}
