//! What an outside probe of the API found besides the big holes, kept as regression tests: every
//! answer under /v1 says `nosniff` and `no-store`; bad query parameters get the JSON error shape on
//! every route; bodies that are not objects are refused; a range whose `from` is not before its
//! `to` is a 400 everywhere; the OpenAPI document lists 401 wherever credentials are taken.

mod common;

use axum::http::{Method, StatusCode, header};
use hub_core::Role;
use serde_json::{Value, json};

use common::people::{Reply, hub};

fn error_shape(r: &Reply) -> (StatusCode, Option<&str>, Option<&str>) {
    (
        r.status,
        r.body["error"]["code"].as_str(),
        r.body["error"]["parameter"].as_str(),
    )
}

#[tokio::test]
async fn api_answers_are_not_sniffed_or_stored() {
    let hub = hub().await;
    hub.user("o@acme.com", "acme", Role::Owner, false).await;
    let token = hub.token("o@acme.com").await;
    for (method, uri, body) in [
        (Method::GET, "/v1/auth/me", None),
        (
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "k", "scopes": ["query"]})),
        ),
        (Method::GET, "/v1/nope", None),
        (Method::GET, "/v1/users", None),
    ] {
        let r = hub.call(method.clone(), uri, &token, body).await;
        assert_eq!(
            r.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{uri}"
        );
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{uri}");
    }
    let r = hub.call(Method::GET, "/healthz", "", None).await;
    assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn bad_query_parameters_get_the_json_error_shape_everywhere() {
    let hub = hub().await;
    hub.user("o@acme.com", "acme", Role::Owner, false).await;
    let token = hub.token("o@acme.com").await;
    for (uri, param) in [
        ("/v1/audit?limit=lots", Some("limit")),
        ("/v1/audit?all=maybe", Some("all")),
        ("/v1/marketplace/packages?kind=1&kind=2", None),
        ("/v1/marketplace/packages/cost?version=1&version=2", None),
        ("/v1/plugins/cost?purge_kv=perhaps", Some("purge_kv")),
        ("/v1/auth/oidc/login?tenant=a&tenant=b", None),
    ] {
        let method = if uri.starts_with("/v1/plugins/") {
            Method::DELETE
        } else {
            Method::GET
        };
        let r = hub.call(method, uri, &token, None).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{uri}: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.body["error"]["message"].is_string(),
            "{uri}: JSON error shape, got {}",
            r.body
        );
        if let Some(param) = param {
            assert_eq!(error_shape(&r).2, Some(param), "{uri}: {}", r.body);
        }
    }
}

#[tokio::test]
async fn bodies_that_are_not_objects_are_refused() {
    let hub = hub().await;
    hub.user("o@acme.com", "acme", Role::Owner, false).await;
    let token = hub.token("o@acme.com").await;
    for body in [json!([]), json!([3_600_000]), json!(null), json!(7)] {
        let r = hub
            .call(
                Method::PUT,
                "/v1/settings/retention",
                &token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{}",
            r.body
        );
    }
    let r = hub
        .call(Method::GET, "/v1/settings/retention", &token, None)
        .await;
    assert_eq!(r.body["tenant"]["raw_ms"], Value::Null, "nothing was saved");
}

#[tokio::test]
async fn from_after_to_is_a_400_on_every_route() {
    let hub = hub().await;
    hub.user("o@acme.com", "acme", Role::Owner, false).await;
    let token = hub.token("o@acme.com").await;
    let range = "from=2026-11-25T12:00:00Z&to=2026-11-25T10:00:00Z";
    for route in [
        "/v1/metrics/summary",
        "/v1/metrics/timeseries?metric=requests&step=1m",
        "/v1/events",
        "/v1/audit",
    ] {
        let sep = if route.contains('?') { '&' } else { '?' };
        let uri = format!("{route}{sep}{range}");
        let r = hub.call(Method::GET, &uri, &token, None).await;
        assert_eq!(
            error_shape(&r),
            (
                StatusCode::BAD_REQUEST,
                Some("invalid_parameter"),
                Some("from")
            ),
            "{uri}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_401_wherever_credentials_are_taken() {
    let doc = hub_api::openapi_json();
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let takes_credentials = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if takes_credentials {
                secured += 1;
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} takes credentials but lists no 401"
                );
            }
        }
    }
    assert!(secured > 40, "{secured}");
}

#[test]
fn every_reference_in_the_openapi_document_resolves() {
    fn walk(v: &Value, doc: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let pointer = r.trim_start_matches('#');
                    if doc.pointer(pointer).is_none() {
                        missing.push(r.clone());
                    }
                }
                m.values().for_each(|v| walk(v, doc, missing));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, doc, missing)),
            _ => {}
        }
    }
    let doc = hub_api::openapi_json();
    let mut missing = Vec::new();
    walk(&doc, &doc, &mut missing);
    assert!(missing.is_empty(), "unresolved: {missing:?}");
}

#[test]
fn binary_request_bodies_are_described_as_binary() {
    let doc = hub_api::openapi_json();
    let mut binary = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            for (media, body) in content {
                if media.contains("json") || media.starts_with("text/") {
                    continue;
                }
                binary += 1;
                assert_eq!(
                    (&body["schema"]["type"], &body["schema"]["format"]),
                    (&json!("string"), &json!("binary")),
                    "{method} {path} {media}: {body}"
                );
            }
        }
    }
    assert!(
        binary >= 2,
        "the package upload takes gzip and octet-stream"
    );
}
