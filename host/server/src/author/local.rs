//! Running a plugin on this machine as a hub would: its component (built from the crate, or one
//! built by other means) loaded against its `plugin.toml` under the hub's limits and HTTP rules,
//! and fed an input file by `hub plugin test`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hub_marketplace::{Manifest, PluginKind};
use hub_plugin_sdk::testing::{
    Alert, AlertSeverity, AlertState, RuntimeConfig, Series, Severity, TestHost,
};

use hub_plugins::PluginHost;

use super::host_version;

/// Where a plugin is: its directory, and the component when it is not built from a crate there.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginSource {
    /// The plugin's directory: plugin.toml, README.md, and the crate to build unless --component
    /// is given.
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// A component built by other means (componentize-py, componentize-js, TinyGo, …), taken as
    /// it is instead of building the crate.
    #[arg(long, value_name = "WASM")]
    pub component: Option<PathBuf>,
}

impl PluginSource {
    /// The component (built first from the crate when no --component was given) and the plugin
    /// loaded from it as a hub would load it: its manifest checked, its world and imports checked,
    /// its limits within the hub's default maxima, and private HTTP addresses refused unless
    /// `rules` allow them. Without `rules.grants`, it is granted what its manifest asks for.
    pub fn load(&self, rules: &LocalRules) -> Result<(PathBuf, TestHost)> {
        let manifest_path = self.path.join("plugin.toml");
        let source = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest = Manifest::parse(&source, &host_version())?;
        let grants = if rules.grants.is_empty() {
            None
        } else {
            let doc = crate::plugin_args::parse_grants(&rules.grants, Some(&manifest))?;
            PluginHost::check_grants(&manifest, &doc)?;
            Some(doc.to_grants())
        };
        let wasm = match &self.component {
            Some(c) => c.clone(),
            None => hub_plugin_sdk::testing::build_component(&self.path)?,
        };
        let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
        let config = RuntimeConfig {
            allow_private_http: rules.allow_private_http,
            ..RuntimeConfig::default()
        };
        let host = TestHost::from_parts(&bytes, &source, config, grants)
            .with_context(|| format!("loading {}", wasm.display()))?;
        Ok((wasm, host))
    }
}

/// What a local run may do beyond the manifest's own asks, as a hub's operator and a tenant's
/// admin would decide.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LocalRules {
    /// Capabilities granted, as `hub plugin add` takes them: `kv`, `http:HOST[:PORT]`, `all`;
    /// repeat (default: everything plugin.toml asks for).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// Let the plugin reach loopback and private addresses, as a hub started with
    /// --plugin-allow-private-http does (by default they are refused, as a hub refuses them).
    #[arg(long)]
    pub allow_private_http: bool,
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    v.and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Series as JSON: `[{"key": {...}, "metric", "step_ms", "ts_ms": [...], "values": [...]}]`.
pub(super) fn parse_series(text: &str) -> Result<Vec<Series>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct S {
        #[serde(default)]
        key: serde_json::Value,
        metric: String,
        step_ms: u32,
        ts_ms: Vec<i64>,
        values: Vec<f64>,
    }
    let list: Vec<S> = serde_json::from_str(text)
        .context("series: expected a JSON array of {key, metric, step_ms, ts_ms, values}")?;
    Ok(list
        .into_iter()
        .map(|s| Series {
            key: pairs(Some(&s.key)),
            metric: s.metric,
            step_ms: s.step_ms,
            ts_ms: s.ts_ms,
            values: s.values,
        })
        .collect())
}

/// Alert notices as JSON: `[{"id", "rule", "severity", "ts_ms", "summary", "state", "group":
/// {...}, "labels": {...}, "value", "rule_kind", "repeat"}]` (the last six optional).
pub(super) fn parse_alerts(text: &str) -> Result<Vec<Alert>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct A {
        id: String,
        rule: String,
        severity: String,
        ts_ms: i64,
        summary: String,
        #[serde(default)]
        state: Option<String>,
        #[serde(default)]
        group: serde_json::Value,
        #[serde(default)]
        labels: serde_json::Value,
        #[serde(default)]
        value: Option<f64>,
        #[serde(default)]
        rule_kind: Option<String>,
        #[serde(default)]
        repeat: bool,
    }
    let list: Vec<A> = serde_json::from_str(text).context(
        "alerts: expected a JSON array of {id, rule, severity, ts_ms, summary, state, group, labels, value}",
    )?;
    list.into_iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Alert {
                severity: AlertSeverity::parse(&a.severity).with_context(|| {
                    format!(
                        "alerts[{i}].severity: '{}' is not debug, info, warning, error or critical",
                        a.severity
                    )
                })?,
                state: match a.state.as_deref() {
                    None | Some("firing") => AlertState::Firing,
                    Some("resolved") => AlertState::Resolved,
                    Some(other) => bail!("alerts[{i}].state: '{other}' is not firing or resolved"),
                },
                group: pairs(Some(&a.group)),
                labels: pairs(Some(&a.labels)),
                id: a.id,
                rule: a.rule,
                rule_kind: a.rule_kind.unwrap_or_else(|| "threshold".into()),
                repeat: a.repeat,
                ts_ms: a.ts_ms,
                summary: a.summary,
                value: a.value,
            })
        })
        .collect()
}

