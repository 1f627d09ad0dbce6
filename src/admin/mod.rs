//! The admin UI at `/admin`: server-rendered pages (askama templates in `templates/`, CSS in
//! `static/` compiled into the binary) to answer "did this payment arrive, and did our backend
//! get it?", and to push a stuck webhook. No JavaScript: every action is a form.
//!
//! Every route except the login page and the static assets is behind [`session::require_session`],
//! which also checks the CSRF token of every state-changing form. Every response carries the
//! security headers of [`security_headers`].

mod audit;
mod charts;
mod dashboard;
pub mod limiter;
mod log;
mod login;
pub mod password;
mod reconcile;
mod session;
mod settings;
mod shared;
mod signature;
mod test_payment;
mod transactions;
mod view;
pub mod visible;

use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Router;
use axum::extract::{Extension, FromRef};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::db::{Db, DbError};
use crate::http::ServerSettings;

pub use dashboard::DashboardState;
pub use password::init;
pub use session::Session;
pub use settings::Settings;
pub use shared::AdminState;
pub use test_payment::TestPaymentState;
pub use view::DisplayLocale;

/// The stylesheet, compiled in so the binary works from any directory.
const CSS: &str = include_str!("../../static/admin.css");
/// The icon.
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// The stylesheet's URL, versioned by its content so browsers may cache it for good.
static CSS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/admin/static/admin.css?v={:016x}", fnv1a(CSS.as_bytes())));

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The routes under `/admin` (to be nested there), on any state that holds the parts the
/// pages take (`crate::state::AppState`); `db` is the session check's, `settings` sizes the
/// registry upload's body limit.
pub fn router<S>(db: Db, settings: &Settings) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Db: FromRef<S>,
    Arc<Settings>: FromRef<S>,
    Arc<ServerSettings>: FromRef<S>,
    Arc<crate::webhook::Settings>: FromRef<S>,
    AdminState: FromRef<S>,
    crate::webhook::Outbox: FromRef<S>,
    DashboardState: FromRef<S>,
    TestPaymentState: FromRef<S>,
{
    let protected = Router::new()
        .route("/", get(dashboard::get))
        .route("/transactions", get(transactions::list))
        .route("/transactions.csv", get(transactions::csv))
        .route(
            "/transactions/resend-undelivered",
            post(transactions::resend_all),
        )
        .route("/transactions/{id}", get(transactions::get))
        .route("/transactions/{id}/resend", post(transactions::resend))
        .route(
            "/transactions/{id}/signature",
            get(signature::get).post(signature::post),
        )
        .route(
            "/test-payment",
            get(test_payment::get).post(test_payment::post),
        )
        .route("/test-payment/{code}", get(test_payment::show))
        .route("/log", get(log::list))
        .route("/log/{id}", get(log::get))
        .route(
            "/reconcile",
            get(reconcile::list).post(reconcile::upload).layer(
                // The handler refuses a file over the limit with a message; this stops the rest.
                axum::extract::DefaultBodyLimit::max(settings.reconcile_max_upload + 64 * 1024),
            ),
        )
        .route("/reconcile/{id}", get(reconcile::get))
        .route("/reconcile/{id}/csv", get(reconcile::csv))
        .route("/audit", get(audit::list))
        .route("/logout", post(login::logout))
        .fallback(not_found)
        .layer(from_fn_with_state(db, session::require_session));
    let public = Router::new()
        .route("/login", get(login::login_get).post(login::login_post))
        .route("/static/admin.css", get(css))
        .route("/static/favicon.svg", get(favicon));
    protected
        .merge(public)
        .layer(map_response(security_headers))
}

