//! Timers: the retransmission timer (RFC 6298), delayed ACK, persist, keep-alive, TIME-WAIT.

use super::*;
use crate::time::earliest;

impl Tcb {
    /// The earliest time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Chained by hand: the stack asks after every flush, and the iterator form
        // (`[..].into_iter().flatten().min()`) cost about four times as many instructions.
        let e = earliest;
        e(
            e(e(self.rtx_deadline, self.probe_deadline), e(self.reorder_deadline, self.delack_deadline)),
            e(e(self.persist_deadline, self.keepalive_deadline), e(self.close_deadline, self.pace_deadline)),
        )
    }

    /// Run the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.close_deadline, Some(d) if d <= now) {
            self.close_deadline = None;
            // TIME-WAIT after 2·MSL, or FIN-WAIT-2 after the orphan timeout: CLOSED.
            self.enter_closed(CloseReason::Normal);
            return;
        }
        if matches!(self.rtx_deadline, Some(d) if d <= now) {
            self.rtx_deadline = None;
            self.probe_deadline = None;
            self.reorder_deadline = None;
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if matches!(self.reorder_deadline, Some(d) if d <= now) {
            self.reorder_deadline = None;
            self.on_reorder_timeout(now);
        }
        if matches!(self.probe_deadline, Some(d) if d <= now) {
            self.probe_deadline = None;
            // RFC 8985 §7.3: probe if the conditions that scheduled it still hold.
            if self.tlp_allowed() {
                self.tlp_now = true;
            }
        }
        if matches!(self.pace_deadline, Some(d) if d <= now) {
            // The pacing gap is over: the next transmit sends.
            self.pace_deadline = None;
        }
        if matches!(self.delack_deadline, Some(d) if d <= now) {
            self.delack_deadline = None;
            self.ack_now = true;
            // Linux's tcp_delack_timer_handler: a delayed ACK had to go on its own, so the
            // exchange is not interactive after all.
            self.pingpong = false;
        }
        if matches!(self.persist_deadline, Some(d) if d <= now) {
            self.persist_deadline = None;
            if self.snd_wnd == 0 && self.snd_una.lt(self.data_end()) {
                self.probe_now = true;
                self.persist_backoff += 1;
                self.persist_deadline = Some(now + self.persist_interval());
            } else if self.snd_una == self.snd_nxt && self.snd_una.lt(self.data_end()) {
                // RFC 1122 §4.2.3.4: the override timeout — send what the window allows.
                self.sws_override = true;
                self.persist_backoff = 0;
            } else {
                self.persist_backoff = 0;
            }
        }
        if matches!(self.keepalive_deadline, Some(d) if d <= now) {
            self.keepalive_deadline = None;
            if let Some(k) = self.cfg.keepalive {
                if self.keepalive_unanswered >= k.probes {
                    // RFC 1122 §4.2.3.6: the peer is dead; Linux resets the connection.
                    self.abort_with(CloseReason::TimedOut);
                    return;
                }
                self.keepalive_unanswered += 1;
                self.keepalive_now = true;
                self.keepalive_deadline = Some(now + k.interval);
            }
        }
    }

    fn abort_with(&mut self, reason: CloseReason) {
        if self.state.is_synchronized() || self.state == State::SynReceived {
            self.rst_now = true;
        }
        self.enter_closed(reason);
    }

    /// RFC 8985 §6.2 step 5's timer: segments that were waiting out the reordering window
    /// may be lost now.
    fn on_reorder_timeout(&mut self, now: Instant) {
        self.stats.rare().reorder_timeouts += 1;
        let lost_before = self.sb.lost_bytes();
        let timeout = self.rack_detect_loss(now);
        if self.sb.lost_bytes() > lost_before && matches!(self.phase, Phase::Open | Phase::Cwr { .. }) {
            self.enter_recovery(now);
            // RFC 6937 from the first step, as Linux's tcp_rack_reo_timeout runs
            // tcp_cwnd_reduction with one segment counted delivered: the timer lets one
            // retransmission out, not all that fits under ssthresh at once.
            if !self.cc.model_based() {
                let pipe = self.pipe();
                if let Some(cwnd) = self.prr.on_ack(self.snd_mss, pipe, self.cc.ssthresh(), self.snd_mss, false) {
                    self.cc.set_cwnd(cwnd);
                }
            }
        }
        let rto_at = self.rtx_deadline.unwrap_or(now + self.rtt.rto());
        self.reorder_deadline = timeout.map(|t| (now + t).min(rto_at));
    }

    /// RFC 6298 §5.4–5.7, RFC 5681 §3.1 and RFC 8985 §6.3: the retransmission timer expired.
    fn on_rto(&mut self, now: Instant) {
        self.stats.rare().rto_expirations += 1;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.retries += 1;
            let limit = if self.state == State::SynSent { self.cfg.syn_retries } else { self.cfg.synack_retries };
            if self.retries > limit {
                // Give up: ETIMEDOUT. Linux sends no reset for an unanswered SYN or SYN-ACK.
                self.enter_closed(CloseReason::TimedOut);
                return;
            }
            // RFC 6298 §5.5: back off; §5.6: restart the timer; Karn: the SYN is not timed.
            self.rtt.backoff();
            self.syn_sent_at = None;
            self.send_syn = true;
            self.arm_rtx(now);
            return;
        }
        if self.snd_una == self.snd_nxt {
            return; // nothing outstanding (a probe was answered meanwhile)
        }
        // A peer that keeps answering behind a zero window is alive: the retransmissions are
        // window probes and do not count towards giving up, unless no ACK came for longer
        // than the maximum RTO (Linux's tcp_rtx_probe0_timed_out) or nobody will read
        // (an orphaned connection times out as usual).
        let zero_window_alive = self.snd_wnd == 0
            && !self.app_closed
            && now.saturating_duration_since(self.last_ack_rcvd) <= self.cfg.max_rto;
        if !zero_window_alive {
            self.retries += 1;
        }
        if self.retries > self.cfg.data_retries || (self.snd_wnd == 0 && !zero_window_alive && !self.app_closed) {
            // Give up: ETIMEDOUT; Linux resets a dead synchronized connection.
            self.abort_with(CloseReason::TimedOut);
            return;
        }
        // RFC 6298 §5.5: back off.
        self.rtt.backoff();
        // RFC 5681 §3.1: a new ssthresh unless this data was already being recovered from an
        // earlier timeout (or fast recovery already reduced for this loss, as Linux keeps it).
        let first = match self.phase {
            Phase::Open | Phase::Cwr { .. } => true,
            Phase::Loss { .. } => self.retries <= 1,
            Phase::Recovery { .. } => false,
        };
        // RFC 5682 §3.1 step 1: F-RTO may find this timeout spurious (not after fast
        // recovery, whose retransmissions muddle the evidence).
        self.frto = self.cfg.frto && !matches!(self.phase, Phase::Recovery { .. });
        self.frto_send_new = false;
        if first || self.undo.is_none() {
            self.start_undo();
        }
        self.cc.on_rto(now, self.flight_size(), first);
        // RFC 8985 §6.3: the first segment is lost, and so is all sent more than RACK.rtt ago.
        self.sb.mark_lost_on_rto(now, self.rack.rtt());
        self.phase = Phase::Loss { high: self.snd_nxt };
        // RFC 6582 §3.2 step 4: duplicates caused by the retransmissions start no recovery.
        self.recover = Some(self.snd_nxt);
        self.dupacks = 0;
        self.tlp = Tlp::default();
        self.rto_head_now = true;
        self.arm_rtx(now);
    }
}
