//! The keys as written in `config.toml` and the environment, before validation: their shape
//! ([`RawConfig`]), their built-in defaults, and the list of keys and secret keys. The names
//! are binding (the original product's variables): they change only with the spec.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::qiwi::DEFAULT_ACCOUNT_PATTERN;

/// The configuration as written in the file and the environment, before validation. A text
/// key is a [`Text`] (never a bare `String`): [`super::VerbatimEnv`] hands `PORT=8080`-like
/// values on as numbers, which `Text` takes back as the same characters and `String` would
/// refuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub(super) listen_addr: Text,
    pub(super) database_path: Text,
    pub(super) http_auth_username: Option<Text>,
    pub(super) http_auth_password: Option<Text>,
    pub(super) qiwi_check_url: Option<Text>,
    pub(super) check_timeout_secs: u64,
    pub(super) account_pattern: Text,
    pub(super) min_sum: Text,
    pub(super) max_sum: Option<Text>,
    pub(super) payments_enabled: bool,
    pub(super) qiwi_webhook_url: Option<Text>,
    pub(super) webhook_secret: Option<Text>,
    pub(super) webhook_timeout_secs: u64,
    pub(super) webhook_initial_delay_secs: u64,
    pub(super) webhook_max_delay_secs: u64,
    pub(super) webhook_max_attempts: Option<u32>,
    pub(super) webhook_concurrency: usize,
    pub(super) webhook_success_statuses: IpList,
    pub(super) admin_username: Text,
    pub(super) admin_password: Option<Text>,
    pub(super) admin_cookie_secure: bool,
    pub(super) qiwi_allowed_ips: IpList,
    pub(super) trusted_proxies: IpList,
    pub(super) metrics_token: Option<Text>,
    pub(super) readiness_max_backlog_age_secs: Option<u64>,
    pub(super) log_retention_days: u64,
    pub(super) log_format: Text,
    pub(super) db_checkpoint: Text,
    pub(super) shutdown_timeout_secs: u64,
    pub(super) tls_cert_file: Option<Text>,
    pub(super) tls_key_file: Option<Text>,
    pub(super) acme_domains: IpList,
    pub(super) acme_email: Option<Text>,
    pub(super) acme_directory_url: Text,
    pub(super) acme_cache_dir: Option<Text>,
    pub(super) acme_ca_file: Option<Text>,
    pub(super) acme_renew_before_days: u64,
    pub(super) http_header_timeout_secs: u64,
    pub(super) http_request_timeout_secs: u64,
    pub(super) http_max_connections: usize,
    pub(super) http_max_connections_per_ip: usize,
    pub(super) reconcile_columns: Option<Text>,
    pub(super) reconcile_max_upload_mib: u64,
    pub(super) display_timezone: Text,
    pub(super) display_locale: Text,
    pub(super) pg_host: Option<Text>,
    pub(super) pg_real_host: Option<Text>,
    pub(super) pg_port: Option<Text>,
    pub(super) pg_database: Option<Text>,
    pub(super) pg_schema: Option<Text>,
    pub(super) pg_user: Option<Text>,
    pub(super) pg_password: Option<Text>,
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
            http_max_connections_per_ip: 64,
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
    "http_max_connections_per_ip",
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

/// A list of addresses and CIDR blocks: a TOML array of strings, or one string of entries
/// separated by commas or spaces (as the environment gives it: `QIWI_ALLOWED_IPS=a,b`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct IpList(pub Vec<String>);

impl IpList {
    /// Parses every entry: a CIDR block (`79.142.16.0/20`) or a single address (`10.0.0.7`).
    pub(super) fn parse(&self) -> Result<Vec<IpNet>, String> {
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
