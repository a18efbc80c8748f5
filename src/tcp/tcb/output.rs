//! What the connection sends (RFC 9293 §3.10.7, §3.8.6): SYNs, retransmissions (from the
//! scoreboard), tail loss probes, new data, window probes, keep-alives and ACKs (with SACK
//! and DSACK blocks, and ECN's flags).

use super::*;

/// The longest burst pacing lets out at once, bytes: Linux's limit on a TSO burst
/// (`GSO_LEGACY_MAX_SIZE`, as `tcp_tso_autosize` and `bbr_tso_segs_goal` apply it).
const PACING_BURST_MAX: u64 = 64 * 1024;

/// Which rule a retransmission follows (for the counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rtx {
    /// The first unacknowledged segment after a timeout (RFC 6298 §5.4).
    Timeout,
    /// A segment marked lost (RFC 6675 NextSeg rule 1, with RACK's or RFC 6582's marks).
    Lost,
    /// RFC 6675 NextSeg rule 4: the rescue retransmission.
    Rescue,
    /// RFC 8985 §7.3: a tail loss probe resending the last segment.
    Probe,
}

/// A data segment chosen by `plan`: `len` payload bytes from `seq`, and the FIN after them.
#[derive(Clone, Copy)]
struct DataSeg {
    seq: SeqNum,
    len: usize,
    with_fin: bool,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    /// New data sent as a tail loss probe.
    ProbeNew,
    Rtx(Rtx),
}

/// What `poll_transmit` sends next.
enum Plan {
    Data(DataSeg),
    WindowProbe,
    Keepalive,
    Ack,
}

