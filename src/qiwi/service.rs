//! The protocol's commands, axum-free: `check`, `getInfo` and `pay` turn a request's
//! parameters into an [`Answer`], and every request's log row is written (for `pay` in the
//! payment's own commit). The `/payment` handler extracts, calls [`Service::answer`] or
//! [`Service::refuse`], and maps the result to HTTP.

use std::borrow::Cow;
use std::time::Instant;

use tokio::sync::Notify;

use super::check::{Checker, Verdict};
use super::{Amount, Answer, Command, Draft, Params, Rejection, Request, ResultCode, Rules};
use crate::db::http_log::{self, LogEntry};
use crate::db::transactions::{self, NewPayment, StoreOutcome};
use crate::db::{self, Db, DbError};
use crate::ops::Metrics;

/// What the commands need: borrowed from the application's state for one request.
#[derive(Clone, Copy)]
pub struct Service<'a> {
    /// What a request is judged against (`account_pattern`, `min_sum`, `max_sum`).
    pub rules: Rules<'a>,
    /// Whether payments are taken (`payments_enabled`; off: the maintenance switch).
    pub payments_enabled: bool,
    /// The database.
    pub db: &'a Db,
    /// The account checker, when `QIWI_CHECK_URL` is set.
    pub checker: Option<&'a Checker>,
    /// Prometheus metrics.
    pub metrics: &'a Metrics,
    /// Woken when a new payment is stored: its webhook is due.
    pub payment_stored: &'a Notify,
}

/// A protocol answer, once its log row is durable.
#[derive(Debug, Clone)]
pub struct Served {
    /// The command, when the request named one the protocol knows.
    pub command: Option<Command>,
    /// The answer to send (HTTP 200, XML).
    pub answer: Answer,
    /// The rendered XML, exactly as logged.
    pub body: String,
}

impl Service<'_> {
    /// Answers a request whose parameters reached the protocol, and logs it (`log` carries
    /// what was received; the answer is filled in here). A request whose log row cannot be
    /// written is answered 1: it is not recorded, so QIWI must ask again.
    pub async fn answer(&self, params: &Params, log: LogEntry) -> Served {
        let command = params.command();
        let rules = self.rules;
        // getInfo answers carry no osmp_txn_id, even to a request that sent one.
        let echo = match command {
            Some(Command::GetInfo) => None,
            _ => params.txn_id().map(str::to_owned),
        };
        // A pay is judged by the business rules only if its txn_id is new: in its writer job.
        let (answer, logged) = match params.read() {
            Err(rejection) => (reject(rejection, echo), None),
            Ok(draft) if draft.command == Command::Pay => self.pay(draft, echo, log.clone()).await,
            Ok(draft) => match draft.judge(&rules) {
                Err(rejection) => (reject(rejection, echo), None),
                Ok(req) => (self.check(&req, echo).await, None),
            },
        };
        if let Some(body) = logged {
            return Served {
                command,
                answer,
                body,
            };
        }
        let mut log = log;
        log.status = 200;
        log.response = answer.render();
        log.result = Some(i32::from(answer.result.code()));
        // The log row's answer text is the HTTP answer: rendered once, handed back.
        let written = self
            .write_log_with(log, |log| std::mem::take(&mut log.response))
            .await;
        match written {
            Ok(body) => Served {
                command,
                answer,
                body,
            },
            Err(e) => {
                tracing::error!(error = %e, "could not log a protocol request");
                let answer = Answer::code(ResultCode::Temporary, answer.osmp_txn_id);
                let body = answer.render();
                Served {
                    command,
                    answer,
                    body,
                }
            }
        }
    }

    /// Logs a request refused before the protocol (403, 401, 405, 413, 400): `log` already
    /// holds its status and answer text. A failure is logged and changes nothing.
    pub async fn refuse(&self, log: LogEntry) {
        if let Err(e) = self.write_log(log).await {
            tracing::error!(error = %e, "could not log a refused request");
        }
    }

    async fn write_log(&self, log: LogEntry) -> Result<(), DbError> {
        self.write_log_with(log, |_| ()).await
    }

    /// Writes `log` and returns what `keep` takes from it once it is written.
    async fn write_log_with<T: Send + 'static>(
        &self,
        mut log: LogEntry,
        keep: impl FnOnce(&mut LogEntry) -> T + Send + 'static,
    ) -> Result<T, DbError> {
        let started = Instant::now();
        let kept = self
            .db
            .writer()
            .write(move |c| {
                http_log::insert(c, &log)?;
                Ok(keep(&mut log))
            })
            .await?;
        self.metrics.db_write(started.elapsed());
        Ok(kept)
    }

    /// `check` and `getInfo`: the maintenance switch, then the check backend (if any).
    async fn check(&self, req: &Request, echo: Option<String>) -> Answer {
        if !self.payments_enabled {
            return reject(Rejection::Forbidden, echo);
        }
        let verdict = match self.checker {
            None => Verdict::Valid(Vec::new()),
            Some(c) => c.check(req.account.as_str(), self.metrics).await,
        };
        match verdict {
            Verdict::Valid(fields) => Answer {
                fields,
                ..Answer::code(ResultCode::Ok, echo)
            },
            Verdict::Refused { result, comment } => Answer {
                comment: comment.map_or(Cow::Borrowed(result.comment()), Cow::Owned),
                ..Answer::code(result, echo)
            },
            Verdict::NotFound => reject(Rejection::AccountNotFound, echo),
            Verdict::Unavailable => reject(Rejection::Temporary, echo),
        }
    }

    /// `pay`: stores the payment and its log row in one job of the writer, so the answer
    /// costs one shared commit, and answers only once that commit is durable. Returns the
    /// answer and, when the log row was written with it, the rendered answer it holds. The
    /// business rules and the maintenance switch refuse only a new `txn_id`; a stored one is
    /// answered from its row.
    async fn pay(
        &self,
        req: Draft,
        echo: Option<String>,
        log: LogEntry,
    ) -> (Answer, Option<String>) {
        let refuse_new = req
            .breach(&self.rules)
            .or((!self.payments_enabled).then_some(Rejection::Forbidden));
        let sum = match req.sum {
            Ok(Some(sum)) => Some(sum),
            // Beyond what can be stored (242): no stored row has this sum, so a stored
            // txn_id is a conflict (300) and a new one is refused (breach() says 242).
            Err(_) => Some(Amount::from_minor(i64::MAX)),
            Ok(None) => None,
        };
        let (Some(txn_id), Some(sum)) = (req.txn_id, sum) else {
            // The parser guarantees both on pay; should it not, no payment is half-stored.
            return (
                reject(Rejection::Malformed("txn_id or sum is missing"), echo),
                None,
            );
        };
        let payment = NewPayment {
            code: txn_id.canonical().to_owned(),
            account: req.account,
            sum_minor: sum.minor(),
            txn_date: req
                .txn_date
                .as_ref()
                .map_or_else(String::new, |d| d.as_str().to_owned()),
            extra: serde_json::to_string(&req.extra).unwrap_or_else(|_| "{}".into()),
        };
        let job = pay_job(payment, refuse_new, echo.clone(), log);
        let started = Instant::now();
        match self.db.writer().write(job).await {
            Ok((answer, body, created)) => {
                self.metrics.db_write(started.elapsed());
                if created {
                    self.metrics.payment_stored(sum.minor());
                    self.payment_stored.notify_one();
                }
                (answer, Some(body))
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store a payment");
                (reject(Rejection::Temporary, echo), None)
            }
        }
    }
}

