//! The forecaster world end to end: a real component, run by the hub's runtime.

use hub_plugin_sdk::testing::{Series, TestHost};
use serde_json::json;

#[test]
fn extends_a_trend_with_a_band() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"width": 2.0})).unwrap();
    let s = Series {
        key: vec![],
        metric: "cost_usd".into(),
        step_ms: 3_600_000,
        ts_ms: (0..24).map(|i| i * 3_600_000).collect(),
        values: (0..24)
            .map(|i| 10.0 + 2.0 * i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect(),
    };
    let f = host.forecast(&[s], 3).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].ts_ms,
        vec![24 * 3_600_000, 25 * 3_600_000, 26 * 3_600_000]
    );
    assert!((f[0].mean[0] - 58.0).abs() < 0.1, "{:?}", f[0].mean);
    assert!(f[0].lower[0] < f[0].mean[0] && f[0].mean[0] < f[0].upper[0]);
}
