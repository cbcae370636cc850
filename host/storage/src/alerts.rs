//! Alert rules (as the tenant wrote them, JSON checked by the API) and the alerts they raise:
//! one row per (rule, group) from the moment its condition held until it resolved; a group
//! that holds again later is a new row, so the table is the alerts' history too.

use async_trait::async_trait;
use hub_core::{Severity, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::analysis::{SeriesDims, float, parse_key, series_key};
use crate::decode::HubRow;
use crate::deliveries::{self, NewDelivery};
use crate::shared::conflict;
use crate::sql::{Bind, Placeholders, SqlBuf, flag, into_query, with_binds};
use crate::{Result, StorageError};

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub id: i64,
    pub name: String,
    /// The rule as JSON.
    pub spec: String,
    pub enabled: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Who last wrote it (an email or a key's prefix).
    pub updated_by: String,
}

/// An alert's state as stored: `pending`, `firing` or `resolved`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// 0 for one not yet stored.
    pub id: i64,
    pub rule_id: i64,
    pub group: SeriesDims,
    pub state: String,
    pub severity: Severity,
    pub value: f64,
    /// What a person reads.
    pub summary: String,
    pub since_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub notified_at_ms: Option<i64>,
    /// Who said they are on it; set by [`AlertStorage::acknowledge`] only (saving an evaluation's
    /// changes keeps it as it is).
    pub acknowledged: Option<Acknowledgement>,
}

/// Someone on an alert: who, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub at_ms: i64,
    pub by: String,
    pub comment: String,
}

/// Which alerts to list; every part optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `pending`, `firing`, `resolved`, or `open` for the first two.
    pub state: Option<String>,
    pub rule_id: Option<i64>,
    /// Alerts whose condition started holding in `[from, to)`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Keyset position in the newest-first alert list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertCursor {
    pub since_ms: i64,
    pub id: i64,
}

