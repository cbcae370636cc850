//! Change-point detector: has a series moved to a new level, or onto a new trend, and stayed
//! there? A two-sided CUSUM over the series' deviations from what its past predicts.
//!
//! What the past predicts for a point is the median of the same time on earlier days when the
//! history has two days and that fits better (a daily rhythm is not a change), else the
//! robust line (Theil–Sen) through the `reference` points before the `recent` ones. Deviations
//! are scaled by the reference's robust spread (floored like the level detector's), clipped to
//! ±`clip` so that one spike cannot make a change on its own, and summed: a change is reported
//! at the point where a sum first passes `threshold`, once (later runs see the same crossing
//! as older than their newest point, or see the change the run before them saw), with the
//! estimated start of the change in the reason.

use hub_plugin_sdk::stats::{self, Profile, key_text, readable};
use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The CUSUM's decision interval, in robust deviations (h).
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// The shift it is tuned for, in robust deviations per point (2k; k = drift / 2 is
    /// subtracted from each deviation).
    #[serde(default = "drift")]
    pub drift: f64,
    /// Deviations are clipped to this many robust deviations.
    #[serde(default = "clip")]
    pub clip: f64,
    /// A change of this many robust deviations on average is critical.
    #[serde(default = "critical")]
    pub critical: f64,
    /// Points at the end where a change is looked for.
    #[serde(default = "recent")]
    pub recent: usize,
    /// Points before them that say what is normal.
    #[serde(default = "reference")]
    pub reference: usize,
    /// The newest points at which a crossing is reported.
    #[serde(default = "one")]
    pub check_last: usize,
    /// The spread is at least this share of the usual level.
    #[serde(default = "relative_floor")]
    pub relative_floor: f64,
    /// `auto`, `daily` or `none`: whether the same time on earlier days predicts a point.
    #[serde(default = "auto")]
    pub seasonal: String,
}

fn threshold() -> f64 {
    6.0
}
fn drift() -> f64 {
    2.0
}
fn clip() -> f64 {
    4.0
}
fn critical() -> f64 {
    6.0
}
fn recent() -> usize {
    36
}
fn reference() -> usize {
    288
}
fn one() -> usize {
    1
}
fn relative_floor() -> f64 {
    0.1
}
fn auto() -> String {
    "auto".into()
}

pub struct ChangePoint {
    config: Config,
}

/// A change found in one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Where the sum crossed the threshold.
    pub at: usize,
    /// Where the change is estimated to have started.
    pub start: usize,
    pub up: bool,
    /// The mean deviation from the prediction since the start, robust deviations.
    pub size: f64,
    /// The predicted value at `at`.
    pub expected: f64,
    /// Since the start: the mean of the series, and the mean of what its past predicted.
    pub after: f64,
    pub predicted: f64,
    pub trend: bool,
    pub score: f64,
    pub scale: f64,
}

/// Theil–Sen: the median of pairwise slopes (on at most ~60 evenly spaced points), and the
/// median intercept.
fn robust_line(points: &[(f64, f64)]) -> (f64, f64) {
    let stride = (points.len() / 60).max(1);
    let p: Vec<(f64, f64)> = points.iter().step_by(stride).copied().collect();
    let mut slopes = Vec::with_capacity(p.len() * p.len() / 2);
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            if p[j].0 != p[i].0 {
                slopes.push((p[j].1 - p[i].1) / (p[j].0 - p[i].0));
            }
        }
    }
    let slope = stats::median(&slopes).unwrap_or(0.0);
    let intercepts: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    (slope, stats::median(&intercepts).unwrap_or(0.0))
}

