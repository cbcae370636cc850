//! `hub bench forecasters`: the first-party forecasters' accuracy on synthetic hourly LLM traffic
//! (`synth`: a daily rhythm, quieter weekends, Poisson noise), run as the hub runs them (the built
//! components, all series in one call per forecaster), against each other and, when a Python with
//! statsforecast is given, against its AutoETS and SeasonalNaive on the same series in the same
//! run (`scripts/forecast-baseline.py`). The last `horizon` points of each series are held out;
//! sMAPE per horizon bucket, and MASE against the in-sample seasonal naive error.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use hub_plugin_sdk::stats::{prep, season};
use hub_runtime::{Grants, Runtime, RuntimeConfig, Series};

use super::synth::{self, Kind};

#[derive(Debug, Args)]
pub struct ForecasterBenchArgs {
    /// Built plugins, as laid out by scripts/build-plugins.
    #[arg(long, default_value = "dist/plugins")]
    plugins_dir: PathBuf,
    /// Groups (models); each gives a requests, a cost and a p95 latency series.
    #[arg(long, default_value_t = 40)]
    groups: usize,
    /// Days of hourly history before the held-out points.
    #[arg(long, default_value_t = 60)]
    days: usize,
    #[arg(long, default_value_t = 48)]
    horizon: usize,
    #[arg(long, default_value_t = 23)]
    seed: u64,
    /// Forecast origins, each 76 hours before the next (so that weekdays and weekends are both
    /// forecast); every method forecasts from each.
    #[arg(long, default_value_t = 3)]
    origins: usize,
    /// A Python with statsforecast (scripts/bench-forecasters makes one): its AutoETS and
    /// SeasonalNaive run on the same series.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Fail (exit 1) unless ets's sMAPE is below seasonal-naive's (and, with --python, at most
    /// this much above AutoETS's: 1.0 = not worse).
    #[arg(long)]
    check: Option<f64>,
}

const STEP_MS: i64 = 3_600_000;
const METRICS: [&str; 3] = ["requests", "cost_usd", "latency_p95_ms"];
const BUCKETS: [(usize, usize); 3] = [(1, 12), (13, 24), (25, 48)];
/// Hours between forecast origins: not a multiple of a day, so origins fall at other hours too.
const ORIGIN_STRIDE: usize = 76;

/// Symmetric MAPE in percent over the points both have (0/0 counts as exact).
fn smape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let terms: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .filter(|(a, f)| a.is_finite() && f.is_finite())
        .map(|(a, f)| {
            let d = a.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                200.0 * (a - f).abs() / d
            }
        })
        .collect();
    (!terms.is_empty()).then(|| terms.iter().sum::<f64>() / terms.len() as f64)
}

/// Mean absolute error over the in-sample seasonal naive error at `m`.
fn mase(actual: &[f64], forecast: &[f64], train: &[f64], m: usize) -> Option<f64> {
    let naive: Vec<f64> = (m..train.len())
        .map(|t| (train[t] - train[t - m]).abs())
        .filter(|x| x.is_finite())
        .collect();
    let scale = naive.iter().sum::<f64>() / naive.len().max(1) as f64;
    let errs: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .filter(|(a, f)| a.is_finite() && f.is_finite())
        .map(|(a, f)| (a - f).abs())
        .collect();
    (scale > 0.0 && !errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64 / scale)
}

/// Each method's means per series (`None` where it made no forecast).
struct Method {
    name: String,
    means: Vec<Option<Vec<f64>>>,
    seconds: f64,
}

fn component(
    runtime: &Runtime,
    dir: &std::path::Path,
    name: &str,
    train: &[Series],
    horizon: usize,
) -> Result<Method> {
    let (m, w) = super::built_plugin(dir, name)?;
    let manifest = hub_marketplace::Manifest::parse(&m, &hub_plugins::host_version())?;
    let plugin = runtime.load(manifest, &w)?;
    let mut instance =
        runtime.instantiate(&plugin, "bench", &Grants::default(), Default::default())?;
    instance.configure("{}")?;
    let started = Instant::now();
    let out = instance.forecast(train, horizon as u32)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut means = vec![None; train.len()];
    for f in out {
        means[f.series as usize] = Some(f.mean);
    }
    Ok(Method {
        name: name.into(),
        means,
        seconds,
    })
}

fn library(
    python: &std::path::Path,
    train: &[Series],
    seasons: &[usize],
    horizon: usize,
) -> Result<Vec<Method>> {
    let dir = tempfile::tempdir()?;
    let input = serde_json::json!({"series": train.iter().zip(seasons).enumerate().map(|(i, (s, m))| serde_json::json!({
        "name": i.to_string(),
        "step_ms": s.step_ms,
        "season": m,
        "train": s.values.iter().map(|v| if v.is_finite() { Some(*v) } else { None }).collect::<Vec<_>>(),
        "horizon": horizon,
    })).collect::<Vec<_>>()});
    let (inp, outp) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&inp, input.to_string())?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/forecast-baseline.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg(&inp)
        .arg(&outp)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "scripts/forecast-baseline.py failed ({status})"
    );
    let out: serde_json::Value = serde_json::from_slice(&std::fs::read(&outp)?)?;
    Ok(["AutoETS", "SeasonalNaive"]
        .iter()
        .map(|name| Method {
            name: format!("statsforecast {name}"),
            means: (0..train.len())
                .map(|i| {
                    out[name][i.to_string()]
                        .as_array()
                        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
                })
                .collect(),
            seconds: out["seconds"][name].as_f64().unwrap_or(0.0),
        })
        .collect())
}

