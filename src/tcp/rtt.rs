//! The retransmission timer's estimator (RFC 6298).
//!
//! [`RttEstimator`] turns RTT samples into a retransmission timeout. It keeps SRTT and RTTVAR
//! in nanoseconds so that the 1/8 and 1/4 gains lose no precision that matters (the clock is
//! microseconds; a nanosecond of truncation per sample is far below it).
//!
//! What the caller must do (the estimator cannot see segments):
//! * **Karn's algorithm** (RFC 6298 §3): never call [`RttEstimator::sample`] with a
//!   measurement taken from a segment that was retransmitted, since the ACK may belong to
//!   either copy. The one exception is an RTT measured from the TCP timestamp option
//!   (RFC 7323 §4), which names the copy it echoes.
//! * Take at least one sample per round trip when Karn allows it (RFC 6298 §3); with
//!   timestamps every ACK that advances the window may be a sample.
//! * Call [`RttEstimator::backoff`] when the timer expires (RFC 6298 §5.5), and give up on the
//!   connection after as many backoffs as its policy allows (RFC 1122 §4.2.3.5, R2).
//! * RFC 6298 §5.7: if the SYN timed out and no sample was taken, reset the RTO to 3 s when
//!   data transfer begins (make a new estimator with a 3 s initial RTO).

use core::time::Duration;

/// RFC 6298 §2.1: the RTO before any sample is 1 second.
pub const DEFAULT_INITIAL_RTO: Duration = Duration::from_secs(1);
/// Linux's lower bound (`TCP_RTO_MIN`). RFC 6298 §2.4 asks for 1 s, which is far too long for
/// a low-latency stack on a LAN; the RFC itself notes the 1 s floor is conservative.
pub const DEFAULT_MIN_RTO: Duration = Duration::from_millis(200);
/// Linux's upper bound (`TCP_RTO_MAX`); RFC 6298 §2.5 allows any maximum of at least 60 s.
pub const DEFAULT_MAX_RTO: Duration = Duration::from_secs(120);
/// RFC 6298 §2: the clock granularity G, 1 ms as Linux's (its retransmission timer runs on
/// jiffies). The stack's wheel is finer (`StackConfig::timer_resolution`), but an RTO closer
/// to SRTT than this would fire on the jitter of any busy host.
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(1);

/// Estimates SRTT and RTTVAR from samples and computes the retransmission timeout (RFC 6298).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// `None` until the first sample (RFC 6298 §2.1 vs §2.2).
    srtt_ns: Option<u64>,
    rttvar_ns: u64,
    /// The RTO without backoff, already clamped to `[min_rto, max_rto]`.
    base_rto_ns: u64,
    min_rto_ns: u64,
    max_rto_ns: u64,
    /// How many times the timer has expired since the last sample.
    backoffs: u32,
}

