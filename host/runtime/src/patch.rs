//! Enricher answers back onto events: every patch and group of one answer is checked (row in
//! range, text index in range, right type) before any is applied, and each event notes which
//! plugin filled what.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use hub_core::event::{EnrichedBy, EventRecord};

use crate::batch::tag_pairs;
use crate::bindings::EventBatch;
use crate::bindings::types::{Enrichment, Field, Value};

/// Patches per event an answer may hold at most (an answer over this is refused as oversized).
pub const MAX_PATCHES_PER_ROW: usize = 16;
/// Longest text a patch may write.
pub const MAX_PATCH_TEXT: usize = 1024;

/// Where in an answer a fault is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    /// `patches[i]`.
    Patch(usize),
    /// `groups[group].sets[set]`.
    Set { group: usize, set: usize },
    /// `groups[group].rows[index]`.
    GroupRow { group: usize, index: usize },
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Patch(i) => write!(f, "patch {i}"),
            At::Set { group, set } => write!(f, "group {group}, set {set}"),
            At::GroupRow { group, index } => write!(f, "group {group}, rows[{index}]"),
        }
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidOutput {
    #[error(
        "{count} patches for {rows} events is over the limit of {MAX_PATCHES_PER_ROW} per event"
    )]
    TooMany { count: usize, rows: usize },
    #[error("{at}: row {row} is outside the batch of {rows} events")]
    RowOutOfRange { at: At, row: u32, rows: usize },
    #[error("{at}: text {text} is outside the answer's {strings} strings")]
    TextOutOfRange { at: At, text: u32, strings: usize },
    #[error("{at}: `{field}` takes {expected}, not {got}")]
    WrongType {
        at: At,
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{at}: `{field}`: {message}")]
    BadValue {
        at: At,
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

enum Target<'a> {
    Cost(f64),
    Text(TextField, &'a str),
    Tag(&'a str, Cow<'a, str>),
}

#[derive(Clone, Copy)]
enum TextField {
    Provider,
    Operation,
    App,
    Environment,
}

impl TextField {
    fn name(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Operation => "operation",
            Self::App => "app",
            Self::Environment => "environment",
        }
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Text(_) => "text",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Flag(_) => "a flag",
    }
}

fn field_name(f: &Field, strings: &[String]) -> String {
    match f {
        Field::CostUsd => "cost-usd".into(),
        Field::Provider => "provider".into(),
        Field::Operation => "operation".into(),
        Field::App => "app".into(),
        Field::Environment => "environment".into(),
        Field::Tag(i) => format!(
            "tag:{}",
            strings.get(*i as usize).map(String::as_str).unwrap_or("?")
        ),
    }
}

fn valid_tag_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn check_row(at: At, row: u32, rows: usize) -> Result<usize, InvalidOutput> {
    if (row as usize) < rows {
        Ok(row as usize)
    } else {
        Err(InvalidOutput::RowOutOfRange { at, row, rows })
    }
}

/// Checks one (field, value) and resolves its texts.
fn check<'a>(
    at: At,
    field: &Field,
    value: &Value,
    strings: &'a [String],
) -> Result<Target<'a>, InvalidOutput> {
    let text_at = |i: u32| -> Result<&'a str, InvalidOutput> {
        strings
            .get(i as usize)
            .map(String::as_str)
            .ok_or(InvalidOutput::TextOutOfRange {
                at,
                text: i,
                strings: strings.len(),
            })
    };
    let name = || field_name(field, strings);
    let wrong = |expected| InvalidOutput::WrongType {
        at,
        field: name(),
        expected,
        got: value_kind(value),
    };
    let text = |v: &Value| -> Result<&'a str, InvalidOutput> {
        match v {
            Value::Text(i) => {
                let s = text_at(*i)?;
                if s.is_empty() || s.len() > MAX_PATCH_TEXT {
                    Err(InvalidOutput::BadValue {
                        at,
                        field: name(),
                        message: format!("text must be 1 to {MAX_PATCH_TEXT} bytes"),
                    })
                } else {
                    Ok(s)
                }
            }
            _ => Err(wrong("text")),
        }
    };
    match field {
        Field::CostUsd => {
            let v = match *value {
                Value::Float(f) => f,
                Value::Integer(i) => i as f64,
                _ => return Err(wrong("a number")),
            };
            if !v.is_finite() || !(0.0..=1e9).contains(&v) {
                return Err(InvalidOutput::BadValue {
                    at,
                    field: name(),
                    message: format!("{v} is not a cost between 0 and 1e9 dollars"),
                });
            }
            Ok(Target::Cost(v))
        }
        Field::Provider => Ok(Target::Text(TextField::Provider, text(value)?)),
        Field::Operation => Ok(Target::Text(TextField::Operation, text(value)?)),
        Field::App => Ok(Target::Text(TextField::App, text(value)?)),
        Field::Environment => Ok(Target::Text(TextField::Environment, text(value)?)),
        Field::Tag(n) => {
            let tag = text_at(*n)?;
            if !valid_tag_name(tag) {
                return Err(InvalidOutput::BadValue {
                    at,
                    field: name(),
                    message: "a tag name is 1 to 64 characters of a-z, 0-9, `_`, `-`, `.`".into(),
                });
            }
            let v = match value {
                Value::Text(_) => Cow::Borrowed(text(value)?),
                Value::Integer(i) => Cow::Owned(i.to_string()),
                Value::Float(f) if f.is_finite() => Cow::Owned(f.to_string()),
                Value::Float(_) => {
                    return Err(InvalidOutput::BadValue {
                        at,
                        field: name(),
                        message: "not a finite number".into(),
                    });
                }
                Value::Flag(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            };
            Ok(Target::Tag(tag, v))
        }
    }
}

