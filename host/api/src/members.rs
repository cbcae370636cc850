//! A tenant's members (`/v1/users`): list, invite, set role, remove, reset password. What a
//! tenant's admins may do here stops at their own tenant: they never set another tenant's roles,
//! end its sessions, or change the credentials of an account that other tenants share.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hub_core::{Role, TenantId};
use hub_storage::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::account::end_sessions;
use crate::audit::audit_account;
use crate::auth::Right;
use crate::credentials::lockout;
use crate::credentials::passwords::{hash_password_async, one_time_password};
use crate::{ApiError, AppState, Principal, json_body};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(set_role, remove_member))
        .routes(routes!(reset_password))
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

/// `locked`: whether failed sign-ins at the member's email hold back browsers that never signed
/// in to the account (see `throttle`).
pub(crate) fn member_dto(u: &User, role: Role, locked: bool) -> MemberDto {
    MemberDto {
        id: u.id,
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        role: role.as_str().into(),
        sso_only: u.password_hash.is_none(),
        locked,
        last_login_at: u.last_login_at_ms.map(hub_core::time::to_rfc3339),
        created_at: hub_core::time::to_rfc3339(u.created_at_ms),
    }
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
    let members = state.storage.access().members(principal.tenant).await?;
    let emails: Vec<String> = members.iter().map(|(u, _)| u.email.clone()).collect();
    let locked = lockout::locked(state.storage.as_ref(), &emails, hub_core::time::now_ms()).await?;
    Ok(Json(MemberListDto {
        users: members
            .iter()
            .zip(locked)
            .map(|((u, r), locked)| member_dto(u, *r, locked))
            .collect(),
    }))
}

pub(crate) fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).map_err(|e| ApiError::invalid("role", e))
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
    description = "Invites a person by email with a role. Nothing is granted until the person accepts with the code in the answer (signed in as the account of that email, or by choosing a password when the email has no account yet); the code is shown once and works for 7 days. The answer is the same whether or not the email has an account anywhere. Admins invite up to admin; owners also invite owners. Inviting the same email again replaces the pending invitation.",
    request_body = AddMemberDto,
    responses((status = 201, body = crate::invitations::InvitationCreatedDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<crate::invitations::InvitationCreatedDto>), ApiError> {
    principal.require(Right::ManageMembers)?;
    let req: AddMemberDto = json_body(&body)?;
    let role = parse_role(&req.role)?;
    principal.require_role_change(None, Some(role))?;
    let created =
        crate::invitations::invite(&state, &principal, &req.email, role, req.display_name).await?;
    Ok((StatusCode::CREATED, Json(created)))
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
    principal.require_role_change(Some(before), Some(role))?;
    owner_left(Some(role))?;
    let now = hub_core::time::now_ms();
    state
        .storage
        .access()
        .set_membership(user.id, principal.tenant, Some(role), now)
        .await?;
    // Sessions carry the role: end them so that the new one applies within seconds.
    if role != before {
        end_sessions(&state, user.id, Some(principal.tenant), now).await?;
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
    let locked = lockout::locked(
        state.storage.as_ref(),
        std::slice::from_ref(&user.email),
        hub_core::time::now_ms(),
    )
    .await?;
    Ok(Json(member_dto(&user, role, locked[0])))
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
    principal.require_role_change(Some(before), None)?;
    owner_left(None)?;
    let now = hub_core::time::now_ms();
    state
        .storage
        .access()
        .set_membership(user.id, principal.tenant, None, now)
        .await?;
    end_sessions(&state, user.id, Some(principal.tenant), now).await?;
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
    description = "Gives a member a one-time password (to be changed at the next login), forgets the failed sign-ins at its email and ends its sessions. Only for accounts that belong to this tenant alone and hold no platform right (operator, publisher): anyone else's credentials are theirs or an operator's to change (403). Resetting an owner needs an owner. Audited in every tenant of the account.",
    params(("id" = i64, Path, description = "the user's id")),
    responses((status = 200, body = PasswordResetDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<PasswordResetDto>, ApiError> {
    principal.require(Right::ManageMembers)?;
    let (user, role, _) = member(&state, principal.tenant, &id).await?;
    principal.require_role_change(Some(role), Some(role))?;
    if !principal.is_operator() {
        if user.operator || user.publisher {
            return Err(ApiError::Forbidden(
                "this account holds a platform right (operator or publisher); only an operator may reset its password (`hub user reset-password`)".into(),
            ));
        }
        let elsewhere = state
            .storage
            .access()
            .memberships(user.id)
            .await?
            .iter()
            .any(|m| m.tenant != principal.tenant);
        if elsewhere {
            return Err(ApiError::Forbidden(
                "this account also belongs to other tenants; only the person (`POST /v1/auth/password`) or an operator may change its password".into(),
            ));
        }
    }
    let password = one_time_password();
    let hash = hash_password_async(password.clone()).await;
    state
        .storage
        .access()
        .set_password(user.id, &hash, true)
        .await?;
    lockout::clear(state.storage.as_ref(), &user.email, None).await?;
    end_sessions(&state, user.id, None, hub_core::time::now_ms()).await?;
    audit_account(
        &state,
        &user,
        principal.actor_label(),
        "member.password_reset",
        "ok",
        principal.source.clone(),
    )
    .await?;
    Ok(Json(PasswordResetDto {
        one_time_password: password,
    }))
}