/// The pay's one writer job: store (or find) the payment, build its answer, and write the
/// request's log row with that answer, all in one commit. `refuse_new` is what to answer if
/// the `txn_id` is new (a business rule or the maintenance switch refuses it); a stored
/// `txn_id` is answered from its row whatever it says, decided in the same job as the lookup.
/// Returns the answer, its XML as logged (rendered once: the log row's text is the HTTP
/// answer's body) and whether a new payment was created.
fn pay_job(
    payment: NewPayment,
    refuse_new: Option<Rejection>,
    echo: Option<String>,
    mut log: LogEntry,
) -> impl FnOnce(&rusqlite::Connection) -> Result<(Answer, String, bool), DbError> + Send + 'static
{
    move |c| {
        let now = chrono::Utc::now();
        let stored = transactions::store(
            c,
            &payment,
            refuse_new.is_none(),
            &db::format_time(now),
            now.timestamp_millis(),
        )?;
        let created = matches!(stored, StoreOutcome::Created(_));
        let answer = pay_answer(stored, refuse_new, echo);
        log.status = 200;
        log.response = answer.render();
        log.result = Some(i32::from(answer.result.code()));
        http_log::insert(c, &log)?;
        Ok((answer, std::mem::take(&mut log.response), created))
    }
}

fn pay_answer(stored: StoreOutcome, refuse_new: Option<Rejection>, echo: Option<String>) -> Answer {
    match stored {
        StoreOutcome::Created(s) | StoreOutcome::Repeated(s) => Answer {
            prv_txn: Some(s.id),
            sum: Some(Amount::from_minor(s.sum_minor)),
            ..Answer::code(ResultCode::Ok, echo)
        },
        StoreOutcome::Conflict(_) => reject(Rejection::Conflict, echo),
        StoreOutcome::Refused => reject(refuse_new.unwrap_or(Rejection::Forbidden), echo),
    }
}

/// The answer to a rejection: its code and comment, echoing `osmp_txn_id` when given.
pub fn reject(r: Rejection, osmp_txn_id: Option<String>) -> Answer {
    Answer {
        comment: Cow::Borrowed(r.comment()),
        ..Answer::code(r.result_code(), osmp_txn_id)
    }
}
