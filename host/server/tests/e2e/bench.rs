//! Where the benchmarks are: a production build says so, a `bench` build runs them.

use super::*;

/// The production binary links no benchmark code, and `hub bench` there says how to get it.
#[cfg(not(feature = "bench"))]
#[test]
fn a_production_build_says_where_the_benchmarks_are() {
    let out = Command::new(HUB)
        .args(["bench", "ingest", "--key", "hub_x", "--duration", "1s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features bench"), "{err}");
}

/// With `--features bench` (scripts/test runs this once so), the README's load generator and
/// query benchmark run against a real hub, and what the load generator says it sent is stored.
#[cfg(feature = "bench")]
#[tokio::test]
async fn bench_ingest_and_query_run_against_a_hub() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();
    let bench = |args: &[&str]| {
        let out = Command::new(HUB)
            .arg("bench")
            .args(args)
            .args(["--url", &server.base, "--key", &key])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "hub bench {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let out = bench(&[
        "ingest",
        "--duration",
        "2s",
        "--concurrency",
        "2",
        "--batch",
        "100",
    ]);
    let figure = |name: &str| -> u64 {
        let line = out.lines().find(|l| l.trim_start().starts_with(name));
        let line = line.unwrap_or_else(|| panic!("no {name} in:\n{out}"));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let accepted = figure("events accepted");
    assert!(accepted >= 100, "{out}");
    assert_eq!(figure("requests failed"), 0, "{out}");
    assert!(
        out.contains("throughput") && out.contains("ack latency p99"),
        "{out}"
    );

    let client = reqwest::Client::new();
    let summary = get(&client, &server, &key, "/v1/metrics/summary?from=now-1h").await;
    assert_eq!(summary["groups"][0]["events"], accepted, "{summary}");

    let out = bench(&["query", "--requests", "3"]);
    assert!(out.contains("worst p99"), "{out}");
}

/// `hub bench detectors` on a short labeled set (two of each kind, one day evaluated) with the
/// built first-party detectors: it runs, prints its table, and the detectors meet the target.
#[cfg(feature = "bench")]
#[test]
fn bench_detectors_meets_its_target_on_a_short_set() {
    let dir = tempfile::tempdir().unwrap();
    let plugins =
        super::plugins::plugins_dir(dir.path(), &["robust-level", "change-point", "llm-signals"]);
    let out = Command::new(HUB)
        .args([
            "bench",
            "detectors",
            "--per-kind",
            "2",
            "--eval-days",
            "1",
            "--min-f1",
            "0.9",
        ])
        .arg("--plugins-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "spike",
        "level shift",
        "seasonality change",
        "cost per request",
        "error burst",
        "all",
    ] {
        assert!(text.lines().any(|l| l.starts_with(kind)), "{kind}: {text}");
    }
    eprintln!("{text}");
}

/// `hub bench forecasters` on a few series with the built first-party forecasters: it runs, and
/// ets forecasts better than the seasonal naive baseline (the library comparison is the
/// documented long run, scripts/bench-analysis).
#[cfg(feature = "bench")]
#[test]
fn bench_forecasters_beats_the_seasonal_naive_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = super::plugins::plugins_dir(dir.path(), &["ets", "seasonal-naive"]);
    let out = Command::new(HUB)
        .args([
            "bench",
            "forecasters",
            "--groups",
            "6",
            "--days",
            "30",
            "--check",
            "1.0",
        ])
        .arg("--plugins-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().any(|l| l.starts_with("ets ")), "{text}");
    eprintln!("{text}");
}

/// `hub bench analysis` at a small size (the sizes are the documented run): it seeds,
/// installs robust-level and ets, and times the series building, the calls and the whole
/// scheduled run of each, under a generous CPU bound.
#[cfg(feature = "bench")]
#[test]
fn bench_analysis_times_a_scheduled_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = super::plugins::plugins_dir(dir.path(), &["robust-level", "ets"]);
    let out = Command::new(HUB)
        .args([
            "bench",
            "analysis",
            "--series",
            "200",
            "--forecast-series",
            "20",
            "--days",
            "30",
            "--max-core-share",
            "0.5",
        ])
        .arg("--plugins-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("robust-level (detector): 200 series × 1440 points"),
        "{text}"
    );
    assert!(
        text.contains("ets (forecaster): 20 series × 720 points"),
        "{text}"
    );
    for part in [
        "series from the rollups",
        "the plugin's calls",
        "the whole scheduled run",
    ] {
        assert_eq!(text.matches(part).count(), 2, "{part}: {text}");
    }
    eprintln!("{text}");
}

/// `hub bench alerts` at a small size (10,000 rules and 1,000 alerts are the documented run):
/// rules over tenants evaluated twice, and a burst of notices delivered to the webhook, every
/// alert received, under a generous CPU bound.
#[cfg(feature = "bench")]
#[test]
fn bench_alerts_times_a_minute_of_rules_and_a_burst_of_notices() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = super::plugins::plugins_dir(dir.path(), &["webhook"]);
    let out = Command::new(HUB)
        .args([
            "bench",
            "alerts",
            "--rules",
            "300",
            "--tenants",
            "3",
            "--models",
            "10",
            "--fan-out",
            "150",
            "--max-core-share",
            "0.5",
        ])
        .arg("--plugins-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("evaluation: 300 rules over 3 tenants"),
        "{text}"
    );
    assert!(text.contains("the next minute's evaluation"), "{text}");
    assert!(
        text.contains("150 alerts received in 2 POSTs"),
        "one POST per 100 alerts: {text}"
    );
    eprintln!("{text}");
}
