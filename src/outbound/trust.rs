//! The CA certificates outbound `https` calls (account check, webhook) trust.
//!
//! Read once per process, the OpenSSL way but never fatal: the system store (the
//! distribution's bundle file and certificate directory, as found by `openssl-probe`) plus
//! `SSL_CERT_FILE` (one PEM file) and `SSL_CERT_DIR` (`:`-separated directories of PEM files).
//! Unlike OpenSSL the two variables add to the system store instead of replacing it, so a
//! merchant's private CA is trusted beside the public roots. An empty store is not an error:
//! the gateway starts, warns once, and each `https` attempt fails as a `tls` failure that the
//! webhook schedule retries (see [`warn_if_untrusted`]).
//!
//! No compiled-in Mozilla bundle (webpki-roots) as a fallback: it would age with the binary
//! (no distrust of a compromised CA until the next release) and silently differ from the trust
//! store the operator manages; the image carries Debian's `ca-certificates` instead.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustls_pki_types::CertificateDer;
use url::Url;

/// `SSL_CERT_FILE`: one PEM file of CA certificates, added to the system store.
pub const ENV_CERT_FILE: &str = "SSL_CERT_FILE";
/// `SSL_CERT_DIR`: `:`-separated directories of PEM files, added to the system store.
pub const ENV_CERT_DIR: &str = "SSL_CERT_DIR";

/// A set of trust anchors and what went wrong while reading them.
#[derive(Debug, Default, Clone)]
pub struct Roots {
    /// The usable CA certificates (DER, each parsed once as a trust anchor), deduplicated.
    pub certs: Vec<CertificateDer<'static>>,
    /// The files and directories read, in order.
    pub sources: Vec<PathBuf>,
    /// Problems worth a warning: a variable naming a missing file, a file without a usable
    /// certificate. Each one line naming the path.
    pub problems: Vec<String>,
}

impl Roots {
    /// Reads the system store plus `cert_file` and `cert_dirs` (the values of `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR`, passed in so tests need not touch the process environment).
    /// Never fails: what cannot be read is a [`Roots::problems`] line.
    pub fn load(cert_file: Option<&Path>, cert_dirs: &[PathBuf]) -> Roots {
        let mut roots = Roots::default();
        // The system's bundle file, and its certificate directories (never the environment's:
        // probe() would pick SSL_CERT_FILE up, and it is read below with its own checks).
        let system_file = openssl_probe::probe()
            .cert_file
            .filter(|f| Some(f.as_path()) != cert_file);
        if let Some(f) = system_file {
            roots.read(Some(&f), None, None);
        }
        for d in openssl_probe::candidate_cert_dirs() {
            roots.read(None, Some(d), None);
        }
        if let Some(f) = cert_file {
            roots.read(Some(f), None, Some(ENV_CERT_FILE));
        }
        for d in cert_dirs {
            roots.read(None, Some(d), Some(ENV_CERT_DIR));
        }
        roots
            .certs
            .sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        roots.certs.dedup();
        roots
    }

    /// The process's trust store, read on first use (the environment's `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR`, empty values ignored).
    pub fn system() -> &'static Roots {
        static ROOTS: OnceLock<Roots> = OnceLock::new();
        ROOTS.get_or_init(|| {
            let file = std::env::var_os(ENV_CERT_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            let dirs: Vec<PathBuf> = std::env::var_os(ENV_CERT_DIR)
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Roots::load(file.as_deref(), &dirs)
        })
    }

    /// Adds what `file` or `dir` holds; `var` names the variable that asked for it (then a
    /// missing path or an empty file is a problem; a missing system path is not).
    fn read(&mut self, file: Option<&Path>, dir: Option<&Path>, var: Option<&str>) {
        let Some(path) = file.or(dir) else { return };
        if var.is_some() && !path.exists() {
            self.problems.push(format!(
                "{}={}: no such {}; its certificates are not trusted",
                var.unwrap_or_default(),
                path.display(),
                if file.is_some() { "file" } else { "directory" }
            ));
            return;
        }
        let found = rustls_native_certs::load_certs_from_paths(file, dir);
        self.sources.push(path.to_path_buf());
        for e in &found.errors {
            self.problems.push(format!("{}: {e}", path.display()));
        }
        let mut anchors = rustls::RootCertStore::empty();
        let (usable, _unusable) = anchors.add_parsable_certificates(found.certs.iter().cloned());
        if let Some(var) = var.filter(|_| usable == 0 && found.errors.is_empty()) {
            self.problems.push(format!(
                "{var}={}: no PEM CA certificate in it; nothing added to the trust store",
                path.display()
            ));
        }
        // Keep only what parses as a trust anchor: reqwest refuses to build a client with one
        // that does not, and one bad file must not stop the gateway.
        self.certs.extend(
            found
                .certs
                .into_iter()
                .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok()),
        );
    }
}

/// A `rustls`-backed reqwest builder trusting exactly `roots` (possibly none: then every
/// `https` call fails its handshake, and building still succeeds).
pub fn apply(builder: reqwest::ClientBuilder, roots: &Roots) -> reqwest::ClientBuilder {
    builder.tls_certs_only(
        roots
            .certs
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c).ok()),
    )
}

/// Logs, once at start, what makes `https` calls to `urls` fail: each trust-store problem, and
/// a warning when an `https` URL is configured but no CA certificate was found. The gateway
/// still starts; such attempts fail as `tls` and are retried.
pub fn warn_if_untrusted<'a>(urls: impl IntoIterator<Item = &'a Url>) {
    let roots = Roots::system();
    let https = urls.into_iter().any(|u| u.scheme() == "https");
    if !https {
        return;
    }
    for p in &roots.problems {
        tracing::warn!("trust store: {p}");
    }
    if roots.certs.is_empty() {
        tracing::warn!(
            "no CA certificates found (looked in {}): https calls to the check or webhook URL \
             will fail as `tls` and be retried; install the ca-certificates package or point \
             SSL_CERT_FILE at a PEM bundle",
            if roots.sources.is_empty() {
                "the system store".to_owned()
            } else {
                roots
                    .sources
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    } else {
        tracing::info!(
            certificates = roots.certs.len(),
            "trusting CA certificates for https calls"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn ssl_cert_file_adds_to_the_system_store() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca_pem()).unwrap();
        let system = Roots::load(None, &[]);
        let with = Roots::load(Some(&file), &[]);
        assert_eq!(with.certs.len(), system.certs.len() + 1, "{with:?}");
        assert!(with.problems.is_empty(), "{:?}", with.problems);
        assert!(with.sources.contains(&file));
    }

    #[test]
    fn ssl_cert_dir_adds_every_file_in_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pem"), ca_pem()).unwrap();
        std::fs::write(dir.path().join("b.pem"), ca_pem()).unwrap();
        let system = Roots::load(None, &[]);
        let with = Roots::load(None, &[dir.path().to_path_buf()]);
        assert_eq!(with.certs.len(), system.certs.len() + 2);
    }

    #[test]
    fn a_missing_or_empty_file_is_a_problem_line_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let r = Roots::load(Some(&missing), &[]);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("SSL_CERT_FILE=") && r.problems[0].contains("nope.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let r = Roots::load(Some(&empty), &[]);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("no PEM CA certificate"));
    }

    #[test]
    fn a_client_builds_with_no_roots_at_all() {
        let none = Roots::default();
        let client = apply(reqwest::Client::builder(), &none).build();
        assert!(client.is_ok(), "{client:?}");
    }
}
