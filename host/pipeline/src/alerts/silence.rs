//! Silences: matchers on a notice's labels (its group's dimensions, the rule's labels, `state`,
//! `severity`) and on `rule` (the rule's name), all of which must hold, from a start until an end.
//! A notice a silence matches when it is raised is recorded, not sent. Reading the tenant's JSON
//! names the field of each mistake, as rules do.

use hub_core::time::{DAY_MS, to_rfc3339};
use hub_storage::StoredSilence;
use serde_json::Value;

use super::fields::{Checked, err, object, only, text};

pub const MAX_MATCHERS: usize = 20;
pub const MAX_COMMENT: usize = 1_000;
/// The longest a silence may last.
pub const MAX_DURATION_MS: i64 = 90 * DAY_MS;
/// Silences a tenant may have that have not ended.
pub const MAX_ACTIVE: usize = 1_000;

/// `name` (a label, or `rule`) is, or is not, `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub equal: bool,
}

impl Matcher {
    fn holds(&self, rule: &str, labels: &[(String, String)]) -> bool {
        let actual = if self.name == "rule" {
            Some(rule)
        } else {
            labels
                .iter()
                .find(|(k, _)| *k == self.name)
                .map(|(_, v)| v.as_str())
        };
        (actual == Some(self.value.as_str())) == self.equal
    }
}

/// Reads `[{"name": "model", "value": "gpt-4o"}, {"name": "rule", "value": "x", "op": "!="}]`;
/// errors name their JSON pointer under `/matchers`.
pub fn parse_matchers(v: &Value) -> Checked<Vec<Matcher>> {
    let Some(list) = v.as_array() else {
        return err("/matchers", "must be a list of {name, value, op}");
    };
    if list.is_empty() {
        return err(
            "/matchers",
            "at least one matcher (a silence of everything turns the rules off)",
        );
    }
    if list.len() > MAX_MATCHERS {
        return err("/matchers", format!("at most {MAX_MATCHERS} matchers"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("/matchers/{i}");
            let o = object(m, &at)?;
            only(o, &at, &["name", "value", "op"])?;
            let name = match text(o, "name", &at)? {
                Some(n) if !n.is_empty() && n.len() <= 120 => n.to_string(),
                _ => {
                    return err(
                        &format!("{at}/name"),
                        "a label name (or rule), 1 to 120 characters",
                    );
                }
            };
            let value = match text(o, "value", &at)? {
                Some(v) if v.len() <= 1_000 => v.to_string(),
                _ => return err(&format!("{at}/value"), "a text of at most 1,000 characters"),
            };
            let equal = match text(o, "op", &at)? {
                None | Some("=") => true,
                Some("!=") => false,
                Some(_) => return err(&format!("{at}/op"), "must be \"=\" or \"!=\""),
            };
            Ok(Matcher { name, value, equal })
        })
        .collect()
}

/// A stored silence, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub comment: String,
}

impl Silence {
    /// `None` for one whose stored matchers no longer read (skipped, as a rule would be).
    pub fn read(s: &StoredSilence) -> Option<Silence> {
        let v: Value = serde_json::from_str(&s.matchers).ok()?;
        Some(Silence {
            id: s.id,
            matchers: parse_matchers(&v).ok()?,
            starts_at_ms: s.starts_at_ms,
            ends_at_ms: s.ends_at_ms,
            comment: s.comment.clone(),
        })
    }

    /// Whether it holds back a notice of `rule` with these labels at `now_ms`.
    pub fn silences(&self, now_ms: i64, rule: &str, labels: &[(String, String)]) -> bool {
        (self.starts_at_ms..self.ends_at_ms).contains(&now_ms)
            && self.matchers.iter().all(|m| m.holds(rule, labels))
    }

    /// What the delivery log says of a notice it held back.
    pub fn note(&self) -> String {
        format!(
            "silenced by silence {} until {}: {}",
            self.id,
            to_rfc3339(self.ends_at_ms),
            self.comment
        )
    }
}

/// The silence's span from the request's `starts_at` (default now) and `ends_at` or `duration`,
/// checked: it ends after it starts, in the future, within [`MAX_DURATION_MS`].
pub fn span(starts_at: Option<i64>, ends_at: i64, now_ms: i64) -> Checked<(i64, i64)> {
    let starts = starts_at.unwrap_or(now_ms);
    if ends_at <= starts.max(now_ms) {
        return err("/ends_at", "must be after the start and in the future");
    }
    if ends_at - starts > MAX_DURATION_MS {
        return err(
            "/ends_at",
            format!("a silence lasts at most {} days", MAX_DURATION_MS / DAY_MS),
        );
    }
    Ok((starts, ends_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("model".into(), "gpt-4o".into()),
            ("team".into(), "search".into()),
            ("state".into(), "firing".into()),
        ]
    }

    #[test]
    fn every_matcher_must_hold_in_the_silences_span() {
        let m = parse_matchers(&json!([
            {"name": "model", "value": "gpt-4o"},
            {"name": "rule", "value": "noisy", "op": "!="}
        ]))
        .unwrap();
        let s = Silence {
            id: 3,
            matchers: m,
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            comment: "deploy".into(),
        };
        assert!(s.silences(1_000, "errors", &labels()));
        assert!(!s.silences(2_000, "errors", &labels()), "ended");
        assert!(!s.silences(999, "errors", &labels()), "not started");
        assert!(
            !s.silences(1_500, "noisy", &labels()),
            "the rule it leaves out"
        );
        let mut claude = labels();
        claude[0].1 = "claude".into();
        assert!(!s.silences(1_500, "errors", &claude));
        // A label the notice lacks is not equal to anything.
        let s2 = Silence {
            matchers: parse_matchers(&json!([{"name": "app", "value": "x", "op": "!="}])).unwrap(),
            ..s.clone()
        };
        assert!(s2.silences(1_500, "errors", &labels()));
        assert!(
            s.note().starts_with("silenced by silence 3 until "),
            "{}",
            s.note()
        );
    }

    #[test]
    fn mistakes_name_their_pointer() {
        for (v, at) in [
            (json!({}), "/matchers"),
            (json!([]), "/matchers"),
            (json!([{"value": "x"}]), "/matchers/0/name"),
            (
                json!([{"name": "a", "value": "x", "op": "~"}]),
                "/matchers/0/op",
            ),
            (
                json!([{"name": "a", "value": "x", "why": 1}]),
                "/matchers/0/why",
            ),
        ] {
            let e = parse_matchers(&v).unwrap_err();
            assert_eq!(e.path, at, "{v}: {e}");
        }
        assert_eq!(span(None, 500, 1_000).unwrap_err().path, "/ends_at");
        assert_eq!(
            span(Some(0), MAX_DURATION_MS + 1, 0).unwrap_err().path,
            "/ends_at"
        );
        assert_eq!(span(None, 61_000, 1_000).unwrap(), (1_000, 61_000));
    }
}
