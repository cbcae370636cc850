//! Domain types of the LLM Analytics Hub.
//!
//! This crate does no I/O. It owns the vocabulary every other crate speaks: who a tenant is
//! ([`TenantId`]), what an event is once accepted ([`EventRecord`]), how raw JSON from clients is
//! turned into events or into field-level rejections ([`ingest`]), the analytic dimensions and
//! metrics ([`dims`]), time buckets ([`time`]) and the mergeable latency sketch ([`sketch`]).

pub mod dims;
pub mod event;
pub mod ingest;
pub mod sketch;
pub mod tenant;
pub mod time;

pub use dims::{Dimension, Metric};
pub use event::{
    EnrichedBy, EventRecord, Severity, Status, TokenDetail, TokenDetails, enrichment_shape,
    parse_enriched_by,
};
pub use sketch::LatencySketch;
pub use tenant::{ApiKeyScope, Role, TenantId};
