//! When occurrences fall: a cron pattern in a time zone, or a fixed interval.
//!
//! Cron patterns are parsed and searched by croner, which works on wall-clock (civil)
//! times and asks a date library only to turn them into instants. That library here is
//! jiff, the host's one time-zone database (quiet hours use it too), through
//! [`ZonedAt`]. Daylight-saving time follows Vixie cron, as croner implements it:
//! - a time that falls into a gap (02:30 on the night clocks jump from 02:00 to 03:00)
//!   runs at the first instant after the gap (03:00) when the pattern names a fixed time,
//!   and is simply absent for interval patterns (`*/10 * * * * *`), which go on after it;
//! - a time that happens twice (the autumn fold) runs once, at the first of the two
//!   instants, for a fixed time, and at both for interval patterns.
//!
//! `every` is elapsed time in whole multiples since the Unix epoch, which no time zone
//! moves.

use std::cmp::Ordering;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::time::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

use crate::input::FieldError;

/// When a schedule's occurrences fall.
#[derive(Debug, Clone)]
pub enum Timing {
    Cron {
        cron: Box<croner::Cron>,
        tz: TimeZone,
    },
    Every {
        ms: i64,
    },
}

/// The field names of a six-field pattern, for error messages.
const FIELDS: &str = "second minute hour day-of-month month day-of-week";

impl Timing {
    /// A cron pattern with seconds, read in time zone `tz`.
    pub fn cron(pattern: &str, tz: &str) -> Result<Timing, FieldError> {
        let trimmed = pattern.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && fields != 6 {
            return Err(FieldError::new(
                "cron",
                format!("expected 6 fields ({FIELDS}), found {fields} in `{trimmed}`"),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| FieldError::new("cron", format!("`{trimmed}`: {}", describe(&e))))?;
        let tz = Timing::check_tz(tz)?;
        let timing = Timing::Cron {
            cron: Box::new(cron),
            tz,
        };
        // A pattern that never matches (`0 0 0 31 2 *`) is refused now rather than found
        // to be silent later.
        if timing.next_after(crate::util::now_ms()).is_none() {
            return Err(FieldError::new(
                "cron",
                format!("`{trimmed}` matches no time in the coming years"),
            ));
        }
        Ok(timing)
    }

    /// A fixed interval of `ms` (at least 1).
    pub fn every(ms: i64) -> Timing {
        Timing::Every { ms: ms.max(1) }
    }

    /// Check an IANA time zone name.
    pub fn check_tz(tz: &str) -> Result<TimeZone, FieldError> {
        TimeZone::get(tz)
            .map_err(|_| FieldError::new("tz", format!("unknown IANA time zone {tz:?}")))
    }

    /// The first occurrence strictly after `after_ms` (ms since the epoch); `None` when
    /// there is none (a pattern that stops matching, or past the year 9999).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Timing::Every { ms } => after_ms.div_euclid(*ms).checked_add(1)?.checked_mul(*ms),
            Timing::Cron { cron, tz } => {
                let at = Timestamp::from_millisecond(after_ms)
                    .ok()?
                    .to_zoned_datetime(tz.clone());
                let next = cron.find_next_occurrence(&ZonedAt(at), false).ok()?;
                Some(next.0.timestamp().as_millisecond())
            }
        }
    }