pub async fn run(a: ForecasterBenchArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || bench(&a)).await?
}

/// One method's errors over every series and origin: sMAPE per bucket and overall, MASE.
#[derive(Default)]
struct Tally {
    buckets: [Vec<f64>; 3],
    all: Vec<f64>,
    mase: Vec<f64>,
    seconds: f64,
    missing: usize,
}

fn bench(a: &ForecasterBenchArgs) -> Result<()> {
    let back = (a.origins.max(1) - 1) * ORIGIN_STRIDE;
    let n = a.days * 24 + a.horizon + back;
    // A fixed calendar, so that a seed is the same set on any day.
    let end = 1_796_601_600_000;
    let mut rng = super::Rng(a.seed | 1);
    let groups: Vec<synth::Group> = (0..a.groups)
        .map(|i| synth::group(&mut rng, i, Kind::Control, n, n, STEP_MS, end))
        .collect();
    let series: Vec<&Series> = groups
        .iter()
        .flat_map(|g| {
            g.series
                .iter()
                .filter(|s| METRICS.contains(&s.metric.as_str()))
        })
        .collect();
    println!(
        "forecasters on {} hourly series ({} groups × requests, cost, p95 latency), {} days of history, {} points ahead from {} origins {} hours apart (seed {})",
        series.len(),
        a.groups,
        a.days,
        a.horizon,
        a.origins.max(1),
        ORIGIN_STRIDE,
        a.seed
    );
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let mut names: Vec<String> = Vec::new();
    let mut tallies: Vec<Tally> = Vec::new();
    for origin in 0..a.origins.max(1) {
        // History of `days`, then the held-out points; each origin ends ORIGIN_STRIDE hours earlier.
        let cut = n - a.horizon - origin * ORIGIN_STRIDE;
        let from = cut - a.days * 24;
        let train: Vec<Series> = series
            .iter()
            .map(|s| Series {
                ts_ms: s.ts_ms[from..cut].to_vec(),
                values: s.values[from..cut].to_vec(),
                ..(*s).clone()
            })
            .collect();
        let actual: Vec<&[f64]> = series
            .iter()
            .map(|s| &s.values[cut..cut + a.horizon])
            .collect();
        // The season every method is given or finds: the same detection the plugins use.
        let seasons: Vec<usize> = train
            .iter()
            .map(|s| {
                prep::prepare(&s.values, s.values.len())
                    .map_or(1, |p| season::detect(&p.y, s.step_ms))
            })
            .collect();
        let mut methods = vec![
            component(&runtime, &a.plugins_dir, "ets", &train, a.horizon)?,
            component(
                &runtime,
                &a.plugins_dir,
                "seasonal-naive",
                &train,
                a.horizon,
            )?,
        ];
        if let Some(py) = &a.python {
            methods.extend(library(py, &train, &seasons, a.horizon)?);
        }
        if tallies.is_empty() {
            names = methods.iter().map(|m| m.name.clone()).collect();
            tallies = methods.iter().map(|_| Tally::default()).collect();
        }
        for (m, t) in methods.iter().zip(tallies.iter_mut()) {
            t.seconds += m.seconds;
            for i in 0..train.len() {
                let Some(f) = m.means[i].as_ref() else {
                    t.missing += 1;
                    continue;
                };
                for (b, (lo, hi)) in BUCKETS.iter().enumerate() {
                    if *lo > f.len() {
                        continue;
                    }
                    let hi = (*hi).min(f.len());
                    if let Some(x) = smape(&actual[i][lo - 1..hi], &f[lo - 1..hi]) {
                        t.buckets[b].push(x);
                    }
                }
                t.all.extend(smape(actual[i], f));
                t.mase
                    .extend(mase(actual[i], f, &train[i].values, seasons[i].max(1)));
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "\n{:<26} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "method", "h1-12", "h13-24", "h25-48", "sMAPE", "MASE", "seconds"
    );
    for (name, t) in names.iter().zip(&tallies) {
        println!(
            "{:<26} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.3} {:>10.2}{}",
            name,
            mean(&t.buckets[0]),
            mean(&t.buckets[1]),
            mean(&t.buckets[2]),
            mean(&t.all),
            mean(&t.mase),
            t.seconds,
            if t.missing > 0 {
                format!("  ({} forecasts not made)", t.missing)
            } else {
                String::new()
            }
        );
    }
    println!(
        "\nsMAPE in percent over the held-out points (h1-12: the first 12 hours ahead), averaged over series and origins; MASE against each history's seasonal naive error; seconds: the calls over every series, all origins (the components in wasm)."
    );
    let overall: Vec<f64> = tallies.iter().map(|t| mean(&t.all)).collect();
    if let Some(ratio) = a.check {
        anyhow::ensure!(
            overall[0] < overall[1],
            "ets sMAPE {:.2} is not below seasonal-naive's {:.2}",
            overall[0],
            overall[1]
        );
        if overall.len() > 2 {
            anyhow::ensure!(
                overall[0] <= overall[2] * ratio,
                "ets sMAPE {:.2} is above {ratio} × AutoETS's {:.2}",
                overall[0],
                overall[2]
            );
        }
    }
    Ok(())
}
