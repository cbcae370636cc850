//! Saved views: a user's named queries in a tenant, private or shared with its members. One
//! implementation over any sqlx backend, reached through [`crate::Storage::views`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::shared::conflict;
use crate::sql::{Bind, flag, into_query, with_binds};
use crate::{Result, StorageError};

/// A saved query of one user in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedView {
    pub id: i64,
    pub tenant: TenantId,
    pub user_id: i64,
    /// The owner's email (for listings).
    pub owner: String,
    pub name: String,
    /// JSON: `{"route": ..., "params": {...}}`.
    pub query: String,
    /// Visible to the tenant's other members (only the owner changes it).
    pub shared: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a view says: its name, its query (JSON) and whether it is shared.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSpec {
    pub name: String,
    pub query: String,
    pub shared: bool,
}

/// Saved views, whatever the backend.
#[async_trait]
pub trait ViewStorage: Send + Sync {
    /// Saves a new view (`Conflict` when the user has one of that name in the tenant).
    async fn create_view(
        &self,
        tenant: TenantId,
        user: i64,
        view: &ViewSpec,
        now_ms: i64,
    ) -> Result<SavedView>;
    /// The user's views and the tenant's shared ones, by name.
    async fn list_views(&self, tenant: TenantId, user: i64) -> Result<Vec<SavedView>>;
    /// Changes one of the user's own views; `None` when the user has no such view.
    async fn update_view(
        &self,
        tenant: TenantId,
        user: i64,
        id: i64,
        view: &ViewSpec,
        now_ms: i64,
    ) -> Result<Option<SavedView>>;
    /// Deletes one of the user's own views; whether there was one.
    async fn delete_view(&self, tenant: TenantId, user: i64, id: i64) -> Result<bool>;
}

pub(crate) struct SqlViews<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlViews<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const VIEW_COLUMNS: &str = "v.id, v.tenant_id, v.user_id, u.email, v.name, v.query, v.shared, \
    v.created_at, v.updated_at";

/// One of `user`'s own views in `tenant`.
async fn own_view<V: ViewStorage + ?Sized>(
    views: &V,
    tenant: TenantId,
    user: i64,
    id: i64,
) -> Result<Option<SavedView>> {
    Ok(views
        .list_views(tenant, user)
        .await?
        .into_iter()
        .find(|v| v.id == id && v.user_id == user))
}

fn view<R: HubRow>(row: &R) -> Result<SavedView> {
    Ok(SavedView {
        id: row.int("id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        user_id: row.int("user_id")?,
        owner: row.text("email")?,
        name: row.text("name")?,
        query: row.text("query")?,
        shared: row.int("shared")? != 0,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
    })
}

#[async_trait]
impl<DB> ViewStorage for SqlViews<DB>
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
    async fn create_view(
        &self,
        tenant: TenantId,
        user: i64,
        v: &ViewSpec,
        now_ms: i64,
    ) -> Result<SavedView> {
        let (name, query, shared) = (v.name.as_str(), v.query.as_str(), v.shared);
        let row = into_query::<DB>(with_binds(
            "INSERT INTO saved_views (tenant_id, user_id, name, query, shared, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            vec![
                Bind::I64(tenant.get()),
                Bind::I64(user),
                Bind::Text(name.into()),
                Bind::Text(query.into()),
                flag(shared),
                Bind::I64(now_ms),
            ],
        ))
        .fetch_one(&self.writer)
        .await
        .map_err(conflict(format!("view '{name}'")))?;
        let id = row.int("id")?;
        own_view(self, tenant, user, id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("view {id} vanished")))
    }

    async fn list_views(&self, tenant: TenantId, user: i64) -> Result<Vec<SavedView>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(VIEW_COLUMNS)
            .push(" FROM saved_views v JOIN users u ON u.id = v.user_id WHERE v.tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" AND (v.user_id = ")
            .bind(Bind::I64(user))
            .push(" OR v.shared = 1) ORDER BY v.name, v.id");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(view).collect()
    }

    async fn update_view(
        &self,
        tenant: TenantId,
        user: i64,
        id: i64,
        v: &ViewSpec,
        now_ms: i64,
    ) -> Result<Option<SavedView>> {
        let (name, query, shared) = (v.name.as_str(), v.query.as_str(), v.shared);
        let done = into_query::<DB>(with_binds(
            "UPDATE saved_views SET name = $1, query = $2, shared = $3, updated_at = $4 \
             WHERE tenant_id = $5 AND user_id = $6 AND id = $7 RETURNING id",
            vec![
                Bind::Text(name.into()),
                Bind::Text(query.into()),
                flag(shared),
                Bind::I64(now_ms),
                Bind::I64(tenant.get()),
                Bind::I64(user),
                Bind::I64(id),
            ],
        ))
        .fetch_optional(&self.writer)
        .await
        .map_err(conflict(format!("view '{name}'")))?;
        match done {
            Some(_) => own_view(self, tenant, user, id).await,
            None => Ok(None),
        }
    }

    async fn delete_view(&self, tenant: TenantId, user: i64, id: i64) -> Result<bool> {
        let gone = into_query::<DB>(with_binds(
            "DELETE FROM saved_views WHERE tenant_id = $1 AND user_id = $2 AND id = $3 RETURNING id",
            vec![Bind::I64(tenant.get()), Bind::I64(user), Bind::I64(id)],
        ))
        .fetch_optional(&self.writer)
        .await?;
        Ok(gone.is_some())
    }
}
