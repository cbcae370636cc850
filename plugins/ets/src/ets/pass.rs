//! One pass of a model over the history: the innovations recursions, two steps at a time.

use super::*;

/// What one pass of a model over the history gives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pass {
    /// Sum of squared errors (relative errors for a multiplicative error).
    pub(super) sse: f64,
    /// Sum of ln|forecast| (multiplicative error only).
    pub(super) log_sum: f64,
    /// The final level and trend (the seasonal ring is updated in place).
    pub(super) l: f64,
    pub(super) b: f64,
}

/// Forecasts a multiplicative model refuses (at or below TINY, at or above HUGE, or not a
/// number): its states have left the region where the model makes sense. (Four forecasts
/// multiplied stay inside f64, which the log-likelihood's sum of logarithms relies on.)
pub(super) const TINY: f64 = 1e-10;
pub(super) const HUGE: f64 = 1e70;

/// A reusable buffer for one series' fits.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) ring: Vec<f64>,
}

/// Runs the model over `y` from (l, b, ring), the ring holding the seasonal state of position
/// `t mod m` at index `t mod m`. `None` when a multiplicative model's forecast leaves
/// (TINY, HUGE), or as soon as the sum of squares passes `sse_cut`.
pub(super) fn pass(
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
