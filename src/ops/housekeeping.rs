//! Background housekeeping: prunes old request log rows in small batches through the writer
//! and refreshes the query planner's statistics. Transactions are never pruned. (The WAL is
//! checkpointed every second by the database's own checkpointer thread.)

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::db::maintenance::{self, Checkpoint};

/// Pause between two prune batches, so payments queued behind one get the writer first.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Request log rows deleted.
    pub pruned: usize,
}

/// Runs a round ([`once`]) every `period` (`timings.housekeeping`) until `stop` is
/// cancelled; `log_retention` is the configured `log_retention_days` (`None`: keep every row).
pub async fn run(
    db: Db,
    log_retention: Option<Duration>,
    period: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let report = once(&db, log_retention, &stop).await;
        if report.pruned > 0 {
            tracing::info!(pruned = report.pruned, "pruned old request log rows");
        }
        tracing::debug!(pruned = report.pruned, "housekeeping round finished");
    }
}

/// One round: prune request log rows older than `log_retention` (none when `None`), then
/// optimize. Stops pruning early when `stop` is cancelled.
pub async fn once(db: &Db, log_retention: Option<Duration>, stop: &CancellationToken) -> Report {
    let mut report = Report::default();
    if let Some(retention) = log_retention {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        while !stop.is_cancelled() {
            let deleted = db
                .writer()
                .write(move |c| maintenance::prune_http_log(c, cutoff))
                .await;
            match deleted {
                Ok(0) => break,
                Ok(n) => {
                    report.pruned += n;
                    tokio::time::sleep(BATCH_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning the request log failed; next round retries");
                    break;
                }
            }
        }
    }
    if let Err(e) = db.writer().write(maintenance::optimize).await {
        tracing::warn!(error = %e, "PRAGMA optimize failed");
    }
    report
}

/// A PASSIVE checkpoint on a connection of its own (the writer's is always in a
/// transaction), as the last thing before the process exits. `database_path` is the
/// database file's path.
pub async fn checkpoint(database_path: &Path) -> Option<Checkpoint> {
    let path = database_path.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let conn = maintenance::open_for_checkpoints(&path)?;
        maintenance::checkpoint_passive(&conn)
    })
    .await;
    match result {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "WAL checkpoint failed");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint task failed");
            None
        }
    }
}
