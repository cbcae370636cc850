//! Invitations: a tenant's admins invite a person by email; the invitation grants nothing until the
//! person accepts it with its code. One implementation over any sqlx backend, reached through
//! [`crate::Storage::invitations`].

use async_trait::async_trait;
use hub_core::{Role, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::access::role;
use crate::decode::HubRow;
use crate::sql::{Bind, into_query, with_binds};

/// An invitation as stored (the code's hash, never the code).
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: i64,
    pub tenant: TenantId,
    /// Lowercased.
    pub email: String,
    pub role: Role,
    pub display_name: Option<String>,
    /// The audit log's label of who invited.
    pub invited_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub accepted_at_ms: Option<i64>,
    pub accepted_by: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl Invitation {
    /// `pending`, `accepted`, `revoked` or `expired` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.accepted_at_ms.is_some() {
            "accepted"
        } else if self.revoked_at_ms.is_some() {
            "revoked"
        } else if self.expires_at_ms <= now_ms {
            "expired"
        } else {
            "pending"
        }
    }

    /// Whether its code still works at `now_ms`.
    pub fn is_pending(&self, now_ms: i64) -> bool {
        self.state(now_ms) == "pending"
    }
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub tenant: TenantId,
    pub email: String,
    pub role: Role,
    pub display_name: Option<String>,
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    pub invited_by: String,
    pub expires_at_ms: i64,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Acceptance {
    /// The person is now a member with the invitation's role.
    Joined(Invitation),
    /// The person was already a member (say, through single sign-on); the role is unchanged.
    AlreadyMember(Invitation, Role),
    /// The invitation was accepted, revoked or expired before this call.
    Gone,
}

#[async_trait]
pub trait InvitationStorage: Send + Sync {
    /// Stores an invitation; a pending one to the same email in the same tenant is revoked, so
    /// only the newest code works.
    async fn create_invitation(&self, inv: &NewInvitation, now_ms: i64) -> Result<Invitation>;
    /// The tenant's invitations, newest first.
    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>>;
    /// The invitation with this code hash, in any state.
    async fn invitation_by_code(&self, code_hash: &str) -> Result<Option<Invitation>>;
    /// Revokes the tenant's pending invitation `id`; `None` when it has no such pending one.
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<Invitation>>;
    /// Uses invitation `id` for `user` in one transaction: marks it accepted (only if it is still
    /// pending at `now_ms`) and makes the user a member with its role unless already one.
    async fn accept_invitation(&self, id: i64, user: i64, now_ms: i64) -> Result<Acceptance>;
}

pub(crate) struct SqlInvitations<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlInvitations<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const COLUMNS: &str = "id, tenant_id, email, role, display_name, invited_by, created_at, \
    expires_at, accepted_at, accepted_by, revoked_at";

fn invitation<R: HubRow>(row: &R) -> Result<Invitation> {
    Ok(Invitation {
        id: row.int("id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        email: row.text("email")?,
        role: role(&row.text("role")?)?,
        display_name: row.opt_text("display_name")?,
        invited_by: row.text("invited_by")?,
        created_at_ms: row.int("created_at")?,
        expires_at_ms: row.int("expires_at")?,
        accepted_at_ms: row.opt_int("accepted_at")?,
        accepted_by: row.opt_int("accepted_by")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

#[async_trait]
impl<DB> InvitationStorage for SqlInvitations<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    DB::Row: HubRow,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    async fn create_invitation(&self, inv: &NewInvitation, now_ms: i64) -> Result<Invitation> {
        let email = inv.email.trim().to_lowercase();
        let mut tx = self.writer.begin().await?;
        into_query::<DB>(with_binds(
            "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND email = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
            vec![
                Bind::I64(now_ms),
                Bind::I64(inv.tenant.get()),
                Bind::Text(email.clone()),
            ],
        ))
        .execute(&mut *tx)
        .await?;
        let mut buf = with_binds(
            "INSERT INTO invitations (tenant_id, email, role, display_name, code_hash, invited_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            vec![
                Bind::I64(inv.tenant.get()),
                Bind::Text(email),
                Bind::Text(inv.role.as_str().into()),
                Bind::OptText(inv.display_name.clone()),
                Bind::Text(inv.code_hash.clone()),
                Bind::Text(inv.invited_by.clone()),
                Bind::I64(now_ms),
                Bind::I64(inv.expires_at_ms),
            ],
        );
        buf.push(COLUMNS);
        let row = into_query::<DB>(buf).fetch_one(&mut *tx).await?;
        let created = invitation(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(COLUMNS)
            .push(" FROM invitations WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" ORDER BY id DESC");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(invitation).collect()
    }

    async fn invitation_by_code(&self, code_hash: &str) -> Result<Option<Invitation>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(COLUMNS)
            .push(" FROM invitations WHERE code_hash = ")
            .bind(Bind::Text(code_hash.into()));
        // The writer: a code created a moment ago on this replica must be found.
        let row = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        row.as_ref().map(invitation).transpose()
    }

    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<Invitation>> {
        let mut buf = with_binds(
            "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL RETURNING ",
            vec![Bind::I64(now_ms), Bind::I64(tenant.get()), Bind::I64(id)],
        );
        buf.push(COLUMNS);
        let row = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        row.as_ref().map(invitation).transpose()
    }

    async fn accept_invitation(&self, id: i64, user: i64, now_ms: i64) -> Result<Acceptance> {
        let mut tx = self.writer.begin().await?;
        let mut buf = with_binds(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING ",
            vec![Bind::I64(now_ms), Bind::I64(user), Bind::I64(id)],
        );
        buf.push(COLUMNS);
        let Some(row) = into_query::<DB>(buf).fetch_optional(&mut *tx).await? else {
            return Ok(Acceptance::Gone);
        };
        let inv = invitation(&row)?;
        let existing = into_query::<DB>(with_binds(
            "SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2",
            vec![Bind::I64(user), Bind::I64(inv.tenant.get())],
        ))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.text("role").and_then(|s| role(&s)))
        .transpose()?;
        let outcome = match existing {
            Some(held) => Acceptance::AlreadyMember(inv, held),
            None => {
                into_query::<DB>(with_binds(
                    "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    vec![
                        Bind::I64(user),
                        Bind::I64(inv.tenant.get()),
                        Bind::Text(inv.role.as_str().into()),
                        Bind::I64(now_ms),
                    ],
                ))
                .execute(&mut *tx)
                .await?;
                Acceptance::Joined(inv)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
