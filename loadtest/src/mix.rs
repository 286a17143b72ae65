//! The request mix: `quote=80,reserve=15,cancel=5` gives each RPC a weight;
//! every client draws its next RPC from the weights with its seeded RNG.

use std::fmt;
use std::str::FromStr;

/// The RPCs the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Quote,
    Reserve,
    Cancel,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Quote, Op::Reserve, Op::Cancel];

    /// The gRPC method name, as printed in the report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Quote => "Quote",
            Op::Reserve => "Reserve",
            Op::Cancel => "Cancel",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Op::Quote => "quote",
            Op::Reserve => "reserve",
            Op::Cancel => "cancel",
        }
    }
}

/// Why a `--mix` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("--mix: {0:?} is not NAME=WEIGHT (e.g. quote=80,reserve=15,cancel=5)")]
    Syntax(String),
    #[error("--mix: unknown RPC {0:?} (expected quote, reserve or cancel)")]
    UnknownOp(String),
    #[error("--mix: {0} is given twice")]
    Duplicate(&'static str),
    #[error("--mix: the weight of {op} must be a whole number 0..=1000000, got {value:?}")]
    Weight { op: &'static str, value: String },
    #[error("--mix: the weights add up to 0; give at least one RPC a weight > 0")]
    Empty,
}

/// Integer weights per RPC (absent ones are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    pub fn weight(&self, op: Op) -> u32 {
        self.weights[op as usize]
    }

    fn total(&self) -> u64 {
        self.weights.iter().map(|&w| u64::from(w)).sum()
    }

    /// The RPC for a uniform draw `r` (any u64; it is reduced modulo the
    /// total weight), in the order quote, reserve, cancel.
    pub fn pick(&self, r: u64) -> Op {
        let mut x = r % self.total();
        for op in Op::ALL {
            let w = u64::from(self.weight(op));
            if x < w {
                return op;
            }
            x -= w;
        }
        unreachable!("x < total weight, so some op's band holds it")
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, MixError> {
        let mut weights = [None::<u32>; 3];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| MixError::Syntax(part.to_string()))?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.key() == name.trim().to_ascii_lowercase())
                .ok_or_else(|| MixError::UnknownOp(name.trim().to_string()))?;
            let w = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&w| w <= 1_000_000)
                .ok_or_else(|| MixError::Weight {
                    op: op.key(),
                    value: value.trim().to_string(),
                })?;
            let slot = &mut weights[op as usize];
            if slot.is_some() {
                return Err(MixError::Duplicate(op.key()));
            }
            *slot = Some(w);
        }
        let mix = Mix {
            weights: weights.map(|w| w.unwrap_or(0)),
        };
        if mix.total() == 0 {
            return Err(MixError::Empty);
        }
        Ok(mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Op::ALL
            .into_iter()
            .filter(|&op| self.weight(op) > 0)
            .map(|op| format!("{}={}", op.key(), self.weight(op)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weights_and_picks_in_proportion() {
        let m: Mix = "quote=80, reserve=15,cancel=5".parse().unwrap();
        assert_eq!(m.weight(Op::Quote), 80);
        assert_eq!(m.weight(Op::Reserve), 15);
        assert_eq!(m.weight(Op::Cancel), 5);
        assert_eq!(m.to_string(), "quote=80,reserve=15,cancel=5");
        let mut counts = [0u32; 3];
        for r in 0..100u64 {
            counts[m.pick(r) as usize] += 1;
        }
        assert_eq!(counts, [80, 15, 5]);
        // Draws wrap modulo the total.
        assert_eq!(m.pick(100), Op::Quote);
        assert_eq!(m.pick(199), Op::Cancel);
    }

    #[test]
    fn absent_rpcs_weigh_nothing() {
        let m: Mix = "RESERVE=1".parse().unwrap();
        assert!((0..50).all(|r| m.pick(r) == Op::Reserve));
        assert_eq!(m.to_string(), "reserve=1");
    }

    #[test]
    fn bad_mixes_name_the_problem() {
        let e = |s: &str| s.parse::<Mix>().unwrap_err();
        assert_eq!(e("quote"), MixError::Syntax("quote".into()));
        assert_eq!(
            e("quote=1,reschedule=2"),
            MixError::UnknownOp("reschedule".into())
        );
        assert_eq!(e("quote=1,quote=2"), MixError::Duplicate("quote"));
        assert_eq!(
            e("cancel=-1"),
            MixError::Weight {
                op: "cancel",
                value: "-1".into()
            }
        );
        assert!(matches!(e("reserve=1.5"), MixError::Weight { .. }));
        assert_eq!(e("quote=0,cancel=0"), MixError::Empty);
        assert_eq!(e(""), MixError::Empty);
        assert!(e("quote=x").to_string().contains("quote"));
    }
}
