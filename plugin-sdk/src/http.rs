//! Outgoing HTTP for enrichers and integrations, over `wasi:http/outgoing-handler`.
//!
//! Only hosts listed under `[capabilities] http` in plugin.toml and granted by the tenant are
//! reachable; any other request fails with [`HttpError::Denied`]. The host also refuses hosts
//! that resolve to private or loopback addresses, unless its operator allows them.

use crate::bindings::enricher::wasi::http::outgoing_handler;
use crate::bindings::enricher::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::enricher::wasi::io::streams::StreamError;

/// Largest response body read (bigger bodies fail with [`HttpError::TooLarge`]).
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL is not `http(s)://host[:port]/path`.
    BadUrl(String),
    /// The host refused the request: the host is not in the manifest's list, not granted by the
    /// tenant, or resolves to a private address.
    Denied(String),
    /// Anything else the transport reported.
    Failed(String),
    TooLarge,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadUrl(u) => write!(f, "`{u}` is not an http(s) URL"),
            HttpError::Denied(why) => write!(f, "request denied by the hub: {why}"),
            HttpError::Failed(m) => write!(f, "request failed: {m}"),
            HttpError::TooLarge => write!(f, "response larger than {MAX_RESPONSE_BYTES} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for crate::Error {
    fn from(e: HttpError) -> Self {
        crate::Error::Unavailable(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::Unavailable(format!("response is not the expected JSON: {e}"))
        })
    }
}

/// Bytes of an answer's body quoted in an error.
const QUOTED: usize = 200;

impl Response {
    /// How the hub should take this answer to `method url`: 2xx is success; 408, 425, 429 and
    /// 5xx mean the service is not able now ([`crate::Error::Unavailable`], retried); anything
    /// else is a configuration to fix ([`crate::Error::BadConfig`] naming `field`, not retried).
    /// The answer's first 200 bytes are quoted.
    pub fn check(&self, method: &str, url: &str, field: &str) -> Result<(), crate::Error> {
        let quoted = String::from_utf8_lossy(&self.body[..self.body.len().min(QUOTED)]);
        let status = self.status;
        match status {
            200..=299 => Ok(()),
            408 | 425 | 429 | 500..=599 => Err(crate::Error::Unavailable(format!(
                "{method} {url} answered {status}: {quoted}"
            ))),
            _ => Err(crate::Error::BadConfig(format!(
                "{field}: {method} {url} answered {status} (not retried; check the configuration): {quoted}"
            ))),
        }
    }
}

/// A transport error as the hub should take it: a bad URL or a host the hub refused is a
/// configuration to fix (naming `field`); anything else is `unavailable`.
pub fn error(field: &str, method: &str, url: &str, e: HttpError) -> crate::Error {
    match e {
        HttpError::BadUrl(_) | HttpError::Denied(_) => {
            crate::Error::BadConfig(format!("{field}: {e}"))
        }
        other => crate::Error::Unavailable(format!("{method} {url}: {other}")),
    }
}

/// A service's base URL from a plugin's configuration (field `url`), without its trailing `/`.
pub fn base_url(url: &str) -> Result<String, crate::Error> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(crate::Error::bad_config(
            "url: must start with http:// or https://",
        ));
    }
    Ok(base)
}

/// One JSON request to another system's API, as integrations make them: `accept` JSON, the
/// body (if any) as JSON, `Authorization: Bearer <token>` when there is a token; the answer
/// read as the hub retries it ([`Response::check`], naming `field`) and transport errors as
/// [`error`] reads them.
pub fn call_json(
    method: &str,
    url: &str,
    token: Option<&str>,
    field: &str,
    body: Option<&serde_json::Value>,
) -> Result<Response, crate::Error> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("accept", "application/json")];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let bytes = body.map(|b| b.to_string().into_bytes());
    let response = request(method, url, &headers, bytes.as_deref())
        .map_err(|e| error("url", method, url, e))?;
    response.check(method, url, field)?;
    Ok(response)
}

pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None)
}

pub fn post_json(url: &str, body: &serde_json::Value) -> Result<Response, HttpError> {
    let bytes = serde_json::to_vec(body).map_err(|e| HttpError::Failed(e.to_string()))?;
    request(
        "POST",
        url,
        &[("content-type", "application/json")],
        Some(&bytes),
    )
}

fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((scheme, authority, path))
}

fn transport(e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::HttpRequestDenied => {
            HttpError::Denied("the host is not granted to this plugin".into())
        }
        ErrorCode::DestinationIpProhibited => {
            HttpError::Denied("the host resolves to a private or loopback address".into())
        }
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let (scheme, authority, path) =
        split_url(url).ok_or_else(|| HttpError::BadUrl(url.to_string()))?;
    let fields = Fields::new();
    for (k, v) in headers {
        fields
            .append(k, v.as_bytes())
            .map_err(|e| HttpError::Failed(format!("header {k}: {e:?}")))?;
    }
    // A body's length is said up front: some receivers refuse a chunked request.
    if let Some(data) = body
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        fields
            .append("content-length", data.len().to_string().as_bytes())
            .map_err(|e| HttpError::Failed(format!("header content-length: {e:?}")))?;
    }
    let req = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let bad = |_| HttpError::BadUrl(url.to_string());
    req.set_method(&method).map_err(bad)?;
    req.set_scheme(Some(&scheme)).map_err(bad)?;
    req.set_authority(Some(authority)).map_err(bad)?;
    req.set_path_with_query(Some(path)).map_err(bad)?;
    let out_body = req
        .body()
        .map_err(|_| HttpError::Failed("request body already taken".into()))?;
    // The request goes out first, and its body is written while the host sends it: written
    // before, a body larger than the host's buffer would wait for a reader that never comes.
    let future = outgoing_handler::handle(req, None).map_err(transport)?;
    // A body that cannot be written (the host refused the request, the peer went away) says
    // less than the response's error does: that one is reported first.
    let mut written = Ok(());
    if let Some(data) = body {
        written = match out_body.write() {
            Ok(stream) => data.chunks(4096).try_for_each(|chunk| {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::Failed(format!("writing the body: {e:?}")))
            }),
            Err(_) => Err(HttpError::Failed("request body stream".into())),
        };
    }
    let finished = OutgoingBody::finish(out_body, None).map_err(transport);
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|_| HttpError::Failed("response already taken".into()))?
        .map_err(transport)?;
    written?;
    finished?;
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|_| HttpError::Failed("response body already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|_| HttpError::Failed("response body stream".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(HttpError::Failed(format!("reading the body: {e:?}"))),
        }
    }
    Ok(Response { status, body })
}
