//! Rollup upkeep (turning inserted events into per-minute/hour/day deltas and merging them into
//! stored rows) and query planning (which resolution answers which part of a range exactly).

use std::collections::HashMap;

use hub_core::time::{Resolution, ceil_to, floor_to};
use hub_core::{Dimension, EventRecord};

use crate::model::Aggregate;

/// A hash map for the write path's internal keys (dimension values, ids): foldhash instead of
/// SipHash, which was a tenth of the time spent turning events into rollup deltas. Seeded per map.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Dimension values of a rollup row in [`Dimension::ALL`] order, '' for unset.
pub(crate) type DimValues = [String; 7];

/// Which dimensions a rollup row keeps (the `grain` column).
pub(crate) const GRAIN_FULL: i16 = 0;
pub(crate) const GRAIN_TOTAL: i16 = 1;

/// The grain of rows keeping only `dim`.
pub(crate) fn grain_of(dim: Dimension) -> i16 {
    2 + dim.index() as i16
}

/// The smallest grain that answers a query grouping and filtering by `used` dimensions exactly.
pub(crate) fn grain_for(used: &[Dimension]) -> i16 {
    let mut distinct: Vec<Dimension> = used.to_vec();
    distinct.sort();
    distinct.dedup();
    match distinct.as_slice() {
        [] => GRAIN_TOTAL,
        [one] => grain_of(*one),
        _ => GRAIN_FULL,
    }
}

/// The primary key of a rollup row within one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RollupKey {
    pub res: Resolution,
    pub grain: i16,
    pub bucket: i64,
    pub dims: DimValues,
}

/// The changes one write makes to the rollups of one tenant.
pub(crate) fn deltas<'a>(
    events: impl Iterator<Item = &'a EventRecord>,
) -> FastMap<RollupKey, Aggregate> {
    // Aggregate per minute first (one hash lookup per event), then fold minutes into hours and
    // days, which touches only as many entries as there are distinct minute keys.
    let mut minutes: FastMap<(i64, [&str; 7]), Aggregate> = FastMap::default();
    for e in events {
        minutes.entry(minute_of(e)).or_default().add_event(e);
    }
    fan_out(minutes)
}

/// The changes that take back what `events` counted toward cost (their cost, or their being
/// unpriced), at each one's own time and dimensions: for events that stopped holding their call's
/// cost (see [`crate::call_costs`]), added to the deltas of the write that demoted them. It is the
/// restatement of each to counting $0.
pub(crate) fn take_back(events: &[EventRecord]) -> FastMap<RollupKey, Aggregate> {
    let zeros: Vec<EventRecord> = events
        .iter()
        .map(|e| EventRecord {
            cost_usd: Some(0.0),
            ..e.clone()
        })
        .collect();
    restate(events.iter().zip(&zeros))
}

/// The changes that restate events' costs, each pair an event as stored and as it becomes (same
/// time and dimensions): the counted, estimated and reported cost and the unpriced counts move
/// by the difference. A re-pricing merges them into existing rows only: a row retention deleted
/// has nothing to restate.
pub(crate) fn restate<'e>(
    pairs: impl IntoIterator<Item = (&'e EventRecord, &'e EventRecord)>,
) -> FastMap<RollupKey, Aggregate> {
    let mut minutes: FastMap<(i64, [&str; 7]), Aggregate> = FastMap::default();
    for (before, after) in pairs {
        let agg = minutes.entry(minute_of(before)).or_default();
        for (e, sign) in [(before, -1), (after, 1)] {
            agg.cost_usd += sign as f64 * e.cost_usd.unwrap_or(0.0);
            agg.estimated_cost_usd += sign as f64 * e.estimated_cost_usd.unwrap_or(0.0);
            agg.reported_cost_usd += sign as f64 * e.reported_cost_usd.unwrap_or(0.0);
            agg.unpriced_events += sign * i64::from(e.is_unpriced());
            agg.unpriced_tokens += sign * e.unpriced_tokens();
        }
    }
    fan_out(minutes)
}

fn minute_of(e: &EventRecord) -> (i64, [&str; 7]) {
    (
        Resolution::Minute.bucket(e.ts_ms),
        Dimension::ALL.map(|d| e.dimension(d).unwrap_or("")),
    )
}

/// Adds `more` into `changes`.
pub(crate) fn add_all(
    changes: &mut FastMap<RollupKey, Aggregate>,
    more: FastMap<RollupKey, Aggregate>,
) {
    for (key, agg) in more {
        changes.entry(key).or_default().merge(&agg);
    }
}

/// Spreads per-minute aggregates over every row they touch: each grain at each resolution.
fn fan_out(minutes: FastMap<(i64, [&str; 7]), Aggregate>) -> FastMap<RollupKey, Aggregate> {
    let mut out: FastMap<RollupKey, Aggregate> =
        FastMap::with_capacity_and_hasher(minutes.len() * 4, Default::default());
    for ((minute, dims), agg) in minutes {
        // The full row, the bucket total, and one row per dimension keeping only that dimension.
        let mut grains: Vec<(i16, DimValues)> = Vec::with_capacity(2 + Dimension::ALL.len());
        grains.push((GRAIN_FULL, dims.map(str::to_string)));
        grains.push((GRAIN_TOTAL, Default::default()));
        for d in Dimension::ALL {
            let mut only: DimValues = Default::default();
            only[d.index()] = dims[d.index()].to_string();
            grains.push((grain_of(d), only));
        }
        for (grain, dims) in grains {
            for res in Resolution::ALL {
                let key = RollupKey {
                    res,
                    grain,
                    bucket: res.bucket(minute),
                    dims: dims.clone(),
                };
                out.entry(key).or_default().merge(&agg);
            }
        }
    }
    out
}

