//! Server configuration: a TOML file, then environment overrides
//! (`EXAMCAP_LISTEN`, `EXAMCAP_DATA_DIR`, `EXAMCAP_TOKENS`,
//! `EXAMCAP_TODAY`), then flags.
//!
//! ```toml
//! listen = "127.0.0.1:50051"
//! data_dir = "examcap-data"
//! max_message_bytes = 33554432
//! max_concurrent_solves = 2
//! solve_queue = 8
//! worker_threads = 0
//! shutdown_grace_seconds = 20
//! disk_reserve_mb = 64
//! store_stall_seconds = 30
//! [[tokens]]
//! name = "planning-team"
//! role = "planner"
//! token = "change-me"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::auth::{Role, Token};
use crate::registration::stock::Clock;

/// Default for [`Config::max_message_bytes`]: 32 MiB, twice the largest
/// scenario document, so a full scenario always fits in a request.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Default for [`Config::solve_queue`].
pub const DEFAULT_SOLVE_QUEUE: usize = 8;

/// Most runtime threads [`Config::worker_threads`] may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;
/// Most solves [`Config::max_concurrent_solves`] may run at once (each is a
/// CPU-bound HiGHS run; far more than any machine has cores).
pub const MAX_CONCURRENT_SOLVES: usize = 1024;
/// Longest [`Config::solve_queue`].
pub const MAX_SOLVE_QUEUE: usize = 1_000_000;
/// Largest [`Config::max_message_bytes`]: 1 GiB (a national plan is a few MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Default for [`Config::shutdown_grace_seconds`]: under Kubernetes' default
/// 30-second termination grace, so the process exits before SIGKILL.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 20;
/// Longest [`Config::shutdown_grace_seconds`]: one hour.
pub const MAX_SHUTDOWN_GRACE_SECONDS: u64 = 3600;
/// Default for [`Config::store_stall_seconds`]: far above a healthy flush
/// (milliseconds; seconds on a busy network disk).
pub const DEFAULT_STORE_STALL_SECONDS: u64 = crate::store::STALL_LIMIT.as_secs();
/// Longest [`Config::store_stall_seconds`]: one hour.
pub const MAX_STORE_STALL_SECONDS: u64 = 3600;

/// A date as TOML writes it (`today = 2027-01-04`) or as a string
/// (`today = "2027-01-04"`).
fn toml_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let text = match toml::Value::deserialize(d)? {
        toml::Value::Datetime(t) => t.to_string(),
        toml::Value::String(s) => s,
        other => {
            return Err(serde::de::Error::custom(format!(
                "today: expected a date like 2027-01-04 (YYYY-MM-DD), got a TOML {}",
                other.type_str()
            )))
        }
    };
    parse_booking_date(&text)
        .map(Some)
        .map_err(|m| serde::de::Error::custom(format!("today: {m}")))
}

