//! Times as both sides write them: RFC 3339 in UTC with milliseconds. The client prints
//! them (`--json`, details) and the daemon writes them into events, so the one formatter
//! lives here, below both. [`parse`] reads every RFC 3339 form a user may type (`--at`),
//! with any offset.

use super::Millis;

/// A time as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:03:07.123Z`; a time past
/// the year 9999 (which validation never lets in, but a damaged value must not crash
/// whoever prints it) as `<ms>ms`.
pub fn rfc3339(ms: Millis) -> String {
    match rfc3339_bytes(ms) {
        // The bytes are ASCII digits and separators.
        Some(text) => text.iter().map(|&b| char::from(b)).collect(),
        None => format!("{ms}ms"),
    }
}

/// [`rfc3339`] as its 24 ASCII bytes, `None` past the year 9999. Computed directly rather
/// than through a formatter, and without allocating: `task list --json` writes two to four
/// per task, and building a `String` for each was 13 % of listing 100k tasks (perf,
/// BENCHMARKS.md).
pub fn rfc3339_bytes(ms: Millis) -> Option<[u8; 24]> {
    if ms > super::limits::MAX_TIME_MS {
        return None;
    }
    let (days, in_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, value: u64, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            text[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, in_day / 3_600_000, 2);
    put(14, in_day / 60_000 % 60, 2);
    put(17, in_day / 1000 % 60, 2);
    put(20, in_day % 1000, 3);
    Some(text)
}

/// Reads an RFC 3339 date-time into milliseconds since the epoch: `2030-01-01T08:00:00Z`,
/// `2030-01-01T09:00:00+01:00` (what `date -Iseconds` prints), with a fraction of a
/// second, `t`/`z` in lower case, or a space instead of `T` (which RFC 3339 allows). A
/// time without a zone is refused: which zone was meant is a guess, and a wrong guess
/// moves a task by hours. Times before 1970 are refused. The error says what is wrong in
/// the user's words.
pub fn parse(text: &str) -> Result<Millis, String> {
    let b = text.as_bytes();
    let digits = |from: usize, count: usize| -> Option<u64> {
        let part = b.get(from..from + count)?;
        part.iter().try_fold(0u64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let shape = "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset like +01:00";
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0, 4),
        digits(5, 2),
        digits(8, 2),
        digits(11, 2),
        digits(14, 2),
        digits(17, 2),
    ) else {
        return Err(shape.into());
    };
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return Err(shape.into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("there is no month {month}"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("there is no day {day} in {year}-{month:02}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!(
            "there is no time {hour:02}:{minute:02}:{second:02} in a day"
        ));
    }
    // A fraction of a second: milliseconds kept, finer digits dropped.
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis += u64::from(b[i] - b'0') * [100, 10, 1][i - start];
            }
            i += 1;
        }
        if i == start {
            return Err("expected digits after the decimal point".into());
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => {
            return Err(
                "it has no time zone: add Z for UTC or an offset like +01:00 \
                        (`date -Iseconds` prints one)"
                    .into(),
            );
        }
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && at(i + 3, b":") => {
            let (Some(hours), Some(minutes)) = (digits(i + 1, 2), digits(i + 4, 2)) else {
                return Err("expected an offset like +01:00".into());
            };
            if hours > 23 || minutes > 59 {
                return Err(format!("there is no offset {hours:02}:{minutes:02}"));
            }
            let secs = (hours * 3600 + minutes * 60) as i64;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return Err(shape.into()),
    };
    let days = days_from_civil(year, month, day);
    let local_secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let utc_secs = local_secs - offset_secs;
    if utc_secs < 0 {
        return Err("it is before 1970".into());
    }
    let ms = utc_secs as u64 * 1000 + millis;
    if ms > super::limits::MAX_TIME_MS {
        return Err("it is after the year 9999".into());
    }
    Ok(ms)
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to (year, month, day), negative before it (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> i64 {
    let y = year as i64 - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of the day `days` after 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        let last = crate::protocol::limits::MAX_TIME_MS;
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(last + 1), format!("{}ms", last + 1));
    }

    #[test]
    fn times_match_humantime_across_the_calendar() {
        // Leap days, century years, month ends: a prime step visits them all.
        let mut ms = 0u64;
        while ms <= crate::protocol::limits::MAX_TIME_MS {
            let time = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            let expected = humantime::format_rfc3339_millis(time).to_string();
            assert_eq!(rfc3339(ms), expected, "{ms}");
            ms += 7_919_993_417;
        }
        for leap in ["2000-02-29T12:00:00.000Z", "2024-02-29T00:00:00.001Z"] {
            let time = humantime::parse_rfc3339(leap).unwrap();
            let ms = time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            assert_eq!(rfc3339(ms), leap);
        }
    }

    #[test]
    fn every_rfc3339_form_parses_and_offsets_move_the_time() {
        let utc = parse("2030-01-01T08:00:00Z").unwrap();
        assert_eq!(rfc3339(utc), "2030-01-01T08:00:00.000Z");
        for same in [
            "2030-01-01T09:00:00+01:00",
            "2030-01-01t08:00:00z",
            "2030-01-01 08:00:00Z",
            "2030-01-01T03:30:00-04:30",
            "2030-01-01T08:00:00.000000Z",
            "2030-01-01T08:00:00+00:00",
            "2030-01-01T08:00:00-00:00",
        ] {
            assert_eq!(parse(same), Ok(utc), "{same}");
        }
        assert_eq!(parse("2030-01-01T08:00:00.25Z"), Ok(utc + 250));
        assert_eq!(parse("2030-01-01T08:00:00.123987Z"), Ok(utc + 123));
        assert_eq!(
            parse("2024-02-29T00:00:00Z").map(rfc3339).unwrap(),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(parse("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(
            parse("9999-12-31T23:59:59.999Z"),
            Ok(crate::protocol::limits::MAX_TIME_MS)
        );
        // The formatter's output reads back.
        let mut ms = 0u64;
        while ms <= crate::protocol::limits::MAX_TIME_MS {
            assert_eq!(parse(&rfc3339(ms)), Ok(ms));
            ms += 7_919_993_417;
        }
    }

    #[test]
    fn what_is_not_rfc3339_is_refused_in_words() {
        let refused = |text: &str, words: &str| {
            let error = parse(text).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        };
        refused("2030-01-01T00:00:00", "no time zone");
        refused("2030-01-01", "expected YYYY-MM-DD");
        refused("tomorrow", "expected YYYY-MM-DD");
        refused("2030-13-01T00:00:00Z", "no month 13");
        refused("2030-02-29T00:00:00Z", "no day 29");
        refused("2030-01-01T24:00:00Z", "no time 24:00:00");
        refused("2030-01-01T00:00:00+1:00", "expected YYYY-MM-DD");
        refused("2030-01-01T00:00:00+24:00", "no offset");
        refused("2030-01-01T00:00:00.Z", "digits after the decimal point");
        refused("2030-01-01T00:00:00Zjunk", "expected YYYY-MM-DD");
        refused("1969-12-31T23:59:59Z", "before 1970");
        refused("1970-01-01T00:30:00+01:00", "before 1970");
    }
}
