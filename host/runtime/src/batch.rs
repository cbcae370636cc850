//! Events into the columnar `event-batch`, and enricher patches back onto events: every patch of
//! one answer is checked (row in range, known field, right type) before any is applied.

use hub_core::event::EventRecord;

use crate::bindings::types::{EventBatch, Patch, Value};

/// Patches per event an answer may hold at most (an answer over this is refused as oversized).
pub const MAX_PATCHES_PER_ROW: usize = 16;
/// Longest text a patch may write.
pub const MAX_PATCH_TEXT: usize = 1024;

/// Builds the batch enrichers see. Tags are copied only when `with_tags`.
pub fn batch_from_events(events: &[EventRecord], with_tags: bool) -> EventBatch {
    let n = events.len();
    let mut b = EventBatch {
        ids: Vec::with_capacity(n),
        ts_ms: Vec::with_capacity(n),
        kinds: Vec::with_capacity(n),
        source_modules: Vec::with_capacity(n),
        environments: Vec::with_capacity(n),
        apps: Vec::with_capacity(n),
        models: Vec::with_capacity(n),
        providers: Vec::with_capacity(n),
        operations: Vec::with_capacity(n),
        input_tokens: Vec::with_capacity(n),
        output_tokens: Vec::with_capacity(n),
        latency_ms: Vec::with_capacity(n),
        cost_usd: Vec::with_capacity(n),
        statuses: Vec::with_capacity(n),
        tags: with_tags.then(|| Vec::with_capacity(n)),
    };
    for e in events {
        b.ids.push(e.event_id.clone());
        b.ts_ms.push(e.ts_ms);
        b.kinds.push(e.kind.clone());
        b.source_modules.push(e.source_module.clone());
        b.environments.push(e.environment.clone());
        b.apps.push(e.app.clone());
        b.models.push(e.model.clone());
        b.providers.push(e.provider.clone());
        b.operations.push(e.operation.clone());
        b.input_tokens.push(e.input_tokens.and_then(|t| u32::try_from(t).ok()));
        b.output_tokens.push(e.output_tokens.and_then(|t| u32::try_from(t).ok()));
        b.latency_ms.push(e.latency_ms);
        b.cost_usd.push(e.cost_usd);
        b.statuses.push(e.status.map(|s| s.as_str().to_string()));
        if let Some(tags) = b.tags.as_mut() {
            tags.push(tag_pairs(&e.tags_json));
        }
    }
    b
}

