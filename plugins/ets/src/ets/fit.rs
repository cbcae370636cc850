//! Fitting: the likelihood, the search over the smoothing parameters, the candidates and their
//! selection by AICc.

use super::pass::{Pass, pass};
use super::*;

/// A fitted model: parameters, fit statistics and the final states.
#[derive(Debug, Clone)]
pub struct Fit {
    pub spec: Spec,
    pub m: usize,
    pub par: Params,
    /// Where the optimiser found `par` (to start related models from).
    pub coords: Coords,
    /// -2 log-likelihood, up to a constant shared by all models of the same history.
    pub lik: f64,
    pub aicc: f64,
    /// The variance of the errors (relative errors for a multiplicative error).
    pub sigma2: f64,
    pub l: f64,
    pub b: f64,
    /// The final seasonal states, by position `t mod m`.
    pub s: Vec<f64>,
    /// The history's length (so `n mod m` is the position of the first forecast).
    pub n: usize,
    /// Likelihood evaluations spent.
    pub evals: usize,
}

/// How the smoothing parameters are searched for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// Probe the optimum of the closest model already fitted as a start.
    pub warm: bool,
    /// Probe alpha at these fractions of its interval (the other coordinates at their default
    /// start) as starts; 0 = unused.
    pub alphas: [f64; 3],
    /// Nelder–Mead runs after the first, each from the best point so far with a fresh simplex,
    /// while they still improve by `f_tol`.
    pub restarts: usize,
    /// Evaluations per run: `evals_base + evals_per_dim * dimension`.
    pub evals_base: usize,
    pub evals_per_dim: usize,
    /// A run stops when its simplex spans less than `f_tol` of -2 log-likelihood and `x_tol`
    /// in each coordinate.
    pub f_tol: f64,
    pub x_tol: f64,
    /// The first simplex's size in each coordinate.
    pub step: f64,
    /// Search over v with u = sin²(v) instead of clamping u onto [0, 1].
    pub sine: bool,
}

impl Default for Search {
    /// What `select` uses: tuned on seasonal and non-seasonal histories against a search with
    /// many starts and evaluations (`search_quality` in the tests) to land within about one
    /// unit of -2 log-likelihood of it on average, in a quarter of the evaluations.
    fn default() -> Search {
        Search {
            warm: true,
            alphas: [0.05, 0.3, 0.9],
            restarts: 0,
            evals_base: 25,
            evals_per_dim: 15,
            f_tol: 0.5,
            x_tol: 0.08,
            step: 0.2,
            sine: true,
        }
    }
}

impl Search {
    fn options(&self, dim: usize) -> Options {
        Options {
            max_evals: self.evals_base + self.evals_per_dim * dim,
            f_tol: self.f_tol,
            x_tol: self.x_tol,
            step: self.step,
            lower: if self.sine { f64::NEG_INFINITY } else { 0.0 },
            upper: if self.sine { f64::INFINITY } else { 1.0 },
        }
    }
}

/// -2 log-likelihood from a pass (concentrated over the error variance; the constant
/// n (1 + ln 2π - ln n) common to all models is left out, as `ets` does).
pub(super) fn likelihood(spec: Spec, n: usize, p: &Pass, floor: f64) -> f64 {
    let sse = p.sse.max(floor);
    n as f64 * sse.ln()
        + if spec.error == ErrorType::M {
            2.0 * p.log_sum
        } else {
            0.0
        }
}

/// The smallest sum of squares the likelihood believes (a history a model fits exactly would
/// otherwise reach -inf and tie with every other exact model): relative 1e-10 of the scale.
pub(super) fn sse_floor(spec: Spec, y: &[f64]) -> f64 {
    let n = y.len() as f64;
    match spec.error {
        ErrorType::M => n * 1e-20,
        ErrorType::A => {
            let scale = y.iter().map(|v| v.abs()).sum::<f64>() / n;
            n * (1e-10 * scale.max(1e-10)).powi(2)
        }
    }
}

