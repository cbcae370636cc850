//! People's passwords: what a new one must be, argon2id hashing off the async threads, and the
//! one-time passwords an admin or operator hands out (changed at first sign-in).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Shortest and longest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 256;

/// The argon2id hash of `password` (PHC string). CPU-heavy: call from a blocking thread.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>())
        .expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches `phc`. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Runs the password work off the async threads.
pub async fn hash_password_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .expect("hashing does not panic")
}

pub async fn verify_password_async(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            // Same work for an unknown user as for a known one: no timing oracle on emails.
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Why a new password is refused, or `None` if it is acceptable.
pub fn password_problem(password: &str, email: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Some(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.eq_ignore_ascii_case(email) {
        return Some("must not be the email address".into());
    }
    None
}

/// A random password for a first login (must be changed), 20 characters.
pub fn one_time_password() -> String {
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            char::from(
                b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
                    [rng.random_range(0..56)],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_eq!(
            password_problem("short", "a@b.c").unwrap(),
            "must be at least 12 characters"
        );
        assert!(password_problem("a@example.COM", "a@example.com").is_some());
        assert!(password_problem(&"x".repeat(300), "a@b.c").is_some());
        assert!(password_problem("a long enough one", "a@b.c").is_none());
        let p = one_time_password();
        assert_eq!(p.len(), 20);
        assert!(password_problem(&p, "a@b.c").is_none());
    }
}
