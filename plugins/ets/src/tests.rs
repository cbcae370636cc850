//! Native unit tests of the whole forecaster (the component is tested in tests/forecast.rs).

use super::*;
use crate::ets::{ErrorType, Trend};
use std::f64::consts::PI;

const H: u32 = 3_600_000;

fn ets() -> Ets {
    Ets::from_config(Config::default()).unwrap()
}

fn series(values: Vec<f64>, step_ms: u32) -> Series {
    Series {
        key: vec![],
        metric: "requests".into(),
        step_ms,
        ts_ms: (0..values.len() as i64)
            .map(|i| i * i64::from(step_ms))
            .collect(),
        values,
    }
}

/// What the host checks (host/runtime/src/findings.rs), and non-negativity for counts.
fn assert_valid(s: &Series, f: &Forecast, horizon: u32) {
    let h = horizon as usize;
    assert_eq!(
        (f.ts_ms.len(), f.mean.len(), f.lower.len(), f.upper.len()),
        (h, h, h, h)
    );
    let last = *s.ts_ms.last().unwrap();
    for k in 0..h {
        assert_eq!(f.ts_ms[k], last + i64::from(s.step_ms) * (k as i64 + 1));
        let (lo, m, hi) = (f.lower[k], f.mean[k], f.upper[k]);
        assert!(
            lo.is_finite() && m.is_finite() && hi.is_finite(),
            "{k}: {lo} {m} {hi}"
        );
        assert!(lo <= m && m <= hi, "{k}: {lo} {m} {hi}");
        if s.values.iter().filter(|v| v.is_finite()).all(|v| *v >= 0.0) {
            assert!(lo >= 0.0, "{k}: a count's lower bound {lo} < 0");
        }
    }
}

fn forecast_one(values: Vec<f64>, horizon: u32) -> Forecast {
    let s = series(values, H);
    let mut out = ets().forecast(std::slice::from_ref(&s), horizon).unwrap();
    assert_eq!(out.len(), 1, "the series was left out");
    let f = out.remove(0);
    assert_valid(&s, &f, horizon);
    f
}

/// Hourly traffic: a daily cycle (multiplicative), optional trend, noise.
fn traffic(n: usize, trend: f64, noise: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|t| {
            let hour = (t % 24) as f64;
            let daily = 1.0 + 0.6 * (2.0 * PI * (hour - 8.0) / 24.0).sin();
            ((200.0 + trend * t as f64) * daily * (1.0 + noise * rng.normal())).max(0.0)
        })
        .collect()
}

fn best(y: &[f64], m: usize) -> ets::Fit {
    ets::select(y, m, &Family::ALL).remove(0)
}

#[test]
fn chooses_a_seasonal_model_for_a_seasonal_series() {
    let y = traffic(672, 0.0, 0.05, 1);
    assert_eq!(season::detect(&y, H), 24);
    let fit = best(&y, 24);
    assert_ne!(fit.spec.season, Season::N, "{fit:?}");
    let p = ets().predict(&y, y.len(), H, 48).unwrap();
    assert_eq!(p.season, 24, "{}", p.method);
}

#[test]
fn chooses_a_trend_for_a_trend_and_nothing_for_noise() {
    let mut rng = Rng::new(2);
    let trend: Vec<f64> = (0..200)
        .map(|t| 10.0 + 0.5 * t as f64 + 0.5 * rng.normal())
        .collect();
    let fit = best(&trend, 1);
    assert_ne!(fit.spec.trend, Trend::N, "{fit:?}");

    let noise: Vec<f64> = (0..300).map(|_| 50.0 + 2.0 * rng.normal()).collect();
    let fit = best(&noise, 1);
    assert_eq!(
        (fit.spec.trend, fit.spec.season),
        (Trend::N, Season::N),
        "{fit:?}"
    );
    // And the level is the mean.
    let p = ets().predict(&noise, noise.len(), H, 5).unwrap();
    assert!((p.mean[0] - 50.0).abs() < 1.0, "{p:?}");
}

