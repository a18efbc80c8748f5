//! Echo requests of our own (RFC 792, RFC 4443 §4.1), for `xtcp ping` and for embedders that
//! check a neighbour: the request goes out like any IP packet (resolving the next hop, parked
//! while it resolves); replies to the identifiers we used are queued for
//! [`Stack::poll_echo_reply`], a bounded queue, others counted and dropped.

use super::*;

/// Echo replies kept until the application takes them; more are counted and dropped.
const REPLY_QUEUE: usize = 64;
/// Identifiers of recent requests whose replies are kept.
const IDENTS: usize = 8;

/// An echo reply to one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: IpAddr,
    /// The identifier of the request it answers.
    pub ident: u16,
    /// Its sequence number.
    pub seq: u16,
    /// The data it carried back (the request's, if the peer is well behaved).
    pub data: Vec<u8>,
    /// When it arrived (the `now` of the poll that received it).
    pub at: Instant,
}

impl<D: Device> Stack<D> {
    /// Send an ICMP echo request (IPv4) or ICMPv6 echo request (IPv6) to `dst`, carrying
    /// `ident`, `seq` and `data` (at most 1,400 bytes). Replies come from
    /// [`Stack::poll_echo_reply`]. The next hop is resolved as for any packet; the request
    /// waits (bounded) while it is.
    pub fn send_echo_request(&mut self, dst: IpAddr, ident: u16, seq: u16, data: &[u8]) -> Result<(), StackError> {
        let broadcast = matches!(dst, IpAddr::V4(v4) if v4.is_broadcast());
        if dst.is_unspecified() || dst.is_multicast() || broadcast || data.len() > 1400 {
            return Err(StackError::InvalidAddress);
        }
        if self.is_ours(dst) {
            return Err(StackError::ConnectToSelf);
        }
        let eth = EthernetRepr { src: self.mac, dst: MacAddr::UNSPECIFIED, ethertype: EtherType::Ipv4 };
        let frame = match dst {
            IpAddr::V4(_) if self.cfg.ip.is_unspecified() => return Err(StackError::InvalidAddress),
            IpAddr::V4(dst) => {
                let icmp = Icmpv4Repr::EchoRequest { ident, seq_no: seq, data };
                let ip = Ipv4Repr {
                    src: self.cfg.ip,
                    dst,
                    protocol: IpProtocol::Icmp,
                    payload_len: icmp.buffer_len(),
                    ttl: 64,
                    ident: 0,
                    dont_frag: true,
                    dscp_ecn: 0,
                };
                FrameRepr { eth, net: NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(icmp) } }
            }
            IpAddr::V6(dst) => {
                let src = self.ipv6_source_for(dst).ok_or(StackError::InvalidAddress)?;
                let icmp = Icmpv6Repr::EchoRequest { ident, seq_no: seq, data };
                let ip = Ipv6Repr {
                    src,
                    dst,
                    next_header: IpProtocol::Icmpv6,
                    payload_len: icmp.buffer_len(),
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                };
                FrameRepr {
                    eth: EthernetRepr { ethertype: EtherType::Ipv6, ..eth },
                    net: NetRepr::Ipv6 { ip, l4: L6Repr::Icmp(icmp) },
                }
            }
        };
        // (The data is bounded above, so only an empty pool makes this fail.)
        let Some(f) = self.build_frame(&frame) else {
            return Err(StackError::Tcp(crate::tcp::TcpError::WouldBlock));
        };
        if !self.ping_idents.contains(&ident) {
            if self.ping_idents.len() >= IDENTS {
                self.ping_idents.remove(0);
            }
            self.ping_idents.push(ident);
        }
        self.counters.icmp_echo_requests_out += 1;
        // The Ethernet header is written once the next hop is known.
        self.send_ip_frame(dst, f);
        Ok(())
    }

    /// The next echo reply to one of our requests, oldest first.
    pub fn poll_echo_reply(&mut self) -> Option<EchoReply> {
        self.echo_replies.pop_front()
    }

    /// An echo reply arrived for one of our addresses.
    pub(super) fn on_echo_reply(&mut self, from: IpAddr, ident: u16, seq: u16, data: &[u8]) {
        if !self.ping_idents.contains(&ident) || self.echo_replies.len() >= REPLY_QUEUE {
            self.counters.icmp_echo_replies_dropped += 1;
            return;
        }
        self.counters.icmp_echo_replies_in += 1;
        self.echo_replies.push_back(EchoReply { from, ident, seq, data: data.to_vec(), at: self.now });
    }
}
