//! Configuration: built-in defaults < `config.toml` < environment variables, validated at
//! start into real types. Every key's environment variable is its name in upper case
//! (`listen_addr` ↔ `LISTEN_ADDR`), which keeps the original product's names
//! (`HTTP_AUTH_USERNAME`, `QIWI_CHECK_URL`, ...).
//!
//! Environment values are read verbatim ([`VerbatimEnv`]): figment's own `Env` provider parses
//! them as TOML-ish values, so `HTTP_AUTH_PASSWORD=000000123456` became `123456` and
//! `"quoted"` lost its quotes. Errors name where the bad value came from (the file and key, or
//! the environment variable).
//!
//! This is the composition layer's module: [`Config`] is made of the sections the modules own
//! (`http::ServerSettings`, `qiwi::Settings`, `qiwi::check::Settings`, `webhook::Settings`,
//! `admin::Settings`, `ops::Settings`); only `main`, `app`, `state` and the CLI import it.
//! Here: loading (figment, [`VerbatimEnv`], [`origin`]); `raw.rs` the keys and defaults;
//! `validate.rs` the keys turned into sections.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::admin;
use crate::http::ServerSettings;
use crate::qiwi;
use crate::webhook;

mod raw;
mod validate;

pub use raw::{IpList, KEYS, RawConfig, SECRET_KEYS, Text};

// Types of the sections that tests name, at the paths they had when they were defined here.
pub use crate::admin::DisplayLocale;
pub use crate::http::BasicAuth;
pub use crate::ops::Checkpointing;
pub use crate::ops::tls::TlsFiles;
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

/// Environment variables that look like a misspelled key's variable and are not one: pairs of
/// (the name set, the key's variable it is closest to). A name within Levenshtein distance 1
/// of a key's variable counts, or 2 for names of 10 characters or more; names under 6
/// characters never do (`HOME`, `TERM`, `TZ`). The gateway reads only exact names, so without
/// this `MAX_SUMM=5` would be ignored silently (a file's unknown key stops the start instead).
pub fn misspelled_env<S: AsRef<str>>(names: &[S]) -> Vec<(String, String)> {
    let known: Vec<String> = KEYS.iter().map(|k| k.to_ascii_uppercase()).collect();
    let mut found = Vec::new();
    for name in names {
        let name = name.as_ref();
        if name.len() < 6 || known.iter().any(|k| k == name) {
            continue;
        }
        let most = if name.len() >= 10 { 2 } else { 1 };
        let closest = known
            .iter()
            .map(|k| (strsim::levenshtein(name, k), k))
            .filter(|(d, _)| *d <= most)
            .min_by_key(|(d, _)| *d);
        if let Some((_, key)) = closest {
            found.push((name.to_owned(), key.clone()));
        }
    }
    found.sort();
    found
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

// figment's Jail fixes the closures' error type, which clippy finds large.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests;
