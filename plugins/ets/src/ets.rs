//! Exponential smoothing in its innovations state-space form (Hyndman, Koehler, Ord & Snyder,
//! *Forecasting with Exponential Smoothing*, 2008; R `forecast::ets`; statsforecast `AutoETS`):
//! the models, their likelihood, a maximum-likelihood fit of the smoothing parameters, automatic
//! selection by AICc, point forecasts and prediction variances.
//!
//! Differences from `forecast::ets`, all for speed (one series of 2,160 points must fit every
//! candidate in a few milliseconds, inside WebAssembly):
//! - The initial states are not optimised: they come from the usual heuristic (a classical
//!   decomposition of the whole history for the seasonal states, a regression on the first
//!   `max(10, 2m)` deseasonalised points for the level and trend). They still count as
//!   parameters in the AICc, as in `ets`.
//! - The parameters are kept in the "usual" region (`1e-4 <= beta <= alpha`, `gamma <= 1 -
//!   alpha`, `0.8 <= phi <= 0.98`): each is a fraction u of its interval, searched by
//!   Nelder–Mead over v with u = sin²(v) (no bounds for the simplex to collapse on), from the
//!   best of a few starts (see [`Search`]); the characteristic-root admissibility test is not
//!   made.
//! - Multiplicative trends are not among the candidates (as in `ets` by default), and when a
//!   seasonal model beats simple exponential smoothing by more than [`PRUNE_AICC`], the other
//!   non-seasonal models are not fitted.

use crate::nelder_mead::{self, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    A,
    M,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    N,
    A,
    /// Additive, damped.
    Ad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    N,
    A,
    M,
}

/// One model of the family: ETS(error, trend, season).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub error: ErrorType,
    pub trend: Trend,
    pub season: Season,
}

impl Spec {
    pub const fn new(error: ErrorType, trend: Trend, season: Season) -> Spec {
        Spec {
            error,
            trend,
            season,
        }
    }

    /// `ANN`, `MAdM`, ...
    pub fn name(&self) -> String {
        let e = match self.error {
            ErrorType::A => "A",
            ErrorType::M => "M",
        };
        let t = match self.trend {
            Trend::N => "N",
            Trend::A => "A",
            Trend::Ad => "Ad",
        };
        let s = match self.season {
            Season::N => "N",
            Season::A => "A",
            Season::M => "M",
        };
        format!("{e}{t}{s}")
    }

    fn has_trend(&self) -> bool {
        self.trend != Trend::N
    }

    fn has_season(&self) -> bool {
        self.season != Season::N
    }

    /// Smoothing parameters estimated: alpha, beta, gamma, phi as the model has them.
    pub fn n_smoothing(&self) -> usize {
        1 + usize::from(self.has_trend())
            + usize::from(self.has_season())
            + usize::from(self.trend == Trend::Ad)
    }

    /// Parameters counted by the AICc, as `ets` counts them: the smoothing parameters, the
    /// initial states (level, trend, m - 1 seasonal ones) and the error variance.
    pub fn n_params(&self, m: usize) -> usize {
        self.n_smoothing()
            + 1
            + usize::from(self.has_trend())
            + if self.has_season() { m - 1 } else { 0 }
            + 1
    }
}

/// Smoothing parameters (beta, gamma, phi unused by models without trend, season, damping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub phi: f64,
}

const LOW: f64 = 1e-4;
const HIGH: f64 = 0.9999;
const PHI_LOW: f64 = 0.8;
const PHI_HIGH: f64 = 0.98;

/// Coordinates in [0, 1] of all four parameters (alpha, beta, gamma, phi), whatever the
/// model uses; see [`Params::from_coords`].
pub type Coords = [f64; 4];

impl Params {
    /// The parameters at coordinates in [0, 1] (alpha, beta, gamma, phi; those the model does
    /// not have are ignored), always inside the usual region: each coordinate is the fraction
    /// of the way along its interval, beta's interval being [1e-4, alpha] and gamma's
    /// [1e-4, 1 - alpha].
    pub fn from_coords(spec: Spec, v: &Coords) -> Params {
        let alpha = LOW + (HIGH - LOW) * v[0];
        let beta = if spec.has_trend() {
            LOW + (alpha - LOW) * v[1]
        } else {
            0.0
        };
        let gamma = if spec.has_season() {
            LOW + (1.0 - alpha - LOW).max(0.0) * v[2]
        } else {
            0.0
        };
        let phi = match spec.trend {
            Trend::Ad => PHI_LOW + (PHI_HIGH - PHI_LOW) * v[3],
            _ => 1.0,
        };
        Params {
            alpha,
            beta,
            gamma,
            phi,
        }
    }

