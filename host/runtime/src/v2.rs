//! `hub:plugin@0.2.0` beside 0.1.0. 0.2.0 changes only the enricher's batch (usage details and the
//! reported cost) and uses everything else from 0.1.0 (answer types, `log`, `kv`). The host builds
//! one batch, 0.2.0's; a 0.1.0 enricher gets it without the new columns, exactly what it always saw.

use crate::bindings::{EventBatch, types, v2};
use crate::host::HostState;

impl v2::types::Host for HostState {}

/// The batch as a 0.1.0 enricher sees it: the same columns, without 0.2.0's additions.
pub(crate) fn batch_v1(b: &EventBatch) -> types::EventBatch {
    types::EventBatch {
        len: b.len,
        strings: b.strings.clone(),
        ids: b.ids.clone(),
        ts_ms: b.ts_ms.clone(),
        kinds: b.kinds.clone(),
        source_modules: b.source_modules.clone(),
        environments: b.environments.clone(),
        apps: b.apps.clone(),
        models: b.models.clone(),
        providers: b.providers.clone(),
        operations: b.operations.clone(),
        input_tokens: b.input_tokens.clone(),
        output_tokens: b.output_tokens.clone(),
        latency_ms: b.latency_ms.clone(),
        cost_usd: b.cost_usd.clone(),
        statuses: b.statuses.clone(),
        tags: b.tags.clone(),
    }
}
