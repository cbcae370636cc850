//! Signing in and out: `/v1/auth/login` (with the password check that redeeming an invitation
//! shares), `/v1/auth/refresh` and `/v1/auth/logout`, and the answer that carries a session's
//! tokens as JSON and as cookies. What a signed-in user does with their own account is `account`;
//! the tenant's members are `members`, invitations `invitations`, tenants `tenants`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub_core::{Role, TenantId};
use hub_storage::{RefreshUse, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit::{audit_account, audit_anonymous};
use crate::auth::{Actor, ClientAddr};
use crate::cookies::{self, ACCESS_COOKIE, CSRF_COOKIE, Cookie, REFRESH_COOKIE};
use crate::credentials::passwords::{MAX_EMAIL_BYTES, MAX_PASSWORD_BYTES, verify_password_async};
use crate::credentials::{hash_key, lockout};
use crate::session::{ACCESS_TTL, IssuedTokens, REFRESH_TTL};
use crate::tenants::tenant_name;
use crate::{ApiError, AppState, Principal, json_body, throttle};

/// Login attempts per client address: two a second on average, 20 at once. (The per-email backoff
/// in `throttle` is what stops guessing one password; this slows spraying many accounts from one
/// address. Behind a proxy every client shares the proxy's address.)
const LOGIN_RATE: f64 = 2.0;
const LOGIN_BURST: f64 = 20.0;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginDto {
    #[schema(max_length = 254, pattern = "@")]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
    /// The tenant to act in (by name); the user's first tenant when absent.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshDto {
    /// The refresh token; the `hub_refresh` cookie when absent.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Tokens for a session, and who they are for.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensDto {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token works.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one; presenting a used one ends the session.
    pub refresh_token: String,
    pub tenant: String,
    pub role: String,
    /// Nothing but `POST /v1/auth/password` works until the password is changed.
    pub must_change_password: bool,
}

/// The response carrying new tokens: JSON for API clients, cookies for the browser.
pub(crate) fn tokens_response(
    state: &AppState,
    issued: &IssuedTokens,
    tenant_name: &str,
) -> Response {
    let mut res = Json(TokensDto {
        access_token: issued.access_token.clone(),
        token_type: "Bearer",
        expires_in: ACCESS_TTL.as_secs(),
        refresh_token: issued.refresh_token.clone(),
        tenant: tenant_name.into(),
        role: issued.claims.role.clone(),
        must_change_password: issued.claims.pwc,
    })
    .into_response();
    for (name, value, path, http_only, max_age) in [
        (ACCESS_COOKIE, &issued.access_token, "/", true, ACCESS_TTL),
        (
            REFRESH_COOKIE,
            &issued.refresh_token,
            "/v1/auth",
            true,
            REFRESH_TTL,
        ),
        // The page reads it to echo it in X-CSRF-Token.
        (CSRF_COOKIE, &issued.csrf_token, "/", false, REFRESH_TTL),
    ] {
        let cookie = Cookie {
            name,
            value,
            path,
            http_only,
            max_age,
        };
        cookies::set(&mut res, cookie, state.config.secure_cookies);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The tenant and role a user acts as: the one asked for, else the first membership. Operators
/// may act in any tenant, as owners.
pub(crate) async fn pick_tenant(
    state: &AppState,
    user: &User,
    wanted: Option<&str>,
) -> Result<(TenantId, String, Role), ApiError> {
    let memberships = state.storage.access().memberships(user.id).await?;
    match wanted {
        Some(name) => {
            if let Some(m) = memberships.iter().find(|m| m.tenant_name == name) {
                return Ok((m.tenant, m.tenant_name.clone(), m.role));
            }
            if user.operator
                && let Some(t) = state.storage.tenants().tenant_by_name(name).await?
            {
                return Ok((t.id, t.name, Role::Owner));
            }
            Err(ApiError::Forbidden(format!(
                "you are not a member of tenant '{name}'"
            )))
        }
        None => memberships
            .first()
            .map(|m| (m.tenant, m.tenant_name.clone(), m.role))
            .ok_or_else(|| {
                ApiError::Forbidden("you are not a member of any tenant yet; ask an admin".into())
            }),
    }
}

#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    description = "Signs in with email and password: an access token (15 min), a single-use refresh token (30 d), and the same as HttpOnly cookies for the browser (with a `hub_csrf` cookie to echo in `X-CSRF-Token`). Failures slow further attempts at that email (429 with `Retry-After`, the same for emails without an account): from one address after 5, from anywhere after 20 except from a browser that signed in to the account before; each client address may also try 20 times at once and twice a second after that.",
    request_body = LoginDto,
    responses((status = 200, body = TokensDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody))
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: LoginDto = json_body(&body)?;
    let user = password_sign_in(&state, &headers, &req.email, &req.password, &source).await?;
    let (tenant, tenant_name, role) = pick_tenant(&state, &user, req.tenant.as_deref()).await?;
    let now = hub_core::time::now_ms();
    state
        .storage
        .access()
        .record_login_success(user.id, now)
        .await?;
    let issued = state
        .sessions
        .issue(state.storage.as_ref(), &user, tenant, role, None, now)
        .await?;
    audit_anonymous(
        &state,
        Some(tenant),
        format!("user:{}", user.email),
        "auth.login",
        "ok",
        source,
    )
    .await;
    let mut res = tokens_response(&state, &issued, &tenant_name);
    throttle::remember_device(&state, &mut res, user.id).await?;
    Ok(res)
}

/// Checks an email and password as a sign-in does: the same answer and cost for an unknown email
/// as for a wrong password, under the per-address bucket and the per-email backoff (`throttle`);
/// failures are audited in every tenant of the account. The caller records the success.
pub(crate) async fn password_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    email: &str,
    password: &str,
    source: &Option<String>,
) -> Result<User, ApiError> {
    if email.len() > MAX_EMAIL_BYTES || !email.contains('@') {
        return Err(ApiError::invalid("email", "not an email address"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if let Err(retry_after_secs) =
        state
            .login_limiter
            .take_at(source.clone().unwrap_or_default(), LOGIN_RATE, LOGIN_BURST)
    {
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many login attempts from this address; retry after {retry_after_secs} s"
            ),
            retry_after_secs,
        });
    }
    let access = state.storage.access();
    let user = access.user_by_email(email).await?;
    let trusted = throttle::is_trusted_device(state, headers, user.as_ref().map(|u| u.id)).await?;
    if let Err(e) = throttle::check(state, email, source, trusted).await {
        let actor = match &user {
            Some(u) => format!("user:{}", u.email),
            None => format!("unknown:{}", email.trim().to_lowercase()),
        };
        audit_anonymous(
            state,
            None,
            actor,
            "auth.login_throttled",
            "failed",
            source.clone(),
        )
        .await;
        return Err(e);
    }
    let ok = verify_password_async(
        password.to_string(),
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await;
    match user {
        Some(u) if ok => {
            lockout::clear(state.storage.as_ref(), email, Some(source)).await?;
            Ok(u)
        }
        user => {
            lockout::failed(state.storage.as_ref(), email, source).await?;
            // A known user's failures go to the audit log of each tenant they belong to.
            match &user {
                Some(u) => {
                    let actor = format!("user:{}", u.email);
                    audit_account(
                        state,
                        u,
                        actor,
                        "auth.login_failed",
                        "failed",
                        source.clone(),
                    )
                    .await?;
                }
                None => {
                    let actor = format!("unknown:{}", email.trim().to_lowercase());
                    audit_anonymous(
                        state,
                        None,
                        actor,
                        "auth.login_failed",
                        "failed",
                        source.clone(),
                    )
                    .await;
                }
            }
            Err(ApiError::Unauthorized("wrong email or password".into()))
        }
    }
}

#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    description = "Trades a refresh token (body or `hub_refresh` cookie) for a new access token and a new refresh token. A refresh token works once: presenting it again revokes the whole session.",
    request_body = RefreshDto,
    responses((status = 200, body = TokensDto), (status = 401, body = crate::error::ErrorBody))
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RefreshDto = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshDto::default()
    } else {
        json_body(&body)?
    };
    let from_cookie = cookies::read(&headers, REFRESH_COOKIE).map(str::to_string);
    let token = req
        .refresh_token
        .or(from_cookie)
        .ok_or_else(|| ApiError::Unauthorized("no refresh token: send refresh_token".into()))?;
    if token.len() > 256 {
        return Err(ApiError::invalid("refresh_token", "malformed"));
    }
    let now = hub_core::time::now_ms();
    let access = state.storage.access();
    let t = match access.use_refresh_token(&hash_key(&token), now).await? {
        RefreshUse::Fresh(t) => t,
        RefreshUse::Reused(t) => {
            state.sessions.forget_session(&t.family);
            let actor = match access.user_by_id(t.user_id).await? {
                Some(u) => format!("user:{}", u.email),
                None => "unknown".into(),
            };
            audit_anonymous(
                &state,
                Some(t.tenant),
                actor,
                "auth.refresh_reuse",
                "failed",
                source,
            )
            .await;
            return Err(ApiError::Unauthorized(
                "this refresh token was already used; the session is revoked, sign in again".into(),
            ));
        }
        RefreshUse::Dead(_) => {
            return Err(ApiError::Unauthorized(
                "the refresh token has expired or was revoked; sign in again".into(),
            ));
        }
        RefreshUse::Unknown => {
            return Err(ApiError::Unauthorized("invalid refresh token".into()));
        }
    };
    let user = access
        .user_by_id(t.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the user no longer exists".into()))?;
    // The role may have changed since login; a removed member loses the session.
    let name = tenant_name(&state, t.tenant)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the tenant no longer exists".into()))?;
    let (tenant_id, tenant_name, role) = match pick_tenant(&state, &user, Some(&name)).await {
        Ok(x) => x,
        Err(_) => {
            access.revoke_session(&t.family, now).await?;
            state.sessions.forget_session(&t.family);
            return Err(ApiError::Unauthorized(format!(
                "you are no longer a member of tenant '{name}'"
            )));
        }
    };
    let issued = state
        .sessions
        .issue(
            state.storage.as_ref(),
            &user,
            tenant_id,
            role,
            Some(t.family),
            now,
        )
        .await?;
    Ok(tokens_response(&state, &issued, &tenant_name))
}

#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    description = "Ends the caller's session: its refresh tokens stop working, and so do its access tokens (at once on this replica, within 5 s on others). Clears the cookies.",
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let Actor::User { session, .. } = &principal.actor else {
        return Err(ApiError::BadRequest(
            "API keys have no session; revoke the key instead".into(),
        ));
    };
    state
        .storage
        .access()
        .revoke_session(session, hub_core::time::now_ms())
        .await?;
    state.sessions.forget_session(session);
    principal
        .audit(&state, "auth.logout", None, None, None)
        .await;
    Ok(cookies::clear_session(
        StatusCode::NO_CONTENT.into_response(),
    ))
}
