//! The single writer: one thread, one connection, group commit.
//!
//! SQLite has one write lock per file, so several writer connections only queue on it (and
//! fail with "database is locked" under load). Instead every change is a job sent here; the
//! thread takes all queued jobs, runs each in its own savepoint inside one transaction, commits
//! once (one fsync for the whole batch) and only then tells each caller its result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::DbError;

/// How many jobs may wait for the writer before callers feel backpressure.
const QUEUE: usize = 4096;
/// How long a caller waits for room in a full queue before giving up (answering "try later").
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Prepared statements the writer's connection keeps (rusqlite's default is 16).
const STATEMENT_CACHE: usize = 128;

/// What the thread calls with the commit's outcome once the batch is committed or rolled back.
type Reply = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// A job runs inside its savepoint; it reports whether its own work succeeded, and how to
/// answer once the commit is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped.
    /// Between batches it restarts the WAL whenever `restart_wal` is raised.
    pub fn start(conn: Connection, restart_wal: Arc<AtomicBool>) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        // Room for every statement the writer runs (pays, the log, the outbox, housekeeping,
        // the admin's writes) so none is pushed out of the cache and parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx, &restart_wal))
            .expect("spawning the database writer thread");
        Writer { jobs }
    }

    /// Runs `f` in the writer's next transaction and returns its result once that transaction
    /// is durably committed. If `f` fails its changes are rolled back (others' are not); if the
    /// commit fails, every job in the batch gets the error.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, reply)
        });
        match tokio::time::timeout(SEND_TIMEOUT, self.jobs.send(job)).await {
            Err(_) => return Err(DbError::Busy),
            Ok(Err(_)) => return Err(DbError::WriterGone),
            Ok(Ok(())) => {}
        }
        rx.await.map_err(|_| DbError::WriterGone)?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, restart_wal: &AtomicBool) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        // rusqlite errors are not Clone: every caller learns the commit failed, and why.
        let (replies, outcome) = match commit_batch(&mut conn, &mut batch) {
            Ok(replies) => (replies, Ok(())),
            Err((replies, e)) => {
                tracing::error!(error = %e, "database commit failed");
                (replies, Err(e.to_string()))
            }
        };
        for reply in replies {
            reply(outcome.clone().map_err(DbError::Commit));
        }
        if restart_wal.swap(false, Ordering::Relaxed) {
            super::checkpointer::restart(&conn);
        }
    }
}

type BatchError = (Vec<Reply>, DbError);

fn commit_batch(conn: &mut Connection, jobs: &mut Vec<Job>) -> Result<Vec<Reply>, BatchError> {
    // BEGIN, COMMIT and the savepoint statements are prepared once and kept in the
    // connection's cache: parsing them again for every batch and job was a measurable share
    // of a pay's instructions (`bench/run cost`, docs/performance.md).
    if let Err(e) = cached(conn, "BEGIN") {
        // Run nothing: each job must still be answered.
        let replies = jobs.drain(..).map(fail_job).collect();
        return Err((replies, e.into()));
    }
    if jobs.len() == 1
        && let Some(job) = jobs.pop()
    {
        // A batch of one (a lone pay when the queue is quiet) needs no savepoint: should the
        // job fail, the transaction is its own and is rolled back whole. A savepoint would
        // first copy every page the job changes into the statement journal.
        let (ok, reply) = job(conn);
        if !ok {
            rollback(conn);
            return Ok(vec![reply]);
        }
        return match commit(conn) {
            Ok(()) => Ok(vec![reply]),
            Err(e) => Err((vec![reply], e.into())),
        };
    }
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        let reply = match cached(conn, "SAVEPOINT job") {
            Ok(()) => {
                let (ok, reply) = job(conn);
                // Undo only this job's changes; the rest of the batch still commits.
                if !ok && let Err(e) = cached(conn, "ROLLBACK TO job") {
                    tracing::error!(error = %e, "rolling back a savepoint failed");
                }
                if let Err(e) = cached(conn, "RELEASE job") {
                    tracing::error!(error = %e, "releasing a savepoint failed");
                }
                reply
            }
            Err(e) => {
                tracing::error!(error = %e, "opening a savepoint failed");
                fail_job(job)
            }
        };
        replies.push(reply);
    }
    match commit(conn) {
        Ok(()) => Ok(replies),
        Err(e) => Err((replies, e.into())),
    }
}

