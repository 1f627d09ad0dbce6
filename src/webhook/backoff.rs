//! Retry schedule for webhook deliveries, as pure functions.
//!
//! Randomness and the clock are supplied by the caller so every result here is
//! reproducible in tests.

use std::time::Duration;

/// Shortest delay ever returned by [`Backoff::delay`] (unless `max` is lower),
/// so a tiny `initial` or a zero jitter cannot turn retries into a busy loop.
const MIN_DELAY: Duration = Duration::from_secs(1);

/// Exponential backoff with "equal jitter", capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Base delay after the first failed attempt.
    pub initial: Duration,
    /// Upper bound on any delay, including one stretched by `Retry-After`.
    pub max: Duration,
}

impl Backoff {
    /// Delay before the next attempt, after `attempts` failed attempts (>= 1).
    ///
    /// The base is `initial * 2^(attempts - 1)`, saturating and capped at `max`,
    /// so any `attempts` up to `u32::MAX` is safe; `0` is treated as `1`.
    ///
    /// `jitter` must be a uniform random number in `[0, 1)`; values outside are
    /// clamped and NaN counts as `0`. The result is
    /// `base * (0.5 + jitter / 2)`, i.e. uniformly between half the base and the
    /// whole base ("equal jitter"): retries of many deliveries spread out but
    /// still grow with every failure. The result is finally kept at or above
    /// one second and at or below `max`; should `max` itself be under one
    /// second, `max` wins.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let exponent = attempts.saturating_sub(1);
        // Any overflow means "bigger than any sane cap", so it becomes `max`.
        let base = 2u32
            .checked_pow(exponent)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |base| base.min(self.max));

        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let factor = 0.5 + jitter / 2.0;
        // `mul_f64` would panic when the f64 round-trip of a near-`Duration::MAX`
        // base overflows; the factor is at most 1, so `base` is a safe fallback.
        let jittered = Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base);

        jittered.max(MIN_DELAY).min(self.max)
    }

    /// Stretches a `computed` delay to honour a receiver's `Retry-After`.
    ///
    /// With a `Retry-After`, the result is the longer of the two, except that
    /// the receiver can only push the delay up to `max`: a hostile or buggy
    /// `Retry-After` cannot park a delivery for longer than the cap, and it
    /// never shortens our own backoff. Without one, `computed` is returned as is.
    pub fn with_retry_after(&self, computed: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(requested) => computed.max(requested.min(self.max)),
            None => computed,
        }
    }
}

/// Parses a `Retry-After` header value into a wait from `now_unix`.
///
/// Accepts delta-seconds (`"120"`) and an IMF-fixdate HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`); the obsolete RFC 850 and asctime date
/// forms are not accepted. A date at or before `now_unix` gives `Some(0s)`.
/// Anything else gives `None`. Surrounding whitespace is ignored.
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so parsing fails only on overflow; such a value means
        // "very long" and the caller's cap makes it harmless.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = parse_imf_fixdate(value)?;
    let wait = at.saturating_sub(now_unix);
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

/// Parses an IMF-fixdate (RFC 9110 §5.6.7) into Unix seconds.
///
/// The day name must be a real one but is not checked against the date: a
/// server that gets its weekday wrong still means the date it wrote.
fn parse_imf_fixdate(value: &str) -> Option<i64> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];

    // Slicing bytes rather than `&str` means a multi-byte character can only
    // fail a comparison, never panic on a char boundary.
    let b = value.as_bytes();
    // "Wed, 21 Oct 2015 07:28:00 GMT" is always exactly 29 bytes.
    if b.len() != 29
        || !DAYS.contains(&&b[0..3])
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..29] != b" GMT"
    {
        return None;
    }

    let day = digits(&b[5..7])?;
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as u32 + 1;
    let year = digits(&b[12..16])?;
    let hour = digits(&b[17..19])?;
    let minute = digits(&b[20..22])?;
    // Second 60 is refused like every time that does not exist (issue 11 point 7): no leap
    // second has been inserted since 2016 and none will be; the computed backoff then applies.
    let second = digits(&b[23..25])?;

    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// Value of a run of ASCII digits, or `None` if any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Length of `month` (1-based) in the proleptic Gregorian `year`.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
