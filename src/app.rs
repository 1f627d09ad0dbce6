//! The application: shared state, the router, and serving with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::Config;
use crate::db::Db;
use crate::qiwi;
use crate::qiwi::check::Checker;
use crate::webhook::Worker;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database.
    pub db: Db,
    /// The account checker, when `QIWI_CHECK_URL` is set.
    pub checker: Option<Checker>,
    /// Woken whenever a new payment is stored: its webhook is due.
    pub payment_stored: Arc<Notify>,
    /// The admin UI's credentials and login limiter.
    pub admin: admin::AdminState,
}

impl AppState {
    /// Opens the database and builds the clients the configuration asks for.
    pub fn new(config: Config) -> anyhow::Result<AppState> {
        let db = Db::open(&config.database_path)?;
        let checker = config
            .check_url
            .clone()
            .map(|url| Checker::new(url, config.check_timeout))
            .transpose()?;
        Ok(AppState {
            config: Arc::new(config),
            db,
            checker,
            payment_stored: Arc::new(Notify::new()),
            admin: admin::AdminState::default(),
        })
    }
}

impl AppState {
    /// Makes a webhook delivery due now (one transaction, or with `None` every undelivered
    /// one, given-up ones included) and wakes the worker. Returns how many deliveries were made
    /// due. A delivered transaction is sent once more: the attempt is recorded in the history,
    /// its `status` stays 1 and its `delivered_at` keeps the first delivery's time; should
    /// that attempt fail it is retried on the usual schedule. A resend while an attempt of the
    /// same row is in flight is not lost: the row stays due after that attempt.
    pub async fn resend(&self, id: Option<i64>) -> Result<usize, crate::db::DbError> {
        let now = chrono::Utc::now().timestamp_millis();
        let n = self
            .db
            .writer()
            .write(move |c| crate::db::transactions::make_due(c, id, now))
            .await?;
        self.payment_stored.notify_one();
        Ok(n)
    }
}

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/payment", any(qiwi::handler::any))
        .route("/", get(|| async { Redirect::to("/admin") }))
        .nest("/admin", admin::router(&state))
        .fallback(admin::not_found_public)
        .with_state(state)
}

/// A running gateway.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Completes when the server has shut down.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `config.listen_addr`, starts the webhook worker when `webhook_url` is set, and
/// serves until `shutdown` completes. Then the server drains its connections while the worker
/// starts no new attempt and waits (bounded) for those in flight; [`Running::task`] completes
/// when both have stopped.
pub async fn start(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(state.config.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.config.listen_addr))?;
    let addr = listener.local_addr()?;
    // On the first start without ADMIN_PASSWORD this generates and prints the admin password.
    admin::init(&state, addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin credentials: {e}"))?;
    if state.config.http_auth.is_none() {
        tracing::warn!(
            "HTTP_AUTH_USERNAME/HTTP_AUTH_PASSWORD are not set: /payment is OPEN to anyone \
             who can reach it. Set them before giving the URL to QIWI."
        );
    }
    let stop = CancellationToken::new();
    let worker = match Worker::from_config(state.db.clone(), &state.config)? {
        Some(worker) => {
            let url = state.config.webhook_url.as_ref();
            tracing::info!(
                // Host only: the URL may carry credentials.
                host = url.and_then(|u| u.host_str()),
                concurrency = state.config.webhook_concurrency,
                signed = state.config.webhook_secret.is_some(),
                "webhook delivery started"
            );
            Some(tokio::spawn(
                worker.run(state.payment_stored.clone(), stop.clone()),
            ))
        }
        None => {
            tracing::warn!(
                "QIWI_WEBHOOK_URL is not set: payments are stored (status 0) and not forwarded; \
                 they are delivered once a URL is configured and the gateway restarted"
            );
            None
        }
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let signal = stop.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                signal.cancel();
            })
            .await;
        // Also when serving failed: the worker must not outlive the server unnoticed.
        stop.cancel();
        if let Some(worker) = worker
            && let Err(e) = worker.await
        {
            tracing::error!(error = %e, "the webhook worker failed");
        }
        served
    });
    tracing::info!(%addr, "qiwi-gateway listening; QIWI endpoint is /payment, admin UI is /admin");
    Ok(Running { addr, task })
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
