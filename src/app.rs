//! The application: the router, and serving with graceful shutdown. The shared state the
//! handlers take parts of lives in [`crate::state`].

use std::net::SocketAddr;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use axum_server::tls_rustls::RustlsAcceptor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::ops;
use crate::ops::Checkpointing;
use crate::qiwi;
use crate::webhook::Worker;

/// The composite state, re-exported where it used to be defined (it lives in [`crate::state`]).
pub use crate::state::AppState;

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        // Allow-list, Basic auth and the declared size are decided from the head, before the
        // handler reads the body, on both paths of the protocol (`/payment`, `/payment/`).
        .merge(
            qiwi::handler::routes().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::http::payment_guard::layer,
            )),
        )
        .merge(ops::health::routes())
        .route("/", get(|| async { Redirect::to("/admin") }))
        .nest(
            "/admin",
            admin::router(state.db.clone(), &state.config.admin),
        )
        .fallback(admin::not_found_public)
        // Bodies read by extractors (the login form) stop at the same cap as /payment's.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::http::payment_guard::MAX_BODY as usize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.sections.server.clone(),
            crate::http::limits::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
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

/// Binds `config.server.listen_addr` (HTTPS when `tls_cert_file`/`tls_key_file` are set), starts
/// the webhook worker when `webhook_url` is set, and serves until `shutdown` completes. Then
/// the server stops accepting and gives requests in flight up to `shutdown_timeout`, while the
/// worker starts no new attempt and waits (bounded) for those in flight; housekeeping stops,
/// the WAL is checkpointed, and [`Running::task`] completes.
pub async fn start(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(state.config.server.listen_addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(ops::startup::listen_problem(
                state.config.server.listen_addr,
                &e
            ))
        })?;
    let addr = listener.local_addr()?;
    // Everything that can refuse the start is done before the admin password is generated
    // and printed: a start that then fails must not show a password nobody can use.
    let tls = match &state.config.server.tls {
        Some(files) => {
            let config = ops::tls::load(files).await?;
            ops::certs::note_file(&state.tls, &files.cert);
            Some((config, files.clone()))
        }
        None => None,
    };
    let acme = match &state.config.server.acme {
        Some(settings) => Some(ops::acme::Acme::new(settings.clone(), state.tls.clone())?),
        None => None,
    };
    let worker = match state.config.webhook.url {
        Some(_) => Some(Worker::production(
            state.db.clone(),
            state.config.webhook.clone(),
        )?),
        None => None,
    };
    let _ = state.local_addr.set(addr);
    // On the first start without ADMIN_PASSWORD this generates and prints the admin password.
    let served = admin::password::Served {
        addr,
        https: state.config.server.https(),
    };
    admin::init(&state.admin, &state.db, &state.config.admin, served)
        .await
        .map_err(|e| anyhow::anyhow!("admin credentials: {e}"))?;
    crate::outbound::trust::warn_if_untrusted(
        [&state.config.check.url, &state.config.webhook.url]
            .into_iter()
            .flatten(),
    );
    if state.config.qiwi.http_auth.is_none() {
        tracing::warn!(
            "HTTP_AUTH_USERNAME/HTTP_AUTH_PASSWORD are not set: /payment is OPEN to anyone \
             who can reach it. Set them before giving the URL to QIWI."
        );
    } else if state
        .config
        .qiwi
        .http_auth
        .as_ref()
        .is_some_and(|a| a.password.0 == crate::http::EXAMPLE_PASSWORD)
    {
        tracing::warn!(
            "HTTP_AUTH_PASSWORD is still gateway.env.example's placeholder: anyone who has \
             read the example knows it. Set a long random password before giving the URL to \
             QIWI."
        );
    }
    if state.config.ops.db_checkpoint == Checkpointing::External {
        // Litestream (or another tool) checkpoints: the gateway's own would race it.
        state.db.set_background_checkpoints(false);
    }

    // `stop` ends the background work (worker, housekeeping, certificate watch) once the
    // server has been told to shut down.
    let stop = CancellationToken::new();
    let worker = match worker {
        Some(worker) => {
            let url = state.config.webhook.url.as_ref();
            tracing::info!(
                // Host only: the URL may carry credentials.
                host = url.and_then(|u| u.host_str()),
                concurrency = state.config.webhook.concurrency,
                signed = state.config.webhook.secret.is_some(),
                "webhook delivery started"
            );
            let worker = worker.with_metrics(state.metrics.clone());
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
    let handle = axum_server::Handle::<SocketAddr>::new();
    let grace = state.config.server.shutdown_timeout;
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
    let housekeeping = tokio::spawn(ops::housekeeping::run(
        state.db.clone(),
        state.config.ops.log_retention,
        state.config.ops.timings.housekeeping,
        stop.clone(),
    ));

    let fd_limit = crate::http::limits::raise_fd_limit();
    let max_connections =
        crate::http::limits::fit_connections(state.config.server.max_connections, fd_limit);
    if max_connections < state.config.server.max_connections {
        tracing::warn!(
            configured = state.config.server.max_connections,
            max_connections,
            fd_limit,
            "http_max_connections lowered to fit the open-files limit (raise it with \
             `ulimit -n` or LimitNOFILE=)"
        );
    }
    let max_connections_per_ip = state.config.server.max_connections_per_ip;
    let holders = std::sync::Arc::new(crate::http::limits::Holders::new(
        max_connections_per_ip,
        max_connections,
        state.config.server.trusted_proxies.clone(),
        state.metrics.clone(),
    ));
    let app = crate::http::limits::ConnectionLimit::new(
        router(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        max_connections,
        holders,
    );
    let header_timeout = state.config.server.header_timeout;
    let request_timeout = state.config.server.request_timeout;
    // HTTP/1 only: QIWI speaks HTTP/1.1, and HTTP/2 streams have no header timeout.
    let mut server = axum_server::Server::<SocketAddr>::from_listener(listener)
        .handle(handle)
        .http1_only()
        .first_request_timeout(header_timeout);
    server
        .http_builder()
        .http1()
        // hyper starts this timer whenever it waits for a request head, so it is also how
        // long a kept-alive connection may sit idle.
        .header_read_timeout(header_timeout)
        .max_headers(crate::http::limits::MAX_HEADERS)
        .max_buf_size(crate::http::limits::MAX_HEAD);
    let scheme = if state.config.server.https() {
        "https"
    } else {
        "http"
    };
    let serve: BoxFuture<std::io::Result<()>> = match (tls, acme) {
        (Some((config, files)), _) => {
            let every = state.config.ops.timings.tls_watch;
            let status = state.tls.clone();
            tokio::spawn(ops::tls::watch(
                config.clone(),
                files,
                every,
                stop.clone(),
                status,
            ));
            Box::pin(server.acceptor(RustlsAcceptor::new(config)).serve(app))
        }
        (None, Some(acme)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(acme.server_config()?);
            tokio::spawn(acme.run(state.config.ops.timings.acme_retry, stop.clone()));
            Box::pin(server.acceptor(RustlsAcceptor::new(config)).serve(app))
        }
        (None, None) => Box::pin(server.serve(app)),
    };
    let task = tokio::spawn(async move {
        let served = serve.await;
        // Also when serving failed: the worker must not outlive the server unnoticed.
        stop.cancel();
        if let Some(worker) = worker
            && let Err(e) = worker.await
        {
            tracing::error!(error = %e, "the webhook worker failed");
        }
        let _ = housekeeping.await;
        if state.config.ops.db_checkpoint == Checkpointing::Auto {
            ops::housekeeping::checkpoint(&state.config.ops.database_path).await;
        }
        tracing::info!("stopped");
        served
    });
    tracing::info!(
        %addr,
        scheme,
        max_connections,
        max_connections_per_ip,
        ?header_timeout,
        ?request_timeout,
        "qiwi-gateway listening; QIWI endpoint is /payment, admin UI is /admin"
    );
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
