//! Configuration: built-in defaults < `config.toml` < environment variables, validated at
//! start into real types. Every key's environment variable is its name in upper case
//! (`listen_addr` ↔ `LISTEN_ADDR`), which keeps the original product's names
//! (`HTTP_AUTH_USERNAME`, `QIWI_CHECK_URL`, ...).
//!
//! Environment values are read verbatim ([`VerbatimEnv`]): figment's own `Env` provider parses
//! them as TOML-ish values, so `HTTP_AUTH_PASSWORD=000000123456` became `123456` and
//! `"quoted"` lost its quotes. Errors name where the bad value came from (the file and key, or
//! the environment variable).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::admin;
use crate::http::ServerSettings;
use crate::qiwi::{self, Amount};
use crate::webhook;

// Types of the sections, at the paths they had when they were defined here.
pub use crate::admin::DisplayLocale;
pub use crate::http::BasicAuth;
pub use crate::import::OriginalPg;
pub use crate::ops::tls::TlsFiles;
pub use crate::ops::{Checkpointing, LogFormat, Timings};
pub use crate::qiwi::{DEFAULT_ACCOUNT_PATTERN, anchored_pattern};
pub use crate::secret::Secret;

/// A configuration problem, named by its key, as printed before the program stops.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read into the configuration's shape.
    #[error("{0}")]
    Load(String),
    /// A value has the right shape but is not usable.
    #[error("invalid `{key}` ({origin}): {reason}")]
    Invalid {
        /// The key in `config.toml`.
        key: &'static str,
        /// Where the value came from: `env KEY`, `file PATH`, or `built-in default`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The configuration as written in the file and the environment, before validation. A text
/// key is a [`Text`] (never a bare `String`): [`VerbatimEnv`] hands `PORT=8080`-like values on
/// as numbers, which `Text` takes back as the same characters and `String` would refuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    listen_addr: Text,
    database_path: Text,
    http_auth_username: Option<Text>,
    http_auth_password: Option<Text>,
    qiwi_check_url: Option<Text>,
    check_timeout_secs: u64,
    account_pattern: Text,
    min_sum: Text,
    max_sum: Option<Text>,
    payments_enabled: bool,
    qiwi_webhook_url: Option<Text>,
    webhook_secret: Option<Text>,
    webhook_timeout_secs: u64,
    webhook_initial_delay_secs: u64,
    webhook_max_delay_secs: u64,
    webhook_max_attempts: Option<u32>,
    webhook_concurrency: usize,
    webhook_success_statuses: IpList,
    admin_username: Text,
    admin_password: Option<Text>,
    admin_cookie_secure: bool,
    qiwi_allowed_ips: IpList,
    trusted_proxies: IpList,
    metrics_token: Option<Text>,
    readiness_max_backlog_age_secs: Option<u64>,
    log_retention_days: u64,
    log_format: Text,
    db_checkpoint: Text,
    shutdown_timeout_secs: u64,
    tls_cert_file: Option<Text>,
    tls_key_file: Option<Text>,
    acme_domains: IpList,
    acme_email: Option<Text>,
    acme_directory_url: Text,
    acme_cache_dir: Option<Text>,
    acme_ca_file: Option<Text>,
    acme_renew_before_days: u64,
    http_header_timeout_secs: u64,
    http_request_timeout_secs: u64,
    http_max_connections: usize,
    reconcile_columns: Option<Text>,
    reconcile_max_upload_mib: u64,
    display_timezone: Text,
    display_locale: Text,
    pg_host: Option<Text>,
    pg_real_host: Option<Text>,
    pg_port: Option<Text>,
    pg_database: Option<Text>,
    pg_schema: Option<Text>,
    pg_user: Option<Text>,
    pg_password: Option<Text>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen_addr: "0.0.0.0:8080".into(),
            database_path: "data/qiwi.db".into(),
            http_auth_username: None,
            http_auth_password: None,
            qiwi_check_url: None,
            check_timeout_secs: 10,
            account_pattern: DEFAULT_ACCOUNT_PATTERN.into(),
            min_sum: "0.01".into(),
            // 15,000 RUB: above it a payment agent must identify the payer (Federal Law
            // 115-FZ, art. 7), which a terminal does not, so no ordinary terminal pay is
            // larger; it also keeps sums of pays far from i64 overflow. An empty value
            // removes the limit.
            max_sum: Some("15000.00".into()),
            payments_enabled: true,
            qiwi_webhook_url: None,
            webhook_secret: None,
            webhook_timeout_secs: 10,
            webhook_initial_delay_secs: 5,
            webhook_max_delay_secs: 3600,
            webhook_max_attempts: None,
            webhook_concurrency: 4,
            // A list of texts like `qiwi_allowed_ips` (`IpList` is that shape), parsed below.
            webhook_success_statuses: IpList(vec!["200".into(), "201".into()]),
            admin_username: "admin".into(),
            admin_password: None,
            admin_cookie_secure: false,
            qiwi_allowed_ips: IpList::default(),
            trusted_proxies: IpList::default(),
            metrics_token: None,
            readiness_max_backlog_age_secs: None,
            log_retention_days: 90,
            log_format: "text".into(),
            db_checkpoint: "auto".into(),
            shutdown_timeout_secs: 8,
            tls_cert_file: None,
            tls_key_file: None,
            acme_domains: IpList::default(),
            acme_email: None,
            acme_directory_url: crate::ops::acme::LETS_ENCRYPT.into(),
            acme_cache_dir: None,
            acme_ca_file: None,
            acme_renew_before_days: 30,
            http_header_timeout_secs: 10,
            http_request_timeout_secs: 30,
            http_max_connections: 1024,
            reconcile_columns: None,
            reconcile_max_upload_mib: 20,
            display_timezone: "UTC".into(),
            display_locale: "en".into(),
            pg_host: None,
            pg_real_host: None,
            pg_port: None,
            pg_database: None,
            pg_schema: None,
            pg_user: None,
            pg_password: None,
        }
    }
}

