//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "LLM Analytics Hub", description = "Ingest LLM events, query analytics. Authenticate with 'Authorization: Bearer <API key>'."),
    paths(
        crate::ingest::post_events,
        crate::query::get_summary,
        crate::query::get_timeseries,
        crate::query::list_events,
        crate::query::get_event,
        crate::plugins::list_plugins,
        crate::plugins::install_plugin,
        crate::plugins::get_plugin,
        crate::plugins::put_plugins,
        crate::plugins::put_plugin,
        crate::plugins::delete_plugin,
        crate::market::list_packages,
        crate::market::publish,
        crate::market::package_details,
        crate::market::download,
        crate::market::icon,
        crate::market::yank,
        crate::market::unyank,
        crate::market::list_keys,
        crate::market::register_key,
        crate::market::revoke_key,
        crate::market::list_catalogs,
        crate::keys::list_keys,
        crate::keys::get_key,
        crate::keys::create_key,
        crate::keys::revoke_key,
        crate::keys::rotate_key,
        crate::users::login,
        crate::users::refresh,
        crate::users::logout,
        crate::users::change_password,
        crate::users::me,
        crate::members::list_members,
        crate::members::add_member,
        crate::members::set_role,
        crate::members::remove_member,
        crate::members::reset_password,
        crate::invitations::list_invitations,
        crate::invitations::revoke_invitation,
        crate::invitations::accept,
        crate::invitations::redeem,
        crate::tenants::list_tenants,
        crate::tenants::create_tenant,
        crate::audit::list_audit,
        crate::views::list_views,
        crate::views::create_view,
        crate::views::update_view,
        crate::views::delete_view,
        crate::oidc::providers,
        crate::oidc::start,
        crate::oidc::callback,
        crate::settings::get_tenant_rules,
        crate::settings::set_tenant_rules,
        crate::settings::settings,
        crate::settings::retention,
        crate::settings::set_retention,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        crate::ops::openapi,
    ),
    modifiers(&ApiKeyScheme, &CredentialsRefused)
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

/// Every route that takes credentials may answer 401 (missing, unknown, expired or revoked), in
/// the one error shape: said once here rather than on each handler, so that none is forgotten.
struct CredentialsRefused;

impl utoipa::Modify for CredentialsRefused {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let refused = ResponseBuilder::new()
            .description("missing, unknown, expired or revoked credentials")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
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
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    op.responses
                        .responses
                        .entry("401".into())
                        .or_insert_with(|| RefOr::T(refused.clone()));
                }
            }
        }
    }
}

/// The document served at `/openapi.json`.
pub fn openapi_json() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    serde_json::to_value(doc).unwrap_or_default()
}
