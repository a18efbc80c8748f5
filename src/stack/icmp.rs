//! ICMPv4: echo, and the errors that name one of our connections.

use super::*;
use crate::tcp::SeqNum;

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
                    Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, .. } => {
                        IcmpError::from_v4_unreachable(u8::from(reason), next_hop_mtu)
                    }
                    _ => IcmpError::TimeExceeded,
                };
                // RFC 1122 §4.2.3.9: soft errors leave the connection alone; a hard one ends
                // an open in SYN-SENT (Tcb::on_icmp_error). The quoted header names the
                // connection (our address, TCP, its ports), and the quoted sequence number
                // must be one in flight (RFC 5927 §4.1). RFC 792 quotes 8 bytes of the
                // datagram: ports and sequence number.
                if self.is_ours(header.src) && header.protocol == IpProtocol::Tcp && data.len() >= 8 {
                    let local = SocketAddr::new(header.src.into(), u16::from_be_bytes([data[0], data[1]]));
                    let remote = SocketAddr::new(header.dst.into(), u16::from_be_bytes([data[2], data[3]]));
                    let seq = SeqNum(u32::from_be_bytes([data[4], data[5], data[6], data[7]]));
                    match self.table.get(&FourTuple { local, remote }) {
                        Some(idx) if self.conn(idx).tcb.icmp_quote_acceptable(seq) => {
                            self.counters.icmp_errors_in += 1;
                            self.conn_mut(idx).tcb.on_icmp_error(err);
                            self.mark_dirty(idx);
                        }
                        _ => self.counters.icmp_errors_ignored += 1,
                    }
                } else {
                    self.counters.icmp_errors_ignored += 1;
                }
            }
            Icmpv4Repr::EchoReply { ident, seq_no, data } => self.on_echo_reply(ip.src.into(), ident, seq_no, data),
        }
    }
}
