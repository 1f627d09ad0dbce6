//! Running the gateway for years: health and readiness, metrics, housekeeping, TLS.

pub mod cli;
pub mod health;
pub mod housekeeping;
pub mod metrics;
pub mod progress;
pub mod simulate;
pub mod tls;

pub use metrics::Metrics;