/// A booking date as `today` and `EXAMCAP_TODAY` take it: `YYYY-MM-DD`
/// exactly, from 1970 to 9999, so that a mistyped year (`0207`, `+20270`)
/// is refused instead of quietly reopening or closing every week.
pub fn parse_booking_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    let b = t.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0..4, 5..7, 8..10]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
    match date.filter(|d| shaped && d.year() >= 1970) {
        Some(d) => Ok(d),
        None => Err(format!(
            "{text:?} is not a date like 2027-01-04 (YYYY-MM-DD, from 1970)"
        )),
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Where and what, without the TOML parser's quote of the line: that
    /// line may hold a token.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// TLS certificate chain and private key (PEM files), as `[tls]` in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the server needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address `examcap serve` listens on.
    pub listen: SocketAddr,
    /// Where the sled database lives.
    pub data_dir: PathBuf,
    /// Bearer tokens and their roles.
    pub tokens: Vec<Token>,
    /// Serve without tokens (every caller is an anonymous planner). Refused
    /// unless set, so a forgotten token list never opens the service.
    pub allow_unauthenticated: bool,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Solves running at once; 0 = the number of cores.
    pub max_concurrent_solves: usize,
    /// Solves waiting for a slot before further ones get RESOURCE_EXHAUSTED.
    pub solve_queue: usize,
    /// Threads of the async runtime that serves the calls; 0 = the number of
    /// cores. Fewer leave cores to what shares the machine (a load generator
    /// on loopback, say); solves and the reservation writer have their own
    /// threads either way.
    pub worker_threads: usize,
    /// Serve TLS (rustls, ring) with this certificate chain and key;
    /// plaintext HTTP/2 when absent.
    pub tls: Option<TlsConfig>,
    /// After SIGTERM, how long calls in flight may take to finish before the
    /// server stops anyway. Without a bound, one stream that never ends (a
    /// load balancer's `Health/Watch`) kept the process up until SIGKILL.
    pub shutdown_grace_seconds: u64,
    /// Pins the registration clock to this date (`YYYY-MM-DD`): Quote and
    /// Reserve sell a cell until the day before its first session, judged
    /// by this date instead of the date in the Netherlands. For rehearsals and
    /// tests against a plan whose weeks are not the current ones; leave it
    /// out in production.
    #[serde(deserialize_with = "toml_date")]
    pub today: Option<NaiveDate>,
    /// Free space, in MiB, every write leaves on the data directory's disk:
    /// below it writes are refused (RESOURCE_EXHAUSTED, or UNAVAILABLE for
    /// a reservation, nothing written) until space is freed. sled, once a
    /// write of its own fails for a full disk, refuses every later write
    /// until a restart.
    pub disk_reserve_mb: u64,
    /// A store write still running after this many seconds turns the
    /// health service NOT_SERVING, and every later write is refused
    /// (UNAVAILABLE, nothing written), until it returns. sled has no
    /// timeout: a write whose disk stopped answering hangs, and without
    /// this every later write queued behind it while the health service
    /// said SERVING, so nothing restarted the replica.
    pub store_stall_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("examcap-data"),
            tokens: Vec::new(),
            allow_unauthenticated: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_solves: 0,
            solve_queue: DEFAULT_SOLVE_QUEUE,
            worker_threads: 0,
            tls: None,
            shutdown_grace_seconds: DEFAULT_SHUTDOWN_GRACE_SECONDS,
            today: None,
            disk_reserve_mb: crate::store::DISK_RESERVE >> 20,
            store_stall_seconds: DEFAULT_STORE_STALL_SECONDS,
        }
    }
}

