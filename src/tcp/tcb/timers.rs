//! Timers: the retransmission timer (RFC 6298), delayed ACK, persist, keep-alive, TIME-WAIT.

use super::*;

impl Tcb {
    /// The earliest time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.rtx_deadline, self.delack_deadline, self.persist_deadline, self.keepalive_deadline, self.close_deadline]
            .into_iter()
            .flatten()
            .min()
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
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if matches!(self.delack_deadline, Some(d) if d <= now) {
            self.delack_deadline = None;
            self.ack_now = true;
        }
        if matches!(self.persist_deadline, Some(d) if d <= now) {
            self.persist_deadline = None;
            if self.snd_wnd == 0 && self.snd_una.lt(self.data_end()) {
                self.probe_now = true;
                self.persist_backoff += 1;
                self.persist_deadline = Some(now + self.persist_interval());
            } else if self.snd_una == self.snd_max && self.snd_una.lt(self.data_end()) {
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

    /// RFC 6298 §5.4–5.7 and RFC 5681 §3.1: the retransmission timer expired.
    fn on_rto(&mut self, now: Instant) {
        self.retries += 1;
        self.stats.rto_expirations += 1;
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.data_retries,
        };
        if self.retries > limit {
            // Give up: ETIMEDOUT. Linux sends no reset for an unanswered SYN or SYN-ACK; for a
            // dead synchronized connection it does.
            if matches!(self.state, State::SynSent | State::SynReceived) {
                self.enter_closed(CloseReason::TimedOut);
            } else {
                self.abort_with(CloseReason::TimedOut);
            }
            return;
        }
        // RFC 6298 §5.5: back off; §5.6: restart the timer; Karn: nothing in flight is timed.
        self.rtt.backoff();
        self.rtt_probe = None;
        match self.state {
            State::SynSent | State::SynReceived => {
                self.send_syn = true;
            }
            _ => {
                if self.snd_una == self.snd_max {
                    return; // nothing outstanding (a probe was answered meanwhile)
                }
                self.cc.on_rto(self.flight_size(), self.snd_max);
                // Go back N: resend from the first unacknowledged byte.
                self.snd_nxt = self.snd_una;
            }
        }
        self.arm_rtx(now);
    }
}
