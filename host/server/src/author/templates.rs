//! What `hub plugin new KIND NAME` writes. `{{name}}` is the plugin name, `{{crate}}` its Rust
//! crate name, `{{type}}` its type name, `{{sdk}}` the SDK's path and `{{kind}}` the kind.

pub const CARGO_LOCK: &str = include_str!("../../../../Cargo.lock");

pub const GITIGNORE: &str = "target/\n*.hubpkg\n";

pub const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["rlib"]   # `hub plugin build` makes the component (cargo rustc --crate-type cdylib)

[dependencies]
hub-plugin-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }

[dev-dependencies]
hub-plugin-sdk = { path = "{{sdk}}", features = ["testing"] }
serde_json = "1"

# A workspace of its own, with the hub's build settings for the test host.
[workspace]

[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
opt-level = 1
debug = false
"#;

pub const README: &str = r#"# {{name}}

A {{kind}} plugin for the LLM Analytics Hub, made with `hub plugin new`. Say here what it does, what each
configuration field means and why it asks for the capabilities it asks for: tenants read this page in the
marketplace before they install it.

## Configuration

| field | what it does |
|---|---|
{{config_rows}}

## Develop

```sh
cargo test                         # builds the component and runs it in the hub's own runtime
hub plugin build                   # the component, checked against plugin.toml
hub plugin test {{example}}   # runs it over the example input and prints the result
hub plugin pack --key ../publisher.key
```
"#;

pub struct Kind {
    pub plugin_toml: &'static str,
    pub lib_rs: &'static str,
    pub test_rs: &'static str,
    /// The example input file and its contents.
    pub example: (&'static str, &'static str),
    pub config_rows: &'static str,
}

pub const ENRICHER: Kind = Kind {
    plugin_toml: r#"name = "{{name}}"
version = "0.1.0"
kind = "enricher"
world = "hub:plugin/enricher@0.2.0"
description = "Tags each LLM call with the size of its prompt (small, medium, large)."
authors = ["Your Name <you@example.com>"]
license = "Apache-2.0"

[changelog]
"0.1.0" = "First release."

[capabilities]          # nothing is granted unless asked for here AND granted by the tenant
kv = false
http = []
tags = false
ids = false

[limits]
deadline-ms = 50
memory-mib = 32

[config.schema]         # JSON Schema of the tenant's configuration, in TOML
type = "object"
additionalProperties = false
examples = [{ large_tokens = 4000 }]
[config.schema.properties.large_tokens]
description = "Prompts with at least this many input tokens are `large`; a quarter of it is `medium`."
type = "integer"
minimum = 4
"#,
    lib_rs: r#"//! {{name}}: tags each LLM call with the size of its prompt.

use hub_plugin_sdk::{Batch, Enricher, Error, Patches};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_large")]
    large_tokens: u32,
}

fn default_large() -> u32 {
    4000
}

pub struct {{type}} {
    large: u32,
}

impl Enricher for {{type}} {
    type Config = Config;

    /// Called with each configuration the tenant saves (already checked against the schema).
    fn new(config: Config) -> Result<Self, Error> {
        if config.large_tokens < 4 {
            return Err(Error::bad_config("large_tokens: must be at least 4"));
        }
        Ok({{type}} {
            large: config.large_tokens,
        })
    }

    /// Columns in, patches out: the host checks every patch and applies all or none.
    fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error> {
        for row in batch.rows() {
            if let Some(tokens) = row.input_tokens() {
                let size = if tokens >= self.large {
                    "large"
                } else if tokens >= self.large / 4 {
                    "medium"
                } else {
                    "small"
                };
                out.tag(row.index(), "prompt_size", size);
            }
        }
        Ok(())
    }
}

hub_plugin_sdk::export_enricher!({{type}});
"#,
    test_rs: r##"use hub_plugin_sdk::testing::TestHost;
use serde_json::json;

fn tag(out: &hub_plugin_sdk::testing::Enriched, i: usize) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&out.events[i].tags_json).unwrap()["prompt_size"].clone()
}