/// Every key, as accepted from the environment (in upper case).
pub const KEYS: &[&str] = &[
    "listen_addr",
    "database_path",
    "http_auth_username",
    "http_auth_password",
    "qiwi_check_url",
    "check_timeout_secs",
    "account_pattern",
    "min_sum",
    "max_sum",
    "payments_enabled",
    "qiwi_webhook_url",
    "webhook_secret",
    "webhook_timeout_secs",
    "webhook_initial_delay_secs",
    "webhook_max_delay_secs",
    "webhook_max_attempts",
    "webhook_concurrency",
    "webhook_success_statuses",
    "admin_username",
    "admin_password",
    "admin_cookie_secure",
    "qiwi_allowed_ips",
    "trusted_proxies",
    "metrics_token",
    "readiness_max_backlog_age_secs",
    "log_retention_days",
    "log_format",
    "db_checkpoint",
    "shutdown_timeout_secs",
    "tls_cert_file",
    "tls_key_file",
    "acme_domains",
    "acme_email",
    "acme_directory_url",
    "acme_cache_dir",
    "acme_ca_file",
    "acme_renew_before_days",
    "http_header_timeout_secs",
    "http_request_timeout_secs",
    "http_max_connections",
    "reconcile_columns",
    "reconcile_max_upload_mib",
    "display_timezone",
    "display_locale",
    "pg_host",
    "pg_real_host",
    "pg_port",
    "pg_database",
    "pg_schema",
    "pg_user",
    "pg_password",
];

/// The keys whose values are secrets: masked wherever the configuration is printed.
pub const SECRET_KEYS: &[&str] = &[
    "http_auth_password",
    "webhook_secret",
    "admin_password",
    "metrics_token",
    "pg_password",
];

/// The validated configuration: one typed section per module that uses it, each section's
/// type owned by that module (the modules never read this struct or the keys). Its `Debug`
/// masks secrets and the URLs' credentials.
#[derive(Clone)]
pub struct Config {
    /// The HTTP server: listening, HTTPS, connection and request limits, trusted proxies.
    pub server: ServerSettings,
    /// The protocol: who may call `/payment` and what a valid payment is.
    pub qiwi: qiwi::Settings,
    /// The account check against the merchant's backend.
    pub check: qiwi::check::Settings,
    /// Webhook delivery to the merchant's backend.
    pub webhook: webhook::Settings,
    /// The admin UI.
    pub admin: admin::Settings,
    /// Operations: the database file, metrics and health, logs, checkpoints, timings.
    pub ops: crate::ops::Settings,
}

impl fmt::Debug for Config {
    // Each section's `Debug` masks its own secrets (`Secret`) and URLs (`ops::redact::url`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("qiwi", &self.qiwi)
            .field("check", &self.check)
            .field("webhook", &self.webhook)
            .field("admin", &self.admin)
            .field("ops", &self.ops)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .validate()
            .expect("the built-in defaults are valid")
    }
}

/// Where the configuration file is looked for: `--config`/`CONFIG_FILE`, else `./config.toml`
/// when it exists.
pub fn file_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_owned()),
        None => {
            let default = Path::new("config.toml");
            default.exists().then(|| default.to_owned())
        }
    }
}

/// The layered sources: defaults, then the file (if any), then the environment.
pub fn figment(file: Option<&Path>) -> Figment {
    let mut f = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(path) = file {
        f = f.merge(Toml::file_exact(path));
    }
    f.merge(VerbatimEnv)
}

/// The `Source::Custom` tag of values from the environment.
const ENV_SOURCE: &str = "environment";

/// The environment variables of [`KEYS`] (upper case) as a figment provider that yields every
/// value as the exact text it was. Only a value whose text a number or boolean prints back
/// identically (`8080`, `-1`, `true`) is handed on typed, so numeric and boolean keys
/// deserialize and a text key gets the same characters back through [`Text`]; everything
/// else (`000000123456`, `+5`, `12.50`, `"quoted"`, `[a,b]`, ` padded `) stays a string.
/// A value that is not UTF-8 is an error naming the variable.
#[derive(Debug, Clone, Copy)]
pub struct VerbatimEnv;

impl VerbatimEnv {
    /// The value a variable's text becomes: typed only when that is lossless.
    fn value(text: &str) -> Value {
        if let Ok(n) = text.parse::<u64>()
            && n.to_string() == text
        {
            return Value::from(n);
        }
        if let Ok(n) = text.parse::<i64>()
            && n.to_string() == text
        {
            return Value::from(n);
        }
        match text {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => Value::from(text.to_owned()),
        }
    }
}

