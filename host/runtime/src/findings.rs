//! What a detector or forecaster answers, checked before the host keeps any of it: an answer that
//! breaks the contract anywhere is refused whole (the caller counts a failure and stores nothing).

use crate::{Anomaly, Forecast, Series};

/// Anomalies one `detect` call may report at most (and never more than the points it was given).
pub const MAX_ANOMALIES_PER_CALL: usize = 10_000;
/// The longest `reason`, in bytes.
pub const MAX_REASON_BYTES: usize = 1_000;

/// Why an answer is refused, naming the offending entry.
pub fn check_anomalies(series: &[Series], found: &[Anomaly]) -> Result<(), String> {
    let points: usize = series.iter().map(|s| s.ts_ms.len()).sum();
    let most = MAX_ANOMALIES_PER_CALL.min(points);
    if found.len() > most {
        return Err(format!(
            "{} anomalies for {points} points; at most {most}",
            found.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(found.len());
    for (i, a) in found.iter().enumerate() {
        let Some(s) = series.get(a.series as usize) else {
            return Err(format!(
                "anomaly {i} names series {} of {}",
                a.series,
                series.len()
            ));
        };
        if s.ts_ms.binary_search(&a.ts_ms).is_err() {
            return Err(format!(
                "anomaly {i} is at {} ms, which is not a point of series {}",
                a.ts_ms, a.series
            ));
        }
        let numbers = [
            ("value", Some(a.value)),
            ("score", Some(a.score)),
            ("expected", a.expected),
            ("lower", a.lower),
            ("upper", a.upper),
        ];
        if let Some((name, v)) = numbers
            .iter()
            .find_map(|(n, v)| v.filter(|v| !v.is_finite()).map(|v| (n, v)))
        {
            return Err(format!(
                "anomaly {i} has {name} = {v}; numbers must be finite"
            ));
        }
        if a.reason.len() > MAX_REASON_BYTES {
            return Err(format!(
                "anomaly {i}'s reason is {} bytes; at most {MAX_REASON_BYTES}",
                a.reason.len()
            ));
        }
        if !seen.insert((a.series, a.ts_ms)) {
            return Err(format!(
                "anomaly {i} reports series {} at {} ms a second time",
                a.series, a.ts_ms
            ));
        }
    }
    Ok(())
}

/// A forecast per series at most, each exactly `horizon` points on the series' own step right
/// after its last point, finite, with `lower <= mean <= upper`.
pub fn check_forecasts(series: &[Series], horizon: u32, out: &[Forecast]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::with_capacity(out.len());
    for f in out {
        let Some(s) = series.get(f.series as usize) else {
            return Err(format!(
                "a forecast names series {} of {}",
                f.series,
                series.len()
            ));
        };
        if !seen.insert(f.series) {
            return Err(format!("series {} is forecast twice", f.series));
        }
        let n = f.ts_ms.len();
        if n != horizon as usize || f.mean.len() != n || f.lower.len() != n || f.upper.len() != n {
            return Err(format!(
                "the forecast for series {} has {} times, {} means, {} lower and {} upper bounds; the horizon is {horizon}",
                f.series,
                n,
                f.mean.len(),
                f.lower.len(),
                f.upper.len()
            ));
        }
        let step = i64::from(s.step_ms);
        let last = s.ts_ms.last().copied().unwrap_or(0);
        for (j, &t) in f.ts_ms.iter().enumerate() {
            let want = last + step * (j as i64 + 1);
            if t != want {
                return Err(format!(
                    "the forecast for series {} has point {j} at {t} ms; the series' next steps put it at {want} ms",
                    f.series
                ));
            }
            let (lo, m, hi) = (f.lower[j], f.mean[j], f.upper[j]);
            if !(lo.is_finite() && m.is_finite() && hi.is_finite()) {
                return Err(format!(
                    "the forecast for series {} has a number that is not finite at point {j} ({lo}, {m}, {hi})",
                    f.series
                ));
            }
            if !(lo <= m && m <= hi) {
                return Err(format!(
                    "the forecast for series {} at point {j} has lower {lo}, mean {m}, upper {hi}; lower <= mean <= upper is required",
                    f.series
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn series() -> Vec<Series> {
        vec![Series {
            key: vec![("model".into(), "gpt-4o".into())],
            metric: "requests".into(),
            step_ms: 60_000,
            ts_ms: vec![0, 60_000, 120_000],
            values: vec![1.0, 2.0, f64::NAN],
        }]
    }

    fn anomaly() -> Anomaly {
        Anomaly {
            series: 0,
            ts_ms: 60_000,
            value: 2.0,
            expected: Some(1.0),
            lower: None,
            upper: Some(1.5),
            score: 3.0,
            severity: Severity::Warning,
            reason: "requests is 2× its usual".into(),
        }
    }

    #[test]
    fn anomalies_must_be_points_they_were_given() {
        let s = series();
        check_anomalies(&s, &[anomaly()]).unwrap();
        let bad = [
            (
                Anomaly {
                    series: 1,
                    ..anomaly()
                },
                "names series 1 of 1",
            ),
            (
                Anomaly {
                    ts_ms: 30_000,
                    ..anomaly()
                },
                "not a point of series 0",
            ),
            (
                Anomaly {
                    value: f64::NAN,
                    ..anomaly()
                },
                "value = NaN",
            ),
            (
                Anomaly {
                    upper: Some(f64::INFINITY),
                    ..anomaly()
                },
                "upper = inf",
            ),
            (
                Anomaly {
                    reason: "x".repeat(2_000),
                    ..anomaly()
                },
                "2000 bytes",
            ),
        ];
        for (a, message) in bad {
            let e = check_anomalies(&s, &[anomaly(), a]).unwrap_err();
            assert!(e.contains(message), "{e}");
        }
        let e = check_anomalies(&s, &[anomaly(), anomaly()]).unwrap_err();
        assert!(e.contains("a second time"), "{e}");
        let e = check_anomalies(&s, &vec![anomaly(); 4]).unwrap_err();
        assert!(e.contains("4 anomalies for 3 points"), "{e}");
    }

    #[test]
    fn forecasts_continue_the_series_at_its_step() {
        let s = series();
        let good = Forecast {
            series: 0,
            ts_ms: vec![180_000, 240_000],
            mean: vec![3.0, 4.0],
            lower: vec![2.0, 3.0],
            upper: vec![4.0, 5.0],
        };
        check_forecasts(&s, 2, std::slice::from_ref(&good)).unwrap();
        check_forecasts(&s, 2, &[]).unwrap();
        let bad = [
            (
                Forecast {
                    series: 3,
                    ..good.clone()
                },
                "names series 3",
            ),
            (
                Forecast {
                    ts_ms: vec![180_000],
                    ..good.clone()
                },
                "1 times, 2 means",
            ),
            (
                Forecast {
                    ts_ms: vec![180_000, 250_000],
                    ..good.clone()
                },
                "point 1 at 250000 ms",
            ),
            (
                Forecast {
                    mean: vec![3.0, f64::NAN],
                    ..good.clone()
                },
                "not finite at point 1",
            ),
            (
                Forecast {
                    lower: vec![3.5, 3.0],
                    ..good.clone()
                },
                "lower <= mean <= upper",
            ),
        ];
        for (f, message) in bad {
            let e = check_forecasts(&s, 2, &[f]).unwrap_err();
            assert!(e.contains(message), "{e}");
        }
        let e = check_forecasts(&s, 3, std::slice::from_ref(&good)).unwrap_err();
        assert!(e.contains("the horizon is 3"), "{e}");
        let e = check_forecasts(&s, 2, &[good.clone(), good]).unwrap_err();
        assert!(e.contains("forecast twice"), "{e}");
    }
}
