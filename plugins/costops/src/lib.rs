//! LLM-CostOps integration (`hub:plugin/integration@0.3.0`).
//!
//! Every sync (hourly):
//! - **Billing in**: each finished day's billing lines since the last one brought in (a cursor
//!   in `kv`) become `billing.daily` events, one per line, so the hub can show what was billed
//!   beside what it estimated (`GET /v1/costs/daily`). A day CostOps has not closed yet
//!   (`final: false`) waits for a later sync.
//! - **Budgets in**: each budget becomes a `cost.budget` event (a snapshot per hour), so a budget
//!   rule can take its limit from CostOps.
//! - **Projection out**: the hub's month-end spend projection (by model, with the last days'
//!   cost) is POSTed to CostOps.
//!
//! Alerts (`on-alerts`) are POSTed as they are. The wire formats are in README.md.

use hub_plugin_sdk::{Alert, Error, Events, Integration, SyncContext, SyncReport, http, kv, time};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub const SOURCE_MODULE: &str = "llm-analytics-hub";
pub const COSTOPS_MODULE: &str = "llm-cost-ops";
const BILLED_KEY: &str = "billing.last_day";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "billing_path")]
    pub billing_path: String,
    #[serde(default = "budgets_path")]
    pub budgets_path: String,
    #[serde(default = "projections_path")]
    pub projections_path: String,
    #[serde(default = "alerts_path")]
    pub alerts_path: String,
    #[serde(default = "days_back")]
    pub days_back: u32,
}

fn billing_path() -> String {
    "/api/v1/costops/billing".into()
}
fn budgets_path() -> String {
    "/api/v1/costops/budgets".into()
}
fn projections_path() -> String {
    "/api/v1/costops/projections".into()
}
fn alerts_path() -> String {
    "/api/v1/costops/alerts".into()
}
fn days_back() -> u32 {
    3
}

pub struct CostOps {
    config: Config,
    base: String,
}

impl Integration for CostOps {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let base = http::base_url(&config.url)?;
        if !(1..=6).contains(&config.days_back) {
            return Err(Error::bad_config("days_back: 1 to 6"));
        }
        Ok(CostOps { config, base })
    }

    fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error> {
        if alerts.is_empty() {
            return Ok(());
        }
        let doc = json!({
            "source": SOURCE_MODULE,
            "alerts": alerts.iter().map(alert_doc).collect::<Vec<_>>(),
        });
        let url = format!("{}{}", self.base, self.config.alerts_path);
        self.send("POST", &url, "alerts_path", Some(&doc))?;
        Ok(())
    }

    fn sync(&mut self, context: &SyncContext, events: &mut Events) -> Result<SyncReport, Error> {
        let mut said = Vec::new();
        if !self.config.billing_path.is_empty() {
            said.push(self.billing(context.now_ms, events)?);
        }
        if !self.config.budgets_path.is_empty() {
            said.push(self.budgets(context.now_ms, events)?);
        }
        if !self.config.projections_path.is_empty() {
            let url = format!("{}{}", self.base, self.config.projections_path);
            self.send(
                "POST",
                &url,
                "projections_path",
                Some(&projection_doc(context)),
            )?;
            said.push(format!(
                "projection sent ({:.2} USD spent, {:.2} USD projected)",
                context.spend.actual_usd, context.spend.projected_usd
            ));
        }
        Ok(SyncReport {
            items: events.len() as u32,
            message: said.join("; "),
        })
    }
}

