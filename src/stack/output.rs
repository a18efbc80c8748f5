//! Output: a connection's segments straight into device frames (copied or from the
//! application's own frames), segments of no connection, whole frames.

use super::*;

/// The IP header of a TCP segment we send.
#[derive(Clone, Copy)]
pub(super) enum TcpIpHeader {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

impl TcpIpHeader {
    /// IPv4: DF set (RFC 1191 path MTU discovery), TTL 64. IPv6: hop limit 64, as Linux's
    /// default; no flow label (RFC 6437 allows 0). Both: ECT(0) on what the TCB marked
    /// ECN-capable (RFC 3168 §6.1.2: new data on an ECN connection), Not-ECT on everything
    /// else; the ECN field is the low two bits of the TOS / traffic class (RFC 3168 §5).
    pub(super) fn new(src: IpAddr, dst: IpAddr, payload_len: usize, ect: bool) -> TcpIpHeader {
        let ecn = if ect { ECN_ECT0 } else { 0 };
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => TcpIpHeader::V4(Ipv4Repr {
                src,
                dst,
                protocol: IpProtocol::Tcp,
                payload_len,
                ttl: 64,
                ident: 0,
                dont_frag: true,
                dscp_ecn: ecn,
            }),
            (src, dst) => TcpIpHeader::V6(Ipv6Repr {
                src: to_v6(src),
                dst: to_v6(dst),
                next_header: IpProtocol::Tcp,
                payload_len,
                hop_limit: 64,
                traffic_class: ecn,
                flow_label: 0,
            }),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            TcpIpHeader::V4(_) => wire::ipv4::HEADER_LEN,
            TcpIpHeader::V6(_) => wire::ipv6::HEADER_LEN,
        }
    }

    pub(super) fn emit(&self, buf: &mut [u8]) -> wire::Result<usize> {
        match self {
            TcpIpHeader::V4(ip) => ip.emit(buf),
            TcpIpHeader::V6(ip) => ip.emit(buf),
        }
    }
}

/// An address as IPv6 (an IPv4 one as IPv4-mapped, RFC 4291 §2.5.5.2).
fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Bytes of IP header before a TCP segment between these addresses.
pub(super) fn ip_header_len(remote: IpAddr) -> usize {
    match remote {
        IpAddr::V4(_) => wire::ipv4::HEADER_LEN,
        IpAddr::V6(_) => wire::ipv6::HEADER_LEN,
    }
}

/// A connection's TCP header over `seg` (which holds the payload after it): with its checksum,
/// or with the pseudo-header's sum for a device that completes it (TX checksum offload).
fn emit_tcp_header(
    header: &TcpRepr<'_>,
    seg: &mut [u8],
    local: IpAddr,
    remote: IpAddr,
    offload: bool,
) -> wire::Result<usize> {
    if offload {
        header.emit_header_over_offloaded(seg, local, remote)
    } else {
        header.emit_header_over(seg, local, remote)
    }
}