impl Tcb {
    /// The next segment to send, if any; its payload is copied into `payload_buf` (the
    /// caller's TX frame, after room for headers). Call until it returns `None`.
    pub fn poll_transmit<'b>(&mut self, now: Instant, payload_buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        let seg = self.next_segment(now, payload_buf);
        if seg.is_none() {
            // The output pass is over: the next new data starts a new burst.
            self.burst_new = 0;
        }
        seg
    }

    fn next_segment<'b>(&mut self, now: Instant, payload_buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        self.tx_ext_out = None;
        // The owner is sending: ACKs from here on are a new batch (`Tcb::enter_recovery`).
        self.batch_delivered = 0;
        self.ecn.last_ect = false;
        if let Some(rst) = self.reply_rst.take() {
            self.stats.rare().rsts_out += 1;
            self.stats.segs_out += 1;
            return Some(*rst);
        }
        if self.rst_now {
            // §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>; with the ACK field, and the timestamp
            // option when agreed, as Linux sends it (RFC 7323 §3.2: it SHOULD be on a reset).
            self.rst_now = false;
            self.stats.rare().rsts_out += 1;
            self.stats.segs_out += 1;
            let mut options = TcpOptions::default();
            if self.ts_enabled {
                options.timestamp = Some(Timestamp { tsval: self.ts_now(now), tsecr: self.ts_recent });
            }
            return Some(TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.snd_nxt.0,
                ack: self.rcv_nxt.0,
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                urgent: 0,
                options,
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
        let first = self.snd_nxt == self.iss;
        if first {
            // The first transmission is timed (Karn: a retransmitted SYN is not).
            self.syn_sent_at = Some(now);
        } else {
            self.syn_sent_at = None;
            self.stats.rare().retransmits += 1;
        }
        self.snd_nxt = self.iss + 1u32;
        self.arm_rtx(now);
        self.stats.segs_out += 1;
        self.last_send = now;
        let options = self.syn_options(now, is_syn_ack);
        // RFC 7323 §2.2: the window in a SYN is not scaled.
        let window = self.rx_room().min(0xffff) as u16;
        self.syn_window = window;
        let (mut flags, ack) = if is_syn_ack {
            self.rcv_adv = self.rcv_nxt + window as u32;
            self.after_ack_sent();
            (TcpFlags::SYN | TcpFlags::ACK, self.rcv_nxt.0)
        } else {
            (TcpFlags::SYN, 0)
        };
        // RFC 3168 §6.1.1: an ECN-setup SYN carries ECE and CWR; the SYN-ACK that agrees
        // carries ECE alone. A retransmitted SYN goes without, after `ecn_syn_retries` of
        // them (§6.1.1.1: a middlebox may drop ECN-setup SYNs; Linux falls back at once).
        let ecn_syn = first || self.retries <= self.cfg.ecn_syn_retries;
        if is_syn_ack && self.ecn.on {
            flags |= TcpFlags::ECE;
        } else if !is_syn_ack && ecn_syn && self.cfg.ecn == EcnMode::On {
            flags |= TcpFlags::ECE | TcpFlags::CWR;
        }
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
        // Decide first (no borrow of `buf`), then build the one segment chosen.
        let room = if self.tx_external { usize::MAX } else { buf.len() };
        match self.plan(now, room) {
            Some(Plan::Data(d)) => Some(self.build_data(now, d, buf)),
            Some(Plan::WindowProbe) => {
                // The byte at SND.UNA: a new one when nothing is in flight, else the probe
                // byte the peer has not taken yet, again. The persist timer, not the RTO,
                // paces probes.
                self.stats.rare().window_probes += 1;
                self.probing = true;
                let seq = self.snd_una;
                let n = self.copy_payload(seq, 1, buf);
                let end = seq + n;
                let tx = self.rate.on_send(now, self.snd_una == self.snd_nxt);
                if self.snd_nxt == seq {
                    self.sb.on_send(seq, end, now, tx);
                    self.snd_nxt = end;
                } else {
                    self.sb.on_retransmit(seq, end, now, tx);
                }
                let buf = self.payload_slice(buf, n);
                Some(self.emit(now, seq, TcpFlags::ACK | TcpFlags::PSH, buf))
            }
            Some(Plan::Keepalive) => {
                // Keep-alive probe (RFC 1122 §4.2.3.6): SEG.SEQ = SND.NXT - 1, no data, as
                // Linux does; the peer answers with an ACK.
                self.stats.rare().keepalive_probes += 1;
                let seq = self.snd_una - 1u32;
                Some(self.emit(now, seq, TcpFlags::ACK, &mut []))
            }
            Some(Plan::Ack) => {
                let seq = self.ack_seq();
                Some(self.emit(now, seq, TcpFlags::ACK, &mut []))
            }
            None => None,
        }
    }

    /// What to send next, in RFC 6675 NextSeg's order (RFC 8985 and RFC 6298 first).
    fn plan(&mut self, now: Instant, room: usize) -> Option<Plan> {
        let sending = matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
        );
        // RFC 6298 §5.4: the timer expired; resend the earliest segment not acknowledged,
        // whatever cwnd and the window say (into a zero window it is the probe, §3.8.6.1).
        if self.rto_head_now {
            self.rto_head_now = false;
            if let Some(&head) = self.sb.head() {
                if let Some(d) = self.plan_retransmit(head.start, head.end, Rtx::Timeout, room) {
                    return Some(Plan::Data(d));
                }
            }
        }
        // RFC 8985 §7.3: the tail loss probe.
        if self.tlp_now {
            self.tlp_now = false;
            if sending && self.snd_una != self.snd_nxt {
                if let Some(d) = self.plan_probe(now, room) {
                    return Some(Plan::Data(d));
                }
            }
        }
        // Pacing (when the controller asks for it) spaces what the ACK clock would send at
        // once; the timers' transmissions above and the window probe below go when due.
        let paced = self.pacing_allows(now);
        if sending && paced {
            // RFC 5682 §3.1 step 2b: after a timeout that may be spurious, new data first.
            if self.frto_send_new {
                if let Some(d) = self.plan_new_data(now, room, false) {
                    return Some(Plan::Data(d));
                }
                self.frto_send_new = false;
                if self.snd_nxt.le(self.phase_high()) {
                    // Nothing new could go: conventional recovery.
                    self.frto = false;
                }
            }
            // NextSeg rule 1: what is marked lost, as cwnd allows (nothing is, mostly: that
            // is asked first, as the cheaper question).
            if self.sb.pending_bytes() > 0 && self.cwnd_fits(self.snd_mss) {
                if let Some((start, end)) = self.sb.next_to_retransmit() {
                    if let Some(d) = self.plan_retransmit(start, end, Rtx::Lost, room) {
                        return Some(Plan::Data(d));
                    }
                }
            }
        }
        // Zero-window probe (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): one byte beyond the
        // window.
        if self.probe_now {
            self.probe_now = false;
            if self.snd_una.lt(self.data_end()) {
                return Some(Plan::WindowProbe);
            }
        }
        if sending && paced {
            // NextSeg rule 2: new data (and FIN).
            if let Some(d) = self.plan_new_data(now, room, false) {
                return Some(Plan::Data(d));
            }
            // NextSeg rule 4 (SACK only; RFC 6582 has none): once per recovery, when nothing
            // else may go, resend the highest segment the peer has said nothing about, so that a lost tail is not left to the
            // RTO. (Rule 3 — holes below the highest SACK that RACK has not called lost — is
            // left out: RACK waits on them only while they may be reordered, and resending
            // them then would be the spurious retransmission its window exists to avoid.)
            if let Phase::Recovery { high, rescued: false } = self.phase {
                if self.sack_enabled && self.cwnd_fits(self.snd_mss) && self.sb.pending_bytes() == 0 {
                    if let Some((start, end)) = self.sb.last_unknown() {
                        self.phase = Phase::Recovery { high, rescued: true };
                        let start = start.max(end - self.snd_mss.min(end.since(start) as usize) as u32);
                        if let Some(d) = self.plan_retransmit(start, end, Rtx::Rescue, room) {
                            return Some(Plan::Data(d));
                        }
                    }
                }
            }
        }
        if self.keepalive_now {
            self.keepalive_now = false;
            return Some(Plan::Keepalive);
        }
        self.ack_now.then_some(Plan::Ack)
    }

    /// Whether a segment of `len` bytes fits in cwnd beside what is in flight. cwnd counts
    /// whole segments, as Linux's does (it is in packets there): a window of 7.3 segments
    /// sends 7, never an eighth that overshoots it.
    fn cwnd_fits(&self, len: usize) -> bool {
        self.pipe() + len.clamp(1, self.snd_mss) <= self.cc.cwnd().max(self.snd_mss)
    }

    /// The recovery point of the current phase (SND.NXT when Open).
    fn phase_high(&self) -> SeqNum {
        match self.phase {
            Phase::Open => self.snd_nxt,
            Phase::Cwr { high } | Phase::Recovery { high, .. } | Phase::Loss { high } => high,
        }
    }

    /// The sequence number of a segment without data: SND.NXT, kept inside the peer's window
    /// as Linux does (tcp_acceptable_seq), so that the peer finds it acceptable (§3.10.7.4).
    /// A window that seems to have shrunk by less than one unit of the peer's scale is the
    /// peer's rounding (RFC 7323 §2.4), not a retraction: SND.NXT stays (Linux makes the same
    /// exception, measured in its own scale).
    fn ack_seq(&self) -> SeqNum {
        let wnd_end = self.snd_una + self.snd_wnd;
        if self.snd_nxt.le(wnd_end) || self.snd_nxt.since(wnd_end) < 1 << self.snd_wscale {
            self.snd_nxt
        } else {
            wnd_end.max(self.snd_una)
        }
    }

    /// New data (and FIN) from SND.NXT, if the windows and Nagle/SWS allow. `probe`: a tail
    /// loss probe, which may exceed cwnd by this one segment and ignores Nagle (RFC 8985 §7.3).
    fn plan_new_data(&mut self, now: Instant, room: usize, probe: bool) -> Option<DataSeg> {
        let data_end = self.data_end();
        let unsent = data_end.since(self.snd_nxt) as usize;
        let fin_pending = matches!(self.our_fin, Some(f) if self.snd_nxt.le(f));
        if unsent == 0 && !fin_pending {
            self.note_cwnd_use(false);
            self.note_app_limited();
            return None;
        }
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial
        // window.
        if self.snd_una == self.snd_nxt && self.cfg.slow_start_after_idle {
            let idle = now.saturating_duration_since(self.last_send);
            self.cc.on_idle_restart(idle, self.rtt.rto());
        }
        // The peer's window bounds sequence space; cwnd bounds what is in flight (RFC 6675
        // `pipe`), a segment at a time as in Linux: while pipe < cwnd one more may go.
        let rwnd_room = (self.snd_wnd as usize).saturating_sub(self.flight_size());
        let limit = self.tx_ext_new_limit;
        let len = unsent.min(rwnd_room).min(self.snd_mss).min(room).min(limit);
        let everything = len == unsent;
        // The end of one of the caller's frames (external mode, `limit_next_new`).
        let frame_end = len == limit;
        // Cut short by the peer's window: a probe or F-RTO's new data must not go as a
        // runt either (Linux's tcp_snd_wnd_test: the segment goes whole or waits), or its
        // remainder travels as a second runt and a partial ACK of it counts as less than
        // a segment delivered.
        let whole = len == unsent.min(self.snd_mss).min(limit);
        // RFC 1122 §4.2.3.4: send when (1) a full segment can go, (2) all queued data can go
        // and either nothing is unacknowledged or Nagle is off, or (3) at least half the
        // largest window the peer offered can go. A tail loss probe and F-RTO's new data
        // ignore Nagle (RFC 8985 §7.3, RFC 5682 §3.1 step 2b); so does a segment that ends
        // where one of the caller's frames does (Linux: only the last skb waits).
        // TCP_CORK and MSG_MORE hold a short segment even then (a FIN still goes), as
        // Linux's tcp_nagle_check; turning Nagle off or uncorking pushes it (`push_once`).
        let corked = self.cork || self.more_coming;
        let send_data = len > 0
            && (((probe || self.frto_send_new) && whole)
                || self.sws_override
                || self.push_once
                || len == self.snd_mss
                || frame_end
                || (everything && (fin_pending || (!corked && (!self.cfg.nagle || self.snd_una == self.snd_nxt))))
                || (!corked && (len as u32) >= self.max_snd_wnd / 2));
        let with_fin = fin_pending && everything && (len > 0 || unsent == 0);
        if !(send_data || (with_fin && unsent == 0)) {
            // Nothing can go and nothing is in flight, so no ACK will come to change that: arm
            // the persist timer. With a zero window it probes (RFC 9293 §3.8.6.1); with a
            // window too small to use it is RFC 1122 §4.2.3.4's override timeout, after which
            // what the window allows is sent — otherwise a lost window update deadlocks the
            // connection (found by tests/stack_sim.rs; Linux arms its probe timer the same way).
            if unsent > 0 && self.snd_una == self.snd_nxt && self.persist_deadline.is_none() {
                self.persist_deadline = Some(now + self.persist_interval());
            }
            self.note_cwnd_use(false);
            if unsent < self.snd_mss {
                self.note_app_limited();
            }
            return None;
        }
        // A bare FIN is not held back by cwnd: it adds nothing to the network's load, and a
        // close would otherwise wait a round trip (Linux's tcp_cwnd_test: "don't be strict
        // about the congestion window for the final FIN").
        let bare_fin = with_fin && len == 0;
        if !probe && !bare_fin && !self.cwnd_fits(len + usize::from(with_fin)) {
            self.note_cwnd_use(true);
            return None;
        }
        let tx = self.rate.snapshot(now, self.snd_una == self.snd_nxt);
        if !self.sb.can_send_new(self.snd_nxt, now, tx) {
            // The scoreboard is full (a bound of DESIGN habit 9): wait for ACKs.
            return None;
        }
        Some(DataSeg { seq: self.snd_nxt, len, with_fin, kind: if probe { Kind::ProbeNew } else { Kind::New } })
    }

    /// RFC 8985 §7.3: a tail loss probe — a new segment if the peer's window takes one, else
    /// the last segment sent, again.
    fn plan_probe(&mut self, now: Instant, room: usize) -> Option<DataSeg> {
        let unsent = self.data_end().since(self.snd_nxt) as usize;
        let has_new = unsent > 0 || matches!(self.our_fin, Some(f) if self.snd_nxt.le(f));
        // RFC 8985 §7.3: new data "if the receive window allows" — all of the segment.
        let window_ok = (self.snd_wnd as usize).saturating_sub(self.flight_size()) >= unsent.min(self.snd_mss).max(1);
        if has_new && window_ok {
            return self.plan_new_data(now, room, true);
        }
        // The last segment sent: one MSS back from SND.NXT, but no further back than the
        // scoreboard's last entry when that was sent on its own (a FIN after the data, say) —
        // Linux resends its last skb (tcp_send_loss_probe).
        let end = self.snd_nxt;
        let mut start = self.snd_una.max(end - self.snd_mss.min(self.flight_size()) as u32);
        if let Some(last) = self.sb.tail() {
            start = start.max(last.start);
        }
        self.plan_retransmit(start, end, Rtx::Probe, room)
    }

    /// A retransmission from `start` (up to `end`, one MSS, and what the peer's window takes —
    /// the first unacknowledged byte always may go), with the FIN if it is next.
    fn plan_retransmit(&self, start: SeqNum, end: SeqNum, why: Rtx, room: usize) -> Option<DataSeg> {
        let wnd_end = self.snd_una + self.snd_wnd;
        if start != self.snd_una && !start.lt(wnd_end) {
            return None;
        }
        let data_end = self.data_end();
        let mut len = (end.min(data_end).since(start) as usize).min(self.snd_mss).min(room);
        if start != self.snd_una {
            len = len.min(wnd_end.since(start) as usize);
        }
        let with_fin = matches!(self.our_fin, Some(f) if f.lt(self.snd_nxt) && f == start + len && f.lt(end));
        if len == 0 && !with_fin {
            return None;
        }
        Some(DataSeg { seq: start, len, with_fin, kind: Kind::Rtx(why) })
    }

    /// Build the data segment `plan` chose, and account for it.
    fn build_data<'b>(&mut self, now: Instant, d: DataSeg, buf: &'b mut [u8]) -> TcpRepr<'b> {
        let n = self.copy_payload(d.seq, d.len, buf);
        debug_assert_eq!(n, d.len, "planned payload not available");
        let data_end = self.data_end();
        let mut flags = TcpFlags::ACK;
        if n > 0 && d.seq + n == data_end && !self.tail_unpushed {
            flags |= TcpFlags::PSH; // the last of what the application wrote
        }
        if d.with_fin {
            flags |= TcpFlags::FIN;
        }
        let end = d.seq + n + (d.with_fin as u32);
        let len = end.since(d.seq) as usize;
        let tx = self.rate.on_send(now, self.snd_una == self.snd_nxt);
        match d.kind {
            Kind::New | Kind::ProbeNew => {
                if self.sws_override && n > 0 {
                    // Sent by the persist timer's override: Linux's tcp_write_wakeup sets PSH.
                    flags |= TcpFlags::PSH;
                }
                self.sws_override = false;
                if d.seq + n == data_end {
                    self.push_once = false;
                }
                self.sb.on_send(d.seq, end, now, tx);
                self.snd_nxt = end;
                self.note_sent(now, len);
                self.note_cwnd_use(!self.cwnd_fits(self.snd_mss));
                if self.rtx_deadline.is_none() {
                    self.arm_rtx(now);
                }
                if n > 0 && self.ecn.on {
                    // RFC 3168 §6.1.2: new data is ECN-capable, and the first after a
                    // reduction says so with CWR.
                    self.ecn.last_ect = true;
                    if self.ecn.send_cwr {
                        self.ecn.send_cwr = false;
                        flags |= TcpFlags::CWR;
                    }
                }
                self.stats.bytes_out += n as u64;
                // Linux's tcp_event_data_sent: data that answers the peer's within the
                // delayed-ACK time makes the exchange interactive (pingpong): its ACKs ride on
                // the replies.
                if n > 0 && self.last_data_in.is_some_and(|t| now.saturating_duration_since(t) < self.cfg.delayed_ack) {
                    self.pingpong = true;
                }
                // Linux sends new data in TSO packets of `tso_segs` segments and forces PSH on
                // every one of two or more (tcp_transmit_skb, "tcp: force a PSH flag on TSO
                // packets", 051ba67447de1: a hint that flushes the receiver's GRO); a lone
                // segment goes without. xtcp sends the segments one by one and marks the last
                // of each such group: the same flags on the wire, which packetdrill's gtests
                // hold, and the same GRO flushes at a Linux receiver.
                self.burst_new = self.burst_new.saturating_add(1);
                if n > 0 && self.burst_new >= 2 {
                    // (The first of a pass is never a group's last: no sizing needed.)
                    let k = self.tso_segs();
                    let pos = (usize::from(self.burst_new) - 1) % k + 1;
                    if pos >= 2 && (pos == k || !self.more_new_data_fits(now)) {
                        flags |= TcpFlags::PSH;
                    }
                }
                if d.kind == Kind::ProbeNew {
                    self.stats.rare().tlp_probes += 1;
                    self.tlp = Tlp { end_seq: Some(self.snd_nxt), is_retrans: false };
                    self.arm_rtx(now);
                } else {
                    // RFC 8985 §7.2: after sending new data, (re)schedule the probe.
                    self.schedule_probe(now);
                }
            }
            Kind::Rtx(why) => {
                self.sb.on_retransmit(d.seq, end, now, tx);
                self.stats.rare().retransmits += 1;
                match why {
                    Rtx::Rescue => self.stats.rare().rescue_retransmits += 1,
                    Rtx::Lost if matches!(self.phase, Phase::Recovery { .. }) => {
                        self.stats.rare().fast_retransmits += 1
                    }
                    _ => {}
                }
                let ts = self.ts_now(now);
                if let Some(u) = self.undo.as_mut() {
                    u.retrans = u.retrans.saturating_add(1);
                    u.first_rtx_ts.get_or_insert(ts);
                }
                self.note_sent(now, len);
                if why == Rtx::Probe {
                    // RFC 8985 §7.3: the probe is out; the RTO guards it.
                    self.stats.rare().tlp_probes += 1;
                    self.tlp = Tlp { end_seq: Some(self.snd_nxt), is_retrans: true };
                    self.arm_rtx(now);
                } else if self.rtx_deadline.is_none() || (d.seq == self.snd_una && why != Rtx::Timeout) {
                    // RFC 6298 §5.1; and Linux restarts the RTO when it resends the first
                    // segment.
                    self.arm_rtx(now);
                }
            }
        }
        let buf = self.payload_slice(buf, n);
        self.emit(now, d.seq, flags, buf)
    }

    /// Segments per TSO packet as Linux sizes them (tcp_tso_autosize): a millisecond at the
    /// pacing rate (`sk_pacing_shift` 10), at least `tcp_min_tso_segs` (2), at most 64 KiB.
    /// Linux paces every connection's TSO sizing by `tcp_update_pacing_rate` — cwnd/SRTT at
    /// 200 % in slow start, 120 % after — whether or not the controller paces; a controller
    /// that paces gives its own rate.
    fn tso_segs(&self) -> usize {
        let mss = self.snd_mss.max(1) as u64;
        let max = (PACING_BURST_MAX / mss).max(2);
        let rate = match (self.cc.pacing_rate(), self.rtt.srtt()) {
            (Some(r), _) => r,
            (None, Some(srtt)) => {
                let cwnd = self.cc.cwnd().max(self.flight_size()) as u64;
                let pct = if self.cc.cwnd() < self.cc.ssthresh() / 2 { 200 } else { 120 };
                let us = (srtt.as_micros() as u64).max(1);
                cwnd.saturating_mul(pct * 10_000) / us
            }
            // No RTT yet: Linux's rate is unbounded, its packets as large as allowed.
            (None, None) => u64::MAX,
        };
        let min = u64::from(self.cfg.min_tso_segs.max(1)).min(max);
        let segs = ((rate >> 10) / mss).clamp(min, max);
        // tcp_cwnd_test: a packet takes at most half of cwnd, "for better scheduling, ensure
        // we have at least 2 GSO packets in flight".
        let half = (self.cc.cwnd() as u64 / mss / 2).max(1);
        segs.min(half) as usize
    }

    /// Whether another segment of new data could follow the one just sent in this pass: data
    /// waits, the peer's window, cwnd and pacing take a segment, and Nagle would not hold it
    /// (`plan_new_data`'s gates, without its side effects).
    fn more_new_data_fits(&self, now: Instant) -> bool {
        let unsent = self.data_end().since(self.snd_nxt) as usize;
        let len = unsent.min(self.snd_mss);
        let rwnd_room = (self.snd_wnd as usize).saturating_sub(self.flight_size());
        let nagle_holds = len < self.snd_mss && self.cfg.nagle && self.snd_una != self.snd_nxt;
        let paced_out = self.cc.pacing_rate().is_some_and(|r| self.pace_next > now + self.pace_slack(r));
        len > 0 && rwnd_room >= len && self.cwnd_fits(len) && !nagle_holds && !paced_out
    }

    /// `n` bytes of sequence space went out: PRR counts them during a reduction.
    fn note_sent(&mut self, now: Instant, n: usize) {
        if matches!(self.phase, Phase::Recovery { .. } | Phase::Cwr { .. }) {
            self.prr.on_sent(n);
        }
        if let Some(rate) = self.cc.pacing_rate() {
            // The next segment's earliest departure at the pacing rate (Linux's
            // tcp_update_skb_after_send); an idle sender starts from now, not from the past.
            let gap = Duration::from_micros((n as u64).saturating_mul(1_000_000) / rate.max(1));
            self.pace_next = self.pace_next.max(now) + gap;
        }
    }

    /// Whether pacing lets a data segment go now; if not, arms the timer for when it will.
    fn pacing_allows(&mut self, now: Instant) -> bool {
        let Some(rate) = self.cc.pacing_rate() else { return true };
        let slack = self.pace_slack(rate);
        if self.pace_next <= now + slack {
            self.pace_deadline = None;
            return true;
        }
        self.pace_deadline = Some(self.pace_next - slack);
        false
    }

    /// How far ahead of the pacing schedule a segment may leave. Linux sends a burst of
    /// about a millisecond at the pacing rate (`sk_pacing_shift` 10), at most 64 KiB and at
    /// least two segments, at the time the schedule says, then waits for it on a
    /// high-resolution timer (`tcp_tso_autosize`, `tcp_pacing_check`). The same here, except
    /// that the bursts may also run one timer granularity ahead (`timer_granularity`):
    /// a pacing timer that fires that late must not cost rate. Any more lets the sender run
    /// that far ahead of the schedule for good, which adds as much standing queue on the
    /// path (at 1 ms and 350 MB/s, 240 segments: five times what the path holds on a veth
    /// link).
    fn pace_slack(&self, rate: u64) -> Duration {
        let rate = rate.max(1);
        let burst = (rate >> 10).clamp(2 * self.snd_mss as u64, PACING_BURST_MAX.max(2 * self.snd_mss as u64));
        let burst = Duration::from_micros(burst.saturating_mul(1_000_000) / rate);
        burst.max(self.cfg.timer_granularity)
    }

    /// The sender has nothing (or less than a segment) to send while cwnd has room and no
    /// loss waits for repair: delivery-rate samples until this flight is delivered show the
    /// application's rate, not the path's (draft-cheng-iccrg-delivery-rate-estimation §3.4,
    /// Linux's tcp_rate_check_app_limited).
    fn note_app_limited(&mut self) {
        if self.sb.pending_bytes() == 0 && self.cwnd_fits(self.snd_mss) {
            self.rate.on_app_limited(self.pipe());
        }
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
    fn emit<'b>(&mut self, now: Instant, seq: SeqNum, mut flags: TcpFlags, payload: &'b mut [u8]) -> TcpRepr<'b> {
        let mut options = TcpOptions::default();
        if self.ts_enabled {
            options.timestamp = Some(Timestamp { tsval: self.ts_now(now), tsecr: self.ts_recent });
        }
        if self.sack_enabled {
            let mut sack = SackBlocks::default();
            // RFC 2883 §4: a duplicate just received is reported first, once.
            if let Some((l, r)) = self.dsack.take() {
                sack.push(l.0, r.0);
                self.stats.rare().dsacks_out += 1;
            }
            if !self.assembler.is_empty() {
                // RFC 2018 §4: report what we hold beyond the gap, the newest block first.
                let max = if self.ts_enabled { MAX_SACK_SEND_WITH_TS } else { MAX_SACK_SEND };
                let mut blocks = [(0u32, 0u32); MAX_SACK_SEND];
                let n = self.assembler.sack_blocks(&mut blocks[..max]);
                for &(l, r) in &blocks[..n] {
                    if sack.len() < max {
                        sack.push((self.rcv_nxt + l).0, (self.rcv_nxt + r).0);
                    }
                }
            }
            options.sack = sack;
        }
        // RFC 3168 §6.1.3: echo congestion on every ACK until the sender says CWR.
        if self.ecn.on && self.ecn.echo {
            flags |= TcpFlags::ECE;
        }
        let window = self.rcv_window();
        // RFC 7323 §2.3: the field is the window shifted right. Rounding down would move the
        // right edge left by up to one unit whenever RCV.NXT advanced by a length that is not
        // a multiple of it, and those steps add up: the peer's SND.UNA + SND.WND falls behind
        // its SND.NXT, it keeps its ACKs inside that stale window, and we refuse them
        // (whole-stack seed 3091870 deadlocked so). So the window we announced before is
        // rounded up instead — RFC 9293 §3.8.6.2.2: a receiver SHOULD NOT shrink the window
        // (SHLD-14) — as Linux's tcp_select_window (ALIGN(cur_win, 1 << rcv_wscale)). RCV.ADV
        // is then exactly what the peer was told; receive_data trims to the room we have.
        let unit = 1u32 << self.rcv_wscale;
        let announced = self.rcv_adv.since(self.rcv_nxt);
        let field = (window >> self.rcv_wscale).max(announced.div_ceil(unit)).min(0xffff);
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
