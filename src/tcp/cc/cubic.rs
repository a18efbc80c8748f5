//! CUBIC (RFC 9438), with HyStart++ (RFC 9406) in the initial slow start.
//!
//! The window function is in segments and seconds, as the RFC writes it; cwnd is kept in
//! bytes and the fractional growth of each ACK is carried over, so small ACKs still add up.

use super::hystart::{Growth, HyStart, CSS_GROWTH_DIVISOR};
use super::{cwnd_for_new_mss, initial_window, restart_window, ssthresh_floor, AckSample, CongestionControl};
use crate::time::{Duration, Instant};

/// RFC 9438 §4.6: the multiplicative decrease factor.
const BETA: f64 = 0.7;
/// RFC 9438 §5: the aggressiveness of the cubic function, in segments per second cubed.
const C: f64 = 0.4;
/// RFC 9438 §4.3: α_cubic = 3(1 − β)/(1 + β), so that the Reno estimate grows as fast as Reno
/// with β = 0.5 on average.
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC (RFC 9438) state of one connection: cwnd and ssthresh in bytes, the window function's
/// epoch, the Reno-friendly estimate, and HyStart++ for the initial slow start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cubic {
    smss: usize,
    iw_segments: usize,
    cwnd: usize,
    ssthresh: usize,
    untouched: bool,
    /// RFC 9438 §4.1.2: W_max, the window (segments) just before the last reduction.
    w_max: f64,
    /// cwnd (segments) at the last congestion event: Reno's estimate switches to α = 1
    /// once it reaches this (RFC 9438 §4.3).
    cwnd_prior: f64,
    /// Start of the current congestion avoidance stage, and K and cwnd for it.
    t_epoch: Option<Instant>,
    k: f64,
    cwnd_epoch: f64,
    /// RFC 9438 §4.3: the Reno-friendly estimate W_est, segments.
    w_est: f64,
    /// Growth not yet whole bytes, carried to the next ACK.
    carry: f64,
    /// The last ACK seen in congestion avoidance: time spent application-limited between
    /// two of them is taken out of the epoch (RFC 9438 §5.8, as Linux shifts epoch_start).
    last_ack: Option<Instant>,
    hystart: HyStart,
}

impl Cubic {
    /// A controller for a sender with MSS `mss`, starting in slow start with an initial window of
    /// `iw_segments` segments (bounded as [`initial_window`] says).
    pub fn new(mss: usize, iw_segments: usize) -> Cubic {
        let smss = mss.max(1);
        Cubic {
            smss,
            iw_segments: iw_segments.max(1),
            cwnd: initial_window(smss, iw_segments),
            ssthresh: usize::MAX,
            untouched: true,
            w_max: 0.0,
            cwnd_prior: 0.0,
            t_epoch: None,
            k: 0.0,
            cwnd_epoch: 0.0,
            w_est: 0.0,
            carry: 0.0,
            last_ack: None,
            hystart: HyStart::default(),
        }
    }

    /// W_max, in segments (for tests and diagnostics).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// In HyStart++'s Conservative Slow Start.
    pub fn in_css(&self) -> bool {
        self.hystart.in_css()
    }

    fn segs(&self, bytes: usize) -> f64 {
        bytes as f64 / self.smss as f64
    }

