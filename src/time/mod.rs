//! Time as the stack sees it.
//!
//! The protocol core never reads a clock: every entry point takes `now: Instant`, and answers
//! with the next deadline it needs (habit 1 in DESIGN.md). An [`Instant`] is microseconds since
//! an origin the caller chooses (the runtime's start, or zero in the simulator), so virtual
//! time and real time are the same type. Durations are `core::time::Duration`.

pub mod wheel;

use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;
pub use wheel::{StaleHandle, TimerHandle, TimerWheel, WheelFull};

/// The real clock for an embedder's loop: monotonic, with its origin when made, handing out
/// [`Instant`]s for [`Stack::poll`](crate::stack::Stack::poll) and the rest. (The protocol
/// core never calls it; only the code that drives a stack does.)
///
/// ```
/// let clock = xtcp::time::Clock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Clock {
        Clock { origin: std::time::Instant::now() }
    }
    /// Microseconds since the clock was made.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }
    /// How long from now until `deadline` (zero if it has passed): what to sleep or wait
    /// for before the next `poll`.
    pub fn until(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A point in time: microseconds since the caller's origin.
///
/// Kept as microseconds + 1 in a `NonZeroU64`, so that `Option<Instant>` (a deadline, set
/// or not: a connection has a dozen) takes 8 bytes, not 16. Subtracting two instants and
/// adding a duration cost the same as on a plain count.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros_plus_1: NonZeroU64,
}

impl Default for Instant {
    fn default() -> Instant {
        Instant::ZERO
    }
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant::from_micros(0);
    /// Later than any deadline the stack sets (`u64::MAX - 1` microseconds: 584,542 years).
    pub const FAR_FUTURE: Instant = Instant { micros_plus_1: NonZeroU64::MAX };

    /// `micros` microseconds after the origin (at most [`Instant::FAR_FUTURE`]).
    pub const fn from_micros(micros: u64) -> Instant {
        Instant { micros_plus_1: NonZeroU64::MIN.saturating_add(micros) }
    }
    /// `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant::from_micros(millis * 1000)
    }
    /// `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }
    /// Microseconds since the origin.
    #[inline]
    pub const fn as_micros(self) -> u64 {
        self.micros_plus_1.get() - 1
    }
    /// Whole milliseconds since the origin (rounded down).
    pub const fn as_millis(self) -> u64 {
        self.as_micros() / 1000
    }
    /// Time since `earlier`, zero if `earlier` is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros_plus_1.get().saturating_sub(earlier.micros_plus_1.get()))
    }
}

fn micros_of(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The earlier of two optional deadlines (`None`: no deadline). Cheaper than collecting
/// them into an iterator, which the hot path noticed.
#[inline]
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::FAR_FUTURE`].
    fn add(self, d: Duration) -> Instant {
        Instant { micros_plus_1: self.micros_plus_1.saturating_add(micros_of(d)) }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturates at zero.
    fn sub(self, d: Duration) -> Instant {
        let v = self.micros_plus_1.get().saturating_sub(micros_of(d));
        Instant { micros_plus_1: NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN) }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.as_micros();
        write!(f, "{}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!(t + Duration::from_millis(1), Instant::from_micros(6000));
        assert_eq!(t - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_millis(5));
        assert_eq!(Instant::FAR_FUTURE + Duration::from_secs(1), Instant::FAR_FUTURE);
        assert_eq!(format!("{:?}", Instant::from_micros(1_000_250)), "1.000250s");
        assert_eq!(Instant::from_micros(u64::MAX), Instant::FAR_FUTURE);
        assert_eq!(Instant::FAR_FUTURE.as_micros(), u64::MAX - 1);
        assert_eq!(Instant::FAR_FUTURE - Instant::ZERO, Duration::from_micros(u64::MAX - 1));
        assert_eq!(Instant::default(), Instant::ZERO);
        assert!(Instant::ZERO < Instant::from_micros(1) && Instant::from_micros(1) < Instant::FAR_FUTURE);
    }

    #[test]
    fn a_deadline_that_may_be_unset_takes_one_word() {
        assert_eq!(core::mem::size_of::<Option<Instant>>(), 8);
    }
}
