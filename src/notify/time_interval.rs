//! Alertmanager's time intervals (`time_intervals`, formerly `mute_time_intervals`): times of
//! day, weekdays, days of the month (negative counts from the end), months and years, in a
//! location's time zone. A named interval holds several; it contains a moment if any does.

use jiff::tz::TimeZone;

/// One entry of a named time interval. Every non-empty list must contain the moment.
#[derive(Clone, Debug, Default)]
pub struct TimeInterval {
    /// Minutes of the day, start inclusive, end exclusive (`24:00` is 1440).
    pub times: Vec<(u32, u32)>,
    /// Sunday is 0, inclusive ranges.
    pub weekdays: Vec<(u8, u8)>,
    /// Inclusive, negative counts from the month's end (-1 is the last day).
    pub days_of_month: Vec<(i32, i32)>,
    /// January is 1, inclusive. Alertmanager accepts numbers outside 1-12, which never match.
    pub months: Vec<(i32, i32)>,
    pub years: Vec<(i32, i32)>,
    /// The time zone; UTC when none is given.
    pub location: Option<TimeZone>,
}

/// The named intervals of a configuration.
pub type NamedTimeIntervals = std::collections::BTreeMap<String, Vec<TimeInterval>>;

impl TimeInterval {
    /// True when the moment (Unix milliseconds) falls in this interval.
    pub fn contains(&self, ms: i64) -> bool {
        let Ok(timestamp) = jiff::Timestamp::from_millisecond(ms) else {
            return false;
        };
        let zone = self.location.clone().unwrap_or(TimeZone::UTC);
        let t = timestamp.to_zoned(zone);
        let minute = u32::try_from(i32::from(t.hour()) * 60 + i32::from(t.minute())).unwrap_or(0);
        if !self.times.is_empty() && !self.times.iter().any(|&(s, e)| minute >= s && minute < e) {
            return false;
        }
        let weekday = u8::try_from(t.weekday().to_sunday_zero_offset()).unwrap_or(0);
        if !self.weekdays.is_empty()
            && !self
                .weekdays
                .iter()
                .any(|&(s, e)| weekday >= s && weekday <= e)
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = i32::from(t.days_in_month());
            let day = i32::from(t.day());
            let resolve = |d: i32| if d < 0 { days + d + 1 } else { d };
            let any = self.days_of_month.iter().any(|&(begin, end)| {
                let (begin, end) = (resolve(begin), resolve(end));
                // A start after the month's end never matches (the 31st in April).
                begin <= days && day >= begin.clamp(-days, days) && day <= end.clamp(-days, days)
            });
            if !any {
                return false;
            }
        }
        let month = i32::from(t.month());
        if !self.months.is_empty() && !self.months.iter().any(|&(s, e)| month >= s && month <= e) {
            return false;
        }
        let year = i32::from(t.year());
        if !self.years.is_empty() && !self.years.iter().any(|&(s, e)| year >= s && year <= e) {
            return false;
        }
        true
    }
}

/// True when any of the named intervals contains the moment; unknown names contain nothing.
pub fn any_contains(intervals: &NamedTimeIntervals, names: &[String], ms: i64) -> bool {
    names.iter().any(|name| {
        intervals
            .get(name)
            .is_some_and(|entries| entries.iter().any(|entry| entry.contains(ms)))
    })
}

/// `HH:MM` (00:00 to 23:59, or 24:00) as minutes of the day.
pub fn parse_clock(text: &str) -> Result<u32, String> {
    let bad = || format!("invalid time of day `{text}`: write HH:MM from 00:00 to 24:00");
    if text == "24:00" {
        return Ok(24 * 60);
    }
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad())?;
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

/// A `start_time`/`end_time` pair.
pub fn parse_time_range(start: &str, end: &str) -> Result<(u32, u32), String> {
    let (start, end) = (parse_clock(start)?, parse_clock(end)?);
    if start >= end {
        return Err("start time cannot be equal or greater than end time".to_string());
    }
    Ok((start, end))
}

fn split_range(text: &str) -> (&str, &str) {
    text.split_once(':').unwrap_or((text, text))
}

/// `monday:friday` or `saturday` (any case) as Sunday-zero day numbers.
pub fn parse_weekday_range(text: &str) -> Result<(u8, u8), String> {
    const DAYS: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let day = |name: &str| {
        DAYS.iter()
            .position(|d| d.eq_ignore_ascii_case(name.trim()))
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| format!("{name} is not a valid weekday"))
    };
    let (begin, end) = split_range(text);
    let (begin, end) = (day(begin)?, day(end)?);
    if begin > end {
        return Err(format!("start day cannot be before end day in `{text}`"));
    }
    Ok((begin, end))
}

