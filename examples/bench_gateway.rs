//! The gateway as `bench/run scale` runs it to measure retention pruning while paying: the
//! real application (`app::start`) configured from the environment like the binary, with the
//! housekeeping round (pruning the request log) every `BENCH_HOUSEKEEPING_MS` milliseconds
//! instead of every 10 minutes. Serves until SIGTERM or Ctrl-C.

use std::time::Duration;

use qiwi_gateway::app::{self, AppState};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = qiwi_gateway::config::load(None)?;
    let ms: u64 = std::env::var("BENCH_HOUSEKEEPING_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    config.ops.timings.housekeeping = Duration::from_millis(ms);
    let state = AppState::new(config)?;
    let running = app::start(state, app::shutdown_signal()).await?;
    running.task.await??;
    Ok(())
}
