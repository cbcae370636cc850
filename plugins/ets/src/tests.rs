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

/// Native speed of one series of 90 days of hours (run with
/// `cargo test --release -p ets -- --ignored --nocapture timing`).
#[test]
#[ignore]
fn timing() {
    let mut total = std::time::Duration::ZERO;
    let mut evals = 0;
    let runs = 20;
    for seed in 0..runs {
        let y = traffic(2160, 0.05, 0.08, seed);
        let t0 = std::time::Instant::now();
        let p = ets().predict(&y, y.len(), H, 48).unwrap();
        total += t0.elapsed();
        evals += ets::select(&y, 24, &Family::ALL)
            .iter()
            .map(|f| f.evals)
            .sum::<usize>();
        std::hint::black_box(p);
        if seed == 0 {
            for f in ets::select(&y, 24, &Family::ALL) {
                println!(
                    "  {:5} evals {:3} aicc {:.1}",
                    f.spec.name(),
                    f.evals,
                    f.aicc
                );
            }
        }
    }
    let y = traffic(2160, 0.05, 0.08, 0);
    let t0 = std::time::Instant::now();
    for _ in 0..20 {
        std::hint::black_box(season::detect(&y, H));
    }
    println!(
        "  season detection: {:.3} ms",
        t0.elapsed().as_secs_f64() * 1e3 / 20.0
    );
    println!(
        "ets: {:.2} ms per series of 2160 hourly points ({} likelihood evaluations per series)",
        total.as_secs_f64() * 1e3 / runs as f64,
        evals / runs as usize
    );
}

/// Test histories for the search: seasonal traffic, and series without a season.
fn search_cases() -> Vec<(Vec<f64>, usize)> {
    let mut cases = Vec::new();
    for seed in 0..8u64 {
        let y = traffic(
            672 + 24 * seed as usize,
            0.02 * seed as f64,
            0.04 + 0.01 * seed as f64,
            seed,
        );
        cases.push((y, 24));
    }
    for seed in 0..6u64 {
        let mut rng = Rng::new(100 + seed);
        let mut level = 100.0;
        let mut slope = 0.1 * seed as f64;
        let y: Vec<f64> = (0..500)
            .map(|_| {
                slope = 0.95 * slope + 0.02 * rng.normal();
                level += slope + 0.5 * seed as f64 * rng.normal();
                (level + 2.0 * rng.normal()).max(1.0)
            })
            .collect();
        cases.push((y, 1));
    }
    cases
}

/// How close a search gets to a thorough one (many starts, many evaluations), by model
/// (`cargo test --release -p ets -- --ignored --nocapture search_quality`).
#[test]
#[ignore]
fn search_quality() {
    let thorough = ets::Search {
        warm: false,
        alphas: [0.0; 3],
        restarts: 3,
        evals_base: 3000,
        evals_per_dim: 0,
        f_tol: 1e-6,
        x_tol: 1e-6,
        step: 0.1,
        sine: false,
    };
    let d = ets::Search::default();
    let variants: Vec<(&str, ets::Search)> = vec![
        ("default", d),
        (
            "no probes",
            ets::Search {
                alphas: [0.0; 3],
                ..d
            },
        ),
        ("no warm starts", ets::Search { warm: false, ..d }),
        (
            "box, not sin²",
            ets::Search {
                sine: false,
                step: 0.1,
                x_tol: 0.01,
                ..d
            },
        ),
        (
            "tight",
            ets::Search {
                f_tol: 0.01,
                x_tol: 0.001,
                restarts: 2,
                ..d
            },
        ),
        (
            "25/15",
            ets::Search {
                evals_base: 25,
                evals_per_dim: 15,
                ..d
            },
        ),
        (
            "20/15",
            ets::Search {
                evals_base: 20,
                evals_per_dim: 15,
                ..d
            },
        ),
    ];
    // The thorough optimum of each model: the best of many starts.
    let cases = search_cases();
    let mut reference = Vec::new();
    for (y, m) in &cases {
        let inits = ets::Inits::new(y, *m, true, true);
        let mut scratch = ets::Scratch::default();
        let mut best: std::collections::BTreeMap<String, f64> = Default::default();
        for spec in Family::ALL.candidates(true, *m > 1) {
            let mut starts = Vec::new();
            for a in [0.003, 0.05, 0.3, 0.7, 0.99] {
                for b in [0.05, 0.5] {
                    for g in [0.01, 0.3] {
                        starts.push([a, b, g, 0.5]);
                    }
                }
            }
            let mut v = f64::INFINITY;
            for c in &starts {
                if let Some(t) = ets::fit(
                    y,
                    *m,
                    spec,
                    &inits,
                    std::slice::from_ref(c),
                    &thorough,
                    &mut scratch,
                ) {
                    v = v.min(t.lik);
                }
            }
            best.insert(spec.name(), v);
        }
        reference.push(best);
    }
    for (label, search) in variants {
        let mut gaps: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        let mut evals = 0;
        let mut wrong_choice = 0;
        for ((y, m), best) in cases.iter().zip(&reference) {
            let fits = ets::select_with(y, *m, &Family::ALL, &search);
            evals += fits.iter().map(|f| f.evals).sum::<usize>();
            for f in &fits {
                gaps.entry(f.spec.name())
                    .or_default()
                    .push(f.lik - best[&f.spec.name()]);
            }
            // Would the thorough search have chosen another model?
            let aicc = |f: &ets::Fit| best[&f.spec.name()] + f.aicc - f.lik;
            let chosen = &fits[0];
            let ideal = fits
                .iter()
                .min_by(|a, b| aicc(a).total_cmp(&aicc(b)))
                .unwrap();
            if ideal.spec != chosen.spec && aicc(chosen) - aicc(ideal) > 2.0 {
                wrong_choice += 1;
            }
        }
        let all: Vec<f64> = gaps.values().flatten().copied().collect();
        let big = all.iter().filter(|g| **g > 2.0).count();
        println!(
            "{label:22} evals/series {:5}  mean gap {:7.2}  gaps > 2: {big:3}/{}  worse choice: {wrong_choice}",
            evals / cases.len(),
            all.iter().sum::<f64>() / all.len() as f64,
            all.len()
        );
        if std::env::var("SEARCH_DETAIL").is_ok() {
            for (name, g) in &gaps {
                let worst = g.iter().copied().fold(f64::MIN, f64::max);
                println!(
                    "   {name:5} mean {:8.3} worst {worst:8.3}",
                    g.iter().sum::<f64>() / g.len() as f64
                );
            }
        }
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
