//! LLM-Sentinel integration (`hub:plugin/integration@0.3.0`).
//!
//! - **Out** (`on-alerts`): every alert notice at or above `min_severity` becomes a
//!   Sentinel-shaped event (the LLM DevOps envelope, `source_module: llm-analytics-hub`,
//!   `payload_type` `anomaly` for an anomaly rule's alerts, `alert` for the others), all of a
//!   batch in one POST to `events_path`.
//! - **In** (`sync`): the Sentinel's detections since the last sync (GET `detections_path`, a
//!   cursor kept in `kv`) become `security.threat` events, one per detection, with the
//!   detection's id as the event id so that one read twice is stored once.
//!
//! The wire formats are in README.md; what the Sentinel calls its fields is configurable.

use hub_plugin_sdk::{
    Alert, AlertSeverity, Error, Events, Integration, SyncContext, SyncReport, http, kv, time,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The module name the hub's events carry in the envelope.
pub const SOURCE_MODULE: &str = "llm-analytics-hub";
/// The module name of the events made from detections.
pub const SENTINEL_MODULE: &str = "llm-sentinel";
const CURSOR_KEY: &str = "detections.cursor";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "events_path")]
    pub events_path: String,
    #[serde(default = "detections_path")]
    pub detections_path: String,
    #[serde(default = "yes")]
    pub pull: bool,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default = "page_size")]
    pub page_size: u32,
    #[serde(default = "backfill_hours")]
    pub backfill_hours: u32,
    #[serde(default)]
    pub fields: Fields,
}

/// What the Sentinel calls the fields the plugin reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    pub list: String,
    pub id: String,
    pub time: String,
    pub level: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            list: "detections".into(),
            id: "id".into(),
            time: "detected_at".into(),
            level: "threat_level".into(),
        }
    }
}

fn events_path() -> String {
    "/api/v1/events".into()
}
fn detections_path() -> String {
    "/api/v1/detections".into()
}
fn yes() -> bool {
    true
}
fn page_size() -> u32 {
    500
}
fn backfill_hours() -> u32 {
    24
}

pub struct Sentinel {
    config: Config,
    base: String,
    min: AlertSeverity,
}

fn rank(s: AlertSeverity) -> u8 {
    s as u8
}

impl Integration for Sentinel {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let base = http::base_url(&config.url)?;
        let min = match config.min_severity.as_deref() {
            None => AlertSeverity::Info,
            Some(name) => AlertSeverity::parse(name)
                .ok_or_else(|| Error::bad_config(format!("min_severity: unknown `{name}`")))?,
        };
        if !(1..=5000).contains(&config.page_size) {
            return Err(Error::bad_config("page_size: 1 to 5000"));
        }
        if !(1..=168).contains(&config.backfill_hours) {
            return Err(Error::bad_config("backfill_hours: 1 to 168"));
        }
        Ok(Sentinel { config, base, min })
    }

    fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error> {
        let events: Vec<Value> = alerts
            .iter()
            .filter(|a| rank(a.severity) >= rank(self.min))
            .map(alert_event)
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let url = format!("{}{}", self.base, self.config.events_path);
        self.send(
            "POST",
            &url,
            "events_path",
            Some(&json!({ "events": events })),
        )?;
        Ok(())
    }

    fn sync(&mut self, _: &SyncContext, events: &mut Events) -> Result<SyncReport, Error> {
        if !self.config.pull {
            return Ok(SyncReport {
                items: 0,
                message: "pulling detections is off (`pull: false`)".into(),
            });
        }
        let cursor: Option<String> = kv::get_json(CURSOR_KEY);
        let mut url = format!(
            "{}{}?limit={}",
            self.base, self.config.detections_path, self.config.page_size
        );
        match &cursor {
            Some(c) => url.push_str(&format!("&cursor={}", encode(c))),
            None => {
                let since = time::now_ms() - i64::from(self.config.backfill_hours) * 3_600_000;
                url.push_str(&format!("&since={}", encode(&time::rfc3339(since))));
            }
        }
        let answer = self.send("GET", &url, "detections_path", None)?;
        let page: Value = answer.json()?;
        let f = &self.config.fields;
        let list = page.get(&f.list).and_then(Value::as_array).ok_or_else(|| {
            Error::bad_config(format!(
                "fields.list: the answer of GET {url} has no `{}` array",
                f.list
            ))
        })?;
        let mut skipped = 0;
        for d in list {
            match detection_event(d, f) {
                Some(e) => events.push(&e),
                // Without an id or a time it cannot be stored once and in its place: counted.
                None => skipped += 1,
            }
        }
        let next = page.get("cursor").and_then(Value::as_str);
        if let Some(next) = next {
            kv::set_json(CURSOR_KEY, &next).map_err(Error::internal)?;
        }
        if page.get("has_more").and_then(Value::as_bool) == Some(true) && next.is_some() {
            events.more();
        }
        let mut message = format!("{} detections read", list.len());
        if skipped > 0 {
            message.push_str(&format!(
                "; {skipped} without `{}` or `{}` skipped",
                f.id, f.time
            ));
        }
        Ok(SyncReport {
            items: list.len() as u32,
            message,
        })
    }
}

