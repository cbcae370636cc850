//! Invitations: how a person joins a tenant. An admin's invitation (`POST /v1/users`) grants
//! nothing by itself; it holds a one-time code that the person uses to accept, either signed in as
//! the account of the invited email (`POST /v1/auth/invitations/accept`) or, for an email without
//! an account, by choosing a password (`POST /v1/auth/invitations/redeem`). So an admin can never
//! pull another tenant's account into their tenant, and the invitation answer is the same whether
//! or not the email has an account anywhere.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hub_core::Role;
use hub_storage::{Acceptance, Invitation, NewInvitation, NewUser, StorageError, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit::audit_anonymous;
use crate::auth::{Actor, ClientAddr, Right};
use crate::credentials::passwords::{
    MAX_EMAIL_BYTES, MAX_PASSWORD_BYTES, hash_password_async, password_problem,
};
use crate::credentials::{hash_key, random_token};
use crate::signin::{password_sign_in, tokens_response};
use crate::tenants::tenant_name;
use crate::{ApiError, AppState, Principal, json_body};

/// How long an invitation's code works.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Pending invitations a tenant may have at once.
pub const MAX_PENDING_INVITATIONS: usize = 500;
const CODE_PREFIX: &str = "hinv_";

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept))
        .routes(routes!(redeem))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationDto {
    pub id: i64,
    pub email: String,
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub state: String,
    /// Who invited (`user:<email>`, `cli`).
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
}

/// The answer to an invitation: the same shape whether or not the email has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationCreatedDto {
    pub invitation: InvitationDto,
    /// Hand it to the person (shown once). Signed in as the invited email, they accept with
    /// `POST /v1/auth/invitations/accept`; without an account, they choose a password with
    /// `POST /v1/auth/invitations/redeem`.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationListDto {
    pub invitations: Vec<InvitationDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptDto {
    /// The invitation's code.
    #[schema(pattern = "^hinv_[A-Za-z0-9_-]{43}$")]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemDto {
    /// The invitation's code.
    #[schema(pattern = "^hinv_[A-Za-z0-9_-]{43}$")]
    pub code: String,
    /// For an email new to the hub: the password to create the account with (at least 12
    /// characters). For an email with an account: that account's password.
    pub password: String,
    /// For a new account; the email when absent.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn invitation_dto(i: &Invitation, now_ms: i64) -> InvitationDto {
    InvitationDto {
        id: i.id,
        email: i.email.clone(),
        role: i.role.as_str().into(),
        state: i.state(now_ms).into(),
        invited_by: i.invited_by.clone(),
        created_at: hub_core::time::to_rfc3339(i.created_at_ms),
        expires_at: hub_core::time::to_rfc3339(i.expires_at_ms),
        accepted_at: i.accepted_at_ms.map(hub_core::time::to_rfc3339),
    }
}

/// Invites `email` into the caller's tenant as `role` (the caller's right to grant it already
/// checked). Reads nothing about accounts, so neither the answer nor its timing says whether the
/// email has one.
pub(crate) async fn invite(
    state: &AppState,
    principal: &Principal,
    email: &str,
    role: Role,
    display_name: Option<String>,
) -> Result<InvitationCreatedDto, ApiError> {
    let email = email.trim().to_lowercase();
    if email.len() > MAX_EMAIL_BYTES || email.split('@').filter(|p| !p.is_empty()).count() != 2 {
        return Err(ApiError::invalid("email", "not an email address"));
    }
    if display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 128)
    {
        return Err(ApiError::invalid("display_name", "at most 128 characters"));
    }
    let members = state.storage.access().members(principal.tenant).await?;
    if let Some((u, _)) = members.iter().find(|(u, _)| u.email == email) {
        return Err(ApiError::BadRequest(format!(
            "{email} is already a member; change the role with PUT /v1/users/{}",
            u.id
        )));
    }
    let now = hub_core::time::now_ms();
    let pending = state
        .storage
        .invitations()
        .list_invitations(principal.tenant)
        .await?
        .iter()
        .filter(|i| i.is_pending(now) && i.email != email)
        .count();
    if pending >= MAX_PENDING_INVITATIONS {
        return Err(ApiError::BadRequest(format!(
            "this tenant has {pending} pending invitations, the most it may have; revoke some (DELETE /v1/invitations/{{id}}) or wait for them to expire"
        )));
    }
    let code = random_token(CODE_PREFIX);
    let inv = state
        .storage
        .invitations()
        .create_invitation(
            &NewInvitation {
                tenant: principal.tenant,
                email: email.clone(),
                role,
                display_name,
                code_hash: hash_key(&code),
                invited_by: principal.actor_label(),
                expires_at_ms: now + INVITATION_TTL.as_millis() as i64,
            },
            now,
        )
        .await?;
    principal
        .audit(
            state,
            "member.invite",
            Some(format!("user:{email}")),
            None,
            Some(serde_json::json!({"role": role.as_str(), "invitation": inv.id})),
        )
        .await;
    Ok(InvitationCreatedDto {
        invitation: invitation_dto(&inv, now),
        code,
    })
}

