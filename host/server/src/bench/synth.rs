//! Synthetic LLM traffic with known anomalies: what the detector and forecaster benchmarks run
//! on. Deterministic from a seed, so the labeled set is part of the repository as code.
//!
//! One *group* is one model's traffic: requests with a daily rhythm (a working-day peak, quiet
//! nights, quieter weekends) and Poisson noise, errors drawn per request, input and output tokens
//! and cost per request with a little noise, and a p95 latency that rises with load. Each group
//! carries at most one injected anomaly, of a known kind, starting at a known step.

use hub_runtime::Series;

use super::Rng;

impl Rng {
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        if lambda > 50.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0);
        }
        let (l, mut k, mut p) = ((-lambda).exp(), 0.0, 1.0);
        loop {
            p *= self.unit();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }

    fn binomial(&mut self, n: f64, p: f64) -> f64 {
        let mean = n * p;
        if n > 100.0 {
            return (mean + (mean * (1.0 - p)).sqrt() * self.normal())
                .round()
                .clamp(0.0, n);
        }
        (0..n as usize).filter(|_| self.unit() < p).count() as f64
    }
}

/// What was injected into a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Spike,
    Dip,
    LatencySpike,
    LevelShift,
    TrendChange,
    SeasonalityChange,
    CostPerRequest,
    TokensPerRequest,
    ErrorBurst,
    /// Nothing: a control group.
    Control,
}

impl Kind {
    pub(crate) const INJECTED: [Kind; 9] = [
        Kind::Spike,
        Kind::Dip,
        Kind::LatencySpike,
        Kind::LevelShift,
        Kind::TrendChange,
        Kind::SeasonalityChange,
        Kind::CostPerRequest,
        Kind::TokensPerRequest,
        Kind::ErrorBurst,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Dip => "dip",
            Kind::LatencySpike => "latency spike",
            Kind::LevelShift => "level shift",
            Kind::TrendChange => "trend change",
            Kind::SeasonalityChange => "seasonality change",
            Kind::CostPerRequest => "cost per request",
            Kind::TokensPerRequest => "tokens per request",
            Kind::ErrorBurst => "error burst",
            Kind::Control => "none (control)",
        }
    }

    /// Steps after its onset within which a flag counts as finding it.
    pub(crate) fn tolerance(self) -> usize {
        match self {
            Kind::Spike | Kind::Dip | Kind::LatencySpike => 2,
            Kind::CostPerRequest | Kind::TokensPerRequest | Kind::ErrorBurst => 3,
            Kind::LevelShift => 12,
            Kind::TrendChange | Kind::SeasonalityChange => 36,
            Kind::Control => 0,
        }
    }

    /// Steps the anomaly lasts after its onset when it ends (an error burst: an hour).
    pub(crate) fn duration(self) -> usize {
        match self {
            Kind::ErrorBurst => 12,
            _ => 0,
        }
    }

    /// Whether the series stays changed after the onset (flags later on are neither right nor
    /// wrong: the series is not what it was).
    pub(crate) fn lasts(self) -> bool {
        matches!(
            self,
            Kind::LevelShift
                | Kind::TrendChange
                | Kind::SeasonalityChange
                | Kind::CostPerRequest
                | Kind::TokensPerRequest
        )
    }
}

/// One model's series and what was done to them.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub kind: Kind,
    /// The step where the anomaly starts (where it first shows, for a seasonality change).
    pub onset: usize,
    /// requests, errors, error_rate, input_tokens, output_tokens, cost_usd, latency_p95_ms.
    pub series: Vec<Series>,
}

pub(crate) const METRICS: [&str; 7] = [
    "requests",
    "errors",
    "error_rate",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_p95_ms",
];

/// The daily load shape at hour `h` (0..24), peak 1 at `peak` o'clock, with a morning shoulder.
fn shape(h: f64, peak: f64) -> f64 {
    let d = |c: f64, w: f64| {
        let x = ((h - c + 12.0).rem_euclid(24.0)) - 12.0;
        (-(x / w).powi(2)).exp()
    };
    0.15 + 0.85 * d(peak, 3.5).max(0.55 * d(peak - 4.5, 1.5))
}

