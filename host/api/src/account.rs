//! A signed-in user's own account: `/v1/auth/me` (who the credential is, and the user's
//! tenants) and `/v1/auth/password`; ending a user's sessions, which a password change and the
//! members' routes share.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use hub_core::TenantId;
use hub_storage::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit::audit_account;
use crate::auth::Actor;
use crate::credentials::lockout;
use crate::credentials::passwords::{
    MAX_PASSWORD_BYTES, hash_password_async, password_problem, verify_password_async,
};
use crate::signin::{TokensDto, tokens_response};
use crate::tenants::tenant_name;
use crate::{ApiError, AppState, Principal, json_body, throttle};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordDto {
    pub current_password: String,
    pub new_password: String,
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

#[utoipa::path(
    post, path = "/v1/auth/password", tag = "auth",
    description = "Changes the caller's password (at least 12 characters). Every session of the user ends; the answer holds a new one. A wrong current password counts as a failed sign-in (the same backoff, 429) and is audited in every tenant of the account.",
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
    // A stolen session must not become a way to guess the password: the same backoff as
    // signing in, from this address and for this email, and every miss audited.
    throttle::check(&state, &user.email, &principal.source, false).await?;
    if req.current_password.len() > MAX_PASSWORD_BYTES
        || !verify_password_async(req.current_password.clone(), user.password_hash.clone()).await
    {
        lockout::failed(state.storage.as_ref(), &user.email, &principal.source).await?;
        audit_account(
            &state,
            &user,
            principal.actor_label(),
            "auth.password_failed",
            "failed",
            principal.source.clone(),
        )
        .await?;
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
    end_sessions(&state, user.id, None, now).await?;
    audit_account(
        &state,
        &user,
        principal.actor_label(),
        "auth.password",
        "ok",
        principal.source.clone(),
    )
    .await?;
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

/// Ends the sessions of a user, every one or those in `tenant`: refresh tokens in storage, access
/// tokens at once on this replica (within seconds on others).
pub(crate) async fn end_sessions(
    state: &AppState,
    user: i64,
    tenant: Option<TenantId>,
    now_ms: i64,
) -> Result<(), ApiError> {
    state
        .storage
        .access()
        .revoke_user_sessions(user, tenant, now_ms)
        .await?;
    state.sessions.forget_user(user, tenant);
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
