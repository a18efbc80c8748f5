//! RACK-TLP (RFC 8985): time-based loss detection, and the tail loss probe.
//!
//! RACK calls a segment lost when a segment sent after it has been delivered and more than
//! RACK.rtt + reo_wnd has passed since it was sent; the scoreboard does the marking
//! ([`super::Scoreboard::rack_detect_loss`]), this holds RACK's state: the most recently sent
//! delivered segment, its RTT, the minimum RTT, and the reordering window with its DSACK-driven
//! adaptation. The tail loss probe's timeout is computed here too.

use super::scoreboard::{sent_after, Delivered};
use crate::tcp::rtt::WindowedMin;
use crate::tcp::SeqNum;
use crate::time::{Duration, Instant};

/// Linux's `tcp_min_rtt_wlen`: the window of the minimum-RTT filter.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(300);
/// RFC 8985 §6.2 step 4: recoveries without DSACK after which the window shrinks back.
const REO_WND_PERSIST: u32 = 16;
/// RFC 5681's DupThresh, in segments: this many SACKed segments without reordering seen make
/// the reordering window zero (RFC 8985 §6.2 step 4).
pub const DUP_THRESH: usize = 3;
/// Added to 2·SRTT when more than one segment is in flight: Linux's TCP_TIMEOUT_MIN (two
/// jiffies), so that a probe on a microsecond path does not race the ACK already on its way.
const PTO_SLACK: Duration = Duration::from_millis(2);
/// RFC 8985 §7.2: the PTO before any RTT sample.
const PTO_NO_RTT: Duration = Duration::from_secs(1);

/// RACK's state for one connection (RFC 8985): the most recently sent delivered segment,
/// its RTT, the minimum RTT, and the reordering window's adaptation.
#[derive(Clone, Debug)]
pub struct Rack {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered so far.
    xmit: Option<Instant>,
    end: SeqNum,
    /// RACK.rtt: the RTT measured from that segment.
    rtt: Duration,
    min_rtt: WindowedMin,
    /// RACK.reordering_seen.
    reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// RACK.dsack_round: SND.NXT when the last DSACK grew the window (one growth per round).
    dsack_round: Option<SeqNum>,
}

impl Default for Rack {
    fn default() -> Rack {
        Rack {
            xmit: None,
            end: SeqNum(0),
            rtt: Duration::ZERO,
            min_rtt: WindowedMin::new(MIN_RTT_WINDOW),
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
        }
    }
}

impl Rack {
    /// The most recently sent delivered segment (send time, end), once one was.
    pub fn newest(&self) -> Option<(Instant, SeqNum)> {
        self.xmit.map(|x| (x, self.end))
    }
    /// RACK.rtt.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }
    /// The minimum RTT over the filter's window (300 s; RACK.min_RTT), once there is a sample.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.get()
    }
    /// RACK.reordering_seen (RFC 8985 §6.2 step 3): reordering or a DSACK has been seen on this
    /// connection; from then on the reordering window is never zero.
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }
    /// RACK.reo_wnd_mult (RFC 8985 §6.2 step 4): the reordering window in units of min_RTT/4; grown
    /// by DSACKs once per round, back to 1 after 16 recoveries without one.
    pub fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }

    /// Feed an RTT sample to the minimum filter (every sample Karn's algorithm allows).
    pub fn sample_min_rtt(&mut self, now: Instant, rtt: Duration) {
        self.min_rtt.update(now, rtt);
    }

    /// RFC 8985 §6.2 steps 1–3 for what an ACK delivered. Returns whether RACK advanced.
    pub fn on_delivered(&mut self, now: Instant, d: &Delivered) -> bool {
        // Step 3: "If Segment is not retransmitted and Segment.end_seq < RACK.fack" (the
        // scoreboard compared against the highest (s)acknowledged sequence number).
        if d.reordered {
            self.reordering_seen = true;
        }
        // Step 1: a retransmitted segment counts only if this ACK is for the retransmission,
        // not for an earlier copy: not if it came back faster than the path can. The step's
        // other test, a timestamp echo older than the retransmission, is left out as Linux
        // leaves it out (tcp_rack_advance): a receiver echoes the timestamp of the last
        // segment that advanced its window (RFC 7323 §4.3), so every SACK of a retransmission
        // that filled a later hole echoes an older one — and the lost retransmissions before
        // it would wait for the RTO instead of being found.
        let retrans = d.last_retrans.filter(|&(x, _)| {
            let rtt = now.saturating_duration_since(x);
            self.min_rtt.get().is_none_or(|m| rtt >= m)
        });
        let best = match (d.last_orig, retrans) {
            (Some(a), Some(b)) => Some(if sent_after(b.0, b.1, a.0, a.1) { b } else { a }),
            (a, b) => a.or(b),
        };
        let Some((xmit, end)) = best else { return false };
        // "RACK.rtt = rtt" for the segment; RACK.xmit_ts/end_seq move only forward.
        self.rtt = now.saturating_duration_since(xmit);
        if self.xmit.is_none_or(|x| sent_after(xmit, end, x, self.end)) {
            self.xmit = Some(xmit);
            self.end = end;
        }
        true
    }

    /// A DSACK arrived (RFC 8985 §6.2 step 4, first part): grow the reordering window once per
    /// round that sees one. DSACKs are also evidence of reordering or of spurious
    /// retransmission, which the reordering window exists to avoid (Linux sets reord_seen).
    pub fn on_dsack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
        self.reordering_seen = true;
    }

    /// Fast recovery or RTO recovery ended: after 16 without DSACK the window shrinks back.
    pub fn on_recovery_exit(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 §6.2 step 4: the reordering window. Zero when no reordering has been seen and
    /// either recovery is under way or DupThresh segments are SACKed (then RACK acts as fast
    /// as the duplicate-ACK rule would); else min(mult·min_RTT/4, SRTT).
    pub fn reo_wnd(&self, in_recovery: bool, sacked_segments: usize, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let base = self.min_rtt.get().unwrap_or(Duration::ZERO) / 4 * self.reo_wnd_mult;
        match srtt {
            Some(s) => base.min(s),
            None => base,
        }
    }
}