impl CostOps {
    /// The finished days after the last one brought in, oldest first, up to yesterday.
    fn billing(&self, now_ms: i64, events: &mut Events) -> Result<String, Error> {
        let today = now_ms - now_ms.rem_euclid(DAY_MS);
        let earliest = today - i64::from(self.config.days_back) * DAY_MS;
        let last: Option<String> = kv::get_json(BILLED_KEY);
        let mut day = last
            .as_deref()
            .and_then(time::parse_date)
            .map_or(earliest, |d| d + DAY_MS)
            .max(earliest);
        let (mut days, mut lines, mut skipped) = (0, 0, 0);
        let mut waiting = None;
        while day < today {
            let date = time::date(day);
            let url = format!("{}{}?date={date}", self.base, self.config.billing_path);
            let page: Value = self.send("GET", &url, "billing_path", None)?.json()?;
            if page.get("final").and_then(Value::as_bool) != Some(true) {
                waiting = Some(date);
                break;
            }
            let list = page.get("lines").and_then(Value::as_array).ok_or_else(|| {
                Error::bad_config(format!(
                    "billing_path: the answer of GET {url} has no `lines` array"
                ))
            })?;
            if events.len() + list.len() > Events::MAX {
                // The rest in the next call, at once.
                events.more();
                break;
            }
            for (i, line) in list.iter().enumerate() {
                match billing_event(&date, i, line) {
                    Some(e) => events.push(&e),
                    None => skipped += 1,
                }
            }
            kv::set_json(BILLED_KEY, &date).map_err(Error::internal)?;
            days += 1;
            lines += list.len();
            day += DAY_MS;
        }
        let mut m = format!("{lines} billing lines of {days} days");
        if skipped > 0 {
            m.push_str(&format!(", {skipped} without an amount skipped"));
        }
        if let Some(d) = waiting {
            m.push_str(&format!(" ({d} not final yet)"));
        }
        Ok(m)
    }

    fn budgets(&self, now_ms: i64, events: &mut Events) -> Result<String, Error> {
        let url = format!("{}{}", self.base, self.config.budgets_path);
        let page: Value = self.send("GET", &url, "budgets_path", None)?.json()?;
        let list = page
            .get("budgets")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::bad_config(format!(
                    "budgets_path: the answer of GET {url} has no `budgets` array"
                ))
            })?;
        let hour = now_ms - now_ms.rem_euclid(3_600_000);
        let mut n = 0;
        for b in list {
            if !events.has_room() {
                break;
            }
            if let Some(e) = budget_event(b, hour) {
                events.push(&e);
                n += 1;
            }
        }
        Ok(format!("{n} budgets"))
    }

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

fn text(obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One billing line of `date` as a `billing.daily` event. Its id is the line's (else its
/// provider, model and app), so a day read twice is stored once. Its amount is `billed_usd`
/// in the payload, never the event's cost: the calls it bills are already counted. `None` for
/// a line without an amount.
pub fn billing_event(date: &str, index: usize, line: &Value) -> Option<Value> {
    let empty = Map::new();
    let obj = line.as_object().unwrap_or(&empty);
    let key = text(obj, "id").unwrap_or_else(|| {
        let parts: Vec<String> = ["provider", "model", "app"]
            .iter()
            .map(|k| text(obj, k).unwrap_or_default())
            .collect();
        if parts.iter().all(String::is_empty) {
            format!("line-{index}")
        } else {
            parts.join("/")
        }
    });
    let mut data = Map::new();
    data.insert("billing_type".into(), "daily".into());
    data.insert("date".into(), date.into());
    for k in ["provider", "model", "app", "currency"] {
        if let Some(v) = text(obj, k) {
            data.insert(k.into(), v.into());
        }
    }
    // The amount: `billed_usd` (or `cost_usd`, `amount_usd`); a line without one is skipped.
    let amount = ["billed_usd", "cost_usd", "amount_usd"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_f64))?;
    data.insert("billed_usd".into(), amount.into());
    // Tokens and requests under names that do not count as the hub's own usage (the calls
    // they bill are counted already).
    for (from, to) in [
        ("requests", "billed_requests"),
        ("input_tokens", "billed_input_tokens"),
        ("output_tokens", "billed_output_tokens"),
    ] {
        if let Some(v) = obj.get(from) {
            data.insert(to.into(), v.clone());
        }
    }
    Some(json!({
        "event_id": format!("costops-billing-{date}-{key}"),
        "timestamp": format!("{date}T12:00:00Z"),
        "source_module": COSTOPS_MODULE,
        "event_type": "billing",
        "schema_version": "1.0.0",
        "payload": {"payload_type": "billing", "data": data},
    }))
}