/// `1:15`, `-3:-1` or `7`, with Alertmanager's checks.
pub fn parse_day_of_month_range(text: &str) -> Result<(i32, i32), String> {
    let (begin, end) = split_range(text);
    let day = |d: &str| {
        let value: i32 = d
            .trim()
            .parse()
            .map_err(|_| format!("{d} is not a valid day of the month"))?;
        if value == 0 || !(-31..=31).contains(&value) {
            return Err(format!(
                "{value} is not a valid day of the month: out of range"
            ));
        }
        Ok(value)
    };
    let (begin, end) = (day(begin)?, day(end)?);
    if begin < 0 && end > 0 {
        return Err(format!(
            "end day must be negative if start day is negative in `{text}`"
        ));
    }
    let check = |d: i32| if d < 0 { 28 + d } else { d };
    if check(begin) > check(end) {
        return Err(format!("end day {end} is before start day {begin}"));
    }
    Ok((begin, end))
}

/// `january:march`, `10:12` or `may`. Numbers are not range-checked, as in Alertmanager.
pub fn parse_month_range(text: &str) -> Result<(i32, i32), String> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let month = |m: &str| {
        let m = m.trim();
        if let Ok(number) = m.parse::<i32>() {
            return Ok(number);
        }
        MONTHS
            .iter()
            .position(|name| name.eq_ignore_ascii_case(m))
            .and_then(|i| i32::try_from(i + 1).ok())
            .ok_or_else(|| format!("{m} is not a valid month"))
    };
    let (begin, end) = split_range(text);
    let (begin, end) = (month(begin)?, month(end)?);
    if begin > end {
        return Err(format!("end month {end} is before start month {begin}"));
    }
    Ok((begin, end))
}

/// `2024:2026` or `2025`.
pub fn parse_year_range(text: &str) -> Result<(i32, i32), String> {
    let year = |y: &str| {
        y.trim()
            .parse::<i32>()
            .ok()
            .filter(|y| *y > 0)
            .ok_or_else(|| format!("{y} is not a valid year"))
    };
    let (begin, end) = split_range(text);
    let (begin, end) = (year(begin)?, year(end)?);
    if begin > end {
        return Err(format!("end year {end} is before start year {begin}"));
    }
    Ok((begin, end))
}

/// A location as Go's `time.LoadLocation` names it: `UTC`, `Local`, or an IANA name.
pub fn parse_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        name => TimeZone::get(name).map_err(|e| format!("unknown time zone `{name}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        let ts: jiff::Timestamp = text.parse().expect("timestamp");
        ts.as_millisecond()
    }

    fn check(interval: &TimeInterval, cases: &[(&str, bool)]) {
        for (moment, expected) in cases {
            assert_eq!(interval.contains(at(moment)), *expected, "{moment}");
        }
    }

    #[test]
    fn business_hours_in_a_time_zone() {
        let interval = TimeInterval {
            times: vec![parse_time_range("09:00", "17:00").expect("times")],
            weekdays: vec![parse_weekday_range("Monday:friday").expect("weekdays")],
            location: Some(parse_location("Europe/Berlin").expect("zone")),
            ..TimeInterval::default()
        };
        check(
            &interval,
            &[
                // 2026-12-02 is a Wednesday; Berlin is UTC+1 in winter.
                ("2026-12-02T08:00:00Z", true),
                ("2026-12-02T07:59:59Z", false),
                ("2026-12-02T16:00:00Z", false),
                ("2026-12-05T10:00:00Z", false),
            ],
        );
    }

    #[test]
    fn negative_days_of_month_months_and_years() {
        let last_days = TimeInterval {
            days_of_month: vec![parse_day_of_month_range("-2:-1").expect("days")],
            ..TimeInterval::default()
        };
        check(
            &last_days,
            &[
                ("2026-02-27T12:00:00Z", true),
                ("2026-02-28T12:00:00Z", true),
                ("2026-02-26T12:00:00Z", false),
                ("2024-02-28T12:00:00Z", true),
                ("2024-02-27T12:00:00Z", false),
            ],
        );
        let late_month = TimeInterval {
            days_of_month: vec![parse_day_of_month_range("31").expect("days")],
            months: vec![parse_month_range("march:4").expect("months")],
            years: vec![parse_year_range("2026:2027").expect("years")],
            ..TimeInterval::default()
        };
        check(
            &late_month,
            &[
                ("2026-03-31T00:00:00Z", true),
                ("2026-04-30T00:00:00Z", false),
                ("2025-03-31T00:00:00Z", false),
                ("2026-05-31T00:00:00Z", false),
            ],
        );
    }

    #[test]
    fn invalid_ranges_are_refused() {
        assert!(parse_time_range("17:00", "09:00").is_err());
        assert!(parse_time_range("9:00", "10:00").is_err());
        assert!(parse_time_range("00:00", "24:00").is_ok());
        assert!(parse_weekday_range("friday:monday").is_err());
        assert!(parse_weekday_range("funday").is_err());
        assert!(parse_day_of_month_range("0").is_err());
        assert!(parse_day_of_month_range("-5:3").is_err());
        assert!(parse_day_of_month_range("10:5").is_err());
        assert!(parse_month_range("smarch").is_err());
        assert!(parse_month_range("may:march").is_err());
        assert!(parse_year_range("2027:2026").is_err());
        assert!(parse_location("Mars/Olympus").is_err());
    }
}
