//! [`Secret`]: a configured secret (passwords, tokens, the webhook signing secret), kept out
//! of every printout. Its own module so the sections that hold one (webhook, HTTP auth, admin,
//! operations) need not import the configuration, which re-exports it.

use std::fmt;

/// A secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}
