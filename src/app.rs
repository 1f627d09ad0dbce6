//! The application: shared state, the router, and serving with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use axum_server::tls_rustls::RustlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Checkpointing, Config};
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

/// Binds `config.listen_addr` (HTTPS when `tls_cert_file`/`tls_key_file` are set) and
/// serves until `shutdown` completes. Then it stops accepting, gives requests in flight up to
/// `shutdown_timeout` to finish, stops the background work, checkpoints, and `task` completes.
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
    if state.config.db_checkpoint == Checkpointing::External {
        // Litestream (or another tool) checkpoints: the gateway's own would race it.
        state.db.set_background_checkpoints(false);
    }
    let tls = match &state.config.tls {
        Some(files) => Some((ops::tls::load(files).await?, files.clone())),
        None => None,
    };

    // `stop` ends the background work once the server has been told to shut down.
    let stop = CancellationToken::new();
    let handle = axum_server::Handle::<SocketAddr>::new();
    let grace = state.config.shutdown_timeout;
    tokio::spawn({
        let (handle, stop) = (handle.clone(), stop.clone());
        async move {
            tokio::select! {
                () = shutdown => {}
                () = stop.cancelled() => {}
            }
            tracing::info!(
                ?grace,
                "no longer accepting connections; finishing requests in flight"
            );
            handle.graceful_shutdown(Some(grace));
            stop.cancel();
        }
    });
    let housekeeping = tokio::spawn(ops::housekeeping::run(state.clone(), stop.clone()));

    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::Server::<SocketAddr>::from_listener(listener).handle(handle);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serve: BoxFuture<std::io::Result<()>> = match tls {
        None => Box::pin(server.serve(app)),
        Some((config, files)) => {
            let every = state.config.timings.tls_watch;
            tokio::spawn(ops::tls::watch(config.clone(), files, every, stop.clone()));
            Box::pin(server.acceptor(RustlsAcceptor::new(config)).serve(app))
        }
    };
    let task = tokio::spawn(async move {
        let served = serve.await;
        stop.cancel();
        let _ = housekeeping.await;
        if state.config.db_checkpoint == Checkpointing::Auto {
            ops::housekeeping::checkpoint(&state).await;
        }
        tracing::info!("stopped");
        served
    });
    tracing::info!(%addr, scheme, "qiwi-gateway listening; QIWI endpoint is /payment");
    Ok(Running { addr, task })
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

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
