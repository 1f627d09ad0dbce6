//! Copies the WAL back into the database file in the background.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so one
//! unlucky batch of requests would wait for a full checkpoint and its fsync. Here a separate
//! connection runs `PRAGMA wal_checkpoint(PASSIVE)` four times a second instead: PASSIVE never blocks
//! the writer or readers (and never truncates the WAL under a replicator such as Litestream,
//! which keeps its own read transaction open).
//!
//! Under a sustained stream of writes a PASSIVE checkpoint never catches up with the end of
//! the WAL, so SQLite never starts it over and the file grows without bound (1.6 GB after 15 s
//! of pays at full speed). So once the WAL holds more than [`RESTART_FRAMES`], this thread
//! asks the writer for a RESTART checkpoint, which the writer runs itself between two batches
//! (from here it would starve behind the writer's back-to-back transactions): it copies the few
//! frames the PASSIVE ones have not and makes the next batch start the WAL from its beginning;
//! `journal_size_limit` then cuts the file back.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_millis(250);
/// WAL frames (pages) past which a checkpoint restarts the WAL: 16,384 pages = 64 MiB.
pub const RESTART_FRAMES: i64 = 16_384;

/// Starts the checkpointer on `path`; it stops once `enabled` can no longer be upgraded, and
/// skips its turn while the flag is false (an external tool such as Litestream checkpoints).
/// `restart` is raised when the writer should restart the WAL.
pub fn start(
    path: &Path,
    enabled: Weak<AtomicBool>,
    restart: Arc<AtomicBool>,
) -> rusqlite::Result<()> {
    let conn = open(path)?;
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
                match passive(&conn) {
                    Ok(frames) if frames > RESTART_FRAMES => restart.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
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

/// The checkpointer's read-write connection to `path`, with every connection's pragmas.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    super::configure(&conn)?;
    Ok(conn)
}

/// A PASSIVE checkpoint; returns how many frames the WAL holds.
fn passive(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

/// Run by the writer between batches when asked: restarts the WAL.
pub fn restart(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL restart checkpoint failed");
    }
}
