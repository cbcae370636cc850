//! The forecaster world end to end: the real component, run by the hub's runtime.

use hub_plugin_sdk::testing::{Series, TestHost};
use serde_json::json;

const HOUR: i64 = 3_600_000;

fn hourly(metric: &str, values: Vec<f64>) -> Series {
    Series {
        key: vec![("model".into(), "gpt-4o".into())],
        metric: metric.into(),
        step_ms: HOUR as u32,
        ts_ms: (0..values.len() as i64)
            .map(|i| 1_700_000_000_000 + i * HOUR)
            .collect(),
        values,
    }
}

/// Four weeks of hourly requests with a daily cycle and a little noise.
fn traffic() -> Vec<f64> {
    (0..672)
        .map(|t| {
            let daily = 1.0 + 0.6 * (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
            let wobble = ((t * 7919) % 13) as f64 / 13.0 - 0.5;
            (300.0 * daily * (1.0 + 0.05 * wobble)).round()
        })
        .collect()
}

#[test]
fn forecasts_a_daily_cycle_with_a_band() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"season_length": "auto", "model": "ZZZ"}))
        .unwrap();
    let y = traffic();
    let s = hourly("requests", y.clone());
    let last = *s.ts_ms.last().unwrap();
    let f = host.forecast(&[s], 48).unwrap();
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.ts_ms.len(), 48);
    assert_eq!(f.ts_ms[0], last + HOUR);
    assert_eq!(f.ts_ms[47], last + 48 * HOUR);
    for k in 0..48 {
        // A day later, the same hour: within 10% of the last day's value.
        let same_hour = y[672 - 24 + k % 24];
        assert!(
            (f.mean[k] - same_hour).abs() < 0.1 * same_hour + 5.0,
            "{k}: {} vs {same_hour}",
            f.mean[k]
        );
        assert!(f.lower[k] < f.mean[k] && f.mean[k] < f.upper[k]);
        assert!(f.lower[k] >= 0.0);
    }
}

#[test]
fn every_series_gets_a_valid_forecast_or_none() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({})).unwrap();
    let nan = f64::NAN;
    let mut gappy = traffic();
    for v in &mut gappy[200..260] {
        *v = nan;
    }
    for v in &mut gappy[660..] {
        *v = nan;
    }
    let input = vec![
        hourly("requests", traffic()),
        hourly("latency_p95_ms", gappy),
        hourly("requests", vec![0.0; 672]),
        hourly("cost_usd", vec![4.2]),
        hourly("cost_usd", vec![1.0, 3.0]),
        hourly("latency_p95_ms", vec![nan; 24]),
        hourly(
            "requests",
            (0..2160)
                .map(|t| (t % 24) as f64 + (t / 24) as f64)
                .collect(),
        ),
    ];
    // The host refuses the whole answer if any forecast is malformed: an Ok is the check.
    let f = host.forecast(&input, 48).unwrap();
    let forecast: Vec<u32> = f.iter().map(|f| f.series).collect();
    assert_eq!(
        forecast,
        vec![0, 1, 2, 3, 4, 6],
        "only the all-missing series is left out"
    );
    for f in &f {
        assert!(f.lower.iter().all(|v| *v >= 0.0), "series {}", f.series);
    }
    let zero = &f[2];
    assert!(zero.mean.iter().chain(&zero.upper).all(|v| *v == 0.0));
}

#[test]
fn refuses_a_bad_configuration() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    // The schema catches the shape...
    let e = host.configure(json!({"model": "AMN"})).unwrap_err();
    assert!(e.to_string().contains("model"), "{e}");
    // ... the plugin what the schema cannot say.
    let e = host.configure(json!({"model": "AAM"})).unwrap_err();
    assert!(format!("{e:#}").contains("multiplicative season"), "{e:#}");
    let e = host
        .configure(json!({"model": "ANN", "damped": true}))
        .unwrap_err();
    assert!(format!("{e:#}").contains("damped"), "{e:#}");
}
