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
        // Output of every connection touched. A connection that could not send everything
        // (TX pool empty) marks itself dirty again, for the next poll.
        let mut dirty = core::mem::take(&mut self.dirty);
        for idx in dirty.drain(..) {
            self.flush_conn(idx);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
        self.transmit();
        let arp_next = self.arp.pending.front().map(|p| p.since + Duration::from_secs(1));
        [self.timers.next_deadline(), arp_next].into_iter().flatten().min()
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
        let rx_csum = self.dev.rx_checksum();
        // `bytes` borrows the device; the fields used while it lives are disjoint from it.
        let bytes = self.dev.frame(&f);
        let parsed = match FrameRepr::parse(bytes, rx_csum) {
            Ok(p) => p,
            Err(e) => {
                self.counters.count_wire_error(e);
                return Some(f);
            }
        };
        if parsed.eth.dst != self.mac && !parsed.eth.dst.is_broadcast() {
            self.counters.drop_not_for_us += 1;
            return Some(f);
        }
        let eth_src = parsed.eth.src;
        match parsed.net {
            NetRepr::Arp(a) => self.process_arp(a, eth_src),
            NetRepr::Ipv4 { ip, .. } if !self.is_ours(ip.dst) => self.counters.drop_not_for_us += 1,
            NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(seg) } => {
                self.counters.tcp_segs_in += 1;
                if seg.flags.contains(wire::TcpFlags::RST) {
                    self.counters.tcp_rsts_in += 1;
                }
                let remote = SocketAddrV4::new(ip.src, seg.src_port);
                let local = SocketAddrV4::new(ip.dst, seg.dst_port);
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
                    let before = c.tcb.recv_buffered();
                    let ce = ip.dscp_ecn & ECN_MASK == ECN_CE;
                    self.counters.ecn_ce_in += u64::from(ce);
                    let lent = c.tcb.on_segment_with(self.now, remote, &seg, RxInfo { ce, may_lend });
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
                    if let Some((off, len)) = lent {
                        // The payload's place in the frame (a subslice of `bytes`).
                        let at = seg.payload.as_ptr() as usize - bytes.as_ptr() as usize + off;
                        c.rxq.push_back(RxChunk::InFrame(Frame {
                            index: f.index,
                            offset: f.offset + at as u32,
                            len: len as u32,
                        }));
                        c.rx_frames += 1;
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
            }
            NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(icmp) } => {
                // Copy what an echo reply needs out of the device's frame.
                let mut copy = [0u8; 1500];
                let icmp = match icmp {
                    Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::EchoRequest { ident, seq_no, data: &copy[..n] }
                    }
                    Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data: &copy[..n] }
                    }
                    Icmpv4Repr::TimeExceeded { reason, header, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::TimeExceeded { reason, header, data: &copy[..n] }
                    }
                    Icmpv4Repr::EchoReply { .. } => return Some(f),
                };
                self.process_icmp(ip, icmp, eth_src);
            }
            NetRepr::Ipv4 { l4: L4Repr::Udp(_), .. } => self.counters.drop_udp += 1,
        }
        Some(f)
    }
}
