//! Congestion control: NewReno (RFC 5681 with RFC 6582's fast recovery), counting bytes.
//!
//! [`NewReno`] holds cwnd, ssthresh and the fast-recovery state; the connection tells it what
//! happened (new ACK, duplicate ACK, ACK during recovery, timeout, idle restart) and it answers
//! with what to send. It sees no segments and no clock.
//!
//! What the caller decides (RFC 5681 §2 defines the terms):
//! * whether an ACK is a *duplicate*: data outstanding, no payload, no SYN/FIN, ACK ==
//!   SND.UNA and the advertised window unchanged. Only those go to [`NewReno::on_dup_ack`].
//! * which entry point an ACK that advances SND.UNA goes to: [`NewReno::on_ack`] outside
//!   recovery, [`NewReno::on_ack_in_recovery`] inside it ([`NewReno::in_recovery`]).
//! * `flight_size`: bytes sent but not yet acknowledged (SND.MAX − SND.UNA) at the moment of
//!   the call, after the ACK being processed has been applied.
//! * `snd_nxt`: one past the highest sequence number ever sent (SND.MAX, which differs from
//!   SND.NXT after a timeout rewinds it for go-back-N).
//! * restarting the retransmission timer on every ACK of new data (RFC 6298 §5.3), partial ACKs
//!   included: that is RFC 6582 §4's "Slow-but-Steady" variant.
//! * sending never more than `cwnd` (and the peer's window) allow, except the retransmissions
//!   this module asks for.
//!
//! Not here (yet): limited transmit (RFC 3042), cwnd validation for application-limited flows
//! (RFC 7661), SACK-based recovery (RFC 6675), RFC 6582 §4's heuristics for fast retransmit
//! after a timeout, and the undo of spurious retransmissions (RFC 3522, RFC 5682).

use crate::tcp::SeqNum;
use core::time::Duration;

/// RFC 6928 §2: an initial window of ten segments.
pub const RFC6928_IW_SEGMENTS: usize = 10;

/// RFC 6928 §2's byte bound on the initial window: IW = min(10·MSS, max(2·MSS, 14600)).
const IW_BYTE_BOUND: usize = 14_600;

/// RFC 5681 §3.2: fast retransmit on the third duplicate ACK.
const DUP_ACK_THRESHOLD: u32 = 3;

/// What to do after a duplicate ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DupAckAction {
    /// Nothing beyond what cwnd already allowed.
    None,
    /// Recovery has just begun: retransmit the first unacknowledged segment now, regardless of
    /// cwnd (RFC 5681 §3.2 step 3), then send new data if cwnd allows.
    FastRetransmit,
    /// In recovery, cwnd was inflated by one SMSS: send new data if cwnd and the peer's window
    /// allow (RFC 5681 §3.2 step 5).
    SendNew,
}

/// What to do after an ACK of new data during fast recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryAction {
    /// A partial ACK: the segment at the new SND.UNA was lost too. Retransmit it now,
    /// regardless of cwnd, then send new data if cwnd allows. Still in recovery.
    RetransmitFirstUnacked,
    /// A full ACK: recovery is over and cwnd is deflated; carry on normally.
    Exited,
}

/// NewReno congestion control with byte counting (RFC 5681, RFC 6582, RFC 3465).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReno {
    smss: usize,
    iw_segments: usize,
    cwnd: usize,
    ssthresh: usize,
    /// RFC 3465 §2.1: bytes acknowledged in congestion avoidance since cwnd last grew.
    bytes_acked: usize,
    /// Duplicate ACKs in a row outside recovery.
    dup_acks: u32,
    in_recovery: bool,
    /// RFC 6582 §3.2's `recover`, stored as SND.MAX at the time (one past the highest sequence
    /// number sent), so "the ACK covers more than recover" is `ack > recover` and "acknowledges
    /// all data up to and including recover" is `ack >= recover`. `None` when no loss event
    /// constrains fast retransmit: initially (RFC 6582 §3.2 sets it to the ISS, which every ACK
    /// covers), and again once SND.UNA passes it, so that a stale value can never be compared
    /// across more than half the sequence space.
    recover: Option<SeqNum>,
    /// A timeout has happened and no new data has been acknowledged since.
    rto_outstanding: bool,
    /// No ACK or loss has changed cwnd yet, so [`NewReno::set_mss`] may recompute the IW.
    untouched: bool,
}