/// Whether deviations `(index, value)` look more like a bend (0, then growing from some point)
/// than a step (one level before `start`, another after): the better least-squares fit wins.
fn is_trend(points: &[(f64, f64)], start: f64) -> bool {
    if points.len() < 6 {
        return false;
    }
    let sse_mean = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>()
    };
    let side = |after: bool| -> Vec<f64> {
        points
            .iter()
            .filter(|p| (p.0 >= start) == after)
            .map(|p| p.1)
            .collect()
    };
    let step = sse_mean(&side(false)) + sse_mean(&side(true));
    // The best hinge: c + slope × max(0, x − b), fitted by least squares for each bend b.
    let hinge = points[..points.len() - 2]
        .iter()
        .map(|&(b, _)| {
            let xs: Vec<f64> = points.iter().map(|p| (p.0 - b).max(0.0)).collect();
            let n = xs.len() as f64;
            let (mx, my) = (
                xs.iter().sum::<f64>() / n,
                points.iter().map(|p| p.1).sum::<f64>() / n,
            );
            let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
            let sxy: f64 = xs
                .iter()
                .zip(points)
                .map(|(x, p)| (x - mx) * (p.1 - my))
                .sum();
            let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            xs.iter()
                .zip(points)
                .map(|(x, p)| (p.1 - (my + slope * (x - mx))).powi(2))
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    hinge < step
}

fn is_count(metric: &str) -> bool {
    matches!(
        metric,
        "requests" | "errors" | "input_tokens" | "output_tokens"
    )
}

impl ChangePoint {
    /// The prediction of each point from `from` on, from the past only: the seasonal profile
    /// (the same time on earlier weeks when two weeks are there, else on earlier days) at the
    /// level the series ran at in the hours before `from`, or the robust line through the
    /// reference when it missed the day before `from` clearly less (and a weekly profile
    /// over a daily one when it did).
    fn predictions(&self, v: &[f64], from: usize, step_ms: u32) -> Option<Vec<f64>> {
        let n = v.len();
        let (day, week) = stats::seasons(step_ms);
        let level_window = (21_600_000 / step_ms.max(1) as usize).max(6);
        let ref_from = from.saturating_sub(self.config.reference);
        let points: Vec<(f64, f64)> = (ref_from..from)
            .filter(|&i| v[i].is_finite())
            .map(|i| (i as f64, v[i]))
            .collect();
        if points.len() < 10 {
            return None;
        }
        let (slope, intercept) = robust_line(&points);
        let line: Vec<f64> = (from..n).map(|i| intercept + slope * i as f64).collect();
        let judged_from = from.saturating_sub(day.max(self.config.reference));
        let seasons: Vec<usize> = match self.config.seasonal.as_str() {
            "none" => Vec::new(),
            "daily" => vec![day],
            _ => vec![day, week],
        }
        .into_iter()
        .filter(|&m| m >= 2 && judged_from >= 2 * m + level_window)
        .collect();
        let none = |_: usize| false;
        let miss = |pred: &dyn Fn(usize) -> f64| {
            let m: Vec<f64> = (judged_from..from)
                .filter(|&i| v[i].is_finite())
                .map(|i| (v[i] - pred(i)).abs())
                .collect();
            stats::median(&m).unwrap_or(f64::INFINITY)
        };
        let mut best = (line, miss(&|i| intercept + slope * i as f64));
        if self.config.seasonal != "auto" && !seasons.is_empty() {
            best.1 = f64::INFINITY;
        }
        // A profile is preferred unless the line misses clearly less: a weak daily rhythm under
        // noise still moves the level by more than the noise over hours.
        let margin = 1.2;
        for season in seasons {
            let profile = Profile::build(v, season, judged_from, &none);
            let e = miss(&|i| profile.at(i) * profile.level(v, i, level_window, &none));
            if e < margin * best.1 {
                // A weekly profile over a daily one unless the daily one misses clearly less:
                // two weeks know the weekend from the weekdays, and the day before may not.
                let level = profile.level(v, from, level_window, &none);
                best = ((from..n).map(|i| profile.at(i) * level).collect(), e);
            }
        }
        Some(best.0)
    }

    /// The first crossing of the CUSUM in the series' recent points, if any.
    pub fn change(&self, s: &Series) -> Option<Change> {
        let c = &self.config;
        let v = &s.values;
        let n = v.len().min(s.ts_ms.len());
        if n < c.recent + 10 {
            return None;
        }
        let from = n - c.recent;
        let pred = self.predictions(&v[..n], from, s.step_ms)?;
        // The spread of the reference around its own prediction (in-sample for the line,
        // which is what the recent points are judged against).
        let ref_from = from.saturating_sub(c.reference);
        let level = stats::median(&v[ref_from..from])?;
        let ref_pred = self.predictions(
            &v[..from],
            ref_from.max(from.saturating_sub(c.recent.max(48))),
            s.step_ms,
        );
        let ref_pairs: Vec<(f64, f64)> = match &ref_pred {
            Some(p) => {
                let start = from - p.len();
                (start..from).map(|i| (v[i], p[i - start])).collect()
            }
            None => v[ref_from..from].iter().map(|x| (*x, level)).collect(),
        };
        let ref_resid: Vec<f64> = ref_pairs.iter().map(|(x, p)| x - p).collect();
        // How much the series misses its prediction in proportion to it (the noise of a cost or
        // a latency grows with the level): each point's scale is at least this share of its
        // prediction.
        let relative: Vec<f64> = ref_pairs
            .iter()
            .filter(|(x, p)| x.is_finite() && *p > 0.0)
            .map(|(x, p)| (x - p).abs() / p)
            .collect();
        let noise = stats::median(&relative).unwrap_or(0.0) * 1.4826;
        // And in proportion to its square root (a count's noise, or a sum over requests):
        // quiet hours are relatively noisier than busy ones.
        let root: Vec<f64> = ref_pairs
            .iter()
            .filter(|(x, p)| x.is_finite() && *p > 0.0)
            .map(|(x, p)| (x - p).abs() / p.sqrt())
            .collect();
        let root_noise = stats::median(&root).unwrap_or(0.0) * 1.4826;
        let mut scale = stats::mad(&ref_resid, stats::median(&ref_resid).unwrap_or(0.0))
            .max(c.relative_floor * level.abs());
        if is_count(&s.metric) {
            scale = scale.max(level.max(1.0).sqrt());
        }
        if !(scale > 0.0 && scale.is_finite()) {
            return None;
        }
        let k = c.drift / 2.0;
        let (mut up, mut down) = (0.0f64, 0.0f64);
        let (mut up_start, mut down_start) = (from, from);
        for i in from..n {
            let r = v[i] - pred[i - from];
            if !r.is_finite() {
                continue;
            }
            // Each point's own floors: a share of what is expected there, and for counts the
            // Poisson spread at that level (a peak is noisier than the night the reference saw).
            let p = pred[i - from].abs();
            let mut at = scale
                .max(c.relative_floor.max(noise) * p)
                .max(root_noise * p.sqrt());
            if is_count(&s.metric) {
                at = at.max(p.max(1.0).sqrt());
            }
            let z = (r / at).clamp(-c.clip, c.clip);
            if up == 0.0 {
                up_start = i;
            }
            if down == 0.0 {
                down_start = i;
            }
            up = (up + z - k).max(0.0);
            down = (down - z - k).max(0.0);
            if up > c.threshold || down > c.threshold {
                let is_up = up > c.threshold;
                let start = if is_up { up_start } else { down_start };
                let resid: Vec<f64> = (start..=i)
                    .filter(|&j| v[j].is_finite())
                    .map(|j| v[j] - pred[j - from])
                    .collect();
                let mean = stats::mean(&resid).unwrap_or(0.0);
                let since: Vec<usize> = (start..=i).filter(|&j| v[j].is_finite()).collect();
                let after =
                    stats::mean(&since.iter().map(|&j| v[j]).collect::<Vec<_>>()).unwrap_or(v[i]);
                let predicted =
                    stats::mean(&since.iter().map(|&j| pred[j - from]).collect::<Vec<_>>())
                        .unwrap_or(pred[i - from]);
                let window: Vec<(f64, f64)> = (from..=i)
                    .filter(|&j| v[j].is_finite())
                    .map(|j| (j as f64, v[j] - pred[j - from]))
                    .collect();
                let trend = is_trend(&window, start as f64);
                return Some(Change {
                    at: i,
                    start,
                    up: is_up,
                    size: mean / scale,
                    expected: pred[i - from],
                    after,
                    predicted,
                    trend,
                    score: up.max(down),
                    scale,
                });
            }
        }
        None
    }
}

impl Detector for ChangePoint {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if !(config.threshold > 0.0 && config.threshold.is_finite()) {
            return Err(Error::bad_config("threshold: must be above 0"));
        }
        if !(config.drift >= 0.0 && config.drift.is_finite()) {
            return Err(Error::bad_config("drift: must be 0 or more"));
        }
        if config.clip <= config.drift / 2.0 {
            return Err(Error::bad_config("clip: must be above drift / 2"));
        }
        if config.recent < 3 || config.reference < 10 {
            return Err(Error::bad_config(
                "recent: at least 3 points, reference: at least 10",
            ));
        }
        if !["auto", "daily", "none"].contains(&config.seasonal.as_str()) {
            return Err(Error::bad_config("seasonal: must be auto, daily or none"));
        }
        Ok(ChangePoint { config })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        let c = &self.config;
        let mut out = Vec::new();
        for (si, s) in input.iter().enumerate() {
            let Some(ch) = self.change(s) else { continue };
            let n = s.values.len().min(s.ts_ms.len());
            if ch.at + c.check_last < n {
                // Crossed before this run's newest points: an earlier run reported it.
                continue;
            }
            // What the previous run saw (the series without this run's newest points): a
            // change it had already found is not found again one point later.
            let before = Series {
                ts_ms: s.ts_ms[..n - c.check_last.min(n)].to_vec(),
                values: s.values[..n - c.check_last.min(n)].to_vec(),
                ..s.clone()
            };
            if self.change(&before).is_some() {
                continue;
            }
            let what = if ch.trend {
                "trend changed"
            } else {
                "level shifted"
            };
            let direction = if ch.up { "up" } else { "down" };
            let by = if ch.predicted.abs() > 0.0 {
                format!(
                    ", {:.0}% {} what its past predicts,",
                    ((ch.after - ch.predicted) / ch.predicted.abs() * 100.0).abs(),
                    if ch.up { "above" } else { "below" }
                )
            } else {
                String::new()
            };
            out.push(Anomaly {
                series: si as u32,
                ts_ms: s.ts_ms[ch.at],
                value: s.values[ch.at],
                expected: Some(ch.expected),
                lower: Some(ch.expected - c.threshold * ch.scale),
                upper: Some(ch.expected + c.threshold * ch.scale),
                score: ch.score,
                severity: if ch.size.abs() >= c.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                reason: format!(
                    "{} for {}: {what} {direction}{by} since {} ({} on average against {} expected)",
                    s.metric,
                    key_text(&s.key),
                    stats::clock(s.ts_ms[ch.start]),
                    readable(ch.after),
                    readable(ch.predicted)
                ),
            });
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!(ChangePoint);

#[cfg(test)]
mod tests {
    use super::*;

    const M: u32 = 300_000;

    fn series(values: Vec<f64>) -> Series {
        Series {
            key: vec![("app".into(), "bot".into())],
            metric: "latency_p95_ms".into(),
            step_ms: M,
            ts_ms: (0..values.len() as i64).map(|i| i * i64::from(M)).collect(),
            values,
        }
    }

    fn noise(i: usize) -> f64 {
        (((i * 7919) % 23) as f64 - 11.0) * 2.0
    }

    fn detector(config: serde_json::Value) -> ChangePoint {
        ChangePoint::new(serde_json::from_value(config).unwrap()).unwrap()
    }

    /// Runs the detector as the hub does, one run per new point, and returns where it reported.
    fn runs(values: &[f64], from: usize) -> Vec<(usize, Anomaly)> {
        let mut d = detector(serde_json::json!({}));
        let mut out = Vec::new();
        for end in from..=values.len() {
            for a in d.detect(&[series(values[..end].to_vec())]).unwrap() {
                out.push((end - 1, a));
            }
        }
        out
    }

    #[test]
    fn a_level_shift_is_reported_once_soon_after_it_starts() {
        let mut v: Vec<f64> = (0..400).map(|i| 800.0 + noise(i)).collect();
        for (i, x) in v.iter_mut().enumerate().skip(350) {
            *x += 200.0 + noise(i + 3);
        }
        let found = runs(&v, 300);
        assert_eq!(found.len(), 1, "{found:?}");
        let (at, a) = &found[0];
        assert!((351..=354).contains(at), "found at {at}");
        assert!(a.reason.contains("level shifted up, 2"), "{}", a.reason);
        assert!(
            a.reason.contains("% above what its past predicts, since"),
            "{}",
            a.reason
        );
        assert!(a.reason.contains("since 05:10"), "the start: {}", a.reason);
    }

    #[test]
    fn a_single_spike_is_not_a_change() {
        let mut v: Vec<f64> = (0..400).map(|i| 800.0 + noise(i)).collect();
        v[360] = 5_000.0;
        assert!(runs(&v, 300).is_empty());
    }

    #[test]
    fn a_new_trend_is_a_change_and_a_steady_one_is_not() {
        let steady: Vec<f64> = (0..400)
            .map(|i| 500.0 + 2.0 * i as f64 + noise(i))
            .collect();
        assert!(
            runs(&steady, 300).is_empty(),
            "a trend the reference shows is normal"
        );
        let mut bend = steady.clone();
        for (i, x) in bend.iter_mut().enumerate().skip(340) {
            *x += 15.0 * (i - 340) as f64;
        }
        let found = runs(&bend, 300);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].1.reason.contains("trend changed up"),
            "{}",
            found[0].1.reason
        );
    }

    #[test]
    fn a_daily_rhythm_is_not_a_change() {
        let day = 288;
        let v: Vec<f64> = (0..4 * day)
            .map(|i| {
                let h = (i % day) as f64 / 12.0;
                200.0 + 600.0 * (-((h - 14.0) / 3.0).powi(2)).exp() + noise(i)
            })
            .collect();
        assert!(runs(&v, 3 * day).is_empty());
    }

    #[test]
    fn short_and_gappy_series_are_fine() {
        let mut d = detector(serde_json::json!({}));
        assert!(d.detect(&[series(vec![1.0; 20])]).unwrap().is_empty());
        let gaps: Vec<f64> = (0..400)
            .map(|i| if i % 5 == 0 { f64::NAN } else { 100.0 })
            .collect();
        assert!(d.detect(&[series(gaps)]).unwrap().is_empty());
    }
}
