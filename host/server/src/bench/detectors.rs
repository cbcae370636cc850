//! `hub bench detectors`: the first-party detectors' accuracy on the labeled synthetic set
//! (`synth`), run as the hub runs them: the built components, one run per 5-minute step over the
//! evaluated days, each given every group's series over its own history. A label is found when
//! a flag falls on its group within its kind's tolerance after the onset; a flag elsewhere is a
//! false positive, except after the onset of a change that lasts (the series is no longer what
//! its history says; such flags are counted apart). Precision, recall and F1 per kind, for the
//! detectors together and each alone, and the time their runs took.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use hub_runtime::{Grants, Runtime, RuntimeConfig, Series};

use super::synth::{self, Group, Kind};

#[derive(Debug, Args)]
pub struct DetectorBenchArgs {
    /// Built plugins, as laid out by scripts/build-plugins.
    #[arg(long, default_value = "dist/plugins")]
    plugins_dir: PathBuf,
    /// Groups (models) of each anomaly kind, and as many controls.
    #[arg(long, default_value_t = 6)]
    per_kind: usize,
    /// Days of history before the evaluated days.
    #[arg(long, default_value_t = 16)]
    history_days: usize,
    /// Days evaluated, one run per 5-minute step.
    #[arg(long, default_value_t = 2)]
    eval_days: usize,
    #[arg(long, default_value_t = 19)]
    seed: u64,
    /// Fail (exit 1) when the detectors' F1 over all kinds is below this.
    #[arg(long)]
    min_f1: Option<f64>,
    /// Print the reasons of up to this many false positives (to see what fools a detector).
    #[arg(long, default_value_t = 0)]
    show_false: usize,
}

const DETECTORS: [&str; 3] = ["robust-level", "change-point", "llm-signals"];
const STEP_MS: i64 = 300_000;

/// One detector loaded as the hub loads it, with the series it asks for.
struct Loaded {
    name: &'static str,
    instance: hub_runtime::Instance,
    metrics: Vec<String>,
    history: usize,
    time: Duration,
    calls: usize,
    points: usize,
}

#[derive(Default, Clone, Copy)]
struct Score {
    labels: usize,
    found: usize,
    tp: usize,
    fp: usize,
    after_change: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.labels == 0 {
            1.0
        } else {
            self.found as f64 / self.labels as f64
        }
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn add(&mut self, o: &Score) {
        self.labels += o.labels;
        self.found += o.found;
        self.tp += o.tp;
        self.fp += o.fp;
        self.after_change += o.after_change;
    }
}

fn load(runtime: &Runtime, dir: &std::path::Path, name: &'static str) -> Result<Loaded> {
    let (m, w) = super::built_plugin(dir, name)?;
    let manifest = hub_marketplace::Manifest::parse(&m, &hub_plugins::host_version())?;
    let series = manifest
        .series
        .clone()
        .context("a detector has series settings")?;
    let plugin = runtime.load(manifest, &w)?;
    let mut instance =
        runtime.instantiate(&plugin, "bench", &Grants::default(), Default::default())?;
    instance.configure("{}")?;
    Ok(Loaded {
        name,
        instance,
        metrics: series.metrics,
        history: (series.history_ms / STEP_MS) as usize,
        time: Duration::ZERO,
        calls: 0,
        points: 0,
    })
}

/// Where each detector flagged each group: (detector, group) → step → the reason.
type Flags = BTreeMap<(usize, usize), BTreeMap<usize, String>>;

