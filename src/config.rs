//! Configuration: built-in defaults < `config.toml` < environment variables, validated at
//! start into real types. Every key's environment variable is its name in upper case
//! (`listen_addr` ↔ `LISTEN_ADDR`), which keeps the original product's names
//! (`HTTP_AUTH_USERNAME`, `QIWI_CHECK_URL`, ...).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
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
        }
    }
}

/// Every key, as accepted from the environment (in upper case).
const KEYS: &[&str] = &[
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
        Ok(Config {
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
