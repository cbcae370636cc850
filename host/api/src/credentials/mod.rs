//! Credentials and the rules about them, without HTTP: how API keys are made, found and rotated
//! (`api_keys`), what a password must be and how it is hashed (`passwords`), when failed sign-ins
//! lock an email out (`lockout`), and the secrets they share (below). The API's handlers and the
//! command line (`hub key …`, `hub user …`, the first owner of `hub serve`) both use this module,
//! so neither repeats a rule; it names nothing of axum or of the API's state (the architecture
//! test holds it to that).

pub mod api_keys;
pub mod lockout;
pub mod passwords;

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};

/// What storage keeps of a secret that has enough randomness of its own (an API key, a refresh
/// token, an invitation code): its SHA-256, as hex. No password hashing is needed for those.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether two secrets are equal, compared without an early exit so that timing tells nothing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 256 random bits after `prefix`, URL-safe.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// HMAC-SHA256 of `payload` under `key`, as hex.
pub fn hmac_hex(key: &[u8], payload: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_in_constant_time_and_tokens_differ() {
        assert!(
            constant_time_eq(b"ab", b"ab")
                && !constant_time_eq(b"ab", b"ac")
                && !constant_time_eq(b"a", b"ab")
        );
        let (a, b) = (random_token("t_"), random_token("t_"));
        assert!(a.starts_with("t_") && a.len() == 2 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_key("x").len(), 64);
        assert_ne!(hmac_hex(b"k1", "p"), hmac_hex(b"k2", "p"));
    }
}
