//! Typed access to a batch's columns, and a builder for patches.

use crate::bindings::enricher::hub::plugin::types::{EventBatch, Patch};

pub use crate::bindings::enricher::hub::plugin::types::Value;

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
        self.inner.ids.len()
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
    /// The row's index: what a patch names.
    pub fn index(&self) -> u32 {
        self.i as u32
    }
    pub fn id(&self) -> &'a str {
        &self.b.ids[self.i]
    }
    pub fn ts_ms(&self) -> i64 {
        self.b.ts_ms[self.i]
    }
    /// `llm_call`, `telemetry.latency`, `cost.token_cost`, ...
    pub fn kind(&self) -> &'a str {
        &self.b.kinds[self.i]
    }
    pub fn source_module(&self) -> Option<&'a str> {
        self.b.source_modules[self.i].as_deref()
    }
    pub fn environment(&self) -> Option<&'a str> {
        self.b.environments[self.i].as_deref()
    }
    pub fn app(&self) -> Option<&'a str> {
        self.b.apps[self.i].as_deref()
    }
    pub fn model(&self) -> Option<&'a str> {
        self.b.models[self.i].as_deref()
    }
    pub fn provider(&self) -> Option<&'a str> {
        self.b.providers[self.i].as_deref()
    }
    pub fn operation(&self) -> Option<&'a str> {
        self.b.operations[self.i].as_deref()
    }
    pub fn input_tokens(&self) -> Option<u32> {
        self.b.input_tokens[self.i]
    }
    pub fn output_tokens(&self) -> Option<u32> {
        self.b.output_tokens[self.i]
    }
    pub fn latency_ms(&self) -> Option<f64> {
        self.b.latency_ms[self.i]
    }
    pub fn cost_usd(&self) -> Option<f64> {
        self.b.cost_usd[self.i]
    }
    /// `ok` or `error` for requests.
    pub fn status(&self) -> Option<&'a str> {
        self.b.statuses[self.i].as_deref()
    }
    /// A tag's value; always `None` unless the manifest sets `tags = true` under `[capabilities]`.
    pub fn tag(&self, name: &str) -> Option<&'a str> {
        self.b
            .tags
            .as_ref()?
            .get(self.i)?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer of an enricher: changes to rows of the batch. The host checks every patch (row in
/// range, known field, right type) and refuses the whole answer if one is wrong, so the builder
/// only offers valid fields.
#[derive(Debug, Default)]
pub struct Patches {
    inner: Vec<Patch>,
}

impl Patches {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            inner: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: u32, field: impl Into<String>, value: Value) -> &mut Self {
        self.inner.push(Patch {
            row,
            field: field.into(),
            value,
        });
        self
    }

    /// Sets the cost (only applied when the event has none).
    pub fn cost_usd(&mut self, row: u32, usd: f64) -> &mut Self {
        self.push(row, "cost-usd", Value::Float(usd))
    }

    /// Sets the provider (only applied when the event has none).
    pub fn provider(&mut self, row: u32, provider: &str) -> &mut Self {
        self.push(row, "provider", Value::Text(provider.to_string()))
    }

    pub fn operation(&mut self, row: u32, operation: &str) -> &mut Self {
        self.push(row, "operation", Value::Text(operation.to_string()))
    }

    pub fn app(&mut self, row: u32, app: &str) -> &mut Self {
        self.push(row, "app", Value::Text(app.to_string()))
    }

    pub fn environment(&mut self, row: u32, environment: &str) -> &mut Self {
        self.push(row, "environment", Value::Text(environment.to_string()))
    }

    /// Adds a tag (`name`: 1–64 of a-z, 0-9, `_`, `-`, `.`); a tag the sender set wins.
    pub fn tag(&mut self, row: u32, name: &str, value: impl Into<Value>) -> &mut Self {
        self.push(row, format!("tag:{name}"), value.into())
    }

    /// A patch of any field, for fields newer than this SDK.
    pub fn raw(&mut self, row: u32, field: &str, value: Value) -> &mut Self {
        self.push(row, field.to_string(), value)
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn into_inner(self) -> Vec<Patch> {
        self.inner
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
