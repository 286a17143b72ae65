//! # examcap-solver
//!
//! The planning core of examcap: no gRPC, no storage, no async runtime.
//! Data flows one way through these modules:
//!
//! - [`scenario`]: the `examcap/scenario@1` types.
//! - [`validate`]: untrusted bytes → a [`scenario::Scenario`], or every
//!   violation with its field path (`demand[3].weekly[7]: must be >= 0, got -2`).
//! - [`generate`]: a deterministic generator of national Dutch scenarios.
//! - [`model`]: the LP of DESIGN.md "The model", split into independent
//!   blocks (exams linked by a shared resource kind or rater pool), each a
//!   plain sparse LP with stage-1 and stage-2 costs.
//! - [`solve`]: the lexicographic two-stage solve on HiGHS, blocks in
//!   parallel, stage 2 hot-started from stage 1's basis.
//! - [`reference`]: the same model through good_lp on any backend, unsplit,
//!   as written in DESIGN.md; used to cross-check [`solve`].
//! - [`rounding`]: the integral allocation (never above capacity) and its repair.
//! - [`repack`]: rounding's last pass, exchanges of whole candidates where
//!   mixed exam lengths left minutes no single candidate fits in.
//! - [`waits`]: FIFO waiting times per registration cohort and percentiles.
//! - [`duals`]: shadow prices and the ranked "one extra session" list.
//! - [`plan`]: what a solve returns, and [`plan::plan_scenario`], the whole pipeline.
//! - [`reschedule`]: the exams a shock touches and the re-plan of a
//!   published plan (frozen weeks, σ-weighted stability, untouched blocks
//!   kept), and the diff of candidates moved per location/week/exam.
//! - [`repair`]: the first answer to a surge, a greedy feasible repair of
//!   the published plan in milliseconds (no LP).
//! - [`calendar`]: a plan's weekly allocation as dated morning/afternoon
//!   sessions per location, Dutch public holidays closed.
#![forbid(unsafe_code)]

pub mod calendar;
pub mod duals;
pub mod generate;
pub mod model;
pub mod plan;
pub mod reference;
pub mod repack;
pub mod repair;
pub mod reschedule;
pub mod rounding;
pub mod scenario;
pub mod solve;
pub mod validate;
pub mod waits;

pub use plan::{plan_scenario, Plan, PlanOptions};
pub use scenario::Scenario;
pub use validate::{parse_scenario, ValidationErrors};
