//! `examcap audit`: the audit log of a store, read with the server stopped
//! (sled holds its directory exclusively), as `backlog export --data-dir`
//! reads the reservations. Every write the service makes is in it: who
//! (the token's name), with which role, which RPC, on what, and when.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use examcap::store::{AuditEntry, SledStore, Store, StoreError};

use crate::summary::Table;
use crate::Failure;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The server's data directory (with the server stopped).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// One JSON array of {who, role, rpc, target, unix_time} instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn cmd_audit(a: &AuditArgs) -> Result<(), Failure> {
    let store = SledStore::open_existing(&a.data_dir).map_err(|e| match e {
        StoreError::NoStore(_) | StoreError::Locked(_) | StoreError::NoAccess(_) => {
            Failure::Input(format!("examcap: {e}"))
        }
        e => Failure::Internal(anyhow::Error::new(e)),
    })?;
    let log = store
        .audit_log()
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    let text = if a.json {
        serde_json::to_string_pretty(&log).context("audit log to JSON")? + "\n"
    } else {
        render(&log)
    };
    crate::emit(&text)
}

/// The log as a table, oldest first, times in UTC.
fn render(log: &[AuditEntry]) -> String {
    if log.is_empty() {
        return "the audit log is empty\n".to_string();
    }
    let mut table = Table::new(&["time (UTC)", "who", "role", "rpc", "target"], "lllll");
    for e in log {
        let time = chrono::DateTime::from_timestamp(e.unix_time, 0).map_or_else(
            || e.unix_time.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        );
        table = table.row(vec![
            time,
            e.who.clone(),
            e.role.clone(),
            e.rpc.clone(),
            e.target.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_entry_in_utc() {
        let text = render(&[AuditEntry {
            who: "planning-team".into(),
            role: "planner".into(),
            rpc: "Publish".into(),
            target: "p1".into(),
            unix_time: 1_798_761_600, // 2027-01-01 00:00:00 UTC
        }]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("time (UTC)"), "{text}");
        assert!(
            lines[2].contains("2027-01-01 00:00:00")
                && lines[2].contains("planning-team")
                && lines[2].contains("Publish")
                && lines[2].ends_with("p1"),
            "{text}"
        );
        assert_eq!(render(&[]), "the audit log is empty\n");
    }
}