/// Pushes a string into the batch's table (for later enrichers) and returns its index.
fn push_string(batch: &mut EventBatch, s: &str) -> u32 {
    batch.strings.push(s.to_string());
    (batch.strings.len() - 1) as u32
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("strings serialize"));
    }
}

/// The names of a JSON object of tags, borrowed when they need no unescaping.
fn tag_names(tags_json: &str) -> Option<Vec<Cow<'_, str>>> {
    if let Ok(m) = serde_json::from_str::<HashMap<&str, serde::de::IgnoredAny>>(tags_json) {
        return Some(m.into_keys().map(Cow::Borrowed).collect());
    }
    serde_json::from_str::<HashMap<String, serde::de::IgnoredAny>>(tags_json)
        .ok()
        .map(|m| m.into_keys().map(Cow::Owned).collect())
}

/// Adds `tags` (name, value) to a JSON object of tags, keeping existing names. Returns how many
/// were added and kept. The object's text is extended in place (names were checked to need no
/// escaping); objects that already hold tags are parsed for their names only. `on_added` hears
/// the name of each tag added.
fn add_tags<'a>(
    tags_json: &mut String,
    tags: &[(&'a str, &str)],
    mut on_added: impl FnMut(&'a str),
) -> (usize, usize) {
    let empty = tags_json.trim() == "{}";
    let existing = if empty {
        Vec::new()
    } else {
        match tag_names(tags_json) {
            Some(names) => names,
            None => return (0, tags.len()),
        }
    };
    let mut added = 0;
    let mut kept = 0;
    let mut out = String::with_capacity(tags_json.len() + tags.len() * 32);
    out.push_str(tags_json.trim_end().strip_suffix('}').unwrap_or("{"));
    let mut first = empty;
    for (k, (name, value)) in tags.iter().enumerate() {
        if existing.iter().any(|e| e == name) || tags[..k].iter().any(|(n, _)| n == name) {
            kept += 1;
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(&mut out, name);
        out.push(':');
        push_json_str(&mut out, value);
        on_added(name);
        added += 1;
    }
    out.push('}');
    if added > 0 {
        *tags_json = out;
    }
    (added, kept)
}

/// Checks every patch and group, then applies them all to `events` (and to `batch`, so that the
/// next enricher sees them), noting on each event what `plugin` filled in. Nothing is applied when
/// any of them is invalid.
pub fn apply_patches(
    events: &mut [EventRecord],
    batch: &mut EventBatch,
    answer: &Enrichment,
    plugin: &str,
) -> Result<Applied, InvalidOutput> {
    let rows = events.len();
    let count = answer.groups.iter().fold(answer.patches.len(), |n, g| {
        n.saturating_add(g.rows.len().saturating_mul(g.sets.len()))
    });
    if count > rows.max(1) * MAX_PATCHES_PER_ROW {
        return Err(InvalidOutput::TooMany { count, rows });
    }
    let strings = &answer.strings;
    let patches: Vec<(usize, Target<'_>)> = answer
        .patches
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = At::Patch(i);
            Ok((
                check_row(at, p.row, rows)?,
                check(at, &p.field, &p.value, strings)?,
            ))
        })
        .collect::<Result<_, InvalidOutput>>()?;
    let mut groups: Vec<(&[u32], Vec<Target<'_>>)> = Vec::with_capacity(answer.groups.len());
    for (g, group) in answer.groups.iter().enumerate() {
        for (index, &row) in group.rows.iter().enumerate() {
            check_row(At::GroupRow { group: g, index }, row, rows)?;
        }
        let sets = group
            .sets
            .iter()
            .enumerate()
            .map(|(set, (field, value))| check(At::Set { group: g, set }, field, value, strings))
            .collect::<Result<_, _>>()?;
        groups.push((&group.rows, sets));
    }

    let mut out = Applied::default();
    let mut tags: Vec<(usize, &str, &str)> = Vec::new();
    let mut noted: Vec<(usize, Noted<'_>)> = Vec::new();
    let changes = patches
        .iter()
        .map(|(row, t)| (*row, t))
        .chain(groups.iter().flat_map(|(rows, sets)| {
            rows.iter()
                .flat_map(move |&r| sets.iter().map(move |t| (r as usize, t)))
        }));
    for (row, target) in changes {
        let e = &mut events[row];
        match target {
            // An enricher's cost is an estimate: it is kept beside a cost the sender reported,
            // and counts only where the sender gave none. The first estimate wins.
            Target::Cost(v) => {
                if e.estimated_cost_usd.is_none() {
                    e.estimated_cost_usd = Some(*v);
                    let counted = e.cost_usd.is_none();
                    if counted {
                        e.cost_usd = Some(*v);
                        batch.cost_usd[row] = Some(*v);
                    }
                    noted.push((
                        row,
                        Noted::Field(if counted {
                            "cost_usd"
                        } else {
                            "estimated_cost_usd"
                        }),
                    ));
                    out.applied += 1;
                } else {
                    out.kept += 1;
                }
            }
            Target::Text(f, v) => {
                let slot = match f {
                    TextField::Provider => &mut e.provider,
                    TextField::Operation => &mut e.operation,
                    TextField::App => &mut e.app,
                    TextField::Environment => &mut e.environment,
                };
                if slot.is_none() {
                    *slot = Some(v.to_string());
                    noted.push((row, Noted::Field(f.name())));
                    let i = push_string(batch, v);
                    let col = match f {
                        TextField::Provider => &mut batch.providers,
                        TextField::Operation => &mut batch.operations,
                        TextField::App => &mut batch.apps,
                        TextField::Environment => &mut batch.environments,
                    };
                    col[row] = Some(i);
                    out.applied += 1;
                } else {
                    out.kept += 1;
                }
            }
            Target::Tag(name, value) => tags.push((row, *name, value.as_ref())),
        }
    }
    if !tags.is_empty() {
        // Stable: for a tag set twice on one event, the first value wins.
        tags.sort_by_key(|t| t.0);
        let mut group: Vec<(&str, &str)> = Vec::new();
        for run in tags.chunk_by(|a, b| a.0 == b.0) {
            let row = run[0].0;
            group.clear();
            group.extend(run.iter().map(|(_, n, v)| (*n, *v)));
            let before = if batch.tags.is_empty() {
                String::new()
            } else {
                events[row].tags_json.clone()
            };
            let (added, kept) = add_tags(&mut events[row].tags_json, &group, |n| {
                noted.push((row, Noted::Tag(n)))
            });
            out.applied += added;
            out.kept += kept;
            if !batch.tags.is_empty() && added > 0 {
                // Later enrichers that read tags see the new ones.
                let now = tag_pairs(&events[row].tags_json);
                let old = tag_pairs(&before);
                for (k, v) in now.into_iter().filter(|p| !old.contains(p)) {
                    let (ki, vi) = (push_string(batch, &k), push_string(batch, &v));
                    batch.tags[row].push((ki, vi));
                }
            }
        }
    }
    note_enrichment(events, noted, plugin);
    Ok(out)
}

/// A field a plugin filled on one event.
#[derive(Clone, Copy, PartialEq)]
enum Noted<'a> {
    Field(&'static str),
    Tag(&'a str),
}

/// Adds `plugin`'s entry to the `enriched_by` of each event it changed. Events it changed alike
/// share one entry, so a batch costs an allocation per distinct change, not per event.
fn note_enrichment(events: &mut [EventRecord], mut noted: Vec<(usize, Noted<'_>)>, plugin: &str) {
    // Stable: each event's fields stay in the order they were applied.
    noted.sort_by_key(|n| n.0);
    let mut known: Vec<(Vec<Noted<'_>>, Arc<EnrichedBy>)> = Vec::new();
    let mut fields: Vec<Noted<'_>> = Vec::new();
    for run in noted.chunk_by(|a, b| a.0 == b.0) {
        fields.clear();
        fields.extend(run.iter().map(|n| n.1));
        let entry = match known.iter().find(|(f, _)| *f == fields) {
            Some((_, e)) => e.clone(),
            None => {
                let e = Arc::new(EnrichedBy {
                    plugin: plugin.to_string(),
                    fields: fields
                        .iter()
                        .map(|f| match f {
                            Noted::Field(name) => name.to_string(),
                            Noted::Tag(name) => format!("tags.{name}"),
                        })
                        .collect(),
                });
                known.push((fields.clone(), e.clone()));
                e
            }
        };
        events[run[0].0].enriched_by.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::events;
    use crate::batch::{BatchColumns, batch_from_events};
    use crate::bindings::types::{Patch, PatchGroup};

    fn answer(strings: &[&str], patches: Vec<(u32, Field, Value)>) -> Enrichment {
        Enrichment {
            strings: strings.iter().map(|s| s.to_string()).collect(),
            patches: patches
                .into_iter()
                .map(|(row, field, value)| Patch { row, field, value })
                .collect(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn applies_valid_patches_and_keeps_what_the_sender_set() {
        let mut ev = events(2);
        ev[1].cost_usd = Some(1.0);
        ev[1].reported_cost_usd = Some(1.0);
        ev[1].tags_json = "{}".into();
        let mut b = batch_from_events(
            &ev,
            BatchColumns {
                ids: false,
                tags: true,
            },
        );
        let out = apply_patches(
            &mut ev,
            &mut b,
            &answer(
                &[
                    "model_family",
                    "gpt-4o",
                    "team",
                    "other",
                    "context_window",
                    "openai",
                ],
                vec![
                    (0, Field::CostUsd, Value::Float(0.5)),
                    (1, Field::CostUsd, Value::Float(0.5)),
                    (0, Field::Tag(0), Value::Text(1)),
                    (0, Field::Tag(2), Value::Text(3)),
                    (1, Field::Tag(4), Value::Integer(128000)),
                    (0, Field::Provider, Value::Text(5)),
                ],
            ),
            "registry",
        )
        .unwrap();
        assert_eq!(
            out,
            Applied {
                applied: 5,
                kept: 1
            }
        );
        assert_eq!(ev[0].cost_usd, Some(0.5));
        // The sender's cost still counts; the estimate is kept beside it.
        assert_eq!(ev[1].cost_usd, Some(1.0));
        assert_eq!(ev[1].estimated_cost_usd, Some(0.5));
        assert_eq!(b.cost_usd[1], Some(1.0));
        assert_eq!(b.cost_usd[0], Some(0.5));
        let tags: serde_json::Value = serde_json::from_str(&ev[0].tags_json).unwrap();
        assert_eq!(
            tags,
            serde_json::json!({"team": "care", "model_family": "gpt-4o"})
        );
        assert_eq!(ev[1].tags_json, r#"{"context_window":"128000"}"#);
        assert_eq!(ev[0].provider.as_deref(), Some("openai"));
        assert_eq!(b.strings[b.providers[0].unwrap() as usize], "openai");
        let noted = |i: usize| {
            ev[i]
                .enriched_by
                .iter()
                .map(|e| (e.plugin.as_str(), e.fields.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            noted(0),
            [(
                "registry",
                vec![
                    "cost_usd".into(),
                    "provider".into(),
                    "tags.model_family".into()
                ]
            )],
            "what the plugin filled, not the tag the sender had set"
        );
        assert_eq!(
            noted(1),
            [(
                "registry",
                vec![
                    "estimated_cost_usd".to_string(),
                    "tags.context_window".to_string()
                ]
            )],
            "the sender's cost is not the plugin's: it filled the estimate beside it"
        );
        let seen: Vec<(&str, &str)> = b.tags[0]
            .iter()
            .map(|(k, v)| {
                (
                    b.strings[*k as usize].as_str(),
                    b.strings[*v as usize].as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [("team", "care"), ("model_family", "gpt-4o")],
            "later enrichers see new tags"
        );
    }

    #[test]
    fn one_bad_patch_refuses_the_whole_answer() {
        let cases = [
            ((5, Field::CostUsd, Value::Float(1.0)), "row 5 is outside"),
            (
                (0, Field::CostUsd, Value::Text(0)),
                "`cost-usd` takes a number, not text",
            ),
            ((0, Field::CostUsd, Value::Float(f64::NAN)), "is not a cost"),
            ((0, Field::Tag(1), Value::Flag(true)), "a tag name is"),
            ((0, Field::Provider, Value::Text(2)), "1 to 1024 bytes"),
            (
                (0, Field::Provider, Value::Text(9)),
                "text 9 is outside the answer's 3 strings",
            ),
            ((0, Field::Tag(7), Value::Flag(true)), "text 7 is outside"),
        ];
        for (bad, msg) in cases {
            let mut ev = events(2);
            let mut b = batch_from_events(&ev, BatchColumns::default());
            let e = apply_patches(
                &mut ev,
                &mut b,
                &answer(
                    &["x", "Bad Name", ""],
                    vec![(0, Field::CostUsd, Value::Float(0.1)), bad],
                ),
                "p",
            )
            .unwrap_err();
            assert!(e.to_string().contains(msg), "{e} / {msg}");
            assert_eq!(ev[0].cost_usd, None, "nothing applied");
            assert!(ev[0].enriched_by.is_empty(), "nothing noted");
        }
    }

    #[test]
    fn oversized_answers_are_refused() {
        let mut ev = events(1);
        let mut b = batch_from_events(&ev, BatchColumns::default());
        let many = answer(
            &[],
            (0..17)
                .map(|_| (0, Field::CostUsd, Value::Float(0.1)))
                .collect(),
        );
        assert!(matches!(
            apply_patches(&mut ev, &mut b, &many, "p"),
            Err(InvalidOutput::TooMany { .. })
        ));
    }

    #[test]
    fn a_group_applies_its_sets_to_every_row_like_single_patches() {
        let strings = ["model_family", "gpt-4o", "model_owner", "openai"];
        let sets = vec![
            (Field::Tag(0), Value::Text(1)),
            (Field::Tag(2), Value::Text(3)),
            (Field::CostUsd, Value::Float(0.25)),
        ];
        let rows = [0u32, 2];
        let mut single = answer(&strings, vec![]);
        for &row in &rows {
            for (f, v) in &sets {
                single.patches.push(Patch {
                    row,
                    field: *f,
                    value: *v,
                });
            }
        }
        let mut grouped = answer(&strings, vec![(0, Field::CostUsd, Value::Float(0.5))]);
        grouped.groups.push(PatchGroup {
            rows: rows.to_vec(),
            sets,
        });
        let run = |a: &Enrichment| {
            let mut ev = events(3);
            let mut b = batch_from_events(
                &ev,
                BatchColumns {
                    ids: false,
                    tags: true,
                },
            );
            let applied = apply_patches(&mut ev, &mut b, a, "p").unwrap();
            (ev, b, applied)
        };
        let (one, _, applied) = run(&single);
        assert_eq!(
            applied,
            Applied {
                applied: 6,
                kept: 0
            },
            "every set lands on both rows"
        );
        let (two, b, applied) = run(&grouped);
        assert_eq!(
            applied,
            Applied {
                applied: 6,
                kept: 1
            },
            "the single patch came first"
        );
        assert_eq!(two[0].cost_usd, Some(0.5));
        assert_eq!(two[2].cost_usd, Some(0.25));
        assert_eq!(two[1].cost_usd, None);
        for row in [0, 2] {
            assert_eq!(one[row].tags_json, two[row].tags_json);
        }
        assert_eq!(two[1].tags_json, r#"{"team":"care"}"#);
        assert_eq!(b.tags[2].len(), 3, "later enrichers see the group's tags");
        assert_eq!(
            one[0].enriched_by, one[2].enriched_by,
            "rows 0 and 2 were changed alike"
        );
        assert!(
            Arc::ptr_eq(&one[0].enriched_by[0], &one[2].enriched_by[0]),
            "and share one entry"
        );
        assert_eq!(
            one[0].enriched_by[0].fields,
            ["cost_usd", "tags.model_family", "tags.model_owner"]
        );
        assert!(two[1].enriched_by.is_empty());
    }

    #[test]
    fn a_bad_group_refuses_the_whole_answer_and_says_where() {
        type Case = (Vec<u32>, Vec<(Field, Value)>, &'static str);
        let cases: [Case; 4] = [
            (
                vec![0, 7],
                vec![(Field::Tag(0), Value::Text(0))],
                "group 0, rows[1]: row 7 is outside",
            ),
            (
                vec![0],
                vec![
                    (Field::Tag(0), Value::Text(0)),
                    (Field::CostUsd, Value::Flag(true)),
                ],
                "group 0, set 1: `cost-usd` takes a number",
            ),
            (
                vec![1],
                vec![(Field::Tag(0), Value::Text(4))],
                "group 0, set 0: text 4 is outside",
            ),
            (
                (0..2).cycle().take(20).collect(),
                vec![(Field::Tag(0), Value::Text(0)); 2],
                "41 patches for 2 events",
            ),
        ];
        for (rows, sets, msg) in cases {
            let mut ev = events(2);
            let mut b = batch_from_events(&ev, BatchColumns::default());
            let mut a = answer(&["x"], vec![(0, Field::CostUsd, Value::Float(0.1))]);
            a.groups.push(PatchGroup { rows, sets });
            let e = apply_patches(&mut ev, &mut b, &a, "p").unwrap_err();
            assert!(e.to_string().contains(msg), "{e} / {msg}");
            assert_eq!(ev[0].cost_usd, None, "nothing applied");
            assert_eq!(ev[0].tags_json, r#"{"team":"care"}"#);
        }
    }

    #[test]
    fn tags_are_added_to_existing_json_without_reordering_it() {
        let mut t = r#"{"b":"1","a":"2"}"#.to_string();
        assert_eq!(
            add_tags(&mut t, &[("c", "x\"y"), ("a", "3")], |_| {}),
            (1, 1)
        );
        assert_eq!(t, r#"{"b":"1","a":"2","c":"x\"y"}"#);
        let mut t = "{}".to_string();
        assert_eq!(add_tags(&mut t, &[("k", "v"), ("k", "w")], |_| {}), (1, 1));
        assert_eq!(t, r#"{"k":"v"}"#);
    }
}
