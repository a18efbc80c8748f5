//! Reno (RFC 5681), counting bytes (RFC 3465). Fast recovery itself (which segments to
//! resend, when recovery ends) is the connection's loss recovery, not the controller's: here
//! is only how cwnd and ssthresh move.

use super::{cwnd_for_new_mss, initial_window, restart_window, ssthresh_floor, AckSample, CongestionControl};
use crate::time::{Duration, Instant};

/// Reno with byte counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reno {
    smss: usize,
    iw_segments: usize,
    cwnd: usize,
    ssthresh: usize,
    /// RFC 3465 §2.1: bytes acknowledged in congestion avoidance since cwnd last grew.
    bytes_acked: usize,
    /// No ACK or loss has changed cwnd yet, so [`Reno::set_mss`] may recompute the IW.
    untouched: bool,
}

impl Reno {
    /// A fresh sender: cwnd = IW (RFC 6928 §2), ssthresh arbitrarily high (RFC 5681 §3.1:
    /// "The initial value of ssthresh SHOULD be set arbitrarily high"). A zero `mss` is taken
    /// as one so that the window never sticks at zero.
    pub fn new(mss: usize, iw_segments: usize) -> Reno {
        let smss = mss.max(1);
        Reno {
            smss,
            iw_segments: iw_segments.max(1),
            cwnd: initial_window(smss, iw_segments),
            ssthresh: usize::MAX,
            bytes_acked: 0,
            untouched: true,
        }
    }

    /// RFC 5681 §3.1 eq. (4): ssthresh = max(FlightSize / 2, 2·SMSS).
    fn loss_ssthresh(&self, flight: usize) -> usize {
        (flight / 2).max(ssthresh_floor(self.smss))
    }
}

impl CongestionControl for Reno {
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn smss(&self) -> usize {
        self.smss
    }

    /// ssthresh is a byte count and stays.
    fn set_mss(&mut self, mss: usize) {
        self.smss = mss.max(1);
        self.cwnd = cwnd_for_new_mss(self.cwnd, self.untouched, self.smss, self.iw_segments);
    }

    fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.smss);
        self.untouched = false;
    }

    /// Slow start adds every byte acknowledged, up to ssthresh; congestion avoidance adds one
    /// SMSS each time a cwnd's worth has been acknowledged (RFC 3465 §2.1), which is one SMSS
    /// per RTT however the receiver spaces or delays its ACKs.
    fn on_ack(&mut self, ack: &AckSample) {
        if ack.delivered == 0 || !ack.cwnd_limited {
            // RFC 7661 §4.3: a window the sender did not fill says nothing about the path.
            return;
        }
        self.untouched = false;
        let mut acked = ack.delivered;
        if self.cwnd < self.ssthresh {
            // RFC 3465 §2.2 (Appropriate Byte Counting) without the per-ACK limit L, as Linux's
            // tcp_slow_start does: cwnd grows by what was acknowledged, up to ssthresh. RFC 5681
            // §3.1 eq. (2) caps it at one SMSS per ACK, but a receiver that processes frames in
            // bursts (ours, or Linux with GRO) sends one stretch ACK per burst, and with the cap
            // slow start would grow by one segment per RTT instead of doubling. Counting bytes,
            // not ACKs, still resists ACK division.
            let room = self.ssthresh - self.cwnd;
            let grow = acked.min(room);
            self.cwnd = self.cwnd.saturating_add(grow);
            acked -= grow;
            if acked == 0 {
                return;
            }
        }
        // RFC 5681 §3.1: "The RECOMMENDED way to increase cwnd during congestion avoidance is
        // to count the number of bytes that have been acknowledged"; RFC 3465 §2.1: when
        // bytes_acked >= cwnd, subtract cwnd and add SMSS to cwnd.
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.smss);
        }
    }

    fn on_congestion(&mut self, _now: Instant, flight: usize) {
        self.ssthresh = self.loss_ssthresh(flight);
        self.bytes_acked = 0;
        self.untouched = false;
    }

    fn on_reduction_end(&mut self) {
        self.cwnd = self.ssthresh.max(self.smss);
    }

    fn on_rto(&mut self, _now: Instant, flight: usize, first: bool) {
        // RFC 5681 §3.1: eq. (4) on a timeout, but "when a TCP sender detects segment loss
        // using the retransmission timer and the given segment has already been retransmitted
        // by way of the retransmission timer at least once, the value of ssthresh is held
        // constant" — FlightSize is tiny by then, and halving it would collapse ssthresh.
        if first {
            self.ssthresh = self.loss_ssthresh(flight);
        }
        // RFC 5681 §3.1: after a timeout cwnd is the loss window, LW = 1·SMSS.
        self.cwnd = self.smss;
        self.bytes_acked = 0;
        self.untouched = false;
    }

    fn on_idle_restart(&mut self, idle: Duration, rto: Duration) {
        let rw = restart_window(self.cwnd, initial_window(self.smss, self.iw_segments), idle, rto);
        if rw < self.cwnd {
            self.cwnd = rw;
            self.bytes_acked = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::SeqNum;
    use proptest::prelude::*;

    const MSS: usize = 1000;

    fn reno() -> Reno {
        Reno::new(MSS, 10)
    }

    fn ack(delivered: usize) -> AckSample {
        AckSample {
            now: Instant::ZERO,
            delivered,
            rtt: None,
            min_rtt: None,
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            cwnd_limited: true,
            ..Default::default()
        }
    }

    #[test]
    fn slow_start_doubles_cwnd_per_rtt() {
        let mut cc = reno();
        for rtt in 0..3 {
            let start = cc.cwnd();
            for _ in 0..start / MSS {
                cc.on_ack(&ack(MSS));
            }
            assert_eq!(cc.cwnd(), 2 * start, "round {rtt}");
        }
        assert_eq!(cc.cwnd(), 80 * MSS);
    }

    #[test]
    fn slow_start_counts_bytes_so_stretch_acks_double_cwnd() {
        let mut cc = reno();
        for _ in 0..5 {
            cc.on_ack(&ack(2 * MSS));
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        cc.on_ack(&ack(20 * MSS));
        assert_eq!(cc.cwnd(), 40 * MSS);
        cc.on_ack(&ack(100));
        assert_eq!(cc.cwnd(), 40 * MSS + 100);
    }

    #[test]
    fn an_unused_window_does_not_grow() {
        // RFC 7661: an application-limited sender's ACKs do not validate a larger window.
        let mut cc = reno();
        cc.on_ack(&AckSample { cwnd_limited: false, ..ack(10 * MSS) });
        assert_eq!(cc.cwnd(), 10 * MSS);
    }

    /// cwnd = ssthresh = `window`: congestion avoidance.
    fn in_congestion_avoidance(window: usize) -> Reno {
        let mut cc = reno();
        cc.on_congestion(Instant::ZERO, 2 * window);
        cc.on_reduction_end();
        assert_eq!((cc.cwnd(), cc.ssthresh()), (window, window));
        cc
    }

    #[test]
    fn congestion_avoidance_grows_one_smss_per_rtt() {
        let mut cc = in_congestion_avoidance(10 * MSS);
        for rtt in 0..5 {
            let start = cc.cwnd();
            for _ in 0..start / MSS {
                cc.on_ack(&ack(MSS));
            }
            assert_eq!(cc.cwnd(), start + MSS, "round {rtt}");
        }
    }

    #[test]
    fn congestion_avoidance_counts_bytes_not_acks() {
        for per_ack in [2 * MSS, MSS / 2, 300] {
            let mut cc = in_congestion_avoidance(10 * MSS);
            let mut acked = 0;
            while acked + per_ack <= 10 * MSS {
                cc.on_ack(&ack(per_ack));
                acked += per_ack;
            }
            let want = if acked == 10 * MSS { 11 * MSS } else { 10 * MSS };
            assert_eq!(cc.cwnd(), want, "{per_ack} bytes per ACK");
        }
    }

    #[test]
    fn slow_start_hands_over_to_congestion_avoidance_at_ssthresh() {
        let mut cc = in_congestion_avoidance(10 * MSS);
        cc.on_rto(Instant::ZERO, 40 * MSS, true); // ssthresh 20 segments, cwnd 1.
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 20 * MSS));
        while cc.cwnd() < cc.ssthresh() {
            cc.on_ack(&ack(MSS));
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        cc.on_ack(&ack(MSS));
        assert_eq!(cc.cwnd(), 20 * MSS, "now counting bytes");
    }

    #[test]
    fn congestion_halves_the_flight_at_least_two_segments() {
        let mut cc = reno();
        cc.on_congestion(Instant::ZERO, 10 * MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        cc.on_congestion(Instant::ZERO, 3 * MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
        // The reduction itself is PRR's: cwnd is untouched until the end.
        assert_eq!(cc.cwnd(), 10 * MSS);
        cc.on_reduction_end();
        assert_eq!(cc.cwnd(), 2 * MSS);
    }

    #[test]
    fn repeated_rto_holds_ssthresh() {
        let mut cc = reno();
        cc.on_rto(Instant::ZERO, 20 * MSS, true);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 10 * MSS));
        cc.on_rto(Instant::ZERO, MSS, false);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 10 * MSS));
        cc.on_rto(Instant::ZERO, 6 * MSS, true);
        assert_eq!(cc.ssthresh(), 3 * MSS);
    }

    #[test]
    fn idle_restart_limits_cwnd_to_initial_window() {
        let rto = Duration::from_millis(300);
        let mut cc = reno();
        for _ in 0..30 {
            cc.on_ack(&ack(MSS));
        }
        assert_eq!(cc.cwnd(), 40 * MSS);
        cc.on_idle_restart(rto, rto);
        assert_eq!(cc.cwnd(), 40 * MSS);
        cc.on_idle_restart(rto + Duration::from_micros(1), rto);
        assert_eq!(cc.cwnd(), 10 * MSS);
        // RW = min(IW, cwnd): a window already below IW is not raised.
        cc.on_rto(Instant::ZERO, 10 * MSS, true);
        cc.on_idle_restart(Duration::from_secs(10), rto);
        assert_eq!(cc.cwnd(), MSS);
    }

    #[test]
    fn set_mss_rescales_an_untouched_initial_window() {
        let mut cc = Reno::new(536, 10);
        assert_eq!(cc.cwnd(), 5360);
        cc.set_mss(1460);
        assert_eq!((cc.smss(), cc.cwnd()), (1460, 14_600));
        cc.on_ack(&ack(1460));
        cc.set_mss(1000);
        assert_eq!(cc.cwnd(), 16_060);
        cc.on_rto(Instant::ZERO, 10_000, true);
        cc.set_mss(1400);
        assert_eq!(cc.cwnd(), 1400);
        // Zero from a hostile MSS option must not stall or panic.
        cc.set_mss(0);
        assert_eq!(cc.smss(), 1);
        assert!(cc.cwnd() >= 1);
    }

    proptest! {
        /// Whatever happens, cwnd stays at least one SMSS and ssthresh, once set, at least two.
        #[test]
        fn invariants_hold_under_random_events(events in proptest::collection::vec((0u8..5, 0usize..50_000), 1..200)) {
            let mut cc = reno();
            for (kind, n) in events {
                match kind {
                    0 | 1 => cc.on_ack(&ack(n)),
                    2 => cc.on_congestion(Instant::ZERO, n),
                    3 => cc.on_rto(Instant::ZERO, n, n % 2 == 0),
                    _ => { cc.set_cwnd(n); cc.on_reduction_end(); }
                }
                prop_assert!(cc.cwnd() >= MSS);
                prop_assert!(cc.ssthresh() >= 2 * MSS);
            }
        }
    }
}