#[test]
fn tags_prompt_sizes() {
    // Builds this crate for wasm32-wasip2 and runs it in the hub's own runtime.
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"large_tokens": 1000})).unwrap();
    let out = host
        .enrich_json(r#"[{"model": "gpt-4o", "input_tokens": 2000}, {"model": "gpt-4o", "input_tokens": 300}, {"model": "gpt-4o", "input_tokens": 10}, {"model": "gpt-4o"}]"#)
        .unwrap();
    assert_eq!(tag(&out, 0), "large");
    assert_eq!(tag(&out, 1), "medium");
    assert_eq!(tag(&out, 2), "small");
    assert_eq!(tag(&out, 3), serde_json::Value::Null);
}

#[test]
fn the_schema_and_the_plugin_refuse_bad_configurations() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    let e = host.configure(json!({"large_tokens": "many"})).unwrap_err().to_string();
    assert!(e.contains("large_tokens"), "{e}");
    let e = host.configure(json!({"size": 3})).unwrap_err().to_string();
    assert!(e.contains("size"), "{e}");
}
"##,
    example: (
        "examples/events.json",
        r#"[
  {"timestamp": "2026-11-25T10:30:00Z", "app": "support-bot", "model": "gpt-4o", "provider": "openai", "input_tokens": 5120, "output_tokens": 128, "latency_ms": 812.5},
  {"timestamp": "2026-11-25T10:30:01Z", "app": "support-bot", "model": "gpt-4o-mini", "provider": "openai", "input_tokens": 1200, "output_tokens": 64, "latency_ms": 301.0},
  {"timestamp": "2026-11-25T10:30:02Z", "app": "search", "model": "claude-sonnet-4", "provider": "anthropic", "input_tokens": 90, "output_tokens": 20, "latency_ms": 650.0}
]
"#,
    ),
    config_rows: "| `large_tokens` | prompts with at least this many input tokens are `large`; a quarter of it is `medium` (default 4000) |",
};

pub const DETECTOR: Kind = Kind {
    plugin_toml: r#"name = "{{name}}"
version = "0.1.0"
kind = "detector"
world = "hub:plugin/detector@0.1.0"
description = "Flags points of a metric above a fixed ceiling."
authors = ["Your Name <you@example.com>"]
license = "Apache-2.0"

[changelog]
"0.1.0" = "First release."

[capabilities]
kv = false

[limits]
deadline-ms = 50
memory-mib = 32

[config.schema]
type = "object"
additionalProperties = false
required = ["ceiling"]
examples = [{ ceiling = 2000.0 }]
[config.schema.properties.ceiling]
description = "Values above this are anomalies; twice above it, critical ones."
type = "number"
exclusiveMinimum = 0
"#,
    lib_rs: r#"//! {{name}}: flags points of a metric above a fixed ceiling.

use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    ceiling: f64,
}

pub struct {{type}} {
    ceiling: f64,
}

impl Detector for {{type}} {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if !(config.ceiling > 0.0) {
            return Err(Error::bad_config("ceiling: must be above 0"));
        }
        Ok({{type}} {
            ceiling: config.ceiling,
        })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        let mut out = Vec::new();
        for (si, s) in input.iter().enumerate() {
            for (&ts, &value) in s.ts_ms.iter().zip(&s.values) {
                if value > self.ceiling {
                    out.push(Anomaly {
                        series: si as u32,
                        ts_ms: ts,
                        value,
                        expected: None,
                        lower: None,
                        upper: Some(self.ceiling),
                        score: value / self.ceiling,
                        severity: if value > 2.0 * self.ceiling {
                            Severity::Critical
                        } else {
                            Severity::Warning
                        },
                        reason: format!("{} is {value} (ceiling {})", s.metric, self.ceiling),
                    });
                }
            }
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!({{type}});
"#,
    test_rs: r##"use hub_plugin_sdk::testing::{Series, Severity, TestHost};
use serde_json::json;

#[test]
fn flags_points_above_the_ceiling() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"ceiling": 1000.0})).unwrap();
    let series = Series {
        key: vec![("model".into(), "gpt-4o".into())],
        metric: "latency_p95".into(),
        step_ms: 60_000,
        ts_ms: vec![0, 60_000, 120_000],
        values: vec![900.0, 1500.0, 2500.0],
    };
    let found = host.detect(&[series]).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert_eq!(found[1].severity, Severity::Critical);
}

