//! The OpenAPI document: the routes' entries (from the handlers' annotations, gathered by
//! [`crate::routes`]) with the document's own parts and the refusals every route can give.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "LLM Analytics Hub", description = "Ingest LLM events, query analytics. Authenticate with 'Authorization: Bearer <API key>'."),
    components(schemas(crate::query::MetricName)),
    modifiers(&ApiKeyScheme)
)]
struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hub_<prefix>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The refusals every route of a kind can give, said once here rather than on each handler so
/// that none is forgotten (the API property test holds the document to what the server answers):
/// a route that takes credentials may answer 401 (missing, unknown, expired or revoked), 403 (the
/// credential lacks the right) and 429 (the key's rate limit); one with parameters or a body 400;
/// one with a body 413; one with a path parameter 404. All in the one error shape.
struct StandardRefusals;

impl utoipa::Modify for StandardRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_path_params = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = op.request_body.is_some();
                let mut add = |code: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(code.into())
                        .or_insert_with(|| error(description));
                };
                if secured {
                    add("401", "missing, unknown, expired or revoked credentials");
                    add("403", "the credential lacks the right this route needs");
                    add("429", "the API key's rate limit; see Retry-After");
                }
                if has_params || has_body || has_path_params {
                    add(
                        "400",
                        "a parameter or the body is not what this route takes",
                    );
                }
                if has_body {
                    add("413", "the body is over the route's limit");
                }
                if has_path_params {
                    add("404", "no such resource (in this tenant)");
                }
            }
        }
    }
}

/// The document served at `/openapi.json`.
pub fn openapi_json() -> serde_json::Value {
    static DOC: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(document);
    DOC.clone()
}

fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes().into_openapi());
    StandardRefusals.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    serde_json::to_value(doc).unwrap_or_default()
}
