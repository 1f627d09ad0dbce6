//! What the HTTPS listener serves: the certificate's names, issuer and expiry, and any problem
//! getting or renewing it. Read by `/readyz`, `/metrics` (`qiwi_tls_certificate_expiry_seconds`)
//! and the admin dashboard; written by the file loader (`ops::tls`) and the ACME manager
//! (`ops::acme`).

use std::sync::RwLock;

use chrono::{DateTime, Utc};

/// A certificate that expires sooner than this gets a dashboard warning (Let's Encrypt's own
/// expiry mails start at 20 days; renewal normally happens at 30).
pub const EXPIRY_WARNING: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// The facts about one certificate that operations care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The DNS names (subjectAltName), or the subject's common name when it has none.
    pub names: Vec<String>,
    /// The issuer's common name (or its whole distinguished name when it has none).
    pub issuer: String,
    /// The serial number in lower-case hex.
    pub serial: String,
    /// Start of validity (notBefore).
    pub not_before: DateTime<Utc>,
    /// End of validity (notAfter).
    pub not_after: DateTime<Utc>,
}

impl CertInfo {
    /// Reads a DER certificate. Errors: not an X.509 certificate, or dates out of range.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            names.extend(
                cert.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok().map(str::to_owned)),
            );
        }
        let issuer = cert
            .issuer()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok().map(str::to_owned))
            .unwrap_or_else(|| cert.issuer().to_string());
        let time = |t: x509_parser::time::ASN1Time| {
            DateTime::from_timestamp(t.timestamp(), 0).ok_or("a validity date is out of range")
        };
        Ok(CertInfo {
            names,
            issuer,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
        })
    }

    /// Reads the first certificate of a PEM chain.
    pub fn from_pem(pem: &[u8]) -> Result<CertInfo, String> {
        use rustls_pki_types::pem::PemObject as _;
        let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or("no certificate in the PEM text")?
            .map_err(|e| format!("unreadable PEM: {e}"))?;
        CertInfo::from_der(&der)
    }
}

/// Where the served certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `tls_cert_file`/`tls_key_file`.
    Files,
    /// An ACME server (`acme_domains`).
    Acme,
}

impl Source {
    /// The word used in metrics labels and messages: `file` or `acme`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Files => "file",
            Source::Acme => "acme",
        }
    }
}

/// The state of the HTTPS certificate at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `None` when the gateway serves plain HTTP.
    pub source: Option<Source>,
    /// The certificate served, once there is a real one.
    pub served: Option<CertInfo>,
    /// ACME only: a self-signed stand-in is served because no certificate was obtained yet.
    pub placeholder: bool,
    /// ACME only: the names a certificate is wanted for (`acme_domains`).
    pub wanted: Vec<String>,
    /// The last failure getting or renewing the certificate, cleared by the next success.
    pub problem: Option<String>,
    /// ACME only: when the next renewal (or retry) is due.
    pub next_attempt: Option<DateTime<Utc>>,
}

/// The shared, updatable [`Snapshot`].
#[derive(Debug, Default)]
pub struct TlsStatus(RwLock<Snapshot>);

