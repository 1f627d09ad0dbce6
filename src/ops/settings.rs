//! The operations section of the configuration: the database file, health and metrics, the
//! request log's retention and format, WAL checkpoints, background intervals, and the
//! original container's PostgreSQL for `import-original`. Built from the keys by `config`;
//! this module does not read them.

use std::path::PathBuf;
use std::time::Duration;

use crate::import::OriginalPg;
use crate::secret::Secret;

/// How the gateway is run and kept.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite file (`database_path`).
    pub database_path: PathBuf,
    /// Bearer token `/metrics` requires (`metrics_token`); `None` leaves it open.
    pub metrics_token: Option<Secret>,
    /// `/readyz` fails when the oldest undelivered webhook is older than this
    /// (`readiness_max_backlog_age_secs`).
    pub readiness_max_backlog_age: Option<Duration>,
    /// `qiwi_http_log` rows older than this are pruned (`log_retention_days`); `None` keeps
    /// them forever.
    pub log_retention: Option<Duration>,
    /// How log lines are written (`log_format`).
    pub log_format: LogFormat,
    /// Who checkpoints the WAL (`db_checkpoint`).
    pub db_checkpoint: Checkpointing,
    /// Intervals of background work (not configuration keys: tests shorten them).
    pub timings: Timings,
    /// The original container's PostgreSQL (`PG_*`), read only by `import-original`.
    pub original_pg: OriginalPg,
}

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Who checkpoints the SQLite write-ahead log into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointing {
    /// SQLite's automatic checkpoints plus a periodic PASSIVE one (the default).
    Auto,
    /// Nobody in the gateway: an external tool such as Litestream does it.
    External,
}

/// Intervals of background work, fixed in production and shortened by tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How often the log is pruned and the database tidied.
    pub housekeeping: Duration,
    /// How often the TLS files are looked at for a change.
    pub tls_watch: Duration,
    /// The first wait after a failed ACME order; doubled after each failure up to an hour.
    pub acme_retry: Duration,
    /// How long `/readyz` waits for the database to answer a write.
    pub readiness_deadline: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            housekeeping: Duration::from_secs(600),
            tls_watch: Duration::from_secs(10),
            // Let's Encrypt allows 5 failed validations per name an hour: 5, 10, 20, 40 min
            // stays under it.
            acme_retry: Duration::from_secs(300),
            readiness_deadline: Duration::from_secs(2),
        }
    }
}