/// Alert rules and alerts, whatever the backend.
#[async_trait]
pub trait AlertStorage: Send + Sync {
    /// A new rule; `Conflict` when the tenant has a rule of that name.
    async fn create_rule(
        &self,
        tenant: TenantId,
        name: &str,
        spec: &str,
        enabled: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<StoredRule>;
    /// Replaces a rule; `None` when the tenant has no such rule. A changed rule's open alerts
    /// are closed without a notice (they were judged by the old rule).
    #[allow(clippy::too_many_arguments)]
    async fn update_rule(
        &self,
        tenant: TenantId,
        id: i64,
        name: &str,
        spec: &str,
        enabled: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<StoredRule>>;
    /// Deletes a rule, its alerts and their deliveries; false when there was none.
    async fn delete_rule(&self, tenant: TenantId, id: i64) -> Result<bool>;
    async fn rule(&self, tenant: TenantId, id: i64) -> Result<Option<StoredRule>>;
    /// The tenant's rules by name.
    async fn rules(&self, tenant: TenantId) -> Result<Vec<StoredRule>>;
    /// Tenants with at least one enabled rule.
    async fn tenants_with_rules(&self) -> Result<Vec<TenantId>>;
    /// A rule's pending and firing alerts.
    async fn open_alerts(&self, tenant: TenantId, rule_id: i64) -> Result<Vec<AlertRecord>>;
    /// Stores what an evaluation at `now_ms` changed: each alert updates the open one of its
    /// (rule, group) or is a new one; the `forgotten` groups' pending alerts are deleted; each
    /// delivery is queued for the alert of its group. One transaction.
    async fn save_alerts(
        &self,
        tenant: TenantId,
        rule_id: i64,
        alerts: &[AlertRecord],
        forgotten: &[SeriesDims],
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<()>;
    /// Newest first; the cursor of the next page when more match.
    async fn list_alerts(
        &self,
        tenant: TenantId,
        filter: &AlertFilter,
        after: Option<AlertCursor>,
        limit: usize,
    ) -> Result<(Vec<AlertRecord>, Option<AlertCursor>)>;
    /// One of the tenant's alerts.
    async fn alert(&self, tenant: TenantId, id: i64) -> Result<Option<AlertRecord>>;
    /// Acknowledges an open (pending or firing) alert; `None` when the tenant has no such open
    /// alert. A second acknowledgement replaces the first.
    async fn acknowledge(
        &self,
        tenant: TenantId,
        id: i64,
        ack: &Acknowledgement,
    ) -> Result<Option<AlertRecord>>;
    /// Deletes one tenant's alerts resolved before `before_ms` (how many), and the deliveries
    /// finished before then.
    async fn forget_resolved_before(&self, tenant: TenantId, before_ms: i64) -> Result<u64>;
}

pub(crate) struct SqlAlerts<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlAlerts<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const RULE_COLUMNS: &str = "id, name, spec, enabled, created_at, updated_at, updated_by";
const ALERT_COLUMNS: &str = "id, rule_id, group_key, state, severity, value, summary, since, \
    fired_at, resolved_at, notified_at, acked_at, acked_by, ack_comment";

fn stored_rule<R: HubRow>(row: &R) -> Result<StoredRule> {
    Ok(StoredRule {
        id: row.int("id")?,
        name: row.text("name")?,
        spec: row.text("spec")?,
        enabled: row.int("enabled")? != 0,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
        updated_by: row.text("updated_by")?,
    })
}

fn alert<R: HubRow>(row: &R) -> Result<AlertRecord> {
    let severity = row.text("severity")?;
    Ok(AlertRecord {
        id: row.int("id")?,
        rule_id: row.int("rule_id")?,
        group: parse_key(&row.text("group_key")?)?,
        state: row.text("state")?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| StorageError::Corrupt(format!("severity {severity:?}")))?,
        value: float(row, "value")?,
        summary: row.text("summary")?,
        since_ms: row.int("since")?,
        fired_at_ms: row.opt_int("fired_at")?,
        resolved_at_ms: row.opt_int("resolved_at")?,
        notified_at_ms: row.opt_int("notified_at")?,
        acknowledged: match row.opt_int("acked_at")? {
            Some(at_ms) => Some(Acknowledgement {
                at_ms,
                by: row.opt_text("acked_by")?.unwrap_or_default(),
                comment: row.opt_text("ack_comment")?.unwrap_or_default(),
            }),
            None => None,
        },
    })
}

#[async_trait]
impl<DB> AlertStorage for SqlAlerts<DB>
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
    async fn create_rule(
        &self,
        tenant: TenantId,
        name: &str,
        spec: &str,
        enabled: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<StoredRule> {
        let row = into_query::<DB>(with_binds(
            "INSERT INTO alert_rules (tenant_id, name, spec, enabled, created_at, updated_at, \
             updated_by) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
            vec![
                Bind::I64(tenant.get()),
                Bind::Text(name.into()),
                Bind::Text(spec.into()),
                flag(enabled),
                Bind::I64(now_ms),
                Bind::Text(by.into()),
            ],
        ))
        .fetch_one(&self.writer)
        .await
        .map_err(conflict(format!("alert rule '{name}'")))?;
        let id = row.int("id")?;
        self.rule(tenant, id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("alert rule {id} vanished")))
    }

    async fn update_rule(
        &self,
        tenant: TenantId,
        id: i64,
        name: &str,
        spec: &str,
        enabled: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<StoredRule>> {
        let mut tx = self.writer.begin().await?;
        let done = into_query::<DB>(with_binds(
            "UPDATE alert_rules SET name = $1, spec = $2, enabled = $3, updated_at = $4, \
             updated_by = $5 WHERE tenant_id = $6 AND id = $7 RETURNING id",
            vec![
                Bind::Text(name.into()),
                Bind::Text(spec.into()),
                flag(enabled),
                Bind::I64(now_ms),
                Bind::Text(by.into()),
                Bind::I64(tenant.get()),
                Bind::I64(id),
            ],
        ))
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict(format!("alert rule '{name}'")))?;
        if done.is_none() {
            return Ok(None);
        }
        into_query::<DB>(with_binds(
            "DELETE FROM alerts WHERE tenant_id = $1 AND rule_id = $2 AND state = 'pending'",
            vec![Bind::I64(tenant.get()), Bind::I64(id)],
        ))
        .execute(&mut *tx)
        .await?;
        into_query::<DB>(with_binds(
            "UPDATE alerts SET state = 'resolved', resolved_at = $1 \
             WHERE tenant_id = $2 AND rule_id = $3 AND state = 'firing'",
            vec![Bind::I64(now_ms), Bind::I64(tenant.get()), Bind::I64(id)],
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.rule(tenant, id).await
    }

    async fn delete_rule(&self, tenant: TenantId, id: i64) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        into_query::<DB>(with_binds(
            "DELETE FROM alerts WHERE tenant_id = $1 AND rule_id = $2",
            vec![Bind::I64(tenant.get()), Bind::I64(id)],
        ))
        .execute(&mut *tx)
        .await?;
        for statement in deliveries::forget_rule(tenant, id) {
            into_query::<DB>(statement).execute(&mut *tx).await?;
        }
        let gone = into_query::<DB>(with_binds(
            "DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2 RETURNING id",
            vec![Bind::I64(tenant.get()), Bind::I64(id)],
        ))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.is_some())
    }

    async fn rule(&self, tenant: TenantId, id: i64) -> Result<Option<StoredRule>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(RULE_COLUMNS)
            .push(" FROM alert_rules WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" AND id = ")
            .bind(Bind::I64(id));
        into_query::<DB>(buf)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(stored_rule)
            .transpose()
    }

    async fn rules(&self, tenant: TenantId) -> Result<Vec<StoredRule>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(RULE_COLUMNS)
            .push(" FROM alert_rules WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" ORDER BY name, id");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(stored_rule).collect()
    }

    async fn tenants_with_rules(&self) -> Result<Vec<TenantId>> {
        let rows = into_query::<DB>(with_binds(
            "SELECT DISTINCT tenant_id FROM alert_rules WHERE enabled = 1 ORDER BY tenant_id",
            vec![],
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_verified(r.int("tenant_id")?)))
            .collect()
    }

    async fn open_alerts(&self, tenant: TenantId, rule_id: i64) -> Result<Vec<AlertRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(ALERT_COLUMNS)
            .push(" FROM alerts WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" AND rule_id = ")
            .bind(Bind::I64(rule_id))
            .push(" AND state <> 'resolved' ORDER BY id");
        // From the writer: the evaluation that reads these writes them next.
        let rows = into_query::<DB>(buf).fetch_all(&self.writer).await?;
        rows.iter().map(alert).collect()
    }

    async fn save_alerts(
        &self,
        tenant: TenantId,
        rule_id: i64,
        alerts: &[AlertRecord],
        forgotten: &[SeriesDims],
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for dims in forgotten {
            into_query::<DB>(with_binds(
                "DELETE FROM alerts WHERE tenant_id = $1 AND rule_id = $2 AND group_key = $3 \
                 AND state = 'pending'",
                vec![
                    Bind::I64(tenant.get()),
                    Bind::I64(rule_id),
                    Bind::Text(series_key(dims)),
                ],
            ))
            .execute(&mut *tx)
            .await?;
        }
        for a in alerts {
            let updated = into_query::<DB>(with_binds(
                "UPDATE alerts SET state = $1, severity = $2, value = $3, summary = $4, \
                 fired_at = $5, resolved_at = $6, notified_at = $7 \
                 WHERE tenant_id = $8 AND rule_id = $9 AND group_key = $10 \
                 AND state <> 'resolved' RETURNING id",
                vec![
                    Bind::Text(a.state.clone()),
                    Bind::Text(a.severity.as_str().into()),
                    Bind::F64(a.value),
                    Bind::Text(a.summary.clone()),
                    Bind::OptI64(a.fired_at_ms),
                    Bind::OptI64(a.resolved_at_ms),
                    Bind::OptI64(a.notified_at_ms),
                    Bind::I64(tenant.get()),
                    Bind::I64(rule_id),
                    Bind::Text(series_key(&a.group)),
                ],
            ))
            .fetch_optional(&mut *tx)
            .await?;
            let id = match updated {
                Some(row) => row.int("id")?,
                None => into_query::<DB>(with_binds(
                    "INSERT INTO alerts (tenant_id, rule_id, group_key, state, severity, value, \
                     summary, since, fired_at, resolved_at, notified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                    vec![
                        Bind::I64(tenant.get()),
                        Bind::I64(rule_id),
                        Bind::Text(series_key(&a.group)),
                        Bind::Text(a.state.clone()),
                        Bind::Text(a.severity.as_str().into()),
                        Bind::F64(a.value),
                        Bind::Text(a.summary.clone()),
                        Bind::I64(a.since_ms),
                        Bind::OptI64(a.fired_at_ms),
                        Bind::OptI64(a.resolved_at_ms),
                        Bind::OptI64(a.notified_at_ms),
                    ],
                ))
                .fetch_one(&mut *tx)
                .await?
                .int("id")?,
            };
            for d in deliveries.iter().filter(|d| d.group == a.group) {
                into_query::<DB>(deliveries::queue(tenant, id, rule_id, d, now_ms))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_alerts(
        &self,
        tenant: TenantId,
        f: &AlertFilter,
        after: Option<AlertCursor>,
        limit: usize,
    ) -> Result<(Vec<AlertRecord>, Option<AlertCursor>)> {
        let mut buf = SqlBuf::new(Placeholders::Dollar);
        buf.push("SELECT ")
            .push(ALERT_COLUMNS)
            .push(" FROM alerts WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()));
        match f.state.as_deref() {
            None => {}
            Some("open") => {
                buf.push(" AND state <> 'resolved'");
            }
            Some(s) => {
                buf.push(" AND state = ").bind(Bind::Text(s.into()));
            }
        }
        if let Some(r) = f.rule_id {
            buf.push(" AND rule_id = ").bind(Bind::I64(r));
        }
        if let Some(from) = f.from_ms {
            buf.push(" AND since >= ").bind(Bind::I64(from));
        }
        if let Some(to) = f.to_ms {
            buf.push(" AND since < ").bind(Bind::I64(to));
        }
        if let Some(c) = after {
            buf.push(" AND (since < ")
                .bind(Bind::I64(c.since_ms))
                .push(" OR (since = ")
                .bind(Bind::I64(c.since_ms))
                .push(" AND id < ")
                .bind(Bind::I64(c.id))
                .push("))");
        }
        buf.push(" ORDER BY since DESC, id DESC LIMIT ")
            .bind(Bind::I64(limit as i64 + 1));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        let mut out: Vec<AlertRecord> = rows.iter().map(alert).collect::<Result<_>>()?;
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|a| AlertCursor {
                since_ms: a.since_ms,
                id: a.id,
            })
        } else {
            None
        };
        Ok((out, next))
    }

    async fn alert(&self, tenant: TenantId, id: i64) -> Result<Option<AlertRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(ALERT_COLUMNS)
            .push(" FROM alerts WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" AND id = ")
            .bind(Bind::I64(id));
        into_query::<DB>(buf)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(alert)
            .transpose()
    }

    async fn acknowledge(
        &self,
        tenant: TenantId,
        id: i64,
        ack: &Acknowledgement,
    ) -> Result<Option<AlertRecord>> {
        let mut buf = with_binds(
            "UPDATE alerts SET acked_at = $1, acked_by = $2, ack_comment = $3 \
             WHERE tenant_id = $4 AND id = $5 AND state <> 'resolved' RETURNING ",
            vec![
                Bind::I64(ack.at_ms),
                Bind::Text(ack.by.clone()),
                Bind::Text(ack.comment.clone()),
                Bind::I64(tenant.get()),
                Bind::I64(id),
            ],
        );
        buf.push(ALERT_COLUMNS);
        into_query::<DB>(buf)
            .fetch_optional(&self.writer)
            .await?
            .as_ref()
            .map(alert)
            .transpose()
    }

    async fn forget_resolved_before(&self, tenant: TenantId, before_ms: i64) -> Result<u64> {
        for statement in deliveries::forget_finished_before(tenant, before_ms) {
            into_query::<DB>(statement).execute(&self.writer).await?;
        }
        Ok(into_query::<DB>(with_binds(
            "DELETE FROM alerts WHERE tenant_id = $1 AND state = 'resolved' AND resolved_at < $2 \
             RETURNING id",
            vec![Bind::I64(tenant.get()), Bind::I64(before_ms)],
        ))
        .fetch_all(&self.writer)
        .await?
        .len() as u64)
    }
}