// Howard Hinnant's `days_from_civil`: exact for every year, no tables, and
// small enough to verify by the tests below instead of pulling in a crate.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn five_s_one_h() -> Backoff {
        Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }

    /// Base delays for 5 s / 1 h over attempts 1..=15.
    const EXPECTED_BASES: [u64; 15] = [
        5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600, 3600, 3600,
    ];

    #[test]
    fn schedule_with_full_jitter_approaches_base_and_caps() {
        let backoff = five_s_one_h();
        let jitter = 1.0 - f64::EPSILON;
        for (attempts, base) in (1..=15).zip(EXPECTED_BASES) {
            let base = Duration::from_secs(base);
            let d = backoff.delay(attempts, jitter);
            assert!(d <= base, "attempt {attempts}: {d:?} > {base:?}");
            assert!(
                base - d < Duration::from_millis(1),
                "attempt {attempts}: {d:?} far below {base:?}"
            );
        }
    }

    #[test]
    fn schedule_with_zero_jitter_is_half_base_and_doubles() {
        let backoff = five_s_one_h();
        let delays: Vec<Duration> = (1..=15).map(|a| backoff.delay(a, 0.0)).collect();
        for (d, base) in delays.iter().zip(EXPECTED_BASES) {
            assert_eq!(*d, Duration::from_secs(base) / 2);
        }
        // Doubling holds until the cap, then the delay stays flat.
        for pair in delays[..10].windows(2) {
            assert_eq!(pair[1], pair[0] * 2);
        }
        assert!(delays[10..].iter().all(|d| *d == Duration::from_secs(1800)));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let backoff = five_s_one_h();
        for attempts in [32, 33, 64, 1_000, u32::MAX - 1, u32::MAX] {
            assert_eq!(backoff.delay(attempts, 0.0), Duration::from_secs(1800));
            assert!(backoff.delay(attempts, 0.999) <= backoff.max);
        }
    }

    #[test]
    fn huge_durations_do_not_panic() {
        let backoff = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
        };
        for attempts in [1, 2, u32::MAX] {
            for jitter in [0.0, 0.5, 0.999_999] {
                let d = backoff.delay(attempts, jitter);
                assert!(d >= Duration::MAX / 2 - SECOND);
            }
        }
    }

    #[test]
    fn zero_attempts_is_treated_as_first() {
        let backoff = five_s_one_h();
        assert_eq!(backoff.delay(0, 0.0), backoff.delay(1, 0.0));
    }

    #[test]
    fn jitter_stays_between_half_and_full_base() {
        let backoff = five_s_one_h();
        for attempts in 1..=12 {
            let base = backoff.delay(attempts, 1.0);
            for i in 0..100 {
                let jitter = f64::from(i) / 100.0;
                let d = backoff.delay(attempts, jitter);
                assert!(
                    d >= base / 2 && d <= base,
                    "attempt {attempts}, jitter {jitter}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        let backoff = five_s_one_h();
        assert_eq!(backoff.delay(3, -5.0), backoff.delay(3, 0.0));
        assert_eq!(backoff.delay(3, f64::NAN), backoff.delay(3, 0.0));
        assert_eq!(backoff.delay(3, 7.0), Duration::from_secs(20));
        assert_eq!(backoff.delay(3, f64::INFINITY), Duration::from_secs(20));
    }

    #[test]
    fn delay_is_never_below_one_second() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
        };
        assert_eq!(backoff.delay(1, 0.0), SECOND);
        assert_eq!(backoff.delay(1, 0.999), SECOND);
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(60),
        };
        assert_eq!(zero.delay(10, 0.5), SECOND);
    }

    #[test]
    fn max_below_one_second_wins_over_minimum() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        assert_eq!(backoff.delay(5, 0.5), Duration::from_millis(300));
    }

    #[test]
    fn retry_after_absent_keeps_computed() {
        let backoff = five_s_one_h();
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), None),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn retry_after_longer_is_honoured() {
        let backoff = five_s_one_h();
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn retry_after_shorter_does_not_shorten() {
        let backoff = five_s_one_h();
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), Some(Duration::from_secs(3))),
            Duration::from_secs(40)
        );
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), Some(Duration::ZERO)),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn retry_after_is_clamped_to_max() {
        let backoff = five_s_one_h();
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), Some(Duration::from_secs(86_400))),
            backoff.max
        );
        assert_eq!(
            backoff.with_retry_after(Duration::from_secs(40), Some(Duration::MAX)),
            backoff.max
        );
    }

    // 2015-10-21T07:28:00Z.
    const OCT_21_2015: i64 = 1_445_412_480;

    #[test]
    fn parses_delta_seconds() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("0", 0), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 ", 0), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", 0),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn parses_http_date_in_future() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", OCT_21_2015 - 90),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn http_date_now_or_past_is_zero() {
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(date, OCT_21_2015), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(date, OCT_21_2015 + 1),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(date, i64::MAX), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage() {
        for value in [
            "",
            "   ",
            "-5",
            "+5",
            "1.5",
            "12s",
            "soon",
            "１２",
            // Obsolete HTTP-date forms are not IMF-fixdate.
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
            // Near misses of IMF-fixdate.
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 oct 2015 07:28:00 GMT",
            "Xyz, 21 Oct 2015 07:28:00 GMT",
            "Wed, 1 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 7:28:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed,21 Oct 2015 07:28:00 GMT ",
            "Wed, 21 Oct 2015 07:28:00 GMTX",
            "Wed, 2a Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 GMT extra",
            // Impossible dates and times.
            "Wed, 00 Oct 2015 07:28:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 31 Nov 2015 07:28:00 GMT",
            "Wed, 29 Feb 2015 07:28:00 GMT",
            "Wed, 29 Feb 1900 07:28:00 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 21 Oct 2015 07:60:00 GMT",
            "Wed, 21 Oct 2015 07:28:61 GMT",
            // Multi-byte characters at the right length must not panic.
            "Wed, 21 Oct 2015 07:28:00 GMé",
            "é, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(value, 0), None, "{value:?}");
        }
    }

    #[test]
    fn imf_fixdate_known_instants() {
        let cases = [
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Wed, 21 Oct 2015 07:28:00 GMT", OCT_21_2015),
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
            ("Thu, 29 Feb 2024 23:59:59 GMT", 1_709_251_199),
            ("Fri, 01 Mar 2024 00:00:00 GMT", 1_709_251_200),
            ("Fri, 31 Dec 1999 23:59:59 GMT", 946_684_799),
            ("Tue, 19 Jan 2038 03:14:08 GMT", 2_147_483_648),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
            ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
            ("Sat, 01 Jan 0000 00:00:00 GMT", -62_167_219_200),
        ];
        for (text, unix) in cases {
            assert_eq!(parse_imf_fixdate(text), Some(unix), "{text}");
        }
    }

    #[test]
    fn second_60_is_refused() {
        assert_eq!(parse_imf_fixdate("Sat, 31 Dec 2016 23:59:60 GMT"), None);
        assert_eq!(parse_retry_after("Sat, 31 Dec 2016 23:59:60 GMT", 0), None);
        assert_eq!(
            parse_imf_fixdate("Sat, 31 Dec 2016 23:59:59 GMT"),
            Some(1_483_228_799)
        );
    }

    #[test]
    fn weekday_is_not_cross_checked() {
        assert_eq!(
            parse_imf_fixdate("Mon, 21 Oct 2015 07:28:00 GMT"),
            Some(OCT_21_2015)
        );
    }
}