/// `n` steps of `step_ms` of one group ending at `end_ms`, with `kind` injected at `onset`.
pub(crate) fn group(
    rng: &mut Rng,
    index: usize,
    kind: Kind,
    onset: usize,
    n: usize,
    step_ms: i64,
    end_ms: i64,
) -> Group {
    // Anomalies of volume, of rates and of ratios to requests are injected where there is
    // volume to see them in: groups of 80 calls a step at peak or more, in the daytime.
    let needs_volume = matches!(
        kind,
        Kind::Spike
            | Kind::Dip
            | Kind::ErrorBurst
            | Kind::CostPerRequest
            | Kind::TokensPerRequest
            | Kind::TrendChange
    );
    let level = if needs_volume {
        [80.0, 300.0, 1500.0][index % 3]
    } else {
        [25.0, 80.0, 300.0, 1500.0][index % 4]
    };
    let (cost_per_request, input, output) = (
        rng.between(0.001, 0.03),
        rng.between(300.0, 3000.0),
        rng.between(80.0, 900.0),
    );
    let latency_base = rng.between(600.0, 2500.0);
    let error_p = rng.between(0.002, 0.02);
    let start_ms = end_ms - n as i64 * step_ms;
    let hour_of =
        |t: usize| ((start_ms + t as i64 * step_ms).rem_euclid(86_400_000)) as f64 / 3_600_000.0;
    let mut onset = onset;
    // The next daytime step, or the one before when the evaluated days end first.
    let day = |t: usize| shape(hour_of(t), 14.0) >= 0.5;
    if needs_volume && !day(onset) {
        onset = (onset..n - 1)
            .find(|&t| day(t))
            .or_else(|| (0..onset).rev().find(|&t| day(t)))
            .unwrap_or(onset);
    }
    let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(n); METRICS.len()];
    let (mut shift, mut size) = (1.0, 1.0);
    match kind {
        Kind::Spike => size = rng.between(3.0, 6.0),
        Kind::Dip => size = rng.between(0.02, 0.2),
        Kind::LatencySpike => size = rng.between(2.5, 5.0),
        Kind::LevelShift => {
            shift = rng.between(1.6, 2.5) * if rng.unit() < 0.3 { 0.4 } else { 1.0 }
        }
        Kind::CostPerRequest => size = rng.between(3.0, 5.0),
        Kind::TokensPerRequest => size = rng.between(2.5, 4.0),
        _ => {}
    }
    let mut season_shown = false;
    for t in 0..n {
        let ts = start_ms + t as i64 * step_ms;
        let h = (ts.rem_euclid(86_400_000)) as f64 / 3_600_000.0;
        // Weekends at 55%, eased in and out over the hours around midnight (users are in more
        // than one time zone).
        let weekend = {
            // 0 is a Thursday: the weekend is [2, 4).
            let x = (ts as f64 / 86_400_000.0).rem_euclid(7.0);
            let sig = |y: f64| 1.0 / (1.0 + (-6.0 * y).exp());
            1.0 - 0.45 * (sig(x - 2.0) - sig(x - 4.0))
        };
        let after = t >= onset;
        let mut peak = 14.0;
        if kind == Kind::SeasonalityChange && after {
            peak = 20.0;
            // The change shows when the shapes differ by a sixth.
            if !season_shown && (shape(h, 20.0) / shape(h, 14.0) - 1.0).abs() > 0.16 {
                season_shown = true;
                onset = t;
            }
        }
        let mut lambda = level * shape(h, peak) * weekend * (step_ms as f64 / 300_000.0);
        if after {
            match kind {
                Kind::LevelShift if METRIC_OF_SHIFT[index % 2] == "requests" => lambda *= shift,
                Kind::TrendChange => lambda *= 1.0 + (t - onset) as f64 / 72.0,
                Kind::Spike if t == onset => lambda *= size,
                Kind::Dip if t == onset => lambda *= size,
                _ => {}
            }
        }
        let requests = rng.poisson(lambda);
        let p = if kind == Kind::ErrorBurst && after && t < onset + 12 {
            0.2
        } else {
            error_p
        };
        let errors = rng.binomial(requests, p);
        let per = |rng: &mut Rng| 1.0 + 0.04 * rng.normal();
        let mut cpr = cost_per_request * per(rng);
        let mut out = output * per(rng);
        if after && kind == Kind::CostPerRequest {
            cpr *= size;
        }
        if after && kind == Kind::TokensPerRequest {
            out *= size;
        }
        let mut latency = latency_base * (1.0 + 0.2 * shape(h, peak)) * (0.06 * rng.normal()).exp();
        if after && kind == Kind::LevelShift && METRIC_OF_SHIFT[index % 2] == "latency_p95_ms" {
            latency *= shift;
        }
        if kind == Kind::LatencySpike && t == onset {
            latency *= size;
        }
        let values = [
            requests,
            errors,
            if requests > 0.0 {
                errors / requests
            } else {
                f64::NAN
            },
            (requests * input * per(rng)).round(),
            (requests * out).round(),
            requests * cpr,
            if requests > 0.0 { latency } else { f64::NAN },
        ];
        for (c, v) in cols.iter_mut().zip(values) {
            c.push(v);
        }
    }
    let model = format!("model-{index:03}");
    let series = METRICS
        .iter()
        .zip(cols)
        .map(|(metric, values)| Series {
            key: vec![("model".into(), model.clone())],
            metric: (*metric).into(),
            step_ms: step_ms as u32,
            ts_ms: (0..n as i64).map(|t| start_ms + t * step_ms).collect(),
            values,
        })
        .collect();
    Group {
        kind,
        onset,
        series,
    }
}

/// Which metric a level shift moves, alternately.
const METRIC_OF_SHIFT: [&str; 2] = ["requests", "latency_p95_ms"];

/// The labeled set: `per_kind` groups of each injected kind and as many controls, `n` steps of
/// `step_ms`, onsets spread over the last `eval` steps (a few steps from either end).
pub(crate) fn labeled_set(
    seed: u64,
    per_kind: usize,
    n: usize,
    eval: usize,
    step_ms: i64,
    end_ms: i64,
) -> Vec<Group> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let kinds: Vec<Kind> = Kind::INJECTED
        .iter()
        .copied()
        .chain([Kind::Control])
        .collect();
    for i in 0..per_kind {
        for (k, kind) in kinds.iter().enumerate() {
            let index = i * kinds.len() + k;
            let margin = 40.min(eval / 4);
            let onset = n - eval + margin + (rng.next() as usize % (eval - 2 * margin).max(1));
            let onset = if *kind == Kind::Control { n } else { onset };
            out.push(group(&mut rng, index, *kind, onset, n, step_ms, end_ms));
        }
    }
    out
}