#[test]
fn extends_noiseless_lines_and_seasons_exactly() {
    let line: Vec<f64> = (0..100).map(|t| 5.0 + 2.0 * t as f64).collect();
    let f = forecast_one(line, 24);
    for (k, m) in f.mean.iter().enumerate() {
        let want = 5.0 + 2.0 * (100 + k) as f64;
        assert!((m - want).abs() < 1e-3 * want, "{k}: {m} vs {want}");
    }

    let wave = |t: usize| 100.0 + 30.0 * (2.0 * PI * t as f64 / 24.0).sin();
    let f = forecast_one((0..240).map(wave).collect(), 48);
    for (k, m) in f.mean.iter().enumerate() {
        let want = wave(240 + k);
        assert!((m - want).abs() < 1e-3 * want, "{k}: {m} vs {want}");
    }

    let growing =
        |t: usize| (50.0 + 0.5 * t as f64) * (1.0 + 0.5 * (2.0 * PI * t as f64 / 24.0).cos());
    let f = forecast_one((0..336).map(growing).collect(), 48);
    for (k, m) in f.mean.iter().enumerate() {
        let want = growing(336 + k);
        assert!((m - want).abs() < 0.02 * want + 0.5, "{k}: {m} vs {want}");
    }
}

#[test]
fn intervals_widen_with_the_horizon() {
    let mut rng = Rng::new(4);
    let mut y = vec![100.0];
    for _ in 1..300 {
        let v = y.last().unwrap() + rng.normal();
        y.push(v);
    }
    let f = forecast_one(y, 48);
    let width: Vec<f64> = (0..48).map(|k| f.upper[k] - f.lower[k]).collect();
    assert!(width[0] > 0.0);
    assert!(width.windows(2).all(|w| w[1] >= w[0] - 1e-9), "{width:?}");
    assert!(width[47] > 2.0 * width[0], "{width:?}");

    // A seasonal count: the band relative to the mean grows too.
    let f = forecast_one(traffic(672, 0.1, 0.1, 5), 48);
    let rel = |k: usize| (f.upper[k] - f.lower[k]) / f.mean[k];
    assert!(rel(47) > rel(0), "{} vs {}", rel(47), rel(0));
}

#[test]
fn odd_histories_give_valid_forecasts() {
    let nan = f64::NAN;
    let mut with_gaps = traffic(500, 0.0, 0.1, 6);
    for v in &mut with_gaps[100..130] {
        *v = nan;
    }
    with_gaps[0] = nan;
    for v in &mut with_gaps[490..] {
        *v = nan;
    }
    let cases: Vec<(&str, Vec<f64>)> = vec![
        ("nan runs", with_gaps),
        ("one point", vec![7.0]),
        ("one point among nans", vec![nan, nan, 3.0, nan]),
        ("two points", vec![3.0, 5.0]),
        ("three points", vec![3.0, 5.0, 4.0]),
        ("all zero", vec![0.0; 500]),
        ("constant", vec![12.5; 50]),
        (
            "mostly zero",
            (0..400)
                .map(|t| if t % 37 == 0 { 2.0 } else { 0.0 })
                .collect(),
        ),
        (
            "negative values",
            (0..100).map(|t| (t as f64 * 0.3).sin() - 0.2).collect(),
        ),
        (
            "tiny values",
            (0..200).map(|t| 1e-9 * (1.0 + (t % 24) as f64)).collect(),
        ),
        (
            "huge values",
            (0..200).map(|t| 1e12 * (1.0 + (t % 24) as f64)).collect(),
        ),
        (
            "a step",
            (0..300)
                .map(|t| if t < 250 { 10.0 } else { 1000.0 })
                .collect(),
        ),
        (
            "a spike",
            (0..300).map(|t| if t == 150 { 1e6 } else { 5.0 }).collect(),
        ),
    ];
    for (name, values) in cases {
        let s = series(values, H);
        for horizon in [1, 48, 1000] {
            let out = ets().forecast(std::slice::from_ref(&s), horizon).unwrap();
            assert_eq!(out.len(), 1, "{name}");
            assert_valid(&s, &out[0], horizon);
        }
    }
    // Nothing to go on: the series is left out, the others are not.
    let empty = series(vec![nan; 10], H);
    let ok = series(vec![1.0; 10], H);
    let out = ets().forecast(&[empty, ok], 3).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].series, 1);

    // Flat histories forecast themselves, with no spread.
    let f = forecast_one(vec![0.0; 500], 5);
    assert_eq!((f.mean[4], f.lower[4], f.upper[4]), (0.0, 0.0, 0.0));
    let f = forecast_one(vec![12.5; 50], 5);
    assert_eq!(f.mean, vec![12.5; 5]);
}

