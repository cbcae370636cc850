//! A small Nelder–Mead simplex minimiser for up to [`MAX_DIM`] unconstrained coordinates.
//!
//! The objective may return `f64::INFINITY` for points it refuses (a model whose states go
//! negative, say): such points are simply never kept. It is also told a cutoff: the search only
//! needs to know whether the value is below it, so the objective may stop early and return
//! any value at or above the cutoff (INFINITY) once it knows it is not.

pub const MAX_DIM: usize = 4;

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest number of objective evaluations.
    pub max_evals: usize,
    /// Stop when the best and worst values of the simplex differ by less than this...
    pub f_tol: f64,
    /// ... and every vertex is within this of the best (each coordinate).
    pub x_tol: f64,
    /// The initial simplex: `x0` and `x0 + step * e_i` (`x0 - step * e_i` when that would
    /// leave the box).
    pub step: f64,
    /// Every coordinate is kept in [lower, upper] (trial points are clamped onto the box).
    pub lower: f64,
    pub upper: f64,
}

/// The minimum found: the point, its value and the evaluations spent.
#[derive(Debug, Clone, Copy)]
pub struct Minimum {
    pub x: [f64; MAX_DIM],
    pub f: f64,
    pub evals: usize,
}

/// Minimises `f(x, cutoff)` over the first `dim` coordinates, starting from `x0`.
pub fn minimize(
    dim: usize,
    x0: &[f64],
    opts: Options,
    mut f: impl FnMut(&[f64], f64) -> f64,
) -> Minimum {
    assert!((1..=MAX_DIM).contains(&dim) && x0.len() >= dim);
    const ALPHA: f64 = 1.0; // reflection
    const GAMMA: f64 = 2.0; // expansion
    const RHO: f64 = 0.5; // contraction
    const SIGMA: f64 = 0.5; // shrink

    let mut evals = 0usize;
    let mut eval = |x: &[f64; MAX_DIM], cutoff: f64, evals: &mut usize| {
        *evals += 1;
        let v = f(&x[..dim], cutoff);
        if v.is_nan() { f64::INFINITY } else { v }
    };
    const ALL: f64 = f64::INFINITY;
    let clamp = |mut p: [f64; MAX_DIM]| {
        for v in p.iter_mut().take(dim) {
            *v = v.clamp(opts.lower, opts.upper);
        }
        p
    };

    let mut pts = [[0.0f64; MAX_DIM]; MAX_DIM + 1];
    let mut vals = [f64::INFINITY; MAX_DIM + 1];
    pts[0][..dim].copy_from_slice(&x0[..dim]);
    pts[0] = clamp(pts[0]);
    vals[0] = eval(&pts[0], ALL, &mut evals);
    for i in 0..dim {
        let mut p = pts[0];
        p[i] += if p[i] + opts.step > opts.upper {
            -opts.step
        } else {
            opts.step
        };
        pts[i + 1] = p;
        vals[i + 1] = eval(&p, ALL, &mut evals);
    }
    let np = dim + 1;
    let mut order = [0usize; MAX_DIM + 1];

    loop {
        // Sort the vertices by value (insertion sort: at most five).
        for (i, o) in order.iter_mut().enumerate().take(np) {
            *o = i;
        }
        for i in 1..np {
            let mut j = i;
            while j > 0 && vals[order[j]] < vals[order[j - 1]] {
                order.swap(j, j - 1);
                j -= 1;
            }
        }
        let (best, worst, second) = (order[0], order[np - 1], order[np - 2]);
        if evals >= opts.max_evals {
            break;
        }
        let spread_f = vals[worst] - vals[best];
        let spread_x = (0..np)
            .flat_map(|v| (0..dim).map(move |k| (v, k)))
            .map(|(v, k)| (pts[v][k] - pts[best][k]).abs())
            .fold(0.0, f64::max);
        if spread_f.is_finite() && spread_f <= opts.f_tol && spread_x <= opts.x_tol {
            break;
        }

        // The centroid of all but the worst.
        let mut c = [0.0f64; MAX_DIM];
        for &v in order.iter().take(np - 1) {
            for k in 0..dim {
                c[k] += pts[v][k];
            }
        }
        for ck in c.iter_mut().take(dim) {
            *ck /= dim as f64;
        }
        let along = |t: f64| {
            let mut p = [0.0f64; MAX_DIM];
            for k in 0..dim {
                p[k] = c[k] + t * (pts[worst][k] - c[k]);
            }
            clamp(p)
        };

        // Past the worst vertex, the reflection's value does not matter (inside contraction).
        let xr = along(-ALPHA);
        let fr = eval(&xr, vals[worst], &mut evals);
        if fr < vals[best] {
            let xe = along(-GAMMA);
            let fe = eval(&xe, fr, &mut evals);
            if fe < fr {
                pts[worst] = xe;
                vals[worst] = fe;
            } else {
                pts[worst] = xr;
                vals[worst] = fr;
            }
            continue;
        }
        if fr < vals[second] {
            pts[worst] = xr;
            vals[worst] = fr;
            continue;
        }
        // Contract, outside the simplex if the reflection improved on the worst, else inside.
        let cut = vals[worst].min(fr);
        let (xc, fc) = if fr < vals[worst] {
            let x = along(-RHO);
            (x, eval(&x, cut, &mut evals))
        } else {
            let x = along(RHO);
            (x, eval(&x, cut, &mut evals))
        };
        if fc < vals[worst].min(fr) {
            pts[worst] = xc;
            vals[worst] = fc;
            continue;
        }
        // Shrink towards the best.
        let b = pts[best];
        for &v in order.iter().take(np).skip(1) {
            for (p, q) in pts[v].iter_mut().zip(b).take(dim) {
                *p = q + SIGMA * (*p - q);
            }
            vals[v] = eval(&pts[v], ALL, &mut evals);
        }
    }
    let best = (0..np)
        .min_by(|a, b| vals[*a].total_cmp(&vals[*b]))
        .unwrap_or(0);
    Minimum {
        x: pts[best],
        f: vals[best],
        evals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bottom_of_a_bowl_and_of_rosenbrock() {
        let opts = Options {
            max_evals: 2000,
            f_tol: 1e-12,
            x_tol: 1e-7,
            step: 0.5,
            lower: -10.0,
            upper: 10.0,
        };
        let m = minimize(3, &[0.0, 0.0, 0.0], opts, |x, _| {
            (x[0] - 1.0).powi(2) + 2.0 * (x[1] + 2.0).powi(2) + 3.0 * (x[2] - 0.5).powi(2)
        });
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] + 2.0).abs() < 1e-3,
            "{m:?}"
        );
        let m = minimize(2, &[-1.2, 1.0], opts, |x, cut| {
            // Stopping early (INFINITY past the cutoff) changes nothing.
            let v = 100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2);
            if v >= cut { f64::INFINITY } else { v }
        });
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{m:?}"
        );
        let m = minimize(2, &[-1.2, 1.0], opts, |x, _| {
            100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2)
        });
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{m:?}"
        );
        // A refused region is avoided.
        let m = minimize(1, &[2.0], opts, |x, _| {
            if x[0] < 1.0 {
                f64::INFINITY
            } else {
                (x[0] - 0.5).powi(2)
            }
        });
        assert!((m.x[0] - 1.0).abs() < 1e-3, "{m:?}");
    }
}
