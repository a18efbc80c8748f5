//! Proportional Rate Reduction (RFC 6937, with the refinements of Linux's tcp_cwnd_reduction
//! that RFC 9937 adopted): during a window reduction (fast recovery, an ECN echo, a loss
//! repaired by a tail loss probe) send in proportion to what is delivered, so that the flight
//! comes down to ssthresh smoothly instead of halting (RFC 6675's pipe rule) or bursting
//! (Reno's window inflation), and climb back to ssthresh when losses drained it below.

/// One reduction's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prr {
    /// prr_delivered: bytes delivered to the receiver since the reduction began.
    delivered: usize,
    /// prr_out: bytes sent since it began.
    out: usize,
    /// RecoverFS: the flight when it began.
    recover_fs: usize,
    /// Bytes the sender may send beyond PRR's count, not counted in prr_out: what ACKs
    /// processed in the same burst before the reduction began would have let out
    /// (`Prr::with_owed`).
    owed: usize,
}

impl Prr {
    /// A reduction begins with `flight` bytes outstanding.
    pub fn new(flight: usize) -> Prr {
        Prr::with_owed(flight, 0)
    }

    /// A reduction that begins with `owed` bytes still to be sent under the window from
    /// before it: ACKs of the same burst, processed before the one that started it, would
    /// each have let new data out had the sender been asked after each (Linux processes
    /// ACKs one at a time). They go on top of PRR's count, and RecoverFS holds them, as the
    /// flight would have.
    pub fn with_owed(flight: usize, owed: usize) -> Prr {
        Prr { delivered: 0, out: 0, recover_fs: flight.saturating_add(owed).max(1), owed }
    }

    /// `n` bytes went out (new data or retransmissions); what is owed goes first.
    pub fn on_sent(&mut self, n: usize) {
        let from_owed = n.min(self.owed);
        self.owed -= from_owed;
        self.out = self.out.saturating_add(n - from_owed);
    }

    /// prr_delivered (RFC 6937): bytes delivered to the receiver since the reduction began.
    pub fn delivered(&self) -> usize {
        self.delivered
    }
    /// prr_out (RFC 6937): bytes sent since the reduction began, less what was owed.
    pub fn out(&self) -> usize {
        self.out
    }

    /// An ACK during the reduction delivered `delivered` bytes; `pipe` is what is in flight
    /// after it. Returns the new cwnd (pipe + sndcnt), or `None` if nothing was delivered
    /// (cwnd stays). `safe_ack`: the ACK advanced SND.UNA and showed no new loss, which lets
    /// the slow-start reduction bound add one segment (RFC 9937 §6).
    pub fn on_ack(
        &mut self,
        delivered: usize,
        pipe: usize,
        ssthresh: usize,
        mss: usize,
        safe_ack: bool,
    ) -> Option<usize> {
        if delivered == 0 {
            return None;
        }
        self.delivered = self.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // RFC 6937 §3: sndcnt = CEIL(prr_delivered · ssthresh / RecoverFS) − prr_out.
            let target = (self.delivered as u128 * ssthresh as u128).div_ceil(self.recover_fs as u128);
            let bytes = (target.min(usize::MAX as u128) as usize).saturating_sub(self.out);
            // Whole segments, rounded up as Linux's packet arithmetic rounds: a sender that
            // sends full segments may send one when any part of one is due (RFC 6937 §3
            // leaves the granularity to the sender).
            bytes.div_ceil(mss.max(1)).saturating_mul(mss)
        } else {
            // PRR-SSRB: catch up towards ssthresh, no faster than slow start would — in
            // whole segments, as Linux counts (an ACK for part of a segment delivers one
            // packet there; in bytes it would release less than the next segment).
            let mut limit = self.delivered.saturating_sub(self.out).max(delivered).div_ceil(mss.max(1)) * mss;
            if safe_ack {
                limit = limit.saturating_add(mss);
            }
            (ssthresh - pipe).min(limit)
        };
        // Linux: at least one segment on the first ACK of the reduction, so that the fast
        // retransmission goes out whatever the arithmetic says.
        let sndcnt = if self.out == 0 { sndcnt.max(mss) } else { sndcnt };
        Some(pipe.saturating_add(sndcnt).saturating_add(self.owed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    #[test]
    fn proportional_part_sends_ssthresh_per_recover_fs_delivered() {
        // RFC 6937 §5's example shape: 20 segments in flight, one lost, ssthresh 10 (Reno):
        // every other delivered segment lets one go.
        // The sender is packet-granular: it sends a whole segment while pipe < cwnd.
        let mut p = Prr::new(20 * MSS);
        let mut sent = 0;
        let mut pipe = 19 * MSS;
        for k in 1..=10 {
            pipe -= MSS;
            let cwnd = p.on_ack(MSS, pipe, 10 * MSS, MSS, true).unwrap();
            while pipe < cwnd {
                p.on_sent(MSS);
                pipe += MSS;
                sent += 1;
            }
            // After k segments delivered, ceil(k·10/20) segments sent (the first at once).
            assert_eq!(sent, (k * 10usize).div_ceil(20), "after {k} ACKs");
        }
    }

    #[test]
    fn reduction_bound_climbs_back_to_ssthresh_but_no_faster_than_slow_start() {
        // Heavy loss drained the pipe to 2 segments, ssthresh is 10.
        let mut p = Prr::new(20 * MSS);
        p.on_sent(MSS);
        let cwnd = p.on_ack(MSS, 2 * MSS, 10 * MSS, MSS, false).unwrap();
        // limit = max(delivered − out, delivered) = 1 segment (no bonus without a safe ACK).
        assert_eq!(cwnd, 3 * MSS);
        let cwnd = p.on_ack(2 * MSS, 2 * MSS, 10 * MSS, MSS, true).unwrap();
        // delivered 3, out 1: limit max(2, 2) + 1 = 3 segments.
        assert_eq!(cwnd, 5 * MSS);
        // Never above ssthresh.
        let cwnd = p.on_ack(50 * MSS, 9 * MSS, 10 * MSS, MSS, true).unwrap();
        assert_eq!(cwnd, 10 * MSS);
    }

    #[test]
    fn a_partial_segment_delivered_releases_a_whole_one() {
        // One segment in flight, ssthresh 3: an ACK for 376 bytes (the rest of a segment)
        // lets the next segment go.
        let mut p = Prr::new(4 * MSS);
        p.on_sent(MSS);
        assert_eq!(p.on_ack(376, MSS, 3 * MSS, MSS, false), Some(2 * MSS));
    }

    #[test]
    fn the_first_ack_always_releases_one_segment() {
        let mut p = Prr::new(3 * MSS);
        assert_eq!(p.on_ack(1, 2 * MSS, 2 * MSS, MSS, false), Some(3 * MSS));
        assert_eq!(p.on_ack(0, 2 * MSS, 2 * MSS, MSS, false), None);
    }
}