#[utoipa::path(
    get, path = "/v1/invitations", tag = "users",
    description = "The tenant's invitations, newest first, in every state (never their codes). Needs the right to manage members.",
    responses((status = 200, body = InvitationListDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_invitations(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<InvitationListDto>, ApiError> {
    principal.require(Right::ManageMembers)?;
    let now = hub_core::time::now_ms();
    let all = state
        .storage
        .invitations()
        .list_invitations(principal.tenant)
        .await?;
    Ok(Json(InvitationListDto {
        invitations: all.iter().map(|i| invitation_dto(i, now)).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/v1/invitations/{id}", tag = "users",
    description = "Revokes a pending invitation: its code stops working. An owner's invitation needs an owner.",
    params(("id" = i64, Path, description = "the invitation's id")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_invitation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::ManageMembers)?;
    let not_found =
        || ApiError::NotFound("no pending invitation with that id in this tenant".into());
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let invitations = state.storage.invitations();
    let now = hub_core::time::now_ms();
    let inv = invitations
        .list_invitations(principal.tenant)
        .await?
        .into_iter()
        .find(|i| i.id == id && i.is_pending(now))
        .ok_or_else(not_found)?;
    principal.require_role_change(None, Some(inv.role))?;
    invitations
        .revoke_invitation(principal.tenant, id, now)
        .await?
        .ok_or_else(not_found)?;
    principal
        .audit(
            &state,
            "member.invite_revoke",
            Some(format!("user:{}", inv.email)),
            Some(serde_json::json!({"role": inv.role.as_str(), "invitation": inv.id})),
            None,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The pending invitation with this code; one answer for unknown, used, revoked and expired codes.
async fn pending_invitation(state: &AppState, code: &str) -> Result<Invitation, ApiError> {
    let gone = || {
        ApiError::NotFound(
            "no such invitation, or it was already used, revoked or has expired; ask for a new one"
                .into(),
        )
    };
    if code.len() > 128 || !code.starts_with(CODE_PREFIX) {
        return Err(gone());
    }
    let inv = state
        .storage
        .invitations()
        .invitation_by_code(&hash_key(code))
        .await?
        .ok_or_else(gone)?;
    if !inv.is_pending(hub_core::time::now_ms()) {
        return Err(gone());
    }
    Ok(inv)
}

/// Uses the invitation for `user`, audits it in the tenant it is for, and answers tokens for a
/// session in that tenant.
async fn join(
    state: &AppState,
    inv: &Invitation,
    user: &User,
    source: Option<String>,
) -> Result<Response, ApiError> {
    let now = hub_core::time::now_ms();
    let role = match state
        .storage
        .invitations()
        .accept_invitation(inv.id, user.id, now)
        .await?
    {
        Acceptance::Joined(i) => i.role,
        Acceptance::AlreadyMember(_, role) => role,
        Acceptance::Gone => {
            return Err(ApiError::NotFound(
                "this invitation was used, revoked or expired a moment ago; ask for a new one"
                    .into(),
            ));
        }
    };
    let actor = format!("user:{}", user.email);
    crate::audit::record(
        state,
        hub_storage::AuditEntry {
            at_ms: now,
            tenant: Some(inv.tenant),
            actor: actor.clone(),
            action: "member.join".into(),
            target: Some(actor),
            source,
            outcome: "ok".into(),
            before: None,
            after: Some(
                serde_json::json!({"role": role.as_str(), "invitation": inv.id, "invited_by": inv.invited_by})
                    .to_string(),
            ),
        },
    )
    .await;
    let name = tenant_name(state, inv.tenant).await?.ok_or_else(|| {
        ApiError::NotFound("the tenant of this invitation no longer exists".into())
    })?;
    let issued = state
        .sessions
        .issue(state.storage.as_ref(), user, inv.tenant, role, None, now)
        .await?;
    Ok(tokens_response(state, &issued, &name))
}

#[utoipa::path(
    post, path = "/v1/auth/invitations/accept", tag = "auth",
    description = "Accepts an invitation as the signed-in person, whose email must be the invited one. Answers tokens (and cookies) for a session in the tenant joined; a person who already was a member keeps their role.",
    request_body = AcceptDto,
    responses((status = 200, body = crate::signin::TokensDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Actor::User { id, email, .. } = &principal.actor else {
        return Err(ApiError::BadRequest(
            "API keys cannot accept invitations; sign in as the invited person".into(),
        ));
    };
    let req: AcceptDto = json_body(&body)?;
    let inv = pending_invitation(&state, &req.code).await?;
    if inv.email != *email {
        return Err(ApiError::Forbidden(format!(
            "this invitation is for another email address; sign in as {} to accept it",
            inv.email
        )));
    }
    let user = state
        .storage
        .access()
        .user_by_id(*id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the user no longer exists".into()))?;
    join(&state, &inv, &user, principal.source.clone()).await
}

#[utoipa::path(
    post, path = "/v1/auth/invitations/redeem", tag = "auth",
    description = "Accepts an invitation without a session. For an email new to the hub, creates its account with the password given (at least 12 characters); for an email with an account, the password is that account's and is checked as a sign-in is (same throttle and lockout). Answers tokens (and cookies) for a session in the tenant joined.",
    request_body = RedeemDto,
    responses((status = 200, body = crate::signin::TokensDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody))
)]
pub(crate) async fn redeem(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RedeemDto = json_body(&body)?;
    if req.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    let inv = pending_invitation(&state, &req.code).await?;
    let access = state.storage.access();
    let user = match access.user_by_email(&inv.email).await? {
        Some(_) => {
            let user =
                password_sign_in(&state, &headers, &inv.email, &req.password, &source).await?;
            access
                .record_login_success(user.id, hub_core::time::now_ms())
                .await?;
            user
        }
        None => {
            if let Some(problem) = password_problem(&req.password, &inv.email) {
                return Err(ApiError::invalid("password", problem));
            }
            let name = req
                .display_name
                .or(inv.display_name.clone())
                .unwrap_or_else(|| inv.email.clone());
            if name.chars().count() > 128 {
                return Err(ApiError::invalid("display_name", "at most 128 characters"));
            }
            let hash = hash_password_async(req.password).await;
            let now = hub_core::time::now_ms();
            let created = access
                .create_user(
                    &NewUser {
                        email: inv.email.clone(),
                        display_name: name,
                        password_hash: Some(hash),
                        must_change_password: false,
                        operator: false,
                        publisher: false,
                    },
                    now,
                )
                .await;
            match created {
                Ok(u) => {
                    access.record_login_success(u.id, now).await?;
                    audit_anonymous(
                        &state,
                        Some(inv.tenant),
                        format!("user:{}", u.email),
                        "user.create",
                        "ok",
                        source.clone(),
                    )
                    .await;
                    u
                }
                // Another request created the account a moment ago.
                Err(StorageError::Conflict(_)) => {
                    return Err(ApiError::Conflict(
                        "the account was created a moment ago; redeem the invitation again".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    join(&state, &inv, &user, source).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_random_and_prefixed() {
        let a = random_token(CODE_PREFIX);
        let b = random_token(CODE_PREFIX);
        assert!(a.starts_with(CODE_PREFIX) && a.len() >= 40, "{a}");
        assert_ne!(a, b);
    }
}
