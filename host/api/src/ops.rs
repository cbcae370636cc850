//! Operations: liveness, readiness, Prometheus metrics, and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiError, AppState};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(bus_status))
        .routes(routes!(openapi))
}

#[utoipa::path(get, path = "/healthz", tag = "ops", description = "The process is up.", responses((status = 200, description = "ok")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "ops", description = "The database answers and, on the Kafka bus, the broker does.",
    responses((status = 200, description = "ready"), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.storage.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("the database does not answer".into())
    })?;
    state
        .bus
        .ready()
        .map_err(|e| ApiError::Unavailable(format!("the ingest bus is not ready: {e}")))?;
    Ok("ready")
}

/// The ingest bus as this replica sees it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BusDto {
    /// `memory` (in-process: one replica) or `kafka`.
    pub bus: &'static str,
    /// Whether batches can be published now.
    pub ready: bool,
    /// Why not, when not ready.
    pub reason: Option<String>,
    /// Kafka: per partition of the ingest topic, the next offset, where the workers' group is,
    /// and the batches between (published, not yet stored), as last read (every second).
    #[schema(value_type = Vec<Object>)]
    pub partitions: Vec<hub_bus::kafka::PartitionLag>,
    /// Kafka: messages the workers could not read, newest first (at most `dead_letters`).
    #[schema(value_type = Vec<Object>)]
    pub dead_letters: Vec<hub_bus::kafka::dlq::DeadLetter>,
    /// Kafka: why the dead letters could not be read, if they could not.
    pub dead_letters_error: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusQuery {
    /// How many of the newest dead letters (default 20, at most 1000).
    dead_letters: Option<usize>,
}

