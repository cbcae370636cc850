//! `seasonal-naive`: the cheap baseline forecaster. Each step ahead is the value one season
//! earlier (the last full season, repeated); without a season, the last value.
//!
//! The band is the 95% interval of the seasonal random walk: with σ the root mean square of the
//! seasonal differences e_t = y_t - y_{t-m} (observed points only), step k's bounds are
//! mean ± 1.96 σ sqrt(ceil(k / m)). See README.md for the rules on seasons and short histories.

use hub_plugin_sdk::stats::season::{MAX_SEASON_LENGTH, SeasonLength, Z95};
use hub_plugin_sdk::stats::{prep, season};
use hub_plugin_sdk::{Error, Forecast, Forecaster, Series};
use serde::Deserialize;

/// The tenant's configuration (see plugin.toml's schema and README.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub season_length: SeasonLength,
}

/// The forecaster.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    season: SeasonLength,
}

/// One series' forecast, before it becomes a [`Forecast`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub mean: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// The season length used (1: the naive forecast).
    pub season: usize,
}

impl SeasonalNaive {
    pub fn from_config(config: Config) -> Result<SeasonalNaive, Error> {
        if let SeasonLength::Fixed(m) = config.season_length
            && !(1..=MAX_SEASON_LENGTH).contains(&m)
        {
            return Err(Error::bad_config(format!(
                "season_length: must be a whole number from 1 to {MAX_SEASON_LENGTH} (1: no season) or \"auto\", got {m}"
            )));
        }
        Ok(SeasonalNaive {
            season: config.season_length,
        })
    }

    /// The forecast of one series: `values` at `step_ms`, with `len` timestamps (values past
    /// the last one count as missing), for `horizon` steps after the last timestamp. `None`
    /// when the series has no finite value.
    pub fn predict(
        &self,
        values: &[f64],
        len: usize,
        step_ms: u32,
        horizon: usize,
    ) -> Option<Prediction> {
        let p = prep::prepare(values, len)?;
        let y = &p.y;
        let n = y.len();
        let wanted = match self.season {
            SeasonLength::Fixed(m) => m as usize,
            SeasonLength::Auto => season::detect(y, step_ms),
        };
        // A season needs one full season to repeat and one more to measure the spread by.
        let m = if wanted >= 2 && n >= 2 * wanted {
            wanted
        } else {
            1
        };
        let sd = spread(y, &p.observed, m);
        let mut out = Prediction {
            mean: Vec::with_capacity(horizon),
            lower: Vec::with_capacity(horizon),
            upper: Vec::with_capacity(horizon),
            season: m,
        };
        for k in p.gap + 1..=p.gap + horizon {
            // The value m steps before step k's place, in the last full season.
            let mean = y[n - m + (k - 1) % m];
            // (Clamped to f64's range: the host refuses an answer with a non-finite number.)
            let width = (Z95 * sd * (k.div_ceil(m) as f64).sqrt()).min(f64::MAX);
            let (mut lo, mut mu, mut hi) = (
                (mean - width).max(f64::MIN),
                mean,
                (mean + width).min(f64::MAX),
            );
            if p.nonneg {
                mu = mu.max(0.0);
                lo = lo.max(0.0);
                hi = hi.max(mu);
            }
            out.mean.push(mu);
            out.lower.push(lo);
            out.upper.push(hi);
        }
        Some(out)
    }
}

/// σ: the root mean square of y_t - y_{t-m} over the pairs where both points were observed
/// (an interpolated point would make the spread look smaller than it is), or over all pairs
/// when no pair was observed twice. One point: its own size (nothing is known about the spread).
fn spread(y: &[f64], observed: &[bool], m: usize) -> f64 {
    let n = y.len();
    if n <= m {
        return y[n - 1].abs() / Z95;
    }
    let rms = |only_observed: bool| {
        let (mut sum, mut count) = (0.0, 0usize);
        for t in m..n {
            if !only_observed || (observed[t] && observed[t - m]) {
                sum += (y[t] - y[t - m]).powi(2);
                count += 1;
            }
        }
        (count > 0).then(|| (sum / count as f64).sqrt())
    };
    // (Differences near f64's limits square to infinity: then the largest difference stands in.)
    let largest = || {
        (m..n)
            .map(|t| (y[t] - y[t - m]).abs())
            .filter(|d| d.is_finite())
            .fold(0.0, f64::max)
    };
    match rms(true).or_else(|| rms(false)) {
        Some(sd) if sd.is_finite() => sd,
        Some(_) => largest(),
        None => 0.0,
    }
}

impl Forecaster for SeasonalNaive {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        SeasonalNaive::from_config(config)
    }

    fn forecast(&mut self, input: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error> {
        Ok(hub_plugin_sdk::forecast_each(input, horizon, |s| {
            let p = self.predict(&s.values, s.ts_ms.len(), s.step_ms, horizon as usize)?;
            Some((p.mean, p.lower, p.upper))
        }))
    }
}

