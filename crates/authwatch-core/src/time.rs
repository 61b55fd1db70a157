//! Time as authwatch reads and writes it: RFC 3339 timestamps (one parser, [`parse_rfc3339`],
//! and one formatter, [`format_rfc3339`], for every component), durations written the
//! Prometheus way ([`Window`]) and the pausable wall clock of the connectors ([`Clock`]).
//!
//! HTTP dates (`Retry-After`) are not here: they belong to the networking code.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

// === RFC 3339 ===

/// How many fractional digits [`format_rfc3339`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2024-05-01T12:00:00Z`: for people (terminal lines).
    Seconds,
    /// `2024-05-01T12:00:00.250Z`: for machines (alert events, Alertmanager, webhooks).
    Millis,
}

/// Reads an RFC 3339 timestamp: `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250+02:00`.
///
/// Also taken, as most producers write them: a lower-case `t`/`z`, a space between date and
/// time, any number of fractional digits (nanoseconds are kept, the rest is cut), surrounding
/// whitespace. The date must exist (`2023-02-29` does not), the year has four digits, and a leap
/// second (`23:59:60`) counts as the first second of the next minute, as in POSIX time. Times
/// before 1970 are returned as such. `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, c) in r[..n.min(9)].iter().enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &r[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    from_unix(secs, nanos)
}

/// Writes `t` as RFC 3339 in UTC (`2024-05-01T12:00:00.250Z`), fractional digits cut (not
/// rounded) to `precision`. Times before year 0 or after year 9999, which RFC 3339 cannot
/// write, are clamped to the first or last instant it can.
pub fn format_rfc3339(t: SystemTime, precision: Precision) -> String {
    let (secs, nanos) = to_unix(t);
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z.
    const MIN: i64 = -62_167_219_200;
    const MAX: i64 = 253_402_300_799;
    let (secs, nanos) = if secs < MIN {
        (MIN, 0)
    } else if secs > MAX {
        (MAX, 999_999_999)
    } else {
        (secs, nanos)
    };
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    match precision {
        Precision::Seconds => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        Precision::Millis => {
            let ms = nanos / 1_000_000;
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        }
    }
}

