//! Users, memberships, sessions, signing keys and single sign-on logins in flight: one
//! implementation over any sqlx backend, reached through [`crate::Storage::access`]. Saved views
//! are `views`, the audit log `audit`.

use async_trait::async_trait;
use hub_core::{Role, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::shared::conflict;
use crate::sql::{Bind, flag, into_query, with_binds};
use crate::{Result, StorageError};

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    /// Lowercased.
    pub email: String,
    pub display_name: String,
    /// argon2id in PHC form; `None` for SSO-only users.
    pub password_hash: Option<String>,
    /// Set for a one-time or admin-reset password: nothing but a password change is allowed.
    pub must_change_password: bool,
    /// Runs the deployment: tenants, users, every tenant's data.
    pub operator: bool,
    /// May publish plugins to the marketplace.
    pub publisher: bool,
    pub failed_logins: i64,
    pub locked_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub last_login_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub must_change_password: bool,
    pub operator: bool,
    pub publisher: bool,
}

/// A user's role in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub user_id: i64,
    pub tenant: TenantId,
    pub tenant_name: String,
    pub role: Role,
}

/// A refresh token as stored (its hash, never the token).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id: i64,
    /// The login session this token belongs to.
    pub family: String,
    pub user_id: i64,
    pub tenant: TenantId,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub family: String,
    pub user_id: i64,
    pub tenant: TenantId,
    pub token_hash: String,
    pub expires_at_ms: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshUse {
    /// Valid and now used: issue its successor.
    Fresh(RefreshToken),
    /// Used before: the token leaked or was replayed. Its whole family is now revoked.
    Reused(RefreshToken),
    /// Expired or revoked.
    Dead(RefreshToken),
    Unknown,
}

/// An HMAC key for access tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: String,
    pub created_at_ms: i64,
}

/// A single sign-on login between the redirect to the provider and its return.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcLogin {
    pub state: String,
    pub verifier: String,
    pub nonce: String,
    pub tenant: Option<String>,
    pub created_at_ms: i64,
}

/// Users, memberships and sessions, whatever the backend.
#[async_trait]
pub trait AccessStorage: Send + Sync {
    async fn create_user(&self, user: &NewUser, now_ms: i64) -> Result<User>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn count_users(&self) -> Result<i64>;
    async fn set_password(&self, user: i64, hash: &str, must_change: bool) -> Result<()>;
    async fn set_platform_rights(&self, user: i64, operator: bool, publisher: bool) -> Result<()>;
    async fn record_login_success(&self, user: i64, now_ms: i64) -> Result<()>;

    /// Sets the user's role in the tenant; `None` removes the membership. Returns the role before.
    async fn set_membership(
        &self,
        user: i64,
        tenant: TenantId,
        role: Option<Role>,
        now_ms: i64,
    ) -> Result<Option<Role>>;
    async fn memberships(&self, user: i64) -> Result<Vec<Membership>>;
    async fn members(&self, tenant: TenantId) -> Result<Vec<(User, Role)>>;

    async fn insert_refresh_token(&self, token: &NewRefreshToken, now_ms: i64) -> Result<()>;
    /// Uses a refresh token once (see [`RefreshUse`]).
    async fn use_refresh_token(&self, token_hash: &str, now_ms: i64) -> Result<RefreshUse>;
    /// Revokes a session (every token of the family). Returns whether it was live.
    async fn revoke_session(&self, family: &str, now_ms: i64) -> Result<bool>;
    /// Revokes every session of a user (password change, reset), or only its sessions in
    /// `tenant` (a role change or removal there, which must not sign the person out of others).
    async fn revoke_user_sessions(
        &self,
        user: i64,
        tenant: Option<TenantId>,
        now_ms: i64,
    ) -> Result<()>;
    /// Whether a session was revoked (its access tokens stop working too).
    async fn session_revoked(&self, family: &str) -> Result<bool>;

    async fn signing_keys(&self) -> Result<Vec<SigningKey>>;
    async fn add_signing_key(&self, key: &SigningKey) -> Result<()>;
    async fn delete_signing_keys_before(&self, created_before_ms: i64) -> Result<()>;

    async fn save_oidc_login(&self, login: &OidcLogin) -> Result<()>;
    /// Takes (and deletes) a login started at or after `since_ms`; older ones are purged.
    async fn take_oidc_login(&self, state: &str, since_ms: i64) -> Result<Option<OidcLogin>>;
}

/// The generic implementation: `writer` takes every write (SQLite has one writer connection),
/// `reader` the reads.
pub(crate) struct SqlAccess<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlAccess<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const USER_COLUMNS: &str = "id, email, display_name, password_hash, must_change_password, is_operator, \
    is_publisher, failed_logins, locked_until, created_at, last_login_at";
