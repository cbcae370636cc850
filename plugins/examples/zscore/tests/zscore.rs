//! The detector world end to end: a real component, run by the hub's runtime.

use hub_plugin_sdk::testing::{Series, Severity, TestHost};
use serde_json::json;

fn series(values: Vec<f64>) -> Series {
    Series {
        key: vec![("model".into(), "gpt-4o".into())],
        metric: "latency_p95_ms".into(),
        step_ms: 60_000,
        ts_ms: (0..values.len() as i64).map(|i| i * 60_000).collect(),
        values,
    }
}

#[test]
fn flags_a_spike_and_not_the_noise() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"window": 30, "threshold": 3.0, "critical": 6.0}))
        .unwrap();
    let noise: Vec<f64> = (0..31).map(|i| 800.0 + ((i * 37) % 11) as f64).collect();
    let mut spike = noise.clone();
    *spike.last_mut().unwrap() = 2000.0;
    let found = host.detect(&[series(noise), series(spike)]).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!((a.series, a.ts_ms, a.value), (1, 30 * 60_000, 2000.0));
    assert_eq!(a.severity, Severity::Critical);
    assert!(a.reason.starts_with("latency_p95_ms is"), "{}", a.reason);
}

#[test]
fn inconsistent_configuration_is_refused_by_the_plugin() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    let e = host
        .configure(json!({"threshold": 4.0, "critical": 2.0}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("critical: must be at least threshold"), "{e}");
}

#[test]
fn steps_without_a_value_are_not_points() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"window": 10, "check_last": 5}))
        .unwrap();
    // A latency series with quiet minutes (NaN: no requests, so no latency) and a spike.
    let mut values: Vec<f64> = (0..20)
        .map(|i| {
            if i % 3 == 0 {
                f64::NAN
            } else {
                800.0 + (i % 4) as f64
            }
        })
        .collect();
    values[17] = 2_000.0;
    let found = host.detect(&[series(values)]).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].ts_ms, 17 * 60_000);
    assert!(found.iter().all(|a| a.score.is_finite()));
}
