//! Robust statistics and series helpers for detectors and forecasters.
//!
//! The hub's series are regular (one value per step) and use NaN for a step without a value (a
//! latency or an error rate in a step with no requests); everything here skips NaN.

use crate::Series;

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