fn nanos(d: Duration) -> u64 {
    // Anything past u64 nanoseconds (584 years) is "forever" to a retransmission timer.
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    /// An estimator with no samples yet; its RTO is `initial_rto` (RFC 6298 §2.1), clamped to
    /// `[min_rto, max_rto]` like every RTO it computes later.
    ///
    /// `min_rto > max_rto` is a configuration bug: it asserts in debug builds and `max_rto`
    /// is raised to `min_rto` in release builds.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        debug_assert!(min_rto <= max_rto, "min_rto {min_rto:?} > max_rto {max_rto:?}");
        let min_rto_ns = nanos(min_rto);
        let max_rto_ns = nanos(max_rto).max(min_rto_ns);
        RttEstimator {
            srtt_ns: None,
            rttvar_ns: 0,
            base_rto_ns: nanos(initial_rto).clamp(min_rto_ns, max_rto_ns),
            min_rto_ns,
            max_rto_ns,
            backoffs: 0,
        }
    }

    /// Feed one RTT measurement. The caller applies Karn's algorithm (module docs).
    pub fn sample(&mut self, rtt: Duration) {
        let r = nanos(rtt) as u128;
        let (srtt, rttvar) = match self.srtt_ns {
            // RFC 6298 §2.2: the first measurement R sets SRTT <- R, RTTVAR <- R/2.
            None => (r, r / 2),
            Some(srtt) => {
                let srtt = srtt as u128;
                // RFC 6298 §2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'| with
                // beta = 1/4, using the SRTT from *before* this sample (the RFC orders the two
                // updates this way). One division keeps the rounding to a single nanosecond.
                let rttvar = (3 * self.rttvar_ns as u128 + srtt.abs_diff(r)) / 4;
                // RFC 6298 §2.3: SRTT <- (1 - alpha) * SRTT + alpha * R' with alpha = 1/8.
                let srtt = (7 * srtt + r) / 8;
                (srtt, rttvar)
            }
        };
        // Both are weighted means of values that fit u64, so they fit u64 too.
        self.srtt_ns = Some(srtt as u64);
        self.rttvar_ns = rttvar as u64;
        // RFC 6298 §2.2/§2.3: RTO <- SRTT + max(G, K * RTTVAR) with K = 4.
        let rto = srtt + (4 * rttvar).max(nanos(CLOCK_GRANULARITY) as u128);
        // RFC 6298 §2.4 (lower bound, here configurable) and §2.5 (upper bound).
        self.base_rto_ns = rto.clamp(self.min_rto_ns as u128, self.max_rto_ns as u128) as u64;
        // RFC 6298 §5, note after (5.7): a new measurement recomputes RTO, "collapsing" it
        // back down after it was doubled by (5.5). A sample can only come from data sent and
        // acknowledged without retransmission, so the path is demonstrably working again.
        self.backoffs = 0;
    }

    /// The current retransmission timeout: the estimate times 2^backoffs, at most `max_rto`.
    pub fn rto(&self) -> Duration {
        // RFC 6298 §5.5: each expiry doubles the RTO; §2.5's maximum bounds the doubling.
        // u64 << 64 still fits u128, so the shift cannot lose bits before the clamp.
        if self.backoffs == 0 {
            // Without a backoff (nearly always), no 128-bit shift.
            return Duration::from_nanos(self.base_rto_ns.min(self.max_rto_ns));
        }
        let shift = self.backoffs.min(64);
        let rto = ((self.base_rto_ns as u128) << shift).min(self.max_rto_ns as u128);
        Duration::from_nanos(rto as u64)
    }

    /// The retransmission timer expired: double the RTO (RFC 6298 §5.5).
    pub fn backoff(&mut self) {
        // Saturating: the RTO stops growing at max_rto long before the count matters, and the
        // caller's give-up policy (RFC 1122 R2) reads the count.
        self.backoffs = self.backoffs.saturating_add(1);
    }

    /// Expiries since the last sample (or since construction).
    pub fn backoff_count(&self) -> u32 {
        self.backoffs
    }

    /// The smoothed RTT, or `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_ns.map(Duration::from_nanos)
    }

    /// The RTT variation, or `None` before the first sample.
    pub fn rttvar(&self) -> Option<Duration> {
        self.srtt_ns.map(|_| Duration::from_nanos(self.rttvar_ns))
    }
}

impl Default for RttEstimator {
    /// The stack's defaults: 1 s initial, 200 ms minimum, 120 s maximum.
    fn default() -> RttEstimator {
        RttEstimator::new(DEFAULT_INITIAL_RTO, DEFAULT_MIN_RTO, DEFAULT_MAX_RTO)
    }
}

/// The minimum RTT over a sliding window of time (RFC 8985's RACK.min_RTT, Linux's
/// `tcp_min_rtt`): Kathleen Nichols' windowed-minimum estimator with three samples (the
/// best, second best and third best of the window's thirds), so that a route change that
/// raises the RTT is learnt within a window instead of never. No allocation, O(1) a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowedMin {
    window: Duration,
    /// (time, value), best first.
    s: [(crate::time::Instant, Duration); 3],
    empty: bool,
}

impl WindowedMin {
    /// An empty filter over a window of `window`.
    pub fn new(window: Duration) -> WindowedMin {
        WindowedMin { window, s: [(crate::time::Instant::ZERO, Duration::ZERO); 3], empty: true }
    }

    /// The minimum, or `None` before any sample.
    pub fn get(&self) -> Option<Duration> {
        (!self.empty).then_some(self.s[0].1)
    }

