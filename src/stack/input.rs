//! The run-to-completion loop and the demultiplexing of received frames.

use super::*;

impl<D: Device> Stack<D> {
    /// One turn of the run-to-completion loop at `now`: receive and process a burst, run due
    /// timers, transmit. Returns the next time something is due (call again then, or when
    /// the device has frames).
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.now = self.now.max(now);
        let now = self.now;
        // Receive.
        let mut rx = core::mem::take(&mut self.rx);
        loop {
            let n = self.dev.rx_burst(&mut rx, self.cfg.rx_burst);
            for f in rx.drain(..) {
                self.counters.frames_in += 1;
                // A frame whose payload a connection keeps (zero-copy receive) stays out.
                if let Some(f) = self.process_frame(f) {
                    self.dev.recycle(f);
                }
            }
            if n < self.cfg.rx_burst {
                break;
            }
        }
        self.rx = rx;
        // Timers.
        while let Some((_, idx)) = self.timers.poll_expired(now) {
            if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
                c.timer = None;
                c.deadline = None;
                c.tcb.handle_timeout(now);
                self.mark_dirty(idx);
            }
        }
        self.expire_arp_pending(now);
        self.probe_neighbours(now);
        self.flush_dirty();
        self.transmit();
        self.next_deadline()
    }

    /// Send now what the application's calls since the last [`Stack::poll`] produced (the
    /// connections they touched, the frames waiting for the TX ring), in one burst, without
    /// receiving or running timers; returns the next time something is due, as `poll` does
    /// (the calls may have set an earlier timer). A loop calls it after handing the poll's
    /// events to the application, so that a reply leaves in the same turn as the request
    /// that caused it instead of after the next receive burst.
    pub fn flush(&mut self) -> Option<Instant> {
        if !self.has_pending_output() {
            return self.next_deadline();
        }
        self.flush_dirty();
        self.transmit();
        self.next_deadline()
    }

    /// Output of every connection touched. A connection that could not send everything (TX
    /// pool empty) marks itself dirty again, for the next poll.
    fn flush_dirty(&mut self) {
        let mut dirty = core::mem::take(&mut self.dirty);
        for idx in dirty.drain(..) {
            self.flush_conn(idx);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
    }

    /// When [`Stack::poll`] should next run if no frame arrives: now, when application calls
    /// left output pending; else the earliest timer or ARP retry (what `poll` and `flush`
    /// returned, kept up to date by the calls since).
    pub fn poll_at(&self) -> Option<Instant> {
        if self.has_pending_output() {
            return Some(self.now);
        }
        self.next_deadline()
    }

    /// The earliest timer or ARP retry.
    fn next_deadline(&self) -> Option<Instant> {
        let arp_next = self.arp.pending.front().map(|p| p.since + Duration::from_secs(1));
        crate::time::earliest(self.timers.next_deadline(), arp_next)
    }

    pub(super) fn transmit(&mut self) {
        if !self.tx.is_empty() {
            let n = self.dev.tx_burst(&mut self.tx);
            self.counters.frames_out += n as u64;
            self.dev.flush();
        }
    }

    /// Handle one received frame; gives it back unless a connection kept its payload.
    pub(super) fn process_frame(&mut self, f: Frame) -> Option<Frame> {
        let rx_csum = self.dev.rx_checksum_of(&f);
        // `bytes` borrows the device; the fields used while it lives are disjoint from it.
        let bytes = self.dev.frame(&f);
        let parsed = match FrameRepr::parse(bytes, rx_csum) {
            Ok(p) => p,
            Err(e) => {
                self.counters.count_wire_error(e);
                return Some(f);
            }
        };
        // Ours, broadcast, or (with IPv6) IPv6 multicast (RFC 2464 §7: 33:33 and the group's
        // low 32 bits), whose group the IP layer checks.
        let dst_mac = parsed.eth.dst;
        if dst_mac != self.mac
            && !dst_mac.is_broadcast()
            && !(self.link_local.is_some() && is_ipv6_multicast_mac(dst_mac))
        {
            self.counters.drop_not_for_us += 1;
            return Some(f);
        }
        let eth_src = parsed.eth.src;
        let (seg, local, remote, ce) = match parsed.net {
            NetRepr::Arp(a) => {
                self.process_arp(a, eth_src);
                return Some(f);
            }
            NetRepr::Ipv4 { ip, .. } if !self.is_ours(ip.dst) => {
                self.counters.drop_not_for_us += 1;
                return Some(f);
            }
            NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(seg) } => {
                let remote = SocketAddr::new(ip.src.into(), seg.src_port);
                let local = SocketAddr::new(ip.dst.into(), seg.dst_port);
                (seg, local, remote, ip.dscp_ecn & ECN_MASK == ECN_CE)
            }
            NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(icmp) } => {
                // Copied out of the device's frame, which the handling must not borrow.
                let mut copy = [0u8; 1500];
                if let Some(icmp) = copy_icmpv4(icmp, &mut copy) {
                    self.process_icmp(ip, icmp, eth_src);
                }
                return Some(f);
            }
            NetRepr::Ipv4 { l4: L4Repr::Udp(_), .. } => {
                self.counters.drop_udp += 1;
                return Some(f);
            }
            NetRepr::Ipv6 { .. } if self.link_local.is_none() => {
                // No IPv6 configured: as before, not ours.
                self.counters.drop_not_for_us += 1;
                return Some(f);
            }
            NetRepr::Ipv6 { ip, l4: L6Repr::Ndp(n) } => {
                self.process_ndp(ip, n, eth_src);
                return Some(f);
            }
            NetRepr::Ipv6 { ip, .. } if !self.is_ours(ip.dst) => {
                self.counters.drop_not_for_us += 1;
                return Some(f);
            }
            NetRepr::Ipv6 { ip, l4: L6Repr::Tcp(seg) } => {
                let remote = SocketAddr::new(ip.src.into(), seg.src_port);
                let local = SocketAddr::new(ip.dst.into(), seg.dst_port);
                (seg, local, remote, ip.traffic_class & ECN_MASK == ECN_CE)
            }
            NetRepr::Ipv6 { ip, l4: L6Repr::Icmp(icmp) } => {
                let mut copy = [0u8; 1500];
                if let Some(icmp) = copy_icmpv6(icmp, &mut copy) {
                    self.process_icmpv6(ip, icmp, eth_src);
                }
                return Some(f);
            }
        };
        self.counters.tcp_segs_in += 1;
        if seg.flags.contains(wire::TcpFlags::RST) {
            self.counters.tcp_rsts_in += 1;
        }
        let key = FourTuple { local, remote };
        // The fast path: the connection takes the payload where it lies.
        if let Some(idx) = self.table.get(&key) {
            let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return Some(f) };
            if c.tcb.wants_buffers(&seg) {
                // A handshake of the SYN queue hears from its peer: the segment may
                // complete it and carry data, so the buffers come now.
                c.tcb.attach_buffers(self.pool.take(c.tcb.config()));
            }
            let may_lend = self.cfg.zero_copy_rx
                && !seg.payload.is_empty()
                && self.rx_frames_held < self.cfg.max_rx_frames_held
                && c.rx_frames < self.cfg.max_rx_frames_per_conn;
            if !may_lend && !seg.payload.is_empty() {
                // The payload will be copied into the receive ring: storage for it, if the
                // ring gave its own up while idle.
                slots::ring_storage_from(&mut self.pool, &mut c.tcb, false, self.cfg.buffer_pool_bytes);
            }
            let before = c.tcb.recv_buffered();
            self.counters.ecn_ce_in += u64::from(ce);
            let una = c.tcb.snd_una();
            let lent = c.tcb.on_segment_with(self.now, remote, &seg, RxInfo { ce, may_lend });
            // RFC 4861 §7.3.1: an acknowledgment of new data confirms that the peer
            // (the next hop) is reachable; the neighbour entry stays fresh for as long
            // as the connection makes progress, instead of expiring under it. On its first
            // progress (which makes a neighbour learnt STALE from its own solicitation
            // REACHABLE before DELAY ends), then at most once per quarter of the entry's
            // lifetime per connection.
            let confirm = c.tcb.snd_una() != una
                && c.confirmed_at.is_none_or(|at| self.now.saturating_duration_since(at) >= self.cfg.arp_ttl / 4);
            if confirm {
                c.confirmed_at = Some(self.now);
            }
            let copied = c.tcb.recv_buffered().saturating_sub(before);
            if copied > 0 {
                match c.rxq.back_mut() {
                    Some(RxChunk::Buffered(n)) => *n += copied,
                    _ => c.rxq.push_back(RxChunk::Buffered(copied)),
                }
            }
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
            let kept = lent.map(|(off, len)| {
                // The payload's place in the frame (a subslice of `bytes`).
                let at = seg.payload.as_ptr() as usize - bytes.as_ptr() as usize + off;
                c.rxq.push_back(RxChunk::InFrame(Frame {
                    index: f.index,
                    offset: f.offset + at as u32,
                    len: len as u32,
                }));
                c.rx_frames += 1;
            });
            if confirm {
                let hop = self.next_hop(remote.ip());
                self.arp.confirm(hop, self.now);
            }
            if kept.is_some() {
                self.rx_frames_held += 1;
                self.counters.tcp_rx_in_place += 1;
                return None;
            }
            return Some(f);
        }
        // No connection: a SYN for a listener, a SYN cookie's ACK, or a reset. Only the
        // cookie's ACK may want the payload, found again in the frame by its place, so
        // the frame borrow ends here.
        let rst = reset_for(&seg);
        let at = seg.payload.as_ptr() as usize - bytes.as_ptr() as usize;
        let payload = (at, seg.payload.len());
        let header = TcpRepr { payload: &[], ..seg };
        self.process_tcp_no_conn(local, remote, header, rst, &f, payload);
        Some(f)
    }
}