fn run_all(detectors: &mut [Loaded], groups: &[Group], n: usize, eval: usize) -> Result<Flags> {
    let bar = indicatif::ProgressBar::new((eval * detectors.len()) as u64);
    let mut flags = Flags::new();
    for t in n - eval..n {
        for (di, d) in detectors.iter_mut().enumerate() {
            let from = (t + 1).saturating_sub(d.history);
            let mut input: Vec<Series> = Vec::new();
            let mut owner: Vec<usize> = Vec::new();
            for (gi, g) in groups.iter().enumerate() {
                for s in g.series.iter().filter(|s| d.metrics.contains(&s.metric)) {
                    input.push(Series {
                        key: s.key.clone(),
                        metric: s.metric.clone(),
                        step_ms: s.step_ms,
                        ts_ms: s.ts_ms[from..=t].to_vec(),
                        values: s.values[from..=t].to_vec(),
                    });
                    owner.push(gi);
                }
            }
            d.points += input.iter().map(|s| s.values.len()).sum::<usize>();
            let started = Instant::now();
            let found = d
                .instance
                .detect(&input)
                .with_context(|| format!("{} at step {t}", d.name))?;
            d.time += started.elapsed();
            d.calls += 1;
            for a in found {
                let s = &input[a.series as usize];
                let step = from + s.ts_ms.iter().position(|x| *x == a.ts_ms).unwrap_or(0);
                flags
                    .entry((di, owner[a.series as usize]))
                    .or_default()
                    .insert(step, a.reason);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(flags)
}

/// Scores the flags of the detectors in `which` (together) on each group, by the group's kind.
fn score(
    groups: &[Group],
    flags: &Flags,
    which: &[usize],
    n: usize,
    eval: usize,
) -> BTreeMap<Kind, Score> {
    let mut out: BTreeMap<Kind, Score> = BTreeMap::new();
    for (gi, g) in groups.iter().enumerate() {
        let steps: BTreeSet<usize> = which
            .iter()
            .filter_map(|d| flags.get(&(*d, gi)))
            .flat_map(|m| m.keys())
            .copied()
            .filter(|s| *s >= n - eval)
            .collect();
        let s = out.entry(g.kind).or_default();
        let window = g.onset..=g.onset + g.kind.tolerance();
        if g.kind != Kind::Control {
            s.labels += 1;
            if steps.iter().any(|t| window.contains(t)) {
                s.found += 1;
            }
        }
        for t in steps {
            if g.kind != Kind::Control && window.contains(&t) {
                s.tp += 1;
            } else if t > g.onset && (g.kind.lasts() || t <= g.onset + g.kind.duration()) {
                s.after_change += 1;
            } else {
                s.fp += 1;
            }
        }
    }
    out
}

pub async fn run(a: DetectorBenchArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || bench(&a)).await?
}

fn bench(a: &DetectorBenchArgs) -> Result<()> {
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let mut detectors = DETECTORS
        .iter()
        .map(|name| load(&runtime, &a.plugins_dir, name))
        .collect::<Result<Vec<_>>>()?;
    let per_day = (86_400_000 / STEP_MS) as usize;
    let (n, eval) = (
        (a.history_days + a.eval_days) * per_day,
        a.eval_days * per_day,
    );
    // A fixed calendar (ending Monday 2026-12-07 00:00 UTC), so that a seed is the same set on
    // any day: the evaluated days are a Saturday and a Sunday by default.
    let end = 1_796_601_600_000;
    let groups = synth::labeled_set(a.seed, a.per_kind, n, eval, STEP_MS, end);
    println!(
        "detectors on the labeled set: {} groups ({} of each of {} kinds, {} controls), {} days of 5-minute steps, the last {} evaluated step by step (seed {})",
        groups.len(),
        a.per_kind,
        Kind::INJECTED.len(),
        a.per_kind,
        a.history_days + a.eval_days,
        a.eval_days,
        a.seed
    );
    let flags = run_all(&mut detectors, &groups, n, eval)?;
    let all: Vec<usize> = (0..detectors.len()).collect();
    let together = score(&groups, &flags, &all, n, eval);
    let alone: Vec<BTreeMap<Kind, Score>> = all
        .iter()
        .map(|d| score(&groups, &flags, &[*d], n, eval))
        .collect();

    println!(
        "\n{:<20} {:>6} {:>6} {:>7} {:>9} {:>6}   recall alone: {}",
        "kind",
        "labels",
        "found",
        "recall",
        "precision",
        "F1",
        DETECTORS.join(" / ")
    );
    let mut total = Score::default();
    for (kind, s) in &together {
        total.add(s);
        let recalls: Vec<String> = alone
            .iter()
            .map(|m| {
                m.get(kind)
                    .map_or("-".into(), |x| format!("{:.2}", x.recall()))
            })
            .collect();
        println!(
            "{:<20} {:>6} {:>6} {:>7.2} {:>9.2} {:>6.2}   {}",
            kind.name(),
            s.labels,
            s.found,
            s.recall(),
            s.precision(),
            s.f1(),
            if *kind == Kind::Control {
                String::new()
            } else {
                recalls.join(" / ")
            }
        );
    }
    println!(
        "{:<20} {:>6} {:>6} {:>7.2} {:>9.2} {:>6.2}",
        "all",
        total.labels,
        total.found,
        total.recall(),
        total.precision(),
        total.f1()
    );
    let control_days = together
        .get(&Kind::Control)
        .map_or(0, |_| a.per_kind * a.eval_days);
    println!(
        "\nfalse alarms: {} on control groups ({:.2} per group-day); flags after the onset of a lasting change (not scored): {}",
        together.get(&Kind::Control).map_or(0, |s| s.fp),
        together
            .get(&Kind::Control)
            .map_or(0.0, |s| s.fp as f64 / control_days.max(1) as f64),
        total.after_change
    );
    println!(
        "\n{:<14} {:>9} {:>8} {:>8} {:>12} {:>14}",
        "detector", "precision", "flags", "runs", "ms per run", "points per run"
    );
    for (d, m) in detectors.iter().zip(&alone) {
        let mut s = Score::default();
        m.values().for_each(|x| s.add(x));
        println!(
            "{:<14} {:>9.2} {:>8} {:>8} {:>12.2} {:>14}",
            d.name,
            s.precision(),
            s.tp + s.fp + s.after_change,
            d.calls,
            d.time.as_secs_f64() * 1e3 / d.calls.max(1) as f64,
            d.points / d.calls.max(1)
        );
    }
    let mut shown = 0;
    if a.show_false > 0 {
        for (gi, g) in groups.iter().enumerate() {
            let window = g.onset..=g.onset + g.kind.tolerance();
            let hit = (0..detectors.len())
                .filter_map(|d| flags.get(&(d, gi)))
                .any(|m| m.keys().any(|t| window.contains(t)));
            if g.kind != Kind::Control && !hit {
                println!(
                    "missed: a {} in group {gi} at step {} ({})",
                    g.kind.name(),
                    g.onset,
                    hub_plugin_sdk::stats::clock(g.series[0].ts_ms[g.onset])
                );
            }
        }
    }
    for ((d, gi), steps) in &flags {
        let g = &groups[*gi];
        for (t, reason) in steps {
            let right =
                g.kind != Kind::Control && (g.onset..=g.onset + g.kind.tolerance()).contains(t);
            let during = *t > g.onset && (g.kind.lasts() || *t <= g.onset + g.kind.duration());
            if shown < a.show_false && *t >= n - eval && !right && !during {
                println!(
                    "false: {} on a {} group (onset {}) at step {t}: {reason}",
                    DETECTORS[*d],
                    g.kind.name(),
                    g.onset
                );
                shown += 1;
            }
        }
    }
    if let Some(min) = a.min_f1
        && total.f1() < min
    {
        anyhow::bail!("F1 {:.3} is below {min}", total.f1());
    }
    Ok(())
}
