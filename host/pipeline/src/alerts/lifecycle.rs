//! An alert's life, one evaluation at a time: a rule's group whose condition starts to hold is
//! **pending**; held for the rule's `for`, it is **firing** (notified); while it keeps firing it
//! is notified again every `renotify`; when the condition stops holding a firing alert is
//! **resolved** (notified) and a pending one is simply forgotten. An acknowledged alert gets no
//! more reminders. Pure: the scheduler stores what
//! this returns and hands the notices to the targets.

use std::collections::HashMap;

/// The dimension values an alert is about (sorted by name; `[]`: the tenant's total).
pub type AlertGroup = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Firing,
    Resolved,
}

impl Phase {
    /// A stored state's phase (`pending` for anything unknown: it is judged afresh).
    pub fn parse(s: &str) -> Phase {
        match s {
            "firing" => Phase::Firing,
            "resolved" => Phase::Resolved,
            _ => Phase::Pending,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        }
    }
}

/// One alert: a rule's group from the moment its condition held until it resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub group: AlertGroup,
    pub phase: Phase,
    /// The newest value judged (the metric, or the anomaly's score's value).
    pub value: f64,
    /// When the condition started to hold.
    pub since_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    /// When a notice last went out for it.
    pub notified_at_ms: Option<i64>,
    /// Someone said they are on it: no more reminders (its resolution is still notified).
    pub acknowledged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Firing,
    /// Still firing, `renotify` after the last notice.
    Repeat,
    Resolved,
}

/// What the targets are told about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub group: AlertGroup,
    pub kind: NoticeKind,
    pub value: f64,
}

/// What one evaluation changed: the alerts to store (new, changed or resolved), the pending
/// ones to forget, and the notices to send.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Step {
    pub alerts: Vec<Alert>,
    pub forgotten: Vec<AlertGroup>,
    pub notices: Vec<Notice>,
}

/// Moves a rule's open (pending or firing) alerts on by one evaluation at `now_ms`, given the
/// groups whose condition holds now and their values.
pub fn step(
    for_ms: i64,
    renotify_ms: i64,
    open: &[Alert],
    holding: &[(AlertGroup, f64)],
    now_ms: i64,
) -> Step {
    let mut out = Step::default();
    let holding: HashMap<&AlertGroup, f64> = holding.iter().map(|(g, v)| (g, *v)).collect();
    let mut seen = std::collections::HashSet::new();
    for a in open.iter().filter(|a| a.phase != Phase::Resolved) {
        seen.insert(&a.group);
        let mut next = a.clone();
        match (holding.get(&a.group), a.phase) {
            (Some(v), Phase::Pending) => {
                next.value = *v;
                if now_ms - a.since_ms >= for_ms {
                    fire(&mut next, now_ms, &mut out.notices);
                }
            }
            (Some(v), _) => {
                next.value = *v;
                let last = a.notified_at_ms.or(a.fired_at_ms).unwrap_or(a.since_ms);
                if renotify_ms > 0 && !a.acknowledged && now_ms - last >= renotify_ms {
                    next.notified_at_ms = Some(now_ms);
                    out.notices.push(Notice {
                        group: a.group.clone(),
                        kind: NoticeKind::Repeat,
                        value: *v,
                    });
                }
            }
            (None, Phase::Pending) => {
                out.forgotten.push(a.group.clone());
                continue;
            }
            (None, _) => {
                next.phase = Phase::Resolved;
                next.resolved_at_ms = Some(now_ms);
                next.notified_at_ms = Some(now_ms);
                out.notices.push(Notice {
                    group: a.group.clone(),
                    kind: NoticeKind::Resolved,
                    value: a.value,
                });
            }
        }
        if next != *a {
            out.alerts.push(next);
        }
    }
    for (group, value) in holding.iter().filter(|(g, _)| !seen.contains(*g)) {
        let mut a = Alert {
            group: (*group).clone(),
            phase: Phase::Pending,
            value: *value,
            since_ms: now_ms,
            fired_at_ms: None,
            resolved_at_ms: None,
            notified_at_ms: None,
            acknowledged: false,
        };
        if for_ms == 0 {
            fire(&mut a, now_ms, &mut out.notices);
        }
        out.alerts.push(a);
    }
    out
}