    /// Where a search starts without a better idea (statsforecast's `initparam`):
    /// alpha = 0.2 / m, beta a tenth of the way to alpha, gamma 5% of the way to 1 - alpha,
    /// phi near its upper bound.
    pub fn default_coords(m: usize) -> Coords {
        [0.2 / m.max(1) as f64, 0.1, 0.05, 0.99]
    }
}

/// The model's own coordinates, packed for the optimiser (alpha, then beta, gamma, phi as the
/// model has them), and back.
fn pack(spec: Spec, full: &Coords) -> ([f64; nelder_mead::MAX_DIM], usize) {
    let mut v = [0.0; nelder_mead::MAX_DIM];
    let mut k = 0;
    for (i, on) in [
        true,
        spec.has_trend(),
        spec.has_season(),
        spec.trend == Trend::Ad,
    ]
    .into_iter()
    .enumerate()
    {
        if on {
            v[k] = full[i];
            k += 1;
        }
    }
    (v, k)
}

fn unpack(spec: Spec, packed: &[f64], base: &Coords) -> Coords {
    let mut full = *base;
    let mut k = 0;
    for (i, on) in [
        true,
        spec.has_trend(),
        spec.has_season(),
        spec.trend == Trend::Ad,
    ]
    .into_iter()
    .enumerate()
    {
        if on {
            full[i] = packed[k];
            k += 1;
        }
    }
    full
}

/// The initial states' ingredients for one series and season length, shared by all candidates.
#[derive(Debug, Clone)]
pub struct Inits {
    m: usize,
    /// Additive seasonal indices by position (`t mod m`), summing to 0.
    additive: Option<Vec<f64>>,
    /// Multiplicative ones, averaging 1, each at least 0.01.
    multiplicative: Option<Vec<f64>>,
}

impl Inits {
    /// `additive`/`multiplicative`: whether seasonal models of that kind will be fitted.
    pub fn new(y: &[f64], m: usize, additive: bool, multiplicative: bool) -> Inits {
        Inits {
            m,
            additive: if additive && m >= 2 {
                seasonal_indices(y, m, false)
            } else {
                None
            },
            multiplicative: if multiplicative && m >= 2 {
                seasonal_indices(y, m, true)
            } else {
                None
            },
        }
    }

    /// Initial (level, trend, seasonal ring) for a model, or `None` when its season could not
    /// be estimated.
    fn for_spec(&self, y: &[f64], spec: Spec) -> Option<(f64, f64, Vec<f64>)> {
        let m = self.m;
        let season: Vec<f64> = match spec.season {
            Season::N => Vec::new(),
            Season::A => self.additive.clone()?,
            Season::M => self.multiplicative.clone()?,
        };
        let adjusted = |t: usize| match spec.season {
            Season::N => y[t],
            Season::A => y[t] - season[t % m],
            Season::M => y[t] / season[t % m],
        };
        let period = if spec.has_season() { m } else { 1 };
        let k = (2 * period).max(10).min(y.len());
        let (l0, b0) = if spec.has_trend() {
            // Least squares on x = 1..=k: the level at x = 0 and the slope.
            let kf = k as f64;
            let mx = (kf + 1.0) / 2.0;
            let my = (0..k).map(adjusted).sum::<f64>() / kf;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for t in 0..k {
                let dx = (t + 1) as f64 - mx;
                sxy += dx * (adjusted(t) - my);
                sxx += dx * dx;
            }
            let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            let mut l = my - b * mx;
            let mut b = b;
            if (l + b).abs() < 1e-8 {
                // A multiplicative error must not start from a zero forecast.
                l *= 1.0 + 1e-3;
                b *= 1.0 - 1e-3;
            }
            (l, b)
        } else {
            ((0..k).map(adjusted).sum::<f64>() / k as f64, 0.0)
        };
        Some((l0, b0, season))
    }
}

