//! Re-pricing history: after a tenant changes a price, a discount or a custom model in the cost
//! plugin's configuration (which prices new events from then on), `POST /v1/costs/reprice` asks
//! for the events of a range to be priced again. The job runs in the background
//! (`hub_pipeline::reprice`); its progress is read back by id.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hub_core::Dimension;
use hub_storage::{JobStatus, NewRepriceJob, RepriceJob, StorageError};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::query::{Params, check_order};
use crate::{ApiError, AppState, Principal, Right};
use axum::extract::Query;
use hub_core::time::{DAY_MS, parse_query_time, to_rfc3339};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, start_job))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(daily_costs))
}

/// Days a daily comparison covers at most.
const MAX_DAYS: i64 = 92;

/// One UTC day's cost as the hub counts it beside what was billed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayCostsDto {
    /// `2026-12-06`.
    pub date: String,
    /// What the hub counts toward spend: reported costs, else the cost plugins' estimates.
    pub counted_usd: f64,
    /// The cost plugins' estimates.
    pub estimated_usd: f64,
    /// What senders reported.
    pub reported_usd: f64,
    pub requests: i64,
    /// The sum of the day's billing lines an integration (`costops`) brought in; absent when
    /// none was.
    pub billed_usd: Option<f64>,
    pub billed_lines: u32,
    /// `billed_usd - counted_usd`, when billed.
    pub difference_usd: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DailyCostsDto {
    pub days: Vec<DayCostsDto>,
}

