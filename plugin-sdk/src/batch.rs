//! Typed access to a batch's columns, and a builder for patches.

use std::collections::HashMap;

use crate::bindings::enricher::hub::plugin0_1_0::types::{Enrichment, Patch, PatchGroup};
use crate::bindings::enricher::hub::plugin0_2_0::types::EventBatch;

pub use crate::bindings::enricher::hub::plugin0_1_0::types::Field;

/// One batch of events, column-wise. Read it row by row with [`Batch::rows`], or take whole
/// columns with [`Batch::columns`].
#[derive(Debug)]
pub struct Batch {
    inner: EventBatch,
}

impl Batch {
    /// Wraps a raw batch (the test host and the export macros do this for you).
    pub fn new(inner: EventBatch) -> Self {
        Self { inner }
    }

    pub fn len(&self) -> usize {
        self.inner.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        (0..self.len()).map(move |i| Row { b: &self.inner, i })
    }

    pub fn row(&self, i: usize) -> Option<Row<'_>> {
        (i < self.len()).then_some(Row { b: &self.inner, i })
    }

    /// The raw columns.
    pub fn columns(&self) -> &EventBatch {
        &self.inner
    }
}

/// One event of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    b: &'a EventBatch,
    i: usize,
}

impl<'a> Row<'a> {
    fn text(&self, i: u32) -> &'a str {
        self.b
            .strings
            .get(i as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
    fn opt(&self, col: &'a [Option<u32>]) -> Option<&'a str> {
        col.get(self.i).copied().flatten().map(|i| self.text(i))
    }
    /// The row's index: what a patch names.
    pub fn index(&self) -> u32 {
        self.i as u32
    }
    /// The event's id; `None` unless the manifest sets `ids = true` under `[capabilities]`.
    pub fn id(&self) -> Option<&'a str> {
        self.b.ids.get(self.i).map(|&i| self.text(i))
    }
    pub fn ts_ms(&self) -> i64 {
        self.b.ts_ms[self.i]
    }
    /// `llm_call`, `telemetry.latency`, `cost.token_cost`, ...
    pub fn kind(&self) -> &'a str {
        self.text(self.b.kinds[self.i])
    }
    pub fn source_module(&self) -> Option<&'a str> {
        self.opt(&self.b.source_modules)
    }
    pub fn environment(&self) -> Option<&'a str> {
        self.opt(&self.b.environments)
    }
    pub fn app(&self) -> Option<&'a str> {
        self.opt(&self.b.apps)
    }
    pub fn model(&self) -> Option<&'a str> {
        self.opt(&self.b.models)
    }
    /// The index of the model name in the batch's strings: equal indexes, equal names. Plugins
    /// that look models up can cache by it instead of hashing the name per event.
    pub fn model_index(&self) -> Option<u32> {
        self.b.models[self.i]
    }
    pub fn provider(&self) -> Option<&'a str> {
        self.opt(&self.b.providers)
    }
    /// The index of the provider in the batch's strings (see [`Row::model_index`]).
    pub fn provider_index(&self) -> Option<u32> {
        self.b.providers[self.i]
    }
    pub fn operation(&self) -> Option<&'a str> {
        self.opt(&self.b.operations)
    }
    pub fn input_tokens(&self) -> Option<u32> {
        self.b.input_tokens[self.i]
    }
    pub fn output_tokens(&self) -> Option<u32> {
        self.b.output_tokens[self.i]
    }
    /// Input served from the prompt cache (part of [`Row::input_tokens`]).
    pub fn cache_read_tokens(&self) -> Option<u32> {
        self.b.cache_read_tokens[self.i]
    }
    /// Input written to the prompt cache (part of [`Row::input_tokens`]).
    pub fn cache_write_tokens(&self) -> Option<u32> {
        self.b.cache_write_tokens[self.i]
    }
    /// Hidden reasoning tokens (part of [`Row::output_tokens`]).
    pub fn reasoning_tokens(&self) -> Option<u32> {
        self.b.reasoning_tokens[self.i]
    }
    /// Audio input tokens (part of [`Row::input_tokens`]).
    pub fn audio_input_tokens(&self) -> Option<u32> {
        self.b.audio_input_tokens[self.i]
    }
    /// Audio output tokens (part of [`Row::output_tokens`]).
    pub fn audio_output_tokens(&self) -> Option<u32> {
        self.b.audio_output_tokens[self.i]
    }
    /// The cost the sender (or CostOps) reported; [`Row::cost_usd`] is the cost counted so far.
    pub fn reported_cost_usd(&self) -> Option<f64> {
        self.b.reported_cost_usd[self.i]
    }
    /// How the provider served the call, as the sender says: `batch`, `flex`, `priority`, …
    pub fn service_tier(&self) -> Option<&'a str> {
        self.opt(&self.b.service_tiers)
    }
    pub fn latency_ms(&self) -> Option<f64> {
        self.b.latency_ms[self.i]
    }
    pub fn cost_usd(&self) -> Option<f64> {
        self.b.cost_usd[self.i]
    }
    /// `ok`, `error` or `cancelled` for requests.
    pub fn status(&self) -> Option<&'a str> {
        self.opt(&self.b.statuses)
    }
    /// A tag's value; always `None` unless the manifest sets `tags = true` under `[capabilities]`.
    pub fn tag(&self, name: &str) -> Option<&'a str> {
        self.b
            .tags
            .get(self.i)?
            .iter()
            .find(|(k, _)| self.text(*k) == name)
            .map(|(_, v)| self.text(*v))
    }
}