    /// How many occurrences fall in `(after_ms, up_to_ms]`, counting at most `cap`.
    pub fn count_between(&self, after_ms: i64, up_to_ms: i64, cap: u64) -> u64 {
        if up_to_ms <= after_ms {
            return 0;
        }
        if let Timing::Every { ms } = self {
            let n = up_to_ms.div_euclid(*ms) - after_ms.div_euclid(*ms);
            return (n.max(0) as u64).min(cap);
        }
        let mut n = 0;
        let mut t = after_ms;
        while n < cap {
            match self.next_after(t) {
                Some(next) if next <= up_to_ms => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

/// croner's messages, made to read as an answer to the user.
fn describe(e: &CronError) -> String {
    match e {
        CronError::InvalidPattern(m) | CronError::ComponentError(m) => m.clone(),
        CronError::IllegalCharacters(m) => format!("illegal characters: {m}"),
        other => other.to_string(),
    }
}

/// A jiff zoned date-time that croner can search over.
#[derive(Debug, Clone)]
pub struct ZonedAt(pub ZonedDateTime);

fn civil_of(dt: jiff::civil::DateTime) -> CivilDateTime {
    CivilDateTime::new(
        CivilDate::from_parts_unchecked(i32::from(dt.year()), dt.month() as u32, dt.day() as u32),
        CivilTime::from_parts_unchecked(dt.hour() as u32, dt.minute() as u32, dt.second() as u32),
    )
}

fn jiff_of(c: CivilDateTime) -> Result<jiff::civil::DateTime, CronError> {
    let year = i16::try_from(c.year()).map_err(|_| CronError::InvalidDate)?;
    let small = |v: u32| i8::try_from(v).map_err(|_| CronError::InvalidDate);
    jiff::civil::DateTime::new(
        year,
        small(c.month())?,
        small(c.day())?,
        small(c.hour())?,
        small(c.minute())?,
        small(c.second())?,
        0,
    )
    .map_err(|_| CronError::InvalidDate)
}

impl CronDateTime for ZonedAt {
    fn to_civil(&self) -> CivilDateTime {
        civil_of(self.0.datetime())
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let dt = jiff_of(civil)?;
        let ambiguous = self.0.time_zone().to_ambiguous_zoned_datetime(dt);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => Resolution::Single(ZonedAt(
                ambiguous
                    .unambiguous()
                    .map_err(|_| CronError::InvalidTime)?,
            )),
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
            AmbiguousOffset::Fold { .. } => Resolution::Ambiguous(
                ZonedAt(
                    ambiguous
                        .clone()
                        .earlier()
                        .map_err(|_| CronError::InvalidTime)?,
                ),
                ZonedAt(ambiguous.later().map_err(|_| CronError::InvalidTime)?),
            ),
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(ZonedAt)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{parse_rfc3339_ms, rfc3339_ms};

    fn at(rfc3339: &str) -> i64 {
        parse_rfc3339_ms(rfc3339).unwrap()
    }

    fn next(t: &Timing, after: &str) -> String {
        rfc3339_ms(t.next_after(at(after)).unwrap())
    }

    /// The next `n` occurrences after `after`, as RFC 3339 in UTC.
    fn series(t: &Timing, after: &str, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut now = at(after);
        for _ in 0..n {
            now = t.next_after(now).unwrap();
            out.push(rfc3339_ms(now));
        }
        out
    }

    #[test]
    fn cron_with_seconds() {
        let t = Timing::cron("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(
            series(&t, "2026-01-01T00:00:00Z", 3),
            [
                "2026-01-01T00:00:15.000Z",
                "2026-01-01T00:00:30.000Z",
                "2026-01-01T00:00:45.000Z"
            ]
        );
        // Strictly after, also from the middle of a second.
        assert_eq!(
            next(&t, "2026-01-01T00:00:15.500Z"),
            "2026-01-01T00:00:30.000Z"
        );
        let weekdays = Timing::cron("0 0 8 * * MON-FRI", "UTC").unwrap();
        // 2026-01-02 is a Friday: the next is Monday the 5th.
        assert_eq!(
            next(&weekdays, "2026-01-02T09:00:00Z"),
            "2026-01-05T08:00:00.000Z"
        );
    }

    #[test]
    fn cron_in_a_time_zone() {
        let t = Timing::cron("0 0 9 * * *", "America/New_York").unwrap();
        // 09:00 EST is 14:00Z in January, 09:00 EDT is 13:00Z in July.
        assert_eq!(next(&t, "2026-01-10T00:00:00Z"), "2026-01-10T14:00:00.000Z");
        assert_eq!(next(&t, "2026-07-10T00:00:00Z"), "2026-07-10T13:00:00.000Z");
    }

    #[test]
    fn fixed_time_in_a_dst_gap_runs_right_after_the_gap() {
        // 2026-03-29: Berlin jumps 02:00 CET -> 03:00 CEST; 02:30 does not exist. The run
        // is at 03:00 CEST (01:00Z), once, and the next day at 02:30 CEST again.
        let t = Timing::cron("0 30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            series(&t, "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T01:00:00.000Z",
                "2026-03-30T00:30:00.000Z",
                "2026-03-31T00:30:00.000Z"
            ]
        );
    }

    #[test]
    fn interval_patterns_skip_the_gap() {
        // Every 20 minutes: 01:40 CET (00:40Z), then 03:00 CEST (01:00Z) — the wall-clock
        // times 02:00..02:40 never happen and are not run.
        let t = Timing::cron("0 */20 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            series(&t, "2026-03-29T00:30:00Z", 3),
            [
                "2026-03-29T00:40:00.000Z",
                "2026-03-29T01:00:00.000Z",
                "2026-03-29T01:20:00.000Z"
            ]
        );
    }

    #[test]
    fn fixed_time_in_a_fold_runs_once_at_the_first() {
        // 2026-10-25: Berlin falls back 03:00 CEST -> 02:00 CET; 02:30 happens twice:
        // 00:30Z (CEST) and 01:30Z (CET). A daily 02:30 runs at 00:30Z only.
        let t = Timing::cron("0 30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            series(&t, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]
        );
    }

    #[test]
    fn interval_patterns_run_in_both_halves_of_a_fold() {
        // Every 30 minutes through the repeated hour: 02:00 and 02:30 CEST, then 02:00
        // and 02:30 CET: one run each 30 minutes of elapsed time.
        let t = Timing::cron("0 */30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            series(&t, "2026-10-24T23:45:00Z", 5),
            [
                "2026-10-25T00:00:00.000Z",
                "2026-10-25T00:30:00.000Z",
                "2026-10-25T01:00:00.000Z",
                "2026-10-25T01:30:00.000Z",
                "2026-10-25T02:00:00.000Z"
            ]
        );
    }

    #[test]
    fn every_counts_elapsed_time_from_the_epoch() {
        let t = Timing::every(5 * 60 * 1000);
        assert_eq!(next(&t, "2026-01-01T00:03:10Z"), "2026-01-01T00:05:00.000Z");
        assert_eq!(next(&t, "2026-01-01T00:05:00Z"), "2026-01-01T00:10:00.000Z");
        // Across the Berlin fold nothing changes: it is elapsed time.
        assert_eq!(
            series(&t, "2026-10-25T00:58:00Z", 2),
            ["2026-10-25T01:00:00.000Z", "2026-10-25T01:05:00.000Z"]
        );
        assert_eq!(
            t.count_between(at("2026-01-01T00:00:00Z"), at("2026-01-01T01:00:00Z"), 100),
            12
        );
        assert_eq!(
            t.count_between(at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z"), 100),
            100
        );
    }

    #[test]
    fn cron_errors_name_the_problem() {
        let e = Timing::cron("0 * * * *", "UTC").unwrap_err();
        assert_eq!(e.field, "cron");
        assert!(e.message.starts_with("expected 6 fields"), "{}", e.message);
        let e = Timing::cron("0 0 25 * * *", "UTC").unwrap_err();
        assert_eq!(e.field, "cron");
        let e = Timing::cron("0 0 0 31 2 *", "UTC").unwrap_err();
        assert!(e.message.contains("matches no time"), "{}", e.message);
        assert_eq!(
            Timing::cron("0 0 0 * * *", "Nowhere/City")
                .unwrap_err()
                .field,
            "tz"
        );
        assert!(Timing::cron("@daily", "UTC").is_ok());
    }
}