#[utoipa::path(
    get, path = "/v1/costs/daily", tag = "costs",
    description = "Each UTC day's cost as the hub counts it (reported, else estimated by the cost plugins) beside what was billed (the billing lines an integration such as `costops` brought in as `billing.daily` events), oldest first. Anyone who reads metrics.",
    params(
        ("from" = Option<String>, Query, description = "first day (RFC 3339, epoch ms or now-7d; default: the seven days ending with today); at most 92 days before `to`"),
        ("to" = Option<String>, Query, description = "end, exclusive (default now)"),
    ),
    responses((status = 200, body = DailyCostsDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn daily_costs(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<DailyCostsDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(pairs, &["from", "to"])?;
    let now = hub_core::time::now_ms();
    let time = |name: &str, default: i64| {
        p.one(name).map_or(Ok(default), |v| {
            parse_query_time(v, now).map_err(|e| ApiError::invalid(name, e))
        })
    };
    let to = time("to", now + 1)?;
    // By default the seven days ending with today.
    let from = time(
        "from",
        hub_core::time::floor_to(to - 1, DAY_MS) - 6 * DAY_MS,
    )?;
    check_order(Some(from), Some(to))?;
    if to - from > MAX_DAYS * DAY_MS {
        return Err(ApiError::invalid(
            "from",
            format!("the range is longer than {MAX_DAYS} days; ask for less"),
        ));
    }
    let days =
        hub_pipeline::billed::daily(state.storage.as_ref(), principal.tenant, from, to).await?;
    Ok(Json(DailyCostsDto {
        days: days
            .into_iter()
            .map(|d| DayCostsDto {
                date: to_rfc3339(d.day_ms)[..10].to_string(),
                counted_usd: d.counted_usd,
                estimated_usd: d.estimated_usd,
                reported_usd: d.reported_usd,
                requests: d.requests,
                difference_usd: d.billed_usd.map(|b| b - d.counted_usd),
                billed_usd: d.billed_usd,
                billed_lines: d.billed_lines,
            })
            .collect(),
    }))
}

/// What to price again.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepriceRequest {
    /// Start of the range (inclusive): RFC 3339, epoch milliseconds, or `now-30d`.
    pub from: String,
    /// End of the range (exclusive); `now` when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Only events with these dimension values (`model`, `provider`, `app`, `environment`,
    /// `source_module`, `operation`, `status`).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
}

/// A re-pricing job and how far it has got.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RepriceJobDto {
    pub id: i64,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    pub requested_by: String,
    pub from: String,
    pub to: String,
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    /// Events priced again so far (newest first).
    pub events_examined: i64,
    /// Of those, events whose stored cost changed.
    pub events_changed: i64,
    /// What the changed events counted toward spend before and after, USD.
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    /// How far back it has got: the time of the last event done.
    pub reached: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<RepriceJob> for RepriceJobDto {
    fn from(j: RepriceJob) -> Self {
        let t = hub_core::time::to_rfc3339;
        Self {
            id: j.id,
            status: j.status.as_str().into(),
            requested_by: j.requested_by,
            from: t(j.from_ms),
            to: t(j.to_ms),
            filters: serde_json::from_str(&j.filter_json).unwrap_or_default(),
            events_examined: j.events_examined,
            events_changed: j.events_changed,
            cost_before_usd: j.cost_before_usd,
            cost_after_usd: j.cost_after_usd,
            reached: j.cursor.map(|c| t(c.ts_ms)),
            error: j.error,
            created_at: t(j.created_at_ms),
            started_at: j.started_at_ms.map(t),
            finished_at: j.finished_at_ms.map(t),
        }
    }
}

fn days(ms: i64) -> String {
    let d = ms as f64 / hub_core::time::DAY_MS as f64;
    if d.fract() == 0.0 {
        format!("{d:.0} days")
    } else {
        format!("{d:.1} days")
    }
}

#[utoipa::path(post, path = "/v1/costs/reprice", tag = "costs", request_body = RepriceRequest,
    description = "Prices the stored events of a range again with the tenant's enrichers as they are configured now (a changed price, discount or custom model), and restates their cost, their calls' cost and the rollups. Runs in the background: the answer is the queued job; follow it at /v1/costs/reprice/{id}. Idempotent: asking again changes nothing more. One job per tenant at a time (409); a range longer than the operator allows is refused (400, naming the limit). Needs the `admin` scope, or admin and up; audited.",
    responses((status = 202, body = RepriceJobDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn start_job(
    State(state): State<AppState>,
    principal: crate::Principal,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RepriceJobDto>), ApiError> {
    principal.require(Right::ManagePlugins)?;
    let req: RepriceRequest = crate::json_body(&body)?;
    let now = hub_core::time::now_ms();
    let from = hub_core::time::parse_query_time(&req.from, now)
        .map_err(|e| ApiError::invalid("from", e))?;
    let to = match req.to.as_deref() {
        Some(to) => {
            hub_core::time::parse_query_time(to, now).map_err(|e| ApiError::invalid("to", e))?
        }
        None => now,
    };
    if to <= from {
        return Err(ApiError::invalid(
            "to",
            "the range is empty: `to` must be after `from`",
        ));
    }
    let most = state.config.reprice_max_range_ms;
    if to - from > most {
        return Err(ApiError::invalid(
            "from",
            format!(
                "the range is {} long; this hub re-prices at most {} per request (the operator's \
                 limit, --reprice-max-range): split it into several requests",
                days(to - from),
                days(most)
            ),
        ));
    }
    for (name, value) in &req.filters {
        if Dimension::parse(name).is_none() {
            return Err(ApiError::invalid(
                &format!("filters.{name}"),
                format!(
                    "'{name}' is not a dimension: use one of {}",
                    Dimension::allowed_list()
                ),
            ));
        }
        if value.is_empty() {
            return Err(ApiError::invalid(
                &format!("filters.{name}"),
                "an empty value matches nothing: leave the filter out",
            ));
        }
    }
    let has_enrichers = match state.plugins() {
        Some(p) => p.has_enrichers(principal.tenant).await,
        None => false,
    };
    if !has_enrichers {
        return Err(ApiError::Conflict(
            "no enricher is enabled for this tenant, so nothing would price the events: enable \
             the cost plugin first"
                .into(),
        ));
    }
    let job = NewRepriceJob {
        requested_by: principal.actor_label(),
        from_ms: from,
        to_ms: to,
        filter_json: serde_json::to_string(&req.filters).unwrap_or_else(|_| "{}".into()),
    };
    let created = match state
        .storage
        .reprices()
        .create_job(principal.tenant, &job, now)
        .await
    {
        Ok(j) => j,
        Err(StorageError::Conflict(_)) => {
            let running = state
                .storage
                .reprices()
                .jobs(principal.tenant, 5)
                .await?
                .into_iter()
                .find(|j| j.status.is_active())
                .map(|j| format!(" (job {})", j.id))
                .unwrap_or_default();
            return Err(ApiError::Conflict(format!(
                "a re-pricing job of this tenant is queued or running{running}: wait for it to \
                 finish, or cancel it"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    principal
        .audit(
            &state,
            "costs.reprice",
            Some(format!("job {}", created.id)),
            None,
            serde_json::to_value(&req).ok(),
        )
        .await;
    Ok((StatusCode::ACCEPTED, Json(created.into())))
}

#[utoipa::path(get, path = "/v1/costs/reprice", tag = "costs",
    description = "This tenant's re-pricing jobs, newest first (the last 50). Needs the `query` or `admin` scope, or analyst and up.",
    responses((status = 200, body = Vec<RepriceJobDto>), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    principal: crate::Principal,
) -> Result<Json<Vec<RepriceJobDto>>, ApiError> {
    principal.require(Right::ReadConfig)?;
    let jobs = state.storage.reprices().jobs(principal.tenant, 50).await?;
    Ok(Json(jobs.into_iter().map(Into::into).collect()))
}

fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("id", format!("'{raw}' is not a job id")))
}

#[utoipa::path(get, path = "/v1/costs/reprice/{id}", tag = "costs",
    params(("id" = i64, Path, description = "The job's id")),
    description = "One re-pricing job and its progress. Needs the `query` or `admin` scope, or analyst and up.",
    responses((status = 200, body = RepriceJobDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    principal: crate::Principal,
    Path(id): Path<String>,
) -> Result<Json<RepriceJobDto>, ApiError> {
    principal.require(Right::ReadConfig)?;
    let id = job_id(&id)?;
    let job = state
        .storage
        .reprices()
        .job(principal.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("re-pricing job {id}")))?;
    Ok(Json(job.into()))
}

#[utoipa::path(post, path = "/v1/costs/reprice/{id}/cancel", tag = "costs",
    params(("id" = i64, Path, description = "The job's id")),
    description = "Stops a queued or running job after the page it is on (pages done stay done; asking again later continues where it stopped). A finished job is returned as it is. Needs the `admin` scope, or admin and up; audited.",
    responses((status = 200, body = RepriceJobDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    principal: crate::Principal,
    Path(id): Path<String>,
) -> Result<Json<RepriceJobDto>, ApiError> {
    principal.require(Right::ManagePlugins)?;
    let id = job_id(&id)?;
    let was = state
        .storage
        .reprices()
        .job(principal.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("re-pricing job {id}")))?;
    let job = state
        .storage
        .reprices()
        .cancel_job(principal.tenant, id, hub_core::time::now_ms())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("re-pricing job {id}")))?;
    if was.status.is_active() && job.status == JobStatus::Cancelled {
        principal
            .audit(
                &state,
                "costs.reprice.cancel",
                Some(format!("job {id}")),
                None,
                None,
            )
            .await;
    }
    Ok(Json(job.into()))
}
