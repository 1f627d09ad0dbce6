//! The application: shared state, the router, and serving with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::db::Db;
use crate::ops::{self, Metrics};
use crate::qiwi;
use crate::qiwi::check::Checker;

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
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
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
            metrics: Arc::new(Metrics::new()),
        })
    }
}

impl AppState {
    /// Makes a webhook delivery due now (one transaction, or with `None` every undelivered
    /// one) and wakes the worker. Returns how many deliveries were made due.
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
        .merge(ops::health::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::request_log::layer,
        ))
        .with_state(state)
}

/// A running gateway.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Completes when the server has shut down.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `config.listen_addr` and serves until `shutdown` completes.
pub async fn start(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(state.config.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.config.listen_addr))?;
    let addr = listener.local_addr()?;
    if state.config.http_auth.is_none() {
        tracing::warn!(
            "HTTP_AUTH_USERNAME/HTTP_AUTH_PASSWORD are not set: /payment is OPEN to anyone \
             who can reach it. Set them before giving the URL to QIWI."
        );
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    tracing::info!(%addr, "qiwi-gateway listening; QIWI endpoint is /payment");
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
