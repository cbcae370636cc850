//! The browser's cookies: their names, reading one from a request, setting and clearing them on
//! an answer. Authentication reads them (`auth`), sign-in sets and clears them (`signin`), the
//! sign-in throttle keeps its known-device cookie (`throttle`).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

/// The browser's access token (HttpOnly).
pub const ACCESS_COOKIE: &str = "hub_access";
/// The browser's refresh token (HttpOnly, sent to `/v1/auth` only).
pub const REFRESH_COOKIE: &str = "hub_refresh";
/// The CSRF token the UI echoes in `X-CSRF-Token` (readable by scripts of the same site).
pub const CSRF_COOKIE: &str = "hub_csrf";
/// A browser that signed in to an account before (HttpOnly, sent to `/v1/auth` only).
pub const DEVICE_COOKIE: &str = "hub_device";

/// A cookie's value from the request's `Cookie` headers.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// One cookie to set.
pub struct Cookie<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub path: &'a str,
    /// Hidden from the page's scripts, unless the page must read it.
    pub http_only: bool,
    pub max_age: Duration,
}

/// Adds a `SameSite=Strict` cookie to `res`, `Secure` when the hub is served over TLS.
pub fn set(res: &mut Response, cookie: Cookie<'_>, secure: bool) {
    let Cookie {
        name,
        value,
        path,
        http_only,
        max_age,
    } = cookie;
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}{http_only}; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Clears a session's cookies (signing out); the device cookie stays.
pub fn clear_session(mut res: Response) -> Response {
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, "/v1/auth"),
        (CSRF_COOKIE, "/"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path={path}; Max-Age=0")) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn cookies_are_read_by_name_and_set_strict() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; hub_csrf=x"));
        headers.append(header::COOKIE, HeaderValue::from_static("hub_access=t"));
        assert_eq!(read(&headers, CSRF_COOKIE), Some("x"));
        assert_eq!(read(&headers, ACCESS_COOKIE), Some("t"));
        assert_eq!(read(&headers, "hub"), None);
        let mut res = ().into_response();
        let cookie = Cookie {
            name: CSRF_COOKIE,
            value: "v",
            path: "/",
            http_only: false,
            max_age: Duration::from_secs(60),
        };
        set(&mut res, cookie, true);
        assert_eq!(
            res.headers()[header::SET_COOKIE],
            "hub_csrf=v; Path=/; SameSite=Strict; Max-Age=60; Secure"
        );
        let res = clear_session(res);
        assert_eq!(res.headers().get_all(header::SET_COOKIE).iter().count(), 4);
    }
}
