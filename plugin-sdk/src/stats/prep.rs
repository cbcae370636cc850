//! From a host series to a gap-free history: missing steps (NaN) are filled by linear
//! interpolation between their finite neighbours, leading ones are dropped, and trailing ones
//! become a `gap` the forecast starts by stepping over.

/// A history ready for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// From the first finite value to the last, interior gaps interpolated.
    pub y: Vec<f64>,
    /// Whether each point of `y` was observed (false: interpolated).
    pub observed: Vec<bool>,
    /// Steps between the last finite value and the series' last timestamp: the forecast's first
    /// point is `gap + 1` steps after the last value.
    pub gap: usize,
    /// Every finite value is >= 0 (a count, a cost, a latency): forecasts are clamped at 0.
    pub nonneg: bool,
}

/// `values` prepared, with `len` the number of timestamps (steps past the end of `values` count
/// as missing). `None` when there is no finite value at all.
pub fn prepare(values: &[f64], len: usize) -> Option<Prepared> {
    let values = &values[..values.len().min(len)];
    let first = values.iter().position(|v| v.is_finite())?;
    let last = values.iter().rposition(|v| v.is_finite())?;
    let mut y = Vec::with_capacity(last - first + 1);
    let mut observed = Vec::with_capacity(last - first + 1);
    let mut prev = first; // index of the last finite value seen
    for i in first..=last {
        let v = values[i];
        if v.is_finite() {
            // Fill the run of missing steps since `prev` on the line from values[prev] to v.
            let run = i - prev;
            for k in 1..run {
                let w = k as f64 / run as f64;
                y.push(values[prev] + w * (v - values[prev]));
                observed.push(false);
            }
            y.push(v);
            observed.push(true);
            prev = i;
        }
    }
    let nonneg = y.iter().all(|v| *v >= 0.0);
    Some(Prepared {
        y,
        observed,
        gap: len - 1 - last,
        nonneg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_trims_outside() {
        let nan = f64::NAN;
        let p = prepare(&[nan, 1.0, nan, nan, 4.0, 5.0, nan], 7).unwrap();
        assert_eq!(p.y, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(p.observed, vec![true, false, false, true, true]);
        assert_eq!(p.gap, 1);
        assert!(p.nonneg);
        // More timestamps than values: the missing tail is a gap.
        let p = prepare(&[-1.0, 2.0], 4).unwrap();
        assert_eq!((p.gap, p.nonneg), (2, false));
        assert!(prepare(&[nan, nan], 2).is_none());
        assert!(prepare(&[], 0).is_none());
    }
}
