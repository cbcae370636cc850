//! The models against hand-computed cases and the textbook equations.

use super::*;
#[allow(unused_imports)]
use super::{fit::*, forecast::*, inits::*, pass::*};

/// Hand-computed cases.
mod cases {
    use super::*;
    #[allow(unused_imports)]
    use super::{fit::*, forecast::*, inits::*, pass::*};

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

/// The fast pass against the textbook equations.
mod reference {
    use super::*;
    #[allow(unused_imports)]
    use super::{fit::*, forecast::*, inits::*, pass::*};

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