    /// Take the sample `v` measured at `now`.
    pub fn update(&mut self, now: crate::time::Instant, v: Duration) {
        let w = self.window;
        if self.empty || v <= self.s[0].1 || now.saturating_duration_since(self.s[2].0) > w {
            // A new minimum, or nothing recent: restart the window at it.
            self.s = [(now, v); 3];
            self.empty = false;
            return;
        }
        if v <= self.s[1].1 {
            self.s[1] = (now, v);
            self.s[2] = (now, v);
        } else if v <= self.s[2].1 {
            self.s[2] = (now, v);
        }
        // Age out the best when it is older than the window, and keep the later samples
        // spread over it.
        let dt = now.saturating_duration_since(self.s[0].0);
        if dt > w {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = (now, v);
            if now.saturating_duration_since(self.s[0].0) > w {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = (now, v);
            }
        } else if self.s[1].0 == self.s[0].0 && dt > w / 4 {
            self.s[1] = (now, v);
            self.s[2] = (now, v);
        } else if self.s[2].0 == self.s[1].0 && dt > w / 2 {
            self.s[2] = (now, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// No clamping in the way: 1 µs minimum, 1 hour maximum.
    fn unclamped() -> RttEstimator {
        RttEstimator::new(ms(1000), Duration::from_micros(1), Duration::from_secs(3600))
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let e = RttEstimator::default();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), None);
        assert_eq!(e.backoff_count(), 0);
    }

    #[test]
    fn initial_rto_is_clamped_too() {
        assert_eq!(RttEstimator::new(ms(50), ms(200), ms(1000)).rto(), ms(200));
        assert_eq!(RttEstimator::new(ms(5000), ms(200), ms(1000)).rto(), ms(1000));
    }

    #[test]
    fn first_sample_sets_srtt_r_and_rttvar_half_r() {
        let mut e = unclamped();
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), Some(ms(50)));
        // RTO = 100 + max(1, 4 * 50) = 300 ms.
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn granularity_bounds_rto_above_srtt() {
        // R = 100 µs: 4 * RTTVAR = 200 µs < G = 1 ms, so RTO = SRTT + G.
        let mut e = unclamped();
        e.sample(Duration::from_micros(100));
        assert_eq!(e.rto(), Duration::from_micros(1100));
    }

