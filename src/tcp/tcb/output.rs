//! What the connection sends (RFC 9293 §3.10.7, §3.8.6): SYNs, data, retransmissions,
//! probes and ACKs.

use super::*;

impl Tcb {
    /// The next segment to send, if any; its payload is copied into `payload_buf` (the
    /// caller's TX frame, after room for headers). Call until it returns `None`.
    pub fn poll_transmit<'b>(&mut self, now: Instant, payload_buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        self.tx_ext_out = None;
        if let Some(rst) = self.reply_rst.take() {
            self.stats.rsts_out += 1;
            self.stats.segs_out += 1;
            return Some(rst);
        }
        if self.rst_now {
            // §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>; with the ACK field, as Linux sends it.
            self.rst_now = false;
            self.stats.rsts_out += 1;
            self.stats.segs_out += 1;
            return Some(TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.snd_max.0,
                ack: self.rcv_nxt.0,
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &[],
            });
        }
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => {
                if self.send_syn {
                    Some(self.emit_syn(now))
                } else if self.ack_now && self.state == State::SynReceived {
                    Some(self.emit(now, self.snd_nxt, TcpFlags::ACK, &mut []))
                } else {
                    None
                }
            }
            _ => self.transmit_synchronized(now, payload_buf),
        }
    }

    fn emit_syn(&mut self, now: Instant) -> TcpRepr<'static> {
        self.send_syn = false;
        let is_syn_ack = self.state == State::SynReceived;
        if self.snd_max == self.iss {
            // The first transmission is timed (Karn: a retransmitted SYN is not).
            self.rtt_probe = Some((self.iss + 1u32, now));
        } else {
            self.rtt_probe = None;
            self.stats.retransmits += 1;
        }
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
        self.arm_rtx(now);
        self.stats.segs_out += 1;
        self.last_send = now;
        let options = self.syn_options(now, is_syn_ack);
        // RFC 7323 §2.2: the window in a SYN is not scaled.
        let window = self.recv_buf.free().min(0xffff) as u16;
        self.syn_window = window;
        let (flags, ack) = if is_syn_ack {
            self.rcv_adv = self.rcv_nxt + window as u32;
            self.after_ack_sent();
            (TcpFlags::SYN | TcpFlags::ACK, self.rcv_nxt.0)
        } else {
            (TcpFlags::SYN, 0)
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.iss.0,
            ack,
            flags,
            window,
            urgent: 0,
            options,
            payload: &[],
        }
    }

    fn transmit_synchronized<'b>(&mut self, now: Instant, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        // Retransmissions first: fast retransmit / partial ACK (RFC 5681 §3.2, RFC 6582).
        if self.fast_rtx {
            self.fast_rtx = false;
            if self.snd_una != self.snd_max {
                let seq = self.snd_una;
                self.stats.retransmits += 1;
                return self.emit_data_at(now, seq, buf);
            }
        }
        // Zero-window probe (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): one byte beyond the
        // window.
        if self.probe_now {
            self.probe_now = false;
            if self.snd_una.lt(self.data_end()) {
                self.stats.window_probes += 1;
                self.probing = true;
                let seq = self.snd_una;
                let n = self.copy_payload(seq, 1, buf);
                let end = seq + n;
                if self.snd_max.lt(end) {
                    self.snd_max = end;
                }
                self.snd_nxt = self.snd_nxt.max(end);
                let buf = self.payload_slice(buf, n);
                return Some(self.emit(now, seq, TcpFlags::ACK | TcpFlags::PSH, buf));
            }
        }
        // New (or go-back-N re-sent) data and FIN.
        if matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
        ) {
            if let Some(seg) = self.try_send_data(now, buf) {
                return Some(seg);
            }
        }
        // Keep-alive probe (RFC 1122 §4.2.3.6): SEG.SEQ = SND.NXT - 1, no data, as Linux does;
        // the peer answers with an ACK.
        if self.keepalive_now {
            self.keepalive_now = false;
            self.stats.keepalive_probes += 1;
            let seq = self.snd_una - 1u32;
            return Some(self.emit(now, seq, TcpFlags::ACK, &mut []));
        }
        if self.ack_now {
            let seq = self.ack_seq();
            return Some(self.emit(now, seq, TcpFlags::ACK, &mut []));
        }
        None
    }

    /// The sequence number of a segment without data. After an RTO SND.NXT is rewound to
    /// SND.UNA, but the peer may already have received up to SND.MAX: an ACK numbered below
    /// its RCV.NXT would be unacceptable to it (§3.10.7.4), and if both sides are rewound the
    /// ACKs that would unstick them are all dropped. So, as BSD does (tcp_output: "use snd_max
    /// instead of snd_nxt"), use SND.MAX, kept inside the peer's window as Linux does
    /// (tcp_acceptable_seq).
    fn ack_seq(&self) -> SeqNum {
        let wnd_end = self.snd_una + self.snd_wnd;
        if self.snd_max.le(wnd_end) {
            self.snd_max
        } else {
            wnd_end.max(self.snd_nxt)
        }
    }

    /// Send data (and FIN) from SND.NXT if the windows and Nagle/SWS allow.
    fn try_send_data<'b>(&mut self, now: Instant, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        let data_end = self.data_end();
        let unsent = data_end.since(self.snd_nxt) as usize;
        let fin_pending = matches!(self.our_fin, Some(f) if self.snd_nxt.le(f));
        if unsent == 0 && !fin_pending {
            return None;
        }
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial
        // window.
        if self.snd_una == self.snd_max {
            let idle = now.saturating_duration_since(self.last_send);
            self.cc.on_idle_restart(idle, self.rtt.rto());
        }
        let wnd = (self.snd_wnd as usize).min(self.cc.cwnd());
        let in_flight = self.snd_nxt.since(self.snd_una) as usize;
        let usable = wnd.saturating_sub(in_flight);
        let room = if self.tx_external { usize::MAX } else { buf.len() };
        let len = unsent.min(usable).min(self.snd_mss).min(room);
        let everything = len == unsent;
        // RFC 1122 §4.2.3.4: send when (1) a full segment can go, (2) all queued data can go
        // and either nothing is unacknowledged or Nagle is off, or (3) at least half the
        // largest window the peer offered can go.
        // What goes again after an RTO (below SND.MAX) was sent before: no Nagle or SWS test.
        let resend = self.snd_nxt.lt(self.snd_max);
        let send_data = len > 0
            && (resend
                || self.sws_override
                || len == self.snd_mss
                || (everything && (!self.cfg.nagle || self.snd_una == self.snd_max || fin_pending))
                || (len as u32) >= self.max_snd_wnd / 2);
        let with_fin = fin_pending && everything && (len > 0 || unsent == 0);
        if !(send_data || (with_fin && unsent == 0)) {
            // Nothing can go and nothing is in flight, so no ACK will come to change that: arm
            // the persist timer. With a zero window it probes (RFC 9293 §3.8.6.1); with a
            // window too small to use it is RFC 1122 §4.2.3.4's override timeout, after which
            // what the window allows is sent — otherwise a lost window update deadlocks the
            // connection (found by tests/stack_sim.rs; Linux arms its probe timer the same way).
            if unsent > 0 && self.snd_una == self.snd_max && self.persist_deadline.is_none() {
                self.persist_deadline = Some(now + self.persist_interval());
            }
            return None;
        }
        self.sws_override = false;
        let seq = self.snd_nxt;
        let n = self.copy_payload(seq, len, buf);
        let mut flags = TcpFlags::ACK;
        if n > 0 && seq + n == data_end {
            flags |= TcpFlags::PSH; // the last of what the application wrote
        }
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        let end = seq + n + (with_fin as u32);
        if seq.lt(self.snd_max) {
            // Go-back-N after an RTO re-sends what was sent before.
            self.stats.retransmits += 1;
        } else if self.rtt_probe.is_none() {
            self.rtt_probe = Some((end, now));
        }
        self.snd_nxt = end;
        if self.snd_max.lt(end) {
            self.snd_max = end;
        }
        if self.rtx_deadline.is_none() {
            self.arm_rtx(now);
        }
        self.stats.bytes_out += n as u64;
        let buf = self.payload_slice(buf, n);
        Some(self.emit(now, seq, flags, buf))
    }

    /// Re-send one segment at `seq` (a retransmission): data up to an MSS, and the FIN if it
    /// is the next thing.
    fn emit_data_at<'b>(&mut self, now: Instant, seq: SeqNum, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        let avail = self.data_end().since(seq) as usize;
        let n = self.copy_payload(seq, avail.min(self.snd_mss), buf);
        let mut flags = TcpFlags::ACK;
        let with_fin = matches!(self.our_fin, Some(f) if f == seq + n && f.lt(self.snd_max));
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        if n == 0 && !with_fin {
            return None;
        }
        if self.rtx_deadline.is_none() {
            self.arm_rtx(now);
        }
        let buf = self.payload_slice(buf, n);
        Some(self.emit(now, seq, flags, buf))
    }

    /// Put `len` bytes of send data from `seq` into `buf`; returns how many. In external
    /// mode nothing is copied: the range is recorded for the caller (`take_tx_range`).
    fn copy_payload(&mut self, seq: SeqNum, len: usize, buf: &mut [u8]) -> usize {
        let offset = seq.since(self.data_start()) as usize;
        if self.tx_external {
            let n = len.min(self.tx_ext_len.saturating_sub(offset));
            self.tx_ext_out = (n > 0).then_some((offset, n));
            return n;
        }
        let len = len.min(buf.len());
        self.send_buf.peek(offset, &mut buf[..len])
    }

    /// The payload of a segment: `n` bytes copied into `buf`, or none in external mode (the
    /// caller supplies them).
    fn payload_slice<'b>(&self, buf: &'b mut [u8], n: usize) -> &'b mut [u8] {
        if self.tx_external {
            &mut buf[..0]
        } else {
            &mut buf[..n]
        }
    }

    /// Build a segment that carries an ACK (every segment after the SYN does) and note that
    /// the ACK went out.
    fn emit<'b>(&mut self, now: Instant, seq: SeqNum, flags: TcpFlags, payload: &'b mut [u8]) -> TcpRepr<'b> {
        let mut options = TcpOptions::default();
        if self.ts_enabled {
            options.timestamp = Some(Timestamp { tsval: self.ts_now(now), tsecr: self.ts_recent });
        }
        if self.sack_enabled && !self.assembler.is_empty() {
            // RFC 2018 §4: report what we hold beyond the gap, the newest block first.
            let mut blocks = [(0u32, 0u32); MAX_SACK_SEND];
            let n = self.assembler.sack_blocks(&mut blocks);
            let mut sack = SackBlocks::default();
            for &(l, r) in &blocks[..n] {
                sack.push((self.rcv_nxt + l).0, (self.rcv_nxt + r).0);
            }
            options.sack = sack;
        }
        let window = self.rcv_window();
        // RFC 7323 §2.3: the field is the window shifted right (rounding down; §2.4 allows the
        // edge to seem to move left by less than one unit); RCV.ADV is then exactly what the
        // peer was told, and the acceptability test uses no more window than that.
        let unit = 1u32 << self.rcv_wscale;
        let field = (window >> self.rcv_wscale).min(0xffff);
        self.rcv_adv = self.rcv_nxt + field * unit;
        self.after_ack_sent();
        self.stats.segs_out += 1;
        self.last_send = now;
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: self.rcv_nxt.0,
            flags,
            window: field as u16,
            urgent: 0,
            options,
            payload,
        }
    }

    fn after_ack_sent(&mut self) {
        self.dup_acks_owed = self.dup_acks_owed.saturating_sub(1);
        // More duplicates owed keep the ACK flag up; each costs one segment in.
        self.ack_now = self.dup_acks_owed > 0;
        self.unacked_bytes = 0;
        self.delack_deadline = None;
        self.last_ack_sent = self.rcv_nxt;
    }

    pub(super) fn persist_interval(&self) -> Duration {
        // RFC 1122 §4.2.2.17: probes back off exponentially; bounded by the maximum RTO.
        let base = self.rtt.rto();
        let shifted = base.saturating_mul(1u32 << self.persist_backoff.min(16));
        shifted.min(self.cfg.max_rto)
    }
}
