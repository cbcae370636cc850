//! A mergeable latency sketch (DDSketch, Masson et al., VLDB 2019) with 1% relative accuracy.
//!
//! Values are put in logarithmic buckets `gamma^(k-1) < x <= gamma^k` with
//! `gamma = (1 + a) / (1 - a)` and `a = 0.01`; any quantile read back is within 1% of the value
//! of the true quantile element. Two sketches merge by adding bucket counts, which is what lets the
//! rollups answer p50/p95/p99 for any range and grouping without raw rows.

use thiserror::Error;

/// The relative accuracy guaranteed for every quantile.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values below this (in ms, so one microsecond) are counted in the zero bucket and read as 0.
pub const MIN_INDEXABLE: f64 = 1e-3;
const ENCODING_VERSION: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SketchError {
    #[error("latency sketch is truncated")]
    Truncated,
    #[error("latency sketch has unknown encoding version {0}")]
    UnknownVersion(u8),
    #[error("latency sketch has an out-of-range bucket")]
    BadBucket,
}

/// Bucket counts kept densely from `offset` on: latency keys of one series span a few hundred
/// buckets at most, and dense arrays merge several times faster than maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySketch {
    offset: i32,
    bins: Vec<u64>,
    zero: u64,
    count: u64,
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

fn key_of(x: f64) -> i32 {
    (x.ln() / gamma().ln()).ceil() as i32
}

fn value_of(key: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(key) / (g + 1.0)
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one value. Negative and non-finite values are refused by validation before they get
    /// here; should one arrive, it is counted as zero rather than corrupting the buckets.
    pub fn add(&mut self, x: f64) {
        self.add_n(x, 1);
    }

    fn add_n(&mut self, x: f64, n: u64) {
        self.count += n;
        if x.is_nan() || x < MIN_INDEXABLE || !x.is_finite() {
            self.zero += n;
            return;
        }
        let key = key_of(x);
        self.add_key(key, n);
    }

    fn add_key(&mut self, key: i32, n: u64) {
        if self.bins.is_empty() {
            self.offset = key;
            self.bins.push(n);
            return;
        }
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            let mut bins = vec![0; grow + self.bins.len()];
            bins[grow..].copy_from_slice(&self.bins);
            self.bins = bins;
            self.offset = key;
        }
        let idx = (key - self.offset) as usize;
        if idx >= self.bins.len() {
            self.bins.resize(idx + 1, 0);
        }
        self.bins[idx] += n;
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.zero += other.zero;
        if other.bins.is_empty() {
            return;
        }
        // Make room for the other's whole key range once, then add counts position by position.
        let other_end = other.offset + other.bins.len() as i32;
        self.add_key(other.offset, 0);
        if other_end - 1 > self.offset + self.bins.len() as i32 - 1 {
            self.add_key(other_end - 1, 0);
        }
        let start = (other.offset - self.offset) as usize;
        for (slot, n) in self.bins[start..start + other.bins.len()]
            .iter_mut()
            .zip(&other.bins)
        {
            *slot += n;
        }
    }

    /// The value at quantile `q` in `[0, 1]`, or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = q * (self.count - 1) as f64;
        let mut seen = self.zero;
        if seen as f64 > rank {
            return Some(0.0);
        }
        for (i, &n) in self.bins.iter().enumerate() {
            seen += n;
            if seen as f64 > rank {
                return Some(value_of(self.offset + i as i32));
            }
        }
        // Only reachable through rounding at q = 1: the top bucket.
        let last = self.bins.iter().rposition(|&n| n > 0)?;
        Some(value_of(self.offset + last as i32))
    }

    /// A compact binary form: version, zero count, then (key delta, count) pairs of the non-empty
    /// buckets as LEB128 varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bins.len() * 2);
        out.push(ENCODING_VERSION);
        put_varint(&mut out, self.zero);
        let nonzero = self.bins.iter().filter(|&&n| n > 0).count();
        put_varint(&mut out, nonzero as u64);
        let mut prev = 0i64;
        for (i, &n) in self.bins.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let key = i64::from(self.offset) + i as i64;
            put_varint(&mut out, zigzag(key - prev));
            put_varint(&mut out, n);
            prev = key;
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SketchError> {
        let mut sketch = Self::new();
        sketch.merge_encoded(bytes)?;
        Ok(sketch)
    }

    /// Merges an encoded sketch without materialising it first (the hot path of queries).
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<(), SketchError> {
        let (&version, mut rest) = bytes.split_first().ok_or(SketchError::Truncated)?;
        if version != ENCODING_VERSION {
            return Err(SketchError::UnknownVersion(version));
        }
        let zero = take_varint(&mut rest)?;
        self.zero += zero;
        self.count += zero;
        let pairs = take_varint(&mut rest)?;
        let mut key = 0i64;
        for _ in 0..pairs {
            key += unzigzag(take_varint(&mut rest)?);
            let n = take_varint(&mut rest)?;
            let key32 = i32::try_from(key).map_err(|_| SketchError::BadBucket)?;
            if !(-20_000..=20_000).contains(&key32) {
                return Err(SketchError::BadBucket);
            }
            self.add_key(key32, n);
            self.count += n;
        }
        Ok(())
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, SketchError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest.split_first().ok_or(SketchError::Truncated)?;
        *rest = tail;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SketchError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    /// A deterministic spread of latencies over six orders of magnitude (a log-normal-ish mix).
    fn latencies(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                0.05 * 10f64.powf(u * 6.0)
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_one_percent_after_merging() {
        let values = latencies(50_000, 7);
        let mut parts: Vec<LatencySketch> = (0..7).map(|_| LatencySketch::new()).collect();
        for (i, v) in values.iter().enumerate() {
            parts[i % 7].add(*v);
        }
        let mut merged = LatencySketch::new();
        for p in &parts {
            merged.merge_encoded(&p.encode()).unwrap();
        }
        assert_eq!(merged.count(), values.len() as u64);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact_quantile(&sorted, q);
            let got = merged.quantile(q).unwrap();
            let err = (got - want).abs() / want;
            assert!(
                err <= RELATIVE_ACCURACY + 1e-9,
                "q={q} want={want} got={got} err={err}"
            );
        }
    }

    #[test]
    fn zero_bucket_and_roundtrip() {
        let mut s = LatencySketch::new();
        assert_eq!(s.quantile(0.5), None);
        for v in [0.0, 0.0, 0.0, 5.0] {
            s.add(v);
        }
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 5.0).abs() / 5.0 <= RELATIVE_ACCURACY);
        assert_eq!(LatencySketch::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn corrupt_encodings_are_errors_not_panics() {
        assert_eq!(LatencySketch::decode(&[]), Err(SketchError::Truncated));
        assert_eq!(
            LatencySketch::decode(&[9]),
            Err(SketchError::UnknownVersion(9))
        );
        assert_eq!(
            LatencySketch::decode(&[1, 0, 1, 0x80]),
            Err(SketchError::Truncated)
        );
        let mut big = vec![1, 0, 1];
        put_varint(&mut big, zigzag(1_000_000));
        put_varint(&mut big, 1);
        assert_eq!(LatencySketch::decode(&big), Err(SketchError::BadBucket));
    }
}