#[test]
fn a_ceiling_is_required() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    let e = host.configure(json!({})).unwrap_err().to_string();
    assert!(e.contains("ceiling"), "{e}");
}
"##,
    example: (
        "examples/series.json",
        r#"[
  {"key": {"model": "gpt-4o"}, "metric": "latency_p95", "step_ms": 60000,
   "ts_ms": [1764066600000, 1764066660000, 1764066720000, 1764066780000],
   "values": [820.0, 790.5, 2450.0, 4100.0]}
]
"#,
    ),
    config_rows: "| `ceiling` | values above it are anomalies; twice above it, critical ones |",
};

pub const FORECASTER: Kind = Kind {
    plugin_toml: r#"name = "{{name}}"
version = "0.1.0"
kind = "forecaster"
world = "hub:plugin/forecaster@0.1.0"
description = "Forecasts a metric as the mean of its last points, with a band of their spread."
authors = ["Your Name <you@example.com>"]
license = "Apache-2.0"

[changelog]
"0.1.0" = "First release."

[limits]
# No deadline-ms: forecast, on-alerts, sync and configure get the host's 5 s (deadline-ms sets enrich and detect's).
memory-mib = 32

[config.schema]
type = "object"
additionalProperties = false
examples = [{ window = 12 }]
[config.schema.properties.window]
description = "How many of the last points the forecast averages (default 12)."
type = "integer"
minimum = 1
maximum = 10000
"#,
    lib_rs: r#"//! {{name}}: forecasts a metric as the mean of its last points, with a band of their spread.

use hub_plugin_sdk::{Error, Forecast, Forecaster, Series};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_window")]
    window: usize,
}

fn default_window() -> usize {
    12
}

pub struct {{type}} {
    window: usize,
}

impl Forecaster for {{type}} {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok({{type}} {
            window: config.window.max(1),
        })
    }

    fn forecast(&mut self, input: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error> {
        let mut out = Vec::new();
        for (si, s) in input.iter().enumerate() {
            let n = s.values.len().min(s.ts_ms.len());
            if n == 0 {
                continue;
            }
            let last = &s.values[n.saturating_sub(self.window)..n];
            let mean = last.iter().sum::<f64>() / last.len() as f64;
            let sd = (last.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / last.len() as f64).sqrt();
            let ts: Vec<i64> = (1..=i64::from(horizon))
                .map(|h| s.ts_ms[n - 1] + h * i64::from(s.step_ms))
                .collect();
            out.push(Forecast {
                series: si as u32,
                mean: vec![mean; ts.len()],
                lower: vec![mean - 2.0 * sd; ts.len()],
                upper: vec![mean + 2.0 * sd; ts.len()],
                ts_ms: ts,
            });
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_forecaster!({{type}});
"#,
    test_rs: r##"use hub_plugin_sdk::testing::{Series, TestHost};
use serde_json::json;

#[test]
fn forecasts_the_recent_mean() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"window": 2})).unwrap();
    let series = Series {
        key: vec![("model".into(), "gpt-4o".into())],
        metric: "requests".into(),
        step_ms: 60_000,
        ts_ms: vec![0, 60_000, 120_000],
        values: vec![100.0, 10.0, 20.0],
    };
    let f = host.forecast(&[series], 3).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].ts_ms, vec![180_000, 240_000, 300_000]);
    assert_eq!(f[0].mean, vec![15.0; 3]);
    assert!(f[0].lower[0] < 15.0 && f[0].upper[0] > 15.0);
}
"##,
    example: (
        "examples/series.json",
        r#"[
  {"key": {"model": "gpt-4o"}, "metric": "requests", "step_ms": 60000,
   "ts_ms": [1764066600000, 1764066660000, 1764066720000, 1764066780000],
   "values": [120.0, 131.0, 118.0, 127.0]}
]
"#,
    ),
    config_rows: "| `window` | how many of the last points the forecast averages (default 12) |",
};