/// A value a patch writes: text, integer, float or flag.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
}

/// The answer of an enricher: changes to rows of the batch. The host checks every patch (row in
/// range, known field, right type) and refuses the whole answer if one is wrong, so the builder
/// only offers valid fields. Texts are stored once per distinct value.
///
/// Changes that are the same for many rows (everything derived from the model, say) are cheaper
/// as a [`Patches::group`]: one row index crosses per event instead of one record per change.
#[derive(Debug, Default)]
pub struct Patches {
    patches: Vec<Patch>,
    groups: Vec<PatchGroup>,
    strings: Vec<String>,
    /// Used once there are more than a few distinct strings.
    index: HashMap<String, u32>,
}

/// The value as it crosses the boundary (`text` is an index into the answer's strings).
pub type RawValue = crate::bindings::enricher::hub::plugin0_1_0::types::Value;
type WitValue = RawValue;

impl Patches {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            patches: Vec::with_capacity(n),
            ..Default::default()
        }
    }

    /// The index of `s` in the answer's strings, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if self.strings.len() <= 16 {
            if let Some(i) = self.strings.iter().position(|x| x == s) {
                return i as u32;
            }
            if self.strings.len() == 16 {
                self.index = self
                    .strings
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone(), i as u32))
                    .collect();
            }
        } else if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_string());
        if self.strings.len() > 16 {
            self.index.insert(s.to_string(), i);
        }
        i
    }

    fn value(&mut self, v: Value) -> WitValue {
        match v {
            Value::Text(s) => WitValue::Text(self.intern(&s)),
            Value::Integer(i) => WitValue::Integer(i),
            Value::Float(f) => WitValue::Float(f),
            Value::Flag(b) => WitValue::Flag(b),
        }
    }

    fn text(&mut self, row: u32, field: Field, s: &str) -> &mut Self {
        let value = WitValue::Text(self.intern(s));
        self.patches.push(Patch { row, field, value });
        self
    }

    /// Sets the cost (only applied when the event has none).
    pub fn cost_usd(&mut self, row: u32, usd: f64) -> &mut Self {
        self.patches.push(Patch {
            row,
            field: Field::CostUsd,
            value: WitValue::Float(usd),
        });
        self
    }

    /// Sets the provider (only applied when the event has none).
    pub fn provider(&mut self, row: u32, provider: &str) -> &mut Self {
        self.text(row, Field::Provider, provider)
    }

    pub fn operation(&mut self, row: u32, operation: &str) -> &mut Self {
        self.text(row, Field::Operation, operation)
    }

    pub fn app(&mut self, row: u32, app: &str) -> &mut Self {
        self.text(row, Field::App, app)
    }

    pub fn environment(&mut self, row: u32, environment: &str) -> &mut Self {
        self.text(row, Field::Environment, environment)
    }

    /// Adds a tag (`name`: 1–64 of a-z, 0-9, `_`, `-`, `.`); a tag the sender set wins.
    pub fn tag(&mut self, row: u32, name: &str, value: impl Into<Value>) -> &mut Self {
        let field = Field::Tag(self.intern(name));
        let value = self.value(value.into());
        self.patches.push(Patch { row, field, value });
        self
    }

    /// A patch exactly as given (text values are interned), for fields newer than this SDK and
    /// for tests of the host's checks.
    pub fn raw(&mut self, row: u32, field: Field, value: Value) -> &mut Self {
        let value = self.value(value);
        self.patches.push(Patch { row, field, value });
        self
    }

    /// Makes room for `additional` more patches (an enricher that patches every row several
    /// times saves the growth of the list).
    pub fn reserve(&mut self, additional: usize) {
        self.patches.reserve(additional);
    }

    /// A patch with a raw WIT value (a text index that may not exist): for tests of the host.
    pub fn raw_wit(&mut self, row: u32, field: Field, value: RawValue) -> &mut Self {
        self.patches.push(Patch { row, field, value });
        self
    }

    /// Starts a group of changes that apply to every row of `rows`; add them through the
    /// returned [`Group`]. Each change counts once per row toward the limit of 16 per event.
    pub fn group(&mut self, rows: Vec<u32>) -> Group<'_> {
        self.groups.push(PatchGroup {
            rows,
            sets: Vec::new(),
        });
        Group { patches: self }
    }

    /// The changes so far, as the host counts them (a group's changes once per row).
    pub fn len(&self) -> usize {
        self.groups
            .iter()
            .fold(self.patches.len(), |n, g| n + g.rows.len() * g.sets.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_inner(self) -> Enrichment {
        Enrichment {
            strings: self.strings,
            patches: self.patches,
            groups: self.groups,
        }
    }
}

/// Changes for every row of a group (see [`Patches::group`]); the same rules as single patches.
pub struct Group<'a> {
    patches: &'a mut Patches,
}