hub_plugin_sdk::export_forecaster!(SeasonalNaive);

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const H: u32 = 3_600_000;

    fn naive(season_length: SeasonLength) -> SeasonalNaive {
        SeasonalNaive::from_config(Config { season_length }).unwrap()
    }

    fn series(values: Vec<f64>) -> Series {
        Series {
            key: vec![],
            metric: "requests".into(),
            step_ms: H,
            ts_ms: (0..values.len() as i64).map(|i| i * i64::from(H)).collect(),
            values,
        }
    }

    fn assert_valid(s: &Series, f: &Forecast, horizon: u32) {
        let h = horizon as usize;
        assert_eq!(
            (f.ts_ms.len(), f.mean.len(), f.lower.len(), f.upper.len()),
            (h, h, h, h)
        );
        let last = *s.ts_ms.last().unwrap();
        let nonneg = s.values.iter().filter(|v| v.is_finite()).all(|v| *v >= 0.0);
        for k in 0..h {
            assert_eq!(f.ts_ms[k], last + i64::from(s.step_ms) * (k as i64 + 1));
            let (lo, m, hi) = (f.lower[k], f.mean[k], f.upper[k]);
            assert!(lo.is_finite() && m.is_finite() && hi.is_finite());
            assert!(lo <= m && m <= hi, "{k}: {lo} {m} {hi}");
            assert!(!nonneg || lo >= 0.0);
        }
    }

    #[test]
    fn repeats_the_last_season_with_a_growing_band() {
        let mut rng = Rng::new(1);
        let y: Vec<f64> = (0..240)
            .map(|t| 100.0 + 30.0 * (2.0 * PI * t as f64 / 24.0).sin() + 2.0 * rng.normal())
            .collect();
        let p = naive(SeasonLength::Auto).predict(&y, 240, H, 48).unwrap();
        assert_eq!(p.season, 24);
        for k in 0..48 {
            assert_eq!(p.mean[k], y[216 + k % 24]);
        }
        // σ sqrt(1) for the first season, σ sqrt(2) for the second.
        let w = |k: usize| p.upper[k] - p.mean[k];
        assert!((w(0) - w(23)).abs() < 1e-9);
        assert!((w(24) / w(0) - 2f64.sqrt()).abs() < 1e-9);
        let sd = (24..240).map(|t| (y[t] - y[t - 24]).powi(2)).sum::<f64>() / 216.0;
        assert!((w(0) - Z95 * sd.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn without_a_season_it_is_the_naive_forecast() {
        let y = vec![1.0, 3.0, 2.0, 5.0];
        let p = naive(SeasonLength::Fixed(1)).predict(&y, 4, H, 3).unwrap();
        assert_eq!(p.mean, vec![5.0; 3]);
        let sd = ((4.0 + 1.0 + 9.0) / 3.0f64).sqrt();
        assert!((p.upper[2] - 5.0 - Z95 * sd * 3f64.sqrt()).abs() < 1e-9);
        // A season longer than half the history is not used.
        let p = naive(SeasonLength::Fixed(3)).predict(&y, 4, H, 3).unwrap();
        assert_eq!(p.season, 1);
    }

    #[test]
    fn odd_histories_give_valid_forecasts() {
        let nan = f64::NAN;
        let mut gappy: Vec<f64> = (0..300).map(|t| 10.0 + (t % 24) as f64).collect();
        for v in &mut gappy[50..80] {
            *v = nan;
        }
        for v in &mut gappy[295..] {
            *v = nan;
        }
        let cases: Vec<Vec<f64>> = vec![
            gappy,
            vec![7.0],
            vec![nan, 3.0, nan],
            vec![3.0, 5.0],
            vec![0.0; 300],
            vec![2.5; 40],
            (0..100).map(|t| (t as f64 * 0.3).sin() - 0.5).collect(),
            (0..100)
                .map(|t| if t % 2 == 0 { 1e300 } else { -1e300 })
                .collect(),
            (0..100).map(|t| 1e300 * (1.0 + (t % 24) as f64)).collect(),
        ];
        for values in cases {
            let s = series(values);
            for horizon in [1, 48, 1000] {
                let out = naive(SeasonLength::Auto)
                    .forecast(std::slice::from_ref(&s), horizon)
                    .unwrap();
                assert_eq!(out.len(), 1);
                assert_valid(&s, &out[0], horizon);
            }
        }
        let out = naive(SeasonLength::Auto)
            .forecast(&[series(vec![nan; 5]), series(vec![1.0; 5])], 2)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].series, 1);
    }

    #[test]
    fn a_trailing_gap_keeps_the_phase() {
        let mut y: Vec<f64> = (0..96).map(|t| (t % 24) as f64).collect();
        for v in &mut y[90..] {
            *v = f64::NAN;
        }
        let p = naive(SeasonLength::Fixed(24))
            .predict(&y, 96, H, 30)
            .unwrap();
        let want: Vec<f64> = (96..126).map(|t| (t % 24) as f64).collect();
        assert_eq!(p.mean, want);
    }

    #[test]
    fn configuration_is_checked() {
        let parse = |json: &str| {
            hub_plugin_sdk::parse_config::<Config>(json).and_then(SeasonalNaive::from_config)
        };
        assert!(parse("{}").is_ok());
        assert!(parse(r#"{"season_length": 168}"#).is_ok());
        assert!(parse(r#"{"season_length": "auto"}"#).is_ok());
        for json in [
            r#"{"season_length": 0}"#,
            r#"{"season_length": -3}"#,
            r#"{"season_length": "weekly"}"#,
            r#"{"model": "ZZZ"}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    /// A small deterministic generator (xorshift) with roughly normal draws.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
        }
    }
}