fn fire(a: &mut Alert, now_ms: i64, notices: &mut Vec<Notice>) {
    a.phase = Phase::Firing;
    a.fired_at_ms = Some(now_ms);
    a.notified_at_ms = Some(now_ms);
    notices.push(Notice {
        group: a.group.clone(),
        kind: NoticeKind::Firing,
        value: a.value,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn g(model: &str) -> AlertGroup {
        vec![("model".into(), model.into())]
    }

    fn kinds(s: &Step) -> Vec<(String, NoticeKind)> {
        s.notices
            .iter()
            .map(|n| (n.group[0].1.clone(), n.kind))
            .collect()
    }

    /// Runs `step` over minutes, carrying the open alerts forward as the store would.
    fn run(for_ms: i64, renotify_ms: i64, minutes: &[&[(&str, f64)]]) -> Vec<Step> {
        let mut open: Vec<Alert> = Vec::new();
        let mut steps = Vec::new();
        for (i, holding) in minutes.iter().enumerate() {
            let holding: Vec<_> = holding.iter().map(|(m, v)| (g(m), *v)).collect();
            let s = step(for_ms, renotify_ms, &open, &holding, i as i64 * M);
            for a in &s.alerts {
                open.retain(|o| o.group != a.group);
                if a.phase != Phase::Resolved {
                    open.push(a.clone());
                }
            }
            open.retain(|o| !s.forgotten.contains(&o.group));
            steps.push(s);
        }
        steps
    }

    #[test]
    fn an_alert_fires_after_holding_for_its_duration_and_resolves_once() {
        let steps = run(
            2 * M,
            0,
            &[
                &[("a", 1.0)],
                &[("a", 2.0)],
                &[("a", 3.0)],
                &[("a", 4.0)],
                &[],
                &[],
            ],
        );
        assert_eq!(steps[0].alerts[0].phase, Phase::Pending);
        assert!(steps[0].notices.is_empty() && steps[1].notices.is_empty());
        // Held since minute 0: at minute 2 it has held for 2 minutes.
        assert_eq!(kinds(&steps[2]), [("a".into(), NoticeKind::Firing)]);
        assert_eq!(steps[2].alerts[0].fired_at_ms, Some(2 * M));
        assert_eq!(steps[2].alerts[0].value, 3.0);
        // Still firing, never renotified (0), then resolved once with its last value.
        assert!(steps[3].notices.is_empty());
        assert_eq!(kinds(&steps[4]), [("a".into(), NoticeKind::Resolved)]);
        assert_eq!(steps[4].notices[0].value, 4.0);
        assert_eq!(steps[4].alerts[0].resolved_at_ms, Some(4 * M));
        assert_eq!(steps[5], Step::default());
    }

    #[test]
    fn a_pending_alert_that_stops_holding_is_forgotten_without_a_notice() {
        let steps = run(
            5 * M,
            0,
            &[&[("a", 1.0)], &[("a", 1.0)], &[], &[("a", 1.0)]],
        );
        assert_eq!(steps[2].forgotten, [g("a")]);
        assert!(steps.iter().all(|s| s.notices.is_empty()));
        // Holding again starts a new wait.
        assert_eq!(steps[3].alerts[0].since_ms, 3 * M);
    }

    #[test]
    fn a_firing_alert_is_notified_again_every_renotify_and_groups_are_apart() {
        let both: &[(&str, f64)] = &[("a", 1.0), ("b", 1.0)];
        let steps = run(0, 2 * M, &[both, both, both, &[("b", 1.0)], both]);
        let mut first = kinds(&steps[0]);
        first.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            first,
            [
                ("a".into(), NoticeKind::Firing),
                ("b".into(), NoticeKind::Firing)
            ]
        );
        assert!(steps[1].notices.is_empty());
        assert_eq!(steps[2].notices.len(), 2);
        assert!(
            steps[2]
                .notices
                .iter()
                .all(|n| n.kind == NoticeKind::Repeat)
        );
        assert_eq!(kinds(&steps[3]), [("a".into(), NoticeKind::Resolved)]);
        // a fires anew; b's last notice was at minute 2, so minute 4 repeats it.
        let mut last = kinds(&steps[4]);
        last.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            last,
            [
                ("a".into(), NoticeKind::Firing),
                ("b".into(), NoticeKind::Repeat)
            ]
        );
    }

    #[test]
    fn an_acknowledged_alert_is_not_reminded_but_its_resolution_is_notified() {
        let firing = Alert {
            group: g("gpt-4o"),
            phase: Phase::Firing,
            value: 0.5,
            since_ms: 0,
            fired_at_ms: Some(0),
            resolved_at_ms: None,
            notified_at_ms: Some(0),
            acknowledged: true,
        };
        let held = step(
            0,
            M,
            std::slice::from_ref(&firing),
            &[(g("gpt-4o"), 0.6)],
            10 * M,
        );
        assert!(held.notices.is_empty(), "{held:?}");
        let unacked = Alert {
            acknowledged: false,
            ..firing.clone()
        };
        let held = step(0, M, &[unacked], &[(g("gpt-4o"), 0.6)], 10 * M);
        assert_eq!(kinds(&held), [("gpt-4o".to_string(), NoticeKind::Repeat)]);
        let gone = step(0, M, &[firing], &[], 11 * M);
        assert_eq!(kinds(&gone), [("gpt-4o".to_string(), NoticeKind::Resolved)]);
    }
}
