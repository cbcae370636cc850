//! How long a season is, found from the step and the data's autocorrelation.
//!
//! The rule, on the gap-free history `y` (n points) after removing its least-squares line:
//! 1. A lag `m` is *a peak* when the autocorrelation r(m) is above `max(0.3, 2/sqrt(n))`, at
//!    least r(m-1) and r(m+1), and at least 0.1 above the lowest r(j) for 0 < j < m (so a slowly
//!    decaying autocorrelation, a random walk's, has no peaks). Only lags with two full seasons
//!    and a few points of history, n >= 2m + 4, are considered.
//! 2. The step's calendar rhythm is tried first: 1h steps: 24 (a day), and 168 (a week) when the
//!    history holds at least three weeks; 1d steps: 7; 5m steps: 288; 1m steps: 1440. Of those
//!    that are peaks, the highest; then a divisor of it that is itself a peak with an
//!    autocorrelation within [`DIVISOR_MARGIN`] of it replaces it, the shortest first. So hourly
//!    data takes the week only when its weekly autocorrelation beats the daily one by more than
//!    the margin (weekdays unlike weekends), and a 12-hour rhythm is 12, not 24.
//! 3. Otherwise any rhythm: the highest peak among lags 2..=200, preferring the shortest lag whose
//!    peak reaches 90% of the highest (a period, not its multiples).
//! 4. Otherwise 1: no season.

pub const MINUTE_MS: u32 = 60_000;
pub const FIVE_MINUTES_MS: u32 = 300_000;
pub const HOUR_MS: u32 = 3_600_000;
pub const DAY_MS: u32 = 86_400_000;

/// The longest lag searched when the step's calendar gives no season.
pub const MAX_SCAN_LAG: usize = 200;
/// How far a peak must rise above the lowest autocorrelation before it.
const PROMINENCE: f64 = 0.1;
/// How close a divisor's autocorrelation must come to a calendar season's to replace it (the
/// longer season holds the shorter one, but costs more seasonal states to estimate).
pub const DIVISOR_MARGIN: f64 = 0.02;
/// Lags sampled (at most) to find the lowest autocorrelation before a calendar lag.
const TROUGH_SAMPLES: usize = 64;

/// Whether a history of `n` points is long enough for a season of `m`: two full seasons and a
/// few points.
pub fn long_enough(n: usize, m: usize) -> bool {
    n >= 2 * m + 4
}

/// The season length of `y` (1: none), by the rule in the module's documentation.
pub fn detect(y: &[f64], step_ms: u32) -> usize {
    let n = y.len();
    if n < 12 {
        return 1;
    }
    let Some(acf) = Acf::new(y) else {
        return 1;
    };
    let threshold = (2.0 / (n as f64).sqrt()).max(0.3);

    // The calendar first.
    let calendar: &[usize] = match step_ms {
        HOUR_MS => &[24, 168],
        DAY_MS => &[7],
        FIVE_MINUTES_MS => &[288],
        MINUTE_MS => &[1440],
        _ => &[],
    };
    let mut best: Option<(usize, f64)> = None;
    for &m in calendar {
        if !long_enough(n, m) || (m == 168 && n < 3 * 168) {
            continue;
        }
        if !acf.is_peak(m, threshold) {
            continue;
        }
        let r = acf.at(m);
        if best.is_none_or(|(_, rb)| r > rb) {
            best = Some((m, r));
        }
    }
    if let Some((m, r)) = best {
        // A shorter period that explains the data as well (a 12-hour rhythm in hourly data).
        return (2..m)
            .filter(|d| m % d == 0 && acf.is_peak(*d, threshold))
            .find(|d| acf.at(*d) >= r - DIVISOR_MARGIN)
            .unwrap_or(m);
    }

    // Any rhythm.
    let max_lag = MAX_SCAN_LAG.min((n - 4) / 2);
    if max_lag < 2 {
        return 1;
    }
    let r: Vec<f64> = (0..=max_lag + 1).map(|l| acf.at(l)).collect();
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    let mut lowest = r[1];
    for l in 2..=max_lag {
        if r[l] > threshold && r[l] >= r[l - 1] && r[l] >= r[l + 1] && r[l] - lowest >= PROMINENCE {
            peaks.push((l, r[l]));
        }
        lowest = lowest.min(r[l]);
    }
    let Some(top) = peaks.iter().map(|p| p.1).reduce(f64::max) else {
        return 1;
    };
    peaks.iter().find(|p| p.1 >= 0.9 * top).map_or(1, |p| p.0)
}

/// The autocorrelation of a series around its least-squares line.
struct Acf {
    z: Vec<f64>,
    denom: f64,
}

