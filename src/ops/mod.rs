//! Running the gateway for years: health and readiness, metrics, housekeeping, TLS.

pub mod acme;
pub mod certs;
pub mod cli;
pub mod health;
pub mod housekeeping;
pub mod lock;
pub mod metrics;
pub mod progress;
pub mod redact;
mod settings;
pub mod simulate;
pub mod startup;
pub mod tls;

pub use metrics::Metrics;
pub use settings::{Checkpointing, LogFormat, Settings, Timings};