/// Commits the open transaction; when the COMMIT fails (a deferred constraint, a full disk)
/// the transaction is rolled back, so the next batch starts clean.
fn commit(conn: &Connection) -> rusqlite::Result<()> {
    let result = cached(conn, "COMMIT");
    if result.is_err() {
        rollback(conn);
    }
    result
}

/// Rolls back the open transaction, if SQLite has not already done so.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = cached(conn, "ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a batch failed");
    }
}

/// Runs one of the transaction statements from the connection's statement cache.
fn cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Answers a job that could not run: its work never happens, and dropping it drops its reply
/// channel, so its caller gets [`DbError::WriterGone`] (a result 1 for QIWI, as any failure).
fn fail_job(job: Job) -> Reply {
    Box::new(move |_| {
        drop(job);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER
                 REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        Writer::start(conn, Arc::default())
    }

    async fn count(w: &Writer) -> i64 {
        w.write(|c| Ok(c.query_row("SELECT COUNT(*) FROM child", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// Holds the writer thread so that the jobs sent meanwhile share the next batch.
    async fn hold(w: &Writer) -> tokio::task::JoinHandle<()> {
        let w = w.clone();
        let (started_tx, started_rx) = oneshot::channel();
        let h = tokio::spawn(async move {
            w.write(move |_| {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
            .unwrap();
        });
        started_rx.await.unwrap();
        h
    }

    #[tokio::test]
    async fn a_failing_job_is_rolled_back_alone() {
        let w = writer();
        let held = hold(&w).await;
        let good = (1..=5)
            .map(|i| w.write(move |c| Ok(c.execute("INSERT INTO child (id) VALUES (?1)", [i])?)));
        let bad = w.write(|c| {
            c.execute("INSERT INTO child (id) VALUES (100)", [])?;
            // the same id again: this job fails after its first insert
            Ok(c.execute("INSERT INTO child (id) VALUES (1)", [])?)
        });
        let (good, bad) = tokio::join!(futures::future::join_all(good), bad);
        held.await.unwrap();
        assert!(good.iter().all(Result::is_ok));
        assert!(bad.is_err());
        assert_eq!(count(&w).await, 5, "the bad job's first insert was undone");
    }

    #[tokio::test]
    async fn a_lone_failing_job_is_rolled_back_and_the_writer_goes_on() {
        let w = writer();
        let bad = w
            .write(|c| {
                c.execute("INSERT INTO child (id) VALUES (100)", [])?;
                Ok(c.execute("INSERT INTO no_such_table VALUES (1)", [])?)
            })
            .await;
        assert!(matches!(bad, Err(DbError::Sqlite(_))), "{bad:?}");
        assert_eq!(count(&w).await, 0, "the lone job's first insert was undone");
        // A lone deferred-constraint failure fails at COMMIT, and is undone too.
        let poison =
            w.write(|c| Ok(c.execute("INSERT INTO child (id, parent) VALUES (99, 7)", [])?));
        assert!(matches!(poison.await, Err(DbError::Commit(_))));
        w.write(|c| Ok(c.execute("INSERT INTO child (id) VALUES (1)", [])?))
            .await
            .unwrap();
        assert_eq!(count(&w).await, 1);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_job_of_the_batch() {
        let w = writer();
        let held = hold(&w).await;
        let good = (1..=5)
            .map(|i| w.write(move |c| Ok(c.execute("INSERT INTO child (id) VALUES (?1)", [i])?)));
        // A deferred foreign key is checked only at COMMIT: the whole batch's commit fails.
        let poison =
            w.write(|c| Ok(c.execute("INSERT INTO child (id, parent) VALUES (99, 7)", [])?));
        let (good, poison) = tokio::join!(futures::future::join_all(good), poison);
        held.await.unwrap();
        assert!(poison.is_err());
        for r in good {
            assert!(matches!(r, Err(DbError::Commit(_))), "{r:?}");
        }
        assert_eq!(count(&w).await, 0);
        // and the writer goes on
        w.write(|c| Ok(c.execute("INSERT INTO child (id) VALUES (1)", [])?))
            .await
            .unwrap();
        assert_eq!(count(&w).await, 1);
    }
}
