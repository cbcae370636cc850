//! How password guessing is slowed without locking the owner out, and without telling anyone
//! whether an email has an account.
//!
//! Failures are counted per *email* (whatever account, if any, it names) in the database, so every
//! replica sees them and an unknown email is slowed exactly like a known one:
//! - per email and client address: 5 failures are free, then each further one blocks that pair
//!   for 1 s, 2 s, 4 s … up to 15 minutes. Guessing from one place gets slow fast; the owner,
//!   signing in from elsewhere, is not affected.
//! - per email, from every address: 20 failures are free, then the same backoff applies to every
//!   attempt *except* from a browser that signed in to that account before (the `hub_device`
//!   cookie, signed by the hub, naming the account: `throttle`). A distributed guesser is slowed;
//!   the owner's own browser still gets in, as with the "known device" rules of mature identity
//!   providers.
//!
//! A success clears both counts, and so does a password reset (by an admin or on the command
//! line); a failure a day after the last one starts again from one. The per-address token bucket
//! of sign-in (two attempts a second) comes on top.

use std::time::Duration;

use hub_storage::{Storage, StorageError};

use super::hash_key;

/// Failures from one address at one email before the backoff starts.
pub const FREE_FAILURES_PER_ADDRESS: i64 = 5;
/// Failures at one email from everywhere before the backoff starts for unknown browsers.
pub const FREE_FAILURES_PER_EMAIL: i64 = 20;
/// The longest a block lasts.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten a day after the last one.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// The two counters an attempt at `email` from `source` touches.
struct Keys {
    email: String,
    pair: String,
}

fn keys(email: &str, source: &Option<String>) -> Keys {
    let email = email.trim().to_lowercase();
    Keys {
        pair: hash_key(&format!(
            "pair\0{email}\0{}",
            source.as_deref().unwrap_or("")
        )),
        email: hash_key(&format!("email\0{email}")),
    }
}

/// How long `failures` block, with `free` failures allowed first.
pub fn backoff(failures: i64, free: i64) -> Option<Duration> {
    if failures < free {
        return None;
    }
    let exp = (failures - free).min(20) as u32;
    Some(Duration::from_secs(1u64 << exp).min(MAX_BLOCK))
}

/// How long an attempt at `email` from `source` must wait, if it is blocked now: the pair
/// always, the email unless the attempt comes from a device that signed in to the account before.
pub async fn blocked_for(
    storage: &dyn Storage,
    email: &str,
    source: &Option<String>,
    trusted_device: bool,
) -> Result<Option<Duration>, StorageError> {
    let k = keys(email, source);
    let now = hub_core::time::now_ms();
    let states = storage
        .login_throttle()
        .throttle_states(&[k.pair, k.email])
        .await?;
    let pair_until = states[0].blocked_until_ms.filter(|t| *t > now);
    let email_until = states[1]
        .blocked_until_ms
        .filter(|t| *t > now && !trusted_device);
    Ok(pair_until
        .max(email_until)
        .map(|until| Duration::from_millis((until - now) as u64)))
}

/// Counts a failure at `email` from `source` and blocks what the counts say.
pub async fn failed(
    storage: &dyn Storage,
    email: &str,
    source: &Option<String>,
) -> Result<(), StorageError> {
    let k = keys(email, source);
    let now = hub_core::time::now_ms();
    let t = storage.login_throttle();
    for (key, free) in [
        (k.pair, FREE_FAILURES_PER_ADDRESS),
        (k.email, FREE_FAILURES_PER_EMAIL),
    ] {
        let failures = t.count_failure(&key, now, FORGET_AFTER_MS).await?;
        if let Some(block) = backoff(failures, free) {
            t.block(&key, now + block.as_millis() as i64).await?;
        }
    }
    Ok(())
}

/// Forgets the failures at `email` (a sign-in succeeded, or the password was reset); with
/// `source`, that address's too.
pub async fn clear(
    storage: &dyn Storage,
    email: &str,
    source: Option<&Option<String>>,
) -> Result<(), StorageError> {
    let k = keys(email, source.unwrap_or(&None));
    let mut clear = vec![k.email];
    if source.is_some() {
        clear.push(k.pair);
    }
    storage.login_throttle().clear(&clear).await
}

/// Whether each email's failures block unknown browsers now (a member's `locked`).
pub async fn locked(
    storage: &dyn Storage,
    emails: &[String],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let keys: Vec<String> = emails.iter().map(|e| keys(e, &None).email).collect();
    Ok(storage
        .login_throttle()
        .throttle_states(&keys)
        .await?
        .iter()
        .map(|s| s.blocked_until_ms.is_some_and(|t| t > now_ms))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures_and_stops_at_fifteen_minutes() {
        assert_eq!(backoff(4, 5), None);
        assert_eq!(backoff(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(backoff(6, 5), Some(Duration::from_secs(2)));
        assert_eq!(backoff(14, 5), Some(Duration::from_secs(512)));
        assert_eq!(backoff(15, 5), Some(MAX_BLOCK));
        assert_eq!(backoff(10_000, 5), Some(MAX_BLOCK));
    }

    #[test]
    fn keys_ignore_case_and_separate_addresses() {
        let a = keys("Ann@Example.com ", &Some("10.0.0.1".into()));
        let b = keys("ann@example.com", &Some("10.0.0.2".into()));
        assert_eq!(a.email, b.email);
        assert_ne!(a.pair, b.pair);
        assert_ne!(a.pair, a.email);
    }
}