#[utoipa::path(get, path = "/v1/ops/bus", tag = "ops",
    description = "The ingest bus: its kind, readiness, the workers' lag per partition (Kafka) and the newest dead letters, each with its reason and where it was (`hub dlq replay` publishes them again). Operators only.",
    params(BusQuery),
    responses((status = 200, body = BusDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn bus_status(
    State(state): State<AppState>,
    principal: crate::Principal,
    crate::ApiQuery(q): crate::ApiQuery<BusQuery>,
) -> Result<axum::Json<BusDto>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::Forbidden(
            "only operators see the ingest bus".into(),
        ));
    }
    let limit = q.dead_letters.unwrap_or(20).clamp(1, 1000);
    let ready = state.bus.ready();
    let (dead_letters, dead_letters_error) = match state.bus.kafka_publisher() {
        None => (Vec::new(), None),
        Some(k) => {
            let config = k.config().clone();
            match tokio::task::spawn_blocking(move || hub_bus::kafka::dlq::list(&config, limit))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
            {
                Ok(l) => (l, None),
                Err(e) => (Vec::new(), Some(e)),
            }
        }
    };
    Ok(axum::Json(BusDto {
        bus: state.bus.kind(),
        ready: ready.is_ok(),
        reason: ready.err(),
        partitions: state.bus.lag(),
        dead_letters,
        dead_letters_error,
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    description = "Prometheus text format. Requires 'Authorization: Bearer <token>' when the operator set a metrics token.",
    responses(
        (status = 200, description = "metrics (OpenMetrics text, or Prometheus text format 0.0.4)", content(
            (String = "application/openmetrics-text"),
            (String = "text/plain"),
        )),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(token.as_str()) {
            return Err(ApiError::Unauthorized(
                "this hub requires the metrics token for /metrics".into(),
            ));
        }
    }
    let m = &state.metrics;
    m.queue_depth.set(state.bus.depth() as i64);
    m.queue_capacity.set(state.bus.capacity() as i64);
    for l in state.bus.lag() {
        m.bus_lag
            .get_or_create(&crate::metrics::PartitionLabel {
                partition: l.partition,
            })
            .set(l.lag);
    }
    if let Some(w) = &state.worker {
        use crate::metrics::OutcomeLabel;
        for (outcome, n) in [
            ("consumed", &w.consumed),
            ("stored", &w.stored),
            ("retried", &w.retried),
            ("dead_lettered", &w.dead_letters),
            ("commit_failed", &w.commit_failures),
        ] {
            m.bus_worker
                .get_or_create(&OutcomeLabel { outcome })
                .set(n.load(Ordering::Relaxed) as i64);
        }
    }
    let p = &state.pipeline;
    m.pipeline_commits
        .set(p.commits.load(Ordering::Relaxed) as i64);
    m.pipeline_write_failures
        .set(p.write_failures.load(Ordering::Relaxed) as i64);
    m.pipeline_commit_seconds_sum
        .set(p.commit_micros.load(Ordering::Relaxed) as f64 / 1e6);
    if let Some(a) = &state.analysis {
        use crate::metrics::OutcomeLabel;
        for (outcome, n) in [
            ("ok", &a.runs_ok),
            ("failed", &a.runs_failed),
            ("skipped", &a.runs_skipped),
        ] {
            m.analysis_runs
                .get_or_create(&OutcomeLabel { outcome })
                .set(n.load(Ordering::Relaxed) as i64);
        }
        m.analysis_anomalies
            .set(a.anomalies.load(Ordering::Relaxed) as i64);
        m.analysis_forecasts
            .set(a.forecasts.load(Ordering::Relaxed) as i64);
        m.analysis_run_seconds_sum
            .set(a.run_micros.load(Ordering::Relaxed) as f64 / 1e6);
        m.alert_evaluations
            .set(a.alert_evaluations.load(Ordering::Relaxed) as i64);
        m.alert_notices
            .set(a.alert_notices.load(Ordering::Relaxed) as i64);
        let d = &a.deliveries;
        for (outcome, n) in [
            ("delivered", &d.delivered),
            ("retry", &d.retried),
            ("failed", &d.failed),
        ] {
            m.alert_deliveries
                .get_or_create(&OutcomeLabel { outcome })
                .set(n.load(Ordering::Relaxed) as i64);
        }
        let s = &a.sync;
        for (family, outcome, n) in [
            (&m.sync_runs, "ok", &s.runs_ok),
            (&m.sync_runs, "failed", &s.runs_failed),
            (&m.sync_events, "stored", &s.events_stored),
            (&m.sync_events, "duplicate", &s.events_duplicate),
            (&m.sync_events, "rejected", &s.events_rejected),
        ] {
            family
                .get_or_create(&OutcomeLabel { outcome })
                .set(n.load(Ordering::Relaxed) as i64);
        }
    }
    if let Some(rss) = resident_bytes() {
        m.process_resident_bytes.set(rss as i64);
    }
    if let Some(host) = state.plugins() {
        use crate::metrics::{PluginFailureLabel, PluginLabel};
        m.plugin_throttled_seconds_sum
            .set(host.stats.throttled().as_secs_f64());
        let memory = host.runtime().memory();
        m.plugin_memory_bytes.set(memory.used() as i64);
        m.plugin_memory_cap_bytes.set(memory.caps().0 as i64);
        m.plugin_memory_evictions
            .set(host.stats.memory_evictions.load(Ordering::Relaxed) as i64);
        m.plugin_idle_releases
            .set(host.stats.idle_releases.load(Ordering::Relaxed) as i64);
        for (plugin, c) in host.stats.snapshot() {
            let l = PluginLabel {
                plugin: plugin.clone(),
            };
            m.plugin_calls.get_or_create(&l).set(c.calls as i64);
            m.plugin_call_seconds_sum
                .get_or_create(&l)
                .set(c.call_micros as f64 / 1e6);
            m.plugin_auto_disabled
                .get_or_create(&l)
                .set(c.auto_disabled as i64);
            m.plugin_items.get_or_create(&l).set(c.items as i64);
            m.plugin_cpu_seconds_sum
                .get_or_create(&l)
                .set(c.cpu_micros as f64 / 1e6);
            m.plugin_over_budget_disabled
                .get_or_create(&l)
                .set(c.over_budget as i64);
            for (reason, n) in c.failures {
                m.plugin_failures
                    .get_or_create(&PluginFailureLabel {
                        plugin: plugin.clone(),
                        reason: reason.to_string(),
                    })
                    .set(n as i64);
            }
        }
    }
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops", description = "This document.", responses((status = 200, description = "OpenAPI 3.1")))]
pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi_json())
}

/// The process's resident memory, from `/proc/self/statm` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