/// Seasonal indices by position from a classical decomposition: a centred moving average of
/// length m (2×m when m is even) is the trend; the detrended values (differences or ratios)
/// are averaged by position and normalised (sum 0, or mean 1 and at least 0.01). For ratios
/// the trend is then re-estimated from the deseasonalised series (twice): a moving average of a
/// trend times a season is biased by the season, one of the deseasonalised series much less.
pub fn seasonal_indices(y: &[f64], m: usize, multiplicative: bool) -> Option<Vec<f64>> {
    if m < 2 || y.len() < 2 * m {
        return None;
    }
    let mut idx = indices_once(y, m, multiplicative, None)?;
    if multiplicative {
        for _ in 0..2 {
            idx = indices_once(y, m, true, Some(&idx))?;
        }
    }
    Some(idx)
}

/// One decomposition; `season`: the indices to take out of y before the moving average.
fn indices_once(
    y: &[f64],
    m: usize,
    multiplicative: bool,
    season: Option<&[f64]>,
) -> Option<Vec<f64>> {
    let n = y.len();
    let half = m / 2;
    let mut sums = vec![0.0f64; m];
    let mut counts = vec![0usize; m];
    let adj = |t: usize| match season {
        Some(s) => y[t] / s[t % m],
        None => y[t],
    };
    // The centred moving average from prefix sums: centres half..n-half, each window
    // y[t-half..=t+half] (for even m that is m + 1 points, the two ends at half weight).
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0f64);
    for t in 0..n {
        prefix.push(prefix[t] + adj(t));
    }
    for t in half..n - half {
        let full = prefix[t + half + 1] - prefix[t - half];
        let trend = if m % 2 == 1 {
            full / m as f64
        } else {
            (full - 0.5 * (adj(t - half) + adj(t + half))) / m as f64
        };
        let d = if multiplicative {
            if trend > 0.0 { y[t] / trend } else { f64::NAN }
        } else {
            y[t] - trend
        };
        if d.is_finite() {
            sums[t % m] += d;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut idx: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| s / *c as f64)
        .collect();
    let mean = idx.iter().sum::<f64>() / m as f64;
    if multiplicative {
        if mean.is_nan() || mean <= 0.0 {
            return None;
        }
        for v in idx.iter_mut() {
            *v = (*v / mean).max(0.01);
        }
    } else {
        for v in idx.iter_mut() {
            *v -= mean;
        }
    }
    Some(idx)
}

/// What one pass of a model over the history gives.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Sum of squared errors (relative errors for a multiplicative error).
    sse: f64,
    /// Sum of ln|forecast| (multiplicative error only).
    log_sum: f64,
    /// The final level and trend (the seasonal ring is updated in place).
    l: f64,
    b: f64,
}

/// Forecasts a multiplicative model refuses (at or below TINY, at or above HUGE, or not a
/// number): its states have left the region where the model makes sense. (Four forecasts
/// multiplied stay inside f64, which the log-likelihood's sum of logarithms relies on.)
const TINY: f64 = 1e-10;
const HUGE: f64 = 1e70;

/// A reusable buffer for one series' fits.
#[derive(Debug, Default)]
pub struct Scratch {
    ring: Vec<f64>,
}