impl Config {
    /// Reads a TOML file (missing keys take their defaults).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map_or(0, |s| {
                1 + text[..s.start.min(text.len())].matches('\n').count()
            }),
            message: e.message().trim().to_string(),
        })
    }

    /// Applies `EXAMCAP_LISTEN`, `EXAMCAP_DATA_DIR`, `EXAMCAP_TODAY` and `EXAMCAP_TOKENS`
    /// (`name:role:token,...`, replacing the file's tokens) from `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("EXAMCAP_LISTEN") {
            self.listen = v.trim().parse().map_err(|e| ConfigError::Env {
                var: "EXAMCAP_LISTEN",
                message: format!("{v:?} is not an address like 127.0.0.1:50051: {e}"),
            })?;
        }
        if let Some(v) = get("EXAMCAP_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("EXAMCAP_TODAY") {
            let d = parse_booking_date(&v).map_err(|message| ConfigError::Env {
                var: "EXAMCAP_TODAY",
                message,
            })?;
            self.today = Some(d);
        }
        if let Some(v) = get("EXAMCAP_TOKENS") {
            // Set but empty (an empty Secret key, say) would silently drop
            // the file's tokens and then fail as "no tokens configured".
            if v.split(',').all(|p| p.trim().is_empty()) {
                return Err(ConfigError::Env {
                    var: "EXAMCAP_TOKENS",
                    message: "set but empty: it replaces the config file's tokens, so give \
                              name:role:token entries or unset it to keep the file's"
                        .into(),
                });
            }
            self.tokens = parse_tokens(&v).map_err(|message| ConfigError::Env {
                var: "EXAMCAP_TOKENS",
                message,
            })?;
        }
        Ok(())
    }

    /// The registration clock: [`Config::today`] if set, else the date in
    /// the Netherlands ([`crate::registration::stock::dutch_date`]).
    pub fn clock(&self) -> Clock {
        self.today.map_or_else(Clock::system, Clock::pinned)
    }

    /// Solves that may run at once.
    pub fn solve_slots(&self) -> usize {
        if self.max_concurrent_solves == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.max_concurrent_solves
        }
    }

    /// Threads of the runtime that serves the calls.
    pub fn runtime_workers(&self) -> usize {
        if self.worker_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.worker_threads
        }
    }

    /// Rejects configurations the server cannot run with.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tokens.is_empty() && !self.allow_unauthenticated {
            return Err(ConfigError::Invalid(
                "no tokens configured: add [[tokens]] to the config or set EXAMCAP_TOKENS, \
                 or pass --allow-unauthenticated to serve without authentication"
                    .into(),
            ));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            // The name is who the audit log says called: a blank one says
            // nobody. (Two tokens may share a name: that is how one is
            // rotated, and the log records the role beside it.)
            if t.name.trim().is_empty() || t.name.chars().any(char::is_control) {
                return Err(ConfigError::Invalid(format!(
                    "tokens[{i}].name {:?}: give each token a name (no control characters), \
                     it is who the audit log records",
                    t.name
                )));
            }
            // gRPC metadata carries visible ASCII only, and an entry's
            // blanks would be part of the secret: a token with either
            // could never be presented.
            if let Some(c) = t.token.chars().find(|c| !c.is_ascii_graphic()) {
                return Err(ConfigError::Invalid(format!(
                    "token of {:?} contains {c:?}: tokens are visible ASCII, without spaces",
                    t.name
                )));
            }
            if t.token.len() < 8 {
                return Err(ConfigError::Invalid(format!(
                    "token of {:?} is shorter than 8 characters",
                    t.name
                )));
            }
            // One secret under two names or roles: only the first would ever
            // be matched, and the audit log could not tell who called.
            if let Some(first) = self.tokens[..i].iter().find(|u| u.token == t.token) {
                return Err(ConfigError::Invalid(format!(
                    "tokens of {:?} and {:?} are the same secret: give each its own",
                    first.name, t.name
                )));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "data_dir must not be empty (it would put the database in the working directory)"
                    .into(),
            ));
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(ConfigError::Invalid(format!(
                "worker_threads must be at most {MAX_WORKER_THREADS} (0 = the number of cores)"
            )));
        }
        if self.max_concurrent_solves > MAX_CONCURRENT_SOLVES {
            return Err(ConfigError::Invalid(format!(
                "max_concurrent_solves must be at most {MAX_CONCURRENT_SOLVES} \
                 (0 = the number of cores)"
            )));
        }
        if self.solve_queue > MAX_SOLVE_QUEUE {
            return Err(ConfigError::Invalid(format!(
                "solve_queue must be at most {MAX_SOLVE_QUEUE}"
            )));
        }
        if !(1024..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Err(ConfigError::Invalid(format!(
                "max_message_bytes must be between 1024 and {MAX_MESSAGE_BYTES}, got {}",
                self.max_message_bytes
            )));
        }
        if self.shutdown_grace_seconds > MAX_SHUTDOWN_GRACE_SECONDS {
            return Err(ConfigError::Invalid(format!(
                "shutdown_grace_seconds must be at most {MAX_SHUTDOWN_GRACE_SECONDS}, got {}",
                self.shutdown_grace_seconds
            )));
        }
        if !(1..=MAX_STORE_STALL_SECONDS).contains(&self.store_stall_seconds) {
            return Err(ConfigError::Invalid(format!(
                "store_stall_seconds must be between 1 and {MAX_STORE_STALL_SECONDS}, got {}",
                self.store_stall_seconds
            )));
        }
        Ok(())
    }
}