fn tag_pairs(tags_json: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(tags_json) {
        Ok(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidOutput {
    #[error("{count} patches for {rows} events is over the limit of {MAX_PATCHES_PER_ROW} per event")]
    TooMany { count: usize, rows: usize },
    #[error("patch {index}: row {row} is outside the batch of {rows} events")]
    RowOutOfRange { index: usize, row: u32, rows: usize },
    #[error("patch {index}: `{field}` is not a field enrichers may set (cost-usd, provider, operation, app, environment, tag:<name>)")]
    UnknownField { index: usize, field: String },
    #[error("patch {index}: `{field}` takes {expected}, not {got}")]
    WrongType {
        index: usize,
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("patch {index}: `{field}`: {message}")]
    BadValue {
        index: usize,
        field: String,
        message: String,
    },
}

/// What applying one answer did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// Patches that changed an event.
    pub applied: usize,
    /// Valid patches that changed nothing because the event already had the value.
    pub kept: usize,
}

enum Target {
    Cost(f64),
    Text(TextField, String),
    Tag(String, String),
}

#[derive(Clone, Copy)]
enum TextField {
    Provider,
    Operation,
    App,
    Environment,
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Text(_) => "text",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Flag(_) => "a flag",
    }
}

fn valid_tag_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn check(index: usize, p: &Patch, rows: usize) -> Result<Target, InvalidOutput> {
    if p.row as usize >= rows {
        return Err(InvalidOutput::RowOutOfRange {
            index,
            row: p.row,
            rows,
        });
    }
    let wrong = |expected| InvalidOutput::WrongType {
        index,
        field: p.field.clone(),
        expected,
        got: value_kind(&p.value),
    };
    let text = |v: &Value| -> Result<String, InvalidOutput> {
        match v {
            Value::Text(s) if s.is_empty() || s.len() > MAX_PATCH_TEXT => {
                Err(InvalidOutput::BadValue {
                    index,
                    field: p.field.clone(),
                    message: format!("text must be 1 to {MAX_PATCH_TEXT} bytes"),
                })
            }
            Value::Text(s) => Ok(s.clone()),
            _ => Err(wrong("text")),
        }
    };
    let field = p.field.as_str();
    match field {
        "cost-usd" => {
            let v = match p.value {
                Value::Float(f) => f,
                Value::Integer(i) => i as f64,
                _ => return Err(wrong("a number")),
            };
            if !v.is_finite() || !(0.0..=1e9).contains(&v) {
                return Err(InvalidOutput::BadValue {
                    index,
                    field: p.field.clone(),
                    message: format!("{v} is not a cost between 0 and 1e9 dollars"),
                });
            }
            Ok(Target::Cost(v))
        }
        "provider" => Ok(Target::Text(TextField::Provider, text(&p.value)?)),
        "operation" => Ok(Target::Text(TextField::Operation, text(&p.value)?)),
        "app" => Ok(Target::Text(TextField::App, text(&p.value)?)),
        "environment" => Ok(Target::Text(TextField::Environment, text(&p.value)?)),
        _ => match field.strip_prefix("tag:") {
            Some(name) if valid_tag_name(name) => {
                let value = match &p.value {
                    Value::Text(_) => text(&p.value)?,
                    Value::Integer(i) => i.to_string(),
                    Value::Float(f) if f.is_finite() => f.to_string(),
                    Value::Float(_) => {
                        return Err(InvalidOutput::BadValue {
                            index,
                            field: p.field.clone(),
                            message: "not a finite number".into(),
                        });
                    }
                    Value::Flag(b) => b.to_string(),
                };
                Ok(Target::Tag(name.to_string(), value))
            }
            _ => Err(InvalidOutput::UnknownField {
                index,
                field: p.field.clone(),
            }),
        },
    }
}

/// Checks every patch, then applies them all to `events` (and to `batch`, so that the next
/// enricher sees them). Nothing is applied when any patch is invalid.
pub fn apply_patches(
    events: &mut [EventRecord],
    batch: &mut EventBatch,
    patches: &[Patch],
) -> Result<Applied, InvalidOutput> {
    let rows = events.len();
    if patches.len() > rows.max(1) * MAX_PATCHES_PER_ROW {
        return Err(InvalidOutput::TooMany {
            count: patches.len(),
            rows,
        });
    }
    let targets: Vec<(usize, Target)> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| check(i, p, rows).map(|t| (p.row as usize, t)))
        .collect::<Result<_, _>>()?;

    let mut out = Applied::default();
    let mut tags: Vec<(usize, String, String)> = Vec::new();
    for (row, target) in targets {
        let e = &mut events[row];
        match target {
            Target::Cost(v) => {
                if e.cost_usd.is_none() {
                    e.cost_usd = Some(v);
                    batch.cost_usd[row] = Some(v);
                    out.applied += 1;
                } else {
                    out.kept += 1;
                }
            }
            Target::Text(f, v) => {
                let (slot, col) = match f {
                    TextField::Provider => (&mut e.provider, &mut batch.providers[row]),
                    TextField::Operation => (&mut e.operation, &mut batch.operations[row]),
                    TextField::App => (&mut e.app, &mut batch.apps[row]),
                    TextField::Environment => (&mut e.environment, &mut batch.environments[row]),
                };
                if slot.is_none() {
                    *col = Some(v.clone());
                    *slot = Some(v);
                    out.applied += 1;
                } else {
                    out.kept += 1;
                }
            }
            Target::Tag(name, value) => tags.push((row, name, value)),
        }
    }
    if !tags.is_empty() {
        tags.sort_by_key(|t| t.0);
        let mut i = 0;
        while i < tags.len() {
            let row = tags[i].0;
            let e = &mut events[row];
            let mut map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&e.tags_json).unwrap_or_default();
            while i < tags.len() && tags[i].0 == row {
                let (_, name, value) = &tags[i];
                if map.contains_key(name) {
                    out.kept += 1;
                } else {
                    map.insert(name.clone(), serde_json::Value::String(value.clone()));
                    if let Some(cols) = batch.tags.as_mut() {
                        cols[row].push((name.clone(), value.clone()));
                    }
                    out.applied += 1;
                }
                i += 1;
            }
            e.tags_json = serde_json::Value::Object(map).to_string();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<EventRecord> {
        (0..n)
            .map(|i| {
                let now = hub_core::time::now_ms();
                let ts = hub_core::time::to_rfc3339(now);
                let body = format!(
                    r#"{{"event_id":"e{i}","timestamp":"{ts}","model":"gpt-4o","input_tokens":10,"output_tokens":5,"status":"ok","tags":{{"team":"care"}}}}"#
                );
                hub_core::ingest::parse_body(body.as_bytes(), hub_core::ingest::BodyFormat::Json, &Default::default(), now)
                    .unwrap()
                    .events
                    .remove(0)
            })
            .collect()
    }

    fn p(row: u32, field: &str, value: Value) -> Patch {
        Patch {
            row,
            field: field.into(),
            value,
        }
    }

    #[test]
    fn applies_valid_patches_and_keeps_what_the_sender_set() {
        let mut ev = events(2);
        ev[1].cost_usd = Some(1.0);
        let mut b = batch_from_events(&ev, true);
        assert_eq!(b.models[0].as_deref(), Some("gpt-4o"));
        assert_eq!(b.tags.as_ref().unwrap()[0], vec![("team".to_string(), "care".to_string())]);
        let out = apply_patches(
            &mut ev,
            &mut b,
            &[
                p(0, "cost-usd", Value::Float(0.5)),
                p(1, "cost-usd", Value::Float(0.5)),
                p(0, "tag:model_family", Value::Text("gpt-4o".into())),
                p(0, "tag:team", Value::Text("other".into())),
                p(1, "tag:context_window", Value::Integer(128000)),
                p(0, "provider", Value::Text("openai".into())),
            ],
        )
        .unwrap();
        assert_eq!(out, Applied { applied: 4, kept: 2 });
        assert_eq!(ev[0].cost_usd, Some(0.5));
        assert_eq!(ev[1].cost_usd, Some(1.0));
        assert_eq!(b.cost_usd[0], Some(0.5));
        let tags: serde_json::Value = serde_json::from_str(&ev[0].tags_json).unwrap();
        assert_eq!(tags["team"], "care");
        assert_eq!(tags["model_family"], "gpt-4o");
        assert!(ev[1].tags_json.contains(r#""context_window":"128000""#));
        assert_eq!(ev[0].provider.as_deref(), Some("openai"));
    }

    #[test]
    fn one_bad_patch_refuses_the_whole_answer() {
        let cases = [
            (p(5, "cost-usd", Value::Float(1.0)), "row 5 is outside"),
            (p(0, "model", Value::Text("x".into())), "`model` is not a field"),
            (p(0, "cost-usd", Value::Text("x".into())), "takes a number, not text"),
            (p(0, "cost-usd", Value::Float(f64::NAN)), "is not a cost"),
            (p(0, "tag:Bad Name", Value::Flag(true)), "not a field"),
            (p(0, "provider", Value::Text(String::new())), "1 to 1024 bytes"),
        ];
        for (bad, msg) in cases {
            let mut ev = events(2);
            let mut b = batch_from_events(&ev, false);
            let e = apply_patches(&mut ev, &mut b, &[p(0, "cost-usd", Value::Float(0.1)), bad])
                .unwrap_err();
            assert!(e.to_string().contains(msg), "{e} / {msg}");
            assert_eq!(ev[0].cost_usd, None, "nothing applied");
        }
    }

    #[test]
    fn oversized_answers_are_refused() {
        let mut ev = events(1);
        let mut b = batch_from_events(&ev, false);
        let many: Vec<Patch> = (0..17).map(|_| p(0, "cost-usd", Value::Float(0.1))).collect();
        assert!(matches!(
            apply_patches(&mut ev, &mut b, &many),
            Err(InvalidOutput::TooMany { .. })
        ));
    }
}
