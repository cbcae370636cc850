//! Events into the columnar `event-batch` that crosses into plugins (answers come back through
//! [`crate::patch`]).

use std::collections::HashMap;

use hub_core::event::EventRecord;

use hub_core::TokenDetail;

use crate::bindings::EventBatch;

/// Distinct strings of a batch. Columns repeat few values (models, apps, kinds), so a short
/// scan of recent values answers most lookups before the hash map is consulted.
struct Interner<'a> {
    strings: Vec<String>,
    index: HashMap<&'a str, u32>,
    recent: [(&'a str, u32); 4],
    next: usize,
}

impl<'a> Interner<'a> {
    fn new() -> Self {
        Self {
            strings: Vec::new(),
            index: HashMap::new(),
            recent: [("", u32::MAX); 4],
            next: 0,
        }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        for (k, v) in &self.recent {
            if *v != u32::MAX && *k == s {
                return *v;
            }
        }
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                let i = self.strings.len() as u32;
                self.strings.push(s.to_string());
                self.index.insert(s, i);
                i
            }
        };
        self.recent[self.next] = (s, i);
        self.next = (self.next + 1) % self.recent.len();
        i
    }

    fn opt(&mut self, s: &'a Option<String>) -> Option<u32> {
        s.as_deref().map(|s| self.get(s))
    }
}

/// What a batch carries besides the standard columns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchColumns {
    pub ids: bool,
    pub tags: bool,
}

/// Builds the batch enrichers see: text columns index the batch's distinct strings.
pub fn batch_from_events(events: &[EventRecord], columns: BatchColumns) -> EventBatch {
    let n = events.len();
    let tag_text: Vec<Vec<(String, String)>> = if columns.tags {
        events.iter().map(|e| tag_pairs(&e.tags_json)).collect()
    } else {
        Vec::new()
    };
    let mut strings = Interner::new();
    let mut b = EventBatch {
        len: n as u32,
        strings: Vec::new(),
        ids: Vec::with_capacity(if columns.ids { n } else { 0 }),
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
        cache_read_tokens: Vec::with_capacity(n),
        cache_write_tokens: Vec::with_capacity(n),
        reasoning_tokens: Vec::with_capacity(n),
        audio_input_tokens: Vec::with_capacity(n),
        audio_output_tokens: Vec::with_capacity(n),
        latency_ms: Vec::with_capacity(n),
        cost_usd: Vec::with_capacity(n),
        reported_cost_usd: Vec::with_capacity(n),
        service_tiers: Vec::with_capacity(n),
        statuses: Vec::with_capacity(n),
        tags: Vec::with_capacity(tag_text.len()),
    };
    for e in events {
        if columns.ids {
            b.ids.push(strings.get(&e.event_id));
        }
        b.ts_ms.push(e.ts_ms);
        b.kinds.push(strings.get(&e.kind));
        b.source_modules.push(strings.opt(&e.source_module));
        b.environments.push(strings.opt(&e.environment));
        b.apps.push(strings.opt(&e.app));
        b.models.push(strings.opt(&e.model));
        b.providers.push(strings.opt(&e.provider));
        b.operations.push(strings.opt(&e.operation));
        b.input_tokens
            .push(e.input_tokens.and_then(|t| u32::try_from(t).ok()));
        b.output_tokens
            .push(e.output_tokens.and_then(|t| u32::try_from(t).ok()));
        let detail = |d: TokenDetail| e.details.get(d).and_then(|t| u32::try_from(t).ok());
        b.cache_read_tokens.push(detail(TokenDetail::CacheRead));
        b.cache_write_tokens.push(detail(TokenDetail::CacheWrite));
        b.reasoning_tokens.push(detail(TokenDetail::Reasoning));
        b.audio_input_tokens.push(detail(TokenDetail::AudioInput));
        b.audio_output_tokens.push(detail(TokenDetail::AudioOutput));
        b.latency_ms.push(e.latency_ms);
        b.cost_usd.push(e.cost_usd);
        b.reported_cost_usd.push(e.reported_cost_usd);
        b.service_tiers.push(strings.opt(&e.service_tier));
        b.statuses.push(e.status.map(|s| strings.get(s.as_str())));
    }
    for pairs in &tag_text {
        b.tags.push(
            pairs
                .iter()
                .map(|(k, v)| (strings.get(k), strings.get(v)))
                .collect(),
        );
    }
    b.strings = strings.strings;
    b
}

pub(crate) fn tag_pairs(tags_json: &str) -> Vec<(String, String)> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Flat `gpt-4o` calls `e0`…, each tagged `team: care`.
    pub(crate) fn events(n: usize) -> Vec<EventRecord> {
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

    #[test]
    fn text_columns_index_distinct_strings() {
        let ev = events(3);
        let b = batch_from_events(&ev, BatchColumns::default());
        assert_eq!(b.len, 3);
        assert!(b.ids.is_empty() && b.tags.is_empty(), "not asked for");
        assert_eq!(b.models, vec![b.models[0]; 3]);
        assert_eq!(b.strings[b.models[0].unwrap() as usize], "gpt-4o");
        assert_eq!(
            b.strings.iter().filter(|s| *s == "gpt-4o").count(),
            1,
            "crosses once"
        );
        let b = batch_from_events(
            &ev,
            BatchColumns {
                ids: true,
                tags: true,
            },
        );
        assert_eq!(b.strings[b.ids[2] as usize], "e2");
        let (k, v) = b.tags[0][0];
        assert_eq!(
            (
                b.strings[k as usize].as_str(),
                b.strings[v as usize].as_str()
            ),
            ("team", "care")
        );
    }
}
