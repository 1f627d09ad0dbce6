//! Configuration: built-in defaults < `config.toml` < environment variables, validated at
//! start into real types. Every key's environment variable is its name in upper case
//! (`listen_addr` ↔ `LISTEN_ADDR`), which keeps the original product's names
//! (`HTTP_AUTH_USERNAME`, `QIWI_CHECK_URL`, ...).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::qiwi::Amount;

/// The default `account_pattern`: 1-200 characters, none of them whitespace or control.
pub const DEFAULT_ACCOUNT_PATTERN: &str = r"^[^\s\p{Cc}]{1,200}$";

/// A configuration problem, named by its key, as printed before the program stops.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read into the configuration's shape.
    #[error("{0}")]
    Load(String),
    /// A value has the right shape but is not usable.
    #[error("invalid `{key}` (env {env}): {reason}")]
    Invalid {
        /// The key in `config.toml`.
        key: &'static str,
        /// Its environment variable.
        env: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The configuration as written in the file and the environment, before validation.
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
    display_timezone: Text,
    display_locale: Text,
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
            max_sum: None,
            payments_enabled: true,
            qiwi_webhook_url: None,
            webhook_secret: None,
            webhook_timeout_secs: 10,
            webhook_initial_delay_secs: 5,
            webhook_max_delay_secs: 3600,
            webhook_max_attempts: None,
            webhook_concurrency: 4,
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
            display_timezone: "UTC".into(),
            display_locale: "en".into(),
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
    "display_timezone",
    "display_locale",
];

/// The keys whose values are secrets: masked wherever the configuration is printed.
pub const SECRET_KEYS: &[&str] = &[
    "http_auth_password",
    "webhook_secret",
    "admin_password",
    "metrics_token",
];

/// A secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// HTTP Basic credentials QIWI must present on `/payment`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen_addr: SocketAddr,
    /// The SQLite file.
    pub database_path: PathBuf,
    /// Basic auth on `/payment`; `None` leaves it open.
    pub http_auth: Option<BasicAuth>,
    /// The merchant's account check endpoint.
    pub check_url: Option<Url>,
    /// Timeout of one call to `check_url`.
    pub check_timeout: Duration,
    /// What a valid account looks like.
    pub account_pattern: Regex,
    /// Smallest accepted sum.
    pub min_sum: Amount,
    /// Largest accepted sum, if any.
    pub max_sum: Option<Amount>,
    /// `false` answers result 7 to new payments (maintenance).
    pub payments_enabled: bool,
    /// Where payments are POSTed.
    pub webhook_url: Option<Url>,
    /// Key for Standard Webhooks signatures.
    pub webhook_secret: Option<Secret>,
    /// Timeout of one webhook attempt.
    pub webhook_timeout: Duration,
    /// Delay after the first failed attempt.
    pub webhook_initial_delay: Duration,
    /// Longest delay between attempts.
    pub webhook_max_delay: Duration,
    /// Attempts before a delivery is given up; `None` retries forever.
    pub webhook_max_attempts: Option<u32>,
    /// Deliveries in flight at once.
    pub webhook_concurrency: usize,
    /// The admin UI's user name.
    pub admin_username: String,
    /// The admin UI's password, if configured.
    pub admin_password: Option<Secret>,
    /// Mark the admin session cookie `Secure` (set it when the UI is served over HTTPS).
    pub admin_cookie_secure: bool,
    /// Who may call `/payment`; empty lets everyone.
    pub qiwi_allowed_ips: Vec<IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Bearer token `/metrics` requires; `None` leaves it open.
    pub metrics_token: Option<Secret>,
    /// `/readyz` fails when the oldest undelivered webhook is older than this.
    pub readiness_max_backlog_age: Option<Duration>,
    /// `qiwi_http_log` rows older than this are pruned; `None` keeps them forever.
    pub log_retention: Option<Duration>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Who checkpoints the WAL.
    pub db_checkpoint: Checkpointing,
    /// Longest wait for in-flight requests after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Built-in HTTPS, when a certificate and key are configured.
    pub tls: Option<TlsFiles>,
    /// Intervals of background work (not configuration keys: tests shorten them).
    pub timings: Timings,
    /// The time zone the admin UI shows and reads times in (IANA name; storage stays UTC).
    pub display_timezone: chrono_tz::Tz,
    /// How the admin UI and its CSV write amounts.
    pub display_locale: DisplayLocale,
}

/// How amounts are written for people: `en` `311,192.27 RUB`, `ru` `311 192,27 ₽`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayLocale {
    /// English (the default).
    #[default]
    En,
    /// Russian.
    Ru,
}

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Who checkpoints the SQLite write-ahead log into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointing {
    /// SQLite's automatic checkpoints plus a periodic PASSIVE one (the default).
    Auto,
    /// Nobody in the gateway: an external tool such as Litestream does it.
    External,
}

/// PEM files of the built-in HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Intervals of background work, fixed in production and shortened by tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How often the log is pruned and the database tidied.
    pub housekeeping: Duration,
    /// How often the TLS files are looked at for a change.
    pub tls_watch: Duration,
    /// How long `/readyz` waits for the database to answer a write.
    pub readiness_deadline: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            housekeeping: Duration::from_secs(600),
            tls_watch: Duration::from_secs(10),
            readiness_deadline: Duration::from_secs(2),
        }
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
    f.merge(Env::raw().only(KEYS))
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
    let raw: RawConfig = figment(file)
        .extract()
        .map_err(|e| ConfigError::Load(describe(e)))?;
    raw.validate()
}