/// A budget as a `cost.budget` event, one snapshot per hour; `None` without an id.
pub fn budget_event(b: &Value, hour_ms: i64) -> Option<Value> {
    let obj = b.as_object()?;
    let id = text(obj, "id")?;
    let mut data = Map::new();
    data.insert("cost_type".into(), "budget".into());
    data.insert("budget_id".into(), id.clone().into());
    for (from, to) in [
        ("name", "budget_name"),
        ("limit_usd", "budget_limit_usd"),
        ("spent_usd", "current_spend_usd"),
        ("period", "period"),
        ("scope", "scope"),
    ] {
        if let Some(v) = obj.get(from) {
            data.insert(to.into(), v.clone());
        }
    }
    Some(json!({
        "event_id": format!("costops-budget-{id}-{}", time::rfc3339(hour_ms)),
        "timestamp": time::rfc3339(hour_ms),
        "source_module": COSTOPS_MODULE,
        "event_type": "cost",
        "schema_version": "1.0.0",
        "payload": {"payload_type": "cost", "data": data},
    }))
}

/// What CostOps is sent: the month's spend and projection, by model, and the last days.
pub fn projection_doc(c: &SyncContext) -> Value {
    let s = &c.spend;
    json!({
        "source": SOURCE_MODULE,
        "generated_at": time::rfc3339(c.now_ms),
        "month": &time::date(s.month_start_ms)[..7],
        "month_start": time::rfc3339(s.month_start_ms),
        "month_end": time::rfc3339(s.month_end_ms),
        "actual_usd": s.actual_usd,
        "projected_usd": s.projected_usd,
        "lower_usd": s.lower_usd,
        "upper_usd": s.upper_usd,
        "method": s.method,
        "by_model": s.by_model.iter().map(|g| json!({
            "model": g.key, "actual_usd": g.actual_usd, "projected_usd": g.projected_usd,
        })).collect::<Vec<_>>(),
        "daily": s.days.iter().map(|d| json!({
            "date": d.date, "cost_usd": d.cost_usd, "requests": d.requests,
        })).collect::<Vec<_>>(),
    })
}

fn alert_doc(a: &Alert) -> Value {
    let pairs = |p: &[(String, String)]| -> Map<String, Value> {
        p.iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect()
    };
    json!({
        "id": a.id, "rule": a.rule, "rule_kind": a.rule_kind, "state": a.state.as_str(),
        "repeat": a.repeat, "severity": a.severity.as_str(), "at": time::rfc3339(a.ts_ms),
        "summary": a.summary, "group": pairs(&a.group), "labels": pairs(&a.labels),
        "value": a.value,
    })
}

hub_plugin_sdk::export_integration!(CostOps);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_billing_line_keeps_its_amount_out_of_the_hubs_cost() {
        let e = billing_event(
            "2026-12-06",
            0,
            &json!({"provider": "openai", "model": "gpt-4o", "billed_usd": 12.5,
                     "input_tokens": 1000, "requests": 3}),
        )
        .unwrap();
        assert!(billing_event("2026-12-06", 1, &json!({"model": "x"})).is_none());
        assert_eq!(e["event_id"], "costops-billing-2026-12-06-openai/gpt-4o/");
        let data = &e["payload"]["data"];
        assert_eq!(data["billed_usd"], 12.5);
        assert_eq!(data["billed_input_tokens"], 1000);
        assert!(data.get("input_tokens").is_none() && data.get("cost_usd").is_none());
    }

    #[test]
    fn a_budget_is_a_snapshot_per_hour() {
        let e = budget_event(
            &json!({"id": "m-12", "limit_usd": 1000, "spent_usd": 10}),
            0,
        )
        .unwrap();
        assert_eq!(
            e["event_id"],
            "costops-budget-m-12-1970-01-01T00:00:00.000Z"
        );
        assert_eq!(e["payload"]["data"]["budget_limit_usd"], 1000);
        assert!(budget_event(&json!({"limit_usd": 1}), 0).is_none());
    }
}
