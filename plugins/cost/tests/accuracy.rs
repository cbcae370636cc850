//! The price table against its source: every case of `data/accuracy-cases.tsv` (each priced model
//! on each host, plain, with cache reads and writes, reasoning, above the price tier and through the
//! batch API) priced by litellm's own cost function (plugins/tools/cost-cases.py) must come out
//! within a cent per million tokens.

const CASES: &str = include_str!("../data/accuracy-cases.tsv");

#[test]
fn every_case_matches_the_source_catalog_within_a_cent_per_million_tokens() {
    let prices = cost::Prices::bundled().unwrap();
    let (mut checked, mut kinds) = (0, std::collections::BTreeMap::<&str, usize>::new());
    let mut wrong = Vec::new();
    for line in CASES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| f[i].parse::<i64>().unwrap();
        let (model, host, case) = (f[0], f[1], f[2]);
        let usage = cost::Usage {
            input: n(3),
            output: n(4),
            cache_read: n(5),
            cache_write: n(6),
            reasoning: n(7),
            batch: f[8] == "1",
            ..Default::default()
        };
        let want: f64 = f[9].parse().unwrap();
        checked += 1;
        *kinds.entry(case).or_default() += 1;
        let Some(rows) = prices.rows(model, Some(host)) else {
            wrong.push(format!("{model} ({host}): no price"));
            continue;
        };
        let got = rows.last().unwrap().cost(&usage);
        let tokens = (usage.input + usage.output) as f64;
        if (got - want).abs() > 0.01 * tokens / 1e6 {
            wrong.push(format!(
                "{model} ({host}) {case}: {got:.9} vs {want:.9} ({} per M tokens)",
                (got - want) / tokens * 1e6
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        checked,
        wrong.join("\n")
    );
    assert!(checked > 1_000, "{checked} cases");
    for kind in [
        "plain",
        "cache-read",
        "cache-write",
        "reasoning",
        "above-tier",
        "batch",
    ] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) >= 20,
            "{kind}: {kinds:?}"
        );
    }
}