/// Where one part of a queried range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rollup(Resolution),
    /// Raw events: the sub-minute edges of an unaligned range.
    Raw,
}

/// One contiguous part `[from_ms, to_ms)` of a queried range and where it is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub source: Source,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Splits `[from, to)` into the fewest pieces that rollups answer exactly: whole days from the
/// day rollup, then whole hours at both ends, then whole minutes, and raw events for what is left.
pub fn plan(from_ms: i64, to_ms: i64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    plan_into(
        from_ms,
        to_ms,
        &[Resolution::Day, Resolution::Hour, Resolution::Minute],
        &mut pieces,
    );
    pieces
}

fn plan_into(from: i64, to: i64, levels: &[Resolution], out: &mut Vec<Piece>) {
    if from >= to {
        return;
    }
    let Some((&res, finer)) = levels.split_first() else {
        out.push(Piece {
            source: Source::Raw,
            from_ms: from,
            to_ms: to,
        });
        return;
    };
    let (a, b) = (ceil_to(from, res.millis()), floor_to(to, res.millis()));
    if a < b {
        plan_into(from, a, finer, out);
        out.push(Piece {
            source: Source::Rollup(res),
            from_ms: a,
            to_ms: b,
        });
        plan_into(b, to, finer, out);
    } else {
        plan_into(from, to, finer, out);
    }
}

/// The coarsest resolution whose buckets tile a time-series step exactly.
pub fn resolution_for_step(step_ms: i64) -> Option<Resolution> {
    Resolution::ALL
        .into_iter()
        .rev()
        .find(|r| step_ms >= r.millis() && step_ms % r.millis() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::time::{DAY_MS, HOUR_MS, MINUTE_MS};

    #[test]
    fn plan_uses_the_coarsest_exact_pieces() {
        let from = DAY_MS - HOUR_MS - MINUTE_MS - 1_000; // 22:58:59 on day 0
        let to = 3 * DAY_MS + 2 * HOUR_MS + 3 * MINUTE_MS + 500;
        let p = plan(from, to);
        let kinds: Vec<_> = p.iter().map(|p| p.source).collect();
        assert_eq!(
            kinds,
            vec![
                Source::Raw,
                Source::Rollup(Resolution::Minute),
                Source::Rollup(Resolution::Hour),
                Source::Rollup(Resolution::Day),
                Source::Rollup(Resolution::Hour),
                Source::Rollup(Resolution::Minute),
                Source::Raw,
            ]
        );
        // Contiguous and covering.
        assert_eq!(p.first().unwrap().from_ms, from);
        assert_eq!(p.last().unwrap().to_ms, to);
        for w in p.windows(2) {
            assert_eq!(w[0].to_ms, w[1].from_ms);
        }
        assert_eq!(
            plan(DAY_MS, 2 * DAY_MS),
            vec![Piece {
                source: Source::Rollup(Resolution::Day),
                from_ms: DAY_MS,
                to_ms: 2 * DAY_MS
            }]
        );
        assert_eq!(plan(5, 5), vec![]);
    }

    #[test]
    fn grains_follow_the_dimensions_used() {
        assert_eq!(grain_for(&[]), GRAIN_TOTAL);
        assert_eq!(
            grain_for(&[Dimension::Model, Dimension::Model]),
            grain_of(Dimension::Model)
        );
        assert_eq!(grain_for(&[Dimension::Model, Dimension::App]), GRAIN_FULL);
    }

    #[test]
    fn every_grain_sums_to_the_same_total() {
        let raw = |i: i64, model: &str, app: &str| {
            let json = format!(
                r#"{{"event_id":"e{i}","timestamp":{},"model":"{model}","app":"{app}","input_tokens":{i}}}"#,
                i * 1000
            );
            hub_core::ingest::parse_event(
                &json,
                &hub_core::ingest::IngestLimits {
                    max_age_ms: i64::MAX / 4,
                    ..Default::default()
                },
                0,
            )
            .unwrap()
        };
        let events = [raw(1, "a", "x"), raw(2, "b", "x"), raw(70, "a", "y")];
        let d = deltas(events.iter());
        for res in Resolution::ALL {
            for grain in [
                GRAIN_FULL,
                GRAIN_TOTAL,
                grain_of(Dimension::Model),
                grain_of(Dimension::Status),
            ] {
                let tokens: i64 = d
                    .iter()
                    .filter(|(k, _)| k.res == res && k.grain == grain)
                    .map(|(_, a)| a.input_tokens)
                    .sum();
                assert_eq!(tokens, 73, "{res:?} grain {grain}");
            }
        }
        let models: Vec<_> = d
            .keys()
            .filter(|k| k.res == Resolution::Day && k.grain == grain_of(Dimension::Model))
            .map(|k| k.dims[Dimension::Model.index()].clone())
            .collect();
        assert_eq!(models.len(), 2);
    }

    #[test]
    fn steps_map_to_resolutions() {
        assert_eq!(resolution_for_step(MINUTE_MS), Some(Resolution::Minute));
        assert_eq!(resolution_for_step(5 * MINUTE_MS), Some(Resolution::Minute));
        assert_eq!(resolution_for_step(HOUR_MS), Some(Resolution::Hour));
        assert_eq!(resolution_for_step(DAY_MS), Some(Resolution::Day));
        assert_eq!(resolution_for_step(30_000), None);
    }
}
