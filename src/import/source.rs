//! The original container's PostgreSQL, read through the `postgres` crate in one READ ONLY,
//! REPEATABLE READ transaction (one snapshot: the totals and the rows agree, and nothing can
//! be written), streamed through a portal in batches so memory stays bounded.

use std::fmt::Write as _;
use std::time::Duration;

use postgres::{Client, IsolationLevel, NoTls, Row, Transaction};

use super::ImportError;
use crate::secret::Secret;

/// The original container's PostgreSQL settings, under the original's variable names
/// (`PG_HOST`, `PG_REAL_HOST`, `PG_PORT`, `PG_DATABASE`, `PG_SCHEMA`, `PG_USER`,
/// `PG_PASSWORD`; source: perfumerlabs' image documentation, "SQL Database"). Only
/// `import-original` uses them; unset values are said by it, not at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalPg {
    /// `PG_HOST`: where the original sent its regular traffic (possibly a PgBouncer).
    pub host: Option<String>,
    /// `PG_REAL_HOST`: the PostgreSQL server itself (never a pooler), which the original
    /// used to create its tables; preferred by the import when set.
    pub real_host: Option<String>,
    /// `PG_PORT` (default 5432).
    pub port: u16,
    /// `PG_DATABASE`.
    pub database: Option<String>,
    /// `PG_SCHEMA` (default `public`).
    pub schema: String,
    /// `PG_USER`.
    pub user: Option<String>,
    /// `PG_PASSWORD`: a secret, never printed.
    pub password: Option<Secret>,
}

/// Rows fetched from the portal at a time.
pub const BATCH: i32 = 5_000;

/// Where the original's data is, for messages (never the password).
#[derive(Debug, Clone)]
pub struct Place {
    /// The host connected to.
    pub host: String,
    /// Which setting named it: `PG_REAL_HOST` or `PG_HOST`.
    pub host_key: &'static str,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: String,
    /// The user.
    pub user: String,
    /// The schema holding the tables.
    pub schema: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{} (schema {})",
            self.host, self.port, self.database, self.schema
        )
    }
}

/// Connects to the original's server: `PG_REAL_HOST` when set (the server itself, as the
/// original used it for its own schema work), else `PG_HOST` (which may be a PgBouncer; a
/// read in one transaction works through one too). Errors are one line each: the settings
/// missing, the server unreachable, or the login refused (never with the password).
pub fn connect(pg: &OriginalPg) -> Result<(Client, Place), ImportError> {
    let (host, host_key) = match (&pg.real_host, &pg.host) {
        (Some(h), _) => (h.clone(), "PG_REAL_HOST"),
        (None, Some(h)) => (h.clone(), "PG_HOST"),
        (None, None) => {
            return Err(ImportError::NotConfigured(
                "PG_HOST (or PG_REAL_HOST) is not set: give import-original the original \
                 container's PG_* settings (its env file, or pg_host... in config.toml)"
                    .into(),
            ));
        }
    };
    let missing = |key: &str| {
        ImportError::NotConfigured(format!(
            "{key} is not set: give import-original the original container's PG_* settings"
        ))
    };
    let database = pg.database.clone().ok_or_else(|| missing("PG_DATABASE"))?;
    let user = pg.user.clone().ok_or_else(|| missing("PG_USER"))?;
    let place = Place {
        host,
        host_key,
        port: pg.port,
        database,
        user,
        schema: pg.schema.clone(),
    };
    let mut config = postgres::Config::new();
    config
        .host(&place.host)
        .port(place.port)
        .dbname(&place.database)
        .user(&place.user)
        .application_name("qiwi-gateway import-original")
        .connect_timeout(Duration::from_secs(10));
    if let Some(pw) = &pg.password {
        config.password(&pw.0);
    }
    let client = config
        .connect(NoTls)
        .map_err(|e| connect_error(&place, &e))?;
    Ok((client, place))
}

/// One line for a failed connection, naming the server and the setting to fix.
fn connect_error(place: &Place, e: &postgres::Error) -> ImportError {
    use postgres::error::SqlState;
    let at = format!(
        "{}:{} ({} / PG_PORT)",
        place.host, place.port, place.host_key
    );
    match e.as_db_error() {
        Some(db)
            if *db.code() == SqlState::INVALID_PASSWORD
                || *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ImportError::LoginRefused(format!(
                "the original's PostgreSQL at {at} refused user {:?}: {} (check PG_USER and \
                 PG_PASSWORD)",
                place.user,
                db.message()
            ))
        }
        Some(db) => ImportError::Postgres(format!(
            "the original's PostgreSQL at {at} refused the connection: {} (check PG_DATABASE)",
            db.message()
        )),
        None => {
            // The crate's own text ("error connecting to server: Connection refused (os error
            // 111)", "password missing"...) on one line; it never holds the password.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let _ = write!(text, ": {c}");
                cause = c.source();
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if text.contains("password missing") {
                ImportError::LoginRefused(format!(
                    "the original's PostgreSQL at {at} asks user {:?} for a password and \
                     PG_PASSWORD is not set",
                    place.user
                ))
            } else {
                ImportError::Unreachable(format!(
                    "cannot reach the original's PostgreSQL at {at}: {text}"
                ))
            }
        }
    }
}

/// Starts the read: one READ ONLY snapshot.
pub fn snapshot(client: &mut Client) -> Result<Transaction<'_>, ImportError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| pg_error("starting a read-only transaction", &e))
}

/// A PostgreSQL failure while reading, on one line.
pub fn pg_error(doing: &str, e: &postgres::Error) -> ImportError {
    let text = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    };
    ImportError::Postgres(format!(
        "the original's PostgreSQL failed while {doing}: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// A table's columns: `(name, data_type)` as `information_schema.columns` says, in order.
/// Empty when the table does not exist.
pub fn columns(
    tx: &mut Transaction<'_>,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, ImportError> {
    let rows = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .map_err(|e| pg_error("reading the table's columns", &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// An identifier quoted for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The expression reading time column `col` (of type `ty`, `None` when missing) as UTC text
/// `YYYY-MM-DD HH:MM:SS` where PostgreSQL knows the type; text columns come as written, to
/// be read by [`super::convert::utc_text`]. The second value says whether they need it.
pub fn time_expr(col: &str, ty: Option<&str>) -> (String, bool) {
    let c = format!("t.{}", ident(col));
    match ty {
        None => ("NULL::text".into(), false),
        Some("timestamp with time zone") => (
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"),
            false,
        ),
        Some("timestamp without time zone" | "date") => {
            (format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS')"), false)
        }
        Some(_) => (format!("{c}::text"), true),
    }
}

/// A sum that is a plain decimal (what [`super::convert::kopecks`] reads without complaint),
/// for PostgreSQL's own totals: `NULL` for anything else, which the rows report.
pub fn plain_sum(col: &str) -> String {
    let c = format!("t.{}::text", ident(col));
    format!(
        "CASE WHEN {c} ~* '^\\s*\\+?([0-9]+\\.?[0-9]*|\\.[0-9]+)(e[-+]?[0-9]+)?\\s*$' \
         THEN {c}::numeric END"
    )
}

/// Streams the rows of `sql` through a portal, [`BATCH`] at a time, calling `each` on every
/// row in order. Memory holds one batch.
pub fn stream(
    tx: &mut Transaction<'_>,
    sql: &str,
    what: &str,
    mut each: impl FnMut(&Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let portal = tx.bind(sql, &[]).map_err(|e| pg_error(what, &e))?;
    loop {
        let rows = tx
            .query_portal(&portal, BATCH)
            .map_err(|e| pg_error(what, &e))?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            each(row)?;
        }
    }
}
