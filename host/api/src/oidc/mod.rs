//! Single sign-on with OpenID Connect: the authorization code flow with PKCE, `state` and `nonce`,
//! provider discovery, ID-token verification, and just-in-time provisioning that maps email
//! domains or a groups claim to tenants and roles.
//!
//! `GET /v1/auth/oidc/login` sends the browser to the provider; the provider sends it back to
//! `GET /v1/auth/oidc/callback`, which signs the user in (session cookies, as a password login
//! does) and redirects to the UI. A login's `state` (with its PKCE verifier and nonce) is kept in
//! the database for ten minutes at most and used once, so any replica may finish it.

use std::time::Duration;

use crate::ApiQuery;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub_storage::{AuditEntry, NewUser};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

mod roles;

pub use roles::RoleRule;
use roles::{groups_of, mapped_roles, tenant_rules};

use crate::auth::ClientAddr;
use crate::{ApiError, AppState};

/// How long a started login may take.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// The deployment's SSO settings.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The provider's issuer URL (discovery reads `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// This hub's `/v1/auth/oidc/callback` as the provider knows it.
    pub redirect_url: String,
    /// Scopes besides `openid` (default `email profile`).
    pub scopes: Vec<String>,
    /// The ID-token claim listing the user's groups.
    pub groups_claim: String,
    /// Email domain → tenant and role.
    pub domain_roles: Vec<RoleRule>,
    /// Group → tenant and role.
    pub group_roles: Vec<RoleRule>,
    /// Where the browser goes after signing in.
    pub after_login_url: String,
}

/// The SSO client of one replica.
pub struct Oidc {
    settings: OidcSettings,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer)
            .finish()
    }
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        IssuerUrl::new(settings.issuer.clone()).map_err(|e| format!("--oidc-issuer: {e}"))?;
        RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| format!("--oidc-redirect-url: {e}"))?;
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open the hub to SSRF through a hostile provider.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            settings,
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's metadata (discovered once, again after a failure).
    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ApiError,
    > {
        let mut guard = self.metadata.lock().await;
        if guard.is_none() {
            let issuer = IssuerUrl::new(self.settings.issuer.clone())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let m = CoreProviderMetadata::discover_async(issuer, &self.http)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, issuer = %self.settings.issuer, "OpenID Connect discovery failed");
                    ApiError::Unavailable("the identity provider cannot be reached; try again later".into())
                })?;
            *guard = Some(m);
        }
        let metadata = guard.clone().expect("set above");
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.settings.redirect_url.clone())
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ))
    }
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(callback))
        .routes(routes!(providers))
}

/// How people can sign in here (the login page shows an SSO button when it is on).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProvidersDto {
    /// Email and password.
    pub password: bool,
    /// OpenID Connect single sign-on (`GET /v1/auth/oidc/login`).
    pub sso: bool,
}