    /// RFC 9438 §4.2 eq. (1): W_cubic(t) = C·(t − K)³ + W_max.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d + self.w_max
    }

    /// Add `segments` (possibly fractional) to cwnd.
    fn grow(&mut self, segments: f64) {
        let bytes = segments * self.smss as f64 + self.carry;
        if bytes <= 0.0 {
            return;
        }
        let whole = bytes.floor();
        self.carry = bytes - whole;
        self.cwnd = self.cwnd.saturating_add(whole as usize);
    }

    fn congestion_avoidance(&mut self, ack: &AckSample) {
        let now = ack.now;
        let t_epoch = match self.t_epoch {
            Some(t) => t,
            None => {
                // RFC 9438 §4.2: a new congestion avoidance stage. K is the time the cubic
                // function takes to climb from cwnd_epoch back to W_max (zero above it, where
                // W_max becomes the current window: §4.8's rule after a timeout too).
                let cwnd = self.segs(self.cwnd);
                self.cwnd_epoch = cwnd;
                if cwnd >= self.w_max {
                    self.w_max = cwnd;
                    self.k = 0.0;
                } else {
                    self.k = ((self.w_max - cwnd) / C).cbrt();
                }
                self.w_est = cwnd;
                self.t_epoch = Some(now);
                now
            }
        };
        let t = now.saturating_duration_since(t_epoch).as_secs_f64();
        let cwnd = self.segs(self.cwnd);
        let acked = self.segs(ack.delivered);
        // RFC 9438 §4.3: the Reno-friendly estimate grows by α per window acknowledged, and by
        // one per window once it has passed the window of the last congestion event.
        let alpha = if self.w_est >= self.cwnd_prior { 1.0 } else { ALPHA };
        self.w_est += alpha * acked / cwnd;
        if self.w_cubic(t) < self.w_est {
            // The Reno-friendly region: cwnd follows W_est.
            if self.w_est > cwnd {
                self.grow(self.w_est - cwnd);
            }
            return;
        }
        // RFC 9438 §4.2: aim at W_cubic one RTT ahead (the minimum RTT, as Linux's bictcp
        // uses delay_min), between cwnd and 1.5·cwnd.
        let rtt = ack.min_rtt.or(ack.rtt).unwrap_or(Duration::ZERO).as_secs_f64();
        let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
        // "cwnd SHOULD be incremented by (target − cwnd)/cwnd for each received new ACK",
        // per SMSS acknowledged.
        self.grow((target - cwnd) / cwnd * acked);
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn smss(&self) -> usize {
        self.smss
    }

    fn set_mss(&mut self, mss: usize) {
        self.smss = mss.max(1);
        self.cwnd = cwnd_for_new_mss(self.cwnd, self.untouched, self.smss, self.iw_segments);
    }

    fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.smss);
        self.untouched = false;
    }

    fn on_ack(&mut self, ack: &AckSample) {
        if ack.delivered == 0 {
            return;
        }
        if !ack.cwnd_limited {
            // RFC 9438 §5.8 / RFC 7661: an unused window does not grow, and the time spent
            // application-limited does not count towards the cubic function's t.
            if let (Some(t), Some(last)) = (self.t_epoch, self.last_ack) {
                self.t_epoch = Some(t + ack.now.saturating_duration_since(last));
            }
            self.last_ack = Some(ack.now);
            return;
        }
        self.untouched = false;
        if self.cwnd < self.ssthresh {
            // Slow start, as in Reno (RFC 9438 §4.10), shaped by HyStart++ the first time.
            let growth = if self.ssthresh == usize::MAX {
                self.hystart.on_ack(ack.rtt, ack.snd_una, ack.snd_nxt)
            } else {
                Growth::SlowStart
            };
            let room = self.ssthresh - self.cwnd;
            match growth {
                Growth::SlowStart => self.cwnd = self.cwnd.saturating_add(ack.delivered.min(room)),
                Growth::Conservative => {
                    let add = (ack.delivered / CSS_GROWTH_DIVISOR).max(1);
                    self.cwnd = self.cwnd.saturating_add(add.min(room));
                }
                Growth::Exit => {
                    // RFC 9406 §4.2: "enter congestion avoidance by setting the ssthresh to
                    // the current cwnd".
                    self.ssthresh = self.cwnd;
                }
            }
            self.last_ack = Some(ack.now);
            return;
        }
        self.congestion_avoidance(ack);
        self.last_ack = Some(ack.now);
    }

    fn on_congestion(&mut self, _now: Instant, _flight: usize) {
        let cwnd = self.segs(self.cwnd);
        // RFC 9438 §4.7 fast convergence: a reduction before W_max was regained means the
        // available bandwidth shrank; release some of it to new flows.
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + BETA) / 2.0 } else { cwnd };
        self.cwnd_prior = cwnd;
        // RFC 9438 §4.6: ssthresh = cwnd·β_cubic, at least two segments. (cwnd, not
        // FlightSize, as Linux and Windows do: reducing from FlightSize punishes an
        // application-limited sender.)
        self.ssthresh = ((self.cwnd as f64 * BETA) as usize).max(ssthresh_floor(self.smss));
        self.t_epoch = None;
        self.carry = 0.0;
        self.untouched = false;
        self.hystart.finish();
    }

    fn on_reduction_end(&mut self) {
        self.cwnd = self.ssthresh.max(self.smss);
    }

    fn on_rto(&mut self, now: Instant, flight: usize, first: bool) {
        // RFC 9438 §4.8: Reno's response to a timeout (cwnd = 1 segment), with ssthresh from
        // §4.6; the next congestion avoidance stage starts with K = 0 and W_max = the window
        // at its start (Linux resets the cubic state on entering Loss the same way).
        if first {
            self.on_congestion(now, flight);
        }
        self.w_max = 0.0;
        self.t_epoch = None;
        self.cwnd = self.smss;
        self.carry = 0.0;
        self.untouched = false;
        self.hystart.finish();
    }

    fn on_idle_restart(&mut self, idle: Duration, rto: Duration) {
        let rw = restart_window(self.cwnd, initial_window(self.smss, self.iw_segments), idle, rto);
        if rw < self.cwnd {
            self.cwnd = rw;
            self.t_epoch = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::SeqNum;

    const MSS: usize = 1000;

    fn ack(now: Instant, delivered: usize) -> AckSample {
        AckSample {
            now,
            delivered,
            rtt: Some(Duration::from_millis(10)),
            min_rtt: Some(Duration::from_millis(10)),
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            cwnd_limited: true,
            ..Default::default()
        }
    }

    /// Acknowledge a whole window, one segment per ACK, over one round trip of `rtt`.
    fn round_trip(cc: &mut Cubic, start: Instant, rtt: Duration) -> Instant {
        let n = cc.cwnd() / MSS;
        for i in 0..n {
            let t = start + rtt * i as u32 / n as u32;
            cc.on_ack(&AckSample { min_rtt: Some(rtt), rtt: Some(rtt), ..ack(t, MSS) });
        }
        start + rtt
    }

    fn one_rtt(cc: &mut Cubic, start: Instant) -> Instant {
        round_trip(cc, start, Duration::from_millis(10))
    }

    #[test]
    fn reduction_is_to_seventy_percent() {
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(100 * MSS);
        cc.on_congestion(Instant::ZERO, 100 * MSS);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert_eq!(cc.w_max(), 100.0);
        cc.on_reduction_end();
        assert_eq!(cc.cwnd(), 70 * MSS);
    }

    #[test]
    fn fast_convergence_lowers_w_max_when_the_last_peak_was_not_regained() {
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(100 * MSS);
        cc.on_congestion(Instant::ZERO, 0);
        cc.on_reduction_end();
        // A second event at 80 segments, below W_max = 100: W_max = 80·(1 + 0.7)/2 = 68.
        cc.set_cwnd(80 * MSS);
        cc.on_congestion(Instant::ZERO, 0);
        assert!((cc.w_max() - 68.0).abs() < 1e-9);
    }

    #[test]
    fn growth_is_concave_then_convex_around_w_max() {
        // After a reduction from 100 segments: K = cbrt(100·0.3/0.4) ≈ 4.2 s. With 100 ms
        // round trips the cubic function, not the Reno estimate, sets the pace: the window
        // climbs quickly at first, flattens near W_max around K, then probes above it.
        let rtt = Duration::from_millis(100);
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(100 * MSS);
        cc.on_congestion(Instant::ZERO, 0);
        cc.on_reduction_end();
        let mut t = Instant::from_secs(1);
        let mut samples = Vec::new();
        for _ in 0..100 {
            t = round_trip(&mut cc, t, rtt);
            samples.push(cc.cwnd() / MSS);
        }
        // 1 s in: W_cubic(1.1 s) ≈ 88.
        assert!((84..=92).contains(&samples[9]), "{}", samples[9]);
        // Around K it is at W_max, and it lingers: over a second either side of K it moves
        // by only a few segments.
        assert!((97..=104).contains(&samples[41]), "{}", samples[41]);
        assert!(samples[51] - samples[31] < 10, "{} .. {}", samples[31], samples[51]);
        // Then convex: 10 s in, W_cubic ≈ 0.4·5.9³ + 100 ≈ 182.
        assert!((160..=200).contains(&samples[99]), "{}", samples[99]);
    }

    #[test]
    fn reno_friendly_region_at_short_rtts() {
        // With 100 µs round trips the cubic function barely moves per RTT; W_est (Reno's
        // growth with α ≈ 0.53 segments per RTT) must carry the window instead.
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(200 * MSS);
        cc.on_congestion(Instant::ZERO, 0);
        cc.on_reduction_end();
        let start = cc.cwnd();
        let mut t = Instant::from_secs(1);
        for _ in 0..100 {
            t = round_trip(&mut cc, t, Duration::from_micros(100));
        }
        // About α segments per RTT: 100 RTTs → ≈ 53 segments (still below cwnd_prior = 200,
        // where α would become 1).
        let grown = (cc.cwnd() - start) / MSS;
        assert!((45..=60).contains(&grown), "{grown}");
    }

    #[test]
    fn timeout_restarts_from_one_segment_with_k_zero() {
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(100 * MSS);
        cc.on_rto(Instant::ZERO, 100 * MSS, true);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 70 * MSS));
        // A second timeout holds ssthresh.
        cc.on_rto(Instant::ZERO, MSS, false);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        // Slow start to ssthresh, then congestion avoidance with W_max = 70 and K = 0:
        // convex growth from there.
        let mut t = Instant::from_secs(1);
        while cc.cwnd() < cc.ssthresh() {
            t = one_rtt(&mut cc, t);
        }
        one_rtt(&mut cc, t);
        assert_eq!(cc.w_max(), 70.0);
        assert_eq!(cc.k, 0.0);
    }

    #[test]
    fn application_limited_acks_neither_grow_nor_age_the_epoch() {
        let mut cc = Cubic::new(MSS, 10);
        cc.set_cwnd(50 * MSS);
        cc.on_congestion(Instant::ZERO, 0);
        cc.on_reduction_end();
        let t0 = Instant::from_secs(1);
        cc.on_ack(&ack(t0, MSS));
        let epoch = cc.t_epoch.unwrap();
        let w = cc.cwnd();
        cc.on_ack(&AckSample { cwnd_limited: false, ..ack(Instant::from_secs(11), MSS) });
        assert_eq!(cc.cwnd(), w);
        assert_eq!(cc.t_epoch.unwrap(), epoch + Duration::from_secs(10));
    }

    #[test]
    fn hystart_leaves_slow_start_when_rtt_rises() {
        let mut cc = Cubic::new(MSS, 10);
        let mut una = 0u32;
        let mut rtt_ms = 10;
        let mut t = Instant::ZERO;
        // Rounds of a whole window each; the RTT rises by 5 ms a round from the third.
        for round in 0..12 {
            if round >= 2 {
                rtt_ms += 5;
            }
            let n = (cc.cwnd() / MSS) as u32;
            let nxt = una + n * MSS as u32;
            for _ in 0..n {
                una += MSS as u32;
                let rtt = Duration::from_millis(rtt_ms);
                cc.on_ack(&AckSample {
                    now: t,
                    delivered: MSS,
                    rtt: Some(rtt),
                    min_rtt: Some(Duration::from_millis(10)),
                    snd_una: SeqNum(una),
                    snd_nxt: SeqNum(nxt),
                    cwnd_limited: true,
                    ..Default::default()
                });
            }
            t += Duration::from_millis(rtt_ms);
            if cc.ssthresh() != usize::MAX {
                break;
            }
        }
        // Slow start alone would have reached 10·2^12 segments; HyStart++ left it early.
        assert!(cc.ssthresh() != usize::MAX, "still in slow start at {} segments", cc.cwnd() / MSS);
        assert!(cc.cwnd() / MSS < 200, "{}", cc.cwnd() / MSS);
    }
}
