//! What the handlers and layers share: [`AppState`], the composite the router is built with,
//! and its parts as axum substates ([`FromRef`]), so a handler or layer takes only what it uses
//! (`State<Db>`, `State<Arc<Metrics>>`, `State<Outbox>`, a configuration section such as
//! `State<Arc<qiwi::Settings>>`, ...).
//!
//! This module is part of the composition layer (with `main.rs`, `app.rs` and the CLI): it
//! imports the parts' types from their own modules, and no handler or layer imports it; they
//! name only the substates they take. `app.rs` builds the router on top of it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRef;
use tokio::sync::Notify;

use crate::admin::AdminState;
use crate::config::Config;
use crate::db::Db;
use crate::http::ServerSettings;
use crate::http::limits::Limits;
use crate::ops::Metrics;
use crate::qiwi::check::Checker;
use crate::qiwi::handler::QiwiState;
use crate::webhook::Outbox;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration (what `app.rs` starts the server with).
    pub config: Arc<Config>,
    /// Its sections, each shared as the substate of the handlers and layers that use it.
    pub sections: Sections,
    /// The database.
    pub db: Db,
    /// The account checker, when `QIWI_CHECK_URL` is set.
    pub checker: Option<Checker>,
    /// Woken whenever a new payment is stored: its webhook is due.
    pub payment_stored: Arc<Notify>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The admin UI's credentials and login limiter.
    pub admin: AdminState,
    /// What one client may make the server hold or write (`http::limits`).
    pub limits: Arc<Limits>,
    /// The address the server listens on, once bound: where the admin UI's test payment
    /// calls `/payment` over loopback.
    pub local_addr: Arc<OnceLock<SocketAddr>>,
    /// The served HTTPS certificate and any problem renewing it (`ops::certs`).
    pub tls: Arc<crate::ops::certs::TlsStatus>,
}

/// The configuration's sections that handlers and layers take as substates
/// (`State<Arc<qiwi::Settings>>`, ...): copies of [`AppState::config`]'s, made once at start.
#[derive(Clone)]
pub struct Sections {
    /// The server's (`trusted_proxies`, limits).
    pub server: Arc<ServerSettings>,
    /// The protocol's.
    pub qiwi: Arc<crate::qiwi::Settings>,
    /// The account check's.
    pub check: Arc<crate::qiwi::check::Settings>,
    /// The webhook's.
    pub webhook: Arc<crate::webhook::Settings>,
    /// The admin UI's.
    pub admin: Arc<crate::admin::Settings>,
    /// Operations' (metrics token, readiness).
    pub ops: Arc<crate::ops::Settings>,
}

impl Sections {
    fn of(config: &Config) -> Sections {
        Sections {
            server: Arc::new(config.server.clone()),
            qiwi: Arc::new(config.qiwi.clone()),
            check: Arc::new(config.check.clone()),
            webhook: Arc::new(config.webhook.clone()),
            admin: Arc::new(config.admin.clone()),
            ops: Arc::new(config.ops.clone()),
        }
    }
}

impl AppState {
    /// Opens the database and builds the clients the configuration asks for.
    ///
    /// Errors: the database cannot be opened or migrated, or the check client cannot be built.
    pub fn new(config: Config) -> anyhow::Result<AppState> {
        let db = Db::open(&config.ops.database_path)?;
        let checker = config
            .check
            .url
            .clone()
            .map(|url| Checker::new(url, config.check.timeout))
            .transpose()?;
        Ok(AppState {
            sections: Sections::of(&config),
            config: Arc::new(config),
            db,
            checker,
            payment_stored: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::new()),
            admin: AdminState::default(),
            limits: Arc::default(),
            local_addr: Arc::default(),
            tls: Arc::default(),
        })
    }

    /// The webhook outbox: the database and the worker's wake-up.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone(), self.payment_stored.clone())
    }
}

impl FromRef<AppState> for Arc<ServerSettings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.server.clone()
    }
}

impl FromRef<AppState> for Arc<crate::qiwi::Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.qiwi.clone()
    }
}

impl FromRef<AppState> for Arc<crate::qiwi::check::Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.check.clone()
    }
}

impl FromRef<AppState> for Arc<crate::webhook::Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.webhook.clone()
    }
}

impl FromRef<AppState> for Arc<crate::admin::Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.admin.clone()
    }
}

impl FromRef<AppState> for Arc<crate::ops::Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.sections.ops.clone()
    }
}

impl FromRef<AppState> for QiwiState {
    fn from_ref(state: &AppState) -> Self {
        QiwiState {
            settings: state.sections.qiwi.clone(),
            server: state.sections.server.clone(),
            db: state.db.clone(),
            checker: state.checker.clone(),
            metrics: state.metrics.clone(),
            payment_stored: state.payment_stored.clone(),
        }
    }
}

impl FromRef<AppState> for crate::admin::DashboardState {
    fn from_ref(state: &AppState) -> Self {
        let s = &state.sections;
        crate::admin::DashboardState {
            db: state.db.clone(),
            settings: s.admin.clone(),
            qiwi: s.qiwi.clone(),
            check: s.check.clone(),
            webhook: s.webhook.clone(),
            ops: s.ops.clone(),
            tls: state.tls.clone(),
        }
    }
}

impl FromRef<AppState> for crate::admin::TestPaymentState {
    fn from_ref(state: &AppState) -> Self {
        let s = &state.sections;
        crate::admin::TestPaymentState {
            db: state.db.clone(),
            settings: s.admin.clone(),
            server: s.server.clone(),
            qiwi: s.qiwi.clone(),
            check: s.check.clone(),
            webhook: s.webhook.clone(),
            local_addr: state.local_addr.clone(),
        }
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Arc<Limits> {
    fn from_ref(state: &AppState) -> Self {
        state.limits.clone()
    }
}

impl FromRef<AppState> for AdminState {
    fn from_ref(state: &AppState) -> Self {
        state.admin.clone()
    }
}

impl FromRef<AppState> for Outbox {
    fn from_ref(state: &AppState) -> Self {
        state.outbox()
    }
}

impl FromRef<AppState> for Arc<crate::ops::certs::TlsStatus> {
    fn from_ref(state: &AppState) -> Self {
        state.tls.clone()
    }
}