/// RFC 8985 §7.2: the probe timeout. 2·SRTT, plus the worst-case delayed-ACK time when one
/// segment is in flight (Linux uses its minimum RTO there, which a datacenter user lowers with
/// it) or a small slack otherwise; 1 s before any sample; never later than the RTO would fire
/// (`rto_left`).
pub fn probe_timeout(srtt: Option<Duration>, one_segment: bool, min_rto: Duration, rto_left: Duration) -> Duration {
    let pto = match srtt {
        Some(s) => s * 2 + if one_segment { min_rto } else { PTO_SLACK },
        None => PTO_NO_RTT,
    };
    pto.min(rto_left)
}

/// The tail loss probe in flight (RFC 8985 §7.3–7.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tlp {
    /// TLP.end_seq: SND.NXT after the probe went out; `None` when no probe is outstanding.
    pub end_seq: Option<SeqNum>,
    /// TLP.is_retrans: the probe resent old data (rather than sending new data).
    pub is_retrans: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reo_wnd_is_a_quarter_min_rtt_until_dupthresh_then_zero() {
        let mut r = Rack::default();
        r.sample_min_rtt(Instant::ZERO, ms(40));
        assert_eq!(r.reo_wnd(false, 0, Some(ms(50))), ms(10));
        assert_eq!(r.reo_wnd(false, 3, Some(ms(50))), Duration::ZERO);
        assert_eq!(r.reo_wnd(true, 0, Some(ms(50))), Duration::ZERO);
        // Once reordering was seen it stays min_RTT/4, in recovery too.
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd(true, 10, Some(ms(50))), ms(10));
        // Bounded by SRTT.
        assert_eq!(r.reo_wnd(true, 10, Some(ms(5))), ms(5));
    }

    #[test]
    fn dsack_grows_the_window_once_per_round_and_it_decays_after_16_recoveries() {
        let mut r = Rack::default();
        r.sample_min_rtt(Instant::ZERO, ms(40));
        r.on_dsack(SeqNum(100), SeqNum(1000));
        r.on_dsack(SeqNum(200), SeqNum(1000)); // same round
        assert_eq!(r.reo_wnd_mult(), 2);
        assert_eq!(r.reo_wnd(true, 10, Some(ms(100))), ms(20));
        r.on_dsack(SeqNum(1000), SeqNum(2000)); // next round
        assert_eq!(r.reo_wnd_mult(), 3);
        for _ in 0..15 {
            r.on_recovery_exit();
        }
        assert_eq!(r.reo_wnd_mult(), 3);
        r.on_recovery_exit();
        assert_eq!(r.reo_wnd_mult(), 1);
    }

    #[test]
    fn rack_follows_the_most_recently_sent_and_skips_doubtful_retransmissions() {
        let mut r = Rack::default();
        r.sample_min_rtt(Instant::ZERO, ms(10));
        let now = Instant::from_millis(100);
        let d = Delivered {
            last_orig: Some((Instant::from_millis(50), SeqNum(2000))),
            // Retransmitted 5 ms ago: faster than min_RTT, so the ACK is for the original.
            last_retrans: Some((Instant::from_millis(95), SeqNum(1000))),
            ..Delivered::default()
        };
        assert!(r.on_delivered(now, &d));
        assert_eq!(r.newest(), Some((Instant::from_millis(50), SeqNum(2000))));
        assert_eq!(r.rtt(), ms(50));
        // A retransmission sent 20 ms ago (longer than min_RTT) counts, and is newer.
        let d = Delivered { last_retrans: Some((Instant::from_millis(80), SeqNum(1000))), ..Delivered::default() };
        assert!(r.on_delivered(now, &d));
        assert_eq!(r.newest(), Some((Instant::from_millis(80), SeqNum(1000))));
        // Only a retransmission, sent 2 ms ago: nothing to go by.
        let d = Delivered { last_retrans: Some((Instant::from_millis(98), SeqNum(3000))), ..Delivered::default() };
        assert!(!r.on_delivered(now, &d));
        assert_eq!(r.newest(), Some((Instant::from_millis(80), SeqNum(1000))));
    }

    #[test]
    fn probe_timeout_follows_linux() {
        let min_rto = ms(200);
        assert_eq!(probe_timeout(Some(ms(10)), false, min_rto, ms(1000)), ms(22));
        assert_eq!(probe_timeout(Some(ms(10)), true, min_rto, ms(1000)), ms(220));
        assert_eq!(probe_timeout(None, false, min_rto, ms(3000)), ms(1000));
        assert_eq!(probe_timeout(Some(ms(10)), true, min_rto, ms(150)), ms(150));
    }
}