/// Fits `spec` to `y` by maximum likelihood over its smoothing parameters: the best of the
/// `starts` (coordinates of all four parameters) is where the search begins. `None` when the
/// model cannot be fitted (too few points, a multiplicative model on non-positive values, no
/// admissible start).
pub fn fit(
    y: &[f64],
    m: usize,
    spec: Spec,
    inits: &Inits,
    starts: &[Coords],
    search: &Search,
    scratch: &mut Scratch,
) -> Option<Fit> {
    let n = y.len();
    let m_used = if spec.has_season() { m } else { 1 };
    let k = spec.n_params(m_used);
    if n < k + 4 {
        return None;
    }
    let (l0, b0, ring0) = inits.for_spec(y, spec)?;
    let floor = sse_floor(spec, y);
    let Scratch { ring } = scratch;
    ring.clear();
    ring.extend_from_slice(&ring0);
    let base = *starts.first()?;
    let mut evals = 0usize;
    let sine = search.sine;
    let to_u = |v: &[f64]| -> [f64; nelder_mead::MAX_DIM] {
        let mut u = [0.0; nelder_mead::MAX_DIM];
        for (a, b) in u.iter_mut().zip(v) {
            *a = if sine { b.sin().powi(2) } else { *b };
        }
        u
    };
    let nf = n as f64;
    let mut objective = |v: &[f64], cutoff: f64| {
        evals += 1;
        let u = to_u(v);
        let par = Params::from_coords(spec, &unpack(spec, &u[..v.len()], &base));
        ring.copy_from_slice(&ring0);
        // n ln(sse) >= cutoff once sse >= exp(cutoff / n): an additive error's pass can stop
        // there. (A multiplicative error's likelihood has a term of either sign besides.)
        let sse_cut = if spec.error == ErrorType::A && cutoff.is_finite() {
            (cutoff / nf).exp()
        } else {
            f64::INFINITY
        };
        match pass(spec, y, par, l0, b0, ring, sse_cut) {
            Some(p) => likelihood(spec, n, &p, floor),
            None => f64::INFINITY,
        }
    };
    let dim = spec.n_smoothing();
    // The best start (the first when there is only one, or none is admissible).
    let mut chosen: Option<([f64; nelder_mead::MAX_DIM], f64)> = None;
    for c in starts {
        let (mut v, _) = pack(spec, c);
        if sine {
            for x in v.iter_mut() {
                *x = x.clamp(0.0, 1.0).sqrt().asin();
            }
        }
        if starts.len() == 1 {
            chosen = Some((v, f64::INFINITY));
            break;
        }
        let cut = chosen.map_or(f64::INFINITY, |c| c.1);
        let f = objective(&v[..dim], cut);
        if chosen.is_none() || f < cut {
            chosen = Some((v, f));
        }
    }
    let (x, _) = chosen?;
    let opts = search.options(dim);
    let mut best = nelder_mead::minimize(dim, &x[..dim], opts, &mut objective);
    for _ in 0..search.restarts {
        let again = nelder_mead::minimize(dim, &best.x[..dim], opts, &mut objective);
        let improved = again.f < best.f - search.f_tol;
        if again.f < best.f {
            best = again;
        }
        if !improved {
            break;
        }
    }
    if !best.f.is_finite() {
        return None;
    }
    let coords = unpack(spec, &to_u(&best.x[..dim])[..dim], &base);
    let par = Params::from_coords(spec, &coords);
    let mut ring = ring0;
    let p = pass(spec, y, par, l0, b0, &mut ring, f64::INFINITY)?;
    let lik = likelihood(spec, n, &p, floor);
    let kf = k as f64;
    let aicc = lik + 2.0 * kf + 2.0 * kf * (kf + 1.0) / (nf - kf - 1.0);
    let sigma2 = p.sse / (nf - kf);
    Some(Fit {
        spec,
        m: m_used,
        par,
        coords,
        lik,
        aicc,
        sigma2,
        l: p.l,
        b: p.b,
        s: ring,
        n,
        evals: evals + 1,
    })
}

/// Which models the search may consider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub errors: [bool; 2],
    /// N, A, Ad.
    pub trends: [bool; 3],
    /// N, A, M.
    pub seasons: [bool; 3],
}

impl Family {
    /// Every model (`ZZZ`).
    pub const ALL: Family = Family {
        errors: [true, true],
        trends: [true, true, true],
        seasons: [true, true, true],
    };

