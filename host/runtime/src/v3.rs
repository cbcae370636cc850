//! `hub:plugin@0.3.0` beside 0.1.0. 0.3.0 changes only the integration world: its alerts carry
//! what the hub knows about them, and its `sync` answers events. The host builds 0.3.0's alerts;
//! a 0.1.0 integration gets them as it always did (state and the hub's severity as labels), and
//! its `sync` brings in nothing.

use crate::bindings::{types, v3};
use crate::host::HostState;

impl v3::types::Host for HostState {}

pub use v3::types::{
    Alert, AlertSeverity, AlertState, DayCost, GroupSpend, Spend, SyncContext, SyncOutput,
    ViolationCount,
};

/// Events a `sync` may answer at most in one call.
pub const MAX_SYNC_EVENTS: usize = 10_000;
/// Calls of `sync` in a row at most when it says there is more.
pub const MAX_SYNC_CALLS: u32 = 10;

/// The label a 0.1.0 integration reads an alert's state from (`firing` or `resolved`).
pub const STATE_LABEL: &str = "state";
/// The label with the hub's severity (`error`, say, which 0.1.0's three cannot tell from
/// `critical`).
pub const SEVERITY_LABEL: &str = "severity";

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Debug => "debug",
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Error => "error",
            AlertSeverity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "debug" => AlertSeverity::Debug,
            "info" => AlertSeverity::Info,
            "warning" => AlertSeverity::Warning,
            "error" => AlertSeverity::Error,
            "critical" => AlertSeverity::Critical,
            _ => return None,
        })
    }
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// The alert as a 0.1.0 integration is handed it: three severities, and `labels` = the group's
/// dimensions, then the rule's labels (a name of the group's is not repeated), then
/// [`STATE_LABEL`] and [`SEVERITY_LABEL`] (the host's win over a rule's label of the same name).
pub fn alert_v1(a: &Alert) -> types::Alert {
    let host = [STATE_LABEL, SEVERITY_LABEL];
    let mut labels: Vec<(String, String)> = a
        .group
        .iter()
        .filter(|(k, _)| !host.contains(&k.as_str()))
        .cloned()
        .collect();
    for (k, v) in &a.labels {
        if !host.contains(&k.as_str()) && !labels.iter().any(|(g, _)| g == k) {
            labels.push((k.clone(), v.clone()));
        }
    }
    labels.push((STATE_LABEL.into(), a.state.as_str().into()));
    labels.push((SEVERITY_LABEL.into(), a.severity.as_str().into()));
    types::Alert {
        id: a.id.clone(),
        rule: a.rule.clone(),
        severity: match a.severity {
            AlertSeverity::Debug | AlertSeverity::Info => types::Severity::Info,
            AlertSeverity::Warning => types::Severity::Warning,
            AlertSeverity::Error | AlertSeverity::Critical => types::Severity::Critical,
        },
        ts_ms: a.ts_ms,
        summary: a.summary.clone(),
        labels,
    }
}

/// A 0.1.0 `sync`'s report as 0.3.0's answer: no events.
pub(crate) fn sync_v1(report: types::SyncReport) -> SyncOutput {
    SyncOutput {
        report,
        events: Vec::new(),
        more: false,
    }
}

/// What makes a `sync` answer invalid as a whole (each event is checked by the caller, as REST
/// ingest checks it).
pub(crate) fn check_sync(out: &SyncOutput) -> Result<(), String> {
    if out.events.len() > MAX_SYNC_EVENTS {
        return Err(format!(
            "sync answered {} events; at most {MAX_SYNC_EVENTS} per call (set `more` and keep the \
             rest for the next call)",
            out.events.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            id: "7".into(),
            rule: "spend".into(),
            rule_kind: "threshold".into(),
            state: AlertState::Resolved,
            repeat: false,
            severity: AlertSeverity::Error,
            ts_ms: 1,
            summary: "s".into(),
            group: vec![("model".into(), "gpt-4o".into())],
            labels: vec![
                ("team".into(), "ml".into()),
                ("model".into(), "not-this".into()),
                ("state".into(), "spoofed".into()),
            ],
            value: Some(2.0),
        }
    }

    #[test]
    fn a_0_1_0_integration_reads_state_and_severity_from_labels() {
        let v1 = alert_v1(&alert());
        assert_eq!(v1.severity, types::Severity::Critical);
        assert_eq!(
            v1.labels,
            [
                ("model".to_string(), "gpt-4o".to_string()),
                ("team".into(), "ml".into()),
                ("state".into(), "resolved".into()),
                ("severity".into(), "error".into()),
            ]
        );
    }

    #[test]
    fn too_many_events_make_the_answer_invalid() {
        let mut out = sync_v1(types::SyncReport {
            items: 0,
            message: String::new(),
        });
        assert!(check_sync(&out).is_ok());
        out.events = vec!["{}".into(); MAX_SYNC_EVENTS + 1];
        assert!(check_sync(&out).unwrap_err().contains("at most 10000"));
    }
}
