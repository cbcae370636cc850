//! The audit log: security-relevant actions appended and listed, a tenant's or the deployment's.
//! One implementation over any sqlx backend, reached through [`crate::Storage::audit`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::sql::{Bind, into_query, with_binds};

/// One security-relevant action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// `None` for deployment-wide actions.
    pub tenant: Option<TenantId>,
    /// `user:<email>`, `key:<prefix>`, `cli`, or `anonymous`.
    pub actor: String,
    /// Dotted name: `auth.login`, `api_key.revoke`, `user.role`, `plugin.config`, ...
    pub action: String,
    pub target: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// `ok` or `denied` or `failed`.
    pub outcome: String,
    /// JSON of the changed values before and after.
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// Which audit records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only records whose action starts with this (`auth.` or `api_key.revoke`).
    pub action_prefix: Option<String>,
    pub actor: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Records with an id below this (the cursor of the previous page).
    pub before_id: Option<i64>,
}

/// The audit log, whatever the backend.
#[async_trait]
pub trait AuditStorage: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// A tenant's records (`Some`), or the deployment's (`None`, every tenant), newest first.
    async fn list_audit(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>>;
}

pub(crate) struct SqlAudit<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlAudit<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const AUDIT_COLUMNS: &str =
    "id, at, tenant_id, actor, action, target, source, outcome, before, after";

fn audit<R: HubRow>(row: &R) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.int("id")?,
        entry: AuditEntry {
            at_ms: row.int("at")?,
            tenant: row.opt_int("tenant_id")?.map(TenantId::from_verified),
            actor: row.text("actor")?,
            action: row.text("action")?,
            target: row.opt_text("target")?,
            source: row.opt_text("source")?,
            outcome: row.text("outcome")?,
            before: row.opt_text("before")?,
            after: row.opt_text("after")?,
        },
    })
}

#[async_trait]
impl<DB> AuditStorage for SqlAudit<DB>
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
    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        into_query::<DB>(with_binds(
            "INSERT INTO audit_log (at, tenant_id, actor, action, target, source, outcome, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                Bind::I64(e.at_ms),
                Bind::OptI64(e.tenant.map(TenantId::get)),
                Bind::Text(e.actor.clone()),
                Bind::Text(e.action.clone()),
                Bind::OptText(e.target.clone()),
                Bind::OptText(e.source.clone()),
                Bind::Text(e.outcome.clone()),
                Bind::OptText(e.before.clone()),
                Bind::OptText(e.after.clone()),
            ],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant: Option<TenantId>,
        f: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(AUDIT_COLUMNS).push(" FROM audit_log WHERE 1 = 1");
        if let Some(t) = tenant {
            buf.push(" AND tenant_id = ").bind(Bind::I64(t.get()));
        }
        if let Some(p) = &f.action_prefix {
            // A prefix match that needs no LIKE escaping: compare the first characters.
            buf.push(" AND substr(action, 1, CAST(")
                .bind(Bind::I64(p.chars().count() as i64))
                .push(" AS INTEGER)) = ")
                .bind(Bind::Text(p.clone()));
        }
        if let Some(a) = &f.actor {
            buf.push(" AND actor = ").bind(Bind::Text(a.clone()));
        }
        if let Some(from) = f.from_ms {
            buf.push(" AND at >= ").bind(Bind::I64(from));
        }
        if let Some(to) = f.to_ms {
            buf.push(" AND at < ").bind(Bind::I64(to));
        }
        if let Some(b) = f.before_id {
            buf.push(" AND id < ").bind(Bind::I64(b));
        }
        buf.push(" ORDER BY id DESC LIMIT ")
            .bind(Bind::I64(limit as i64));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(audit).collect()
    }
}
