//! The admin credentials: argon2 hashing and checking, the generated first password, and the
//! password `admin set-password` stores. Free of axum: the CLI uses it without the web layer.

use std::net::{IpAddr, SocketAddr};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Settings;
use crate::admin::AdminState;
use crate::db::{self, Db, DbError, sessions as q};

/// Length of a generated admin password (alphanumeric: about 143 bits).
const GENERATED_PASSWORD_LEN: usize = 24;

/// Why resolving, storing or checking the admin password failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The database failed.
    #[error("database: {0}")]
    Db(DbError),
    /// Hashing or checking a password failed, or a new one was refused (too short).
    #[error("password hash: {0}")]
    Hash(String),
}

// By hand, not `#[from]`: that would also make the DbError the `source()`, and a printed
// chain would say it twice.
impl From<DbError> for PasswordError {
    fn from(e: DbError) -> PasswordError {
        PasswordError::Db(e)
    }
}

/// The one admin account: its user name and the argon2 hash of its password.
#[derive(Clone)]
pub(super) struct Credentials {
    username: String,
    password_hash: String,
}

/// Where the admin UI is served, for its URL in the generated password's log line.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// The address the server listens on (the bound one once known, else `listen_addr`).
    pub addr: SocketAddr,
    /// Whether it serves HTTPS itself.
    pub https: bool,
}

/// Resolves the credentials on the first start (generating, storing and logging a password
/// when none is configured), so the generated one is printed before anyone asks for it.
/// `served` is where the server listens, for the admin URL in that log line; the credentials
/// are kept in `admin`, the hash in `db`, and `settings` gives `admin_username`/`admin_password`.
pub async fn init(
    admin: &AdminState,
    db: &Db,
    settings: &Settings,
    served: Served,
) -> Result<(), PasswordError> {
    credentials(admin, db, settings, served).await.map(|_| ())
}

/// The credentials kept in `admin`, resolved on first use ([`init`]).
pub(super) async fn credentials<'a>(
    admin: &'a AdminState,
    db: &Db,
    settings: &Settings,
    served: Served,
) -> Result<&'a Credentials, PasswordError> {
    admin
        .credentials
        .get_or_try_init(|| load_credentials(db, settings, served))
        .await
}

async fn load_credentials(
    db: &Db,
    settings: &Settings,
    served: Served,
) -> Result<Credentials, PasswordError> {
    let username = settings.username.clone();
    let stored = db.read(q::password_hash).await?;
    if let Some(pw) = settings.password.clone() {
        // The configured password's hash is kept like a generated one's: when the next
        // start finds a different ADMIN_PASSWORD, every session ends (operators are told to
        // recover a lost or leaked password that way).
        if let Some(hash) = stored.clone() {
            let pw = pw.clone();
            let check = hash.clone();
            if blocking(move || Ok(password_matches(&check, &pw.0))).await? {
                return Ok(Credentials {
                    username,
                    password_hash: hash,
                });
            }
        }
        let password_hash = blocking(move || hash_password(&pw.0)).await?;
        let mine = password_hash.clone();
        db.writer()
            .write(move |c| q::replace_password_hash(c, &mine, &db::now_text()))
            .await?;
        if stored.is_some() {
            tracing::warn!("ADMIN_PASSWORD changed: every admin session has been ended");
        }
        return Ok(Credentials {
            username,
            password_hash,
        });
    }
    if let Some(password_hash) = stored {
        return Ok(Credentials {
            username,
            password_hash,
        });
    }
    let password = generate_password();
    let pw = password.clone();
    let hash = blocking(move || hash_password(&pw)).await?;
    let mine = hash.clone();
    let stored = db
        .writer()
        .write(move |c| q::store_password_hash(c, &mine, &db::now_text()))
        .await?;
    if stored == hash {
        let addr = served.addr;
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if served.https { "https" } else { "http" };
        // Printed once, on purpose: only its hash is kept.
        tracing::warn!(
            "ADMIN_PASSWORD is not set: generated the admin password once. Log in at \
             {scheme}://{host}:{port}/admin as `{username}` with password `{password}` (it \
             is not shown again; set ADMIN_PASSWORD to choose your own).",
            port = addr.port(),
        );
    }
    Ok(Credentials {
        username,
        password_hash: stored,
    })
}

fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LEN)
}

/// Shortest password `admin set-password` accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Stores `password`'s hash as the admin password (replacing any stored one) and ends every
/// session, so a stolen session does not outlive the change. A configured `ADMIN_PASSWORD`
/// still wins over it.
pub async fn set_password(db: &crate::db::Db, password: String) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::Hash(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let hash = blocking(move || hash_password(&password)).await?;
    db.writer()
        .write(move |c| q::replace_password_hash(c, &hash, &db::now_text()))
        .await?;
    Ok(())
}

fn hash_password(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` is the one `hash` (a PHC string) was made from.
fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether `username`/`password` are the admin's. Always runs the slow hash, whatever the
/// user name, so the time taken does not tell whether the name was right.
pub(super) fn verify(
    c: &Credentials,
    username: &str,
    password: &str,
) -> Result<bool, PasswordError> {
    let parsed =
        PasswordHash::new(&c.password_hash).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let pass_ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let user_ok: bool = Sha256::digest(username.as_bytes())
        .ct_eq(&Sha256::digest(c.username.as_bytes()))
        .into();
    Ok(user_ok & pass_ok)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PasswordError::Db(e.into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_name_and_password() {
        let c = Credentials {
            username: "admin".into(),
            password_hash: hash_password("correct horse").unwrap(),
        };
        assert!(c.password_hash.starts_with("$argon2id$"));
        assert!(verify(&c, "admin", "correct horse").unwrap());
        assert!(!verify(&c, "admin", "correct hors").unwrap());
        assert!(!verify(&c, "root", "correct horse").unwrap());
        let g = generate_password();
        assert_eq!(g.len(), GENERATED_PASSWORD_LEN);
        assert!(g.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(g, generate_password());
    }
}
