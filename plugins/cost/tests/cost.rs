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
fn the_price_table_covers_the_current_models_of_every_provider_and_host() {
    let t = cost::Prices::bundled().unwrap();
    assert!(t.len() > 400, "{} models", t.len());
    for (model, provider, host) in [
        ("gpt-4o", None, "openai"),
        ("gpt-5", None, "openai"),
        ("claude-sonnet-4-5", None, "anthropic"),
        ("gemini-2.5-pro", None, "gemini"),
        ("mistral-large-latest", None, "mistral"),
        ("llama-3.3-70b-instruct-turbo", None, "together_ai"),
        ("command-a-03-2025", None, "cohere"),
        ("deepseek-chat", None, "deepseek"),
        // The three the issue found unpriced: Vertex AI, a Bedrock inference profile, Groq.
        ("gemini-2.0-flash", Some("vertex_ai"), "vertex_ai"),
        ("us.meta.llama3-3-70b-instruct-v1:0", None, "bedrock"),
        ("openai/gpt-oss-120b", Some("groq"), "groq"),
        ("groq/openai/gpt-oss-120b", None, "groq"),
        ("azure/gpt-4o", None, "azure"),
        ("gpt-4o", Some("azure"), "azure"),
        ("text-embedding-3-small", Some("openai"), "openai"),
    ] {
        let rows = t
            .rows(model, provider)
            .unwrap_or_else(|| panic!("{model} missing"));
        let p = rows.last().unwrap();
        assert_eq!(p.host, host, "{model} {provider:?}");
        assert!(p.input > 0.0, "{model}");
        assert!(p.source.starts_with("litellm"), "{model}: {}", p.source);
        assert!(p.effective_from_ms > 0, "{model}: date");
    }
    let gpt4o = t.rows("gpt-4o", None).unwrap();
    assert!(gpt4o[0].cache_read.is_some() && gpt4o[0].batch.is_some());
    let gemini = t.rows("gemini-2.5-pro", None).unwrap();
    assert_eq!(gemini[0].tier.as_ref().map(|t| t.above), Some(200_000));
}

#[test]
fn each_part_of_a_call_is_priced_at_its_own_price() {
    let t = cost::Prices::bundled().unwrap();
    let price = |m: &str| t.rows(m, None).unwrap().pop().unwrap();
    let usage = |input, output| cost::Usage {
        input,
        output,
        ..Default::default()
    };
    // The issue's gpt-4o call: 81% of the input from the prompt cache, billed at half price.
    let gpt4o = price("gpt-4o");
    let cached = cost::Usage {
        cache_read: 8_100,
        ..usage(10_000, 500)
    };
    let want = 1_900.0 * 2.5e-6 + 8_100.0 * 1.25e-6 + 500.0 * 10e-6;
    assert!(close(gpt4o.cost(&cached), want), "{}", gpt4o.cost(&cached));
    assert!(
        gpt4o.cost(&usage(10_000, 500)) / want > 1.4,
        "pricing it as plain input overcharges"
    );
    // Anthropic: reads at a tenth, writes at 1.25×.
    let sonnet = price("claude-sonnet-4-5");
    let u = cost::Usage {
        cache_read: 300,
        cache_write: 50,
        ..usage(1_350, 100)
    };
    assert!(close(
        sonnet.cost(&u),
        1_000.0 * 3e-6 + 300.0 * 0.3e-6 + 50.0 * 3.75e-6 + 100.0 * 15e-6
    ));
    // Gemini 2.5 Pro above 200k prompt tokens: every token at the higher tier.
    let pro = price("gemini-2.5-pro");
    assert!(close(
        pro.cost(&usage(250_000, 1_000)),
        250_000.0 * 2.5e-6 + 1_000.0 * 15e-6
    ));
    assert!(close(
        pro.cost(&usage(200_000, 1_000)),
        200_000.0 * 1.25e-6 + 1_000.0 * 10e-6
    ));
    // The batch API: half of everything.
    let batch = cost::Usage {
        batch: true,
        ..usage(10_000, 500)
    };
    assert!(close(
        gpt4o.cost(&batch),
        gpt4o.cost(&usage(10_000, 500)) / 2.0
    ));
}

#[test]
fn an_event_is_priced_at_the_price_of_its_own_time() {
    let old = "gpt-x\topenai\topenai\t1\t2\t\t\t\t\t\t\t\t\t\t\t\t\t2026-01-01\tt";
    let new = "gpt-x\topenai\topenai\t3\t4\t\t\t\t\t\t\t\t\t\t\t\t\t2026-06-01\tt";
    let t = cost::Prices::parse(&format!("{new}\n{old}\n")).unwrap();
    let rows = t.rows("gpt-x", None).unwrap();
    let at = |date: &str| {
        cost::prices::at_time(&rows, cost::prices::date_ms(date).unwrap())
            .unwrap()
            .input
            * 1e6
    };
    assert_eq!(at("2026-03-01"), 1.0);
    assert_eq!(at("2026-06-01"), 3.0, "from its first day");
    assert_eq!(at("2027-01-01"), 3.0);
    assert_eq!(
        at("2025-01-01"),
        1.0,
        "before any date: the oldest price known"
    );
    let bad = cost::Prices::parse(
        "gpt-x\topenai\topenai\t-1\t2\t\t\t\t\t\t\t\t\t\t\t\t\t2026-01-01\tt\n",
    );
    assert!(
        bad.err()
            .unwrap()
            .contains("line 1: input: '-1' is not a price")
    );
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
fn cached_and_reasoning_tokens_and_the_service_tier_cross_the_batch_and_are_priced_apart() {
    let mut host = host();
    let out = host
        .enrich_json(
            r#"[
            {"model": "gpt-4o", "usage": {"prompt_tokens": 10000, "completion_tokens": 500,
              "prompt_tokens_details": {"cached_tokens": 8100}}},
            {"model": "o3", "usage": {"input_tokens": 1000, "output_tokens": 1000,
              "output_tokens_details": {"reasoning_tokens": 600}}},
            {"model": "gemini-2.5-pro", "input_tokens": 250000, "output_tokens": 1000},
            {"model": "gpt-4o", "input_tokens": 10000, "output_tokens": 500, "service_tier": "batch"}
        ]"#,
        )
        .unwrap();
    let c: Vec<f64> = out.events.iter().map(|e| e.cost_usd.unwrap()).collect();
    // The issue's call: 81% of the input from the cache, at half the input price.
    assert!(
        close(c[0], 1_900.0 * 2.5e-6 + 8_100.0 * 1.25e-6 + 500.0 * 10e-6),
        "{c:?}"
    );
    // o3 has no separate reasoning price: reasoning is output.
    assert!(close(c[1], 1_000.0 * 2e-6 + 1_000.0 * 8e-6), "{c:?}");
    // Above 200k prompt tokens Gemini 2.5 Pro costs twice as much per input token.
    assert!(close(c[2], 250_000.0 * 2.5e-6 + 1_000.0 * 15e-6), "{c:?}");
    // Through the batch API: gpt-4o's batch prices, half the usual.
    assert!(close(c[3], 10_000.0 * 1.25e-6 + 500.0 * 5e-6), "{c:?}");
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