impl Sentinel {
    fn send(
        &self,
        method: &str,
        url: &str,
        field: &str,
        body: Option<&Value>,
    ) -> Result<http::Response, Error> {
        http::call_json(method, url, self.config.token.as_deref(), field, body)
    }
}

/// An alert notice as a Sentinel event: the envelope the hub itself accepts.
pub fn alert_event(a: &Alert) -> Value {
    let anomaly = a.rule_kind == "anomaly";
    let pairs = |p: &[(String, String)]| -> Map<String, Value> {
        p.iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect()
    };
    let kind = if anomaly { "anomaly" } else { "alert" };
    let mut data = json!({
        "alert_id": a.id,
        "rule": a.rule,
        "rule_kind": a.rule_kind,
        "state": a.state.as_str(),
        "repeat": a.repeat,
        "summary": a.summary,
        "group": pairs(&a.group),
        "labels": pairs(&a.labels),
        "value": a.value,
    });
    data[format!("{kind}_type")] = a.rule_kind.clone().into();
    for (k, v) in &a.group {
        if ["app", "model", "provider", "environment"].contains(&k.as_str()) {
            data[k] = v.clone().into();
        }
    }
    json!({
        // One per notice: the alert's firing, each reminder and its resolution are distinct.
        "event_id": format!("hub-alert-{}-{}-{}", a.id, a.state.as_str(), a.ts_ms),
        "timestamp": time::rfc3339(a.ts_ms),
        "source_module": SOURCE_MODULE,
        "event_type": kind,
        "schema_version": "1.0.0",
        "severity": a.severity.as_str(),
        "payload": {"payload_type": kind, "data": data},
    })
}

/// A detection as a `security.threat` event, or `None` without an id or a time.
pub fn detection_event(d: &Value, f: &Fields) -> Option<Value> {
    let obj = d.as_object()?;
    let text = |name: &str| match obj.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let id = text(&f.id)?;
    let at = text(&f.time)?;
    let level = text(&f.level);
    let severity = text("severity")
        .filter(|s| AlertSeverity::parse(s).is_some())
        .or_else(|| level.as_deref().map(|l| level_severity(l).into()))
        .unwrap_or_else(|| "warning".into());
    let mut data: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| ![f.id.as_str(), f.time.as_str()].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    data.insert("security_type".into(), "threat".into());
    data.insert("threat_id".into(), id.clone().into());
    if let Some(l) = level {
        data.insert("threat_level".into(), l.into());
    }
    let mut event = json!({
        "event_id": format!("sentinel-{id}"),
        "timestamp": at,
        "source_module": SENTINEL_MODULE,
        "event_type": "security",
        "schema_version": "1.0.0",
        "severity": severity,
        "payload": {"payload_type": "security", "data": data},
    });
    for top in ["environment", "correlation_id"] {
        if let Some(v) = text(top) {
            event[top] = v.into();
        }
    }
    Some(event)
}

/// A threat level as the hub's severity: low → info, medium → warning, high → error,
/// critical → critical.
pub fn level_severity(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "critical" => "critical",
        "high" => "error",
        "medium" => "warning",
        _ => "info",
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

hub_plugin_sdk::export_integration!(Sentinel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detection_keeps_its_fields_and_takes_its_severity_from_the_level() {
        let d = json!({"id": "det-1", "detected_at": "2026-12-07T10:00:00Z",
            "threat_type": "prompt_injection", "threat_level": "high", "model": "gpt-4o",
            "environment": "production", "source_ip": "203.0.113.7"});
        let e = detection_event(&d, &Fields::default()).unwrap();
        assert_eq!(e["event_id"], "sentinel-det-1");
        assert_eq!(e["severity"], "error");
        assert_eq!(e["environment"], "production");
        let data = &e["payload"]["data"];
        assert_eq!(data["security_type"], "threat");
        assert_eq!(data["threat_level"], "high");
        assert_eq!(data["model"], "gpt-4o");
        assert_eq!(data["source_ip"], "203.0.113.7");
        assert!(data.get("detected_at").is_none());
        assert!(detection_event(&json!({"id": "x"}), &Fields::default()).is_none());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("2026-12-07T10:00:00.000Z"),
            "2026-12-07T10%3A00%3A00.000Z"
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
