//! Time buckets of the rollups. All times are milliseconds since the Unix epoch, UTC.

use chrono::{DateTime, SecondsFormat, Utc};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The granularities the hub keeps pre-aggregated data at, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Self::Minute, Self::Hour, Self::Day];

    pub const fn millis(self) -> i64 {
        match self {
            Self::Minute => MINUTE_MS,
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }

    /// The small integer stored in the `res` column of the rollup table.
    pub const fn code(self) -> i16 {
        match self {
            Self::Minute => 1,
            Self::Hour => 2,
            Self::Day => 3,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn bucket(self, ts_ms: i64) -> i64 {
        floor_to(ts_ms, self.millis())
    }
}

/// Rounds down to a multiple of `step` (also for times before 1970).
pub fn floor_to(ts_ms: i64, step: i64) -> i64 {
    ts_ms.div_euclid(step) * step
}

/// Rounds up to a multiple of `step`.
pub fn ceil_to(ts_ms: i64, step: i64) -> i64 {
    let floor = floor_to(ts_ms, step);
    if floor == ts_ms { floor } else { floor + step }
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats as RFC 3339 with milliseconds, e.g. `2026-11-25T10:30:00.000Z`.
pub fn to_rfc3339(ts_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ts_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ts_ms.to_string())
}

/// Parses RFC 3339 (`2026-11-25T10:30:00Z`, with optional fraction and offset) into epoch ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parses a query-string time: RFC 3339, epoch milliseconds, or a relative `now-24h` / `now`.
pub fn parse_query_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        return parse_duration_ms(rest).map(|d| now_ms - d);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!("'{s}' is not a time: use RFC 3339 (2026-11-25T10:00:00Z), epoch milliseconds, or now-24h")
    })
}

/// Parses `30s`, `5m`, `1h`, `7d` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        format!("'{s}' is not a duration: use a number and s, m, h or d (e.g. 24h)")
    })?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        _ => return Err(format!("'{s}' has unknown unit '{unit}': use s, m, h or d")),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("'{s}' is too long a duration"))
}

/// Milliseconds in the largest unit that divides them: `7d`, `90m`, `30s`, `0s`; the inverse of
/// [`parse_duration_ms`].
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    for (unit, len) in [
        ("d", DAY_MS),
        ("h", HOUR_MS),
        ("m", MINUTE_MS),
        ("s", 1_000),
    ] {
        if ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_in_their_largest_unit_and_parse_back() {
        for (ms, text) in [
            (7 * DAY_MS, "7d"),
            (90 * MINUTE_MS, "90m"),
            (30_000, "30s"),
            (0, "0s"),
            (1_500, "1500ms"),
        ] {
            assert_eq!(format_duration_ms(ms), text);
            assert_eq!(parse_duration_ms(text), Ok(ms));
        }
    }

    #[test]
    fn buckets_floor_and_ceil() {
        assert_eq!(floor_to(-1, MINUTE_MS), -MINUTE_MS);
        assert_eq!(ceil_to(MINUTE_MS + 1, MINUTE_MS), 2 * MINUTE_MS);
        assert_eq!(ceil_to(MINUTE_MS, MINUTE_MS), MINUTE_MS);
        assert_eq!(Resolution::Hour.bucket(HOUR_MS + 59 * MINUTE_MS), HOUR_MS);
    }

    #[test]
    fn query_times_and_durations() {
        let now = 10 * DAY_MS;
        assert_eq!(parse_query_time("now-24h", now).unwrap(), 9 * DAY_MS);
        assert_eq!(parse_query_time("1000", now).unwrap(), 1000);
        assert_eq!(parse_query_time("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert!(
            parse_query_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert_eq!(parse_duration_ms("90d").unwrap(), 90 * DAY_MS);
        assert!(parse_duration_ms("5w").is_err());
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