impl NewReno {
    /// A fresh sender: cwnd = IW (RFC 6928 §2, with `initial_window_segments` in the place of
    /// its 10), ssthresh arbitrarily high (RFC 5681 §3.1). `mss` is the sender's SMSS; zero is
    /// treated as one so that the window never sticks at zero.
    pub fn new(mss: usize, initial_window_segments: usize) -> NewReno {
        let mut cc = NewReno {
            smss: mss.max(1),
            iw_segments: initial_window_segments.max(1),
            cwnd: 0,
            // RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
            ssthresh: usize::MAX,
            bytes_acked: 0,
            dup_acks: 0,
            in_recovery: false,
            recover: None,
            rto_outstanding: false,
            untouched: true,
        };
        cc.cwnd = cc.initial_window();
        cc
    }

    /// The congestion window, in bytes.
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// The slow-start threshold, in bytes (`usize::MAX` until the first loss).
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// In fast recovery: ACKs of new data go to [`NewReno::on_ack_in_recovery`].
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }

    /// The sender maximum segment size cwnd is counted in.
    pub fn smss(&self) -> usize {
        self.smss
    }

    /// The initial window for the current SMSS, in bytes.
    pub fn initial_window(&self) -> usize {
        // RFC 6928 §2: IW = min(10·MSS, max(2·MSS, 14600)). The byte bound keeps jumbo-frame
        // connections from starting with ten 9000-byte segments.
        let by_segments = self.iw_segments.saturating_mul(self.smss);
        by_segments.min(self.smss.saturating_mul(2).max(IW_BYTE_BOUND))
    }

    /// The MSS became known (after the handshake) or changed (PMTU). If no ACK or loss has yet
    /// moved cwnd it is recomputed as the new IW, since the old one was counted in segments of
    /// the wrong size; otherwise cwnd keeps its byte value but is at least one new SMSS, so a
    /// full segment can always be sent. ssthresh is a byte count from a FlightSize and stays.
    pub fn set_mss(&mut self, mss: usize) {
        self.smss = mss.max(1);
        if self.untouched {
            self.cwnd = self.initial_window();
        } else {
            self.cwnd = self.cwnd.max(self.smss);
        }
    }

    /// An ACK advanced SND.UNA (to `snd_una`) by `newly_acked` bytes, outside recovery.
    ///
    /// Slow start adds every byte acknowledged, up to ssthresh (see below). Congestion
    /// avoidance counts bytes
    /// (RFC 3465 §2.1): it adds one SMSS each time a cwnd's worth of bytes has been acknowledged,
    /// which is one SMSS per RTT however the receiver spaces or delays its ACKs. (The
    /// per-ACK formula SMSS·SMSS/cwnd grows too slowly under delayed ACKs and too fast under
    /// ACK division.)
    pub fn on_ack(&mut self, newly_acked: usize, snd_una: SeqNum) {
        debug_assert!(!self.in_recovery, "on_ack during recovery: use on_ack_in_recovery");
        if self.in_recovery {
            // Release builds: end recovery the way RFC 5681 §3.2 step 6 would (cwnd = ssthresh)
            // rather than leave cwnd inflated forever.
            self.in_recovery = false;
            self.cwnd = self.ssthresh.max(self.smss);
        }
        self.new_data_acked(snd_una);
        if newly_acked == 0 {
            return;
        }
        self.untouched = false;
        if self.cwnd < self.ssthresh {
            // RFC 3465 §2.2 (Appropriate Byte Counting) without the per-ACK limit L, as Linux's
            // tcp_slow_start does: cwnd grows by what was acknowledged, up to ssthresh. RFC 5681
            // §3.1 eq. (2) caps it at one SMSS per ACK, but a receiver that processes frames in
            // bursts (ours, or Linux with GRO) sends one stretch ACK per burst, and with the cap
            // slow start would grow by one segment per RTT instead of doubling. Counting bytes,
            // not ACKs, still resists ACK division.
            let room = self.ssthresh - self.cwnd;
            self.cwnd = self.cwnd.saturating_add(newly_acked.min(room));
        } else {
            // RFC 5681 §3.1: "The RECOMMENDED way to increase cwnd during congestion avoidance
            // is to count the number of bytes that have been acknowledged"; RFC 3465 §2.1: when
            // bytes_acked >= cwnd, subtract cwnd and add SMSS to cwnd.
            self.bytes_acked = self.bytes_acked.saturating_add(newly_acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.smss);
            }
        }
    }

    /// A duplicate ACK (RFC 5681 §2; the caller decides) arrived. `flight_size` is the data
    /// outstanding, `snd_una` the ACK number (equal to SND.UNA for a duplicate), `snd_nxt` one
    /// past the highest sequence number sent.
    pub fn on_dup_ack(&mut self, flight_size: usize, snd_una: SeqNum, snd_nxt: SeqNum) -> DupAckAction {
        if self.in_recovery {
            // RFC 5681 §3.2 step 4: each further duplicate means another segment has left the
            // network, so inflate cwnd by SMSS to let a new one in.
            self.cwnd = self.cwnd.saturating_add(self.smss);
            return DupAckAction::SendNew;
        }
        self.dup_acks = self.dup_acks.saturating_add(1);
        // RFC 5681 §3.2 step 2: act on the third duplicate only. Fewer may be reordering; more
        // have already been acted on (or refused below, and refusing again gives the same answer
        // since the ACK number cannot have moved without an on_ack resetting the count).
        if self.dup_acks != DUP_ACK_THRESHOLD {
            return DupAckAction::None;
        }
        // RFC 6582 §3.2 step 1: enter fast retransmit only if the ACK covers more than
        // `recover`. Otherwise these duplicates may be echoes of segments retransmitted after a
        // timeout (or during the previous recovery), not news of a fresh loss; then neither
        // retransmit nor touch ssthresh.
        if let Some(recover) = self.recover {
            if !snd_una.gt(recover) {
                return DupAckAction::None;
            }
        }
        // RFC 6582 §3.2 step 1: raise recover to the highest sequence number sent so far.
        self.recover = Some(snd_nxt);
        // RFC 5681 §3.2 step 2, eq. (4): ssthresh = max(FlightSize / 2, 2·SMSS).
        self.ssthresh = self.loss_ssthresh(flight_size);
        // RFC 5681 §3.2 step 3: cwnd = ssthresh + 3·SMSS, "artificially inflating" it by the
        // three segments the duplicates say have left the network.
        self.cwnd = self.ssthresh.saturating_add(self.smss.saturating_mul(3));
        self.in_recovery = true;
        self.bytes_acked = 0;
        self.untouched = false;
        DupAckAction::FastRetransmit
    }

    /// An ACK of new data (up to `ack`, `newly_acked` bytes) during fast recovery;
    /// `flight_size` is what is still outstanding after it.
    pub fn on_ack_in_recovery(&mut self, ack: SeqNum, newly_acked: usize, flight_size: usize) -> RecoveryAction {
        debug_assert!(self.in_recovery, "on_ack_in_recovery outside recovery: use on_ack");
        if !self.in_recovery {
            // Release builds: treat it as the ordinary ACK it is.
            self.on_ack(newly_acked, ack);
            return RecoveryAction::Exited;
        }
        self.rto_outstanding = false;
        let recover = self.recover.unwrap_or(ack);
        if ack.ge(recover) {
            // RFC 6582 §3.2 step 3, full acknowledgment, option (1):
            // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS). Unlike plain ssthresh, this
            // cannot release a burst of ssthresh bytes when little is outstanding.
            self.cwnd = self.ssthresh.min(flight_size.max(self.smss).saturating_add(self.smss));
            self.in_recovery = false;
            self.dup_acks = 0;
            self.bytes_acked = 0;
            self.new_data_acked(ack);
            RecoveryAction::Exited
        } else {
            // RFC 6582 §3.2 step 3, partial acknowledgment: deflate cwnd by the amount newly
            // acknowledged, then add back one SMSS if at least one SMSS was acknowledged (the
            // segment that left the network), so that about ssthresh is outstanding when
            // recovery ends. Stay in recovery.
            self.cwnd = self.cwnd.saturating_sub(newly_acked);
            if newly_acked >= self.smss {
                self.cwnd = self.cwnd.saturating_add(self.smss);
            }
            // Not in the RFC: never below one SMSS, so new data can follow the retransmission
            // even after an unusually large partial ACK.
            self.cwnd = self.cwnd.max(self.smss);
            RecoveryAction::RetransmitFirstUnacked
        }
    }

    /// The retransmission timer expired; `snd_nxt` is one past the highest sequence number sent
    /// (SND.MAX, before any go-back-N rewind).
    pub fn on_rto(&mut self, flight_size: usize, snd_nxt: SeqNum) {
        // RFC 5681 §3.1: eq. (4) on a timeout, but "when a TCP sender detects segment loss
        // using the retransmission timer and the given segment has already been retransmitted
        // by way of the retransmission timer at least once, the value of ssthresh is held
        // constant" — FlightSize is tiny by then, and halving it would collapse ssthresh.
        if !self.rto_outstanding {
            self.ssthresh = self.loss_ssthresh(flight_size);
        }
        self.rto_outstanding = true;
        // RFC 5681 §3.1: after a timeout cwnd is the loss window, LW = 1·SMSS.
        self.cwnd = self.smss;
        // RFC 6582 §3.2 step 4: record the highest sequence number sent in `recover` and exit
        // fast recovery, so duplicates caused by the go-back-N retransmissions cannot start a
        // second, spurious recovery.
        self.recover = Some(snd_nxt);
        self.in_recovery = false;
        self.dup_acks = 0;
        self.bytes_acked = 0;
        self.untouched = false;
    }

    /// About to send after `idle` without sending, with the current retransmission timeout
    /// `rto`: the ACK clock has stopped, so do not trust the old cwnd.
    pub fn on_idle_restart(&mut self, idle: Duration, rto: Duration) {
        // RFC 5681 §4.1: if the TCP has not sent data in an interval exceeding the RTO,
        // cwnd = min(cwnd, RW) with the restart window RW = min(IW, cwnd).
        if idle > rto {
            let rw = self.initial_window().min(self.cwnd);
            if rw < self.cwnd {
                self.cwnd = rw;
                self.bytes_acked = 0;
            }
        }
    }

    /// RFC 5681 §3.1 eq. (4): ssthresh = max(FlightSize / 2, 2·SMSS).
    fn loss_ssthresh(&self, flight_size: usize) -> usize {
        (flight_size / 2).max(self.smss.saturating_mul(2))
    }

    /// Bookkeeping shared by every ACK that moves SND.UNA forward.
    fn new_data_acked(&mut self, snd_una: SeqNum) {
        self.dup_acks = 0;
        // New data arrived, so the next timeout is a new loss event (RFC 5681 §3.1).
        self.rto_outstanding = false;
        // Once SND.UNA is past `recover` the RFC 6582 §3.2 step 1 check passes for every later
        // ACK, so forget it rather than let it go stale across the sequence-number wrap.
        if self.recover.is_some_and(|r| snd_una.gt(r)) {
            self.recover = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;

    fn reno() -> NewReno {
        NewReno::new(MSS, RFC6928_IW_SEGMENTS)
    }

    /// A sender at `una` with `flight` bytes out takes three duplicates; returns SND.MAX.
    fn enter_recovery(cc: &mut NewReno, una: SeqNum, flight: usize) -> SeqNum {
        let nxt = una + flight;
        assert_eq!(cc.on_dup_ack(flight, una, nxt), DupAckAction::None);
        assert_eq!(cc.on_dup_ack(flight, una, nxt), DupAckAction::None);
        assert_eq!(cc.on_dup_ack(flight, una, nxt), DupAckAction::FastRetransmit);
        nxt
    }

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(NewReno::new(1460, 10).cwnd(), 14_600);
        assert_eq!(NewReno::new(536, 10).cwnd(), 5_360);
        // Jumbo frames: min(90000, max(18000, 14600)) = 18000.
        assert_eq!(NewReno::new(9000, 10).cwnd(), 18_000);
        assert_eq!(NewReno::new(1460, 4).cwnd(), 5_840);
        assert_eq!(reno().ssthresh(), usize::MAX);
        assert!(!reno().in_recovery());
        // Degenerate arguments do not give a zero window.
        assert_eq!(NewReno::new(0, 0).cwnd(), 1);
    }

    #[test]
    fn slow_start_doubles_cwnd_per_rtt() {
        let mut cc = reno();
        let mut una = SeqNum(1);
        for rtt in 0..3 {
            let start = cc.cwnd();
            // One ACK per segment for a whole window.
            for _ in 0..start / MSS {
                una += MSS;
                cc.on_ack(MSS, una);
            }
            assert_eq!(cc.cwnd(), 2 * start, "round {rtt}");
        }
        assert_eq!(cc.cwnd(), 80 * MSS);
    }

    #[test]
    fn slow_start_counts_bytes_so_stretch_acks_double_cwnd() {
        // Delayed ACKs covering two segments each still double cwnd per RTT, and so does one
        // stretch ACK for a whole window (a receiver that ACKs once per burst).
        let mut cc = reno();
        let mut una = SeqNum(1);
        for _ in 0..5 {
            una += 2 * MSS;
            cc.on_ack(2 * MSS, una);
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        una += 20 * MSS;
        cc.on_ack(20 * MSS, una);
        assert_eq!(cc.cwnd(), 40 * MSS);
        // Small ACKs add what they acknowledge.
        cc.on_ack(100, una + 100u32);
        assert_eq!(cc.cwnd(), 40 * MSS + 100);
    }

    /// Puts `cc` into congestion avoidance with cwnd = ssthresh = `window`.
    fn in_congestion_avoidance(window: usize) -> (NewReno, SeqNum) {
        let mut cc = reno();
        let una = SeqNum(1);
        let nxt = enter_recovery(&mut cc, una, 2 * window);
        assert_eq!(cc.on_ack_in_recovery(nxt, 2 * window, 4 * window), RecoveryAction::Exited);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (window, window));
        (cc, nxt)
    }

    #[test]
    fn congestion_avoidance_grows_one_smss_per_rtt() {
        let (mut cc, mut una) = in_congestion_avoidance(10 * MSS);
        for rtt in 0..5 {
            let start = cc.cwnd();
            for _ in 0..start / MSS {
                una += MSS;
                cc.on_ack(MSS, una);
            }
            assert_eq!(cc.cwnd(), start + MSS, "round {rtt}");
        }
    }

    #[test]
    fn congestion_avoidance_counts_bytes_not_acks() {
        // Delayed ACKs (two segments each) and ACK division (half segments) both give exactly
        // one SMSS per window acknowledged.
        for per_ack in [2 * MSS, MSS / 2, 300] {
            let (mut cc, mut una) = in_congestion_avoidance(10 * MSS);
            let mut acked = 0;
            while acked + per_ack <= 10 * MSS {
                una += per_ack;
                cc.on_ack(per_ack, una);
                acked += per_ack;
            }
            let want = if acked == 10 * MSS { 11 * MSS } else { 10 * MSS };
            assert_eq!(cc.cwnd(), want, "{per_ack} bytes per ACK");
        }
    }

    #[test]
    fn slow_start_hands_over_to_congestion_avoidance_at_ssthresh() {
        let (mut cc, una) = in_congestion_avoidance(10 * MSS);
        cc.on_rto(40 * MSS, una); // ssthresh = 20 segments, cwnd = 1.
        let mut una = una;
        while cc.cwnd() < cc.ssthresh() {
            una += MSS;
            cc.on_ack(MSS, una);
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        una += MSS;
        cc.on_ack(MSS, una);
        assert_eq!(cc.cwnd(), 20 * MSS, "now counting bytes");
    }

    #[test]
    fn third_dup_ack_triggers_fast_retransmit_once() {
        let mut cc = reno();
        let una = SeqNum(5000);
        let nxt = enter_recovery(&mut cc, una, 10 * MSS);
        assert!(cc.in_recovery());
        // RFC 5681 eq. (4) and step 3: ssthresh = 10/2 = 5 segments, cwnd = 5 + 3.
        assert_eq!(cc.ssthresh(), 5 * MSS);
        assert_eq!(cc.cwnd(), 8 * MSS);
        // Further duplicates inflate by one SMSS each and never retransmit again.
        for k in 1..=4 {
            assert_eq!(cc.on_dup_ack(10 * MSS, una, nxt), DupAckAction::SendNew);
            assert_eq!(cc.cwnd(), (8 + k) * MSS);
        }
        assert_eq!(cc.ssthresh(), 5 * MSS);
    }

    #[test]
    fn fast_retransmit_ssthresh_is_at_least_two_smss() {
        let mut cc = reno();
        enter_recovery(&mut cc, SeqNum(1), 3 * MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
        assert_eq!(cc.cwnd(), 5 * MSS);
    }

    #[test]
    fn new_ack_resets_the_dup_ack_count() {
        let mut cc = reno();
        let una = SeqNum(1);
        let nxt = una + 10 * MSS;
        assert_eq!(cc.on_dup_ack(10 * MSS, una, nxt), DupAckAction::None);
        assert_eq!(cc.on_dup_ack(10 * MSS, una, nxt), DupAckAction::None);
        cc.on_ack(MSS, una + MSS);
        let una = una + MSS;
        assert_eq!(cc.on_dup_ack(9 * MSS, una, nxt), DupAckAction::None);
        assert_eq!(cc.on_dup_ack(9 * MSS, una, nxt), DupAckAction::None);
        assert!(!cc.in_recovery());
        assert_eq!(cc.on_dup_ack(9 * MSS, una, nxt), DupAckAction::FastRetransmit);
    }

    #[test]
    fn partial_ack_retransmits_and_stays_in_recovery() {
        let mut cc = reno();
        let una = SeqNum(1);
        let nxt = enter_recovery(&mut cc, una, 10 * MSS); // ssthresh 5, cwnd 8 segments.
        cc.on_dup_ack(10 * MSS, una, nxt); // cwnd 9.
                                           // A partial ACK of two segments: 9 − 2 + 1 = 8 segments.
        let a = cc.on_ack_in_recovery(una + 2 * MSS, 2 * MSS, 8 * MSS);
        assert_eq!(a, RecoveryAction::RetransmitFirstUnacked);
        assert!(cc.in_recovery());
        assert_eq!(cc.cwnd(), 8 * MSS);
        // Less than one SMSS acknowledged: deflate without adding back.
        let a = cc.on_ack_in_recovery(una + 2 * MSS + 500usize, 500, 7 * MSS + 500);
        assert_eq!(a, RecoveryAction::RetransmitFirstUnacked);
        assert_eq!(cc.cwnd(), 8 * MSS - 500);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        // Duplicates after a partial ACK still inflate (RFC 6582 §3.2 step 3, last sentence).
        assert_eq!(cc.on_dup_ack(7 * MSS, una + 2500u32, nxt), DupAckAction::SendNew);
        assert_eq!(cc.cwnd(), 9 * MSS - 500);
    }

    #[test]
    fn huge_partial_ack_leaves_at_least_one_smss() {
        let mut cc = reno();
        let una = SeqNum(1);
        let nxt = enter_recovery(&mut cc, una, 100 * MSS); // cwnd 53 segments.
        let a = cc.on_ack_in_recovery(nxt - 1u32, 100 * MSS - 1, 1);
        assert_eq!(a, RecoveryAction::RetransmitFirstUnacked);
        assert_eq!(cc.cwnd(), MSS);
    }

    #[test]
    fn full_ack_exits_recovery_with_deflated_cwnd() {
        // Much still outstanding (new data sent during recovery): cwnd = ssthresh.
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, SeqNum(1), 20 * MSS); // ssthresh 10 segments.
        assert_eq!(cc.on_ack_in_recovery(nxt, 20 * MSS, 12 * MSS), RecoveryAction::Exited);
        assert!(!cc.in_recovery());
        assert_eq!(cc.cwnd(), 10 * MSS);

        // Little outstanding: cwnd = FlightSize + SMSS, so no burst of ssthresh bytes.
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, SeqNum(1), 20 * MSS);
        assert_eq!(cc.on_ack_in_recovery(nxt + 100u32, 20 * MSS + 100, 3 * MSS), RecoveryAction::Exited);
        assert_eq!(cc.cwnd(), 4 * MSS);

        // Nothing outstanding: max(FlightSize, SMSS) + SMSS = 2 segments.
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, SeqNum(1), 20 * MSS);
        assert_eq!(cc.on_ack_in_recovery(nxt, 20 * MSS, 0), RecoveryAction::Exited);
        assert_eq!(cc.cwnd(), 2 * MSS);
    }

    #[test]
    fn rto_resets_cwnd_to_one_smss() {
        let mut cc = reno();
        cc.on_rto(10 * MSS, SeqNum(10_001));
        assert_eq!(cc.cwnd(), MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        // A timeout during recovery ends it.
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, SeqNum(1), 20 * MSS);
        cc.on_rto(20 * MSS, nxt);
        assert!(!cc.in_recovery());
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 10 * MSS));
    }

    #[test]
    fn repeated_rto_holds_ssthresh() {
        let mut cc = reno();
        let nxt = SeqNum(20_001);
        cc.on_rto(20 * MSS, nxt);
        assert_eq!(cc.ssthresh(), 10 * MSS);
        // The retransmission timed out too; FlightSize is now one segment, but ssthresh holds.
        cc.on_rto(MSS, nxt);
        assert_eq!(cc.ssthresh(), 10 * MSS);
        assert_eq!(cc.cwnd(), MSS);
        // New data acknowledged: the next timeout is a new loss event.
        cc.on_ack(MSS, SeqNum(1001));
        cc.on_rto(6 * MSS, nxt);
        assert_eq!(cc.ssthresh(), 3 * MSS);
    }

    #[test]
    fn no_fast_retransmit_for_dup_acks_at_or_below_recover_after_rto() {
        let mut cc = reno();
        let una = SeqNum(1);
        let snd_max = una + 20 * MSS;
        cc.on_rto(20 * MSS, snd_max); // recover = snd_max; ssthresh 10 segments.
                                      // Go-back-N: the first retransmission is acknowledged, then the receiver, which
                                      // already holds later segments, sends duplicates for the ones that follow.
        let una = una + MSS;
        cc.on_ack(MSS, una);
        for _ in 0..10 {
            assert_eq!(cc.on_dup_ack(19 * MSS, una, snd_max), DupAckAction::None);
        }
        assert!(!cc.in_recovery());
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2 * MSS, 10 * MSS));
        // Duplicates exactly at recover: still not more than recover.
        cc.on_ack(19 * MSS, snd_max);
        let nxt = snd_max + 5 * MSS;
        for _ in 0..5 {
            assert_eq!(cc.on_dup_ack(5 * MSS, snd_max, nxt), DupAckAction::None);
        }
        // Past recover: a genuinely new loss enters recovery as usual.
        let una = snd_max + MSS;
        cc.on_ack(MSS, una);
        assert_eq!(enter_recovery(&mut cc, una, 4 * MSS), una + 4 * MSS);
        assert!(cc.in_recovery());
    }

    #[test]
    fn no_second_recovery_for_dup_acks_at_recover_after_full_ack() {
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, SeqNum(1), 10 * MSS);
        assert_eq!(cc.on_ack_in_recovery(nxt, 10 * MSS, 4 * MSS), RecoveryAction::Exited);
        for _ in 0..4 {
            assert_eq!(cc.on_dup_ack(4 * MSS, nxt, nxt + 4 * MSS), DupAckAction::None);
        }
        assert!(!cc.in_recovery());
    }

    #[test]
    fn recover_compares_across_the_sequence_wrap() {
        let mut cc = reno();
        let una = SeqNum(u32::MAX - 5000);
        let snd_max = una + 10 * MSS; // Wrapped past zero.
        cc.on_rto(10 * MSS, snd_max);
        cc.on_ack(MSS, una + MSS);
        for _ in 0..3 {
            assert_eq!(cc.on_dup_ack(9 * MSS, una + MSS, snd_max), DupAckAction::None);
        }
        cc.on_ack(9 * MSS + 1, snd_max + 1u32);
        assert_eq!(enter_recovery(&mut cc, snd_max + 1u32, 4 * MSS), snd_max + 1u32 + 4 * MSS);
        // Full ACK across the wrap.
        let mut cc = reno();
        let nxt = enter_recovery(&mut cc, una, 10 * MSS);
        assert!(nxt.0 < una.0);
        assert_eq!(cc.on_ack_in_recovery(una + MSS, MSS, 9 * MSS), RecoveryAction::RetransmitFirstUnacked);
        assert_eq!(cc.on_ack_in_recovery(nxt, 9 * MSS, 0), RecoveryAction::Exited);
    }

    #[test]
    fn idle_restart_limits_cwnd_to_initial_window() {
        let rto = Duration::from_millis(300);
        let mut cc = reno();
        let mut una = SeqNum(1);
        for _ in 0..30 {
            una += MSS;
            cc.on_ack(MSS, una);
        }
        assert_eq!(cc.cwnd(), 40 * MSS);
        // Idle for no longer than the RTO: keep the window.
        cc.on_idle_restart(rto, rto);
        assert_eq!(cc.cwnd(), 40 * MSS);
        cc.on_idle_restart(rto + Duration::from_micros(1), rto);
        assert_eq!(cc.cwnd(), 10 * MSS);
        // RW = min(IW, cwnd): a window already below IW is not raised.
        cc.on_rto(10 * MSS, una);
        cc.on_idle_restart(Duration::from_secs(10), rto);
        assert_eq!(cc.cwnd(), MSS);
    }

    #[test]
    fn set_mss_rescales_an_untouched_initial_window() {
        let mut cc = NewReno::new(536, 10);
        assert_eq!(cc.cwnd(), 5360);
        cc.set_mss(1460);
        assert_eq!((cc.smss(), cc.cwnd()), (1460, 14_600));
        // Once ACKs have moved cwnd, its byte value stays (raised to one SMSS at least).
        cc.on_ack(1460, SeqNum(1461));
        cc.set_mss(1000);
        assert_eq!(cc.cwnd(), 16_060);
        cc.on_rto(10_000, SeqNum(20_000));
        cc.set_mss(1400);
        assert_eq!(cc.cwnd(), 1400);
        // Zero from a hostile MSS option must not stall or panic.
        cc.set_mss(0);
        assert_eq!(cc.smss(), 1);
        assert!(cc.cwnd() >= 1);
    }

    #[derive(Clone, Debug)]
    enum Event {
        Ack(usize),
        DupAck,
        Rto,
        Idle,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (1usize..5 * MSS).prop_map(Event::Ack),
            3 => Just(Event::DupAck),
            1 => Just(Event::Rto),
            1 => Just(Event::Idle),
        ]
    }

    proptest! {
        /// Drive a sender with a window of data in flight through random events, the way a
        /// connection would; cwnd never drops below one SMSS and ssthresh, once set, never
        /// below two.
        #[test]
        fn invariants_hold_under_random_events(events in proptest::collection::vec(event(), 1..200)) {
            let mut cc = reno();
            let mut una = SeqNum(u32::MAX - 100_000);
            let mut snd_max = una;
            for e in events {
                // Keep cwnd's worth in flight.
                snd_max = snd_max.max(una + cc.cwnd());
                let flight = snd_max.since(una) as usize;
                match e {
                    Event::Ack(n) => {
                        let n = n.min(flight);
                        if n == 0 { continue; }
                        una += n;
                        let after = snd_max.since(una) as usize;
                        if cc.in_recovery() {
                            cc.on_ack_in_recovery(una, n, after);
                        } else {
                            cc.on_ack(n, una);
                        }
                    }
                    Event::DupAck => {
                        if flight > 0 {
                            let was = cc.in_recovery();
                            let a = cc.on_dup_ack(flight, una, snd_max);
                            prop_assert_eq!(a == DupAckAction::FastRetransmit, !was && cc.in_recovery());
                            prop_assert_eq!(a == DupAckAction::SendNew, was);
                        }
                    }
                    Event::Rto => {
                        cc.on_rto(flight, snd_max);
                        prop_assert_eq!(cc.cwnd(), MSS);
                        prop_assert!(!cc.in_recovery());
                    }
                    Event::Idle => cc.on_idle_restart(Duration::from_secs(2), Duration::from_secs(1)),
                }
                prop_assert!(cc.cwnd() >= MSS);
                prop_assert!(cc.ssthresh() >= 2 * MSS);
            }
        }
    }
}
