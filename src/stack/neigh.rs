//! ARP on the stack: answering and learning, resolving next hops, frames waiting for a
//! resolution.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn process_arp(&mut self, a: ArpRepr, _eth_src: MacAddr) {
        let now = self.now;
        match a.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_in += 1;
                if self.is_ours(a.target_ip) {
                    // RFC 826: the requester is about to talk to us; learn it, then reply.
                    self.arp.insert(a.source_ip, a.source_mac, now);
                    self.send_arp_from(a.target_ip, ArpOperation::Reply, a.source_mac, a.source_mac, a.source_ip);
                    self.flush_arp_pending(a.source_ip, a.source_mac);
                } else {
                    // RFC 826 "merge": refresh what we already know, learn nothing new.
                    self.arp.refresh(a.source_ip, a.source_mac, now);
                }
            }
            ArpOperation::Reply => {
                self.counters.arp_replies_in += 1;
                if self.is_ours(a.target_ip) {
                    self.arp.insert(a.source_ip, a.source_mac, now);
                    self.flush_arp_pending(a.source_ip, a.source_mac);
                } else {
                    self.arp.refresh(a.source_ip, a.source_mac, now);
                }
            }
        }
    }

    /// The next hop for `dst`: itself when on-link, else the gateway.
    pub(super) fn next_hop(&self, dst: Ipv4Addr) -> Ipv4Addr {
        let mask = if self.cfg.prefix_len == 0 { 0 } else { u32::MAX << (32 - self.cfg.prefix_len.min(32)) };
        let on_link = (u32::from(dst) & mask) == (u32::from(self.cfg.ip) & mask);
        match (on_link, self.cfg.gateway) {
            (false, Some(gw)) => gw,
            _ => dst,
        }
    }

    /// Fill in the Ethernet header of a frame holding an IPv4 packet and queue it, or park it
    /// until ARP resolves the next hop.
    pub(super) fn send_ipv4_frame(&mut self, dst: Ipv4Addr, frame: Frame) {
        let hop = self.next_hop(dst);
        let now = self.now;
        match self.arp.lookup(hop, now) {
            Some(mac) => {
                self.write_eth(&frame, mac);
                self.tx.push(frame);
                if self.tx.len() >= self.cfg.rx_burst {
                    self.transmit();
                }
            }
            None => {
                if let Err(frame) = self.arp.enqueue(hop, frame, now) {
                    self.counters.arp_queue_drops += 1;
                    self.dev.recycle(frame);
                }
                if self.arp.should_request(hop, now) {
                    self.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, hop);
                }
            }
        }
    }

    pub(super) fn write_eth(&mut self, frame: &Frame, dst: MacAddr) {
        let eth = EthernetRepr { src: self.mac, dst, ethertype: EtherType::Ipv4 };
        let off = frame.offset as usize;
        let _ = eth.emit(&mut self.dev.buffer_mut(frame)[off..]);
    }

    pub(super) fn flush_arp_pending(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        let mut i = 0;
        while i < self.arp.pending.len() {
            if self.arp.pending[i].next_hop == ip {
                let p = self.arp.pending.remove(i).expect("index checked");
                self.write_eth(&p.frame, mac);
                self.tx.push(p.frame);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn expire_arp_pending(&mut self, now: Instant) {
        while let Some(p) = self.arp.pending.front() {
            if now.saturating_duration_since(p.since) < self.cfg.arp_pending_timeout {
                break;
            }
            let p = self.arp.pending.pop_front().expect("front exists");
            self.counters.arp_queue_drops += 1;
            self.dev.recycle(p.frame);
        }
        // Ask again for what still waits (rate-limited per address), looking at most every
        // 100 ms: under a flood from a silent address the queue is always full of frames for
        // it, and this pass need not run on every poll.
        if self.arp.pending.is_empty() || now < self.arp.retry_pass_at {
            return;
        }
        self.arp.retry_pass_at = now + Duration::from_millis(100);
        let mut hops: Vec<Ipv4Addr> = self.arp.pending_hops().collect();
        hops.sort_unstable();
        hops.dedup();
        for hop in hops {
            if self.arp.should_request(hop, now) {
                self.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, hop);
            }
        }
    }

    pub(super) fn send_arp(&mut self, op: ArpOperation, eth_dst: MacAddr, target_mac: MacAddr, target_ip: Ipv4Addr) {
        self.send_arp_from(self.cfg.ip, op, eth_dst, target_mac, target_ip)
    }

    pub(super) fn send_arp_from(
        &mut self,
        source_ip: Ipv4Addr,
        op: ArpOperation,
        eth_dst: MacAddr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
    ) {
        let frame = FrameRepr {
            eth: EthernetRepr { src: self.mac, dst: eth_dst, ethertype: EtherType::Arp },
            net: NetRepr::Arp(ArpRepr { operation: op, source_mac: self.mac, source_ip, target_mac, target_ip }),
        };
        if self.emit_frame(&frame) {
            match op {
                ArpOperation::Request => self.counters.arp_requests_out += 1,
                ArpOperation::Reply => self.counters.arp_replies_out += 1,
            }
        }
    }
}