impl Group<'_> {
    fn set(&mut self, field: Field, value: WitValue) -> &mut Self {
        let g = self.patches.groups.last_mut().expect("a group was started");
        g.sets.push((field, value));
        self
    }

    fn text(&mut self, field: Field, s: &str) -> &mut Self {
        let value = WitValue::Text(self.patches.intern(s));
        self.set(field, value)
    }

    /// Sets the cost (only applied to rows that have none).
    pub fn cost_usd(&mut self, usd: f64) -> &mut Self {
        self.set(Field::CostUsd, WitValue::Float(usd))
    }

    pub fn provider(&mut self, provider: &str) -> &mut Self {
        self.text(Field::Provider, provider)
    }

    pub fn operation(&mut self, operation: &str) -> &mut Self {
        self.text(Field::Operation, operation)
    }

    pub fn app(&mut self, app: &str) -> &mut Self {
        self.text(Field::App, app)
    }

    pub fn environment(&mut self, environment: &str) -> &mut Self {
        self.text(Field::Environment, environment)
    }

    /// Adds a tag to every row (a tag the sender set wins).
    pub fn tag(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        let field = Field::Tag(self.patches.intern(name));
        let value = self.patches.value(value.into());
        self.set(field, value)
    }

    /// A change with a raw WIT field and value (texts as indexes from [`Patches::intern`]).
    pub fn raw_wit(&mut self, field: Field, value: RawValue) -> &mut Self {
        self.set(field, value)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Integer(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Flag(v)
    }
}
