//! Validation: the raw keys turned into the sections of [`Config`], each of the type its
//! module owns, naming the first bad key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{Config, ConfigError, IpList, RawConfig, Text};
use crate::admin::{self, DisplayLocale};
use crate::http::{BasicAuth, ServerSettings};
use crate::import::OriginalPg;
use crate::ops::tls::TlsFiles;
use crate::ops::{Checkpointing, LogFormat, Timings};
use crate::qiwi::{self, Amount, anchored_pattern};
use crate::secret::Secret;
use crate::webhook;

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
            (Some(username), Some(password)) => {
                basic_user(&username).map_err(|r| invalid("http_auth_username", r))?;
                if password.chars().any(char::is_control) {
                    // The password itself is never printed.
                    return Err(invalid(
                        "http_auth_password",
                        "contains a control character (a carriage return from a Windows line \
                         ending?): Basic credentials must not (RFC 7617 section 2), so QIWI \
                         could never send it; remove it"
                            .into(),
                    ));
                }
                Some(BasicAuth {
                    username,
                    password: Secret(password),
                })
            }
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
        // A QIWI sum is a positive amount: on check and getInfo 0 means "not known yet", never
        // a payment (shared spec qiwi-protocol.md, "Parameters", `sum`; README, "The protocol
        // in short"). Below one kopeck a pay of 0 would be stored and answered 0.
        if min_sum < Amount::from_minor(1) {
            return Err(invalid(
                "min_sum",
                format!(
                    "`{}` is below 0.01: a QIWI sum is positive (0 means \"not known yet\", \
                     never a payment), and with it a pay of 0 would be stored and answered 0",
                    self.min_sum.0.escape_debug()
                ),
            ));
        }
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
            max_connections_per_ip: self.http_max_connections_per_ip,
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
        let metrics_token = nonempty(self.metrics_token);
        if metrics_token
            .as_deref()
            .is_some_and(|t| t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            // The token itself is never printed.
            return Err(invalid(
                "metrics_token",
                "contains a space or a control character: a Bearer token cannot (RFC 6750 \
                 section 2.1, b64token), so no scraper could send it; remove it"
                    .into(),
            ));
        }
        let ops = crate::ops::Settings {
            database_path: PathBuf::from(self.database_path.0),
            metrics_token: metrics_token.map(Secret),
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

/// Checks `http_auth_username` is a user name HTTP Basic auth can carry (RFC 7617 section 2):
/// no `:` (the first colon ends the user-id, so such a name never matches and every request
/// would be answered 401), no control character, and no space at either end (values are
/// taken verbatim, so a space copied into an env file would be required of QIWI too; refused
/// rather than warned, because a warning scrolls by while every payment is refused).
fn basic_user(name: &str) -> Result<(), String> {
    let shown = name.escape_debug();
    if name.contains(':') {
        return Err(format!(
            "`{shown}` contains `:`, which a Basic auth user name cannot (RFC 7617 section 2: \
             the first colon ends it), so every request would be refused with 401; choose a \
             name without `:`"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "`{shown}` contains a control character, which Basic credentials must not (RFC 7617 \
             section 2); remove it"
        ));
    }
    if name.trim() != name {
        return Err(format!(
            "`{shown}` begins or ends with white space (values are taken verbatim, so QIWI \
             would have to send it too); remove it"
        ));
    }
    Ok(())
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
