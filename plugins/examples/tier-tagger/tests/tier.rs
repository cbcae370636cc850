use hub_plugin_sdk::testing::TestHost;
use serde_json::json;

#[test]
fn tags_premium_models() {
    // Builds this crate for wasm32-wasip2 and loads it in the hub's own runtime (same limits, same
    // checks, same patch validation).
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({"premium": ["gpt-4o"]})).unwrap();
    let out = host
        .enrich_json(r#"[{"model": "gpt-4o", "input_tokens": 10}, {"model": "gpt-4o-mini"}]"#)
        .unwrap();
    let tier = |i: usize| {
        serde_json::from_str::<serde_json::Value>(&out.events[i].tags_json).unwrap()["tier"].clone()
    };
    assert_eq!(tier(0), "premium");
    assert_eq!(tier(1), "standard");
}
