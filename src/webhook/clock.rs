//! The worker's sense of time and chance, injectable so tests can drive retries without
//! sleeping through them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where the worker reads the time: which deliveries are due, when the next attempt is, what
/// the history records and what is signed.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told to move (millisecond precision); clones share it.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.timestamp_millis())))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Puts the clock at `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.0.store(to.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A source of jitter: uniform numbers in `[0, 1)` for [`super::backoff::Backoff::delay`].
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Jitter from the thread's random generator.
pub fn random_jitter() -> Jitter {
    Arc::new(rand::random::<f64>)
}

/// The same jitter every time (for tests: `0.0` gives half the base delay).
pub fn fixed_jitter(value: f64) -> Jitter {
    Arc::new(move || value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.clone().advance(Duration::from_millis(1500));
        assert_eq!(clock.now().timestamp_millis(), 1_700_000_001_623);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn random_jitter_is_in_range() {
        let j = random_jitter();
        assert!((0..1000).map(|_| j()).all(|x| (0.0..1.0).contains(&x)));
    }
}
