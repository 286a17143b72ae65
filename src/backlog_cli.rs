//! `examcap backlog export`: the reservations of a server (or of its data
//! directory) as the `backlog` array of the next scenario. The rule that
//! decides who is waiting and in which week they registered is in
//! [`examcap::backlog`].

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use chrono::Utc;
use clap::{Args, Subcommand};
use examcap::backlog::{self, BacklogError, Waiting};
use examcap_solver::scenario::parse_iso_week;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum BacklogCommand {
    /// Write the active reservations as an examcap/scenario@1 `backlog` array:
    /// candidates per (region, exam, registration week) who hold a seat in
    /// week 0 of the next scenario or later.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["server", "data_dir"])))]
pub struct ExportArgs {
    /// A running server, e.g. http://127.0.0.1:50051.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for --server, of role registration or planner (or the
    /// EXAMCAP_TOKEN environment variable; none for a server run with
    /// --allow-unauthenticated).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// The server's data directory (with the server stopped).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Week 0 of the next scenario (its start_week); default: the current ISO
    /// week in the Netherlands.
    #[arg(long, value_name = "YYYY-Www", value_parser = crate::iso_week)]
    start_week: Option<String>,
    /// Write the JSON array here; default: stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn cmd_backlog(c: &BacklogCommand) -> Result<(), Failure> {
    let BacklogCommand::Export(a) = c;
    // Checked before the store is read: a file written into the data
    // directory replaced one of the store's own files (`--out DIR/db` left
    // a store that no longer opened).
    if let Some(out) = &a.out {
        crate::check_out(out, &[])?;
        if let Some(dir) = a.data_dir.as_deref().filter(|d| crate::within(out, d)) {
            return Err(Failure::Input(format!(
                "{}: cannot write: it is inside the data directory {} this command reads; write the output elsewhere",
                out.display(),
                dir.display()
            )));
        }
    }
    let start = match &a.start_week {
        Some(w) => parse_iso_week(w)
            .ok_or_else(|| anyhow!("--start-week: {w:?} is not an ISO week like 2027-W10"))?,
        None => {
            // The week the registration clock is in, not the machine's zone.
            backlog::monday_of(examcap::registration::stock::dutch_date(Utc::now()))
        }
    };
    let waiting: Result<Vec<Waiting>, BacklogError> = match (&a.server, &a.data_dir) {
        (Some(url), _) => {
            let token = examcap::client::token_or_env(a.token.as_deref());
            crate::block_on(backlog::from_server(url, token.as_deref()))?
        }
        (None, Some(dir)) => backlog::from_data_dir(dir),
        (None, None) => {
            return Err(Failure::Input(
                "examcap: give --server URL [--token TOKEN] or --data-dir DIR".into(),
            ))
        }
    };
    let waiting = waiting.map_err(|e| {
        if e.is_input() {
            Failure::Input(format!("examcap: {e}"))
        } else {
            Failure::Internal(anyhow!("{e}"))
        }
    })?;
    let rows = backlog::backlog(&waiting, start);
    let mut text = serde_json::to_string_pretty(&rows).context("backlog to JSON")?;
    text.push('\n');
    match &a.out {
        Some(path) => crate::write_atomically(path, text.as_bytes()),
        None => crate::emit(&text),
    }
}
