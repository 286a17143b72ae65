//! Who is calling, and may they call this RPC.
//!
//! A caller presents `authorization: Bearer <token>`; the token is looked up
//! in the configured tokens, which give a name (for the audit log) and a
//! role. Roles are coarse on purpose: DESIGN.md names three kinds of users,
//! and each RPC lists the roles that may call it ([`allowed`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Exam-board planners: scenarios, solves, publishing, drills.
    Planner,
    /// Registration systems: read the published plan; quote and reserve seats.
    Registration,
    /// Ops: drills, and reading scenarios and plans.
    Drill,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Planner => "planner",
            Role::Registration => "registration",
            Role::Drill => "drill",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "planner" => Ok(Role::Planner),
            "registration" => Ok(Role::Registration),
            "drill" => Ok(Role::Drill),
            other => Err(format!(
                "unknown role {other:?} (expected planner, registration or drill)"
            )),
        }
    }
}

/// The RPCs that check a role (health and reflection are open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    PutScenario,
    GetScenario,
    ListScenarios,
    Solve,
    GetPlan,
    ListPlans,
    Publish,
    GetPublished,
    RunDrill,
    Quote,
    Reserve,
    Cancel,
    ListReservations,
    GetStock,
    Reschedule,
    ListAuditEntries,
}

impl Rpc {
    pub fn name(self) -> &'static str {
        match self {
            Rpc::PutScenario => "PutScenario",
            Rpc::GetScenario => "GetScenario",
            Rpc::ListScenarios => "ListScenarios",
            Rpc::Solve => "Solve",
            Rpc::GetPlan => "GetPlan",
            Rpc::ListPlans => "ListPlans",
            Rpc::Publish => "Publish",
            Rpc::GetPublished => "GetPublished",
            Rpc::RunDrill => "RunDrill",
            Rpc::Quote => "Quote",
            Rpc::Reserve => "Reserve",
            Rpc::Cancel => "Cancel",
            Rpc::ListReservations => "ListReservations",
            Rpc::GetStock => "GetStock",
            Rpc::Reschedule => "Reschedule",
            Rpc::ListAuditEntries => "ListAuditEntries",
        }
    }
}

/// Whether `role` may call `rpc`. Registration's GetPlan is further limited
/// to the published plan by the handler (it needs the store to tell).
pub fn allowed(role: Role, rpc: Rpc) -> bool {
    use Rpc::*;
    match role {
        // Planners read the registration stock but do not book seats.
        Role::Planner => !matches!(rpc, Reserve | Cancel),
        Role::Drill => matches!(
            rpc,
            RunDrill
                | Reschedule
                | GetScenario
                | ListScenarios
                | GetPlan
                | ListPlans
                | GetPublished
        ),
        Role::Registration => matches!(
            rpc,
            GetPublished | GetPlan | Quote | Reserve | Cancel | ListReservations | GetStock
        ),
    }
}

/// One configured token. Unknown keys are refused: a `expires = ...` that
/// examcap does not know must not look as if it were in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Who holds it, for the audit log (not secret).
    pub name: String,
    pub role: Role,
    /// The secret presented as `Bearer <token>`.
    pub token: String,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Why a caller was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `authorization: Bearer <token>` metadata")]
    Missing,
    #[error("unknown or malformed bearer token")]
    Unknown,
    #[error("role {role} may not call {rpc}")]
    Forbidden { role: Role, rpc: &'static str },
}

/// The token table.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
    /// With no token presented, act as an anonymous planner (development only).
    allow_unauthenticated: bool,
}

impl Auth {
    pub fn new(tokens: Vec<Token>, allow_unauthenticated: bool) -> Self {
        Auth {
            tokens,
            allow_unauthenticated,
        }
    }

    /// Authenticates the caller and checks that its role may call `rpc`.
    pub fn check(&self, md: &MetadataMap, rpc: Rpc) -> Result<Caller, AuthError> {
        let caller = self.authenticate(md)?;
        if allowed(caller.role, rpc) {
            Ok(caller)
        } else {
            Err(AuthError::Forbidden {
                role: caller.role,
                rpc: rpc.name(),
            })
        }
    }

    fn authenticate(&self, md: &MetadataMap) -> Result<Caller, AuthError> {
        let Some(value) = md.get("authorization") else {
            return if self.allow_unauthenticated {
                Ok(Caller {
                    name: "anonymous".into(),
                    role: Role::Planner,
                })
            } else {
                Err(AuthError::Missing)
            };
        };
        let value = value.to_str().map_err(|_| AuthError::Unknown)?;
        // The scheme is case-insensitive (RFC 9110 §11.1): Bearer, bearer, BEARER.
        let presented = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .ok_or(AuthError::Unknown)?
            .1
            .trim();
        // Compare against every token without stopping early, so timing
        // does not tell how much of a guess was right.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(t);
            }
        }
        found
            .map(|t| Caller {
                name: t.name.clone(),
                role: t.role,
            })
            .ok_or(AuthError::Unknown)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn roles_and_tokens() {
        let a = Auth::new(
            vec![Token {
                name: "reg".into(),
                role: Role::Registration,
                token: "s3cret".into(),
            }],
            false,
        );
        assert_eq!(
            a.check(&MetadataMap::new(), Rpc::GetPublished),
            Err(AuthError::Missing)
        );
        assert_eq!(
            a.check(&md("Bearer nope"), Rpc::GetPublished),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            a.check(&md("s3cret"), Rpc::GetPublished),
            Err(AuthError::Unknown)
        );
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let value = format!("{scheme} s3cret");
            assert_eq!(a.check(&md(&value), Rpc::GetPublished).unwrap().name, "reg");
        }
        for value in ["Basic s3cret", "Bearers3cret", "Bearer"] {
            assert_eq!(
                a.check(&md(value), Rpc::GetPublished),
                Err(AuthError::Unknown)
            );
        }
        assert!(matches!(
            a.check(&md("Bearer s3cret"), Rpc::PutScenario),
            Err(AuthError::Forbidden { .. })
        ));
        assert!(allowed(Role::Drill, Rpc::RunDrill));
        assert!(!allowed(Role::Drill, Rpc::Publish));
        assert!(!allowed(Role::Registration, Rpc::RunDrill));
        assert!(allowed(Role::Registration, Rpc::Reserve));
        assert!(allowed(Role::Planner, Rpc::GetStock));
        assert!(allowed(Role::Planner, Rpc::ListAuditEntries));
        assert!(!allowed(Role::Drill, Rpc::ListAuditEntries));
        assert!(!allowed(Role::Registration, Rpc::ListAuditEntries));
        assert!(!allowed(Role::Planner, Rpc::Reserve));
        assert!(!allowed(Role::Drill, Rpc::Quote));
    }
}
