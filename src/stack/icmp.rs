//! ICMPv4: echo, and the errors that name one of our connections.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn process_icmp(&mut self, ip: Ipv4Repr, icmp: Icmpv4Repr<'_>, eth_src: MacAddr) {
        match icmp {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                self.counters.icmp_echo_in += 1;
                let mut copy = [0u8; 1500];
                let n = data.len().min(copy.len());
                copy[..n].copy_from_slice(&data[..n]);
                let reply = Icmpv4Repr::EchoReply { ident, seq_no, data: &copy[..n] };
                let ipr = Ipv4Repr {
                    src: ip.dst,
                    dst: ip.src,
                    protocol: IpProtocol::Icmp,
                    payload_len: reply.buffer_len(),
                    ttl: 64,
                    ident: 0,
                    dont_frag: false,
                    dscp_ecn: 0,
                };
                let frame = FrameRepr {
                    eth: EthernetRepr { src: self.mac, dst: eth_src, ethertype: EtherType::Ipv4 },
                    net: NetRepr::Ipv4 { ip: ipr, l4: L4Repr::Icmp(reply) },
                };
                if self.emit_frame(&frame) {
                    self.counters.icmp_echo_out += 1;
                }
            }
            Icmpv4Repr::DstUnreachable { header, data, .. } | Icmpv4Repr::TimeExceeded { header, data, .. } => {
                let err = match icmp {
                    Icmpv4Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu, .. } => {
                        IcmpError::FragmentationNeeded { mtu: next_hop_mtu }
                    }
                    Icmpv4Repr::DstUnreachable { .. } => IcmpError::Unreachable,
                    _ => IcmpError::TimeExceeded,
                };
                // RFC 1122 §4.2.3.9: for TCP these are soft errors; the connection goes on. The
                // quoted header names the connection (our address, TCP, its ports).
                if self.is_ours(header.src) && header.protocol == IpProtocol::Tcp && data.len() >= 4 {
                    let local = SocketAddrV4::new(header.src, u16::from_be_bytes([data[0], data[1]]));
                    let remote = SocketAddrV4::new(header.dst, u16::from_be_bytes([data[2], data[3]]));
                    if let Some(idx) = self.table.get(&FourTuple { local, remote }) {
                        self.counters.icmp_errors_in += 1;
                        self.conn_mut(idx).tcb.on_icmp_error(err);
                        self.mark_dirty(idx);
                    }
                }
            }
            Icmpv4Repr::EchoReply { .. } => {}
        }
    }
}
