//! `examcap audit`: the audit log, from a running server
//! (`AuditService.ListAuditEntries`, role planner) or from its data
//! directory with the server stopped (sled holds its directory
//! exclusively), as `backlog export` reads the reservations. Every write the
//! service makes is in it: who (the token's name), with which role, which
//! RPC, on what, and when.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use examcap::client::{authed, call_failure, connect, is_caller_code, ClientError};
use examcap::proto;
use examcap::store::{AuditEntry, SledStore, Store};

use crate::summary::Table;
use crate::Failure;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["server", "data_dir"])))]
pub struct AuditArgs {
    /// A running server, e.g. http://127.0.0.1:50051.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for --server, of role planner (or the EXAMCAP_TOKEN
    /// environment variable; none for a server run with
    /// --allow-unauthenticated).
    #[arg(long, value_name = "TOKEN", requires = "server")]
    token: Option<String>,
    /// The server's data directory (with the server stopped).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// One JSON array of {who, role, rpc, target, unix_time} instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn cmd_audit(a: &AuditArgs) -> Result<(), Failure> {
    let log = match (&a.server, &a.data_dir) {
        (Some(url), _) => {
            let token = examcap::client::token_or_env(a.token.as_deref());
            crate::block_on(from_server(url, token.as_deref()))??
        }
        (None, Some(dir)) => from_data_dir(dir)?,
        (None, None) => {
            return Err(Failure::Input(
                "examcap: give --server URL [--token TOKEN] or --data-dir DIR".into(),
            ))
        }
    };
    let text = if a.json {
        serde_json::to_string_pretty(&log).context("audit log to JSON")? + "\n"
    } else {
        render(&log)
    };
    crate::emit(&text)
}

/// The log of a stopped server's data directory.
fn from_data_dir(dir: &std::path::Path) -> Result<Vec<AuditEntry>, Failure> {
    let store = SledStore::open_existing(dir).map_err(|e| {
        if e.is_wrong_directory() {
            Failure::Input(format!("examcap: {e}"))
        } else {
            Failure::Internal(anyhow::Error::new(e))
        }
    })?;
    store
        .audit_log()
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

/// The log of a running server, page by page. The caller's mistakes
/// (address, token, role) exit 2, as `backlog export --server`.
async fn from_server(url: &str, token: Option<&str>) -> Result<Vec<AuditEntry>, Failure> {
    let client_failure = |e: ClientError| {
        if e.is_input() {
            Failure::Input(format!("examcap: {e}"))
        } else {
            Failure::Internal(anyhow!("{e}"))
        }
    };
    let mut client = proto::audit_service_client::AuditServiceClient::new(
        connect(url).await.map_err(client_failure)?,
    );
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = authed(
            proto::ListAuditEntriesRequest {
                page_size: 1000,
                page_token,
            },
            token,
        )
        .map_err(client_failure)?;
        let page = client
            .list_audit_entries(req)
            .await
            .map_err(|s| {
                let message = format!(
                    "examcap: ListAuditEntries: {:?}: {}",
                    s.code(),
                    call_failure(&s, token.is_some())
                );
                if is_caller_code(s.code()) {
                    Failure::Input(message)
                } else {
                    Failure::Internal(anyhow!(message))
                }
            })?
            .into_inner();
        out.extend(page.entries.into_iter().map(|e| AuditEntry {
            who: e.who,
            role: e.role,
            rpc: e.rpc,
            target: e.target,
            unix_time: e.unix_time,
        }));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
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