impl<D: Device> Stack<D> {
    /// After a connection was touched: send what it has, collect its events, follow its
    /// state (listener queues, table), and keep its timer in the wheel in step.
    pub(super) fn flush_conn(&mut self, idx: u32) {
        let now = self.now;
        {
            let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return };
            c.dirty = false;
        }
        // What the peer acknowledged since: the TCB's offsets now start after it.
        self.release_acked_tx(idx);
        // Transmit everything the TCB has, straight into device frames.
        let offload = self.dev.tx_tcp_checksum_offload();
        loop {
            let remote = self.conn(idx).tcb.remote();
            let Some(mut frame) = self.dev.alloc_tx() else {
                self.counters.tx_pool_empty += 1;
                // The TCB keeps what it could not send; the next poll tries again.
                self.mark_dirty(idx);
                break;
            };
            let buf = self.dev.buffer_mut(&frame);
            let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { unreachable!() };
            c.bound_next_new_segment();
            // The payload goes where this connection's last headers ended, so that this
            // segment's, almost always as long, end where it starts and begin at the frame's
            // start: a device that can send a frame only from its start (xsk-rs's) then
            // moves nothing. The TCB sees as much room as with the largest headers, so a
            // segment with longer ones can still be moved up to meet them.
            let at = usize::from(c.tx_payload_at);
            let room = buf.len().saturating_sub(HEADROOM);
            let Some(seg) = c.tcb.poll_transmit(now, &mut buf[at..at + room]) else {
                self.dev.recycle(frame);
                break;
            };
            let mut payload_len = seg.payload.len();
            let header = TcpRepr { payload: &[], ..seg };
            let ect = c.tcb.last_tx_ect();
            if let Some((off, len)) = c.tcb.take_tx_range() {
                // Zero-copy send: the payload is in the application's frames.
                if self.send_in_place(idx, &header, off, len, ect) {
                    self.dev.recycle(frame);
                    continue;
                }
                self.copy_from_tx_frames(idx, &frame, at, off, len);
                self.counters.tcp_tx_copied += 1;
                payload_len = len;
            }
            if header.flags.contains(wire::TcpFlags::RST) {
                self.counters.tcp_rsts_out += 1;
            }
            self.counters.tcp_segs_out += 1;
            // Headers go right before the payload, which starts where they end.
            let tcp_len = header.header_len();
            let local_ip = self.conn(idx).tcb.local().ip();
            let ipr = TcpIpHeader::new(local_ip, remote.ip(), tcp_len + payload_len, ect);
            let pay = ETH_LEN + ipr.len() + tcp_len;
            let buf = self.dev.buffer_mut(&frame);
            if pay != at {
                // Options came and went: move the payload (at most HEADROOM − `at` up, which
                // `room` left space for) and start from here next time.
                buf.copy_within(at..at + payload_len, pay);
                self.counters.tcp_tx_payload_moved += 1;
                self.conn_mut(idx).tx_payload_at = pay as u16;
            }
            let buf = self.dev.buffer_mut(&frame);
            let seg_bytes = &mut buf[pay - tcp_len..pay + payload_len];
            if emit_tcp_header(&header, seg_bytes, local_ip, remote.ip(), offload).is_err() {
                self.dev.recycle(frame);
                continue;
            }
            let _ = ipr.emit(&mut buf[ETH_LEN..]);
            frame.offset = 0;
            frame.len = (pay + payload_len) as u32;
            if offload {
                self.dev.set_l4_partial(&frame);
            }
            self.send_conn_frame(idx, remote.ip(), frame);
        }
        self.release_acked_tx(idx);
        // Follow the connection's state.
        // A connection goes on the ready queue only with something to report: a TCB event,
        // or the end of a connection whose unread data has now been read.
        let (state, has_events, listener, opened) = {
            let c = self.conn(idx);
            (c.tcb.state(), c.tcb.has_events() || c.close_pending.is_some(), c.listener, c.opened)
        };
        if state != State::Closed && state != State::SynSent && state != State::SynReceived && !opened {
            self.conn_mut(idx).opened = true;
            if let Some(l) = listener {
                self.promote_to_accept_queue(l, idx);
                if self.conn(idx).tcb.state() == State::Closed {
                    // Reset for an accept-queue overflow: send the reset and end it now,
                    // before anything sees a closed connection in the table.
                    return self.flush_conn(idx);
                }
            }
        }
        if state == State::Closed {
            self.on_closed(idx);
            return;
        }
        if has_events && self.conn(idx).listener.is_none() {
            self.mark_ready(idx);
        }
        if state == State::TimeWait {
            if !self.conn(idx).time_waiting {
                let max = self.cfg.time_wait_limit();
                if self.time_wait_conns >= max {
                    // No room left in TIME-WAIT: it ends now (Linux's tcp_time_wait() when
                    // no bucket is left: "time wait bucket table overflow").
                    self.counters.tcp_time_wait_overflow += 1;
                    self.conn_mut(idx).tcb.end_time_wait();
                    return self.flush_conn(idx);
                }
                self.conn_mut(idx).time_waiting = true;
                self.time_wait_conns += 1;
            }
            // 2·MSL with nothing to send or receive: the buffers go back to the pool now.
            if let Some(b) = self.conn_mut(idx).tcb.release_buffers() {
                self.keep_buffers(b);
            }
        } else if self.ring_pressure() {
            // Idle, its rings empty: their storage waits in the pool for whichever
            // connection next has bytes to hold, so that idle connections hold none (and a
            // burst of new ones takes storage already in memory instead of fresh pages).
            let (send, recv) = self.conn_mut(idx).tcb.detach_idle_rings();
            let limit = self.cfg.buffer_pool_bytes;
            self.pool.keep_ring(send, limit);
            self.pool.keep_ring(recv, limit);
            if let Some(sb) = self.conn_mut(idx).tcb.detach_idle_scoreboard() {
                self.pool.keep_scoreboard(sb, limit);
            }
        }
        // Keep the wheel in step with the TCB's next deadline, lazily: a timer set for that
        // deadline or an earlier one stays. When it fires early, `handle_timeout` finds
        // nothing due and the flush after it sets the wheel for the real deadline, so the
        // retransmission timer that every ACK pushes later (RFC 6298 §5.3) costs no cancel
        // and schedule per segment; only an earlier deadline moves the timer. A spurious
        // fire costs one wakeup, at most one per timer set, never a late timer.
        let want = self.conn(idx).tcb.poll_timeout();
        let (have, timer) = {
            let c = self.conn(idx);
            (c.deadline, c.timer)
        };
        let earlier = match (want, have) {
            (Some(w), Some(h)) => w < h,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            if let Some(t) = timer {
                self.timers.cancel(t);
            }
            let new_timer = want.and_then(|d| self.timers.schedule(d, idx).ok());
            let c = self.conn_mut(idx);
            c.timer = new_timer;
            c.deadline = if new_timer.is_some() { want } else { None };
        }
    }

    /// Whether the connections' rings, at the default sizes, would hold more than the pool
    /// may (`buffer_pool_bytes`): then idle connections give their empty rings' storage up
    /// (`Tcb::detach_idle_rings`), as Linux reclaims an idle socket's memory under tcp_mem
    /// pressure; below it they keep it, and a busy connection does not trade its storage
    /// with the pool at every exchange.
    fn ring_pressure(&self) -> bool {
        let per_conn = self.cfg.tcp.send_buffer + self.cfg.tcp.recv_buffer;
        self.table.len().saturating_mul(per_conn) > self.cfg.buffer_pool_bytes
    }

    /// Send a zero-copy segment from the application's frame itself: the payload is exactly
    /// one queued frame, not in flight, with room for the headers right before it, and the
    /// next hop is known. Returns false when any of that fails (the caller copies).
    pub(super) fn send_in_place(&mut self, idx: u32, header: &TcpRepr<'_>, off: usize, len: usize, ect: bool) -> bool {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return false };
        let (local_ip, remote) = (c.tcb.local().ip(), c.tcb.remote());
        let at = c.tx_acked + off as u64;
        let i = c.txq.partition_point(|ch| ch.start < at);
        let Some(chunk) = c.txq.get(i).filter(|ch| ch.start == at) else { return false };
        let (index, pay_off) = (chunk.frame.index, chunk.frame.offset as usize);
        let tcp_len = header.header_len();
        let ipr = TcpIpHeader::new(local_ip, remote.ip(), tcp_len + len, ect);
        if chunk.frame.len as usize != len
            || pay_off < ETH_LEN + ipr.len() + tcp_len
            || self.dev.in_flight(&chunk.frame)
        {
            return false;
        }
        let hop = self.next_hop(remote.ip());
        let Some(mac) = self.neighbour(hop) else { return false };
        // Earlier segments queued for the burst go first: keep the connection's order.
        if !self.tx.is_empty() {
            let n = self.dev.tx_burst(&mut self.tx);
            self.counters.frames_out += n as u64;
            if !self.tx.is_empty() {
                return false;
            }
        }
        let start = pay_off - tcp_len - ipr.len() - ETH_LEN;
        let whole = Frame { index, offset: start as u32, len: (ETH_LEN + ipr.len() + tcp_len + len) as u32 };
        let offload = self.dev.tx_tcp_checksum_offload();
        let buf = self.dev.buffer_mut(&whole);
        if emit_tcp_header(header, &mut buf[pay_off - tcp_len..pay_off + len], local_ip, remote.ip(), offload).is_err()
        {
            return false;
        }
        let _ = ipr.emit(&mut buf[start + ETH_LEN..]);
        if offload {
            self.dev.set_l4_partial(&whole);
        }
        let ethertype = if remote.is_ipv4() { EtherType::Ipv4 } else { EtherType::Ipv6 };
        self.write_eth(&whole, mac, ethertype);
        if !self.dev.tx_kept(&whole) {
            return false;
        }
        self.counters.frames_out += 1;
        self.counters.tcp_segs_out += 1;
        self.counters.tcp_tx_in_place += 1;
        true
    }

    /// Copy `len` bytes of zero-copy send data from stream offset `off` (after SND.UNA) out
    /// of the connection's frames into `frame`'s payload area (from byte `to`).
    pub(super) fn copy_from_tx_frames(&mut self, idx: u32, frame: &Frame, to: usize, off: usize, len: usize) {
        let Entry::Conn(c) = &self.slots[idx as usize].entry else { return };
        let mut at = c.tx_acked + off as u64;
        let end = at + len as u64;
        let mut to = to;
        // Both frames belong to the device, which lends one at a time: copy through the stack.
        let mut piece = [0u8; 2048];
        while at < end {
            let Entry::Conn(c) = &self.slots[idx as usize].entry else { return };
            // Chunks are in stream order: the first that ends after `at` holds it.
            let i = c.txq.partition_point(|ch| ch.start + ch.frame.len as u64 <= at);
            let Some(ch) = c.txq.get(i) else { break };
            let from = (at - ch.start) as usize;
            let n = (ch.frame.len as usize - from).min((end - at) as usize).min(piece.len());
            piece[..n].copy_from_slice(&self.dev.frame(&ch.frame)[from..from + n]);
            self.dev.buffer_mut(frame)[to..to + n].copy_from_slice(&piece[..n]);
            to += n;
            at += n as u64;
        }
        debug_assert_eq!(at, end, "the queued frames cover what the TCB sends");
    }

    /// Give back the frames of zero-copy send data the peer acknowledged (or that a closed
    /// connection abandoned).
    pub(super) fn release_acked_tx(&mut self, idx: u32) {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return };
        let acked = c.tcb.take_released_tx();
        if acked == 0 {
            return;
        }
        c.tx_acked += acked as u64;
        let mut freed = 0;
        while let Some(ch) = c.txq.front() {
            if ch.start + ch.frame.len as u64 > c.tx_acked {
                break;
            }
            let ch = c.txq.pop_front().expect("front exists");
            self.dev.recycle(ch.frame);
            freed += 1;
        }
        if freed > 0 {
            self.tx_frames_held -= freed;
            self.wake_tx_waiters();
        }
    }

    /// Frames for sending came back: connections refused one hear `Writable`.
    pub(super) fn wake_tx_waiters(&mut self) {
        if self.tx_waiters.is_empty() || self.tx_frames_held >= self.cfg.max_tx_frames_held {
            return;
        }
        let waiters = core::mem::take(&mut self.tx_waiters);
        for &w in &waiters {
            if let Entry::Conn(c) = &mut self.slots[w as usize].entry {
                c.tcb.notify_writable();
                self.mark_ready(w);
            }
        }
        self.tx_waiters = waiters;
        self.tx_waiters.clear();
    }

    /// Send a segment that belongs to no connection (a reset).
    pub(super) fn send_segment(&mut self, local_ip: IpAddr, remote: SocketAddr, seg: &TcpRepr<'_>) {
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return;
        };
        let ipr = TcpIpHeader::new(local_ip, remote.ip(), seg.buffer_len(), false);
        let buf = self.dev.buffer_mut(&frame);
        if ipr.emit(&mut buf[ETH_LEN..]).is_err()
            || seg.emit(&mut buf[ETH_LEN + ipr.len()..], local_ip, remote.ip()).is_err()
        {
            self.dev.recycle(frame);
            return;
        }
        frame.offset = 0;
        frame.len = (ETH_LEN + ipr.len() + seg.buffer_len()) as u32;
        self.counters.tcp_segs_out += 1;
        self.send_ip_frame(remote.ip(), frame);
    }

    /// Write a whole frame into a TX frame and queue it.
    pub(super) fn emit_frame(&mut self, repr: &FrameRepr<'_>) -> bool {
        let Some(frame) = self.build_frame(repr) else { return false };
        self.tx.push(frame);
        true
    }

    /// `repr` written into a TX frame of the device (`None`: the pool is empty, counted, or
    /// the frame does not fit).
    pub(super) fn build_frame(&mut self, repr: &FrameRepr<'_>) -> Option<Frame> {
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return None;
        };
        match repr.emit(self.dev.buffer_mut(&frame)) {
            Ok(n) => {
                frame.offset = 0;
                frame.len = n as u32;
                Some(frame)
            }
            Err(_) => {
                self.dev.recycle(frame);
                None
            }
        }
    }
}