    /// Worked by hand from RFC 6298 §2.2–§2.3 (alpha = 1/8, beta = 1/4, K = 4, G = 1 ms), in ms:
    ///
    /// * R = 100 (first): SRTT = 100, RTTVAR = 100/2 = 50, RTO = 100 + max(1, 4·50) = 300.
    /// * R = 200: RTTVAR = 3/4·50 + 1/4·abs(100 − 200) = 37.5 + 25 = 62.5 (old SRTT);
    ///   SRTT = 7/8·100 + 1/8·200 = 87.5 + 25 = 112.5; RTO = 112.5 + 4·62.5 = 362.5.
    /// * R = 50: RTTVAR = 3/4·62.5 + 1/4·abs(112.5 − 50) = 46.875 + 15.625 = 62.5;
    ///   SRTT = 7/8·112.5 + 1/8·50 = 98.4375 + 6.25 = 104.6875; RTO = 104.6875 + 250 = 354.6875.
    ///
    /// All of these are whole nanoseconds, so the estimator must hit them exactly.
    #[test]
    fn worked_example() {
        let mut e = unclamped();
        e.sample(ms(100));
        assert_eq!((e.srtt(), e.rttvar(), e.rto()), (Some(ms(100)), Some(ms(50)), ms(300)));
        e.sample(ms(200));
        assert_eq!(e.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
        e.sample(ms(50));
        assert_eq!(e.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(e.srtt(), Some(Duration::from_nanos(104_687_500)));
        assert_eq!(e.rto(), Duration::from_nanos(354_687_500));
    }

    #[test]
    fn converges_on_constant_rtt() {
        let mut e = unclamped();
        e.sample(ms(10));
        for _ in 0..200 {
            e.sample(ms(40));
        }
        // SRTT approaches R geometrically (error × 7/8 per sample); RTTVAR decays to ~0, so
        // the RTO settles at R + G.
        let srtt = e.srtt().unwrap();
        assert!(srtt.abs_diff(ms(40)) < Duration::from_micros(1), "{srtt:?}");
        assert!(e.rttvar().unwrap() < Duration::from_micros(1));
        assert!(e.rto().abs_diff(ms(41)) < Duration::from_micros(5), "{:?}", e.rto());
    }

    #[test]
    fn clamped_to_min_rto() {
        let mut e = RttEstimator::default();
        e.sample(ms(1)); // 1 + 4 * 0.5 = 3 ms, below 200 ms.
        assert_eq!(e.rto(), DEFAULT_MIN_RTO);
        // The estimate itself is not clamped, only the timeout.
        assert_eq!(e.srtt(), Some(ms(1)));
    }

    #[test]
    fn clamped_to_max_rto() {
        let mut e = RttEstimator::default();
        e.sample(Duration::from_secs(100)); // 100 + 200 = 300 s, above 120 s.
        assert_eq!(e.rto(), DEFAULT_MAX_RTO);
        // Absurd samples neither panic nor overflow.
        e.sample(Duration::MAX);
        assert_eq!(e.rto(), DEFAULT_MAX_RTO);
    }

    #[test]
    fn backoff_doubles_and_caps_at_max() {
        let mut e = RttEstimator::default();
        e.sample(ms(100)); // RTO 300 ms.
        let expected = [300, 600, 1200, 2400, 4800, 9600, 19_200, 38_400, 76_800, 120_000, 120_000];
        for (i, &want) in expected.iter().enumerate() {
            assert_eq!(e.backoff_count(), i as u32);
            assert_eq!(e.rto(), ms(want), "after {i} backoffs");
            e.backoff();
        }
        // Far past the point where 2^n overflows anything: still capped, no panic.
        for _ in 0..1000 {
            e.backoff();
        }
        assert_eq!(e.rto(), DEFAULT_MAX_RTO);
    }

    #[test]
    fn backoff_before_any_sample_doubles_initial_rto() {
        // RFC 6298 §5.5 applies to the SYN's timer too: 1 s, 2 s, 4 s.
        let mut e = RttEstimator::default();
        e.backoff();
        assert_eq!(e.rto(), ms(2000));
        e.backoff();
        assert_eq!(e.rto(), ms(4000));
    }

    #[test]
    fn sample_resets_backoff() {
        let mut e = unclamped();
        e.sample(ms(100));
        e.backoff();
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        e.sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        // RTTVAR = 3/4·50 + 0 = 37.5; RTO = 100 + 150 = 250 ms.
        assert_eq!(e.rto(), ms(250));
    }

    proptest! {
        #[test]
        fn rto_always_within_bounds(
            samples in proptest::collection::vec(0u64..300_000_000, 1..50),
            backoffs in 0u32..80,
        ) {
            let mut e = RttEstimator::default();
            for s in samples {
                e.sample(Duration::from_micros(s));
                prop_assert!(e.rto() >= DEFAULT_MIN_RTO && e.rto() <= DEFAULT_MAX_RTO);
                // Before clamping, RTO >= SRTT + G.
                let raw = e.srtt().unwrap() + CLOCK_GRANULARITY;
                prop_assert!(e.rto() >= raw.min(DEFAULT_MAX_RTO));
            }
            let base = e.rto();
            for i in 0..backoffs {
                e.backoff();
                prop_assert!(e.rto() >= base && e.rto() <= DEFAULT_MAX_RTO, "after {}", i);
            }
        }
    }

    #[test]
    fn windowed_min_keeps_the_minimum_and_forgets_it_after_the_window() {
        use crate::time::Instant;
        let mut m = WindowedMin::new(Duration::from_secs(10));
        assert_eq!(m.get(), None);
        m.update(Instant::from_secs(1), ms(50));
        m.update(Instant::from_secs(2), ms(80));
        m.update(Instant::from_secs(5), ms(70));
        assert_eq!(m.get(), Some(ms(50)));
        // The path got slower: after the window the old minimum goes.
        for s in 6..30 {
            m.update(Instant::from_secs(s), ms(90));
        }
        assert_eq!(m.get(), Some(ms(90)));
        // A new low is taken at once.
        m.update(Instant::from_secs(31), ms(10));
        assert_eq!(m.get(), Some(ms(10)));
    }
}
