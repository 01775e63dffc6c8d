//! Small helpers with no better home: time formatting, text truncation, and a sleep that
//! shutdown cuts short.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sleep for `d`, or less if `stop` turns true (shutdown); whether it did. For worker
/// loops that wait between tries and must not hold up a shutdown.
pub async fn stopped_during(stop: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// This machine's host name (`/etc/hostname`), or `impressox`: names a consumer or a
/// lease owner in logs and in the stores.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "impressox".into())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before it): for stamps that
/// must order two writes of one millisecond.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, millisecond precision) for a time since the epoch.
pub fn rfc3339(time: SystemTime) -> String {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    rfc3339_ms(ms)
}

/// RFC 3339 (UTC) for milliseconds since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Cut `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end)
}

/// Parse a duration as config and API bodies write it (`"30s"`, `"5m"`, `"1h30m"`,
/// `"1m 30s"`, `"250ms"`, `"30d"`, ISO 8601 `"PT2S"`) into milliseconds; `None` for anything else
/// or a negative one. The one parser of every worker's durations.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    // Days and weeks (`"30d"`, retention periods) are not a `SignedDuration` unit: they
    // are read as a span whose days are 24 hours.
    let d: jiff::SignedDuration = text.parse().ok().or_else(|| {
        let span: jiff::Span = text.parse().ok()?;
        span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .ok()
    })?;
    if d.is_negative() {
        return None;
    }
    i64::try_from(d.as_millis()).ok()
}

/// A duration in milliseconds as a person reads it.
pub fn show_ms(ms: i64) -> String {
    if ms > 0 && ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms > 0 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms > 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_764_300_000_123), "2025-11-28T03:20:00.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("PT2S"), Some(2000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("-5s"), None);
        assert_eq!(parse_duration_ms("1m 30s"), Some(90_000));
        assert_eq!(parse_duration_ms("30d"), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("1w"), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms("1mo"), None);
    }

    #[test]
    fn shows_durations_in_their_largest_whole_unit() {
        assert_eq!(show_ms(7_200_000), "2h");
        assert_eq!(show_ms(2_592_000_000), "30d");
        assert_eq!(show_ms(90_000), "90s");
        assert_eq!(show_ms(300_000), "5m");
        assert_eq!(show_ms(1500), "1500ms");
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h… (5 bytes cut)");
        assert_eq!(truncate("abc", 3), "abc");
    }
}

/// Parse an RFC 3339 timestamp (`2026-12-31T00:00:00Z`, `...T01:00:00.5+01:00`) into
/// milliseconds since the epoch. `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(b.get(r)?).ok()?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + millis)
}

/// Howard Hinnant's civil-to-days algorithm, the inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        for ms in [0, 1_764_300_000_123, 1_798_675_200_000, -86_400_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_ms("2026-12-31T01:00:00+01:00"),
            parse_rfc3339_ms("2026-12-31T00:00:00Z")
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.5Z"), Some(500));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-12-31",
            "2026-12-31T00:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
