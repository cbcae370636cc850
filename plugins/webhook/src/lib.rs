//! webhook: each batch of alerts the hub hands over is one POST to the tenant's endpoint, as the
//! hub's JSON document signed with HMAC-SHA256 (`X-Hub-Signature: t=<unix seconds>,v1=<hex>` over
//! `<t>.<body>`), or as a Slack-compatible message. What the endpoint answers decides what the
//! hub does next: 2xx delivered; 408, 425, 429 and 5xx (or no answer) unavailable, so the hub
//! retries; any other status, or a host the hub refuses, a configuration to fix (not retried).

use hmac::{Hmac, Mac};
use hub_plugin_sdk::http::{self, HttpError};
// Built against hub:plugin@0.1.0 (its first release), which the host keeps running unchanged.
use hub_plugin_sdk::{AlertV1 as Alert, Error, Severity};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";
/// Alerts written out one by one in a Slack message at most; the rest are counted.
pub const SLACK_MAX_ALERTS: usize = 20;
/// The most of an endpoint's answer quoted in an error.
const QUOTED: usize = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub format: Format,
}

pub struct Webhook {
    config: Config,
}

impl Webhook {
    pub fn new(config: Config) -> Result<Self, Error> {
        let rest = config
            .url
            .strip_prefix("https://")
            .or_else(|| config.url.strip_prefix("http://"))
            .ok_or_else(|| Error::BadConfig("url: must start with http:// or https://".into()))?;
        if rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(Error::BadConfig("url: has no host".into()));
        }
        if config.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(Error::BadConfig(
                "secret: at least 16 characters, or none".into(),
            ));
        }
        Ok(Webhook { config })
    }

    pub fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body = match self.config.format {
            Format::Json => document(alerts),
            Format::Slack => slack(alerts),
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let signature = self
            .config
            .secret
            .as_deref()
            .map(|secret| signature_header(secret, now, &body));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(s) = &signature {
            headers.push((SIGNATURE_HEADER, s));
        }
        let url = &self.config.url;
        let response = http::request("POST", url, &headers, Some(&body)).map_err(|e| match e {
            HttpError::BadUrl(_) | HttpError::Denied(_) => Error::BadConfig(format!("url: {e}")),
            other => Error::Unavailable(format!("POST {url}: {other}")),
        })?;
        judge(response.status, &response.body, url)
    }
}

/// What an endpoint's answer means for the hub.
pub fn judge(status: u16, body: &[u8], url: &str) -> Result<(), Error> {
    let quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED)]).into_owned();
    match status {
        200..=299 => Ok(()),
        408 | 425 | 429 | 500..=599 => Err(Error::Unavailable(format!(
            "POST {url} answered {status}: {quoted}"
        ))),
        _ => Err(Error::BadConfig(format!(
            "url: POST {url} answered {status} (not retried; check the URL and the secret): {quoted}"
        ))),
    }
}

/// `t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature_header(secret: &str, unix_s: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_s},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn label<'a>(a: &'a Alert, name: &str) -> Option<&'a str> {
    a.labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The hub's alert document: `{"version": 1, "alerts": [...]}`.
pub fn document(alerts: &[Alert]) -> Value {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let labels: serde_json::Map<String, Value> = a
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "id": a.id,
                "rule": a.rule,
                "state": label(a, "state").unwrap_or("firing"),
                "severity": label(a, "severity").unwrap_or(severity(a.severity)),
                "ts_ms": a.ts_ms,
                "summary": a.summary,
                "labels": labels,
            })
        })
        .collect();
    json!({ "version": 1, "alerts": alerts })
}

/// A Slack-compatible message: a line per alert in `text` (what notifications show), and the
/// same as blocks.
pub fn slack(alerts: &[Alert]) -> Value {
    let line = |a: &Alert| {
        let state = label(a, "state").unwrap_or("firing");
        let mark = match (state, a.severity) {
            ("resolved", _) => ":white_check_mark:",
            (_, Severity::Critical) => ":rotating_light:",
            (_, Severity::Warning) => ":warning:",
            (_, Severity::Info) => ":information_source:",
        };
        format!(
            "{mark} *[{}] {}*: {}",
            state.to_uppercase(),
            escape(&a.rule),
            escape(&a.summary)
        )
    };
    let mut lines: Vec<String> = alerts.iter().take(SLACK_MAX_ALERTS).map(line).collect();
    if alerts.len() > SLACK_MAX_ALERTS {
        lines.push(format!(
            "…and {} more alerts",
            alerts.len() - SLACK_MAX_ALERTS
        ));
    }
    let blocks: Vec<Value> = lines
        .iter()
        .map(|l| json!({"type": "section", "text": {"type": "mrkdwn", "text": l}}))
        .collect();
    json!({ "text": lines.join("\n"), "blocks": blocks })
}

