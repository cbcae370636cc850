//! People: sign-in (`/v1/auth/*`: login, refresh, logout, password, me) and the tenant's members
//! (`/v1/users`: list, add, set role, remove, reset password).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use hub_core::{Role, TenantId};
use hub_storage::{AuditEntry, NewUser, RefreshUse, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Actor, ClientAddr, Right, hash_key};
use crate::session::{
    ACCESS_TTL, IssuedTokens, MAX_PASSWORD_BYTES, REFRESH_TTL, hash_password_async,
    one_time_password, password_problem, verify_password_async,
};
use crate::{ApiError, AppState, Principal, json_body};

/// The browser's access token (HttpOnly).
pub const ACCESS_COOKIE: &str = "hub_access";
/// The browser's refresh token (HttpOnly, sent to `/v1/auth` only).
pub const REFRESH_COOKIE: &str = "hub_refresh";
/// The CSRF token the UI echoes in `X-CSRF-Token` (readable by scripts of the same site).
pub const CSRF_COOKIE: &str = "hub_csrf";
/// Failed logins in a row that lock an account, and for how long.
pub const MAX_FAILED_LOGINS: i64 = 5;
pub const LOCKOUT_MS: i64 = 15 * 60_000;
/// Login attempts per client address: two a second on average, 20 at once. (The per-account
/// lockout is what stops guessing one password; this slows spraying many accounts from one
/// address. Behind a proxy every client shares the proxy's address.)
const LOGIN_RATE: f64 = 2.0;
const LOGIN_BURST: f64 = 20.0;
const MAX_EMAIL_BYTES: usize = 254;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/password", post(change_password))
        .route("/v1/auth/me", get(me))
        .route("/v1/users", get(list_members).post(add_member))
        .route("/v1/users/{id}", put(set_role).delete(remove_member))
        .route("/v1/users/{id}/password-reset", post(reset_password))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginDto {
    pub email: String,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordDto {
    pub current_password: String,
    pub new_password: String,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    pub tenant: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    /// `user` or `api_key`.
    pub kind: &'static str,
    pub id: i64,
    pub name: String,
    pub tenant: String,
    /// The user's role here; for an API key, its scopes.
    pub role: Option<String>,
    pub scopes: Vec<String>,
    pub operator: bool,
    /// May publish plugins to the marketplace.
    pub publisher: bool,
    /// Every tenant the user belongs to (switch with `POST /v1/auth/login` and `tenant`).
    pub memberships: Vec<MembershipDto>,
    /// Nothing but `POST /v1/auth/password` works until the password is changed.
    pub must_change_password: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub sso_only: bool,
    pub locked: bool,
    pub last_login_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberListDto {
    pub users: Vec<MemberDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberDto {
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `owner`, `admin`, `analyst` or `viewer`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMemberDto {
    pub user: MemberDto,
    /// For a user new to the hub: a one-time password to hand over (must be changed at first
    /// login). Absent for an existing user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_time_password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleDto {
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetDto {
    /// Hand it over; it must be changed at the next login.
    pub one_time_password: String,
}

fn member_dto(u: &User, role: Role, now_ms: i64) -> MemberDto {
    MemberDto {
        id: u.id,
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        role: role.as_str().into(),
        sso_only: u.password_hash.is_none(),
        locked: u.locked_until_ms.is_some_and(|t| t > now_ms),
        last_login_at: u.last_login_at_ms.map(hub_core::time::to_rfc3339),
        created_at: hub_core::time::to_rfc3339(u.created_at_ms),
    }
}

async fn audit_anonymous(
    state: &AppState,
    tenant: Option<TenantId>,
    actor: String,
    action: &str,
    outcome: &str,
    source: Option<String>,
) {
    crate::audit::record(
        state,
        AuditEntry {
            at_ms: hub_core::time::now_ms(),
            tenant,
            actor,
            action: action.into(),
            target: None,
            source,
            outcome: outcome.into(),
            before: None,
            after: None,
        },
    )
    .await;
}

/// The response carrying new tokens: JSON for API clients, cookies for the browser.
pub(crate) fn tokens_response(
    state: &AppState,
    issued: &IssuedTokens,
    tenant_name: &str,
) -> Response {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let csrf = hash_key(&issued.refresh_token)[..32].to_string();
    let cookies = [
        format!(
            "{ACCESS_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            issued.access_token,
            ACCESS_TTL.as_secs()
        ),
        format!(
            "{REFRESH_COOKIE}={}; Path=/v1/auth; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            issued.refresh_token,
            REFRESH_TTL.as_secs()
        ),
        format!(
            "{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={}{secure}",
            REFRESH_TTL.as_secs()
        ),
    ];
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
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn clear_cookies(mut res: Response) -> Response {
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
                && let Some(t) = state.storage.tenant_by_name(name).await?
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
    description = "Signs in with email and password: an access token (15 min), a single-use refresh token (30 d), and the same as HttpOnly cookies for the browser (with a `hub_csrf` cookie to echo in `X-CSRF-Token`). Five failures in a row lock the account for 15 minutes (429); each client address may try 20 times at once and twice a second after that.",
    request_body = LoginDto,
    responses((status = 200, body = TokensDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody))
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: LoginDto = json_body(&body)?;
    if req.email.len() > MAX_EMAIL_BYTES || !req.email.contains('@') {
        return Err(ApiError::invalid("email", "not an email address"));
    }
    if req.password.len() > MAX_PASSWORD_BYTES {
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
    let now = hub_core::time::now_ms();
    let access = state.storage.access();
    let user = access.user_by_email(&req.email).await?;
    if let Some(u) = &user
        && let Some(until) = u.locked_until_ms.filter(|t| *t > now)
    {
        let retry_after_secs = ((until - now) / 1000).max(1) as u64;
        audit_anonymous(
            &state,
            None,
            format!("user:{}", u.email),
            "auth.login_locked",
            "failed",
            source,
        )
        .await;
        return Err(ApiError::TooManyRequests {
            message: format!(
                "this account is locked after {MAX_FAILED_LOGINS} failed logins; retry after {retry_after_secs} s or ask an admin to reset the password"
            ),
            retry_after_secs,
        });
    }
    let ok = verify_password_async(
        req.password.clone(),
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await;
    let user = match user {
        Some(u) if ok => u,
        user => {
            // A known user's failures go to the audit log of each tenant they belong to.
            let (actor, tenants) = match &user {
                Some(u) => {
                    access
                        .record_login_failure(u.id, now, MAX_FAILED_LOGINS, LOCKOUT_MS)
                        .await?;
                    let tenants: Vec<Option<TenantId>> = access
                        .memberships(u.id)
                        .await?
                        .iter()
                        .map(|m| Some(m.tenant))
                        .collect();
                    (format!("user:{}", u.email), tenants)
                }
                None => (
                    format!("unknown:{}", req.email.trim().to_lowercase()),
                    vec![],
                ),
            };
            let tenants = if tenants.is_empty() {
                vec![None]
            } else {
                tenants
            };
            for tenant in tenants {
                audit_anonymous(
                    &state,
                    tenant,
                    actor.clone(),
                    "auth.login_failed",
                    "failed",
                    source.clone(),
                )
                .await;
            }
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
    };
    let (tenant, tenant_name, role) = pick_tenant(&state, &user, req.tenant.as_deref()).await?;
    access.record_login_success(user.id, now).await?;
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
    Ok(tokens_response(&state, &issued, &tenant_name))
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
    let from_cookie = crate::auth::cookie(&headers, REFRESH_COOKIE).map(str::to_string);
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
    Ok(clear_cookies(StatusCode::NO_CONTENT.into_response()))
}

#[utoipa::path(
    post, path = "/v1/auth/password", tag = "auth",
    description = "Changes the caller's password (at least 12 characters). Every session of the user ends; the answer holds a new one.",
    request_body = PasswordDto,
    responses((status = 200, body = TokensDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Actor::User { id, role, .. } = &principal.actor else {
        return Err(ApiError::BadRequest("API keys have no password".into()));
    };
    let req: PasswordDto = json_body(&body)?;
    let access = state.storage.access();
    let user = access
        .user_by_id(*id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the user no longer exists".into()))?;
    if req.current_password.len() > MAX_PASSWORD_BYTES
        || !verify_password_async(req.current_password.clone(), user.password_hash.clone()).await
    {
        return Err(ApiError::invalid("current_password", "wrong password"));
    }
    if let Some(problem) = password_problem(&req.new_password, &user.email) {
        return Err(ApiError::invalid("new_password", problem));
    }
    if req.new_password == req.current_password {
        return Err(ApiError::invalid(
            "new_password",
            "must differ from the current one",
        ));
    }
    let hash = hash_password_async(req.new_password).await;
    let now = hub_core::time::now_ms();
    access.set_password(user.id, &hash, false).await?;
    end_sessions(&state, user.id, now).await?;
    principal
        .audit(&state, "auth.password", None, None, None)
        .await;
    let user = User {
        must_change_password: false,
        ..user
    };
    let issued = state
        .sessions
        .issue(
            state.storage.as_ref(),
            &user,
            principal.tenant,
            *role,
            None,
            now,
        )
        .await?;
    let tenant_name = tenant_name(&state, principal.tenant)
        .await?
        .unwrap_or_default();
    Ok(tokens_response(&state, &issued, &tenant_name))
}

/// The name of the tenant with this id, if it still exists.
async fn tenant_name(state: &AppState, tenant: TenantId) -> Result<Option<String>, ApiError> {
    Ok(state
        .storage
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.id == tenant)
        .map(|t| t.name))
}

/// Ends every session of a user: refresh tokens in storage, access tokens at once on this
/// replica (within seconds on others).
async fn end_sessions(state: &AppState, user: i64, now_ms: i64) -> Result<(), ApiError> {
    state
        .storage
        .access()
        .revoke_user_sessions(user, now_ms)
        .await?;
    state.sessions.forget_user(user);
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/auth/me", tag = "auth",
    description = "Who the credential belongs to: user or API key, tenant, role or scopes, and the user's tenants.",
    responses((status = 200, body = MeDto), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MeDto>, ApiError> {
    let tenant = tenant_name(&state, principal.tenant)
        .await?
        .unwrap_or_default();
    Ok(Json(match &principal.actor {
        Actor::Key { id, prefix, scopes } => MeDto {
            kind: "api_key",
            id: *id,
            name: prefix.clone(),
            tenant,
            role: None,
            scopes: scopes.iter().map(|s| s.as_str().into()).collect(),
            operator: false,
            publisher: false,
            memberships: vec![],
            must_change_password: false,
        },
        Actor::User {
            id,
            email,
            role,
            operator,
            publisher,
            ..
        } => MeDto {
            kind: "user",
            id: *id,
            name: email.clone(),
            tenant,
            role: Some(role.as_str().into()),
            scopes: vec![],
            operator: *operator,
            publisher: *publisher,
            must_change_password: state
                .storage
                .access()
                .user_by_id(*id)
                .await?
                .is_some_and(|u| u.must_change_password),
            memberships: state
                .storage
                .access()
                .memberships(*id)
                .await?
                .into_iter()
                .map(|m| MembershipDto {
                    tenant: m.tenant_name,
                    role: m.role.as_str().into(),
                })
                .collect(),
        },
    }))
}

#[utoipa::path(
    get, path = "/v1/users", tag = "users",
    description = "The tenant's members with their roles. Needs the right to read configuration (analyst or higher, or a `query`/`admin` key).",
    responses((status = 200, body = MemberListDto), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MemberListDto>, ApiError> {
    principal.require(Right::ReadConfig)?;
    let now = hub_core::time::now_ms();
    let members = state.storage.access().members(principal.tenant).await?;
    Ok(Json(MemberListDto {
        users: members
            .iter()
            .map(|(u, r)| member_dto(u, *r, now))
            .collect(),
    }))
}

fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).map_err(|e| ApiError::invalid("role", e))
}

/// Changing `from` into `to` needs the right to manage members, and to manage owners when
/// either is an owner.
fn require_role_change(
    principal: &Principal,
    from: Option<Role>,
    to: Option<Role>,
) -> Result<(), ApiError> {
    principal.require(Right::ManageMembers)?;
    if from == Some(Role::Owner) || to == Some(Role::Owner) {
        principal.require(Right::ManageOwners)?;
    }
    Ok(())
}

/// The tenant's member `id`, its role, and a check of a change of that role to `to` (`None`:
/// removal) that refuses to leave the tenant without an owner; or a 404 that says nothing of
/// other tenants. One read of the members serves both.
async fn member(
    state: &AppState,
    tenant: TenantId,
    id: &str,
) -> Result<(User, Role, impl Fn(Option<Role>) -> Result<(), ApiError>), ApiError> {
    let id: Option<i64> = id.parse().ok();
    let members = state.storage.access().members(tenant).await?;
    let (user, role) = members
        .iter()
        .find(|(u, _)| Some(u.id) == id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("no such member in this tenant".into()))?;
    let user_id = user.id;
    let check = move |to: Option<Role>| {
        if leaves_no_owner(&members, user_id, to) {
            Err(ApiError::BadRequest(
                "this is the tenant's last owner; make another owner first".into(),
            ))
        } else {
            Ok(())
        }
    };
    Ok((user, role, check))
}

/// Whether giving member `user` the role `to` (`None`: removing it) would leave the tenant
/// without an owner.
pub fn leaves_no_owner(members: &[(User, Role)], user: i64, to: Option<Role>) -> bool {
    let is_owner = members
        .iter()
        .any(|(u, r)| u.id == user && *r == Role::Owner);
    let owners = members.iter().filter(|(_, r)| *r == Role::Owner).count();
    is_owner && to != Some(Role::Owner) && owners <= 1
}

#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    description = "Adds a member with a role. A person new to the hub gets an account and a one-time password in the answer. Admins add up to admin; owners also add owners.",
    request_body = AddMemberDto,
    responses((status = 201, body = AddedMemberDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<AddedMemberDto>), ApiError> {
    principal.require(Right::ManageMembers)?;
    let req: AddMemberDto = json_body(&body)?;
    let role = parse_role(&req.role)?;
    let email = req.email.trim().to_lowercase();
    if email.len() > MAX_EMAIL_BYTES || email.split('@').filter(|p| !p.is_empty()).count() != 2 {
        return Err(ApiError::invalid("email", "not an email address"));
    }
    let access = state.storage.access();
    let now = hub_core::time::now_ms();
    let (user, one_time_password) = match access.user_by_email(&email).await? {
        Some(u) => (u, None),
        None => {
            let password = one_time_password();
            let hash = hash_password_async(password.clone()).await;
            let name = req.display_name.clone().unwrap_or_else(|| email.clone());
            if name.chars().count() > 128 {
                return Err(ApiError::invalid("display_name", "at most 128 characters"));
            }
            let u = access
                .create_user(
                    &NewUser {
                        email: email.clone(),
                        display_name: name,
                        password_hash: Some(hash),
                        must_change_password: true,
                        operator: false,
                        publisher: false,
                    },
                    now,
                )
                .await?;
            (u, Some(password))
        }
    };
    let before = access
        .memberships(user.id)
        .await?
        .into_iter()
        .find(|m| m.tenant == principal.tenant)
        .map(|m| m.role);
    if before.is_some() {
        return Err(ApiError::BadRequest(format!(
            "{email} is already a member; change the role with PUT /v1/users/{}",
            user.id
        )));
    }
    require_role_change(&principal, None, Some(role))?;
    access
        .set_membership(user.id, principal.tenant, Some(role), now)
        .await?;
    principal
        .audit(
            &state,
            "member.add",
            Some(format!("user:{email}")),
            None,
            Some(serde_json::json!({"role": role.as_str()})),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(AddedMemberDto {
            user: member_dto(&user, role, now),
            one_time_password,
        }),
    ))
}

#[utoipa::path(
    put, path = "/v1/users/{id}", tag = "users",
    description = "Sets a member's role. Admins manage roles up to admin; only owners make or unmake owners; the last owner stays an owner.",
    params(("id" = i64, Path, description = "the user's id")),
    request_body = SetRoleDto,
    responses((status = 200, body = MemberDto), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MemberDto>, ApiError> {
    principal.require(Right::ManageMembers)?;
    let req: SetRoleDto = json_body(&body)?;
    let role = parse_role(&req.role)?;
    let (user, before, owner_left) = member(&state, principal.tenant, &id).await?;
    require_role_change(&principal, Some(before), Some(role))?;
    owner_left(Some(role))?;
    let now = hub_core::time::now_ms();
    state
        .storage
        .access()
        .set_membership(user.id, principal.tenant, Some(role), now)
        .await?;
    // Sessions carry the role: end them so that the new one applies within seconds.
    if role != before {
        end_sessions(&state, user.id, now).await?;
    }
    principal
        .audit(
            &state,
            "member.role",
            Some(format!("user:{}", user.email)),
            Some(serde_json::json!({"role": before.as_str()})),
            Some(serde_json::json!({"role": role.as_str()})),
        )
        .await;
    Ok(Json(member_dto(&user, role, now)))
}

#[utoipa::path(
    delete, path = "/v1/users/{id}", tag = "users",
    description = "Removes a member from the tenant (the account stays for other tenants). Same rules as changing the role.",
    params(("id" = i64, Path, description = "the user's id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::ManageMembers)?;
    let (user, before, owner_left) = member(&state, principal.tenant, &id).await?;
    require_role_change(&principal, Some(before), None)?;
    owner_left(None)?;
    let now = hub_core::time::now_ms();
    state
        .storage
        .access()
        .set_membership(user.id, principal.tenant, None, now)
        .await?;
    end_sessions(&state, user.id, now).await?;
    principal
        .audit(
            &state,
            "member.remove",
            Some(format!("user:{}", user.email)),
            Some(serde_json::json!({"role": before.as_str()})),
            None,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/v1/users/{id}/password-reset", tag = "users",
    description = "Gives a member a one-time password (to be changed at the next login), unlocks the account and ends its sessions. Resetting an owner needs an owner.",
    params(("id" = i64, Path, description = "the user's id")),
    responses((status = 200, body = PasswordResetDto), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<PasswordResetDto>, ApiError> {
    principal.require(Right::ManageMembers)?;
    let (user, role, _) = member(&state, principal.tenant, &id).await?;
    require_role_change(&principal, Some(role), Some(role))?;
    if user.operator && !principal.is_operator() {
        return Err(ApiError::Forbidden(
            "only an operator may reset an operator's password".into(),
        ));
    }
    let password = one_time_password();
    let hash = hash_password_async(password.clone()).await;
    state
        .storage
        .access()
        .set_password(user.id, &hash, true)
        .await?;
    end_sessions(&state, user.id, hub_core::time::now_ms()).await?;
    principal
        .audit(
            &state,
            "member.password_reset",
            Some(format!("user:{}", user.email)),
            None,
            None,
        )
        .await;
    Ok(Json(PasswordResetDto {
        one_time_password: password,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDto {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// The caller's role there (`owner` for operators who are not members).
    pub role: Option<String>,
}

fn tenant_dto(t: &hub_storage::Tenant, role: Option<Role>) -> TenantDto {
    TenantDto {
        id: t.id.get(),
        name: t.name.clone(),
        created_at: hub_core::time::to_rfc3339(t.created_at_ms),
        role: role.map(|r| r.as_str().into()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantListDto {
    pub tenants: Vec<TenantDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantDto {
    /// Lowercase letters, digits and dashes, 1 to 64.
    pub name: String,
}

#[utoipa::path(
    get, path = "/v1/tenants", tag = "users",
    description = "The tenants the caller may act in: every tenant for an operator, the user's memberships otherwise, the key's own tenant for an API key.",
    responses((status = 200, body = TenantListDto)),
    security(("api_key" = []))
)]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TenantListDto>, ApiError> {
    let all = state.storage.list_tenants().await?;
    let tenants = match &principal.actor {
        Actor::Key { .. } => all
            .iter()
            .filter(|t| t.id == principal.tenant)
            .map(|t| tenant_dto(t, None))
            .collect(),
        Actor::User { id, operator, .. } => {
            let ms = state.storage.access().memberships(*id).await?;
            all.iter()
                .filter_map(|t| {
                    let role = ms.iter().find(|m| m.tenant == t.id).map(|m| m.role);
                    match (role, operator) {
                        (Some(r), _) => Some(tenant_dto(t, Some(r))),
                        (None, true) => Some(tenant_dto(t, Some(Role::Owner))),
                        (None, false) => None,
                    }
                })
                .collect()
        }
    };
    Ok(Json(TenantListDto { tenants }))
}

#[utoipa::path(
    post, path = "/v1/tenants", tag = "users",
    description = "Creates a tenant. Operators only; the operator becomes its owner.",
    request_body = CreateTenantDto,
    responses((status = 201, body = TenantDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantDto>), ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::Forbidden("only operators create tenants".into()));
    }
    let req: CreateTenantDto = json_body(&body)?;
    let name = req.name.trim();
    hub_core::tenant::check_tenant_name(name).map_err(|e| ApiError::invalid("name", e))?;
    let now = hub_core::time::now_ms();
    let t = state
        .storage
        .create_tenant(name, now)
        .await
        .map_err(|e| match e {
            hub_storage::StorageError::Conflict(_) => {
                ApiError::BadRequest(format!("a tenant named '{name}' exists"))
            }
            e => e.into(),
        })?;
    if let Actor::User { id, .. } = &principal.actor {
        state
            .storage
            .access()
            .set_membership(*id, t.id, Some(Role::Owner), now)
            .await?;
    }
    crate::audit::record(
        &state,
        AuditEntry {
            at_ms: now,
            tenant: Some(t.id),
            actor: principal.actor_label(),
            action: "tenant.create".into(),
            target: Some(format!("tenant:{name}")),
            source: principal.source.clone(),
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(tenant_dto(&t, Some(Role::Owner)))))
}
