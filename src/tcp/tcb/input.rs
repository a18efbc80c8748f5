//! Segment arrival (RFC 9293 §3.10.7): the acceptability test, RST, SYN, ACK, data and FIN.

use super::*;

/// What the layers around TCP know about a received segment besides its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxInfo {
    /// The IP header carried Congestion Experienced (RFC 3168 §5: ECN field 0b11).
    pub ce: bool,
    /// The caller may keep the segment's in-order payload where it lies (zero-copy receive:
    /// see [`Tcb::on_segment_lending`]).
    pub may_lend: bool,
}

impl Tcb {
    /// Process one segment from `from` (RFC 9293 §3.10.7). Segments that the RFC says to
    /// drop are dropped here (and counted); replies are queued for `poll_transmit`.
    pub fn on_segment(&mut self, now: Instant, from: impl Into<SocketAddr>, seg: &TcpRepr<'_>) {
        self.on_segment_with(now, from, seg, RxInfo::default());
    }

    /// [`Tcb::on_segment`] with what the IP layer saw (ECN) and whether the payload may be
    /// lent; returns what of it was lent (as [`Tcb::on_segment_lending`]).
    pub fn on_segment_with(
        &mut self,
        now: Instant,
        from: impl Into<SocketAddr>,
        seg: &TcpRepr<'_>,
        info: RxInfo,
    ) -> Option<(usize, usize)> {
        let from = from.into();
        self.rx_lend = info.may_lend;
        self.rx_lent = None;
        self.rx_ce = info.ce;
        self.segment_arrives(now, from, seg);
        self.rx_lend = false;
        self.rx_ce = false;
        self.rx_lent.take()
    }

    fn segment_arrives(&mut self, now: Instant, from: SocketAddr, seg: &TcpRepr<'_>) {
        self.stats.segs_in += 1;
        match self.state {
            State::Closed => {}
            State::Listen => self.on_segment_listen(now, from, seg),
            State::SynSent => self.on_segment_syn_sent(now, seg),
            _ => self.on_segment_synchronized(now, seg),
        }
    }

    /// §3.10.7.2: LISTEN.
    fn on_segment_listen(&mut self, now: Instant, from: SocketAddr, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return; // "An incoming RST segment could not be valid ... ignore it."
        }
        if f.contains(TcpFlags::ACK) {
            // "Any acknowledgment is bad if it arrives on a connection still in the LISTEN
            // state. An acceptable reset segment should be formed": <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst = reset_for(seg).map(Box::new);
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        self.remote = from;
        let iss = match &self.isn {
            Some(g) => g.isn(now, self.local, from),
            None => SeqNum(0),
        };
        self.accept_syn(now, iss, seg);
    }

    /// §3.10.7.2, the SYN part: SYN-RECEIVED, SYN-ACK queued.
    fn accept_syn(&mut self, now: Instant, iss: SeqNum, seg: &TcpRepr<'_>) {
        self.irs = SeqNum(seg.seq);
        self.rcv_nxt = self.irs + 1u32;
        // Nothing advertised yet: the right edge starts at RCV.NXT.
        self.rcv_adv = self.rcv_nxt;
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        self.ts_offset = Tcb::ts_offset_for(iss);
        self.negotiate(&seg.options);
        // RFC 3168 §6.1.1: an ECN-setup SYN carries both ECE and CWR; we agree unless told
        // not to.
        self.ecn.on = self.cfg.ecn != EcnMode::Off && seg.flags.contains(TcpFlags::ECE | TcpFlags::CWR);
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = iss;
        self.state = State::SynReceived;
        self.send_syn = true;
        self.last_send = now;
        // Data on a SYN is not accepted (no TFO): the peer sends it again after the handshake.
    }

    /// Create a TCB straight in SYN-RECEIVED for a SYN that reached a listener (the stack's
    /// listen queue does this instead of keeping one TCB per listener in LISTEN).
    pub fn from_syn(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
        now: Instant,
    ) -> Tcb {
        Tcb::from_syn_in(cfg, local, remote, iss, seg, now, None)
    }

