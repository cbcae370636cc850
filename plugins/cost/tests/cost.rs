//! The cost plugin, built for wasm32-wasip2 and run in the hub's own runtime.

use hub_plugin_sdk::testing::TestHost;
use serde_json::json;

fn host() -> TestHost {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).expect("build and load cost");
    host.configure(json!({})).unwrap();
    host
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12_f64.max(b.abs() * 1e-9)
}

#[test]
fn the_price_table_covers_the_current_models_of_every_provider() {
    let t = cost::price_table().unwrap();
    assert!(t.len() > 200, "{} models", t.len());
    for (model, provider) in [
        ("gpt-4o", "openai"),
        ("gpt-5", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-pro", "google"),
        ("mistral-large-latest", "mistral"),
        ("llama-3.3-70b-instruct-turbo", "meta"),
        ("command-a-03-2025", "cohere"),
        ("deepseek-chat", "deepseek"),
    ] {
        let p = t.get(model).unwrap_or_else(|| panic!("{model} missing"));
        assert_eq!(p.provider, provider, "{model}");
        assert!(p.input > 0.0 && p.output > 0.0, "{model}");
        assert!(p.source.starts_with("litellm"), "{model}: {}", p.source);
        assert_eq!(p.taken.len(), 10, "{model}: date");
    }
    assert!(t.get("gpt-4o").unwrap().cached_input.is_some());
}

#[test]
fn fills_cost_for_dated_and_aliased_names_and_keeps_sent_costs() {
    let mut host = host();
    let out = host
        .enrich_json(
            r#"[
            {"model": "gpt-4o-2024-08-06", "provider": "openai", "input_tokens": 1000000, "output_tokens": 1000000},
            {"model": "claude-sonnet-4-20250514", "input_tokens": 1000, "output_tokens": 500},
            {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 10, "cost_usd": 7.0},
            {"model": "no-such-model", "input_tokens": 10, "output_tokens": 10},
            {"model": "gpt-4o"}
        ]"#,
        )
        .unwrap();
    let c: Vec<Option<f64>> = out.events.iter().map(|e| e.cost_usd).collect();
    // gpt-4o-2024-08-06: $2.50 in + $10 out per million
    assert!(close(c[0].unwrap(), 12.5), "{c:?}");
    // claude-sonnet-4: $3 in + $15 out per million
    assert!(close(c[1].unwrap(), 1000.0 * 3e-6 + 500.0 * 15e-6), "{c:?}");
    assert_eq!(c[2], Some(7.0), "a sent cost is kept and counts");
    let e: Vec<Option<f64>> = out.events.iter().map(|e| e.estimated_cost_usd).collect();
    assert!(
        close(e[2].unwrap(), 10.0 * 2.5e-6 + 10.0 * 10e-6),
        "beside it, the estimate: {e:?}"
    );
    assert_eq!(
        (e[0], e[1]),
        (c[0], c[1]),
        "where nothing was sent the estimate counts"
    );
    assert_eq!(c[3], None, "unknown model");
    assert_eq!(c[4], None, "no tokens");
    assert!(
        out.events[3].is_unpriced(),
        "an unknown model is unpriced, not free"
    );
    assert!(!out.events[4].is_unpriced(), "nothing to price");
    assert_eq!(out.answer.patches.len(), 3);
}

#[test]
fn tenant_discounts_custom_models_and_overrides() {
    let mut host = host();
    host.configure(json!({
        "discounts": [{"provider": "openai", "model_prefix": "gpt-4o", "percent": 20}],
        "models": [
            {"model": "acme-llm", "input_usd_per_million": 1.0, "output_usd_per_million": 2.0},
            {"model": "claude-sonnet-4", "input_usd_per_million": 2.0, "output_usd_per_million": 10.0}
        ]
    }))
    .unwrap();
    let out = host
        .enrich_json(
            r#"[
            {"model": "gpt-4o", "input_tokens": 1000000, "output_tokens": 0},
            {"model": "acme-llm", "input_tokens": 1000000, "output_tokens": 1000000},
            {"model": "claude-sonnet-4-20250514", "input_tokens": 1000000, "output_tokens": 0},
            {"model": "gpt-4.1", "input_tokens": 1000000, "output_tokens": 0}
        ]"#,
        )
        .unwrap();
    let c: Vec<f64> = out.events.iter().map(|e| e.cost_usd.unwrap()).collect();
    assert!(close(c[0], 2.0), "20% off $2.50: {c:?}");
    assert!(close(c[1], 3.0), "{c:?}");
    assert!(close(c[2], 2.0), "override: {c:?}");
    assert!(close(c[3], 2.0), "no discount for gpt-4.1: {c:?}");
}

#[test]
fn bad_configuration_names_the_field() {
    let mut host = host();
    let e = host
        .configure(json!({"discounts": [{"percent": 120}]}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/discounts/0/percent"), "{e}");
    let e = host
        .configure(json!({"discount": 5}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("discount"), "{e}");
}
