//! The outbox seen from outside the worker: making deliveries due again (a resend) and waking
//! the worker. The rows themselves are `qiwi_transaction`'s ([`crate::db::outbox`]).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::db::{Db, DbError};

/// Handle on the outbox: the database and the notification the worker waits on.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    due: Arc<Notify>,
}

impl Outbox {
    /// An outbox on `db` whose worker waits on `due`.
    pub fn new(db: Db, due: Arc<Notify>) -> Outbox {
        Outbox { db, due }
    }

    /// Makes a webhook delivery due now (one transaction, or with `None` every undelivered
    /// one, given-up ones included) and wakes the worker. Returns how many deliveries were made
    /// due. A delivered transaction is sent once more: the attempt is recorded in the history,
    /// its `status` stays 1 and its `delivered_at` keeps the first delivery's time; should
    /// that attempt fail it is retried on the usual schedule. A resend while an attempt of the
    /// same row is in flight is not lost: the row stays due after that attempt.
    ///
    /// Errors: the database failed ([`DbError`]).
    pub async fn resend(&self, id: Option<i64>) -> Result<usize, DbError> {
        let n = self.db.make_due(id).await?;
        self.due.notify_one();
        Ok(n)
    }
}
