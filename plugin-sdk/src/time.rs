//! Wall-clock time for plugins: now, and the UTC timestamps and dates other systems' APIs take.

/// Milliseconds since the Unix epoch (UTC), from the host's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The civil date (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's
/// algorithm, exact for every day the hub can store).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Midnight UTC of a `YYYY-MM-DD` date, in Unix milliseconds; `None` for anything else.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..].parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let ms = days_from_civil(y, m, d) * 86_400_000;
    // 2026-02-30 is not a date: it does not come back the same.
    (date(ms) == s).then_some(ms)
}

/// `2026-12-07` for a time in Unix milliseconds (UTC).
pub fn date(ms: i64) -> String {
    let (y, m, d) = civil(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-12-07T10:00:00.000Z` for a time in Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let of_day = ms.rem_euclid(86_400_000);
    let (h, min, s, milli) = (
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1_000 % 60,
        of_day % 1_000,
    );
    format!("{}T{h:02}:{min:02}:{s:02}.{milli:03}Z", date(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_hub() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_066_600_123), "2025-11-25T10:30:00.123Z");
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn dates_parse_back() {
        for ms in [0, 951_782_400_000, 1_764_028_800_000] {
            assert_eq!(parse_date(&date(ms)), Some(ms));
        }
        for bad in ["2026-02-30", "2026-13-01", "26-01-01", "2026-1-01", "x"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