#[test]
fn a_trailing_gap_is_stepped_over() {
    // A clean daily wave with its last 5 hours missing: the forecast keeps the wave's phase.
    let wave = |t: usize| 100.0 + 30.0 * (2.0 * PI * t as f64 / 24.0).sin();
    let mut y: Vec<f64> = (0..240).map(wave).collect();
    for v in &mut y[235..] {
        *v = f64::NAN;
    }
    let f = forecast_one(y, 24);
    for (k, m) in f.mean.iter().enumerate() {
        let want = wave(240 + k);
        assert!((m - want).abs() < 1e-3 * want, "{k}: {m} vs {want}");
    }
}

#[test]
fn long_seasons_are_divided_out() {
    // Minutes over four days with a daily cycle: m = 1440 is past seasonal ETS.
    let n = 4 * 1440;
    let mut rng = Rng::new(8);
    let y: Vec<f64> = (0..n)
        .map(|t| {
            let d = 1.0 + 0.5 * (2.0 * PI * t as f64 / 1440.0).sin();
            50.0 * d * (1.0 + 0.05 * rng.normal())
        })
        .collect();
    let p = ets().predict(&y, n, season::MINUTE_MS, 60).unwrap();
    assert_eq!(p.season, 1440, "{}", p.method);
    assert!(p.method.contains("seasonal profile"), "{}", p.method);
    for (k, m) in p.mean.iter().enumerate() {
        let want = 50.0 * (1.0 + 0.5 * (2.0 * PI * (n + k) as f64 / 1440.0).sin());
        assert!((m - want).abs() < 0.1 * want, "{k}: {m} vs {want}");
    }
}

#[test]
fn configuration_is_checked() {
    let bad = |json: &str| match hub_plugin_sdk::parse_config::<Config>(json) {
        Err(e) => format!("{e:?}"),
        Ok(c) => match Ets::from_config(c) {
            Err(e) => format!("{e:?}"),
            Ok(_) => String::new(),
        },
    };
    assert_eq!(bad(r#"{}"#), "");
    assert_eq!(
        bad(r#"{"season_length": "auto", "model": "MAM", "damped": true}"#),
        ""
    );
    assert_eq!(bad(r#"{"season_length": 24, "model": "ZZN"}"#), "");
    for (json, says) in [
        (r#"{"season_length": 0}"#, "season_length"),
        (r#"{"season_length": "daily"}"#, "season_length"),
        (r#"{"season_length": 2.5}"#, "season_length"),
        (r#"{"model": "AAM"}"#, "model"),
        (r#"{"model": "AMN"}"#, "model"),
        (r#"{"model": "ZZ"}"#, "model"),
        (r#"{"model": "NNN"}"#, "model"),
        (r#"{"model": "ANA", "season_length": 1}"#, "model"),
        (r#"{"model": "ANN", "damped": true}"#, "damped"),
        (r#"{"window": 3}"#, "window"),
    ] {
        let e = bad(json);
        assert!(e.contains(says), "{json}: {e}");
    }
    // A restricted family is respected.
    let c: Config = hub_plugin_sdk::parse_config(r#"{"model": "ANN"}"#).unwrap();
    let p = Ets::from_config(c)
        .unwrap()
        .predict(&traffic(672, 0.2, 0.05, 9), 672, H, 4)
        .unwrap();
    assert!(p.method.starts_with("ETS(ANN"), "{}", p.method);
    let c: Config = hub_plugin_sdk::parse_config(r#"{"model": "ZZZ", "damped": true}"#).unwrap();
    let fam = Ets::from_config(c).unwrap().family;
    assert!(
        fam.candidates(true, true)
            .iter()
            .all(|s| s.trend == Trend::Ad)
    );
    assert!(
        fam.candidates(false, true)
            .iter()
            .all(|s| s.error == ErrorType::A)
    );
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