/// One line per figment error, naming the key and its environment variable.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if let figment::error::Kind::UnknownField(name, _) = &e.kind {
                format!("unknown configuration key `{name}` (see config.toml.example)")
            } else if key.is_empty() {
                format!("configuration: {}", e.kind)
            } else {
                format!("invalid `{key}` (env {}): {}", key.to_uppercase(), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl RawConfig {
    /// Turns the raw values into real types, naming the first bad key.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            key,
            env: key.to_uppercase(),
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

        let listen_addr = self
            .listen_addr
            .0
            .parse()
            .map_err(|e| invalid("listen_addr", format!("{e} (expected host:port)")))?;
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
        let account_pattern = Regex::new(&self.account_pattern.0)
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
            crate::webhook::signing::Signer::new(&secret.0)
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
        let days = self.log_retention_days;
        let log_retention = (days > 0)
            .then(|| days.checked_mul(86_400).map(Duration::from_secs))
            .map(|d| d.ok_or_else(|| invalid("log_retention_days", "is too large".into())))
            .transpose()?;
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
        Ok(Config {
            display_timezone,
            display_locale,
            qiwi_allowed_ips: self
                .qiwi_allowed_ips
                .parse()
                .map_err(|e| invalid("qiwi_allowed_ips", e))?,
            trusted_proxies: self
                .trusted_proxies
                .parse()
                .map_err(|e| invalid("trusted_proxies", e))?,
            metrics_token: nonempty(self.metrics_token).map(Secret),
            readiness_max_backlog_age: self
                .readiness_max_backlog_age_secs
                .map(|s| secs("readiness_max_backlog_age_secs", s))
                .transpose()?,
            log_retention,
            log_format,
            db_checkpoint,
            shutdown_timeout: secs("shutdown_timeout_secs", self.shutdown_timeout_secs)?,
            tls,
            timings: Timings::default(),
            listen_addr,
            database_path: PathBuf::from(self.database_path.0),
            http_auth,
            check_url: url("qiwi_check_url", self.qiwi_check_url)?,
            check_timeout: secs("check_timeout_secs", self.check_timeout_secs)?,
            account_pattern,
            min_sum,
            max_sum,
            payments_enabled: self.payments_enabled,
            webhook_url: url("qiwi_webhook_url", self.qiwi_webhook_url)?,
            webhook_secret,
            webhook_timeout: secs("webhook_timeout_secs", self.webhook_timeout_secs)?,
            webhook_initial_delay,
            webhook_max_delay,
            webhook_max_attempts: self.webhook_max_attempts,
            webhook_concurrency: self.webhook_concurrency,
            admin_username: self.admin_username.0,
            admin_password: nonempty(self.admin_password).map(Secret),
            admin_cookie_secure: self.admin_cookie_secure,
        })
    }
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
        assert_eq!(c.display_timezone, chrono_tz::Europe::Moscow);
        assert_eq!(c.display_locale, DisplayLocale::Ru);
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
            assert_eq!(c.listen_addr, "0.0.0.0:8080".parse().unwrap());
            assert_eq!(c.database_path, PathBuf::from("data/qiwi.db"));
            assert!(c.http_auth.is_none());
            assert_eq!(c.min_sum, Amount::from_minor(1));
            assert_eq!(c.check_timeout, Duration::from_secs(10));
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
            assert_eq!(c.listen_addr, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(c.database_path, PathBuf::from("/tmp/env.db"));
            assert_eq!(c.min_sum, Amount::from_minor(150));
            let auth = c.http_auth.unwrap();
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
            jail.set_env("ADMIN_PASSWORD", "true");
            let c = load(None).unwrap();
            assert_eq!(c.min_sum, Amount::from_minor(10));
            assert_eq!(c.max_sum, Some(Amount::from_minor(1_500_000)));
            assert_eq!(c.admin_password.unwrap().0, "true");
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
                show(&c.qiwi_allowed_ips),
                ["79.142.16.0/20", "91.213.51.0/24"]
            );
            assert_eq!(
                show(&c.trusted_proxies),
                ["10.0.0.1/32", "172.16.0.0/12", "::1/128"]
            );

            jail.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,91.232.230.0/23");
            let c = load(Some(Path::new("gw.toml"))).unwrap();
            assert_eq!(
                show(&c.qiwi_allowed_ips),
                ["79.142.16.0/20", "91.232.230.0/23"]
            );

            jail.set_env("QIWI_ALLOWED_IPS", "");
            assert!(
                load(Some(Path::new("gw.toml")))
                    .unwrap()
                    .qiwi_allowed_ips
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
            assert_eq!(c.log_retention, Some(Duration::from_secs(90 * 86_400)));
            assert_eq!(c.log_format, LogFormat::Text);
            assert_eq!(c.db_checkpoint, Checkpointing::Auto);
            assert!(c.tls.is_none() && c.metrics_token.is_none());
            jail.set_env("LOG_RETENTION_DAYS", "0");
            jail.set_env("LOG_FORMAT", "json");
            jail.set_env("METRICS_TOKEN", "12345");
            jail.set_env("DB_CHECKPOINT", "external");
            let c = load(None).unwrap();
            assert_eq!(c.log_retention, None);
            assert_eq!(c.log_format, LogFormat::Json);
            assert_eq!(c.db_checkpoint, Checkpointing::External);
            assert_eq!(c.metrics_token.unwrap().0, "12345");
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
            let c = load(None).unwrap();
            let printed = format!("{c:?}");
            assert!(!printed.contains("hunter2") && !printed.contains("whsec-value"));
            Ok(())
        });
    }
}