/// Adds the security headers to every admin response: a CSP that allows no script at all and
/// only our own stylesheet, no framing, no sniffing, no referrer outside the site, and no
/// caching of pages (they show payment data).
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// What every page's frame needs: the title, the asset URLs, and for a logged-in user the
/// navigation and the logout form's CSRF token.
pub struct Layout {
    /// The page title.
    pub title: String,
    /// The stylesheet URL.
    pub css: &'static str,
    /// The logged-in user, `None` on the login and error pages.
    pub user: Option<String>,
    /// The session's CSRF token (the login form's on the login page).
    pub csrf: String,
    /// The active navigation entry: `dashboard`, `transactions`, `log`, `audit` or empty.
    pub nav: &'static str,
    /// The display time zone's name, which labels every time; empty on pages without times.
    pub zone: &'static str,
}

impl Layout {
    /// The frame of a page of a logged-in user.
    fn new(
        title: impl Into<String>,
        session: &Session,
        nav: &'static str,
        zone: &view::Fmt,
    ) -> Layout {
        Layout {
            title: title.into(),
            css: CSS_HREF.as_str(),
            user: Some(session.username.clone()),
            csrf: session.csrf.clone(),
            nav,
            zone: zone.zone(),
        }
    }

    /// The frame of a page seen without a session.
    fn anonymous(title: impl Into<String>, csrf: String) -> Layout {
        Layout {
            title: title.into(),
            css: CSS_HREF.as_str(),
            user: None,
            csrf,
            nav: "",
            zone: "",
        }
    }
}

/// Renders `page` with `status`; a template failure is logged and becomes a bare 500.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering an admin page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// Why an admin request failed. Logged once here; the browser gets a page without details.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The database failed.
    #[error("database: {0}")]
    Db(DbError),
    /// Hashing or checking a password failed.
    #[error("password hash: {0}")]
    Hash(String),
    /// A state-changing form came without its session's CSRF token.
    #[error("CSRF token missing or wrong")]
    Csrf,
}

// By hand, not `#[from]`: that would also make the DbError the `source()`, and a printed
// chain would say it twice.
impl From<DbError> for AdminError {
    fn from(e: DbError) -> AdminError {
        AdminError::Db(e)
    }
}

impl From<password::PasswordError> for AdminError {
    fn from(e: password::PasswordError) -> AdminError {
        match e {
            password::PasswordError::Db(e) => AdminError::Db(e),
            password::PasswordError::Hash(e) => AdminError::Hash(e),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let page = match &self {
            AdminError::Csrf => ErrorPage {
                layout: Layout::anonymous("Form expired", String::new()),
                status: 403,
                heading: "This form has expired",
                message: "Its security token is missing or out of date. Go back, reload the \
                          page and try again.",
            },
            AdminError::Db(_) | AdminError::Hash(_) => {
                tracing::error!(error = %self, "admin request failed");
                ErrorPage {
                    layout: Layout::anonymous("Error", String::new()),
                    status: 500,
                    heading: "Something went wrong",
                    message: "The gateway could not complete this request; its log says why. \
                              Try again in a moment.",
                }
            }
        };
        let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        render(status, &page)
    }
}

/// The page of an error: 404, 403 or 500.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: &'static str,
}

/// The 404 page inside the admin UI, with the navigation.
fn not_found_page(session: &Session) -> Response {
    render(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            layout: Layout {
                zone: "",
                ..Layout::new("Not found", session, "", &view::Fmt::utc())
            },
            status: 404,
            heading: "Page not found",
            message: "There is nothing at this address. It may have been mistyped, or the row \
                      it names does not exist.",
        },
    )
}

async fn not_found(Extension(session): Extension<Session>) -> Response {
    not_found_page(&session)
}

/// The 404 page outside `/admin` (no session is looked at there). `/admin/` is the
/// dashboard's address with a slash too many: sent to it.
pub async fn not_found_public(uri: axum::http::Uri) -> Response {
    if uri.path() == "/admin/" {
        return axum::response::Redirect::to("/admin").into_response();
    }
    let page = ErrorPage {
        layout: Layout::anonymous("Not found", String::new()),
        status: 404,
        heading: "Page not found",
        message: "There is nothing at this address.",
    };
    security_headers(render(StatusCode::NOT_FOUND, &page)).await
}
