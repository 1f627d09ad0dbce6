//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! A signature is `v1,` followed by the standard base64 of
//! HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}").

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix that marks a secret as base64-encoded key bytes, per the spec.
const WHSEC_PREFIX: &str = "whsec_";

/// Why a webhook secret could not be turned into a signing key.
///
/// Messages never include any part of the secret, because they end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret is the empty string.
    #[error("webhook secret is empty")]
    Empty,
    /// The secret has the `whsec_` prefix but the rest is not standard base64.
    // The decoder's own error is deliberately dropped: it names the offending
    // byte and its offset, which would leak part of the secret.
    #[error("webhook secret starts with `whsec_` but the rest is not valid standard base64")]
    InvalidBase64,
    /// The secret has the `whsec_` prefix but decodes to zero key bytes.
    #[error("webhook secret starts with `whsec_` but decodes to an empty key")]
    EmptyKey,
}

/// Signs webhook payloads with one secret, following Standard Webhooks.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    /// Builds a signer from a secret.
    ///
    /// A secret starting with `whsec_` carries the key as standard base64 after
    /// the prefix; any other secret is used as raw UTF-8 key bytes.
    pub fn new(secret: &str) -> Result<Signer, SecretError> {
        let key = match secret.strip_prefix(WHSEC_PREFIX) {
            Some(encoded) => {
                let key = STANDARD
                    .decode(encoded)
                    .map_err(|_| SecretError::InvalidBase64)?;
                if key.is_empty() {
                    return Err(SecretError::EmptyKey);
                }
                key
            }
            None if secret.is_empty() => return Err(SecretError::Empty),
            None => secret.as_bytes().to_vec(),
        };
        Ok(Signer { key })
    }

    /// Returns the `webhook-signature` value `v1,<base64>` for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length, so this cannot fail");
        // Fed piecewise so the body, which may be large, is never copied.
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a credential; even its length is none of a log's business.
        f.debug_struct("Signer")
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn matches_spec_example_vector() {
        let signer = Signer::new(SPEC_SECRET).unwrap();
        assert_eq!(
            signer.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn raw_secret_uses_utf8_bytes_as_key() {
        let signer = Signer::new("my-plain-secret").unwrap();
        assert_eq!(signer.key, b"my-plain-secret");

        // Cross-check against a direct HMAC so the raw path is not just
        // "produces some string".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"my-plain-secret").unwrap();
        mac.update(b"msg_1.1700000000.hello");
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(signer.sign("msg_1", 1_700_000_000, b"hello"), expected);
    }

    #[test]
    fn raw_secret_differs_from_its_whsec_form() {
        // The same text is a different key with and without the prefix.
        let raw = Signer::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let whsec = Signer::new(SPEC_SECRET).unwrap();
        assert_ne!(
            raw.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
            whsec.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
        );
    }

    #[test]
    fn bad_base64_secret_is_rejected() {
        let err = Signer::new("whsec_not*base64!").unwrap_err();
        assert!(matches!(err, SecretError::InvalidBase64));
        assert!(!err.to_string().contains("not*base64"));
    }

    #[test]
    fn empty_secret_is_rejected() {
        assert!(matches!(Signer::new(""), Err(SecretError::Empty)));
    }

    #[test]
    fn bare_prefix_is_rejected_as_empty_key() {
        assert!(matches!(Signer::new("whsec_"), Err(SecretError::EmptyKey)));
    }

    #[test]
    fn changed_body_changes_signature() {
        let signer = Signer::new(SPEC_SECRET).unwrap();
        let original = signer.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
        let tampered = signer.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, br#"{"test": 2432232315}"#);
        assert_ne!(original, tampered);
    }

    #[test]
    fn changed_id_or_timestamp_changes_signature() {
        let signer = Signer::new(SPEC_SECRET).unwrap();
        let original = signer.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_ne!(
            original,
            signer.sign("msg_other", SPEC_TIMESTAMP, SPEC_BODY)
        );
        assert_ne!(
            original,
            signer.sign(SPEC_MSG_ID, SPEC_TIMESTAMP + 1, SPEC_BODY)
        );
    }

    #[test]
    fn debug_never_prints_key() {
        let signer = Signer::new("super-secret-value").unwrap();
        let shown = format!("{signer:?}");
        assert!(!shown.contains("super-secret-value"));
        assert!(!shown.contains(&format!("{:?}", signer.key)));
        assert!(shown.contains("redacted"));
    }
}