/// Parses `name:role:token,...`. An entry that does not parse is named by
/// its place and its name (never its token) with what it lacks.
pub fn parse_tokens(s: &str) -> Result<Vec<Token>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, p)| {
            let parts: Vec<&str> = p.splitn(3, ':').collect();
            let lacks = match parts[..] {
                ["", _, _] => "the name is empty",
                [_, _, ""] => "the token is empty",
                [name, role, token] => {
                    return Ok(Token {
                        name: name.to_string(),
                        role: role.parse::<Role>()?,
                        token: token.to_string(),
                    })
                }
                // Without its parts, the entry may be a bare token: not quoted.
                _ => {
                    return Err(format!(
                        "entry {}: expected name:role:token (entries are comma-separated)",
                        i + 1
                    ))
                }
            };
            Err(format!(
                "entry {} (name {:?}): {lacks}; entries are name:role:token, comma-separated",
                i + 1,
                parts[0]
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys examcap does not know inside `[tls]` and `[[tokens]]` are
    /// refused as at the top level: `client_ca` or `expires` must not look
    /// as if they were in force (found by a reviewer: both were ignored).
    /// An empty EXAMCAP_TOKENS says what it did to the file's tokens.
    #[test]
    fn unknown_keys_in_tables_and_an_empty_token_variable_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = "[[tokens]]\nname = \"a\"\nrole = \"planner\"\ntoken = \"aaaaaaaaaa\"\n";
        for (text, key) in [
            (
                format!(
                    "{token}[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n"
                ),
                "client_ca",
            ),
            (format!("{token}expires = 3\n"), "expires"),
        ] {
            let f = dir.path().join("c.toml");
            std::fs::write(&f, &text).unwrap();
            let e = Config::from_file(&f).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        let f = dir.path().join("ok.toml");
        std::fs::write(&f, token).unwrap();
        let mut c = Config::from_file(&f).unwrap();
        for empty in ["", " ", ", ,"] {
            let e = c
                .apply_env(|k| (k == "EXAMCAP_TOKENS").then(|| empty.to_string()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("EXAMCAP_TOKENS") && e.contains("set but empty"),
                "{e}"
            );
        }
        assert_eq!(c.tokens.len(), 1, "the file's token is kept");
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("examcap.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:6000\"\nsolve_queue = 2\n[[tokens]]\nname = \"a\"\nrole = \"planner\"\ntoken = \"aaaaaaaaaa\"\n",
        )
        .unwrap();
        let mut c = Config::from_file(&f).unwrap();
        assert_eq!(c.solve_queue, 2);
        assert_eq!(c.tokens[0].role, Role::Planner);
        assert_eq!(c.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(c.worker_threads, 0);
        assert!(c.runtime_workers() >= 1);
        c.apply_env(|k| match k {
            "EXAMCAP_LISTEN" => Some("0.0.0.0:7000".into()),
            "EXAMCAP_TOKENS" => Some("r:registration:rrrrrrrrrr, d:drill:dd:dddddddd".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[1].token, "dd:dddddddd");
        c.check().unwrap();
        assert!(parse_tokens("x:boss:yyyyyyyy").is_err());
        assert!(parse_tokens("x:planner").is_err());
        // What an entry lacks, by its place and name, never its token.
        let e = parse_tokens("a:planner:aaaaaaaa, :planner:secret-xyz").unwrap_err();
        assert!(
            e.starts_with("entry 2 (name \"\"): the name is empty"),
            "{e}"
        );
        assert!(!e.contains("secret-xyz"), "{e}");
        let e = parse_tokens("b:drill:").unwrap_err();
        assert!(
            e.starts_with("entry 1 (name \"b\"): the token is empty"),
            "{e}"
        );
        // A bare token (no name, no role) is not echoed.
        let e = parse_tokens("s3cr3tT0ken-xyz").unwrap_err();
        assert_eq!(
            e,
            "entry 1: expected name:role:token (entries are comma-separated)"
        );
        assert!(Config::default().check().is_err());
    }

    #[test]
    fn the_booking_clock_is_the_system_date_unless_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("examcap.toml");
        std::fs::write(&f, "worker_threads = 1\n").unwrap();
        let mut c = Config::from_file(&f).unwrap();
        assert!(!c.clock().is_pinned());
        std::fs::write(&f, "worker_threads = 1\ntoday = 2027-01-03\n").unwrap();
        c = Config::from_file(&f).unwrap();
        assert_eq!(
            c.clock().today(),
            NaiveDate::from_ymd_opt(2027, 1, 3).unwrap()
        );
        // The environment wins over the file; a bad date names the variable.
        c.apply_env(|k| (k == "EXAMCAP_TODAY").then(|| " 2027-02-01 ".into()))
            .unwrap();
        assert_eq!(
            c.clock(),
            Clock::pinned(NaiveDate::from_ymd_opt(2027, 2, 1).unwrap())
        );
        let e = c
            .apply_env(|k| (k == "EXAMCAP_TODAY").then(|| "2027-W05".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("EXAMCAP_TODAY: \"2027-W05\" is not a date"),
            "{e}"
        );
        std::fs::write(&f, "today = \"2027-01-05\"\n").unwrap();
        c = Config::from_file(&f).unwrap();
        assert_eq!(c.today, NaiveDate::from_ymd_opt(2027, 1, 5));
        // Anything but YYYY-MM-DD from 1970 on: a mistyped year would quietly
        // reopen (or close) every week.
        for bad in [
            "\"1 Jan\"",
            "2027-01-03T10:00:00",
            "20270103",
            "[\"2027-01-03\"]",
            "\"2027-3-30\"",
            "\"0000-01-01\"",
            "\"+262142-12-31\"",
        ] {
            std::fs::write(&f, format!("worker_threads = 1\ntoday = {bad}\n")).unwrap();
            let e = Config::from_file(&f).unwrap_err().to_string();
            assert!(e.contains("examcap.toml:2: today: "), "{bad}: {e}");
            assert!(e.contains("a date like 2027-01-04"), "{bad}: {e}");
            assert!(!e.contains("enum"), "{bad}: {e}");
        }
        std::fs::write(&f, "today = 20270103\n").unwrap();
        let e = Config::from_file(&f).unwrap_err().to_string();
        assert!(e.ends_with("got a TOML integer"), "{e}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_named_by_line_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("examcap.toml");
        std::fs::write(
            &f,
            "[[tokens]]\nname = \"a\"\nrole = \"planner\"\ntoken = s3cr3tT0ken-xyz\n",
        )
        .unwrap();
        let e = Config::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("examcap.toml:4: "), "{e}");
        assert!(!e.contains("s3cr3tT0ken"), "{e}");
    }

    #[test]
    fn solve_slots_and_queue_are_capped_before_the_server_builds_its_gate() {
        // Unchecked, 2^63 slots made tokio's Semaphore::new panic at start.
        let ok = Config {
            allow_unauthenticated: true,
            ..Config::default()
        };
        ok.check().unwrap();
        for (c, field) in [
            (
                Config {
                    max_concurrent_solves: 1 << 63,
                    ..ok.clone()
                },
                "max_concurrent_solves",
            ),
            (
                Config {
                    solve_queue: MAX_SOLVE_QUEUE + 1,
                    ..ok.clone()
                },
                "solve_queue",
            ),
            (
                Config {
                    max_message_bytes: MAX_MESSAGE_BYTES + 1,
                    ..ok.clone()
                },
                "max_message_bytes",
            ),
            (
                Config {
                    shutdown_grace_seconds: MAX_SHUTDOWN_GRACE_SECONDS + 1,
                    ..ok.clone()
                },
                "shutdown_grace_seconds",
            ),
            (
                Config {
                    store_stall_seconds: 0,
                    ..ok.clone()
                },
                "store_stall_seconds",
            ),
            (
                Config {
                    store_stall_seconds: MAX_STORE_STALL_SECONDS + 1,
                    ..ok.clone()
                },
                "store_stall_seconds",
            ),
        ] {
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        Config {
            max_concurrent_solves: MAX_CONCURRENT_SOLVES,
            solve_queue: MAX_SOLVE_QUEUE,
            ..ok
        }
        .check()
        .unwrap();
    }

    #[test]
    fn a_secret_given_twice_a_nameless_token_and_an_empty_data_dir_are_refused() {
        let tok = |name: &str, role, token: &str| Token {
            name: name.into(),
            role,
            token: token.into(),
        };
        let ok = Config {
            tokens: vec![
                tok("a", Role::Registration, "abcdefgh12"),
                tok("b", Role::Planner, "abcdefgh13"),
            ],
            ..Config::default()
        };
        ok.check().unwrap();
        // A blank after the second colon of EXAMCAP_TOKENS, a tab or a
        // non-ASCII letter: no gRPC client could ever present them.
        for bad in [
            "r:registration:rrrrrrrr, b:drill: bbbbbbbbb",
            "t:drill:tab\tbbbbbb",
            "u:drill:pässwörd1",
        ] {
            let mut c = ok.clone();
            c.tokens = parse_tokens(bad).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains("visible ASCII"), "{bad}: {e}");
        }
        let mut twice = ok.clone();
        twice.tokens[1].token = "abcdefgh12".into();
        let e = twice.check().unwrap_err().to_string();
        assert!(e.contains("\"a\" and \"b\""), "{e}");
        // A nameless token would leave the audit log without a caller.
        for name in ["", "  ", "a\nb"] {
            let mut nameless = ok.clone();
            nameless.tokens[1].name = name.into();
            let e = nameless.check().unwrap_err().to_string();
            assert!(e.contains("tokens[1].name"), "{name:?}: {e}");
        }
        let mut env = ok.clone();
        env.apply_env(|k| (k == "EXAMCAP_DATA_DIR").then(String::new))
            .unwrap();
        let e = env.check().unwrap_err().to_string();
        assert!(e.contains("data_dir"), "{e}");
    }

    #[test]
    fn worker_threads_default_to_the_cores_and_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("examcap.toml");
        std::fs::write(&f, "worker_threads = 1\nallow_unauthenticated = true\n").unwrap();
        let c = Config::from_file(&f).unwrap();
        assert_eq!((c.worker_threads, c.runtime_workers()), (1, 1));
        c.check().unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(Config::default().runtime_workers(), cores);
        let many = Config {
            worker_threads: MAX_WORKER_THREADS + 1,
            ..c
        };
        assert!(many
            .check()
            .unwrap_err()
            .to_string()
            .contains("worker_threads"));
    }
}