/// Nanoseconds since the Unix epoch, as OTLP time fields carry them; `None` before 1970 (or
/// past the year 2554, beyond `u64`).
pub fn unix_nanos(t: SystemTime) -> Option<u64> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// [`unix_nanos`] for an OTLP time field, where 0 means unknown: 0 before 1970, `u64::MAX`
/// past the year 2554.
pub fn otlp_time(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// Two ASCII digits (or four) as a number.
fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0i64;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn from_unix(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))?
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
    };
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Whole seconds since the epoch (floored) and the nanoseconds past them.
fn to_unix(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

// === Window ===

/// A duration that is written and printed the Prometheus way (`30s`, `5m`, `1h`, `1d`) and
/// parsed like every authwatch duration (`5m`, `1h30m`, `90s`). Must not be zero. The
/// `error_rate` connector's sliding windows and the `alerts` connector's rule windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window(pub Duration);

impl Window {
    pub const fn secs(s: u64) -> Self {
        Window(Duration::from_secs(s))
    }
    #[inline]
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Window {
    /// The largest unit that divides the duration exactly: `1d`, `6h`, `30m`, `90s`, `500ms`.
    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s >= n && s % n == 0 {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d = crate::config::duration::deserialize(d)?;
        if d.is_zero() {
            return Err(serde::de::Error::custom(
                "must be longer than zero, e.g. `5m`",
            ));
        }
        Ok(Window(d))
    }
}

// === Clock ===

/// Wall-clock time that follows tokio's (pausable) clock: fixed at creation, then advanced by
/// `tokio::time::Instant`, so windows and timestamps agree and tests are deterministic.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: SystemTime,
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }
    /// Time since the clock was created.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }
    #[inline]
    pub fn system_time(&self, elapsed: Duration) -> SystemTime {
        self.wall + elapsed
    }
    /// Unix nanoseconds at `elapsed` (0 if the wall clock was before 1970).
    #[inline]
    pub fn unix_nanos(&self, elapsed: Duration) -> u64 {
        otlp_time(self.system_time(elapsed))
    }
    /// RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.000Z`), as Alertmanager reads it.
    pub fn rfc3339(&self, elapsed: Duration) -> String {
        format_rfc3339(self.system_time(elapsed), Precision::Millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> SystemTime {
        from_unix(secs, nanos).unwrap()
    }

    fn parse(s: &str) -> Option<SystemTime> {
        parse_rfc3339(s)
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        let z = at(1_714_564_800, 0);
        assert_eq!(parse("2024-05-01T12:00:00Z"), Some(z));
        assert_eq!(parse("2024-05-01t12:00:00z"), Some(z));
        assert_eq!(parse("2024-05-01 12:00:00Z"), Some(z));
        assert_eq!(parse("  2024-05-01T12:00:00Z\n"), Some(z));
        assert_eq!(parse("2024-05-01T14:00:00+02:00"), Some(z));
        assert_eq!(parse("2024-05-01T06:30:00-05:30"), Some(z));
        assert_eq!(parse("2024-05-01T12:00:00+00:00"), Some(z));
        assert_eq!(parse("2024-05-01T12:00:00-00:00"), Some(z));
        assert_eq!(
            parse("2024-05-01T12:00:00.250Z"),
            Some(at(1_714_564_800, 250_000_000))
        );
        assert_eq!(
            parse("2024-05-01T12:00:00.5Z"),
            Some(at(1_714_564_800, 500_000_000))
        );
        assert_eq!(
            parse("2024-05-01T12:00:00.123456789Z"),
            Some(at(1_714_564_800, 123_456_789))
        );
        // Digits past nanoseconds are cut, not rounded.
        assert_eq!(
            parse("2024-05-01T12:00:00.1234567899999Z"),
            Some(at(1_714_564_800, 123_456_789))
        );
        assert_eq!(
            parse("2021-11-03T05:07:24.384+02:00").and_then(unix_nanos),
            Some(1_635_908_844_384_000_000)
        );
        assert_eq!(
            parse("1970-01-01T00:00:01Z").and_then(unix_nanos),
            Some(1_000_000_000)
        );
    }

    #[test]
    fn checks_the_calendar() {
        assert!(
            parse("2024-02-29T00:00:00Z").is_some(),
            "2024 is a leap year"
        );
        assert!(
            parse("2000-02-29T00:00:00Z").is_some(),
            "2000 is a leap year"
        );
        assert_eq!(parse("2023-02-29T00:00:00Z"), None);
        assert_eq!(
            parse("1900-02-29T00:00:00Z"),
            None,
            "1900 is not a leap year"
        );
        assert_eq!(parse("2024-04-31T00:00:00Z"), None);
        assert_eq!(parse("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse("2024-00-01T00:00:00Z"), None);
        assert_eq!(parse("2024-01-00T00:00:00Z"), None);
        assert_eq!(parse("2024-01-01T24:00:00Z"), None);
        assert_eq!(parse("2024-01-01T23:60:00Z"), None);
        assert_eq!(parse("2024-01-01T23:59:61Z"), None);
        // A leap second is the first second of the next minute.
        assert_eq!(parse("2016-12-31T23:59:60Z"), parse("2017-01-01T00:00:00Z"));
        assert!(parse("2016-12-31T23:59:60Z").is_some());
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for s in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00+02",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00+02:60",
            "2024-05-01T12:00:00 Z",
            "2024-05-01T12:00:00ZZ",
            "24-05-01T12:00:00Z",
            "+2024-05-01T12:00:00Z",
            "12024-05-01T12:00:00Z",
            "2024-5-01T12:00:00Z",
            "2024-05-01X12:00:00Z",
            "2024-05-01T12-00-00Z",
            "2024-05-01T1a:00:00Z",
            "Wed, 03 Nov 2021 03:07:24 GMT",
            "2024-05-01T12:00:00.１Z",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn times_before_1970_and_at_the_ends() {
        let t = parse("1969-12-31T23:59:59.500Z").unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(unix_nanos(t), None);
        assert_eq!(otlp_time(t), 0, "unknown, in an OTLP time field");
        assert_eq!(otlp_time(UNIX_EPOCH + Duration::from_nanos(7)), 7);
        assert_eq!(
            format_rfc3339(t, Precision::Millis),
            "1969-12-31T23:59:59.500Z"
        );
        let old = parse("1900-01-01T00:00:00Z").unwrap();
        assert_eq!(
            format_rfc3339(old, Precision::Seconds),
            "1900-01-01T00:00:00Z"
        );
        let first = parse("0000-01-01T00:00:00Z").unwrap();
        assert_eq!(
            format_rfc3339(first, Precision::Millis),
            "0000-01-01T00:00:00.000Z"
        );
        let last = parse("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(
            format_rfc3339(last, Precision::Millis),
            "9999-12-31T23:59:59.999Z"
        );
        // Beyond what RFC 3339 writes: clamped, never a panic.
        let far = last + Duration::from_secs(86_400 * 365);
        assert_eq!(
            format_rfc3339(far, Precision::Seconds),
            "9999-12-31T23:59:59Z"
        );
        let before = first - Duration::from_secs(86_400);
        assert_eq!(
            format_rfc3339(before, Precision::Millis),
            "0000-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn formats_in_utc_with_cut_fractions() {
        let t = at(1_714_564_800, 999_999_999);
        assert_eq!(
            format_rfc3339(t, Precision::Millis),
            "2024-05-01T12:00:00.999Z"
        );
        assert_eq!(
            format_rfc3339(t, Precision::Seconds),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH, Precision::Millis),
            "1970-01-01T00:00:00.000Z"
        );
        let leap_day = parse("2024-02-29T23:59:59+01:00").unwrap();
        assert_eq!(
            format_rfc3339(leap_day, Precision::Seconds),
            "2024-02-29T22:59:59Z"
        );
    }

    #[test]
    fn format_and_parse_agree() {
        // Every 1000 days and a few seconds from 0001 to 9999, with milliseconds.
        let mut secs = -62_135_596_800i64;
        while secs < 253_402_300_799 {
            let t = at(secs, 123_000_000);
            let s = format_rfc3339(t, Precision::Millis);
            assert_eq!(parse(&s), Some(t), "{s}");
            secs += 86_400 * 1000 + 3_599;
        }
    }

    #[test]
    fn windows_print_the_prometheus_way() {
        for (s, p) in [
            (60, "1m"),
            (300, "5m"),
            (3600, "1h"),
            (21_600, "6h"),
            (86_400, "1d"),
            (259_200, "3d"),
            (90, "90s"),
            (5400, "90m"),
        ] {
            assert_eq!(Window::secs(s).to_string(), p);
        }
        assert_eq!(Window(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn windows_parse_and_refuse_zero() {
        let w: Window = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(w, Window::secs(5400));
        let e = serde_json::from_str::<Window>("\"0s\"").unwrap_err();
        assert!(e.to_string().contains("longer than zero"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let c = Clock::new();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.elapsed(), Duration::from_secs(90));
        let want = c.system_time(Duration::ZERO) + Duration::from_secs(90);
        assert_eq!(c.system_time(c.elapsed()), want);
        assert_eq!(
            c.rfc3339(c.elapsed()),
            format_rfc3339(want, Precision::Millis)
        );
        assert_eq!(c.unix_nanos(c.elapsed()), unix_nanos(want).unwrap());
    }
}
