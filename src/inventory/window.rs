//! `SHIPSHAPE_AUTO_UPDATE_WINDOW`: when automatic updates may start, in UTC
//! (a host's local zone is not always what its containers' users live in,
//! and UTC never skips or repeats an hour). Checks run at any time; manual
//! updates too.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// One `[Days ]HH:MM-HH:MM` span. An end before the start runs past
/// midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    /// Bit `d` set: the span starts on weekday `d` (0 = Monday).
    days: u8,
    start: u16,
    end: u16,
}

/// Several spans; open when any is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateWindow {
    spans: Vec<Span>,
    text: String,
}

impl fmt::Display for UpdateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn day(s: &str) -> Result<u8, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| lower.len() >= 3 && d.to_ascii_lowercase().starts_with(&lower[..3]) && is_day_name(&lower))
        .map(|i| i as u8)
        .ok_or_else(|| format!("{s:?} is not a weekday (Mon, Tue, ... Sun)"))
}

fn is_day_name(lower: &str) -> bool {
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .any(|full| full.starts_with(lower))
}

fn days(s: &str) -> Result<u8, String> {
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(s)?, day(s)?),
    };
    let mut bits = 0u8;
    let mut d = first;
    loop {
        bits |= 1 << d;
        if d == last {
            return Ok(bits);
        }
        d = (d + 1) % 7;
    }
}

fn clock(s: &str, is_end: bool) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if is_end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn span(s: &str) -> Result<Span, String> {
    let mut words = s.split_whitespace();
    let (days, times) = match (words.next(), words.next(), words.next()) {
        (Some(times), None, None) => (0x7f, times),
        (Some(d), Some(times), None) => (days(d)?, times),
        _ => return Err(format!("{s:?}: expected [days] HH:MM-HH:MM, e.g. Sat 03:00-05:00 or Mon-Fri 02:00-04:00")),
    };
    let (start, end) = times.split_once('-').ok_or_else(|| format!("{times:?}: expected HH:MM-HH:MM"))?;
    let (start, end) = (clock(start, false)?, clock(end, true)?);
    if start == end {
        return Err(format!("{s:?}: the window is empty"));
    }
    Ok(Span { days, start, end })
}

impl std::str::FromStr for UpdateWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let spans = s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(span).collect::<Result<Vec<_>, _>>()?;
        if spans.is_empty() {
            return Err("no window given (example: Sat 03:00-05:00, Mon-Fri 02:00-04:00)".into());
        }
        Ok(Self { spans, text: s.trim().to_string() })
    }
}

impl UpdateWindow {
    /// Open on `weekday` (0 = Monday) at `minute` of the day, UTC.
    pub fn is_open_at(&self, weekday: u8, minute: u16) -> bool {
        let yesterday = (weekday + 6) % 7;
        self.spans.iter().any(|s| {
            let on = |d: u8| s.days & (1 << d) != 0;
            if s.start < s.end {
                on(weekday) && (s.start..s.end).contains(&minute)
            } else {
                (on(weekday) && minute >= s.start) || (on(yesterday) && minute < s.end)
            }
        })
    }

    pub fn is_open(&self, now: SystemTime) -> bool {
        let (weekday, minute) = weekday_minute(now);
        self.is_open_at(weekday, minute)
    }
}

/// The UTC weekday (0 = Monday) and minute of the day.
pub fn weekday_minute(t: SystemTime) -> (u8, u16) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday.
    (((days + 3) % 7) as u8, ((secs % 86_400) / 60) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn w(s: &str) -> UpdateWindow {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const MON: u8 = 0;
    const FRI: u8 = 4;
    const SAT: u8 = 5;
    const SUN: u8 = 6;

    #[test]
    fn parses_and_rejects() {
        for ok in [
            "Sat 03:00-05:00",
            "Mon-Fri 02:00-04:00",
            "03:00-05:00",
            "sat 3:00-5:00, Sun 00:00-24:00",
            "Fri-Mon 22:00-02:00",
            "Saturday 01:00-02:00",
        ] {
            assert!(ok.parse::<UpdateWindow>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            " , ",
            "Sat",
            "Sat 03:00",
            "Sat 3-5",
            "Sat 25:00-26:00",
            "Sat 03:00-03:00",
            "Xyz 01:00-02:00",
            "Sa 01:00-02:00",
            "Sat Sun 01:00-02:00",
            "Sat 24:00-01:00",
            "Sat 01:60-02:00",
        ] {
            assert!(bad.parse::<UpdateWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn open_table() {
        let cases: &[(&str, u8, u16, bool)] = &[
            ("Sat 03:00-05:00", SAT, 3 * 60, true),
            ("Sat 03:00-05:00", SAT, 5 * 60 - 1, true),
            ("Sat 03:00-05:00", SAT, 5 * 60, false),
            ("Sat 03:00-05:00", SAT, 2 * 60 + 59, false),
            ("Sat 03:00-05:00", SUN, 4 * 60, false),
            ("Mon-Fri 02:00-04:00", MON, 150, true),
            ("Mon-Fri 02:00-04:00", FRI, 150, true),
            ("Mon-Fri 02:00-04:00", SAT, 150, false),
            ("03:00-05:00", SUN, 200, true),
            // Past midnight: belongs to the day it starts on.
            ("Fri 23:00-01:00", FRI, 23 * 60 + 30, true),
            ("Fri 23:00-01:00", SAT, 30, true),
            ("Fri 23:00-01:00", FRI, 30, false),
            ("Fri 23:00-01:00", SAT, 23 * 60 + 30, false),
            // A day range wrapping the week.
            ("Sat-Mon 01:00-02:00", SUN, 90, true),
            ("Sat-Mon 01:00-02:00", MON, 90, true),
            ("Sat-Mon 01:00-02:00", FRI, 90, false),
            ("Sun 00:00-24:00", SUN, 24 * 60 - 1, true),
            ("Sun 00:00-24:00", MON, 0, false),
            ("Sat 03:00-05:00, Sun 10:00-11:00", SUN, 10 * 60, true),
            ("Sat 03:00-05:00, Sun 10:00-11:00", SUN, 4 * 60, false),
        ];
        for (text, day, minute, expected) in cases {
            assert_eq!(w(text).is_open_at(*day, *minute), *expected, "{text} day {day} minute {minute}");
        }
    }

    #[test]
    fn weekday_and_minute_in_utc() {
        // 2026-01-03T04:05:00Z is a Saturday.
        let t = UNIX_EPOCH + Duration::from_secs(1_767_413_100);
        assert_eq!(weekday_minute(t), (SAT, 4 * 60 + 5));
        assert_eq!(weekday_minute(UNIX_EPOCH), (3, 0));
        assert!(w("Sat 04:00-04:10").is_open(t));
        assert!(!w("Sun 04:00-04:10").is_open(t));
    }
}