/// An ICMPv4 message with its data copied into `copy` (cut to its size).
fn copy_icmpv4<'b>(icmp: Icmpv4Repr<'_>, copy: &'b mut [u8; 1500]) -> Option<Icmpv4Repr<'b>> {
    let mut put = |data: &[u8]| {
        let n = data.len().min(copy.len());
        copy[..n].copy_from_slice(&data[..n]);
        n
    };
    Some(match icmp {
        Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
            let n = put(data);
            Icmpv4Repr::EchoRequest { ident, seq_no, data: &copy[..n] }
        }
        Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } => {
            let n = put(data);
            Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data: &copy[..n] }
        }
        Icmpv4Repr::TimeExceeded { reason, header, data } => {
            let n = put(data);
            Icmpv4Repr::TimeExceeded { reason, header, data: &copy[..n] }
        }
        Icmpv4Repr::EchoReply { ident, seq_no, data } => {
            let n = put(data);
            Icmpv4Repr::EchoReply { ident, seq_no, data: &copy[..n] }
        }
    })
}

/// The same for ICMPv6 (RFC 4443): echo requests and the errors that may name a connection.
fn copy_icmpv6<'b>(icmp: Icmpv6Repr<'_>, copy: &'b mut [u8; 1500]) -> Option<Icmpv6Repr<'b>> {
    let mut put = |data: &[u8]| {
        let n = data.len().min(copy.len());
        copy[..n].copy_from_slice(&data[..n]);
        n
    };
    Some(match icmp {
        Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
            let n = put(data);
            Icmpv6Repr::EchoRequest { ident, seq_no, data: &copy[..n] }
        }
        Icmpv6Repr::DstUnreachable { code, invoking } => {
            let n = put(invoking);
            Icmpv6Repr::DstUnreachable { code, invoking: &copy[..n] }
        }
        Icmpv6Repr::PacketTooBig { mtu, invoking } => {
            let n = put(invoking);
            Icmpv6Repr::PacketTooBig { mtu, invoking: &copy[..n] }
        }
        Icmpv6Repr::TimeExceeded { code, invoking } => {
            let n = put(invoking);
            Icmpv6Repr::TimeExceeded { code, invoking: &copy[..n] }
        }
        Icmpv6Repr::EchoReply { ident, seq_no, data } => {
            let n = put(data);
            Icmpv6Repr::EchoReply { ident, seq_no, data: &copy[..n] }
        }
        Icmpv6Repr::ParamProblem { code, pointer, invoking } => {
            let n = put(invoking);
            Icmpv6Repr::ParamProblem { code, pointer, invoking: &copy[..n] }
        }
    })
}

/// An IPv6 multicast MAC address (RFC 2464 §7).
fn is_ipv6_multicast_mac(mac: MacAddr) -> bool {
    mac.0[0] == 0x33 && mac.0[1] == 0x33
}
