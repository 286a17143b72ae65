//! Progress on stderr: one line per pipeline event, or, on a terminal, one
//! line rewritten in place. Work whose result is a file (a report) uses
//! [`Progress::terminal_only`]: a spinner on a terminal, nothing in a pipe or
//! a log, where a line per chart would only be noise.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use examcap_solver::plan::{PlanProgress, Step};

/// Writes progress events to stderr. Write errors are ignored: progress is
/// a courtesy, never a reason to fail a solve.
pub struct Progress {
    terminal: bool,
    quiet: bool,
    /// A line is open on the terminal (written without a newline).
    open: Mutex<bool>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            quiet,
            open: Mutex::new(false),
        }
    }

    /// The text of one event, e.g. `examcap: stage1 2/4 blocks (1.3s)`.
    pub fn line(p: &PlanProgress) -> String {
        let secs = p.elapsed.as_secs_f64();
        // The solver reports a stage when its blocks finish, so say what runs
        // in the long silences after the build and after stage 1.
        let next = match p.step {
            _ if p.done < p.total => "",
            Step::Build => ", solving stage1",
            Step::Stage1 => ", solving stage2",
            _ => "",
        };
        match p.step {
            Step::Stage1 | Step::Stage2 => format!(
                "examcap: {} {}/{} blocks{next} ({secs:.1}s)",
                p.step.name(),
                p.done,
                p.total
            ),
            _ if p.done >= p.total => {
                format!("examcap: {} done{next} ({secs:.1}s)", p.step.name())
            }
            _ => format!("examcap: {} ... ({secs:.1}s)", p.step.name()),
        }
    }

    /// Progress that shows only on a terminal (and not when `quiet`).
    pub fn terminal_only(quiet: bool) -> Self {
        let mut p = Self::new(quiet);
        p.quiet |= !p.terminal;
        p
    }

    /// The text of a counted step with a spinner frame, e.g.
    /// `examcap: | report: chart 3/20 (0.4s)`.
    pub fn count_line(what: &str, done: usize, total: usize, elapsed: Duration) -> String {
        const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
        let frame = SPINNER[done % SPINNER.len()];
        let secs = elapsed.as_secs_f64();
        format!("examcap: {frame} {what} {done}/{total} ({secs:.1}s)")
    }

    /// `done` of `total` units of `what` are finished.
    pub fn count(&self, what: &str, done: usize, total: usize, elapsed: Duration) {
        if !self.quiet {
            self.show(&Self::count_line(what, done, total, elapsed));
        }
    }

    pub fn event(&self, p: PlanProgress) {
        if !self.quiet {
            self.show(&Self::line(&p));
        }
    }

    fn show(&self, line: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            *open = true;
            // Carriage return, the line, then clear to the end of the line.
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Ends the progress display with a last line (`examcap: solved in 4.2s`).
    pub fn finish(&self, message: &str) {
        if self.quiet {
            return;
        }
        self.show(message);
        self.close();
    }

    /// Ends an open terminal line, so the next message starts on its own.
    pub fn close(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if *open {
            let _ = writeln!(std::io::stderr());
            *open = false;
        }
    }
}

/// `4.2s`, or `2m05s` from a minute on.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = s.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let p = |step, done, total| PlanProgress {
            step,
            done,
            total,
            elapsed: Duration::from_millis(1340),
        };
        assert_eq!(
            Progress::line(&p(Step::Stage1, 2, 4)),
            "examcap: stage1 2/4 blocks (1.3s)"
        );
        assert_eq!(
            Progress::line(&p(Step::Rounding, 0, 1)),
            "examcap: rounding ... (1.3s)"
        );
        assert_eq!(
            Progress::line(&p(Step::Duals, 1, 1)),
            "examcap: duals done (1.3s)"
        );
        assert_eq!(
            Progress::line(&p(Step::Build, 1, 1)),
            "examcap: build done, solving stage1 (1.3s)"
        );
        assert_eq!(
            Progress::line(&p(Step::Stage1, 4, 4)),
            "examcap: stage1 4/4 blocks, solving stage2 (1.3s)"
        );
        assert_eq!(
            Progress::count_line("report: chart", 3, 20, Duration::from_millis(420)),
            "examcap: \\ report: chart 3/20 (0.4s)"
        );
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_millis(4240)), "4.2s");
    }
}