/// Runs the model over `y` from (l, b, ring), the ring holding the seasonal state of position
/// `t mod m` at index `t mod m`. `None` when a multiplicative model's forecast leaves
/// (TINY, HUGE), or as soon as the sum of squares passes `sse_cut`.
fn pass(
    spec: Spec,
    y: &[f64],
    par: Params,
    l: f64,
    b: f64,
    ring: &mut [f64],
    sse_cut: f64,
) -> Option<Pass> {
    use ErrorType as E;
    use Season as S;
    use Trend as T;
    // One monomorphised loop per model: the branches inside are resolved at compile time.
    match (spec.error, spec.trend, spec.season) {
        (E::A, T::N, S::N) => pass_g::<false, 0, 0>(y, par, l, b, ring, sse_cut),
        (E::A, T::A, S::N) => pass_g::<false, 1, 0>(y, par, l, b, ring, sse_cut),
        (E::A, T::Ad, S::N) => pass_g::<false, 2, 0>(y, par, l, b, ring, sse_cut),
        (E::A, T::N, S::A) => pass_g::<false, 0, 1>(y, par, l, b, ring, sse_cut),
        (E::A, T::A, S::A) => pass_g::<false, 1, 1>(y, par, l, b, ring, sse_cut),
        (E::A, T::Ad, S::A) => pass_g::<false, 2, 1>(y, par, l, b, ring, sse_cut),
        // Never a candidate (see `Family::candidates`); run as the multiplicative error would.
        (E::A, T::N, S::M) => pass_g::<false, 0, 2>(y, par, l, b, ring, sse_cut),
        (E::A, T::A, S::M) => pass_g::<false, 1, 2>(y, par, l, b, ring, sse_cut),
        (E::A, T::Ad, S::M) => pass_g::<false, 2, 2>(y, par, l, b, ring, sse_cut),
        (E::M, T::N, S::N) => pass_g::<true, 0, 0>(y, par, l, b, ring, sse_cut),
        (E::M, T::A, S::N) => pass_g::<true, 1, 0>(y, par, l, b, ring, sse_cut),
        (E::M, T::Ad, S::N) => pass_g::<true, 2, 0>(y, par, l, b, ring, sse_cut),
        (E::M, T::N, S::A) => pass_g::<true, 0, 1>(y, par, l, b, ring, sse_cut),
        (E::M, T::A, S::A) => pass_g::<true, 1, 1>(y, par, l, b, ring, sse_cut),
        (E::M, T::Ad, S::A) => pass_g::<true, 2, 1>(y, par, l, b, ring, sse_cut),
        (E::M, T::N, S::M) => pass_g::<true, 0, 2>(y, par, l, b, ring, sse_cut),
        (E::M, T::A, S::M) => pass_g::<true, 1, 2>(y, par, l, b, ring, sse_cut),
        (E::M, T::Ad, S::M) => pass_g::<true, 2, 2>(y, par, l, b, ring, sse_cut),
    }
}

