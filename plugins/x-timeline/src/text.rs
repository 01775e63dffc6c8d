//! Text helpers: HTML entity decoding and X's `created_at` date format.
//!
//! Both are small enough to write here rather than pull in a date or HTML crate, which
//! would grow the .wasm for two functions.

use std::borrow::Cow;

/// Decode the HTML entities X leaves in tweet text and bios (`&amp;`, `&lt;`, `&gt;`,
/// `&quot;`, `&#39;`, `&apos;`, `&nbsp;` and numeric `&#NNN;` / `&#xHH;`).
///
/// Decoding is a single pass, so `&amp;lt;` becomes `&lt;` (what the author typed), not
/// `<`. Anything that is not a known entity is left as it is. Text without `&` (almost
/// all of it) is returned borrowed.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some((before, after)) = rest.split_once('&') {
        out.push_str(before);
        match decode_one(after) {
            Some((ch, consumed)) => {
                out.push(ch);
                rest = after.get(consumed..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The longest entity body we look at (`#x10FFFF` is 8 bytes). Bounding the search for
/// `;` keeps a string full of stray `&` linear instead of quadratic.
const MAX_ENTITY_LEN: usize = 10;

/// Decode the entity at the start of `after` (the text following a `&`); returns the
/// character and how many bytes of `after` it used, `;` included.
fn decode_one(after: &str) -> Option<(char, usize)> {
    let end = after
        .bytes()
        .take(MAX_ENTITY_LEN + 1)
        .position(|b| b == b';')?;
    let name = after.get(..end)?;
    let ch = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

/// Convert X's `created_at` (`Wed Oct 10 20:19:24 +0000 2018`) to RFC 3339 in UTC
/// (`2018-10-10T20:19:24Z`). `None` when the text is not in that format or names an
/// impossible date. The weekday is not checked: it carries no information.
pub fn x_date_to_rfc3339(s: &str) -> Option<String> {
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let month = month_number(parts.next()?)?;
    let day = parts.next()?;
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day: u32 = day.parse().ok()?;
    let time = parts.next()?;
    let offset = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=9999).contains(&year) {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }

    let mut hms = time.split(':');
    let hour: i64 = parse_in(hms.next()?, 0..=23)?;
    let minute: i64 = parse_in(hms.next()?, 0..=59)?;
    let second: i64 = parse_in(hms.next()?, 0..=59)?;
    if hms.next().is_some() {
        return None;
    }

    // `+hhmm` / `-hhmm`; X always sends +0000, but other offsets are converted rather
    // than mislabelled as UTC.
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if offset.len() != 5 {
        return None;
    }
    let off_h: i64 = parse_in(offset.get(1..3)?, 0..=23)?;
    let off_m: i64 = parse_in(offset.get(3..5)?, 0..=59)?;

    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = local - sign * (off_h * 3600 + off_m * 60);
    let (y, mo, d) = civil_from_days(utc.div_euclid(86_400));
    let secs = utc.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    ))
}

fn parse_in(s: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    // Exactly two digits: rejects "+5", "1e1" and friends that `parse` alone would take.
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = s.parse().ok()?;
    range.contains(&n).then_some(n)
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| *m == name)
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_named_and_numeric_entities() {
        assert_eq!(
            decode_entities("a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&apos;"),
            "a & b <c> \"d\" 'e'"
        );
        assert_eq!(decode_entities("&#8364; &#x1F680; &#X41;"), "€ 🚀 A");
        assert_eq!(decode_entities("no entities here"), "no entities here");
        assert!(matches!(decode_entities("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn decoding_is_single_pass_and_leaves_unknowns() {
        assert_eq!(decode_entities("&amp;lt;"), "&lt;");
        assert_eq!(
            decode_entities("AT&T & co &bogus; &#xZZ; &#1114112; &"),
            "AT&T & co &bogus; &#xZZ; &#1114112; &"
        );
        assert_eq!(decode_entities("&&&amp;"), "&&&");
        // Long runs without `;` stay linear and untouched.
        let long = "&".repeat(10_000);
        assert_eq!(decode_entities(&long), long);
    }

    #[test]
    fn converts_x_dates() {
        assert_eq!(
            x_date_to_rfc3339("Wed Oct 10 20:19:24 +0000 2018").as_deref(),
            Some("2018-10-10T20:19:24Z")
        );
        assert_eq!(
            x_date_to_rfc3339("Thu Feb 29 00:00:00 +0000 2024").as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(
            x_date_to_rfc3339("Mon Jan 01 00:30:00 +0100 2024").as_deref(),
            Some("2023-12-31T23:30:00Z")
        );
        assert_eq!(
            x_date_to_rfc3339("Tue Dec 31 23:00:00 -0230 2024").as_deref(),
            Some("2025-01-01T01:30:00Z")
        );
        assert_eq!(
            x_date_to_rfc3339("Thu Jan 01 00:00:00 +0000 1970").as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "yesterday",
            "2018-10-10T20:19:24Z",
            "Wed Oct 10 20:19:24 +0000",
            "Wed Oct 10 20:19:24 +0000 2018 extra",
            "Wed Foo 10 20:19:24 +0000 2018",
            "Fri Feb 29 00:00:00 +0000 2023",
            "Wed Oct 32 20:19:24 +0000 2018",
            "Wed Oct 10 24:00:00 +0000 2018",
            "Wed Oct 10 20:19 +0000 2018",
            "Wed Oct 10 20:19:24 0000 2018",
            "Wed Oct 10 20:19:24 +000 2018",
            "Wed Oct 10 +1:19:24 +0000 2018",
        ] {
            assert_eq!(x_date_to_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 17_814, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            let (m, d) = (u32::try_from(m).unwrap_or(0), u32::try_from(d).unwrap_or(0));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