pub const INTEGRATION: Kind = Kind {
    plugin_toml: r#"name = "{{name}}"
version = "0.1.0"
kind = "integration"
world = "hub:plugin/integration@0.3.0"
description = "Keeps a count of alerts by rule, for an integration to build on."
authors = ["Your Name <you@example.com>"]
license = "Apache-2.0"

[changelog]
"0.1.0" = "First release."

[capabilities]
kv = true               # the counts survive restarts
http = []               # add the hosts this integration calls, e.g. "hooks.example.com"

[limits]
# No deadline-ms: forecast, on-alerts, sync and configure get the host's 5 s (deadline-ms sets enrich and detect's).
memory-mib = 32

[config.schema]
type = "object"
additionalProperties = false
examples = [{ min_severity = "warning" }]
[config.schema.properties.min_severity]
description = "Alerts below this severity are ignored (default info)."
type = "string"
enum = ["debug", "info", "warning", "error", "critical"]
"#,
    lib_rs: r#"//! {{name}}: keeps a count of firing alerts by rule in `kv`; replace the body of `on_alerts`
//! with calls to the system you integrate (`hub_plugin_sdk::http`, hosts declared in
//! plugin.toml), and `sync` with what you pull in (see its comment).

use hub_plugin_sdk::{
    Alert, AlertSeverity, AlertState, Error, Events, Integration, SyncContext, SyncReport, kv,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    min_severity: Option<String>,
}

pub struct {{type}} {
    min: u8,
}

fn rank(s: AlertSeverity) -> u8 {
    match s {
        AlertSeverity::Debug => 0,
        AlertSeverity::Info => 1,
        AlertSeverity::Warning => 2,
        AlertSeverity::Error => 3,
        AlertSeverity::Critical => 4,
    }
}

impl Integration for {{type}} {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let min = match config.min_severity.as_deref() {
            None => rank(AlertSeverity::Info),
            Some(name) => match AlertSeverity::parse(name) {
                Some(s) => rank(s),
                None => return Err(Error::bad_config(format!("min_severity: unknown '{name}'"))),
            },
        };
        Ok({{type}} { min })
    }

    fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error> {
        let counted = |a: &&Alert| {
            a.state == AlertState::Firing && !a.repeat && rank(a.severity) >= self.min
        };
        for a in alerts.iter().filter(counted) {
            let key = format!("count:{}", a.rule);
            let n: u64 = kv::get_json(&key).unwrap_or(0);
            kv::set_json(&key, &(n + 1)).map_err(Error::internal)?;
        }
        Ok(())
    }

    /// Every `refresh-interval-s` (add it under [limits] to be called): send the hub's numbers
    /// out (`context.spend`: the month's spend and projection, the last days' cost), and bring
    /// records of the other system in as the tenant's events with `events.push(&json!({"event_id":
    /// <the record's id>, "timestamp": ..., ...}))`, checked as `POST /v1/events` checks them.
    fn sync(&mut self, context: &SyncContext, events: &mut Events) -> Result<SyncReport, Error> {
        let _ = context;
        Ok(SyncReport {
            items: events.len() as u32,
            message: "nothing to sync".into(),
        })
    }
}

hub_plugin_sdk::export_integration!({{type}});
"#,
    test_rs: r##"use hub_plugin_sdk::testing::{Alert, AlertSeverity, AlertState, TestHost};
use serde_json::json;

fn alert(rule: &str, severity: AlertSeverity) -> Alert {
    Alert {
        id: format!("{rule}-1"),
        rule: rule.into(),
        rule_kind: "threshold".into(),
        state: AlertState::Firing,
        repeat: false,
        severity,
        ts_ms: 0,
        summary: "latency p95 above 2 s".into(),
        group: vec![("model".into(), "gpt-4o".into())],
        labels: vec![("team".into(), "search".into())],
        value: Some(4.1),
    }
}

#[test]
fn counts_alerts_at_or_above_the_minimum() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"min_severity": "warning"})).unwrap();
    let resolved = Alert { state: AlertState::Resolved, ..alert("slow", AlertSeverity::Critical) };
    host.on_alerts(&[
        alert("slow", AlertSeverity::Critical),
        alert("slow", AlertSeverity::Warning),
        resolved,
        alert("noise", AlertSeverity::Info),
    ])
    .unwrap();
    assert_eq!(host.kv().get("count:slow").map(|v| v.as_slice()), Some(&b"2"[..]));
    assert!(!host.kv().contains_key("count:noise"));
    // Nothing to bring in yet.
    let synced = host.sync().unwrap();
    assert!(synced.events.is_empty() && synced.rejected.is_empty());
}
"##,
    example: (
        "examples/alerts.json",
        r#"[
  {"id": "a-1", "rule": "latency-p95", "severity": "critical", "ts_ms": 1764066600000,
   "state": "firing", "summary": "gpt-4o latency p95 is 4.1 s", "group": {"model": "gpt-4o"},
   "labels": {"team": "search"}, "value": 4.1}
]
"#,
    ),
    config_rows: "| `min_severity` | alerts below this severity are ignored (default info) |",
};
