//! The application's calls: reading, writing, closing, options, and the zero-copy variants.

use super::*;

impl Tcb {
    // ------------------------------------------------------------------ zero-copy calls

    /// Bytes of in-order data held in the TCB's own buffer (data that arrived out of order,
    /// or that the caller chose not to keep in place), readable with [`Tcb::recv`].
    pub fn recv_buffered(&self) -> usize {
        self.recv_buf.len()
    }

    /// The first `len` buffered bytes from `offset` on, in place (two slices: the buffer is a
    /// ring).
    pub fn recv_slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        self.recv_buf.slices(offset, len)
    }

    /// Process a segment, letting its in-order payload stay where it is when `may_lend`:
    /// returns the part of `seg.payload` that was accepted that way (offset, length). The
    /// caller then holds those bytes (they count against the receive window until
    /// [`Tcb::release_rx`]) and delivers them to the application in sequence order, after
    /// whatever [`Tcb::recv_buffered`] had before this call. Data that arrives out of order
    /// is copied into the reassembly buffer as always.
    pub fn on_segment_lending(
        &mut self,
        now: Instant,
        from: SocketAddr,
        seg: &TcpRepr<'_>,
        may_lend: bool,
    ) -> Option<(usize, usize)> {
        self.on_segment_with(now, from, seg, RxInfo { may_lend, ce: false })
    }

    /// Consume `n` bytes of [`Tcb::recv_buffered`] without copying them (after reading them
    /// in place with [`Tcb::recv_slices`]); returns how many.
    pub fn consume_buffered(&mut self, n: usize) -> usize {
        let n = n.min(self.recv_buf.len());
        self.recv_buf.discard(n);
        if n > 0 {
            self.maybe_window_update();
        }
        n
    }

    /// The peer's FIN arrived in order: once the data before it is read, the stream ends.
    pub fn fin_received(&self) -> bool {
        self.fin_received
    }

    /// Bytes of TCP header on a data segment now (options included, no SACK blocks): where a
    /// caller lays out payload so that headers fit exactly in front of it.
    pub fn data_header_len(&self) -> usize {
        crate::wire::tcp::HEADER_LEN + if self.ts_enabled { TS_OPTION_LEN } else { 0 }
    }

    /// Room in the send buffer opened for a reason the TCB cannot see (the caller's frame
    /// budget): report `Writable` if the application was told the buffer was full.
    pub fn notify_writable(&mut self) {
        if self.send_was_full {
            self.send_was_full = false;
            self.events |= EV_WRITABLE;
        }
    }

    /// The application consumed `n` bytes held by the caller: the window may open.
    pub fn release_rx(&mut self, n: usize) {
        debug_assert!(n <= self.rx_external);
        self.rx_external -= n.min(self.rx_external);
        self.maybe_window_update();
    }

    /// Keep send data outside the TCB from now on (zero-copy send: the caller keeps each
    /// segment's frame until it is acknowledged). Only before anything was queued.
    pub fn set_external_send(&mut self) -> Result<(), TcpError> {
        if self.tx_external {
            return Ok(());
        }
        if !self.send_buf.is_empty() {
            return Err(TcpError::WouldBlock);
        }
        self.tx_external = true;
        Ok(())
    }

    /// Whether send data is kept by the caller.
    pub fn external_send(&self) -> bool {
        self.tx_external
    }

    /// Queue `len` bytes the caller holds (zero-copy send), with the checks of [`Tcb::send`].
    /// The buffer bound was checked when the caller took its buffer (`send_capacity`).
    pub fn send_external(&mut self, len: usize) -> Result<(), TcpError> {
        debug_assert!(self.tx_external);
        self.check_send()?;
        self.tx_ext_len += len;
        Ok(())
    }

    /// Bytes the caller may now free from the front of its send queue: acknowledged by the
    /// peer, or abandoned when the connection closed.
    pub fn take_released_tx(&mut self) -> usize {
        core::mem::take(&mut self.tx_ext_released)
    }

    /// In external-send mode, the payload of the segment `poll_transmit` just returned:
    /// (offset from the first unacknowledged byte, length). The returned segment's own
    /// payload is empty; the caller supplies these bytes.
    pub fn take_tx_range(&mut self) -> Option<(usize, usize)> {
        self.tx_ext_out.take()
    }

    /// Where the next new segment would start: its offset from the first unacknowledged
    /// byte of data. `None` before the connection is synchronized (the SYN is not data).
    pub fn next_new_offset(&self) -> Option<usize> {
        self.state.is_synchronized().then(|| self.snd_nxt.since(self.snd_una) as usize)
    }

    /// In external-send mode: end the next new segment after at most `len` bytes, where one
    /// of the caller's frames ends, even if that is short of the MSS; it goes at once, as
    /// Linux sends an skb that is not the last without waiting for Nagle or a full segment
    /// (`tcp_write_xmit`). After a runt — a zero-window probe's byte, or what a small window
    /// took — that is what puts segments back on the caller's frame boundaries, so that each
    /// is one frame again and goes without a copy. `usize::MAX`: no limit. Holds until set
    /// again; the owner sets it before each `poll_transmit`.
    pub fn limit_next_new(&mut self, len: usize) {
        self.tx_ext_new_limit = if self.tx_external { len.max(1) } else { usize::MAX };
    }

    /// Turn Nagle's algorithm off (TCP_NODELAY) or on.
    pub fn set_nagle(&mut self, on: bool) {
        // Linux's tcp_sock_set_nodelay: setting TCP_NODELAY pushes what waits, even when it was
        // set already (TCP_NAGLE_PUSH).
        if !on {
            self.push_once = true;
        }
        Arc::make_mut(&mut self.cfg).nagle = on;
    }
    /// TCP_CORK (Linux): while on, a segment shorter than the MSS waits for more data, even
    /// with nothing in flight and Nagle off; after the persist timer's interval (the RTO) it
    /// goes anyway, as Linux's probe timer sends it. Off sends what waits (Nagle allowing;
    /// at once with Nagle off).
    pub fn set_cork(&mut self, on: bool) {
        if self.cork && !on && !self.cfg.nagle {
            self.push_once = true;
        }
        self.cork = on;
    }
    /// MSG_MORE for the next `send`: more data follows it, so its short tail waits as a corked
    /// one would — until a write without it, a segment from the peer, or the persist timer.
    pub fn set_more_coming(&mut self, more: bool) {
        self.more_coming = more;
        self.tail_unpushed = more;
    }
    /// Linux's TCP_QUICKACK: on leaves interactive (pingpong) mode and sends an ACK that is
    /// being delayed now; off enters it, so that ACKs wait for the delayed-ACK timer or ride on
    /// data, until a delayed ACK has to go on its own (`TcpConfig::quick_ack`).
    pub fn set_quick_ack(&mut self, on: bool, now: Instant) {
        self.pingpong = !on;
        if on && self.delack_deadline.is_some() {
            self.delack_deadline = Some(now);
        }
    }
    /// Keep-alive on (with these settings) or off.
    pub fn set_keepalive(&mut self, ka: Option<crate::tcp::config::Keepalive>, now: Instant) {
        Arc::make_mut(&mut self.cfg).keepalive = ka;
        self.keepalive_unanswered = 0;
        self.keepalive_deadline = match ka {
            Some(k) if self.state.is_synchronized() => Some(now + k.idle),
            _ => None,
        };
    }

    // ------------------------------------------------------------------ application calls

    /// Queue data for sending; returns how much was taken (RFC 9293 §3.10.2 SEND).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if self.tx_external {
            // Data lives in the caller's frames: it copies into those (the stack's `send`).
            return Err(TcpError::InvalidState(self.state));
        }
        self.check_send()?;
        if data.is_empty() {
            return Ok(0);
        }
        self.push_once = false;
        let n = self.send_buf.push(data);
        if n == 0 {
            self.send_was_full = true;
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// Can the application queue data now (RFC 9293 §3.10.2)?
    fn check_send(&self) -> Result<(), TcpError> {
        match self.state {
            State::Closed => return Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            State::Listen => return Err(TcpError::InvalidState(self.state)),
            // §3.10.2: data queued before the handshake completes goes out after it.
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            _ => return Err(TcpError::WriteClosed),
        }
        if self.our_fin.is_some() {
            return Err(TcpError::WriteClosed);
        }
        Ok(())
    }

    /// The application found the send buffer full: tell it when room opens (`Writable`).
    pub fn note_send_full(&mut self) {
        self.send_was_full = true;
    }

    /// Read in-order data (§3.10.3 RECEIVE). `Ok(0)` is the end of the stream (the peer's FIN
    /// and every byte before it have been read).
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, TcpError> {
        if self.state == State::Listen {
            return Err(TcpError::InvalidState(self.state));
        }
        if out.is_empty() {
            return Ok(0);
        }
        let n = self.recv_buf.pop(out);
        if n > 0 {
            self.maybe_window_update();
            return Ok(n);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Shut down writing (half-close): queue a FIN after the data (§3.10.4 CLOSE, the sending
    /// half). Reading goes on until the peer's FIN.
    pub fn shutdown(&mut self) -> Result<(), TcpError> {
        match self.state {
            State::Closed => Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            State::Listen | State::SynSent => {
                // §3.10.4: nothing was synchronized, so there is nothing to close gracefully.
                self.enter_closed(CloseReason::Normal);
                Ok(())
            }
            State::SynReceived | State::Established | State::CloseWait => {
                if self.our_fin.is_none() {
                    self.our_fin = Some(self.data_start() + self.sendq_len());
                }
                // §3.10.4: SYN-RECEIVED and ESTABLISHED go to FIN-WAIT-1, CLOSE-WAIT to
                // LAST-ACK. In SYN-RECEIVED the FIN waits until the handshake completes.
                self.state = match self.state {
                    State::CloseWait => State::LastAck,
                    _ => State::FinWait1,
                };
                Ok(())
            }
            // Already closing: nothing more to do.
            _ => Ok(()),
        }
    }

    /// Close: shut down writing, and let FIN-WAIT-2 time out (the application will not read
    /// any more). Data that arrives after close is answered with a reset (RFC 9293 §3.10.7.4,
    /// RFC 2525 §2.17: as Linux does for an orphaned socket).
    pub fn close(&mut self) -> Result<(), TcpError> {
        if self.state == State::Listen || self.state == State::SynSent {
            self.enter_closed(CloseReason::Normal);
            return Ok(());
        }
        self.app_closed = true;
        // RFC 2525 §2.17: closing with unread data resets the connection, so the peer learns
        // its data was not consumed.
        if self.recv_available() > 0 {
            self.abort();
            return Ok(());
        }
        self.shutdown()
    }

    /// Abort (§3.10.5): send a reset and forget the connection.
    pub fn abort(&mut self) {
        match self.state {
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.rst_now = true;
            }
            _ => {}
        }
        self.enter_closed(CloseReason::Aborted);
    }

    /// An ICMP error about this connection arrived (RFC 1122 §4.2.3.9). A hard error
    /// ([`IcmpError::is_hard`]) about our SYN ends the open ("TCP SHOULD abort the
    /// connection"; RFC 5461 §4.1 keeps that for SYN-SENT while advising against it once
    /// synchronized, and so do Linux and FreeBSD): [`CloseReason::Unreachable`]. Every other
    /// error is soft: the connection goes on, and the error is kept for the application
    /// (`last_icmp_error`). "Fragmentation needed" lowers the MSS to what the path carries
    /// (RFC 1191 §6.3: MTU − 40), never below 88 bytes of segment (a 128-byte MTU).
    pub fn on_icmp_error(&mut self, err: IcmpError) {
        self.last_icmp_error = Some(err);
        let opening = self.state == State::SynSent || (self.state == State::SynReceived && !self.passive);
        if opening && err.is_hard() && self.cfg.icmp_aborts_open {
            self.enter_closed(CloseReason::Unreachable(err));
            return;
        }
        if let IcmpError::FragmentationNeeded { mtu } = err {
            let options = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
            // The IP and TCP headers, and the smallest MTU believed: IPv4's 128 (RFC 1191's
            // floor), IPv6's 1280 (RFC 8200 §5, which RFC 8201 §4 keeps the path MTU above).
            let (headers, floor) = if self.remote.is_ipv6() { (60, 1280) } else { (40, 128) };
            let mss = (mtu.max(floor) as usize).saturating_sub(headers + options);
            if mss < self.snd_mss {
                self.snd_mss = mss;
                self.cc.set_mss(mss);
            }
        }
    }

    /// RFC 5927 §4.1: an ICMP error is about this connection only if the sequence number of
    /// the segment it quotes is one we sent and is not yet acknowledged (SND.UNA ≤ SEQ <
    /// SND.NXT); a blind attacker who guesses the ports still has to guess that.
    pub fn icmp_quote_acceptable(&self, seq: SeqNum) -> bool {
        self.snd_una.le(seq) && seq.lt(self.snd_nxt)
    }

    /// SND.UNA: the oldest sequence number sent and not yet acknowledged.
    pub fn snd_una(&self) -> SeqNum {
        self.snd_una
    }

    /// The last ICMP error reported for this connection (RFC 1122 §4.2.3.9 soft errors).
    pub fn last_icmp_error(&self) -> Option<IcmpError> {
        self.last_icmp_error
    }

    /// Whether a new active open of this 4-tuple may take this connection's place now, as
    /// Linux's `tcp_twsk_unique` allows one with net.ipv4.tcp_tw_reuse = 1: it is in
    /// TIME-WAIT, timestamps were in use (so the peer can tell the two incarnations' segments
    /// apart, RFC 7323 §5 and RFC 6191), and it has been there `delay` at least (Linux's
    /// net.ipv4.tcp_tw_reuse_delay, 1 s by default), so the new timestamps are newer than
    /// any of the old connection's.
    pub fn time_wait_reusable(&self, now: Instant, delay: Duration) -> bool {
        let entered = self.close_deadline.map(|d| d - self.cfg.time_wait);
        self.state == State::TimeWait
            && self.ts_enabled
            && entered.is_some_and(|at| now.saturating_duration_since(at) >= delay)
    }

    /// End TIME-WAIT early for a new connection of the same 4-tuple
    /// ([`Tcb::time_wait_reusable`]): CLOSED, normally, and what the new connection takes
    /// from this one ([`Tcb::connect_after_time_wait`]). `None`, and nothing changes, when
    /// it may not.
    pub fn take_over_time_wait(&mut self, now: Instant, delay: Duration) -> Option<TimeWaitReuse> {
        if !self.time_wait_reusable(now, delay) {
            return None;
        }
        let old = TimeWaitReuse { snd_nxt: self.snd_nxt, ts_offset: self.ts_offset };
        self.end_time_wait();
        Some(old)
    }

    /// End TIME-WAIT now, normally (CLOSED, as when 2·MSL runs out): what a stack does when it
    /// keeps no more connections in TIME-WAIT (Linux's tcp_time_wait without a bucket,
    /// tcp_max_tw_buckets). RFC 9293 §3.10.7.4 lets TIME-WAIT be shortened only with care;
    /// like Linux this gives up the protection against old duplicates for that 4-tuple.
    /// False, and nothing changes, outside TIME-WAIT.
    pub fn end_time_wait(&mut self) -> bool {
        if self.state != State::TimeWait {
            return false;
        }
        self.enter_closed(CloseReason::Normal);
        true
    }

    /// Whether [`Tcb::poll_event`] has something to hand out.
    pub fn has_events(&self) -> bool {
        self.events != 0
    }

    /// The next thing that happened, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        for (bit, ev) in [
            (EV_CONNECTED, Event::Connected),
            (EV_READABLE, Event::Readable),
            (EV_WRITABLE, Event::Writable),
            (EV_PEER_CLOSED, Event::PeerClosed),
        ] {
            if self.events & bit != 0 {
                self.events &= !bit;
                return Some(ev);
            }
        }
        if self.events & EV_CLOSED != 0 {
            self.events &= !EV_CLOSED;
            return Some(Event::Closed(self.close_reason.unwrap_or(CloseReason::Normal)));
        }
        None
    }
}

/// What a connection that ends TIME-WAIT early hands to the new one of its 4-tuple
/// ([`Tcb::take_over_time_wait`], [`Tcb::connect_after_time_wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWaitReuse {
    pub(super) snd_nxt: SeqNum,
    pub(super) ts_offset: u32,
}
