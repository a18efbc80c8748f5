//! The neighbour layer: ARP answered and learned (IPv6's neighbour discovery is in `ndp`),
//! next hops resolved for both families, frames waiting for a resolution.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn process_arp(&mut self, a: ArpRepr, _eth_src: MacAddr) {
        let now = self.now;
        match a.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_in += 1;
                if self.is_ours(a.target_ip) {
                    // RFC 826: the requester is about to talk to us; learn it (STALE: it
                    // exists, whether it hears us is for our first packets to show), reply.
                    self.arp.learn(a.source_ip, a.source_mac, now);
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

    /// The next hop for `dst`: itself when on-link, else the gateway. IPv6: link-local
    /// destinations and those on the prefix of the first address are on-link (RFC 4861 §5.2,
    /// with the prefix configured rather than advertised).
    pub(super) fn next_hop(&self, dst: IpAddr) -> IpAddr {
        match dst {
            IpAddr::V4(dst) => {
                let mask = if self.cfg.prefix_len == 0 { 0 } else { u32::MAX << (32 - self.cfg.prefix_len.min(32)) };
                let on_link = (u32::from(dst) & mask) == (u32::from(self.cfg.ip) & mask);
                match (on_link, self.cfg.gateway) {
                    (false, Some(gw)) => gw.into(),
                    _ => dst.into(),
                }
            }
            IpAddr::V6(dst) => {
                let bits = u32::from(self.cfg.ipv6_prefix_len.min(128));
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                let on_link = dst.is_unicast_link_local()
                    || self.cfg.ipv6.first().is_none_or(|a| u128::from(*a) & mask == u128::from(dst) & mask);
                match (on_link, self.cfg.ipv6_gateway) {
                    (false, Some(gw)) => gw.into(),
                    _ => dst.into(),
                }
            }
        }
    }

    /// Fill in the Ethernet header of a frame holding an IP packet for `dst` and queue it, or
    /// park it until ARP or neighbour discovery resolves the next hop.
    pub(super) fn send_ip_frame(&mut self, dst: IpAddr, frame: Frame) {
        let hop = self.next_hop(dst);
        let now = self.now;
        match self.neighbour(hop) {
            Some(mac) => self.queue_to(frame, mac, ether_type_of(hop)),
            None => {
                self.counters.neigh_queued += 1;
                if let Err(frame) = self.arp.enqueue(hop, frame, now) {
                    self.counters.arp_queue_drops += 1;
                    self.dev.recycle(frame);
                }
                if self.arp.should_request(hop, now) {
                    self.solicit(hop);
                }
            }
        }
    }

    /// Address `frame` to `mac` and queue it for the next TX burst (sent now when a burst's
    /// worth waits).
    fn queue_to(&mut self, frame: Frame, mac: MacAddr, ethertype: EtherType) {
        self.write_eth(&frame, mac, ethertype);
        self.tx.push(frame);
        if self.tx.len() >= self.cfg.rx_burst {
            self.transmit();
        }
    }

    /// [`Stack::send_ip_frame`] for a segment of connection `idx`, with the next hop's address
    /// kept on the connection while the neighbour cache has it REACHABLE and has not changed
    /// since (`ArpCache::reachable`, `generation`): until then the cache would only hand out
    /// the same address, so a connection's segments skip the lookup.
    pub(super) fn send_conn_frame(&mut self, idx: u32, dst: IpAddr, frame: Frame) {
        let now = self.now;
        if let Some((mac, until, generation)) = self.conn(idx).next_hop_mac {
            if generation == self.arp.generation && now < until {
                return self.queue_to(frame, mac, ether_type_of(dst));
            }
        }
        self.send_ip_frame(dst, frame);
        let hop = self.next_hop(dst);
        let kept = self.arp.reachable(hop, now).map(|(mac, until)| (mac, until, self.arp.generation));
        self.conn_mut(idx).next_hop_mac = kept;
    }

    /// The link-layer address to send to `hop` at, as neighbour unreachability detection
    /// has it (`ArpCache::resolve`), sending the unicast probe that is due, if one is.
    pub(super) fn neighbour(&mut self, hop: IpAddr) -> Option<MacAddr> {
        let r = self.arp.resolve(hop, self.now);
        if let (true, Some(mac)) = (r.probe, r.mac) {
            self.probe_neighbour(hop, mac);
        }
        if r.gave_up {
            self.counters.neigh_failed += 1;
        }
        r.mac
    }

    /// The timer side of RFC 4861 §7.3.3 (looked at every 100 ms while a neighbour is in
    /// DELAY or PROBE): the probes due, and the neighbours given up.
    pub(super) fn probe_neighbours(&mut self, now: Instant) {
        if now < self.arp.probe_pass_at {
            return;
        }
        self.arp.probe_pass_at = now + Duration::from_millis(100);
        let mut due = Vec::new();
        self.counters.neigh_failed += self.arp.due_probes(now, &mut due) as u64;
        for (hop, mac) in due {
            self.probe_neighbour(hop, mac);
        }
    }

    /// A unicast probe of `hop` at the address we have for it (RFC 4861 §7.2.2: a
    /// solicitation to the neighbour itself; for IPv4 an ARP request to its MAC, as Linux's
    /// `arp_solicit` in PROBE).
    fn probe_neighbour(&mut self, hop: IpAddr, mac: MacAddr) {
        self.counters.neigh_probes_out += 1;
        match hop {
            IpAddr::V4(hop) => self.send_arp(ArpOperation::Request, mac, MacAddr::UNSPECIFIED, hop),
            IpAddr::V6(hop) => self.send_ns_to(hop, hop, mac),
        }
    }

    /// Ask for `hop`'s link-layer address: an ARP request, or a neighbour solicitation.
    pub(super) fn solicit(&mut self, hop: IpAddr) {
        match hop {
            IpAddr::V4(hop) => self.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, hop),
            IpAddr::V6(hop) => self.send_ns(hop),
        }
    }

    pub(super) fn write_eth(&mut self, frame: &Frame, dst: MacAddr, ethertype: EtherType) {
        let eth = EthernetRepr { src: self.mac, dst, ethertype };
        let off = frame.offset as usize;
        let _ = eth.emit(&mut self.dev.buffer_mut(frame)[off..]);
    }

    pub(super) fn flush_arp_pending(&mut self, ip: impl Into<IpAddr>, mac: MacAddr) {
        let ip = ip.into();
        let mut i = 0;
        while i < self.arp.pending.len() {
            if self.arp.pending[i].next_hop == ip {
                let p = self.arp.pending.remove(i).expect("index checked");
                self.write_eth(&p.frame, mac, ether_type_of(ip));
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
        let mut hops: Vec<IpAddr> = self.arp.pending_hops().collect();
        hops.sort_unstable();
        hops.dedup();
        for hop in hops {
            if self.arp.should_request(hop, now) {
                self.solicit(hop);
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

/// The Ethernet type of a frame whose next hop is `hop`.
fn ether_type_of(hop: IpAddr) -> EtherType {
    match hop {
        IpAddr::V4(_) => EtherType::Ipv4,
        IpAddr::V6(_) => EtherType::Ipv6,
    }
}
