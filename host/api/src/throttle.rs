//! The sign-in throttle on the wire: a blocked attempt's 429 with `Retry-After`, and the device
//! cookie that lets the owner's own browser past a block on their email. The policy (what is
//! counted, when it blocks, for how long) is `credentials::lockout`, which the command line
//! shares.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;

use crate::cookies::{self, Cookie, DEVICE_COOKIE};
use crate::credentials::{constant_time_eq, hmac_hex, lockout};
use crate::{ApiError, AppState};

/// How long a browser stays known after signing in.
const DEVICE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);

/// 429 while `email` is blocked for this attempt (see [`lockout::blocked_for`]).
pub(crate) async fn check(
    state: &AppState,
    email: &str,
    source: &Option<String>,
    trusted_device: bool,
) -> Result<(), ApiError> {
    match lockout::blocked_for(state.storage.as_ref(), email, source, trusted_device).await? {
        Some(wait) => {
            let retry_after_secs = (wait.as_millis() as u64).div_ceil(1000).max(1);
            Err(ApiError::TooManyRequests {
                message: format!(
                    "too many failed sign-ins for this email; retry after {retry_after_secs} s (a browser that signed in to the account before is not held back)"
                ),
                retry_after_secs,
            })
        }
        None => Ok(()),
    }
}

/// Whether the request's device cookie names `user` and is the hub's and current.
pub(crate) async fn is_trusted_device(
    state: &AppState,
    headers: &HeaderMap,
    user: Option<i64>,
) -> Result<bool, ApiError> {
    let (Some(user), Some(cookie)) = (user, cookies::read(headers, DEVICE_COOKIE)) else {
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
    Ok(constant_time_eq(expected.as_bytes(), mac.as_bytes()))
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
    let value = format!("{payload}.{mac}");
    let cookie = Cookie {
        name: DEVICE_COOKIE,
        value: &value,
        path: "/v1/auth",
        http_only: true,
        max_age: DEVICE_TTL,
    };
    cookies::set(res, cookie, state.config.secure_cookies);
    Ok(())
}
