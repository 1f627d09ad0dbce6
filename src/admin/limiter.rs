//! The failed-login limiter: failures per address group and in all, and the cap on password
//! checks running at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::client_ip;

/// Failed logins an address may make within `LIMIT_WINDOW`.
pub const LIMIT_FAILURES: usize = 5;
/// The window of the failed-login limit.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// Failed logins from all addresses together within `LIMIT_WINDOW`: a botnet with many
/// addresses guesses no faster than this (OWASP Authentication Cheat Sheet: throttle
/// globally as well as per account and address).
pub const GLOBAL_FAILURES: usize = 30;
/// Address groups the limiter tracks at once; beyond, new groups are refused until entries
/// leave the window, so a burst from many addresses cannot grow its memory without bound.
const MAX_TRACKED: usize = 10_000;

/// Why a login attempt was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// The address group, or all addresses together, used up the failed logins of the
    /// window: try again after this long.
    Limited(Duration),
    /// As many password checks as the machine has cores are running: try again shortly.
    Busy,
}

/// The failed-login limit and the password-check cap.
///
/// An attempt takes its slot *before* the password is checked ([`LoginLimiter::begin`]
/// counts it as a failure at once; a success gives the slot back), so concurrent attempts
/// cannot all pass the check before any is counted. Addresses are grouped by
/// [`client_ip::group`] (IPv6 by /64). At most one argon2 check per core runs at once
/// (each takes 19 MiB), so memory stays bounded under any burst; beyond, attempts are
/// refused [`LoginRefused::Busy`] without touching the limit. The clock is a parameter so
/// tests need not sleep.
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
    checks: Arc<Semaphore>,
}

#[derive(Default)]
struct LimiterState {
    per_group: HashMap<IpAddr, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// A login attempt that holds its slot in the limit; the password check's permit travels
/// separately (into the blocking task, so it is held as long as the check really runs).
#[derive(Debug)]
pub struct LoginAttempt {
    group: IpAddr,
    at: Instant,
}

impl LoginLimiter {
    /// A limiter running at most `concurrent_checks` password checks at once.
    pub fn new(concurrent_checks: usize) -> LoginLimiter {
        LoginLimiter {
            state: Mutex::new(LimiterState::default()),
            checks: Arc::new(Semaphore::new(concurrent_checks.max(1))),
        }
    }

    /// Takes `ip`'s slot for one attempt at `now`, counted as a failure until
    /// [`LoginLimiter::succeeded`], and a permit to check the password.
    pub fn begin(
        &self,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(LoginAttempt, OwnedSemaphorePermit), LoginRefused> {
        let group = client_ip::group(ip);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut st.global, now);
        if st.global.len() >= GLOBAL_FAILURES {
            return Err(LoginRefused::Limited(wait(&st.global, now)));
        }
        if !st.per_group.contains_key(&group) && st.per_group.len() >= MAX_TRACKED {
            st.per_group.retain(|_, t| {
                prune(t, now);
                !t.is_empty()
            });
            if st.per_group.len() >= MAX_TRACKED {
                return Err(LoginRefused::Limited(LIMIT_WINDOW));
            }
        }
        let times = st.per_group.entry(group).or_default();
        prune(times, now);
        if times.len() >= LIMIT_FAILURES {
            return Err(LoginRefused::Limited(wait(times, now)));
        }
        let permit = self
            .checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| LoginRefused::Busy)?;
        times.push_back(now);
        st.global.push_back(now);
        Ok((LoginAttempt { group, at: now }, permit))
    }

    /// The attempt logged in: its slot is given back.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = st.per_group.get_mut(&attempt.group)
            && let Some(i) = times.iter().position(|t| *t == attempt.at)
        {
            times.remove(i);
        }
        if let Some(i) = st.global.iter().position(|t| *t == attempt.at) {
            st.global.remove(i);
        }
    }
}

/// How long until the oldest of `times` leaves the window.
fn wait(times: &VecDeque<Instant>, now: Instant) -> Duration {
    times.front().map_or(Duration::ZERO, |first| {
        LIMIT_WINDOW.saturating_sub(now.saturating_duration_since(*first))
    })
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= LIMIT_WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_before_checking_and_refuses_the_sixth_attempt() {
        let l = LoginLimiter::new(100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        // Attempts still being checked count: the sixth concurrent one is refused.
        let held: Vec<_> = (0..LIMIT_FAILURES as u64)
            .map(|i| l.begin(ip, t0 + Duration::from_secs(i)).unwrap())
            .collect();
        assert_eq!(
            l.begin(ip, t0 + Duration::from_secs(10)).err(),
            Some(LoginRefused::Limited(Duration::from_secs(50)))
        );
        assert!(l.begin(other, t0 + Duration::from_secs(10)).is_ok());
        // A success gives its slot back.
        let (attempt, _permit) = held.into_iter().next().unwrap();
        l.succeeded(attempt);
        assert!(l.begin(ip, t0 + Duration::from_secs(10)).is_ok());
        assert!(l.begin(ip, t0 + Duration::from_secs(11)).is_err());
        // Slots leave the window.
        assert!(l.begin(ip, t0 + Duration::from_secs(70)).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_budget_and_all_share_the_global_one() {
        let l = LoginLimiter::new(1000);
        let t0 = Instant::now();
        let mut ok = 0;
        for i in 0..15u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, i, 0, 0, 1]);
            if l.begin(ip, t0).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, LIMIT_FAILURES);
        let mut ok = LIMIT_FAILURES;
        for i in 0..1000u32 {
            let ip = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
            if l.begin(ip, t0).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, GLOBAL_FAILURES);
    }

    #[test]
    fn password_checks_beyond_the_cap_are_refused_busy_without_counting() {
        let l = LoginLimiter::new(2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let a = l.begin(ip(1), t0).unwrap();
        let _b = l.begin(ip(2), t0).unwrap();
        assert_eq!(l.begin(ip(3), t0).err(), Some(LoginRefused::Busy));
        drop(a);
        assert!(l.begin(ip(3), t0).is_ok());
        // The busy refusal did not use up ip(3)'s slots: four more fit.
        for _ in 0..LIMIT_FAILURES - 1 {
            drop(l.begin(ip(3), t0).unwrap());
        }
        assert!(matches!(l.begin(ip(3), t0), Err(LoginRefused::Limited(_))));
    }
}