    /// The candidates for a history, in the order they are fitted (each can start from the
    /// optimum of one before it): additive errors first, then by season, then by trend.
    /// Multiplicative error or season only for a positive history; seasonal models only when
    /// `seasonal` (a season of m >= 2 that the history is long enough for); additive error
    /// with multiplicative season never (it is numerically unstable; `ets` refuses it too).
    /// When the restrictions leave nothing, the additive and non-seasonal counterparts stand in.
    pub fn candidates(&self, positive: bool, seasonal: bool) -> Vec<Spec> {
        let errors = [ErrorType::A, ErrorType::M];
        let trends = [Trend::N, Trend::A, Trend::Ad];
        let seasons = [Season::N, Season::A, Season::M];
        let pick = |relax: bool| {
            let mut out = Vec::new();
            for (ei, e) in errors.iter().enumerate() {
                for (si, s) in seasons.iter().enumerate() {
                    for (ti, t) in trends.iter().enumerate() {
                        let allowed_e = self.errors[ei] || (relax && *e == ErrorType::A);
                        let allowed_s = self.seasons[si]
                            || (relax && (*s == Season::N || (*s == Season::A && self.seasons[2])));
                        if !(allowed_e && self.trends[ti] && allowed_s) {
                            continue;
                        }
                        if (*e == ErrorType::M || *s == Season::M) && !positive {
                            continue;
                        }
                        if *s != Season::N && !seasonal {
                            continue;
                        }
                        if *e == ErrorType::A && *s == Season::M {
                            continue;
                        }
                        out.push(Spec::new(*e, *t, *s));
                    }
                }
            }
            out
        };
        let strict = pick(false);
        if strict.is_empty() {
            pick(true)
        } else {
            strict
        }
    }
}

/// A start for fitting `spec`: the optimum of the closest model fitted before it (the same
/// model with an additive error; without the damping; without the trend; with an additive
/// season instead of a multiplicative one).
fn warm_start(spec: Spec, done: &[Fit]) -> Option<Coords> {
    let find = |s: Spec| done.iter().find(|f| f.spec == s).map(|f| f.coords);
    let mut related = Vec::with_capacity(4);
    if spec.error == ErrorType::M {
        related.push(Spec {
            error: ErrorType::A,
            ..spec
        });
    }
    if spec.trend == Trend::Ad {
        related.push(Spec {
            trend: Trend::A,
            ..spec
        });
    }
    if spec.trend == Trend::A {
        related.push(Spec {
            trend: Trend::N,
            ..spec
        });
    }
    if spec.season == Season::M {
        related.push(Spec {
            season: Season::A,
            ..spec
        });
    }
    related.into_iter().find_map(find)
}

/// How much lower ANA's AICc must be than ANN's for the other models without a season to be
/// left out of the search.
pub const PRUNE_AICC: f64 = 100.0;

/// Fits every candidate and returns them best first (lowest AICc).
pub fn select(y: &[f64], m: usize, family: &Family) -> Vec<Fit> {
    select_with(y, m, family, &Search::default())
}

/// [`select`] with the search given.
pub fn select_with(y: &[f64], m: usize, family: &Family, search: &Search) -> Vec<Fit> {
    let n = y.len();
    let positive = y.iter().all(|v| *v > 0.0);
    let seasonal = m >= 2 && hub_plugin_sdk::stats::season::long_enough(n, m);
    let candidates = family.candidates(positive, seasonal);
    let wants = |s: Season| candidates.iter().any(|c| c.season == s);
    let inits = Inits::new(
        y,
        if seasonal { m } else { 1 },
        wants(Season::A),
        wants(Season::M),
    );
    let mut scratch = Scratch::default();
    let mut fits: Vec<Fit> = Vec::with_capacity(candidates.len());
    // ANN and ANA first: when the season is overwhelming (ANA's AICc lower by more than
    // PRUNE_AICC), no model without a season can win, so the others are not fitted.
    let ann = Spec::new(ErrorType::A, Trend::N, Season::N);
    let ana = Spec::new(ErrorType::A, Trend::N, Season::A);
    let mut candidates = candidates;
    let screen = candidates.contains(&ann) && candidates.contains(&ana);
    if screen {
        candidates.retain(|s| *s != ann && *s != ana);
        candidates.splice(0..0, [ann, ana]);
    }
    let mut pruned = false;
    for spec in candidates {
        if pruned && spec.season == Season::N {
            continue;
        }
        let default = Params::default_coords(if spec.has_season() { m } else { 1 });
        let mut starts = vec![default];
        if search.warm
            && let Some(c) = warm_start(spec, &fits)
        {
            starts.insert(0, c);
        }
        for a in search.alphas {
            if a > 0.0 {
                let mut c = default;
                c[0] = a;
                starts.push(c);
            }
        }
        if let Some(f) = fit(y, m, spec, &inits, &starts, search, &mut scratch)
            && f.aicc.is_finite()
        {
            fits.push(f);
        }
        if screen && spec == ana {
            let aicc = |s: Spec| fits.iter().find(|f| f.spec == s).map(|f| f.aicc);
            if let (Some(a), Some(b)) = (aicc(ann), aicc(ana)) {
                pruned = b + PRUNE_AICC < a;
            }
        }
    }
    fits.sort_by(|a, b| a.aicc.total_cmp(&b.aicc));
    fits
}
