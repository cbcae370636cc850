//! How password guessing is slowed without locking the owner out, and without telling anyone
//! whether an email has an account.
//!
//! Failures are counted per *email* (whatever account, if any, it names) in the database, so every
//! replica sees them and an unknown email is slowed exactly like a known one:
//! - per email and client address: 5 failures are free, then each further one blocks that pair
//!   for 1 s, 2 s, 4 s … up to 15 minutes. Guessing from one place gets slow fast; the owner,
//!   signing in from elsewhere, is not affected.
//! - per email, from every address: 20 failures are free, then the same backoff applies to every
//!   attempt *except* from a browser that signed in to that account before (a `hub_device`
//!   cookie, signed by the hub, naming the account). A distributed guesser is slowed; the owner's
//!   own browser still gets in, as with the "known device" rules of mature identity providers.
//!
//! A success clears both counts; a failure a day after the last one starts again from one. The
//! per-address token bucket in `users` (two attempts a second) comes on top.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::session::hmac_hex;
use crate::{ApiError, AppState};

/// Failures from one address at one email before the backoff starts.
pub const FREE_FAILURES_PER_ADDRESS: i64 = 5;
/// Failures at one email from everywhere before the backoff starts for unknown browsers.
pub const FREE_FAILURES_PER_EMAIL: i64 = 20;
/// The longest a block lasts.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten a day after the last one.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;
/// The browser cookie of a device that signed in to an account before.
pub const DEVICE_COOKIE: &str = "hub_device";
const DEVICE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);

/// The two counters an attempt at `email` from `source` touches.
struct Keys {
    email: String,
    pair: String,
}

fn keys(email: &str, source: &Option<String>) -> Keys {
    let email = email.trim().to_lowercase();
    let hash = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    Keys {
        pair: hash(&format!(
            "pair\0{email}\0{}",
            source.as_deref().unwrap_or("")
        )),
        email: hash(&format!("email\0{email}")),
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

fn too_many(retry_after_ms: i64) -> ApiError {
    let retry_after_secs = (retry_after_ms as u64).div_ceil(1000).max(1);
    ApiError::TooManyRequests {
        message: format!(
            "too many failed sign-ins for this email; retry after {retry_after_secs} s (a browser that signed in to the account before is not held back)"
        ),
        retry_after_secs,
    }
}

/// 429 while `email` is blocked for this attempt: the pair always, the email unless the request
/// comes from a device that signed in to `account` before.
pub(crate) async fn check(
    state: &AppState,
    email: &str,
    source: &Option<String>,
    trusted_device: bool,
) -> Result<(), ApiError> {
    let k = keys(email, source);
    let now = hub_core::time::now_ms();
    let states = state
        .storage
        .login_throttle()
        .throttle_states(&[k.pair, k.email])
        .await?;
    let pair_until = states[0].blocked_until_ms.filter(|t| *t > now);
    let email_until = states[1]
        .blocked_until_ms
        .filter(|t| *t > now && !trusted_device);
    match pair_until.max(email_until) {
        Some(until) => Err(too_many(until - now)),
        None => Ok(()),
    }
}

/// Counts a failure at `email` from `source` and blocks what the counts say.
pub(crate) async fn failed(
    state: &AppState,
    email: &str,
    source: &Option<String>,
) -> Result<(), ApiError> {
    let k = keys(email, source);
    let now = hub_core::time::now_ms();
    let t = state.storage.login_throttle();
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

/// Forgets the failures at `email` (a sign-in succeeded, or an admin reset the password); with
/// `source`, that address's too.
pub(crate) async fn clear(
    state: &AppState,
    email: &str,
    source: Option<&Option<String>>,
) -> Result<(), ApiError> {
    let k = keys(email, source.unwrap_or(&None));
    let mut clear = vec![k.email];
    if source.is_some() {
        clear.push(k.pair);
    }
    state.storage.login_throttle().clear(&clear).await?;
    Ok(())
}

/// The counter of every failure at `email`, from anywhere.
pub fn email_key(email: &str) -> String {
    keys(email, &None).email
}

/// Whether the email's failures block unknown browsers now (the members list's `locked`).
pub(crate) async fn blocked_emails(
    state: &AppState,
    emails: &[String],
) -> Result<Vec<bool>, ApiError> {
    let now = hub_core::time::now_ms();
    let keys: Vec<String> = emails.iter().map(|e| email_key(e)).collect();
    Ok(state
        .storage
        .login_throttle()
        .throttle_states(&keys)
        .await?
        .iter()
        .map(|s| s.blocked_until_ms.is_some_and(|t| t > now))
        .collect())
}

/// Whether the request's device cookie names `user` and is the hub's and current.
pub(crate) async fn is_trusted_device(
    state: &AppState,
    headers: &HeaderMap,
    user: Option<i64>,
) -> Result<bool, ApiError> {
    let (Some(user), Some(cookie)) = (user, crate::auth::cookie(headers, DEVICE_COOKIE)) else {
        return Ok(false);
    };
    let mut parts = cookie.rsplitn(2, '.');
    let (Some(mac), Some(payload)) = (parts.next(), parts.next()) else {
        return Ok(false);
    };
    let mut fields = payload.split('.');
    let (Some("v1"), Some(id), Some(expires)) = (fields.next(), fields.next(), fields.next())
    else {
        return Ok(false);
    };
    let fresh = expires
        .parse::<i64>()
        .is_ok_and(|e| e > hub_core::time::now_ms() / 1000);
    if id != user.to_string() || !fresh {
        return Ok(false);
    }
    let secret = state
        .sessions
        .deployment_secret(state.storage.as_ref())
        .await?;
    let expected = hmac_hex(&secret, payload);
    Ok(crate::auth::constant_time_eq(
        expected.as_bytes(),
        mac.as_bytes(),
    ))
}

/// Adds the device cookie for `user` to a sign-in's answer.
pub(crate) async fn remember_device(
    state: &AppState,
    res: &mut Response,
    user: i64,
) -> Result<(), ApiError> {
    let expires = hub_core::time::now_ms() / 1000 + DEVICE_TTL.as_secs() as i64;
    let payload = format!("v1.{user}.{expires}");
    let secret = state
        .sessions
        .deployment_secret(state.storage.as_ref())
        .await?;
    let mac = hmac_hex(&secret, &payload);
    crate::users::set_cookie(
        state,
        res,
        DEVICE_COOKIE,
        &format!("{payload}.{mac}"),
        "/v1/auth",
        true,
        DEVICE_TTL,
    );
    Ok(())
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