impl Acf {
    /// `None` when the series is a straight line (nothing is left around it).
    fn new(y: &[f64]) -> Option<Acf> {
        let n = y.len() as f64;
        let mx = (n - 1.0) / 2.0;
        let my = y.iter().sum::<f64>() / n;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, v) in y.iter().enumerate() {
            let dx = i as f64 - mx;
            sxy += dx * (v - my);
            sxx += dx * dx;
        }
        let slope = sxy / sxx;
        let z: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v - my - slope * (i as f64 - mx))
            .collect();
        let denom: f64 = z.iter().map(|v| v * v).sum();
        let scale: f64 = y.iter().map(|v| v * v).sum::<f64>() + 1e-300;
        if !denom.is_finite() || denom <= 1e-20 * scale {
            return None;
        }
        Some(Acf { z, denom })
    }

    /// Whether lag m is a peak: above the threshold, no lower than its neighbours, and
    /// [`PROMINENCE`] above the lowest r(j), 0 < j < m (sampled on a grid of at most
    /// [`TROUGH_SAMPLES`] lags).
    fn is_peak(&self, m: usize, threshold: f64) -> bool {
        let r = self.at(m);
        if r <= threshold || r < self.at(m - 1) || r < self.at(m + 1) {
            return false;
        }
        let stride = (m / TROUGH_SAMPLES).max(1);
        let trough = (1..m)
            .step_by(stride)
            .map(|j| self.at(j))
            .fold(f64::INFINITY, f64::min);
        r - trough >= PROMINENCE
    }

    /// r(lag) (0 beyond the series).
    fn at(&self, lag: usize) -> f64 {
        let n = self.z.len();
        if lag >= n {
            return 0.0;
        }
        let (a, b) = (&self.z[..n - lag], &self.z[lag..]);
        // Four sums, so the loop vectorises.
        let mut acc = [0.0f64; 4];
        let chunks = a.len() / 4;
        for c in 0..chunks {
            for k in 0..4 {
                acc[k] += a[4 * c + k] * b[4 * c + k];
            }
        }
        let mut sum = acc[0] + acc[1] + acc[2] + acc[3];
        for i in 4 * chunks..a.len() {
            sum += a[i] * b[i];
        }
        sum / self.denom
    }
}

/// The bounds are a 95% prediction interval (the manifest's `level`).
pub const Z95: f64 = 1.959_963_984_540_054;
/// The largest `season_length` accepted: two seasons must fit in the longest history.
pub const MAX_SEASON_LENGTH: u64 = 10_080;

/// `season_length`: a number of steps, or found from the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeasonLength {
    #[default]
    Auto,
    Fixed(u64),
}

impl<'de> serde::Deserialize<'de> for SeasonLength {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SeasonLength;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number of steps from 1 (1: no season) or \"auto\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SeasonLength, E> {
                Ok(SeasonLength::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SeasonLength, E> {
                u64::try_from(v)
                    .map(SeasonLength::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SeasonLength, E> {
                if v.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&v) {
                    Ok(SeasonLength::Fixed(v as u64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SeasonLength, E> {
                if v == "auto" {
                    Ok(SeasonLength::Auto)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// A small deterministic generator (xorshift) with roughly normal draws.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        pub(crate) fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
        }
    }

    fn cycle(n: usize, period: f64, amp: f64, noise: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|t| {
                100.0
                    + 0.05 * t as f64
                    + amp * (2.0 * PI * t as f64 / period).sin()
                    + noise * rng.normal()
            })
            .collect()
    }

    #[test]
    fn finds_a_day_in_hourly_data() {
        assert_eq!(detect(&cycle(672, 24.0, 20.0, 5.0, 1), HOUR_MS), 24);
        // Too short for two days: no season.
        assert_eq!(detect(&cycle(40, 24.0, 20.0, 5.0, 1), HOUR_MS), 1);
    }

    #[test]
    fn finds_a_week_in_hourly_data_with_weekends() {
        let mut rng = Rng::new(7);
        let y: Vec<f64> = (0..672)
            .map(|t| {
                let day = (t / 24) % 7;
                let weekend = if day >= 5 { 0.4 } else { 1.0 };
                weekend * (100.0 + 50.0 * (2.0 * PI * t as f64 / 24.0).sin()) + 3.0 * rng.normal()
            })
            .collect();
        assert_eq!(detect(&y, HOUR_MS), 168);
    }

    #[test]
    fn finds_a_week_in_daily_data() {
        let mut rng = Rng::new(3);
        let y: Vec<f64> = (0..120)
            .map(|t| {
                let weekend = if t % 7 >= 5 { 40.0 } else { 100.0 };
                weekend + 0.2 * t as f64 + 5.0 * rng.normal()
            })
            .collect();
        assert_eq!(detect(&y, DAY_MS), 7);
    }

    #[test]
    fn finds_any_rhythm() {
        // 12 and 4 at a step with no calendar rhythm of its own.
        assert_eq!(detect(&cycle(300, 12.0, 10.0, 2.0, 5), 1_000), 12);
        assert_eq!(detect(&cycle(200, 4.0, 10.0, 2.0, 6), 1_000), 4);
        // ... and at an hourly step with no daily cycle.
        assert_eq!(detect(&cycle(500, 12.0, 10.0, 2.0, 9), HOUR_MS), 12);
    }

    #[test]
    fn finds_nothing_in_noise_walks_and_lines() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let noise: Vec<f64> = (0..500).map(|_| rng.normal()).collect();
            assert_eq!(detect(&noise, HOUR_MS), 1, "noise, seed {seed}");
            let mut walk = vec![0.0];
            for _ in 1..500 {
                let v = walk.last().unwrap() + rng.normal();
                walk.push(v);
            }
            assert_eq!(detect(&walk, HOUR_MS), 1, "random walk, seed {seed}");
        }
        let line: Vec<f64> = (0..500).map(|t| 3.0 * t as f64).collect();
        assert_eq!(detect(&line, HOUR_MS), 1);
        assert_eq!(detect(&[0.0; 100], HOUR_MS), 1);
    }
}
