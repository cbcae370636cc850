//! Robust statistics and series helpers for detectors and forecasters: medians and deviations,
//! seasonal profiles, the Poisson tail, a season's length found from the data (`season`), and
//! gap-free histories from series with missing steps (`prep`).
//!
//! The hub's series are regular (one value per step) and use NaN for a step without a value (a
//! latency or an error rate in a step with no requests); everything here skips NaN.

use crate::Series;

pub mod prep;
pub mod season;

/// The median of the finite values, `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        Some(m)
    } else {
        let below = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((below + m) / 2.0)
    }
}

/// The median absolute deviation from `center`, scaled by 1.4826 so that it estimates the
/// standard deviation of normal data; 0 without finite values.
pub fn mad(values: &[f64], center: f64) -> f64 {
    let dev: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| (x - center).abs())
        .collect();
    median(&dev).unwrap_or(0.0) * 1.4826
}

/// The `q` quantile (0..=1) of the finite values, by linear interpolation.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// The mean of the finite values.
pub fn mean(values: &[f64]) -> Option<f64> {
    let (sum, n) = values
        .iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// What a seasonal series leads one to expect: for each point from `start` on, the median of
/// the same time on earlier seasons (a day or a week of steps) and the steps around it (±1/48
/// of the season), from the past only. [`Profile::level`] says how the series runs against it
/// lately (a quieter day, a busier week).
pub struct Profile {
    start: usize,
    values: Vec<f64>,
}

impl Profile {
    /// The profile of `v` at `season` steps for the points from `start` on, leaving out the
    /// points `skip` says (steps with too little volume to mean anything).
    pub fn build(v: &[f64], season: usize, start: usize, skip: &dyn Fn(usize) -> bool) -> Profile {
        let around = (season / 48).clamp(1, 12);
        let values = (start..v.len())
            .map(|i| {
                let mut vals = Vec::new();
                let mut k = 1;
                while k * season <= i {
                    let center = i - k * season;
                    let lo = center.saturating_sub(around);
                    let hi = (center + around).min(i - 1);
                    vals.extend((lo..=hi).filter(|&j| !skip(j)).map(|j| v[j]));
                    k += 1;
                }
                median(&vals).unwrap_or(f64::NAN)
            })
            .collect();
        Profile { start, values }
    }

    /// The expected value at `i` (NaN outside the built stretch or without a past).
    pub fn at(&self, i: usize) -> f64 {
        i.checked_sub(self.start)
            .and_then(|k| self.values.get(k))
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// The series' level against the profile over the `window` points before `i`: the median
    /// ratio (1 when fewer than 6 points say).
    pub fn level(&self, v: &[f64], i: usize, window: usize, skip: &dyn Fn(usize) -> bool) -> f64 {
        let ratios: Vec<f64> = (i.saturating_sub(window)..i)
            .filter(|&j| !skip(j) && v[j].is_finite() && self.at(j) > 0.0)
            .map(|j| v[j] / self.at(j))
            .collect();
        if ratios.len() < 6 {
            return 1.0;
        }
        median(&ratios).unwrap_or(1.0)
    }
}

/// How unlikely `k` or more events are when `lambda` are expected (the Poisson upper tail), as
/// the normal deviate with the same tail (0 when `k` is not above `lambda`): 3 errors where 0.4
/// are usual is z ≈ 2.9, not the 4.1 the normal approximation would say.
pub fn poisson_tail_z(k: f64, lambda: f64) -> f64 {
    if k.is_nan() || lambda.is_nan() || k <= lambda {
        return 0.0;
    }
    if lambda <= 0.0 {
        return f64::INFINITY;
    }
    // log P(X = k) by Stirling's series, then the tail as a sum of falling terms.
    let ln_fact = |n: f64| {
        if n < 2.0 {
            0.0
        } else {
            n * n.ln() - n + 0.5 * (std::f64::consts::TAU * n).ln() + 1.0 / (12.0 * n)
                - 1.0 / (360.0 * n * n * n)
        }
    };
    let mut ln_term = k * lambda.ln() - lambda - ln_fact(k);
    let mut ln_tail = ln_term;
    let mut j = k;
    loop {
        j += 1.0;
        ln_term += (lambda / j).ln();
        let add = ln_term - ln_tail;
        if add < -40.0 || j > k + 10_000.0 {
            break;
        }
        ln_tail += add.exp().ln_1p();
    }
    normal_deviate_of_ln_tail(ln_tail.min(0.0))
}

/// The z with an upper normal tail of e^`ln_p` (Acklam's approximation; exact enough here).
fn normal_deviate_of_ln_tail(ln_p: f64) -> f64 {
    let p = ln_p.exp();
    if p >= 0.5 {
        return 0.0;
    }
    let q = (-2.0 * ln_p).sqrt();
    let c = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    let d = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    if p < 0.02425 {
        return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    let a = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    let b = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    let r = p - 0.5;
    let t = r * r;
    -(((((a[0] * t + a[1]) * t + a[2]) * t + a[3]) * t + a[4]) * t + a[5]) * r
        / (((((b[0] * t + b[1]) * t + b[2]) * t + b[3]) * t + b[4]) * t + 1.0)
}

/// Steps in a day and in a week at this step (0 when the step does not divide them).
pub fn seasons(step_ms: u32) -> (usize, usize) {
    let step = u64::from(step_ms.max(1));
    let per = |period: u64| {
        if period.is_multiple_of(step) {
            (period / step) as usize
        } else {
            0
        }
    };
    (per(86_400_000), per(7 * 86_400_000))
}

/// `model=gpt-4o, app=bot`; `all traffic` for the tenant's total.
pub fn key_text(key: &[(String, String)]) -> String {
    if key.is_empty() {
        return "all traffic".into();
    }
    key.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the series of `metric` with the same key as `of`, if it was given.
pub fn sibling(series: &[Series], of: &Series, metric: &str) -> Option<usize> {
    series
        .iter()
        .position(|s| s.metric == metric && s.key == of.key && s.step_ms == of.step_ms)
}

const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// The day of the week (UTC) of a time, as a word.
pub fn weekday(ts_ms: i64) -> &'static str {
    DAYS[ts_ms.div_euclid(86_400_000).rem_euclid(7) as usize]
}

/// `HH:MM` (UTC) of a time.
pub fn clock(ts_ms: i64) -> String {
    let minutes = ts_ms.rem_euclid(86_400_000) / 60_000;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A number for a sentence: a few significant digits, no noise (`0.0213`, `4.1`, `1,250`).
pub fn readable(x: f64) -> String {
    let a = x.abs();
    if a >= 1_000.0 {
        let s = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if a >= 10.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.1}")
    } else if a == 0.0 {
        "0".into()
    } else {
        let digits = (-a.log10().floor()) as usize + 1;
        format!("{x:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_statistics_skip_what_is_not_a_value() {
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert!((mad(&[1.0, 2.0, 3.0, 4.0, 100.0], 3.0) - 1.4826).abs() < 1e-9);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        assert_eq!(mean(&[1.0, f64::NAN, 3.0]), Some(2.0));
        assert_eq!(seasons(60_000), (1_440, 10_080));
        assert_eq!(seasons(3_600_000), (24, 168));
        assert_eq!(seasons(86_400_000), (1, 7));
    }

    #[test]
    fn a_poisson_tail_is_a_normal_deviate() {
        // P(X >= 3 | 0.4) = 0.00793 → z ≈ 2.41; P(X >= 10 | 1) ≈ 1.1e-7 → z ≈ 5.18.
        assert!(
            (poisson_tail_z(3.0, 0.4) - 2.41).abs() < 0.02,
            "{}",
            poisson_tail_z(3.0, 0.4)
        );
        assert!(
            (poisson_tail_z(10.0, 1.0) - 5.18).abs() < 0.03,
            "{}",
            poisson_tail_z(10.0, 1.0)
        );
        // A large count: close to the normal approximation.
        let z = poisson_tail_z(1_200.0, 1_000.0);
        assert!((z - 6.3).abs() < 0.2, "{z}");
        assert_eq!(poisson_tail_z(2.0, 5.0), 0.0);
        assert!(poisson_tail_z(5.0, 0.0).is_infinite());
    }

    #[test]
    fn times_and_numbers_read_well() {
        // 2026-12-08T14:05:00Z is a Tuesday.
        let t = 1_796_738_700_000;
        assert_eq!((weekday(t), clock(t).as_str()), ("Tuesday", "14:05"));
        assert_eq!(weekday(0), "Thursday");
        assert_eq!(readable(1_250.4), "1,250");
        assert_eq!(readable(4.14), "4.1");
        assert_eq!(readable(0.02134), "0.021");
        assert_eq!(readable(42.0), "42");
    }
}