/// `MULT`: multiplicative error. `TR`: 0 none, 1 additive, 2 damped. `SE`: 0 none, 1 additive,
/// 2 multiplicative.
///
/// The innovations form (Hyndman et al. 2008, table 2.3) in error-correction form: with
/// `l' = l + phi b` and `q` the deseasonalised observation (`y - s`, or `y / s`),
/// `e = q - l'`, `l = (1 - alpha) l' + alpha q`, `b = phi b + beta e`, and the season
/// `s = s + gamma (y - l' - s)` (additive) or `s + gamma (y / l' - s)` (multiplicative).
/// (For a multiplicative error with an additive or no season, `yhat * eps` is `y - yhat`, so
/// the updates are the same and only the likelihood differs; for a multiplicative season
/// `l' * eps = y / s - l'`, the same form with `q = y / s`.)
///
/// Given the seasons, (l, b) follows a linear recursion x_t = A x_{t-1} + g q_t, and the loop
/// is bound by that recursion's latency, not by arithmetic. So it takes two steps at a time:
/// x_{t+1} = A² x_{t-1} + A g q_t + g q_{t+1}, the same number of dependent operations for
/// two steps as for one; the intermediate states (for the errors and the seasons) are off
/// that chain. (The seasonal state read at step t was last written m >= 2 steps earlier.)
#[inline(always)]
fn pass_g<const MULT: bool, const TR: u8, const SE: u8>(
    y: &[f64],
    par: Params,
    l0: f64,
    b0: f64,
    ring: &mut [f64],
    sse_cut: f64,
) -> Option<Pass> {
    let alpha = par.alpha;
    let gamma = par.gamma;
    let (beta, phi) = match TR {
        0 => (0.0, 0.0),
        1 => (par.beta, 1.0),
        _ => (par.beta, par.phi),
    };
    let a1 = 1.0 - alpha;
    // Two steps: l'_2 = cl l + cb b + k1 q_1, l_2 = p l + pb b + u1 q_1 + alpha q_2,
    // b_2 = r l + rb b + v1 q_1 + beta q_2.
    let cl = a1 - phi * beta;
    let cb = cl * phi + phi * phi;
    let k1 = alpha + phi * beta;
    let (p, pb, u1) = (a1 * cl, a1 * cb, a1 * k1);
    let (r, rb, v1) = (
        -phi * beta - beta * cl,
        phi * phi * (1.0 - beta) - beta * cb,
        phi * beta - beta * k1,
    );
    let m = ring.len();
    debug_assert!(SE == 0 || m >= 2);
    let (mut l, mut b) = (l0, if TR == 0 { 0.0 } else { b0 });
    let mut j = 0usize;
    let mut sse = 0.0f64;
    // ln of the product of the forecasts (a multiplicative error's likelihood), kept as
    // mantissa × 2^exponent: no logarithm per step, no overflow.
    let mut mant = 1.0f64;
    let mut exp2: i64 = 0;
    let mut take = |p: f64| {
        mant *= p;
        let bits = mant.to_bits();
        exp2 += ((bits >> 52) & 0x7ff) as i64 - 1023;
        mant = f64::from_bits((bits & 0x800f_ffff_ffff_ffff) | (1023u64 << 52));
    };
    let deseason = |yt: f64, s: f64| match SE {
        0 => yt,
        1 => yt - s,
        _ => yt / s,
    };
    // What one step adds to the likelihood and does to its season: the forecast (1 for an
    // additive error), or 0 when refused.
    let side = |lb: f64, q: f64, s: f64, yt: f64, slot: &mut f64, sse: &mut f64| -> f64 {
        let e = q - lb;
        if SE == 2 && !(lb > TINY && s > TINY) {
            return 0.0;
        }
        // One division per step at most for the level (divisions are the slowest thing here).
        let inv_lb = if SE == 2 { 1.0 / lb } else { 0.0 };
        if MULT {
            let yhat = match SE {
                0 => lb,
                1 => lb + s,
                _ => lb * s,
            };
            if !(yhat > TINY && yhat < HUGE) {
                return 0.0;
            }
            // (y - yhat) / yhat, where y - yhat is e (times s for a multiplicative season).
            let eps = if SE == 2 { e * inv_lb } else { e / yhat };
            *sse += eps * eps;
            if SE == 1 {
                *slot = s + gamma * (yt - lb - s);
            } else if SE == 2 {
                *slot = s + gamma * (yt * inv_lb - s);
            }
            return yhat;
        } else {
            let err = if SE == 2 { e * s } else { e };
            *sse += err * err;
        }
        if SE == 1 {
            *slot = s + gamma * (yt - lb - s);
        } else if SE == 2 {
            *slot = s + gamma * (yt * inv_lb - s);
        }
        1.0
    };
    let mut dummy = 0.0f64;
    let even = y.len() & !1;
    // Blocks of 64 steps: after each, the cutoff (past it the caller does not need the rest).
    for block in y[..even].chunks(64) {
        if sse > sse_cut {
            return None;
        }
        for pair in block.chunks_exact(2) {
            let (y1, y2) = (pair[0], pair[1]);
            let j2 = if SE == 0 || j + 1 < m { j + 1 } else { 0 };
            let (s1, s2) = if SE == 0 {
                (0.0, 0.0)
            } else {
                (ring[j], ring[j2])
            };
            let (q1, q2) = (deseason(y1, s1), deseason(y2, s2));
            let lb1 = l + phi * b;
            let lb2 = cl * l + (cb * b + k1 * q1);
            let l_next = p * l + (pb * b + (u1 * q1 + alpha * q2));
            let b_next = if TR == 0 {
                0.0
            } else {
                (rb * b + (v1 * q1 + beta * q2)) + r * l
            };
            let ok1 = side(
                lb1,
                q1,
                s1,
                y1,
                if SE == 0 { &mut dummy } else { &mut ring[j] },
                &mut sse,
            );
            let ok2 = side(
                lb2,
                q2,
                s2,
                y2,
                if SE == 0 { &mut dummy } else { &mut ring[j2] },
                &mut sse,
            );
            if MULT || SE == 2 {
                let pr = ok1 * ok2;
                if pr == 0.0 {
                    return None;
                }
                if MULT {
                    take(pr);
                }
            }
            l = l_next;
            b = b_next;
            if SE != 0 {
                j = if j2 + 1 < m { j2 + 1 } else { 0 };
            }
        }
    }
    if let [yt] = y[even..] {
        let s = if SE == 0 { 0.0 } else { ring[j] };
        let q = deseason(yt, s);
        let lb = l + phi * b;
        let ok = side(
            lb,
            q,
            s,
            yt,
            if SE == 0 { &mut dummy } else { &mut ring[j] },
            &mut sse,
        );
        if ok == 0.0 {
            return None;
        }
        if MULT {
            take(ok);
        }
        l = a1 * lb + alpha * q;
        if TR != 0 {
            b = phi * b + beta * (q - lb);
        }
    }
    if !(sse.is_finite() && l.is_finite() && b.is_finite()) {
        return None;
    }
    let log_sum = if MULT {
        mant.ln() + exp2 as f64 * std::f64::consts::LN_2
    } else {
        0.0
    };
    Some(Pass { sse, log_sum, l, b })
}

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
fn likelihood(spec: Spec, n: usize, p: &Pass, floor: f64) -> f64 {
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
fn sse_floor(spec: Spec, y: &[f64]) -> f64 {
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

impl Fit {
    /// The point forecasts and their variances for steps 1..=h.
    pub fn forecast(&self, h: usize) -> (Vec<f64>, Vec<f64>) {
        let Params {
            alpha,
            beta,
            gamma,
            phi,
        } = self.par;
        let m = self.m;
        let seasonal = self.spec.has_season();
        // phi_k = phi + ... + phi^k (k for an undamped trend, 0 without one).
        let mut phi_k = Vec::with_capacity(h + 1);
        phi_k.push(0.0);
        let mut pk = 1.0;
        for k in 1..=h {
            let v = match self.spec.trend {
                Trend::N => 0.0,
                Trend::A => k as f64,
                Trend::Ad => {
                    pk *= phi;
                    phi_k[k - 1] + pk
                }
            };
            phi_k.push(v);
        }
        let season_at = |k: usize| {
            if seasonal {
                self.s[(self.n + k - 1) % m]
            } else {
                0.0
            }
        };
        let level = |k: usize| self.l + phi_k[k] * self.b;
        let mean: Vec<f64> = (1..=h)
            .map(|k| match self.spec.season {
                Season::N => level(k),
                Season::A => level(k) + season_at(k),
                Season::M => level(k) * season_at(k),
            })
            .collect();
        // c_j: the weight of the error j steps back in the forecast error (Hyndman et al.
        // 2008, table 6.1): alpha + beta phi_j + gamma [j is a multiple of m].
        let c = |j: usize, with_season: bool| {
            let mut v = alpha;
            if self.spec.has_trend() {
                v += beta * phi_k[j];
            }
            if with_season && seasonal && j.is_multiple_of(m) {
                v += gamma;
            }
            v
        };
        let s2 = self.sigma2;
        let var: Vec<f64> = match (self.spec.error, self.spec.season) {
            // Class 1: v_h = sigma² (1 + sum_{j<h} c_j²).
            (ErrorType::A, _) => {
                let mut acc = 1.0;
                (1..=h)
                    .map(|k| {
                        if k > 1 {
                            acc += c(k - 1, true).powi(2);
                        }
                        s2 * acc
                    })
                    .collect()
            }
            // Multiplicative errors this far ahead (a long gap before the horizon): the exact
            // recursions below cost h², so the first-order approximation
            // v_h = mu_h² sigma² (1 + sum_{j<h} c_j²) stands in.
            (ErrorType::M, _) if h > EXACT_STEPS => {
                let mut acc = 1.0;
                (1..=h)
                    .map(|k| {
                        if k > 1 {
                            acc += c(k - 1, true).powi(2);
                        }
                        mean[k - 1].powi(2) * s2 * acc
                    })
                    .collect()
            }
            // Class 2: theta_h = mu_h² + sigma² sum_{j<h} c_j² theta_{h-j},
            // v_h = (1 + sigma²) theta_h - mu_h².
            (ErrorType::M, Season::N | Season::A) => {
                let c2: Vec<f64> = (0..h).map(|j| c(j, true).powi(2)).collect();
                class2(&mean, &c2, s2)
            }
            // Class 3 (multiplicative season): the level-and-trend part is class 2 and is
            // scaled by the season. Exact for h <= m; beyond, the seasonal state's own error
            // (gamma) is taken as independent of the level's: E[s²] = s² (1 + gamma² sigma²)^k
            // after k seasonal updates.
            (ErrorType::M, Season::M) => {
                let base: Vec<f64> = (1..=h).map(level).collect();
                let c2: Vec<f64> = (0..h).map(|j| c(j, false).powi(2)).collect();
                let theta = class2_theta(&base, &c2, s2);
                (1..=h)
                    .map(|k| {
                        let s = season_at(k);
                        let updates = ((k - 1) / m) as i32;
                        let es2 = (1.0 + gamma * gamma * s2).powi(updates);
                        s * s * ((1.0 + s2) * theta[k - 1] * es2 - base[k - 1].powi(2))
                    })
                    .collect()
            }
        };
        // Rounding can leave a tiny negative; a NaN stays (the caller refuses the model).
        let var = var
            .into_iter()
            .map(|v| if v < 0.0 { 0.0 } else { v })
            .collect();
        (mean, var)
    }
}

/// Steps ahead up to which a multiplicative error's variance is computed exactly.
pub const EXACT_STEPS: usize = 1200;

fn class2_theta(mu: &[f64], c2: &[f64], s2: f64) -> Vec<f64> {
    let h = mu.len();
    let mut theta = Vec::with_capacity(h);
    for k in 0..h {
        // theta[k] = mu[k]² + s2 * sum_{j=1..k} c2[j] * theta[k - j]
        let mut acc = 0.0;
        for j in 1..=k {
            acc += c2[j] * theta[k - j];
        }
        theta.push(mu[k] * mu[k] + s2 * acc);
    }
    theta
}

fn class2(mu: &[f64], c2: &[f64], s2: f64) -> Vec<f64> {
    class2_theta(mu, c2, s2)
        .iter()
        .zip(mu)
        .map(|(t, m)| (1.0 + s2) * t - m * m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposition_recovers_a_clean_season() {
        let pattern = [3.0, -1.0, -4.0, 2.0];
        let y: Vec<f64> = (0..40)
            .map(|t| 10.0 + 0.5 * t as f64 + pattern[t % 4])
            .collect();
        let s = seasonal_indices(&y, 4, false).unwrap();
        for (a, b) in s.iter().zip(pattern) {
            assert!((a - b).abs() < 1e-9, "{s:?}");
        }
        let y: Vec<f64> = (0..36).map(|t| 10.0 * [1.2, 0.8, 1.0][t % 3]).collect();
        let s = seasonal_indices(&y, 3, true).unwrap();
        for (a, b) in s.iter().zip([1.2, 0.8, 1.0]) {
            assert!((a - b).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn class_one_variance_matches_the_closed_forms() {
        // ANN: sigma² (1 + alpha² (h - 1)).
        let fit = Fit {
            spec: Spec::new(ErrorType::A, Trend::N, Season::N),
            m: 1,
            par: Params {
                alpha: 0.3,
                beta: 0.0,
                gamma: 0.0,
                phi: 1.0,
            },
            lik: 0.0,
            aicc: 0.0,
            sigma2: 2.0,
            l: 5.0,
            b: 0.0,
            s: vec![],
            n: 10,
            evals: 0,
            coords: [0.0; 4],
        };
        let (mean, var) = fit.forecast(5);
        assert_eq!(mean, vec![5.0; 5]);
        for (h, v) in var.iter().enumerate() {
            assert!((v - 2.0 * (1.0 + 0.09 * h as f64)).abs() < 1e-12);
        }
        // AAN: sigma² (1 + (h-1)(alpha² + alpha beta h + beta² h (2h - 1) / 6)).
        let fit = Fit {
            spec: Spec::new(ErrorType::A, Trend::A, Season::N),
            par: Params {
                alpha: 0.3,
                beta: 0.1,
                gamma: 0.0,
                phi: 1.0,
            },
            b: 1.0,
            ..fit
        };
        let (mean, var) = fit.forecast(6);
        assert_eq!(mean[2], 8.0);
        for (i, v) in var.iter().enumerate() {
            let h = (i + 1) as f64;
            let want =
                2.0 * (1.0 + (h - 1.0) * (0.09 + 0.03 * h + 0.01 * h * (2.0 * h - 1.0) / 6.0));
            assert!((v - want).abs() < 1e-9, "{h}: {v} vs {want}");
        }
    }
}

#[cfg(test)]
mod reference {
    use super::*;

    /// The textbook innovations equations, one step at a time (Hyndman et al. 2008, table 2.3).
    fn textbook(
        spec: Spec,
        y: &[f64],
        par: Params,
        mut l: f64,
        b: f64,
        s: &mut [f64],
    ) -> (f64, f64, f64, f64) {
        let mut b = if spec.has_trend() { b } else { 0.0 };
        let m = s.len().max(1);
        let phi = match spec.trend {
            Trend::N => 0.0,
            Trend::A => 1.0,
            Trend::Ad => par.phi,
        };
        let (mut sse, mut log_sum) = (0.0, 0.0);
        for (t, &yt) in y.iter().enumerate() {
            let j = t % m;
            let st = if spec.has_season() { s[j] } else { 0.0 };
            let lb = l + phi * b;
            let mu = match spec.season {
                Season::N => lb,
                Season::A => lb + st,
                Season::M => lb * st,
            };
            // The innovation, and r: what multiplies it in each update.
            let (eps, r_l, r_b, r_s) = match spec.error {
                ErrorType::A => {
                    let e = yt - mu;
                    match spec.season {
                        Season::M => (e, 1.0 / st, 1.0 / st, 1.0 / lb),
                        _ => (e, 1.0, 1.0, 1.0),
                    }
                }
                ErrorType::M => {
                    let e = (yt - mu) / mu;
                    log_sum += mu.abs().ln();
                    match spec.season {
                        Season::M => (e, lb, lb, st),
                        _ => (e, mu, mu, mu),
                    }
                }
            };
            sse += eps * eps;
            l = lb + par.alpha * r_l * eps;
            b = if spec.has_trend() {
                phi * b + par.beta * r_b * eps
            } else {
                0.0
            };
            if spec.has_season() {
                s[j] = st + par.gamma * r_s * eps;
            }
        }
        (sse, log_sum, l, b)
    }

    #[test]
    fn the_fast_pass_is_the_textbook_recursion() {
        let y: Vec<f64> = (0..101)
            .map(|t| 50.0 + 0.3 * t as f64 + 10.0 * ((t % 6) as f64 - 2.5) + ((t * 37) % 11) as f64)
            .collect();
        let par = Params {
            alpha: 0.3,
            beta: 0.05,
            gamma: 0.2,
            phi: 0.9,
        };
        for e in [ErrorType::A, ErrorType::M] {
            for s in [Season::N, Season::A, Season::M] {
                for t in [Trend::N, Trend::A, Trend::Ad] {
                    let spec = Spec::new(e, t, s);
                    let season: Vec<f64> = match s {
                        Season::N => vec![],
                        Season::A => vec![-12.5, -2.5, 7.5, 17.5, 2.5, -12.5],
                        Season::M => vec![0.8, 0.95, 1.1, 1.3, 1.0, 0.85],
                    };
                    let (mut r1, mut r2) = (season.clone(), season.clone());
                    let fast = pass(spec, &y, par, 48.0, 0.4, &mut r1, f64::INFINITY).unwrap();
                    let (sse, log_sum, l, b) = textbook(spec, &y, par, 48.0, 0.4, &mut r2);
                    let close =
                        |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
                    assert!(
                        close(fast.l, l) && close(fast.b, b),
                        "{}: {fast:?} vs {l} {b}",
                        spec.name()
                    );
                    assert!(
                        close(fast.sse, sse),
                        "{}: {} vs {sse}",
                        spec.name(),
                        fast.sse
                    );
                    if e == ErrorType::M {
                        assert!(close(fast.log_sum, log_sum), "{}", spec.name());
                    }
                    for (a, b) in r1.iter().zip(&r2) {
                        assert!(close(*a, *b), "{}: {r1:?} vs {r2:?}", spec.name());
                    }
                }
            }
        }
    }
}
