//! Copies the WAL back into the database file in the background.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so one
//! unlucky batch of requests would wait for a full checkpoint and its fsync. Here a separate
//! connection runs `PRAGMA wal_checkpoint(PASSIVE)` every second instead: PASSIVE never blocks
//! the writer or readers (and never truncates the WAL under a replicator such as Litestream,
//! which keeps its own read transaction open).

use std::path::Path;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_secs(1);

/// Starts the checkpointer on `path`; it stops once `enabled` can no longer be upgraded, and
/// skips its turn while the flag is false (an external tool such as Litestream checkpoints).
pub fn start(path: &Path, enabled: Weak<AtomicBool>) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    super::configure(&conn)?;
    std::thread::Builder::new()
        .name("db-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(INTERVAL);
                match enabled.upgrade() {
                    None => break,
                    Some(on) if !on.load(Ordering::Relaxed) => continue,
                    Some(_) => {}
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot start the checkpoint thread: {e}")),
            )
        })?;
    Ok(())
}