impl Provider for VerbatimEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .source(Source::Custom(ENV_SOURCE.into()))
            .interpolater(|_: &Profile, k: &[&str]| k.join(".").to_ascii_uppercase())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for key in KEYS {
            let var = key.to_ascii_uppercase();
            match std::env::var(&var) {
                Ok(text) => {
                    dict.insert((*key).to_owned(), Self::value(&text));
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(figment::Error::from(format!(
                        "environment variable {var} is not valid UTF-8"
                    )));
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Where `key`'s effective value comes from, as error messages and `check-config` say it:
/// `env KEY`, `file PATH`, or `built-in default`.
pub fn origin(figment: &Figment, key: &str) -> String {
    origin_of(figment.find_metadata(key), key)
}

fn origin_of(md: Option<&Metadata>, key: &str) -> String {
    match md.and_then(|m| m.source.as_ref()) {
        Some(Source::File(p)) => format!("file {}", p.display()),
        Some(Source::Custom(s)) if s == ENV_SOURCE => format!("env {}", key.to_ascii_uppercase()),
        _ => "built-in default".to_owned(),
    }
}

/// Loads and validates the configuration. A file named explicitly must exist.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    if let Some(path) = file
        && !path.is_file()
    {
        return Err(ConfigError::Load(format!(
            "configuration file {} does not exist",
            path.display()
        )));
    }
    let figment = figment(file);
    let raw: RawConfig = figment
        .extract()
        .map_err(|e| ConfigError::Load(describe(e)))?;
    raw.validate().map_err(|e| match e {
        ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
            key,
            origin: origin(&figment, key),
            reason,
        },
        e => e,
    })
}

/// One line per figment error, naming the key and where its value came from.
fn describe(e: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let origin = origin_of(e.metadata.as_ref(), &key);
            // The value is quoted only for keys that are not secrets.
            let shown = |a: &Actual| match a {
                _ if SECRET_KEYS.contains(&key.as_str()) => "the value".to_owned(),
                Actual::Str(s) => format!("`{}`", s.escape_debug()),
                Actual::Unsigned(n) => format!("`{n}`"),
                Actual::Signed(n) => format!("`{n}`"),
                Actual::Float(n) => format!("`{n}`"),
                Actual::Bool(b) => format!("`{b}`"),
                a => a.to_string(),
            };
            let reason = match &e.kind {
                Kind::InvalidType(a, exp) | Kind::InvalidValue(a, exp) if exp.contains("bool") => {
                    format!("{} is not a boolean: use true or false", shown(a))
                }
                Kind::InvalidType(a, exp) | Kind::InvalidValue(a, exp)
                    if ["u64", "u32", "usize", "u16", "u8", "i64", "integer"]
                        .iter()
                        .any(|t| exp.contains(t)) =>
                {
                    format!("{} is not a whole number like 10", shown(a))
                }
                k => k.to_string(),
            };
            if let Kind::UnknownField(name, _) = &e.kind {
                format!("unknown configuration key `{name}` (see config.toml.example)")
            } else if key.is_empty() {
                format!("configuration: {reason}")
            } else {
                format!("invalid `{key}` ({origin}): {reason}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl RawConfig {
    /// Turns the raw values into real types, naming the first bad key.
    pub fn validate(self) -> Result<Config, ConfigError> {
        // `load` replaces the origin with where the value really came from.
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            key,
            origin: format!("env {}", key.to_uppercase()),
            reason,
        };
        let url = |key: &'static str, v: Option<Text>| -> Result<Option<Url>, ConfigError> {
            v.filter(|t| !t.0.is_empty())
                .map(|t| {
                    let u = Url::parse(&t.0).map_err(|e| invalid(key, e.to_string()))?;
                    match u.scheme() {
                        "http" | "https" => Ok(u),
                        s => Err(invalid(key, format!("scheme `{s}` is not http or https"))),
                    }
                })
                .transpose()
        };
        let secs = |key: &'static str, v: u64| {
            if v == 0 {
                Err(invalid(key, "must be at least 1 second".into()))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let amount = |key: &'static str, t: &Text| {
            Amount::parse(&t.0).map_err(|_| {
                invalid(
                    key,
                    format!("`{}` is not a sum like 10 or 10.50", t.0.escape_debug()),
                )
            })
        };
        let nonempty = |v: Option<Text>| v.map(|t| t.0).filter(|s| !s.is_empty());

        let listen_addr = parse_listen_addr(&self.listen_addr.0)
            .map_err(|reason| invalid("listen_addr", reason))?;
        if self.database_path.0.is_empty() {
            return Err(invalid("database_path", "must not be empty".into()));
        }
        let http_auth = match (
            nonempty(self.http_auth_username),
            nonempty(self.http_auth_password),
        ) {
            (Some(username), Some(password)) => Some(BasicAuth {
                username,
                password: Secret(password),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "http_auth_password",
                    "must be set when http_auth_username is".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "http_auth_username",
                    "must be set when http_auth_password is".into(),
                ));
            }
        };
        let account_pattern = anchored_pattern(&self.account_pattern.0)
            // regex errors draw a caret over several lines: keep it to one.
            .map_err(|e| {
                invalid(
                    "account_pattern",
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })?;
        let min_sum = amount("min_sum", &self.min_sum)?;
        let max_sum = self
            .max_sum
            .filter(|t| !t.0.is_empty())
            .map(|t| amount("max_sum", &t))
            .transpose()?;
        if let Some(max) = max_sum
            && max < min_sum
        {
            return Err(invalid("max_sum", "is below min_sum".into()));
        }
        if self.http_max_connections == 0 {
            return Err(invalid("http_max_connections", "must be at least 1".into()));
        }
        if !(1..=50).contains(&self.http_request_timeout_secs) {
            return Err(invalid(
                "http_request_timeout_secs",
                "must be 1 to 50 (QIWI gives up after 60 s)".into(),
            ));
        }
        if self.webhook_concurrency == 0 {
            return Err(invalid("webhook_concurrency", "must be at least 1".into()));
        }
        if self.webhook_max_attempts == Some(0) {
            return Err(invalid(
                "webhook_max_attempts",
                "must be at least 1 (leave it unset to retry forever)".into(),
            ));
        }
        let webhook_initial_delay = secs(
            "webhook_initial_delay_secs",
            self.webhook_initial_delay_secs,
        )?;
        let webhook_max_delay = secs("webhook_max_delay_secs", self.webhook_max_delay_secs)?;
        if webhook_max_delay < webhook_initial_delay {
            return Err(invalid(
                "webhook_max_delay_secs",
                "is below webhook_initial_delay_secs".into(),
            ));
        }
        let webhook_secret = nonempty(self.webhook_secret).map(Secret);
        if let Some(secret) = &webhook_secret {
            // The message names what is wrong, never the secret.
            webhook::signing::Signer::new(&secret.0)
                .map_err(|e| invalid("webhook_secret", e.to_string()))?;
        }
        let log_format = match self.log_format.0.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{}` is not `text` or `json`", other.escape_debug()),
                ));
            }
        };
        let db_checkpoint = match self.db_checkpoint.0.as_str() {
            "auto" => Checkpointing::Auto,
            "external" => Checkpointing::External,
            other => {
                return Err(invalid(
                    "db_checkpoint",
                    format!("`{}` is not `auto` or `external`", other.escape_debug()),
                ));
            }
        };
        let path = |v: Option<Text>| v.map(|t| t.0).filter(|s| !s.is_empty()).map(PathBuf::from);
        let tls = match (path(self.tls_cert_file), path(self.tls_key_file)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key_file",
                    "must be set when tls_cert_file is".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert_file",
                    "must be set when tls_key_file is".into(),
                ));
            }
        };
        let acme = crate::ops::acme::AcmeSettings::validate(crate::ops::acme::RawAcme {
            domains: &self.acme_domains.0,
            email: nonempty(self.acme_email),
            directory_url: &self.acme_directory_url.0,
            cache_dir: path(self.acme_cache_dir),
            ca_file: path(self.acme_ca_file),
            renew_before_days: self.acme_renew_before_days,
            database_path: Path::new(&self.database_path.0),
        })
        .map_err(|(key, reason)| invalid(key, reason))?;
        if acme.is_some() && tls.is_some() {
            return Err(invalid(
                "acme_domains",
                "is set together with tls_cert_file: choose one source of certificates \
                 (unset ACME_DOMAINS to use the files, or TLS_CERT_FILE/TLS_KEY_FILE for ACME)"
                    .into(),
            ));
        }
        let admin_password = nonempty(self.admin_password).map(Secret);
        if let Some(pw) = &admin_password
            && pw.0.chars().count() < admin::password::MIN_PASSWORD_LEN
        {
            // The same rule as `admin set-password`; the message never shows the password.
            return Err(invalid(
                "admin_password",
                format!(
                    "has {} characters; at least {} are needed (the same rule as admin set-password)",
                    pw.0.chars().count(),
                    admin::password::MIN_PASSWORD_LEN
                ),
            ));
        }
        let days = self.log_retention_days;
        let log_retention = (days > 0)
            .then(|| days.checked_mul(86_400).map(Duration::from_secs))
            .map(|d| d.ok_or_else(|| invalid("log_retention_days", "is too large".into())))
            .transpose()?;
        let reconcile_columns = nonempty(self.reconcile_columns)
            .map(|c| {
                crate::reconcile::ColumnMap::parse(&c).map_err(|e| invalid("reconcile_columns", e))
            })
            .transpose()?;
        let reconcile_max_upload = self
            .reconcile_max_upload_mib
            .checked_mul(1024 * 1024)
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
            .ok_or_else(|| {
                invalid(
                    "reconcile_max_upload_mib",
                    "must be between 1 and 4096".into(),
                )
            })?;
        let display_timezone = self
            .display_timezone
            .0
            .trim()
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                invalid(
                    "display_timezone",
                    format!(
                        "{:?} is not an IANA time zone name such as UTC or Europe/Moscow",
                        self.display_timezone.0
                    ),
                )
            })?;
        let display_locale = match self.display_locale.0.trim().to_ascii_lowercase().as_str() {
            "en" | "en-us" | "en-gb" | "en_us" | "en_gb" => DisplayLocale::En,
            "ru" | "ru-ru" | "ru_ru" => DisplayLocale::Ru,
            other => {
                return Err(invalid(
                    "display_locale",
                    format!("{other:?} is not one of: en, ru"),
                ));
            }
        };
        let pg_port = match nonempty(self.pg_port) {
            None => 5432,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| {
                    invalid(
                        "pg_port",
                        format!("`{}` is not a port (1-65535)", p.escape_debug()),
                    )
                })?,
        };
        let original_pg = OriginalPg {
            host: nonempty(self.pg_host),
            real_host: nonempty(self.pg_real_host),
            port: pg_port,
            database: nonempty(self.pg_database),
            schema: nonempty(self.pg_schema).unwrap_or_else(|| "public".to_owned()),
            user: nonempty(self.pg_user),
            password: nonempty(self.pg_password).map(Secret),
        };
        // In the order the keys were always checked: the first bad key is the one named.
        let qiwi_allowed_ips = self
            .qiwi_allowed_ips
            .parse()
            .map_err(|e| invalid("qiwi_allowed_ips", e))?;
        let trusted_proxies = self
            .trusted_proxies
            .parse()
            .map_err(|e| invalid("trusted_proxies", e))?;
        let readiness_max_backlog_age = self
            .readiness_max_backlog_age_secs
            .map(|s| secs("readiness_max_backlog_age_secs", s))
            .transpose()?;
        let shutdown_timeout = secs("shutdown_timeout_secs", self.shutdown_timeout_secs)?;
        let check = qiwi::check::Settings {
            url: url("qiwi_check_url", self.qiwi_check_url)?,
            timeout: secs("check_timeout_secs", self.check_timeout_secs)?,
        };
        let webhook = webhook::Settings {
            url: url("qiwi_webhook_url", self.qiwi_webhook_url)?,
            secret: webhook_secret,
            timeout: secs("webhook_timeout_secs", self.webhook_timeout_secs)?,
            backoff: webhook::backoff::Backoff {
                initial: webhook_initial_delay,
                max: webhook_max_delay,
            },
            max_attempts: self.webhook_max_attempts,
            concurrency: self.webhook_concurrency,
            idle_rescan: webhook::IDLE_RESCAN,
            success_statuses: success_statuses(&self.webhook_success_statuses)
                .map_err(|e| invalid("webhook_success_statuses", e))?,
        };
        let server = ServerSettings {
            listen_addr,
            tls,
            acme,
            header_timeout: secs("http_header_timeout_secs", self.http_header_timeout_secs)?,
            request_timeout: secs("http_request_timeout_secs", self.http_request_timeout_secs)?,
            max_connections: self.http_max_connections,
            shutdown_timeout,
            trusted_proxies,
        };
        let qiwi = qiwi::Settings {
            http_auth,
            allowed_ips: qiwi_allowed_ips,
            account_pattern,
            min_sum,
            max_sum,
            payments_enabled: self.payments_enabled,
        };
        let admin = admin::Settings {
            username: self.admin_username.0,
            password: admin_password,
            cookie_secure: self.admin_cookie_secure,
            display_timezone,
            display_locale,
            reconcile_columns,
            reconcile_max_upload,
        };
        let ops = crate::ops::Settings {
            database_path: PathBuf::from(self.database_path.0),
            metrics_token: nonempty(self.metrics_token).map(Secret),
            readiness_max_backlog_age,
            log_retention,
            log_format,
            db_checkpoint,
            timings: Timings::default(),
            original_pg,
        };
        Ok(Config {
            server,
            qiwi,
            check,
            webhook,
            admin,
            ops,
        })
    }
}

/// Parses `listen_addr`: an IP address and a port (`0.0.0.0:8080`, `[::]:8443`). A host name is
/// refused with a sentence saying so rather than resolved: what a name resolves to can change
/// under a running service, and `localhost` may be IPv4, IPv6 or both.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let shown = text.escape_debug();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Err(format!(
            "`{shown}` has no port: write it as {} with the port, like {}",
            ip,
            SocketAddr::new(ip, 8080)
        ));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            let suggestion = if host == "localhost" {
                format!("127.0.0.1:{port}")
            } else {
                format!("0.0.0.0:{port} (every address)")
            };
            Err(format!(
                "`{shown}`: a host name is not accepted, only an IP address and port; use e.g. {suggestion}"
            ))
        }
        Some((_, port)) => Err(format!(
            "`{shown}`: `{}` is not a port (1-65535, or 0 for any free port)",
            port.escape_debug()
        )),
        None => Err(format!(
            "`{shown}` is not an IP address and port like 0.0.0.0:8080"
        )),
    }
}

/// `webhook_success_statuses`: entries 200-299 (a redirect is never followed, an error never a
/// delivery), at least one.
fn success_statuses(list: &IpList) -> Result<Vec<u16>, String> {
    let statuses = list
        .0
        .iter()
        .flat_map(|s| s.split([',', ' ', '\t', '\n']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<u16>() {
            Ok(n) if (200..300).contains(&n) => Ok(n),
            _ => Err(format!(
                "`{}` is not a status from 200 to 299",
                s.escape_debug()
            )),
        })
        .collect::<Result<Vec<u16>, String>>()?;
    if statuses.is_empty() {
        return Err("must list at least one status, e.g. 200, 201".into());
    }
    Ok(statuses)
}

/// A list of addresses and CIDR blocks: a TOML array of strings, or one string of entries
/// separated by commas or spaces (as the environment gives it: `QIWI_ALLOWED_IPS=a,b`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct IpList(pub Vec<String>);

impl IpList {
    /// Parses every entry: a CIDR block (`79.142.16.0/20`) or a single address (`10.0.0.7`).
    fn parse(&self) -> Result<Vec<IpNet>, String> {
        self.0
            .iter()
            .flat_map(|s| s.split([',', ' ', '\t', '\n']))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("`{}` is not an address or CIDR block", s.escape_debug()))
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for IpList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            One(Text),
            Many(Vec<Text>),
        }
        Ok(match Shape::deserialize(d)? {
            Shape::One(t) => IpList(vec![t.0]),
            Shape::Many(v) => IpList(v.into_iter().map(|t| t.0).collect()),
        })
    }
}

/// A text value that also accepts what the environment makes look like a number or a boolean
/// (`HTTP_AUTH_PASSWORD=12345`, `MIN_SUM=0.01`), taking it back as the text it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.to_owned())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            // Shortest round-trip form: `0.01` in the file comes back as "0.01".
            fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// figment's Jail fixes the closures' error type, which clippy finds large.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn display_settings_are_iana_zones_and_known_locales() {
        let raw = RawConfig {
            display_timezone: "Europe/Moscow".into(),
            display_locale: "RU".into(),
            ..RawConfig::default()
        };
        let c = raw.validate().unwrap();
        assert_eq!(c.admin.display_timezone, chrono_tz::Europe::Moscow);
        assert_eq!(c.admin.display_locale, DisplayLocale::Ru);
        let e = RawConfig {
            display_timezone: "Europe/Moskva".into(),
            ..RawConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("display_timezone") && e.contains("IANA"), "{e}");
        let e = RawConfig {
            display_locale: "de".into(),
            ..RawConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("display_locale"), "{e}");
    }

    #[test]
    fn the_example_file_loads_and_documents_every_key() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
        let text = std::fs::read_to_string(&example).unwrap();
        for key in KEYS {
            assert!(
                text.contains(&format!("{key} =")),
                "{key} is not in the example"
            );
            assert!(
                text.contains(&key.to_uppercase()),
                "{key}'s env is not in the example"
            );
        }
        Jail::expect_with(|_| {
            load(Some(&example)).unwrap();
            Ok(())
        });
    }

    #[test]
    fn defaults_need_no_configuration() {
        Jail::expect_with(|_| {
            let c = load(None).unwrap();
            assert_eq!(c.server.listen_addr, "0.0.0.0:8080".parse().unwrap());
            assert_eq!(c.ops.database_path, PathBuf::from("data/qiwi.db"));
            assert!(c.qiwi.http_auth.is_none());
            assert_eq!(c.qiwi.min_sum, Amount::from_minor(1));
            assert_eq!(c.qiwi.max_sum, Some(Amount::from_minor(1_500_000)));
            assert_eq!(c.check.timeout, Duration::from_secs(10));
            Ok(())
        });
    }

    #[test]
    fn env_beats_file_beats_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                r#"
                listen_addr = "127.0.0.1:9000"
                database_path = "/tmp/file.db"
                min_sum = 1.5
                "#,
            )?;
            jail.set_env("DATABASE_PATH", "/tmp/env.db");
            jail.set_env("HTTP_AUTH_USERNAME", "qiwi");
            jail.set_env("HTTP_AUTH_PASSWORD", "12345");
            let c = load(Some(Path::new("gw.toml"))).unwrap();
            assert_eq!(c.server.listen_addr, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(c.ops.database_path, PathBuf::from("/tmp/env.db"));
            assert_eq!(c.qiwi.min_sum, Amount::from_minor(150));
            let auth = c.qiwi.http_auth.unwrap();
            assert_eq!(auth.username, "qiwi");
            assert_eq!(auth.password.0, "12345");
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_env_values_stay_text() {
        Jail::expect_with(|jail| {
            jail.set_env("MIN_SUM", "0.10");
            jail.set_env("MAX_SUM", "15000");
            jail.set_env("METRICS_TOKEN", "true");
            let c = load(None).unwrap();
            assert_eq!(c.qiwi.min_sum, Amount::from_minor(10));
            assert_eq!(c.qiwi.max_sum, Some(Amount::from_minor(1_500_000)));
            assert_eq!(c.ops.metrics_token.unwrap().0, "true");
            Ok(())
        });
    }

    fn error_of(
        setup: impl FnOnce(&mut Jail) -> figment::error::Result<Option<&'static str>>,
    ) -> String {
        let mut msg = String::new();
        Jail::expect_with(|jail| {
            let file = setup(jail)?;
            msg = load(file.map(Path::new)).unwrap_err().to_string();
            Ok(())
        });
        msg
    }

    #[test]
    fn errors_name_the_key() {
        let m = error_of(|j| {
            j.set_env("QIWI_CHECK_URL", "not a url");
            Ok(None)
        });
        assert!(
            m.contains("qiwi_check_url") && m.contains("QIWI_CHECK_URL"),
            "{m}"
        );

        let m = error_of(|j| {
            j.set_env("LISTEN_ADDR", "localhost");
            Ok(None)
        });
        assert!(m.contains("listen_addr"), "{m}");

        let m = error_of(|j| {
            j.set_env("ACCOUNT_PATTERN", "([a-z");
            Ok(None)
        });
        assert!(m.contains("account_pattern"), "{m}");

        let m = error_of(|j| {
            j.create_file("c.toml", "listen_adr = \"1.2.3.4:80\"")?;
            Ok(Some("c.toml"))
        });
        assert!(m.contains("listen_adr"), "{m}");

        let m = error_of(|j| {
            j.set_env("CHECK_TIMEOUT_SECS", "soon");
            Ok(None)
        });
        assert!(
            m.contains("check_timeout_secs") && m.contains("CHECK_TIMEOUT_SECS"),
            "{m}"
        );

        let m = error_of(|j| {
            j.set_env("HTTP_AUTH_USERNAME", "only-user");
            Ok(None)
        });
        assert!(m.contains("http_auth_password"), "{m}");

        let m = error_of(|j| {
            j.set_env("MIN_SUM", "1,5");
            Ok(None)
        });
        assert!(m.contains("min_sum"), "{m}");

        let m = error_of(|_| Ok(Some("missing.toml")));
        assert!(m.contains("missing.toml"), "{m}");
    }

    #[test]
    fn ip_lists_come_from_toml_arrays_or_comma_separated_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                r#"qiwi_allowed_ips = ["79.142.16.0/20", "91.213.51.0/24"]"#,
            )?;
            jail.set_env("TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12,::1");
            let c = load(Some(Path::new("gw.toml"))).unwrap();
            let show = |v: &[IpNet]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
            assert_eq!(
                show(&c.qiwi.allowed_ips),
                ["79.142.16.0/20", "91.213.51.0/24"]
            );
            assert_eq!(
                show(&c.server.trusted_proxies),
                ["10.0.0.1/32", "172.16.0.0/12", "::1/128"]
            );

            jail.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,91.232.230.0/23");
            let c = load(Some(Path::new("gw.toml"))).unwrap();
            assert_eq!(
                show(&c.qiwi.allowed_ips),
                ["79.142.16.0/20", "91.232.230.0/23"]
            );

            jail.set_env("QIWI_ALLOWED_IPS", "");
            assert!(
                load(Some(Path::new("gw.toml")))
                    .unwrap()
                    .qiwi
                    .allowed_ips
                    .is_empty()
            );
            Ok(())
        });
    }

    #[test]
    fn ops_keys_are_validated() {
        let m = error_of(|j| {
            j.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,qiwi.com");
            Ok(None)
        });
        assert!(
            m.contains("qiwi_allowed_ips") && m.contains("qiwi.com"),
            "{m}"
        );
        let m = error_of(|j| {
            j.set_env("TRUSTED_PROXIES", "10.0.0.0/33");
            Ok(None)
        });
        assert!(m.contains("trusted_proxies"), "{m}");
        let m = error_of(|j| {
            j.set_env("LOG_FORMAT", "xml");
            Ok(None)
        });
        assert!(m.contains("log_format"), "{m}");
        let m = error_of(|j| {
            j.set_env("TLS_CERT_FILE", "/etc/cert.pem");
            Ok(None)
        });
        assert!(m.contains("tls_key_file"), "{m}");
        let m = error_of(|j| {
            j.set_env("ACME_DOMAINS", "pay.example.ru");
            j.set_env("TLS_CERT_FILE", "/etc/cert.pem");
            j.set_env("TLS_KEY_FILE", "/etc/key.pem");
            Ok(None)
        });
        assert!(
            m.contains("acme_domains") && m.contains("tls_cert_file"),
            "{m}"
        );
        let m = error_of(|j| {
            j.set_env("ACME_DOMAINS", "pay.example.ru,invalid..name");
            Ok(None)
        });
        assert!(
            m.contains("acme_domains") && m.contains("invalid..name"),
            "{m}"
        );
        let m = error_of(|j| {
            j.set_env("ACME_EMAIL", "ops@example.ru");
            Ok(None)
        });
        assert!(
            m.contains("acme_email") && m.contains("acme_domains"),
            "{m}"
        );
        Jail::expect_with(|jail| {
            jail.set_env("ACME_DOMAINS", "pay.example.ru, shop.example.ru");
            jail.set_env("DATABASE_PATH", "/var/lib/qiwi/qiwi.db");
            jail.set_env("ACME_RENEW_BEFORE_DAYS", "20");
            let c = load(None).unwrap();
            let a = c.server.acme.as_ref().unwrap();
            assert_eq!(a.domains, ["pay.example.ru", "shop.example.ru"]);
            assert_eq!(a.cache_dir, Path::new("/var/lib/qiwi/acme"));
            assert_eq!(a.directory_url.as_str(), crate::ops::acme::LETS_ENCRYPT);
            assert_eq!(a.renew_before, Duration::from_secs(20 * 86_400));
            assert!(c.server.https() && c.server.tls.is_none());
            Ok(())
        });
        let m = error_of(|j| {
            j.set_env("DB_CHECKPOINT", "never");
            Ok(None)
        });
        assert!(m.contains("db_checkpoint"), "{m}");
        let m = error_of(|j| {
            j.set_env("SHUTDOWN_TIMEOUT_SECS", "0");
            Ok(None)
        });
        assert!(m.contains("shutdown_timeout_secs"), "{m}");

        Jail::expect_with(|jail| {
            let c = load(None).unwrap();
            assert_eq!(c.ops.log_retention, Some(Duration::from_secs(90 * 86_400)));
            assert_eq!(c.ops.log_format, LogFormat::Text);
            assert_eq!(c.ops.db_checkpoint, Checkpointing::Auto);
            assert!(c.server.tls.is_none() && c.ops.metrics_token.is_none());
            jail.set_env("LOG_RETENTION_DAYS", "0");
            jail.set_env("LOG_FORMAT", "json");
            jail.set_env("METRICS_TOKEN", "12345");
            jail.set_env("DB_CHECKPOINT", "external");
            let c = load(None).unwrap();
            assert_eq!(c.ops.log_retention, None);
            assert_eq!(c.ops.log_format, LogFormat::Json);
            assert_eq!(c.ops.db_checkpoint, Checkpointing::External);
            assert_eq!(c.ops.metrics_token.unwrap().0, "12345");
            Ok(())
        });
    }

    /// Every key whose value is text (or a secret): what the environment gives must arrive
    /// character for character.
    const TEXT_KEYS: &[&str] = &[
        "listen_addr",
        "database_path",
        "http_auth_username",
        "http_auth_password",
        "qiwi_check_url",
        "account_pattern",
        "min_sum",
        "max_sum",
        "qiwi_webhook_url",
        "webhook_secret",
        "admin_username",
        "admin_password",
        "metrics_token",
        "log_format",
        "db_checkpoint",
        "tls_cert_file",
        "tls_key_file",
        "acme_domains",
        "acme_email",
        "acme_directory_url",
        "acme_cache_dir",
        "acme_ca_file",
        "qiwi_allowed_ips",
        "trusted_proxies",
        "webhook_success_statuses",
        "reconcile_columns",
        "display_timezone",
        "display_locale",
        "pg_host",
        "pg_real_host",
        "pg_port",
        "pg_database",
        "pg_schema",
        "pg_user",
        "pg_password",
    ];

    /// The forms figment's own env provider changed: leading zeros, signs, decimals,
    /// quotes, brackets, booleans, padding, exponents, TOML-looking tables.
    const ODD_FORMS: &[&str] = &[
        "000000123456",
        "+5",
        "12.50",
        "\"quoted\"",
        "'single'",
        "[a,b]",
        "{a=1}",
        " padded ",
        "1e3",
        "0x10",
        "-0",
        "true",
        "12345",
        "",
    ];

    #[test]
    fn every_text_and_secret_key_is_read_verbatim_from_the_environment() {
        for key in TEXT_KEYS {
            assert!(KEYS.contains(key), "{key}");
            for form in ODD_FORMS {
                Jail::expect_with(|jail| {
                    jail.set_env(key.to_uppercase(), form);
                    let raw: RawConfig = figment(None).extract().map_err(|e| e.to_string())?;
                    let json = serde_json::to_value(&raw).unwrap();
                    let got = match &json[key] {
                        serde_json::Value::Array(items) => items[0].as_str().map(str::to_owned),
                        v => v.as_str().map(str::to_owned),
                    };
                    assert_eq!(got.as_deref(), Some(*form), "{key}={form:?}");
                    Ok(())
                });
            }
        }
        // Every other key is typed: it refuses text, so none was forgotten above.
        for key in KEYS.iter().filter(|k| !TEXT_KEYS.contains(k)) {
            Jail::expect_with(|jail| {
                jail.set_env(key.to_uppercase(), "some text");
                assert!(figment(None).extract::<RawConfig>().is_err(), "{key}");
                Ok(())
            });
        }
    }

    #[test]
    fn odd_forms_of_secrets_survive_validation() {
        for form in [
            "000000123456",
            "+5555555555555",
            "12.50000000000",
            "\"quoted-secret\"",
            "[a,b]-long-secret",
        ] {
            Jail::expect_with(|jail| {
                jail.set_env("HTTP_AUTH_USERNAME", "qiwi");
                jail.set_env("HTTP_AUTH_PASSWORD", form);
                jail.set_env("ADMIN_PASSWORD", form);
                jail.set_env("METRICS_TOKEN", form);
                let c = load(None).unwrap();
                assert_eq!(c.qiwi.http_auth.unwrap().password.0, form);
                assert_eq!(c.admin.password.unwrap().0, form);
                assert_eq!(c.ops.metrics_token.unwrap().0, form);
                Ok(())
            });
        }
    }

    #[test]
    fn typed_keys_from_the_environment_still_parse_and_errors_say_the_fix() {
        Jail::expect_with(|jail| {
            jail.set_env("CHECK_TIMEOUT_SECS", "7");
            jail.set_env("PAYMENTS_ENABLED", "false");
            jail.set_env("WEBHOOK_MAX_ATTEMPTS", "3");
            let c = load(None).unwrap();
            assert_eq!(c.check.timeout, Duration::from_secs(7));
            assert!(!c.qiwi.payments_enabled);
            assert_eq!(c.webhook.max_attempts, Some(3));
            Ok(())
        });
        let m = error_of(|j| {
            j.set_env("PAYMENTS_ENABLED", "1");
            Ok(None)
        });
        assert_eq!(
            m,
            "invalid `payments_enabled` (env PAYMENTS_ENABLED): `1` is not a boolean: use true or false"
        );
        let m = error_of(|j| {
            j.set_env("PAYMENTS_ENABLED", "yes");
            Ok(None)
        });
        assert!(
            m.contains("`yes` is not a boolean: use true or false"),
            "{m}"
        );
        let m = error_of(|j| {
            j.set_env("CHECK_TIMEOUT_SECS", "+5");
            Ok(None)
        });
        assert!(m.contains("`+5` is not a whole number"), "{m}");
        let m = error_of(|j| {
            j.create_file("c.toml", "payments_enabled = \"yes\"")?;
            Ok(Some("c.toml"))
        });
        assert!(
            m.contains("(file c.toml)") && m.contains("use true or false"),
            "{m}"
        );
    }

    #[test]
    fn errors_name_the_real_source_of_the_value() {
        let m = error_of(|j| {
            j.create_file("c.toml", "min_sum = \"abc\"")?;
            Ok(Some("c.toml"))
        });
        assert!(m.contains("invalid `min_sum` (file c.toml)"), "{m}");
        assert!(!m.contains("env"), "{m}");
        let m = error_of(|j| {
            j.create_file("c.toml", "min_sum = \"5\"")?;
            j.set_env("MIN_SUM", "abc");
            Ok(Some("c.toml"))
        });
        assert!(m.contains("invalid `min_sum` (env MIN_SUM)"), "{m}");
        let m = error_of(|j| {
            j.create_file("c.toml", "check_timeout_secs = \"soon\"")?;
            Ok(Some("c.toml"))
        });
        assert!(m.contains("`check_timeout_secs` (file c.toml)"), "{m}");
    }

    #[test]
    fn a_host_name_as_listen_addr_is_explained() {
        let m = error_of(|j| {
            j.set_env("LISTEN_ADDR", "localhost:8080");
            Ok(None)
        });
        assert!(
            m.contains("a host name is not accepted") && m.contains("127.0.0.1:8080"),
            "{m}"
        );
        let m = error_of(|j| {
            j.set_env("LISTEN_ADDR", "127.0.0.1");
            Ok(None)
        });
        assert!(m.contains("has no port"), "{m}");
        let m = error_of(|j| {
            j.set_env("LISTEN_ADDR", "127.0.0.1:http");
            Ok(None)
        });
        assert!(m.contains("is not a port"), "{m}");
    }

    #[test]
    fn admin_password_follows_the_set_password_rule() {
        let m = error_of(|j| {
            j.set_env("ADMIN_PASSWORD", "x");
            Ok(None)
        });
        assert!(
            m.contains("admin_password") && m.contains("at least 12"),
            "{m}"
        );
        assert!(!m.contains("`x`"), "{m}");
        Jail::expect_with(|jail| {
            jail.set_env("ADMIN_PASSWORD", "twelve chars");
            assert!(load(None).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_malformed_whsec_secret_is_refused_without_printing_it() {
        let m = error_of(|j| {
            j.set_env("WEBHOOK_SECRET", "whsec_not*base64!");
            Ok(None)
        });
        assert!(
            m.contains("webhook_secret") && m.contains("WEBHOOK_SECRET"),
            "{m}"
        );
        assert!(!m.contains("not*base64"), "{m}");
    }

    #[test]
    fn secrets_are_not_printed() {
        Jail::expect_with(|jail| {
            jail.set_env("HTTP_AUTH_USERNAME", "u");
            jail.set_env("HTTP_AUTH_PASSWORD", "hunter2");
            jail.set_env("WEBHOOK_SECRET", "whsec-value");
            jail.set_env("METRICS_TOKEN", "metrics-tok3n");
            jail.set_env("ADMIN_PASSWORD", "admin-passw0rd-long");
            jail.set_env(
                "QIWI_WEBHOOK_URL",
                "http://hookuser:hookpass@h/hook?token=hooktok",
            );
            jail.set_env(
                "QIWI_CHECK_URL",
                "http://chkuser:chkpass@h/check?token=chktok#frag1",
            );
            let c = load(None).unwrap();
            let printed = format!("{c:?}");
            for secret in [
                "hunter2",
                "whsec-value",
                "metrics-tok3n",
                "admin-passw0rd-long",
                "hookuser",
                "hookpass",
                "hooktok",
                "chkuser",
                "chkpass",
                "chktok",
                "frag1",
            ] {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
            assert!(
                printed.contains("http://***:***@h/hook?token=***"),
                "{printed}"
            );
            Ok(())
        });
    }
}