#[utoipa::path(
    get, path = "/v1/auth/providers", tag = "auth",
    description = "How people sign in to this hub: password, and single sign-on when configured. No credentials needed.",
    responses((status = 200, body = ProvidersDto))
)]
pub(crate) async fn providers(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<ProvidersDto> {
    axum::Json(ProvidersDto {
        password: true,
        sso: state.oidc.is_some(),
    })
}

fn oidc(state: &AppState) -> Result<&Oidc, ApiError> {
    state
        .oidc
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("single sign-on is not configured on this hub".into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartParams {
    /// The tenant to sign in to (by name); the first one the user belongs to when absent.
    pub tenant: Option<String>,
    /// Passed to the provider to pre-fill the account.
    pub login_hint: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/auth/oidc/login", tag = "auth",
    description = "Starts single sign-on: redirects to the identity provider (authorization code flow with PKCE, state and nonce). 404 when SSO is not configured.",
    params(StartParams),
    responses((status = 303), (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<StartParams>,
) -> Result<Response, ApiError> {
    let o = oidc(&state)?;
    if p.login_hint.as_ref().is_some_and(|h| h.len() > 254)
        || p.tenant.as_ref().is_some_and(|t| t.len() > 64)
    {
        return Err(ApiError::BadRequest(
            "login_hint or tenant is too long".into(),
        ));
    }
    let client = o.client().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in &o.settings.scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    if let Some(hint) = &p.login_hint {
        req = req.add_extra_param("login_hint", hint.clone());
    }
    let (url, csrf, nonce) = req.url();
    state
        .storage
        .access()
        .save_oidc_login(&hub_storage::OidcLogin {
            state: csrf.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            tenant: p.tenant,
            created_at_ms: hub_core::time::now_ms(),
        })
        .await?;
    Ok(redirect(url.as_str()))
}

fn redirect(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when it refused.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/auth/oidc/callback", tag = "auth",
    description = "Where the identity provider returns: checks state, exchanges the code (with the PKCE verifier), verifies the ID token (signature, issuer, audience, expiry, nonce), provisions the user and their roles from the mapping rules, sets the session cookies and redirects to the UI.",
    params(CallbackParams),
    responses((status = 303), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, description = "single sign-on is not configured", body = crate::error::ErrorBody))
)]
pub(crate) async fn callback(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    ApiQuery(p): ApiQuery<CallbackParams>,
) -> Result<Response, ApiError> {
    let o = oidc(&state)?;
    let pending = match p.state.as_deref().filter(|s| s.len() <= 128) {
        Some(s) => {
            state
                .storage
                .access()
                .take_oidc_login(s, hub_core::time::now_ms() - LOGIN_TTL.as_millis() as i64)
                .await?
        }
        None => None,
    };
    let Some(pending) = pending else {
        return Err(ApiError::BadRequest(
            "unknown or expired sign-in state; start again at /v1/auth/oidc/login".into(),
        ));
    };
    let fail = |state: &AppState, why: String| {
        let entry = AuditEntry {
            at_ms: hub_core::time::now_ms(),
            actor: "sso".into(),
            action: "auth.sso_failed".into(),
            source: source.clone(),
            outcome: "failed".into(),
            after: Some(serde_json::json!({ "reason": why }).to_string()),
            ..Default::default()
        };
        let state = state.clone();
        async move {
            crate::audit::record(&state, entry).await;
            ApiError::Unauthorized(why)
        }
    };
    if let Some(error) = &p.error {
        let why = format!(
            "the identity provider refused: {error}{}",
            p.error_description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        return Err(fail(&state, why).await);
    }
    let code = p
        .code
        .clone()
        .ok_or_else(|| ApiError::invalid("code", "missing"))?;
    let client = o.client().await?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&o.http)
        .await;
    let tokens = match exchange {
        Ok(t) => t,
        Err(e) => {
            let detail = match &e {
                openidconnect::RequestTokenError::ServerResponse(r) => r.error().to_string(),
                other => {
                    tracing::warn!(error = %other, "exchanging an authorization code failed");
                    "the token request failed".into()
                }
            };
            return Err(fail(
                &state,
                format!("the identity provider refused the authorization code: {detail}"),
            )
            .await);
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return Err(fail(&state, "the identity provider returned no ID token".into()).await);
    };
    let verifier = client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce)) {
        Ok(c) => c,
        Err(openidconnect::ClaimsVerificationError::InvalidNonce(_)) => {
            return Err(fail(
                &state,
                "the ID token's nonce does not match this sign-in".into(),
            )
            .await);
        }
        Err(e) => {
            let why = match e {
                openidconnect::ClaimsVerificationError::Expired(_) => "the ID token has expired",
                openidconnect::ClaimsVerificationError::InvalidAudience(_) => {
                    "the ID token is for another client"
                }
                openidconnect::ClaimsVerificationError::InvalidIssuer(_) => {
                    "the ID token is from another issuer"
                }
                openidconnect::ClaimsVerificationError::SignatureVerification(_) => {
                    "the ID token's signature is invalid"
                }
                _ => "the ID token is invalid",
            };
            return Err(fail(&state, why.into()).await);
        }
    };
    let Some(email) = claims.email().map(|e| e.as_str().to_lowercase()) else {
        return Err(fail(
            &state,
            "the ID token carries no email; ask for the `email` scope".into(),
        )
        .await);
    };
    if claims.email_verified() == Some(false) {
        return Err(fail(
            &state,
            format!("{email} is not verified at the identity provider"),
        )
        .await);
    }
    let raw = id_token.to_string();
    let groups = groups_of(&raw, &o.settings.groups_claim);
    let access = state.storage.access();
    let now = hub_core::time::now_ms();
    let user = match access.user_by_email(&email).await? {
        Some(u) => u,
        None => {
            let name = claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string())
                .unwrap_or_else(|| email.clone());
            access
                .create_user(
                    &NewUser {
                        email: email.clone(),
                        display_name: name,
                        password_hash: None,
                        must_change_password: false,
                        operator: false,
                        publisher: false,
                    },
                    now,
                )
                .await?
        }
    };
    // The rules own the tenants they name: each sign-in sets the role they give.
    let tenant_rules = tenant_rules(&state).await?;
    for (tenant, role) in mapped_roles(&o.settings, &tenant_rules, &email, &groups) {
        let Some(t) = state.storage.tenants().tenant_by_name(&tenant).await? else {
            tracing::warn!(tenant = %tenant, "an SSO rule names a tenant that does not exist");
            continue;
        };
        let before = access
            .set_membership(user.id, t.id, Some(role), now)
            .await?;
        if before != Some(role) {
            crate::audit::record(
                &state,
                AuditEntry {
                    at_ms: now,
                    tenant: Some(t.id),
                    actor: "sso".into(),
                    action: "member.role".into(),
                    target: Some(format!("user:{email}")),
                    source: source.clone(),
                    outcome: "ok".into(),
                    before: Some(
                        serde_json::json!({ "role": before.map(|r| r.as_str()) }).to_string(),
                    ),
                    after: Some(
                        serde_json::json!({ "role": role.as_str(), "groups": groups }).to_string(),
                    ),
                },
            )
            .await;
        }
    }
    let (tenant, tenant_name, role) =
        match crate::signin::pick_tenant(&state, &user, pending.tenant.as_deref()).await {
            Ok(x) => x,
            Err(e) => {
                let _ = fail(&state, format!("{email}: {e}")).await;
                return Err(e);
            }
        };
    access.record_login_success(user.id, now).await?;
    let issued = state
        .sessions
        .issue(state.storage.as_ref(), &user, tenant, role, None, now)
        .await?;
    crate::audit::record(
        &state,
        AuditEntry {
            at_ms: now,
            tenant: Some(tenant),
            actor: format!("user:{email}"),
            action: "auth.sso_login".into(),
            source,
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await;
    let mut res = crate::signin::tokens_response(&state, &issued, &tenant_name);
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&o.settings.after_login_url) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}
