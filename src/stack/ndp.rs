//! IPv6 on the stack's link: neighbour discovery (RFC 4861) answered and learned into the
//! neighbour cache the ARP side shares, and ICMPv6 (RFC 4443): echo, and the errors that name
//! one of our connections.

use super::*;
use crate::tcp::SeqNum;
use crate::wire::ndp::solicited_node;
use crate::wire::{Icmpv6Repr, Ipv6Repr, L6Repr, NdpOptions, NdpRepr};

/// All-nodes multicast (RFC 4291 §2.7.1), where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 §7.1: neighbour discovery messages carry, and must arrive with, hop limit 255,
/// so that none can come from off the link.
const NDP_HOP_LIMIT: u8 = 255;

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7).
fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

impl<D: Device> Stack<D> {
    /// A neighbour discovery message (RFC 4861 §7.1 checks first, then §7.2.3–§7.2.5).
    pub(super) fn process_ndp(&mut self, ip: Ipv6Repr, n: NdpRepr, eth_src: MacAddr) {
        if ip.hop_limit != NDP_HOP_LIMIT {
            self.counters.ndp_invalid += 1;
            return;
        }
        let now = self.now;
        match n {
            NdpRepr::NeighborSolicit { target, options } => {
                self.counters.ndp_solicits_in += 1;
                // §7.1.1: the target is not multicast; from the unspecified address (duplicate
                // address detection, RFC 4862 §5.4.3) there is no source link-layer option
                // and the destination is a solicited-node group.
                let dad = ip.src.is_unspecified();
                if target.is_multicast() || (dad && (options.source_ll.is_some() || !ip.dst.is_multicast())) {
                    self.counters.ndp_invalid += 1;
                    return;
                }
                if !self.is_ours(target) {
                    return; // for another host on the link
                }
                if dad {
                    if options.nonce == Some(self.dad_nonce) {
                        return; // our own probe, looped back (RFC 7527 §4.2)
                    }
                    if now < self.dad_until {
                        // RFC 4862 §5.4.3: another node probes for the address while we do:
                        // a duplicate.
                        self.give_up_address(target);
                        return;
                    }
                    // Someone probes for one of our addresses: defend it (§7.2.4, RFC 4862
                    // §5.4.3) with an advertisement to all nodes.
                    self.send_na(target, ALL_NODES, multicast_mac(ALL_NODES), false);
                    return;
                }
                // §7.2.3: learn the sender (it is about to talk to us), then answer it.
                let mac = options.source_ll.unwrap_or(eth_src);
                if options.source_ll.is_some() || !ip.dst.is_multicast() {
                    self.arp.learn(ip.src, mac, now);
                    self.flush_arp_pending(ip.src, mac);
                }
                self.send_na(target, ip.src, mac, true);
            }
            NdpRepr::NeighborAdvert { solicited, target, options, .. } => {
                self.counters.ndp_adverts_in += 1;
                // §7.1.2: the target is not multicast; a solicited advertisement is not sent
                // to a multicast group.
                if target.is_multicast() || (solicited && ip.dst.is_multicast()) {
                    self.counters.ndp_invalid += 1;
                    return;
                }
                // §7.2.5: the link-layer address it gives, or (RFC 4861 allows its absence on
                // a solicited answer) the frame's source.
                let mac = options.target_ll.unwrap_or(eth_src);
                if self.is_ours(target) {
                    // RFC 4862 §5.4.4: another node advertises one of our addresses. While
                    // detecting, a duplicate: given up. After, only counted (the RFC asks for
                    // a management error, not for the address to go).
                    if mac != self.mac {
                        if now < self.dad_until {
                            self.give_up_address(target);
                        } else {
                            self.counters.ipv6_duplicates += 1;
                        }
                    }
                    return;
                }
                if solicited {
                    self.arp.insert(target, mac, now);
                    self.flush_arp_pending(target, mac);
                } else {
                    // An unsolicited one updates what we know, teaches nothing new.
                    self.arp.refresh(target, mac, now);
                }
            }
            NdpRepr::RouterSolicit { .. } | NdpRepr::RouterAdvert { .. } => self.counters.ndp_ignored += 1,
        }
    }

    /// Our source address towards `dst`: the link-local one for link-local destinations,
    /// else the first configured one (RFC 6724 §5 rule 2: a source of the destination's
    /// scope; a link-local source does not reach beyond the link). `None`: no address of that
    /// scope (none configured, or given up as a duplicate).
    pub(super) fn ipv6_source_for(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        if dst.is_unicast_link_local() {
            self.link_local
        } else {
            self.cfg.ipv6.first().copied()
        }
    }

    /// A neighbour solicitation for `target` (§7.2.2), to its solicited-node group, with our
    /// link-layer address.
    pub(super) fn send_ns(&mut self, target: Ipv6Addr) {
        let group = solicited_node(target);
        self.send_ns_to(target, group, multicast_mac(group));
    }

    /// A neighbour solicitation for `target` to `dst` at `dst_mac`: its solicited-node group
    /// (resolution), or the neighbour itself (a unicast probe, §7.3.3).
    pub(super) fn send_ns_to(&mut self, target: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr) {
        let Some(src) = self.ipv6_source_for(target) else { return };
        let options = NdpOptions { source_ll: Some(self.mac), ..NdpOptions::default() };
        let msg = NdpRepr::NeighborSolicit { target, options };
        if self.emit_ndp(src, dst, dst_mac, msg) {
            self.counters.ndp_solicits_out += 1;
        }
    }

