//! LLM-Policy-Engine integration (`hub:plugin/integration@0.3.0`).
//!
//! Every sync (hourly) posts a compliance report of the hour before it: the tenant's
//! `governance.policy_violation` events counted by policy, resource and severity (the hub counts
//! them and hands the counts to `sync`), with totals by severity and by policy. Alert notices are
//! posted as they are. The wire formats are in README.md.

use std::collections::BTreeMap;

use hub_plugin_sdk::{Alert, Error, Events, Integration, SyncContext, SyncReport, http, time};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub const SOURCE_MODULE: &str = "llm-analytics-hub";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "reports_path")]
    pub reports_path: String,
    #[serde(default = "alerts_path")]
    pub alerts_path: String,
    #[serde(default)]
    pub skip_empty: bool,
}

fn reports_path() -> String {
    "/api/v1/compliance/reports".into()
}
fn alerts_path() -> String {
    "/api/v1/compliance/alerts".into()
}

pub struct Policy {
    config: Config,
    base: String,
}

impl Integration for Policy {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let base = http::base_url(&config.url)?;
        Ok(Policy { config, base })
    }

    fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error> {
        if alerts.is_empty() {
            return Ok(());
        }
        let pairs = |p: &[(String, String)]| -> Map<String, Value> {
            p.iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect()
        };
        let doc = json!({
            "source": SOURCE_MODULE,
            "alerts": alerts.iter().map(|a| json!({
                "id": a.id, "rule": a.rule, "rule_kind": a.rule_kind, "state": a.state.as_str(),
                "repeat": a.repeat, "severity": a.severity.as_str(), "at": time::rfc3339(a.ts_ms),
                "summary": a.summary, "group": pairs(&a.group), "labels": pairs(&a.labels),
                "value": a.value,
            })).collect::<Vec<_>>(),
        });
        let url = format!("{}{}", self.base, self.config.alerts_path);
        self.post(&url, "alerts_path", &doc)
    }

    fn sync(&mut self, context: &SyncContext, _: &mut Events) -> Result<SyncReport, Error> {
        let total: u64 = context.violations.iter().map(|v| u64::from(v.count)).sum();
        if total == 0 && self.config.skip_empty {
            return Ok(SyncReport {
                items: 0,
                message: "no violations this hour: no report (`skip_empty`)".into(),
            });
        }
        let url = format!("{}{}", self.base, self.config.reports_path);
        self.post(&url, "reports_path", &report(context))?;
        Ok(SyncReport {
            items: context.violations.len() as u32,
            message: format!(
                "report sent: {total} violations of {} policies",
                report_policies(context)
            ),
        })
    }
}

impl Policy {
    fn post(&self, url: &str, field: &str, doc: &Value) -> Result<(), Error> {
        http::call_json("POST", url, self.config.token.as_deref(), field, Some(doc)).map(|_| ())
    }
}

fn report_policies(c: &SyncContext) -> usize {
    c.violations
        .iter()
        .map(|v| v.policy.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The compliance report of the context's period.
pub fn report(c: &SyncContext) -> Value {
    let mut by_severity: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_policy: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for v in &c.violations {
        *by_severity.entry(v.severity.as_str()).or_default() += u64::from(v.count);
        let p = by_policy
            .entry(v.policy.as_str())
            .or_insert((0, v.policy_name.as_str()));
        p.0 += u64::from(v.count);
    }
    let total: u64 = by_severity.values().sum();
    json!({
        "source": SOURCE_MODULE,
        "generated_at": time::rfc3339(c.now_ms),
        "period_start": time::rfc3339(c.period_start_ms),
        "period_end": time::rfc3339(c.period_end_ms),
        "compliant": total == 0,
        "total_violations": total,
        "by_severity": by_severity,
        "by_policy": by_policy.iter().map(|(id, (n, name))| json!({
            "policy_id": id, "policy_name": name, "violations": n,
        })).collect::<Vec<_>>(),
        "violations": c.violations.iter().map(|v| json!({
            "policy_id": v.policy, "policy_name": v.policy_name, "resource_id": v.resource,
            "severity": v.severity, "count": v.count,
            "first_seen": time::rfc3339(v.first_ms), "last_seen": time::rfc3339(v.last_ms),
        })).collect::<Vec<_>>(),
    })
}

hub_plugin_sdk::export_integration!(Policy);