impl TlsStatus {
    /// A copy of the current state.
    pub fn snapshot(&self) -> Snapshot {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Records a certificate now served from `source`, clearing any problem.
    pub fn served(&self, source: Source, info: CertInfo) {
        self.update(|s| {
            s.source = Some(source);
            s.served = Some(info);
            s.placeholder = false;
            s.problem = None;
        });
    }

    /// Seconds until the served certificate expires (negative once expired), with its source.
    pub fn seconds_left(&self, now: DateTime<Utc>) -> Option<(Source, i64)> {
        let s = self.snapshot();
        Some((s.source?, (s.served?.not_after - now).num_seconds()))
    }

    /// The `/readyz` line and whether it lets the gateway be ready: not ready while only a
    /// placeholder is served or the certificate has expired (QIWI could not connect).
    /// `None` for plain HTTP.
    pub fn readiness(&self, now: DateTime<Utc>) -> Option<(bool, String)> {
        let s = self.snapshot();
        let source = s.source?;
        let problem = s
            .problem
            .as_deref()
            .map(|p| format!("; last attempt failed: {p}"))
            .unwrap_or_default();
        let next = s
            .next_attempt
            .map(|t| format!("; next attempt {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        Some(match s.served {
            None => (
                false,
                format!(
                    "tls: no {} certificate yet for {} (a self-signed placeholder is \
                     served){problem}{next}",
                    source.as_str(),
                    s.wanted.join(", ")
                ),
            ),
            Some(c) => {
                let left = c.not_after - now;
                (
                    left > chrono::TimeDelta::zero(),
                    format!(
                        "tls: {} certificate for {} from {}, expires {} ({} days){problem}{next}",
                        source.as_str(),
                        c.names.join(", "),
                        c.issuer,
                        c.not_after.format("%Y-%m-%d %H:%M:%S UTC"),
                        left.num_days()
                    ),
                )
            }
        })
    }

    /// The dashboard warning: no certificate yet, expiry within [`EXPIRY_WARNING`], or a
    /// failing ACME renewal. `None` when all is well.
    pub fn warning(&self, now: DateTime<Utc>) -> Option<String> {
        let s = self.snapshot();
        let source = s.source?;
        let problem = s
            .problem
            .as_deref()
            .map(|p| format!(" The last attempt failed: {p}."))
            .unwrap_or_default();
        match (&s.served, source) {
            (None, _) => Some(format!(
                "HTTPS has no certificate from the ACME server yet: a self-signed placeholder \
                 is served, which QIWI will refuse.{problem} Check that acme_domains resolve \
                 to this host and that port 443 reaches the gateway."
            )),
            (Some(c), _) if c.not_after - now < EXPIRY_WARNING => {
                let fix = match source {
                    Source::Files => {
                        "Renew it and replace tls_cert_file/tls_key_file (reloaded on change)."
                    }
                    Source::Acme => "The gateway keeps retrying the renewal.",
                };
                Some(format!(
                    "The HTTPS certificate for {} expires {} ({} days left).{problem} {fix}",
                    c.names.join(", "),
                    c.not_after.format("%Y-%m-%d %H:%M UTC"),
                    (c.not_after - now).num_days()
                ))
            }
            (Some(_), Source::Acme) if s.problem.is_some() => Some(format!(
                "Renewing the HTTPS certificate failed; the current one is still served and \
                 the gateway retries.{problem}"
            )),
            _ => None,
        }
    }
}

/// Reads the certificate file just loaded and records it (`problem` is left as it is when the
/// file does not parse: rustls accepted it, so it is served regardless).
pub fn note_file(status: &TlsStatus, path: &std::path::Path) {
    match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|pem| CertInfo::from_pem(&pem))
    {
        Ok(info) => status.served(Source::Files, info),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "cannot read the expiry of the TLS certificate"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(days_left: i64, now: DateTime<Utc>) -> CertInfo {
        CertInfo {
            names: vec!["pay.example".into()],
            issuer: "R11".into(),
            serial: "01".into(),
            not_before: now - chrono::TimeDelta::days(60),
            not_after: now + chrono::TimeDelta::days(days_left),
        }
    }

    #[test]
    fn warns_only_when_expiry_is_near_or_renewal_fails() {
        let now = Utc::now();
        let status = TlsStatus::default();
        assert_eq!(status.warning(now), None);
        assert_eq!(status.readiness(now), None);
        status.served(Source::Files, info(30, now));
        assert_eq!(status.warning(now), None);
        assert!(status.readiness(now).unwrap().0);
        status.served(Source::Files, info(13, now));
        let w = status.warning(now).unwrap();
        assert!(
            w.contains("13 days left") && w.contains("tls_cert_file"),
            "{w}"
        );
        status.served(Source::Files, info(-1, now));
        assert!(!status.readiness(now).unwrap().0);

        status.served(Source::Acme, info(60, now));
        assert_eq!(status.warning(now), None);
        status.update(|s| s.problem = Some("connection refused".into()));
        let w = status.warning(now).unwrap();
        assert!(w.contains("connection refused"), "{w}");
        let (ready, line) = status.readiness(now).unwrap();
        assert!(ready && line.contains("connection refused"), "{line}");

        let waiting = TlsStatus::default();
        waiting.update(|s| {
            s.source = Some(Source::Acme);
            s.placeholder = true;
        });
        assert!(!waiting.readiness(now).unwrap().0);
        assert!(waiting.warning(now).unwrap().contains("placeholder"));
    }

    #[test]
    fn reads_names_issuer_and_dates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["pay.example".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_pem(cert.pem().as_bytes()).unwrap();
        assert_eq!(info.names, ["pay.example"]);
        assert_eq!(info.issuer, "rcgen self signed cert");
        assert_eq!(info.not_after.format("%Y-%m-%d").to_string(), "2031-01-02");
        assert!(CertInfo::from_pem(b"nothing").is_err());
    }
}