const TOKEN_COLUMNS: &str = "id, family, user_id, tenant_id, expires_at, used_at, revoked_at";
fn user<R: HubRow>(row: &R) -> Result<User> {
    Ok(User {
        id: row.int("id")?,
        email: row.text("email")?,
        display_name: row.text("display_name")?,
        password_hash: row.opt_text("password_hash")?,
        must_change_password: row.int("must_change_password")? != 0,
        operator: row.int("is_operator")? != 0,
        publisher: row.int("is_publisher")? != 0,
        failed_logins: row.int("failed_logins")?,
        locked_until_ms: row.opt_int("locked_until")?,
        created_at_ms: row.int("created_at")?,
        last_login_at_ms: row.opt_int("last_login_at")?,
    })
}

pub(crate) fn role(s: &str) -> Result<Role> {
    Role::parse(s).map_err(StorageError::Corrupt)
}

fn token<R: HubRow>(row: &R) -> Result<RefreshToken> {
    Ok(RefreshToken {
        id: row.int("id")?,
        family: row.text("family")?,
        user_id: row.int("user_id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        expires_at_ms: row.int("expires_at")?,
        used_at_ms: row.opt_int("used_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

#[async_trait]
impl<DB> AccessStorage for SqlAccess<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
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
    async fn create_user(&self, u: &NewUser, now_ms: i64) -> Result<User> {
        let mut buf = with_binds(
            "INSERT INTO users (email, display_name, password_hash, must_change_password, is_operator, \
             is_publisher, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            vec![
                Bind::Text(u.email.to_lowercase()),
                Bind::Text(u.display_name.clone()),
                Bind::OptText(u.password_hash.clone()),
                flag(u.must_change_password),
                flag(u.operator),
                flag(u.publisher),
                Bind::I64(now_ms),
            ],
        );
        buf.push(USER_COLUMNS);
        let row = into_query::<DB>(buf)
            .fetch_one(&self.writer)
            .await
            .map_err(conflict(format!("user '{}'", u.email.to_lowercase())))?;
        user(&row)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(USER_COLUMNS)
            .push(" FROM users WHERE email = ")
            .bind(Bind::Text(email.trim().to_lowercase()));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(USER_COLUMNS)
            .push(" FROM users WHERE id = ")
            .bind(Bind::I64(id));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(USER_COLUMNS).push(" FROM users ORDER BY id");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(user).collect()
    }

    async fn count_users(&self) -> Result<i64> {
        let row = into_query::<DB>(with_binds("SELECT COUNT(*) AS n FROM users", vec![]))
            .fetch_one(&self.reader)
            .await?;
        row.int("n")
    }

    async fn set_password(&self, user: i64, hash: &str, must_change: bool) -> Result<()> {
        let buf = with_binds(
            "UPDATE users SET password_hash = $1, must_change_password = $2, failed_logins = 0, \
             locked_until = NULL WHERE id = $3",
            vec![Bind::Text(hash.into()), flag(must_change), Bind::I64(user)],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn set_platform_rights(&self, user: i64, operator: bool, publisher: bool) -> Result<()> {
        let buf = with_binds(
            "UPDATE users SET is_operator = $1, is_publisher = $2 WHERE id = $3",
            vec![flag(operator), flag(publisher), Bind::I64(user)],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn record_login_success(&self, id: i64, now_ms: i64) -> Result<()> {
        let buf = with_binds(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2",
            vec![Bind::I64(now_ms), Bind::I64(id)],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn set_membership(
        &self,
        user: i64,
        tenant: TenantId,
        new_role: Option<Role>,
        now_ms: i64,
    ) -> Result<Option<Role>> {
        let before = into_query::<DB>(with_binds(
            "SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2",
            vec![Bind::I64(user), Bind::I64(tenant.get())],
        ))
        .fetch_optional(&self.writer)
        .await?
        .map(|r| r.text("role").and_then(|s| role(&s)))
        .transpose()?;
        let buf = match new_role {
            Some(r) => with_binds(
                "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role",
                vec![
                    Bind::I64(user),
                    Bind::I64(tenant.get()),
                    Bind::Text(r.as_str().into()),
                    Bind::I64(now_ms),
                ],
            ),
            None => with_binds(
                "DELETE FROM memberships WHERE user_id = $1 AND tenant_id = $2",
                vec![Bind::I64(user), Bind::I64(tenant.get())],
            ),
        };
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(before)
    }

    async fn memberships(&self, user: i64) -> Result<Vec<Membership>> {
        let rows = into_query::<DB>(with_binds(
            "SELECT m.user_id, m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t \
             ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY t.name",
            vec![Bind::I64(user)],
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    user_id: r.int("user_id")?,
                    tenant: TenantId::from_verified(r.int("tenant_id")?),
                    tenant_name: r.text("name")?,
                    role: role(&r.text("role")?)?,
                })
            })
            .collect()
    }

    async fn members(&self, tenant: TenantId) -> Result<Vec<(User, Role)>> {
        let mut buf = with_binds("SELECT ", vec![]);
        for (i, c) in USER_COLUMNS.split(", ").enumerate() {
            if i > 0 {
                buf.push(", ");
            }
            buf.push("u.").push(c);
        }
        buf.push(
            ", m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ",
        )
        .bind(Bind::I64(tenant.get()))
        .push(" ORDER BY u.email");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok((user(r)?, role(&r.text("role")?)?)))
            .collect()
    }

    async fn insert_refresh_token(&self, t: &NewRefreshToken, now_ms: i64) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO refresh_tokens (family, user_id, tenant_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Bind::Text(t.family.clone()),
                Bind::I64(t.user_id),
                Bind::I64(t.tenant.get()),
                Bind::Text(t.token_hash.clone()),
                Bind::I64(now_ms),
                Bind::I64(t.expires_at_ms),
            ],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now_ms: i64) -> Result<RefreshUse> {
        let mut buf = with_binds(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $1 RETURNING ",
            vec![Bind::I64(now_ms), Bind::Text(token_hash.into())],
        );
        buf.push(TOKEN_COLUMNS);
        if let Some(row) = into_query::<DB>(buf).fetch_optional(&self.writer).await? {
            return Ok(RefreshUse::Fresh(token(&row)?));
        }
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(TOKEN_COLUMNS)
            .push(" FROM refresh_tokens WHERE token_hash = ")
            .bind(Bind::Text(token_hash.into()));
        let Some(row) = into_query::<DB>(buf).fetch_optional(&self.writer).await? else {
            return Ok(RefreshUse::Unknown);
        };
        let t = token(&row)?;
        if t.used_at_ms.is_some() && t.revoked_at_ms.is_none() {
            self.revoke_session(&t.family, now_ms).await?;
            return Ok(RefreshUse::Reused(t));
        }
        Ok(RefreshUse::Dead(t))
    }

    async fn revoke_session(&self, family: &str, now_ms: i64) -> Result<bool> {
        let revoked = into_query::<DB>(with_binds(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL \
             RETURNING id",
            vec![Bind::I64(now_ms), Bind::Text(family.into())],
        ))
        .fetch_all(&self.writer)
        .await?;
        Ok(!revoked.is_empty())
    }

    async fn revoke_user_sessions(
        &self,
        user: i64,
        tenant: Option<TenantId>,
        now_ms: i64,
    ) -> Result<()> {
        let mut buf = with_binds(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            vec![Bind::I64(now_ms), Bind::I64(user)],
        );
        if let Some(t) = tenant {
            buf.push(" AND tenant_id = ").bind(Bind::I64(t.get()));
        }
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn session_revoked(&self, family: &str) -> Result<bool> {
        let row = into_query::<DB>(with_binds(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE family = $1 AND revoked_at IS NOT NULL",
            vec![Bind::Text(family.into())],
        ))
        .fetch_one(&self.reader)
        .await?;
        Ok(row.int("n")? > 0)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows = into_query::<DB>(with_binds(
            "SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at DESC, kid",
            vec![],
        ))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKey {
                    kid: r.text("kid")?,
                    secret: r.text("secret")?,
                    created_at_ms: r.int("created_at")?,
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, k: &SigningKey) -> Result<()> {
        into_query::<DB>(with_binds(
            "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
            vec![
                Bind::Text(k.kid.clone()),
                Bind::Text(k.secret.clone()),
                Bind::I64(k.created_at_ms),
            ],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_signing_keys_before(&self, created_before_ms: i64) -> Result<()> {
        into_query::<DB>(with_binds(
            "DELETE FROM signing_keys WHERE created_at < $1",
            vec![Bind::I64(created_before_ms)],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn save_oidc_login(&self, l: &OidcLogin) -> Result<()> {
        into_query::<DB>(with_binds(
            "INSERT INTO oidc_logins (state, verifier, nonce, tenant, created_at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                Bind::Text(l.state.clone()),
                Bind::Text(l.verifier.clone()),
                Bind::Text(l.nonce.clone()),
                Bind::OptText(l.tenant.clone()),
                Bind::I64(l.created_at_ms),
            ],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn take_oidc_login(&self, state: &str, since_ms: i64) -> Result<Option<OidcLogin>> {
        into_query::<DB>(with_binds(
            "DELETE FROM oidc_logins WHERE created_at < $1",
            vec![Bind::I64(since_ms)],
        ))
        .execute(&self.writer)
        .await?;
        let row = into_query::<DB>(with_binds(
            "DELETE FROM oidc_logins WHERE state = $1 RETURNING state, verifier, nonce, tenant, created_at",
            vec![Bind::Text(state.into())],
        ))
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(OidcLogin {
                state: r.text("state")?,
                verifier: r.text("verifier")?,
                nonce: r.text("nonce")?,
                tenant: r.opt_text("tenant")?,
                created_at_ms: r.int("created_at")?,
            })
        })
        .transpose()
    }
}
