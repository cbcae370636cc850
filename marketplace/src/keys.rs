//! Publisher keys: ed25519 key pairs in a text form people can paste.
//!
//! - A public key is `ed25519:<base64 of 32 bytes>`.
//! - A secret key file holds `ed25519-secret:<base64 of the 32-byte seed>` on one line.
//! - A key's id is the first 16 hex digits of the SHA-256 of its public key bytes; packages name
//!   the key that signed them by this id.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::Digest;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// A publisher's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:<base64>`.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let text = text.trim();
        let b64 = text.strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            KeyError(format!(
                "a public key starts with `{PUBLIC_PREFIX}` followed by base64 (as `hub keys generate` prints it)"
            ))
        })?;
        let bytes: [u8; 32] = B64
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError("the public key is not 32 bytes of base64".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError("the public key is not a valid ed25519 point".into()))
    }

    /// The 16-hex-digit id packages name this key by.
    pub fn key_id(&self) -> String {
        hex::encode(&sha2::Sha256::digest(self.0.as_bytes())[..8])
    }

    /// Whether `signature` (64 bytes) is this key's signature of `message` (strict verification:
    /// no malleable or small-order forms).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

/// A publisher's secret key. Its `Debug` form never shows the secret.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().key_id())
    }
}

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// Parses the one-line secret form (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            KeyError(format!(
                "a secret key file holds `{SECRET_PREFIX}` followed by base64 (written by `hub keys generate`)"
            ))
        })?;
        let seed: [u8; 32] = B64
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError("the secret key is not 32 bytes of base64".into()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The one-line secret form, for a key file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let k = SecretKey::generate();
        let again = SecretKey::parse(&k.to_text()).unwrap();
        assert_eq!(again.public(), k.public());
        let public = PublicKey::parse(&k.public().to_string()).unwrap();
        assert_eq!(public.key_id().len(), 16);
        let sig = k.sign(b"hello");
        assert!(public.verifies(b"hello", &sig));
        assert!(!public.verifies(b"hellO", &sig));
        assert!(!public.verifies(b"hello", &sig[..63]));
        let other = SecretKey::generate().public();
        assert!(!other.verifies(b"hello", &sig));
        assert!(!format!("{k:?}").contains(&k.to_text()));
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert!(
            PublicKey::parse("rsa:abc")
                .unwrap_err()
                .0
                .contains("ed25519:")
        );
        assert!(
            PublicKey::parse("ed25519:abc")
                .unwrap_err()
                .0
                .contains("32 bytes")
        );
        assert!(
            SecretKey::parse("ed25519:AAAA")
                .unwrap_err()
                .0
                .contains("ed25519-secret:")
        );
    }
}