/// What an enricher changed in one event: the patchable columns and the tags it added.
fn changes(before: &hub_core::EventRecord, after: &hub_core::EventRecord) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let texts = [
        ("provider", &before.provider, &after.provider),
        ("operation", &before.operation, &after.operation),
        ("app", &before.app, &after.app),
        ("environment", &before.environment, &after.environment),
    ];
    for (field, b, a) in texts {
        if b != a {
            out.insert(field.into(), serde_json::json!(a));
        }
    }
    if before.cost_usd != after.cost_usd {
        out.insert("cost_usd".into(), serde_json::json!(after.cost_usd));
    }
    let tags = |s: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default()
    };
    let (b, a) = (tags(&before.tags_json), tags(&after.tags_json));
    let added: serde_json::Map<String, serde_json::Value> =
        a.into_iter().filter(|(k, v)| b.get(k) != Some(v)).collect();
    if !added.is_empty() {
        out.insert("tags".into(), added.into());
    }
    out.into()
}

/// `hub plugin test`: runs the plugin over `file` and prints what it did.
pub fn test(
    file: &Path,
    source: &PluginSource,
    rules: &LocalRules,
    config: Option<String>,
    horizon: u32,
) -> Result<()> {
    let (_, mut host) = source.load(rules)?;
    let config = match config {
        Some(c) => crate::plugin_args::read_config(&c)?,
        None => host.manifest().example_config(),
    };
    host.configure(config.clone())
        .with_context(|| format!("configure {config}"))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let output = match host.manifest().kind {
        PluginKind::Enricher => {
            let before = hub_plugin_sdk::testing::parse_events(&text)?;
            let out = host.enrich_events(before.clone())?;
            let events: Vec<serde_json::Value> = before
                .iter()
                .zip(&out.events)
                .enumerate()
                .map(|(i, (b, a))| {
                    serde_json::json!({"index": i, "model": a.model, "changed": changes(b, a)})
                })
                .collect();
            serde_json::json!({"events": events, "patches_applied": out.applied.applied, "patches_kept": out.applied.kept})
        }
        PluginKind::Detector => {
            let series = parse_series(&text)?;
            let found = host.detect(&series)?;
            serde_json::json!({"anomalies": found.iter().map(|a| serde_json::json!({
                "series": a.series, "ts_ms": a.ts_ms, "value": a.value, "expected": a.expected,
                "lower": a.lower, "upper": a.upper, "score": a.score,
                "severity": severity(a.severity), "reason": a.reason,
            })).collect::<Vec<_>>()})
        }
        PluginKind::Forecaster => {
            let series = parse_series(&text)?;
            let f = host.forecast(&series, horizon)?;
            serde_json::json!({"forecasts": f.iter().map(|f| serde_json::json!({
                "series": f.series, "ts_ms": f.ts_ms, "mean": f.mean, "lower": f.lower, "upper": f.upper,
            })).collect::<Vec<_>>()})
        }
        PluginKind::Integration => {
            // The alerts (if any) delivered, then one sync, as a hub would make them.
            let alerts = parse_alerts(&text)?;
            if !alerts.is_empty() {
                host.on_alerts(&alerts)?;
            }
            let synced = host.sync()?;
            let kv: serde_json::Map<String, serde_json::Value> = host
                .kv()
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
                .collect();
            serde_json::json!({
                "alerts_delivered": alerts.len(),
                "sync": {
                    "items": synced.report.items,
                    "message": synced.report.message,
                    "more": synced.more,
                    "events": synced.events.iter().map(|e| serde_json::json!({
                        "event_id": e.event_id, "kind": e.kind,
                        "timestamp": hub_core::time::to_rfc3339(e.ts_ms),
                        "tags": serde_json::from_str::<serde_json::Value>(&e.tags_json).unwrap_or_default(),
                    })).collect::<Vec<_>>(),
                    "rejected": synced.rejected,
                },
                "kv": kv,
            })
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