/// Slack's three control characters in text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The component's exports: `hub:plugin/integration@0.1.0`, the world's first release, whose
/// bindings this crate generates itself (the SDK's integration world is 0.3.0), with the SDK's
/// types and HTTP client.
#[cfg(target_arch = "wasm32")]
mod component {
    use super::{Config, Webhook};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "hub:plugin/integration@0.1.0",
        with: {
            "hub:plugin/types@0.1.0": hub_plugin_sdk::bindings::enricher::hub::plugin0_1_0::types,
            "hub:plugin/log@0.1.0": hub_plugin_sdk::bindings::enricher::hub::plugin0_1_0::log,
            "hub:plugin/kv@0.1.0": hub_plugin_sdk::bindings::enricher::hub::plugin0_1_0::kv,
            "wasi:http/types@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::http::outgoing_handler,
            "wasi:io/streams@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::io::streams,
            "wasi:io/poll@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::io::poll,
            "wasi:io/error@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::io::error,
            "wasi:clocks/monotonic-clock@0.2.12": hub_plugin_sdk::bindings::enricher::wasi::clocks::monotonic_clock,
        },
    });

    thread_local! {
        static PLUGIN: std::cell::RefCell<Option<Webhook>> = const { std::cell::RefCell::new(None) };
    }

    struct Exports;

    impl Guest for Exports {
        fn configure(config: String) -> Result<(), PluginError> {
            hub_plugin_sdk::glue::configure(&PLUGIN, &config, |c: Config| Webhook::new(c))
        }
        fn on_alerts(alerts: Vec<Alert>) -> Result<(), PluginError> {
            hub_plugin_sdk::glue::with(&PLUGIN, |p| p.on_alerts(&alerts))
        }
        fn sync() -> Result<SyncReport, PluginError> {
            Ok(SyncReport {
                items: 0,
                message: "nothing to sync".into(),
            })
        }
    }

    export!(Exports);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: &str) -> Alert {
        Alert {
            id: "42".into(),
            rule: "errors <high>".into(),
            severity: Severity::Critical,
            ts_ms: 1_700_000_000_000,
            summary: "error_rate of model=gpt-4o is 0.5 (> 0.1 over 5m)".into(),
            labels: vec![
                ("model".into(), "gpt-4o".into()),
                ("state".into(), state.into()),
                ("severity".into(), "error".into()),
            ],
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // Computed apart, with Python's hmac: hmac.new(b"Jefe", b"0.what do ya want for
        // nothing?", hashlib.sha256).hexdigest().
        assert_eq!(
            signature_header("Jefe", 0, b"what do ya want for nothing?"),
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }

    #[test]
    fn statuses_decide_between_delivered_retried_and_fix_your_configuration() {
        assert!(judge(204, b"", "u").is_ok());
        for s in [408, 425, 429, 500, 503] {
            assert!(
                matches!(judge(s, b"busy", "u"), Err(Error::Unavailable(_))),
                "{s}"
            );
        }
        for s in [301, 400, 401, 404] {
            assert!(
                matches!(judge(s, b"no", "u"), Err(Error::BadConfig(_))),
                "{s}"
            );
        }
        let long = vec![b'x'; 10_000];
        let Err(Error::Unavailable(m)) = judge(500, &long, "u") else {
            panic!()
        };
        assert!(
            m.len() < 300,
            "the answer is quoted, not copied: {}",
            m.len()
        );
    }

    #[test]
    fn the_document_says_state_and_the_hubs_severity_and_slack_escapes() {
        let d = document(&[alert("firing"), alert("resolved")]);
        assert_eq!(d["version"], 1);
        assert_eq!(d["alerts"][0]["state"], "firing");
        assert_eq!(d["alerts"][1]["state"], "resolved");
        assert_eq!(d["alerts"][0]["severity"], "error");
        assert_eq!(d["alerts"][0]["labels"]["model"], "gpt-4o");
        let s = slack(&[alert("firing")]);
        let text = s["text"].as_str().unwrap();
        assert!(
            text.starts_with(":rotating_light: *[FIRING] errors &lt;high&gt;*"),
            "{text}"
        );
        let many: Vec<Alert> = (0..25).map(|_| alert("firing")).collect();
        let s = slack(&many);
        assert_eq!(s["blocks"].as_array().unwrap().len(), SLACK_MAX_ALERTS + 1);
        assert!(s["text"].as_str().unwrap().ends_with("…and 5 more alerts"));
    }
}
