//! The admin UI: the built single-page app (`web/dist`) served for every path outside the API,
//! with `index.html` for the app's own routes, and headers that keep its pages to themselves.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::{ApiError, AppState};

/// Scripts, styles and data only from the hub itself; no framing; no sniffing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path.starts_with("/openapi")
}

/// Unknown API routes and non-GET requests are JSON 404s; everything else is the UI (when this
/// hub serves one).
pub(crate) async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let page = !api_path(&path) && matches!(req.method().as_str(), "GET" | "HEAD");
    let Some(dir) = state.config.web_dir.clone().filter(|_| page) else {
        return ApiError::NotFound("no such route; see /openapi.json".into()).into_response();
    };
    let index = dir.join("index.html");
    let service = ServeDir::new(&dir).fallback(ServeFile::new(index));
    let mut res = match service.oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(e) => return ApiError::Internal(format!("serving the UI: {e}")).into_response(),
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Hashed assets never change; the page itself is always asked for again.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}
