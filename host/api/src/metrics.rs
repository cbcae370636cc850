//! Prometheus metrics, one typed field per metric. None carries a tenant label: `/metrics` is for
//! operators and must not leak who sends what.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginFailureLabel {
    pub plugin: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: i32,
}

pub struct Metrics {
    registry: Registry,
    /// Events stored for the first time (Kafka bus: acknowledged by the broker, stored by a
    /// worker next).
    pub events_accepted: Counter,
    /// Valid events that were already stored (resends).
    pub events_duplicate: Counter,
    /// Invalid events, by the field that failed (`malformed` for unparsable ones).
    pub events_rejected: Family<ReasonLabel, Counter>,
    /// Ingest requests by outcome (accepted, rejected, unauthorized, too_large, saturated, …).
    pub ingest_requests: Family<OutcomeLabel, Counter>,
    /// Seconds from the request's arrival to its commit acknowledgement.
    pub ingest_ack_seconds: Histogram,
    /// Events per accepted request.
    pub ingest_batch_events: Histogram,
    /// Query handling time by route.
    pub query_seconds: Family<RouteLabel, Histogram>,
    /// Events queued for the pipeline (sampled at scrape).
    pub queue_depth: Gauge,
    pub queue_capacity: Gauge,
    /// Kafka bus: batches published and not yet stored, per partition of the ingest topic.
    pub bus_lag: Family<PartitionLabel, Gauge>,
    /// Kafka bus, this replica's worker: messages read, batches stored, retried after a failed
    /// write, dead-lettered; offset commits refused.
    pub bus_worker: Family<OutcomeLabel, Gauge>,
    pub pipeline_commits: Gauge,
    pub pipeline_write_failures: Gauge,
    pub pipeline_commit_seconds_sum: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Plugin calls, failures by reason, time spent, automatic disables (sampled at scrape).
    pub plugin_calls: Family<PluginLabel, Gauge>,
    pub plugin_failures: Family<PluginFailureLabel, Gauge>,
    pub plugin_call_seconds_sum: Family<PluginLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub plugin_auto_disabled: Family<PluginLabel, Gauge>,
    pub plugin_items: Family<PluginLabel, Gauge>,
    pub plugin_cpu_seconds_sum: Family<PluginLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub plugin_over_budget_disabled: Family<PluginLabel, Gauge>,
    pub plugin_throttled_seconds_sum: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Plugin instance memory: held, the caps, and the instances dropped to give it back.
    pub plugin_memory_bytes: Gauge,
    pub plugin_memory_cap_bytes: Gauge,
    pub plugin_memory_evictions: Gauge,
    pub plugin_idle_releases: Gauge,
    /// The process's resident memory (Linux), sampled at scrape.
    pub process_resident_bytes: Gauge,
    /// Requests refused because their API key was over its rate limit.
    pub rate_limited: Counter,
    /// Detector and forecaster runs on this replica by outcome (ok, failed, skipped: another
    /// replica held the period), what they stored, and the time they took.
    pub analysis_runs: Family<OutcomeLabel, Gauge>,
    pub analysis_anomalies: Gauge,
    pub analysis_forecasts: Gauge,
    pub analysis_run_seconds_sum: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Evaluations of tenants' alert rules on this replica, and the notices they raised.
    pub alert_evaluations: Gauge,
    pub alert_notices: Gauge,
    /// Alert deliveries by outcome: delivered, retry (an attempt failed, tried again later),
    /// failed (given up).
    pub alert_deliveries: Family<OutcomeLabel, Gauge>,
    /// Integrations' syncs on this replica by outcome (ok, failed), and what became of the
    /// events they answered (stored, duplicate: stored before, rejected: ingest's checks).
    pub sync_runs: Family<OutcomeLabel, Gauge>,
    pub sync_events: Family<OutcomeLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hub");
        let m = Metrics {
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Family::default(),
            ingest_requests: Family::default(),
            ingest_ack_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            ingest_batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            query_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            queue_depth: Gauge::default(),
            queue_capacity: Gauge::default(),
            bus_lag: Family::default(),
            bus_worker: Family::default(),
            pipeline_commits: Gauge::default(),
            pipeline_write_failures: Gauge::default(),
            pipeline_commit_seconds_sum: Gauge::default(),
            plugin_calls: Family::default(),
            plugin_failures: Family::default(),
            plugin_call_seconds_sum: Family::default(),
            plugin_auto_disabled: Family::default(),
            plugin_items: Family::default(),
            plugin_cpu_seconds_sum: Family::default(),
            plugin_over_budget_disabled: Family::default(),
            plugin_throttled_seconds_sum: Gauge::default(),
            plugin_memory_bytes: Gauge::default(),
            plugin_memory_cap_bytes: Gauge::default(),
            plugin_memory_evictions: Gauge::default(),
            plugin_idle_releases: Gauge::default(),
            process_resident_bytes: Gauge::default(),
            rate_limited: Counter::default(),
            analysis_runs: Family::default(),
            analysis_anomalies: Gauge::default(),
            analysis_forecasts: Gauge::default(),
            alert_evaluations: Gauge::default(),
            alert_notices: Gauge::default(),
            alert_deliveries: Family::default(),
            sync_runs: Family::default(),
            sync_events: Family::default(),
            analysis_run_seconds_sum: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "api_key_rate_limited",
            "Requests refused with 429 because their API key was over its rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "ingest_events_accepted",
            "Events stored for the first time (Kafka bus: acknowledged by the broker, stored by a worker next)",
            m.events_accepted.clone(),
        );
        registry.register(
            "ingest_events_duplicate",
            "Valid events already stored (resends)",
            m.events_duplicate.clone(),
        );
        registry.register(
            "ingest_events_rejected",
            "Invalid events by failing field",
            m.events_rejected.clone(),
        );
        registry.register(
            "ingest_requests",
            "Ingest requests by outcome",
            m.ingest_requests.clone(),
        );
        registry.register(
            "ingest_ack_seconds",
            "Time from request to commit acknowledgement",
            m.ingest_ack_seconds.clone(),
        );
        registry.register(
            "ingest_batch_events",
            "Events per accepted ingest request",
            m.ingest_batch_events.clone(),
        );
        registry.register(
            "query_seconds",
            "Query handling time by route",
            m.query_seconds.clone(),
        );
        registry.register(
            "queue_depth_events",
            "Events queued for or being written by the pipeline",
            m.queue_depth.clone(),
        );
        registry.register(
            "queue_capacity_events",
            "Events the ingest queue holds before answering 429",
            m.queue_capacity.clone(),
        );
        registry.register(
            "bus_partition_lag_batches",
            "Kafka bus: batches published to a partition of the ingest topic and not yet stored",
            m.bus_lag.clone(),
        );
        registry.register(
            "bus_worker_messages",
            "Kafka bus, this replica's worker: messages by what became of them (consumed, stored, retried, dead_lettered, commit_failed)",
            m.bus_worker.clone(),
        );
        registry.register(
            "analysis_runs",
            "Detector and forecaster runs on this replica by outcome (skipped: another replica held the period)",
            m.analysis_runs.clone(),
        );
        registry.register(
            "analysis_anomalies",
            "Anomalies stored by this replica's detector runs",
            m.analysis_anomalies.clone(),
        );
        registry.register(
            "analysis_forecasts",
            "Forecasts stored by this replica's forecaster runs",
            m.analysis_forecasts.clone(),
        );
        registry.register(
            "analysis_run_seconds_sum",
            "Time spent in detector and forecaster runs: building series, calling, storing",
            m.analysis_run_seconds_sum.clone(),
        );
        registry.register(
            "alert_evaluations",
            "Evaluations of a tenant's alert rules on this replica (one a minute per tenant with rules, across replicas)",
            m.alert_evaluations.clone(),
        );
        registry.register(
            "alert_notices",
            "Alert notices (firing, repeated, resolved) raised by this replica's evaluations",
            m.alert_notices.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Attempts to deliver alert notices to integrations on this replica, by outcome (delivered; retry: failed, tried again later; failed: given up)",
            m.alert_deliveries.clone(),
        );
        registry.register(
            "sync_runs",
            "Integrations' syncs on this replica, by outcome (ok, failed); each period runs on one replica",
            m.sync_runs.clone(),
        );
        registry.register(
            "sync_events",
            "Events answered by integrations' syncs on this replica, by outcome (stored; duplicate: stored before; rejected: failed ingest's checks)",
            m.sync_events.clone(),
        );
        registry.register(
            "pipeline_commits",
            "Group commits written by the pipeline",
            m.pipeline_commits.clone(),
        );
        registry.register(
            "pipeline_write_failures",
            "Failed write attempts (retried or refused)",
            m.pipeline_write_failures.clone(),
        );
        registry.register(
            "pipeline_commit_seconds_sum",
            "Total time spent in commits (divide by pipeline_commits for the mean)",
            m.pipeline_commit_seconds_sum.clone(),
        );
        registry.register(
            "plugin_calls",
            "Plugin calls on this replica, by plugin",
            m.plugin_calls.clone(),
        );
        registry.register(
            "plugin_failures",
            "Failed plugin calls by plugin and reason (deadline, memory, trap, error, invalid_output)",
            m.plugin_failures.clone(),
        );
        registry.register(
            "plugin_call_seconds_sum",
            "Time spent in plugin calls, by plugin",
            m.plugin_call_seconds_sum.clone(),
        );
        registry.register(
            "plugin_auto_disabled",
            "Installs disabled after repeated failures, by plugin",
            m.plugin_auto_disabled.clone(),
        );
        registry.register(
            "plugin_items",
            "What successful calls produced, by plugin: patches applied by enrichers, anomalies found by detectors, items synced by integrations",
            m.plugin_items.clone(),
        );
        registry.register(
            "plugin_cpu_seconds_sum",
            "CPU time of plugin calls, by plugin (what tenants' plugin budgets are charged)",
            m.plugin_cpu_seconds_sum.clone(),
        );
        registry.register(
            "plugin_over_budget_disabled",
            "Installs disabled for staying over their tenant's plugin CPU budget, by plugin",
            m.plugin_over_budget_disabled.clone(),
        );
        registry.register(
            "plugin_throttled_seconds_sum",
            "Time tenants' plugin passes waited for CPU budget, all tenants together",
            m.plugin_throttled_seconds_sum.clone(),
        );
        registry.register(
            "plugin_memory_bytes",
            "Linear memory all live plugin instances hold",
            m.plugin_memory_bytes.clone(),
        );
        registry.register(
            "plugin_memory_cap_bytes",
            "The most linear memory all live plugin instances may hold (--plugin-memory-mib)",
            m.plugin_memory_cap_bytes.clone(),
        );
        registry.register(
            "plugin_memory_evictions",
            "Idle plugin instances dropped because plugin memory passed three quarters of its cap",
            m.plugin_memory_evictions.clone(),
        );
        registry.register(
            "plugin_idle_releases",
            "Plugin instances dropped after going unused for --plugin-idle-release",
            m.plugin_idle_releases.clone(),
        );
        registry.register(
            "process_resident_bytes",
            "Resident memory of the hub process",
            m.process_resident_bytes.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// The reason label of a rejected event: the first segment of the failing field.
    pub fn reason_of(field: &str) -> String {
        match field.split('.').next().unwrap_or("") {
            "" => "malformed".into(),
            first if first.len() <= 32 => first.to_string(),
            _ => "other".into(),
        }
    }
}
