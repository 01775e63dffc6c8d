//! Quiet hours in the user's time zone: is an instant inside them, and when do they end.
//!
//! Local wall-clock times are turned into instants with `jiff`, which resolves the two
//! awkward cases the way people expect: an end time that falls into a daylight-saving gap
//! (02:30 on the night clocks jump from 02:00 to 03:00) moves forward to the first valid
//! instant, and one that occurs twice (the autumn fold) takes the earlier one.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};

use crate::input::FieldError;

/// `{"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}`: deliveries that start
/// inside wait until `end`; a range across midnight is the usual case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`, local time; differs from `start`.
    pub end: String,
    /// An IANA time zone name.
    pub tz: String,
}

/// `HH:MM` (24 h).
fn parse_hhmm(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

impl QuietHours {
    /// Check the fields; `prefix` is the field path of this object.
    pub fn validate(&self, prefix: &str) -> Result<(), FieldError> {
        let start = parse_hhmm(&self.start).ok_or_else(|| {
            FieldError::new(&format!("{prefix}.start"), "a time as HH:MM, e.g. 22:00")
        })?;
        let end = parse_hhmm(&self.end).ok_or_else(|| {
            FieldError::new(&format!("{prefix}.end"), "a time as HH:MM, e.g. 07:00")
        })?;
        if start == end {
            return Err(FieldError::new(
                &format!("{prefix}.end"),
                "must differ from start",
            ));
        }
        if TimeZone::get(&self.tz).is_err() {
            return Err(FieldError::new(
                &format!("{prefix}.tz"),
                format!("unknown IANA time zone {:?}", self.tz),
            ));
        }
        Ok(())
    }
}

/// If `now_ms` is inside the quiet hours, the instant (ms) they end; `None` outside
/// them (or for a malformed entry, which validation keeps out of storage).
pub fn quiet_until(q: &QuietHours, now_ms: i64) -> Option<i64> {
    let (start, end) = (parse_hhmm(&q.start)?, parse_hhmm(&q.end)?);
    let tz = TimeZone::get(&q.tz).ok()?;
    let now: ZonedDateTime = Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let t = now.time();
    let inside = if start < end {
        start <= t && t < end
    } else {
        t >= start || t < end
    };
    if !inside {
        return None;
    }
    // Before midnight in an overnight range, the end is tomorrow's.
    let day = if t < end {
        now.date()
    } else {
        now.date().tomorrow().ok()?
    };
    let end = day.to_datetime(end).to_zoned_datetime(tz).ok()?;
    Some(end.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::parse_rfc3339_ms;

    fn q(start: &str, end: &str, tz: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            tz: tz.into(),
        }
    }

    fn at(rfc3339: &str) -> i64 {
        parse_rfc3339_ms(rfc3339).unwrap()
    }

    #[test]
    fn across_midnight_waits_until_next_morning_local() {
        let berlin = q("22:00", "07:00", "Europe/Berlin");
        // 23:30 in Berlin (UTC+1 in winter) on 2026-12-01 is 22:30Z.
        assert_eq!(
            quiet_until(&berlin, at("2026-12-01T22:30:00Z")),
            Some(at("2026-12-02T06:00:00Z"))
        );
        // 05:00 local: same morning.
        assert_eq!(
            quiet_until(&berlin, at("2026-12-02T04:00:00Z")),
            Some(at("2026-12-02T06:00:00Z"))
        );
        // 12:00 local: not quiet; the end itself is not quiet either.
        assert_eq!(quiet_until(&berlin, at("2026-12-02T11:00:00Z")), None);
        assert_eq!(quiet_until(&berlin, at("2026-12-02T06:00:00Z")), None);
    }

    #[test]
    fn a_daytime_range_works_too() {
        let lunch = q("12:00", "13:00", "UTC");
        assert_eq!(
            quiet_until(&lunch, at("2026-12-02T12:10:00Z")),
            Some(at("2026-12-02T13:00:00Z"))
        );
        assert_eq!(quiet_until(&lunch, at("2026-12-02T11:59:00Z")), None);
    }

    #[test]
    fn end_inside_dst_gap_moves_forward() {
        // 2026-03-29: Berlin jumps 02:00 CET -> 03:00 CEST; 02:30 does not exist.
        let gap = q("01:00", "02:30", "Europe/Berlin");
        // 01:30 CET = 00:30Z.
        assert_eq!(
            quiet_until(&gap, at("2026-03-29T00:30:00Z")),
            Some(at("2026-03-29T01:30:00Z")),
            "the end moves forward by the gap: 03:30 CEST"
        );
    }

    #[test]
    fn fold_uses_the_earlier_instant() {
        // 2026-10-25: Berlin falls back 03:00 CEST -> 02:00 CET; 02:30 happens twice.
        let fold = q("01:00", "02:30", "Europe/Berlin");
        // 01:30 CEST = 23:30Z the day before.
        assert_eq!(
            quiet_until(&fold, at("2026-10-24T23:30:00Z")),
            Some(at("2026-10-25T00:30:00Z")),
            "02:30 CEST, the first of the two"
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            q("7:00", "08:00", "UTC")
                .validate("quiet_hours")
                .unwrap_err()
                .field,
            "quiet_hours.start"
        );
        assert_eq!(
            q("07:00", "24:00", "UTC")
                .validate("quiet_hours")
                .unwrap_err()
                .field,
            "quiet_hours.end"
        );
        assert_eq!(
            q("07:00", "08:00", "Mars/Olympus")
                .validate("quiet_hours")
                .unwrap_err()
                .field,
            "quiet_hours.tz"
        );
    }
}