    /// A neighbour advertisement for our `target` to `dst` (§7.2.4), with our link-layer
    /// address; override set, as for an address that is ours alone.
    pub(super) fn send_na(&mut self, target: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr, solicited: bool) {
        let options = NdpOptions { target_ll: Some(self.mac), ..NdpOptions::default() };
        let msg = NdpRepr::NeighborAdvert { router: false, solicited, override_: true, target, options };
        if self.emit_ndp(target, dst, dst_mac, msg) {
            self.counters.ndp_adverts_out += 1;
        }
    }

    /// RFC 4862 §5.4.2: a probe for our `ip`: a solicitation from the unspecified address to
    /// its solicited-node group, with our nonce (RFC 7527) and no link-layer address.
    pub(super) fn send_dad_probe(&mut self, ip: Ipv6Addr) {
        let group = solicited_node(ip);
        let options = NdpOptions { nonce: Some(self.dad_nonce), ..NdpOptions::default() };
        let msg = NdpRepr::NeighborSolicit { target: ip, options };
        if self.emit_ndp(Ipv6Addr::UNSPECIFIED, group, multicast_mac(group), msg) {
            self.counters.ndp_solicits_out += 1;
        }
    }

    /// RFC 4862 §5.4.5: a duplicate is not used; the link-local one takes IPv6 down with it
    /// (its interface identifier is the MAC's, which another node has too).
    fn give_up_address(&mut self, ip: Ipv6Addr) {
        self.counters.ipv6_duplicates += 1;
        if self.link_local == Some(ip) {
            self.link_local = None;
            self.cfg.ipv6.clear();
        } else {
            self.cfg.ipv6.retain(|a| *a != ip);
        }
    }

    /// §7.2.6: an unsolicited advertisement of our `ip`, to all nodes.
    pub(super) fn send_unsolicited_na(&mut self, ip: Ipv6Addr) {
        self.send_na(ip, ALL_NODES, multicast_mac(ALL_NODES), false);
    }

    fn emit_ndp(&mut self, src: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr, msg: NdpRepr) -> bool {
        let ip = Ipv6Repr {
            src,
            dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: msg.buffer_len(),
            hop_limit: NDP_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        };
        let frame = FrameRepr {
            eth: EthernetRepr { src: self.mac, dst: dst_mac, ethertype: EtherType::Ipv6 },
            net: NetRepr::Ipv6 { ip, l4: L6Repr::Ndp(msg) },
        };
        self.emit_frame(&frame)
    }

    /// An ICMPv6 message to one of our addresses (RFC 4443).
    pub(super) fn process_icmpv6(&mut self, ip: Ipv6Repr, icmp: Icmpv6Repr<'_>, eth_src: MacAddr) {
        match icmp {
            Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
                // §4.2: the reply carries the request's data back, from the address it was
                // sent to.
                self.counters.icmp_echo_in += 1;
                let reply = Icmpv6Repr::EchoReply { ident, seq_no, data };
                let ipr = Ipv6Repr {
                    src: ip.dst,
                    dst: ip.src,
                    next_header: IpProtocol::Icmpv6,
                    payload_len: reply.buffer_len(),
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                };
                let frame = FrameRepr {
                    eth: EthernetRepr { src: self.mac, dst: eth_src, ethertype: EtherType::Ipv6 },
                    net: NetRepr::Ipv6 { ip: ipr, l4: L6Repr::Icmp(reply) },
                };
                if self.emit_frame(&frame) {
                    self.counters.icmp_echo_out += 1;
                }
            }
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. } => {
                let err = match icmp {
                    // RFC 8201 §4: a Packet Too Big lowers the path MTU (the TCB keeps it at
                    // IPv6's 1280 or more).
                    Icmpv6Repr::PacketTooBig { mtu, .. } => {
                        IcmpError::FragmentationNeeded { mtu: mtu.min(u32::from(u16::MAX)) as u16 }
                    }
                    Icmpv6Repr::DstUnreachable { code, .. } => IcmpError::from_v6_unreachable(code),
                    _ => IcmpError::TimeExceeded,
                };
                self.icmpv6_error_to_conn(invoking, err);
            }
            Icmpv6Repr::EchoReply { ident, seq_no, data } => self.on_echo_reply(ip.src.into(), ident, seq_no, data),
            // RFC 4443 §3.4: code 1, an unrecognized Next Header, is IPv6's protocol
            // unreachable (a hard error); the others are soft.
            Icmpv6Repr::ParamProblem { code, invoking, .. } => {
                let err = if code == 1 { IcmpError::ProtocolUnreachable } else { IcmpError::ParameterProblem };
                self.icmpv6_error_to_conn(invoking, err);
            }
        }
    }

    /// RFC 4443 §2.4(f) and RFC 5927 §4.1, as for ICMPv4: the invoking packet (an IPv6 header
    /// and at least the TCP ports and sequence number) names a connection of ours and a
    /// sequence number in flight, or the error is ignored.
    /// (`wire::icmpv6::quoted_tcp` reads the cut-short invoking packet.)
    fn icmpv6_error_to_conn(&mut self, invoking: &[u8], err: IcmpError) {
        let Some(q) = wire::icmpv6::quoted_tcp(invoking).filter(|q| self.is_ours(q.src)) else {
            self.counters.icmp_errors_ignored += 1;
            return;
        };
        let local = SocketAddr::new(q.src.into(), q.src_port);
        let remote = SocketAddr::new(q.dst.into(), q.dst_port);
        let seq = SeqNum(q.seq);
        match self.table.get(&FourTuple { local, remote }) {
            Some(idx) if self.conn(idx).tcb.icmp_quote_acceptable(seq) => {
                self.counters.icmp_errors_in += 1;
                self.conn_mut(idx).tcb.on_icmp_error(err);
                self.mark_dirty(idx);
            }
            _ => self.counters.icmp_errors_ignored += 1,
        }
    }
}
