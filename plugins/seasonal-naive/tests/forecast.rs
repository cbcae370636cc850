//! The forecaster world end to end: the real component, run by the hub's runtime.

use hub_plugin_sdk::testing::{Series, TestHost};
use serde_json::json;

const HOUR: i64 = 3_600_000;

fn hourly(metric: &str, values: Vec<f64>) -> Series {
    Series {
        key: vec![],
        metric: metric.into(),
        step_ms: HOUR as u32,
        ts_ms: (0..values.len() as i64)
            .map(|i| 1_700_000_000_000 + i * HOUR)
            .collect(),
        values,
    }
}

#[test]
fn repeats_yesterday() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"season_length": "auto"})).unwrap();
    let y: Vec<f64> = (0..672)
        .map(|t| {
            let daily = 1.0 + 0.6 * (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
            (300.0 * daily + ((t * 7919) % 13) as f64).round()
        })
        .collect();
    let s = hourly("requests", y.clone());
    let last = *s.ts_ms.last().unwrap();
    let f = host.forecast(&[s], 48).unwrap();
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.ts_ms[0], last + HOUR);
    for k in 0..48 {
        assert_eq!(f.mean[k], y[648 + k % 24]);
        assert!(f.lower[k] < f.mean[k] && f.mean[k] < f.upper[k]);
    }
    // The second day's band is sqrt(2) times the first's.
    let w = |k: usize| f.upper[k] - f.mean[k];
    assert!((w(30) / w(6) - 2f64.sqrt()).abs() < 1e-9);
}

#[test]
fn every_series_gets_a_valid_forecast_or_none() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"season_length": 24})).unwrap();
    let nan = f64::NAN;
    let mut gappy: Vec<f64> = (0..200).map(|t| 800.0 + (t % 24) as f64).collect();
    for v in &mut gappy[50..90] {
        *v = nan;
    }
    for v in &mut gappy[195..] {
        *v = nan;
    }
    let input = vec![
        hourly("latency_p95_ms", gappy),
        hourly("requests", vec![0.0; 100]),
        hourly("cost_usd", vec![0.5]),
        hourly("cost_usd", vec![nan; 10]),
        hourly("requests", vec![1.0, 4.0]),
    ];
    let f = host.forecast(&input, 48).unwrap();
    let forecast: Vec<u32> = f.iter().map(|f| f.series).collect();
    assert_eq!(forecast, vec![0, 1, 2, 4]);
    for f in &f {
        assert!(f.lower.iter().all(|v| *v >= 0.0));
    }
    let e = host.configure(json!({"season_length": 0})).unwrap_err();
    assert!(e.to_string().contains("season_length"), "{e}");
}
