//! What every route shares on the wire: JSON bodies and query strings parsed into the one error
//! shape (`{"error": {"code", "message", "parameter"?}}`, never axum's plain-text rejections), and
//! the headers every answer carries.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest JSON body of the administration routes.
pub const MAX_ADMIN_BODY_BYTES: usize = 1 << 20;

/// Parses a JSON request body, which must be one object; errors name the field path
/// (`plugins[0].config`) or the line and column of a syntax error.
pub(crate) fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > MAX_ADMIN_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; the limit is {MAX_ADMIN_BODY_BYTES}",
            bytes.len()
        )));
    }
    // serde reads a struct from an array of its fields in order too; the API documents objects.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object (with the fields this route documents)".into(),
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::BadRequest(format!(
                "the body is not valid JSON for this route: {inner}"
            ))
        } else {
            ApiError::invalid(&path, inner.to_string())
        }
    })
}

/// Query parameters parsed into `T`, refused in the API's error shape naming the parameter where
/// the parser says which.
#[derive(Debug, Clone)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                // "missing field `x`" and "unknown field `x`" name it inside the message.
                let named = inner
                    .split('`')
                    .nth(1)
                    .filter(|_| inner.contains("field `"));
                match (path.as_str(), named) {
                    (".", Some(name)) => ApiError::invalid(name, inner.clone()),
                    (".", None) => ApiError::BadRequest(format!("bad query parameters: {inner}")),
                    (p, _) => ApiError::invalid(p, inner.clone()),
                }
            })
    }
}

/// `X-Content-Type-Options: nosniff` on every answer, and `Cache-Control: no-store` on the API's
/// unless a route chose its own (a package download may be cached; an API key never).
pub(crate) async fn response_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/v1/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A page cursor as clients see it: a time and the rest of a position (an id), opaque (URL-safe
/// base64 of `ts|rest`).
pub(crate) fn encode_cursor(ts_ms: i64, rest: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ts_ms}|{rest}"))
}

/// What [`encode_cursor`] made, or a 400 naming `cursor`.
pub(crate) fn decode_cursor(s: &str) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::invalid(
            "cursor",
            "is not a cursor this API returned; start again without it",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ts, rest) = text.split_once('|').ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, rest.to_string()))
}

/// What [`encode_cursor`] made of a time and a numeric id (a row's), or a 400 naming `cursor`.
pub(crate) fn decode_id_cursor(s: &str) -> Result<(i64, i64), ApiError> {
    let (ts_ms, id) = decode_cursor(s)?;
    let id = id.parse().map_err(|_| {
        ApiError::invalid(
            "cursor",
            "is not a cursor this API returned; start again without it",
        )
    })?;
    Ok((ts_ms, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<u32>,
        name: String,
    }

    async fn parse(q: &str) -> Result<Q, ApiError> {
        let req = axum::http::Request::builder()
            .uri(format!("/x?{q}"))
            .body(())
            .unwrap();
        let (mut parts, _) = req.into_parts();
        ApiQuery::<Q>::from_request_parts(&mut parts, &())
            .await
            .map(|q| q.0)
    }

    #[tokio::test]
    async fn query_errors_name_the_parameter() {
        assert!(parse("name=a&limit=3").await.is_ok());
        for (q, param) in [
            ("name=a&limit=x", "limit"),
            ("limit=3", "name"),
            ("name=a&color=red", "color"),
        ] {
            match parse(q).await {
                Err(ApiError::InvalidParameter { parameter, .. }) => {
                    assert_eq!(parameter, param, "{q}")
                }
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn bodies_must_be_objects() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct B {
            a: Option<i64>,
        }
        assert!(json_body::<B>(b" {\"a\": 1}").is_ok());
        for body in [&b"[1]"[..], b"1", b"\"a\"", b"null"] {
            assert!(
                matches!(json_body::<B>(body), Err(ApiError::BadRequest(m)) if m.contains("JSON object")),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