    /// `from_syn` with buffers that were used before (see [`Tcb::connect_in`]).
    pub fn from_syn_in(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local.into(), remote.into(), State::Listen, now, bufs);
        t.passive = true;
        t.stats.segs_in = 1;
        t.accept_syn(now, iss, seg);
        t
    }

    /// A connection from a SYN cookie (RFC 4987 §3.6): `syn` stands for the SYN the cookie
    /// encoded ([`crate::tcp::cookie::CookieSyn::syn`]), and the SYN-ACK with ISN `iss` is
    /// taken as sent, unrecorded and untimed, as Linux's cookie_v4_check builds its child. The
    /// caller then hands it the ACK that carried the cookie, which completes the handshake.
    pub fn from_cookie_in(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNum,
        syn: &TcpRepr<'_>,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let mut t = Tcb::from_syn_in(cfg, local, remote, iss, syn, now, bufs);
        // What emit_syn would have recorded for the SYN-ACK the cookie path sent.
        t.send_syn = false;
        t.snd_nxt = iss + 1u32;
        t.syn_window = Tcb::initial_window(&t.cfg);
        t.rcv_adv = t.rcv_nxt + t.syn_window as u32;
        t.stats.segs_in = 0;
        t
    }

    /// §3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        let ack = SeqNum(seg.ack);
        // First: the ACK must acknowledge our SYN.
        let ack_ok = f.contains(TcpFlags::ACK) && self.iss.lt(ack) && ack.le(self.snd_nxt);
        if f.contains(TcpFlags::ACK) && !ack_ok {
            // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set,
            // if so drop the segment)": <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst = reset_for(seg).map(Box::new);
            return;
        }
        // Second: RST. RFC 5961 §3.2: in SYN-SENT a reset is acceptable if it acknowledges the
        // SYN.
        if f.contains(TcpFlags::RST) {
            if ack_ok {
                self.enter_closed(CloseReason::Refused);
            }
            return;
        }
        // Fourth: SYN.
        if !f.contains(TcpFlags::SYN) {
            return; // "If neither of the SYN or RST bits is set, then drop the segment."
        }
        self.irs = SeqNum(seg.seq);
        self.rcv_nxt = self.irs + 1u32;
        // What our SYN advertised is the window until our next segment says otherwise.
        self.rcv_adv = self.rcv_nxt + self.syn_window as u32;
        self.negotiate(&seg.options);
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = ack;
        // RFC 3168 §6.1.1: we asked for ECN, and a SYN-ACK with ECE but not CWR agrees.
        self.ecn.on = self.cfg.ecn == EcnMode::On && ack_ok && f.contains(TcpFlags::ECE) && !f.contains(TcpFlags::CWR);
        if ack_ok {
            // Our SYN is acknowledged: ESTABLISHED, and ACK the peer's SYN.
            self.snd_una = ack;
            self.on_syn_rtt_sample(now);
            self.retries = 0;
            self.rtx_deadline = None;
            self.send_syn = false;
            self.established(now);
            self.ack_now = true;
            // "If there are other controls or text in the segment, then continue processing
            // at the sixth step under Section 3.10.7.4": the SYN-ACK's text and FIN are taken
            // (Linux drops such text unless it is Fast Open's; FreeBSD takes it).
            let mut fin = f.contains(TcpFlags::FIN);
            if !seg.payload.is_empty() {
                fin &= self.receive_data(now, self.rcv_nxt, seg.payload, 0);
            }
            if fin {
                self.on_fin(now);
            }
        } else {
            // Simultaneous open (§3.5, figure 8): SYN-RECEIVED, send SYN,ACK. Both sides sent
            // an ECN-setup SYN if both asked (RFC 3168 §6.1.1).
            self.ecn.on = self.cfg.ecn == EcnMode::On && f.contains(TcpFlags::ECE | TcpFlags::CWR);
            self.state = State::SynReceived;
            self.send_syn = true;
            // "If there are other controls or text in the segment, queue them for processing
            // after the ESTABLISHED state has been reached": the text waits past the end of
            // the receive buffer (as much as the window we offered holds), unacknowledged,
            // and the FIN with it (`take_syn_text`).
            let n = seg.payload.len().min(self.rx_room()).min(self.syn_window as usize);
            self.recv_buf.write_after_end(0, &seg.payload[..n]);
            self.syn_text = n as u32;
            self.syn_fin = f.contains(TcpFlags::FIN) && n == seg.payload.len();
        }
    }

    /// The handshake of a simultaneous open completed: the text (and FIN) of the peer's SYN,
    /// queued in SYN-SENT, is processed now (RFC 9293 §3.10.7.3), before the segment that
    /// completed the handshake, which follows it in sequence.
    fn take_syn_text(&mut self, now: Instant) {
        let n = core::mem::take(&mut self.syn_text) as usize;
        if n > 0 {
            self.recv_buf.commit(n);
            self.rcv_nxt += n;
            self.stats.bytes_in += n as u64;
            self.events |= EV_READABLE;
            self.ack_in_order(now, n);
        }
        if core::mem::take(&mut self.syn_fin) {
            self.on_fin(now);
        }
    }

    /// The handshake's RTT sample (RFC 6298 §3: only from a SYN sent once).
    fn on_syn_rtt_sample(&mut self, now: Instant) {
        if let Some(t) = self.syn_sent_at.take() {
            let r = now.saturating_duration_since(t);
            self.rtt.sample(r);
            self.rack.sample_min_rtt(now, r);
            self.cc.on_handshake_rtt(now, r);
        }
    }

    fn established(&mut self, now: Instant) {
        self.state = State::Established;
        self.events |= EV_CONNECTED;
        self.restart_keepalive(now);
        if self.our_fin.is_some() {
            // shutdown() was called in SYN-RECEIVED: the FIN goes out now (§3.10.4).
            self.state = State::FinWait1;
        }
    }

    /// §3.10.7.4: every state from SYN-RECEIVED on.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        // MSG_MORE held the tail only for the write's own push; what the peer's segment lets
        // go is Nagle's to decide (Linux's tcp_data_snd_check uses the socket's setting).
        self.more_coming = false;
        let f = seg.flags;
        let mut seq = SeqNum(seg.seq);
        let seg_len = seg.segment_len() as u32;
        // RCV.WND: the window we advertised (§3.10.7.4 tests against it, not our free space).
        let rcv_wnd = self.rcv_adv.since(self.rcv_nxt);

        // SYN-RECEIVED and the peer's SYN again (our SYN-ACK was lost): send the SYN-ACK again,
        // as Linux does, rather than the bare ACK the acceptability test below would give.
        if self.state == State::SynReceived
            && f.contains(TcpFlags::SYN)
            && !f.contains(TcpFlags::ACK)
            && seq == self.irs
        {
            self.send_syn = true;
            return;
        }

        // Simultaneous open (§3.5 figure 8, line 6): the peer's SYN,ACK repeats its SYN, which
        // the acceptability test would refuse (SEG.SEQ < RCV.NXT), but its ACK completes our
        // handshake. Take it as the ACK it carries, as Linux does (tcp_validate_incoming).
        if self.state == State::SynReceived
            && f.contains(TcpFlags::SYN | TcpFlags::ACK)
            && seq == self.irs
            && SeqNum(seg.ack) == self.snd_nxt
        {
            let ack_only = TcpRepr { seq: self.rcv_nxt.0, flags: f - TcpFlags::SYN, payload: &[], ..*seg };
            return self.on_segment_synchronized(now, &ack_only);
        }

        // RFC 7323 §5.3 (PAWS): a segment whose timestamp is older than TS.Recent is a
        // duplicate from an earlier incarnation of the sequence space.
        if self.ts_enabled && !f.contains(TcpFlags::RST) {
            if let Some(ts) = seg.options.timestamp {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.stats.rare().unacceptable_in += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }

        // First: sequence number (§3.10.7.4, the four cases of the acceptability table).
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd)
                    || (seq + (seg_len - 1)).in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd)
            }
        };
        if !acceptable {
            // RFC 5961 §3.2: a reset out of the window is dropped without a word.
            if !f.contains(TcpFlags::RST) {
                self.stats.rare().unacceptable_in += 1;
                // RFC 5961 §4.2: a SYN gets a challenge ACK whatever its sequence number
                // (rate-limited, §7), as Linux's syn_challenge. TIME-WAIT keeps its own rules.
                if f.contains(TcpFlags::SYN) && self.state != State::TimeWait {
                    self.challenge_ack(now);
                    return;
                }
                // "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>", then drop. (Linux sends at most one
                // per 500 ms for data-less segments, tcp_invalid_ratelimit; doing so here
                // stalled whole-stack seed 2066487 behind a zero window until it timed out,
                // so every one is answered, coalesced to one ACK per poll.)
                self.ack_now = true;
                // RFC 2883 §4.1.1: data received twice is reported in a DSACK block.
                let end = seq + seg.payload.len();
                if self.sack_enabled && !seg.payload.is_empty() && end.le(self.rcv_nxt) {
                    self.dsack = Some((seq, end));
                }
                // TIME-WAIT: a retransmitted FIN restarts the 2 MSL timeout (§3.10.7.4, eighth).
                if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                    self.close_deadline = Some(now + self.cfg.time_wait);
                }
            }
            return;
        }

        // Second: RST. RFC 5961 §3.2: reset only on an exact match of RCV.NXT; anywhere else in
        // the window, a challenge ACK.
        if f.contains(TcpFlags::RST) {
            if seq != self.rcv_nxt {
                self.challenge_ack(now);
                return;
            }
            match self.state {
                State::SynReceived if self.passive => self.return_to_listen(now),
                State::SynReceived => self.enter_closed(CloseReason::Refused),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    self.enter_closed(CloseReason::Reset)
                }
                // CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state, delete the TCB, and
                // return", with no "connection reset" signal as in the states above. Both
                // sides had closed; this is the reset a peer past its TIME-WAIT sends to a
                // FIN retransmitted after its ACK was lost. (Linux and FreeBSD report
                // ECONNRESET on a socket still held; DEVIATIONS.md.)
                _ => self.enter_closed(CloseReason::Normal),
            }
            return;
        }

        // Fourth: SYN. RFC 5961 §4.2 (and RFC 9293 §3.10.7.4): challenge ACK in any
        // synchronized state, whatever the sequence number.
        if f.contains(TcpFlags::SYN) {
            if self.state == State::SynReceived && self.passive {
                self.return_to_listen(now);
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // Fifth: ACK.
        if !f.contains(TcpFlags::ACK) {
            return; // "if the ACK bit is off, drop the segment and return"
        }
        let ack = SeqNum(seg.ack);
        if self.state == State::SynReceived {
            if self.snd_una.lt(ack) && ack.le(self.snd_nxt) {
                // The handshake completes.
                self.snd_una = ack;
                self.on_syn_rtt_sample(now);
                self.retries = 0;
                self.rtx_deadline = None;
                self.send_syn = false;
                self.snd_wnd = (seg.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.established(now);
                self.take_syn_text(now);
            } else {
                // "If the segment acknowledgment is not acceptable, form a reset segment
                // <SEQ=SEG.ACK><CTL=RST> and send it."
                self.reply_rst = reset_for(seg).map(Box::new);
                return;
            }
        }
        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        let oldest_ok = self.snd_una - self.max_snd_wnd;
        if ack.gt(self.snd_nxt) || ack.lt(oldest_ok) {
            self.ack_now = true;
            return;
        }
        if self.ts_enabled {
            // RFC 7323 §4.3: take TS.Recent from a segment that covers Last.ACK.sent.
            if let Some(ts) = seg.options.timestamp {
                if seq.le(self.last_ack_sent) {
                    self.ts_recent = ts.tsval;
                }
            }
        }
        self.process_ack(now, seq, ack, seg);
        if self.state == State::Closed {
            return;
        }

        // Any acceptable segment shows the peer is alive.
        self.restart_keepalive(now);

        // Trim what was already received (§3.10.7.4: "segments with higher beginning sequence
        // numbers may be held ... trimmed to the window").
        let mut payload = seg.payload;
        let mut fin = f.contains(TcpFlags::FIN);
        if seq.lt(self.rcv_nxt) {
            let dup = self.rcv_nxt.since(seq) as usize;
            if dup >= payload.len() {
                payload = &[];
                // A duplicate FIN (at seq + len) is still a FIN to re-acknowledge.
                if fin && (seq + seg.payload.len()).lt(self.rcv_nxt) {
                    fin = false;
                }
            } else {
                payload = &payload[dup..];
            }
            if self.sack_enabled && !seg.payload.is_empty() {
                // RFC 2883 §4.1.2: the part received before.
                self.dsack = Some((seq, self.rcv_nxt.min(seq + seg.payload.len())));
            }
            seq = self.rcv_nxt;
            self.ack_now = true; // a (partial) duplicate: tell the peer where we are
        }

        // RFC 3168 §6.1.3: a CE mark on data is echoed (ECE on every ACK) until the sender
        // answers with CWR; the mark is news worth an immediate ACK (Linux's quick ACK).
        if self.ecn.on && !seg.payload.is_empty() {
            if f.contains(TcpFlags::CWR) {
                self.ecn.echo = false;
            }
            if self.rx_ce {
                self.stats.rare().ecn_ce_in += 1;
                if !self.ecn.echo {
                    self.ack_now = true;
                }
                self.ecn.echo = true;
            }
        }

        // Seventh: segment text.
        match self.state {
            // After close() nobody will read: new data is answered with a reset, so the peer
            // learns it was not consumed (RFC 9293 §3.10.4 leaves room; RFC 2525 §2.17; Linux
            // resets an orphaned socket that receives data).
            State::FinWait1 | State::FinWait2 if self.app_closed && !payload.is_empty() => {
                // The reset the segment itself calls for (§3.10.7.1: <SEQ=SEG.ACK><CTL=RST>),
                // as Linux answers it.
                self.reply_rst = reset_for(seg).map(Box::new);
                self.enter_closed(CloseReason::Aborted);
                return;
            }
            State::Established | State::FinWait1 | State::FinWait2 if !payload.is_empty() => {
                let trimmed = seg.payload.len() - payload.len();
                fin &= self.receive_data(now, seq, payload, trimmed);
            }
            // §3.10.7.4 seventh: after the peer's FIN, text is ignored.
            _ => {}
        }

        // Eighth: FIN.
        if fin {
            let fin_seq = seq + payload.len();
            if fin_seq == self.rcv_nxt {
                self.on_fin(now);
            } else if fin_seq.gt(self.rcv_nxt) && self.state != State::TimeWait {
                // FIN ahead of missing data: processed when the gap fills.
                self.peer_fin = Some(fin_seq);
                self.ack_now = true;
            }
        }
    }

    /// Put payload at `seq` (>= RCV.NXT, inside the window) into the receive buffer. Returns
    /// false if it was dropped at the out-of-order bound (then a FIN with it is dropped too).
    /// `trimmed`: bytes cut from the front of the segment's payload (already received).
    fn receive_data(&mut self, now: Instant, seq: SeqNum, payload: &[u8], trimmed: usize) -> bool {
        let offset = seq.since(self.rcv_nxt) as usize;
        // Trim to the room we have (the window we advertised never exceeds it).
        let room = self.rx_room().saturating_sub(offset);
        let payload = &payload[..payload.len().min(room)];
        if payload.is_empty() {
            self.ack_now = true;
            return false;
        }
        let had_holes = !self.assembler.is_empty();
        if self.rx_lend && offset == 0 && !had_holes {
            // In order with nothing parked after it: the caller keeps the bytes where they
            // are. RCV.NXT advances exactly as if they had been copied.
            self.rx_lent = Some((trimmed, payload.len()));
            self.rx_external += payload.len();
            self.rcv_nxt += payload.len();
            self.events |= EV_READABLE;
        } else if offset == 0 && !had_holes {
            // In order with nothing parked: straight into the ring (what the assembler would
            // do with a range that starts at 0, without it).
            let n = self.recv_buf.write_after_end(0, payload);
            self.recv_buf.commit(n);
            self.rcv_nxt += n;
            self.events |= EV_READABLE;
        } else {
            // RFC 2883: report data received twice in a D-SACK block, the duplicate part only
            // when the segment is partly new (§3, "the first SACK block ... the contiguous
            // block of duplicate data"): a segment wholly held out of order already
            // (§4.1.3), or one that also covers held data (as Linux's tcp_dsack_extend when
            // its out-of-order queue is merged).
            if self.sack_enabled && self.dsack.is_none() {
                if let Some((l, r)) = self.assembler.first_overlap(offset as u32, payload.len() as u32) {
                    self.dsack = Some((self.rcv_nxt + l, self.rcv_nxt + r));
                }
            }
            if self.assembler.add(offset as u32, payload.len() as u32).is_err() {
                // At the bound: drop, count, and let the ACK tell the peer what we have.
                self.stats.rare().ooo_limit_drops += 1;
                self.ack_now = true;
                return false;
            }
            self.recv_buf.write_after_end(offset, payload);
            let ready = self.assembler.take_front() as usize;
            if ready > 0 {
                self.recv_buf.commit(ready);
                self.rcv_nxt += ready;
                self.events |= EV_READABLE;
            }
        }
        self.stats.bytes_in += payload.len() as u64;
        if offset > 0 {
            // RFC 5681 §4.2: an out-of-order segment is ACKed at once (a duplicate ACK). Each
            // one gets its own, even when a burst of them is processed before we transmit: the
            // sender counts duplicates to detect the loss (RFC 5681 §3.2).
            self.stats.rare().out_of_order_in += 1;
            self.ack_now = true;
            self.dup_acks_owed = self.dup_acks_owed.saturating_add(1);
        } else if had_holes {
            // RFC 5681 §4.2: a segment that fills (part of) a gap is ACKed at once.
            self.ack_now = true;
        } else {
            self.ack_in_order(now, payload.len());
        }
        // A FIN parked ahead of the gap is now in order?
        if let Some(fs) = self.peer_fin {
            if fs == self.rcv_nxt {
                self.peer_fin = None;
                self.on_fin(now);
            }
        }
        true
    }

    /// `len` bytes arrived in order, behind no gap. RFC 1122 §4.2.3.2 / RFC 5681 §4.2: ACK at
    /// least every second full-sized segment, otherwise within the delayed-ACK time. Counted
    /// in bytes, as Linux does: more than one MSS unacknowledged (two full segments, or one
    /// larger than the MSS, as a coalesced one is) is ACKed at once.
    fn ack_in_order(&mut self, now: Instant, len: usize) {
        self.unacked_bytes += len;
        let quick = self.note_data_in(now);
        if self.unacked_bytes > self.snd_mss || quick {
            self.ack_now = true;
            self.quick_acks = self.quick_acks.saturating_sub(1);
        } else if self.delack_deadline.is_none() {
            self.delack_deadline = Some(now + self.cfg.delayed_ack);
        }
    }

    /// In-order data arrived: Linux's quick-ACK bookkeeping (tcp_event_data_recv). The first
    /// data, or data after an idle time longer than the RTO, enters quick-ACK mode for
    /// window / (2 · MSS) segments, at least 2 and at most 16 (tcp_incr_quickack). Returns
    /// whether this segment is to be ACKed at once.
    fn note_data_in(&mut self, now: Instant) -> bool {
        if !self.cfg.quick_ack {
            return false;
        }
        let idle = self.last_data_in.is_none_or(|t| now.saturating_duration_since(t) > self.rtt.rto());
        if idle {
            let n = (self.rx_room() / (2 * self.snd_mss.max(1))).clamp(2, 16) as u8;
            self.quick_acks = self.quick_acks.max(n);
        }
        self.last_data_in = Some(now);
        self.quick_acks > 0 && !self.pingpong
    }

    /// §3.10.7.4, eighth: the peer's FIN, in order.
    fn on_fin(&mut self, now: Instant) {
        if self.fin_received {
            // A retransmitted FIN: ACK it again; in TIME-WAIT restart the 2 MSL timeout.
            self.ack_now = true;
            if self.state == State::TimeWait {
                self.close_deadline = Some(now + self.cfg.time_wait);
            }
            return;
        }
        self.fin_received = true;
        self.rcv_nxt += 1u32;
        self.ack_now = true;
        self.events |= EV_PEER_CLOSED | EV_READABLE;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    // Simultaneous close (§3.6, figure 13).
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rtx_deadline = None;
        self.persist_deadline = None;
        self.keepalive_deadline = None;
        self.delack_deadline = None;
        self.close_deadline = Some(now + self.cfg.time_wait);
    }
}

/// §3.10.7.1: the reset to send for a segment that belongs to no connection (or that a
/// LISTEN or SYN-SENT TCB refuses). `None` for a segment that itself carries RST.
pub fn reset_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.flags.contains(TcpFlags::RST) {
        return None;
    }
    let base = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq: 0,
        ack: 0,
        flags: TcpFlags::RST,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    Some(if seg.flags.contains(TcpFlags::ACK) {
        // "If the incoming segment has the ACK bit set, the reset takes its sequence number
        // from the ACK field": <SEQ=SEG.ACK><CTL=RST>.
        TcpRepr { seq: seg.ack, ..base }
    } else {
        // "Otherwise the reset has sequence number zero and the ACK field is set to the sum of
        // the sequence number and segment length": <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
        TcpRepr { ack: seg.seq.wrapping_add(seg.segment_len() as u32), flags: TcpFlags::RST | TcpFlags::ACK, ..base }
    })
}
