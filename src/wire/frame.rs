//! A whole received frame, parsed top to bottom: Ethernet II, then ARP, IPv4 (then ICMPv4, TCP
//! or UDP) or IPv6 (then TCP, ICMPv6 or neighbour discovery). This is the single entry point for untrusted bytes; the stack's input path and
//! the whole-frame fuzz target both go through it.

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use super::icmpv6::{self, Icmpv6Packet, Icmpv6Repr};
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::ndp::NdpRepr;
use super::tcp::{TcpPacket, TcpRepr};
use super::udp::{UdpPacket, UdpRepr};
use super::{Error, Result, RxChecksum};

/// The transport layer of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Repr<'a> {
    /// Protocol 6: a TCP segment.
    Tcp(TcpRepr<'a>),
    /// Protocol 17: a UDP datagram.
    Udp(UdpRepr<'a>),
    /// Protocol 1: an ICMPv4 message of a type the stack handles.
    Icmp(Icmpv4Repr<'a>),
}

/// The upper layer of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L6Repr<'a> {
    /// Next Header 6: a TCP segment.
    Tcp(TcpRepr<'a>),
    /// Next Header 58: an ICMPv6 message other than neighbour discovery.
    Icmp(Icmpv6Repr<'a>),
    /// Neighbour discovery (RFC 4861 §4: ICMPv6 types 133–137), its checksum verified.
    Ndp(NdpRepr),
}

/// What an Ethernet frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetRepr<'a> {
    /// EtherType 0x0806: an ARP packet.
    Arp(ArpRepr),
    /// EtherType 0x0800: an IPv4 packet.
    Ipv4 {
        /// The IPv4 header.
        ip: Ipv4Repr,
        /// What the packet carries.
        l4: L4Repr<'a>,
    },
    /// EtherType 0x86dd: an IPv6 packet.
    Ipv6 {
        /// The IPv6 header.
        ip: Ipv6Repr,
        /// What the packet carries.
        l4: L6Repr<'a>,
    },
}

/// A parsed frame. Payloads borrow the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRepr<'a> {
    /// The Ethernet II header.
    pub eth: EthernetRepr,
    /// What the frame carries.
    pub net: NetRepr<'a>,
}

impl<'a> FrameRepr<'a> {
    /// Parse untrusted bytes. Never panics; every rejection is an [`Error`] to count.
    #[inline]
    pub fn parse(frame: &'a [u8], rx: RxChecksum) -> Result<FrameRepr<'a>> {
        let eth_frame = EthernetFrame::new_checked(frame)?;
        let eth = EthernetRepr::parse(&eth_frame)?;
        let payload = &frame[ethernet::HEADER_LEN..];
        let net = match eth.ethertype {
            EtherType::Arp => NetRepr::Arp(ArpRepr::parse(&ArpPacket::new_checked(payload)?)?),
            EtherType::Ipv4 => {
                let p = Ipv4Packet::new_checked(payload)?;
                let ip = Ipv4Repr::parse(&p, rx)?;
                let start = p.header_len();
                let l4_bytes = &payload[start..start + ip.payload_len];
                let l4 = match ip.protocol {
                    IpProtocol::Tcp => {
                        L4Repr::Tcp(TcpRepr::parse(&TcpPacket::new_checked(l4_bytes)?, ip.src, ip.dst, rx)?)
                    }
                    IpProtocol::Udp => {
                        L4Repr::Udp(UdpRepr::parse(&UdpPacket::new_checked(l4_bytes)?, ip.src, ip.dst, rx)?)
                    }
                    IpProtocol::Icmp => L4Repr::Icmp(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(l4_bytes)?, rx)?),
                    IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => return Err(Error::Unsupported),
                };
                NetRepr::Ipv4 { ip, l4 }
            }
            EtherType::Ipv6 => {
                let p = Ipv6Packet::new_checked(payload)?;
                let (ip, at) = Ipv6Repr::parse(&p)?;
                let start = ipv6::HEADER_LEN + at;
                let l4_bytes = &payload[start..start + ip.payload_len];
                let l4 = match ip.next_header {
                    IpProtocol::Tcp => {
                        L6Repr::Tcp(TcpRepr::parse(&TcpPacket::new_checked(l4_bytes)?, ip.src, ip.dst, rx)?)
                    }
                    IpProtocol::Icmpv6 => {
                        let msg = Icmpv6Packet::new_checked(l4_bytes)?;
                        if icmpv6::is_ndp(msg.msg_type()) {
                            // RFC 4861 §7.1: the checksum is verified like any ICMPv6 one.
                            if rx.verify_l4() && !msg.verify_checksum(ip.src, ip.dst) {
                                return Err(Error::BadChecksum);
                            }
                            L6Repr::Ndp(NdpRepr::parse(l4_bytes)?)
                        } else {
                            L6Repr::Icmp(Icmpv6Repr::parse(&msg, ip.src, ip.dst, rx)?)
                        }
                    }
                    _ => return Err(Error::Unsupported),
                };
                NetRepr::Ipv6 { ip, l4 }
            }
            EtherType::Unknown(_) => return Err(Error::Unsupported),
        };
        Ok(FrameRepr { eth, net })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        ethernet::HEADER_LEN
            + match &self.net {
                NetRepr::Arp(a) => a.buffer_len(),
                NetRepr::Ipv4 { l4, .. } => ipv4::HEADER_LEN + l4_len(l4),
                NetRepr::Ipv6 { l4, .. } => ipv6::HEADER_LEN + l6_len(l4),
            }
    }

    /// Write the whole frame. The IP header's `payload_len` is taken from the transport
    /// layer, so a caller need not keep the two in step.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        self.eth.emit(buf)?;
        let rest = &mut buf[ethernet::HEADER_LEN..len];
        match &self.net {
            NetRepr::Arp(a) => {
                a.emit(rest)?;
            }
            NetRepr::Ipv4 { ip, l4 } => {
                let ip = Ipv4Repr { payload_len: l4_len(l4), ..*ip };
                ip.emit(rest)?;
                let seg = &mut rest[ipv4::HEADER_LEN..];
                match l4 {
                    L4Repr::Tcp(t) => t.emit(seg, ip.src, ip.dst)?,
                    L4Repr::Udp(u) => u.emit(seg, ip.src, ip.dst)?,
                    L4Repr::Icmp(i) => i.emit(seg)?,
                };
            }
            NetRepr::Ipv6 { ip, l4 } => {
                let ip = Ipv6Repr { payload_len: l6_len(l4), ..*ip };
                ip.emit(rest)?;
                let seg = &mut rest[ipv6::HEADER_LEN..];
                match l4 {
                    L6Repr::Tcp(t) => t.emit(seg, ip.src, ip.dst)?,
                    L6Repr::Icmp(i) => i.emit(seg, ip.src, ip.dst)?,
                    L6Repr::Ndp(n) => n.emit(seg, ip.src, ip.dst)?,
                };
            }
        }
        Ok(len)
    }
}

fn l6_len(l4: &L6Repr<'_>) -> usize {
    match l4 {
        L6Repr::Tcp(t) => t.buffer_len(),
        L6Repr::Icmp(i) => i.buffer_len(),
        L6Repr::Ndp(n) => n.buffer_len(),
    }
}

fn l4_len(l4: &L4Repr<'_>) -> usize {
    match l4 {
        L4Repr::Tcp(t) => t.buffer_len(),
        L4Repr::Udp(u) => u.buffer_len(),
        L4Repr::Icmp(i) => i.buffer_len(),
    }
}

/// One line in the manner of `tcpdump -n`, for logs and the `xtcp decode` diagnostic.
impl core::fmt::Display for FrameRepr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use super::arp::ArpOperation;

        match &self.net {
            NetRepr::Arp(a) => match a.operation {
                ArpOperation::Request => write!(f, "ARP request who-has {} tell {}", a.target_ip, a.source_ip),
                ArpOperation::Reply => write!(f, "ARP reply {} is-at {}", a.source_ip, a.source_mac),
            },
            NetRepr::Ipv4 { ip, l4 } => match l4 {
                L4Repr::Tcp(t) => write_tcp(f, "IP", ip.src.into(), ip.dst.into(), t),
                L4Repr::Udp(u) => {
                    write!(
                        f,
                        "IP {}.{} > {}.{}: UDP, length {}",
                        ip.src,
                        u.src_port,
                        ip.dst,
                        u.dst_port,
                        u.payload.len()
                    )
                }
                L4Repr::Icmp(i) => {
                    write!(f, "IP {} > {}: ICMP ", ip.src, ip.dst)?;
                    match i {
                        Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                            write!(f, "echo request, id {ident}, seq {seq_no}, length {}", data.len() + 8)
                        }
                        Icmpv4Repr::EchoReply { ident, seq_no, data } => {
                            write!(f, "echo reply, id {ident}, seq {seq_no}, length {}", data.len() + 8)
                        }
                        Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, .. } => {
                            write!(f, "{} unreachable ({reason:?}", header.dst)?;
                            if *next_hop_mtu != 0 {
                                write!(f, ", mtu {next_hop_mtu}")?;
                            }
                            write!(f, ")")
                        }
                        Icmpv4Repr::TimeExceeded { reason, header, .. } => {
                            write!(f, "time exceeded ({reason:?}) for {}", header.dst)
                        }
                    }
                }
            },
            NetRepr::Ipv6 { ip, l4 } => match l4 {
                L6Repr::Tcp(t) => write_tcp(f, "IP6", ip.src.into(), ip.dst.into(), t),
                L6Repr::Icmp(i) => match i {
                    Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
                        write!(
                            f,
                            "IP6 {} > {}: ICMP6, echo request, id {ident}, seq {seq_no}, length {}",
                            ip.src,
                            ip.dst,
                            data.len() + 8
                        )
                    }
                    Icmpv6Repr::EchoReply { ident, seq_no, data } => {
                        write!(
                            f,
                            "IP6 {} > {}: ICMP6, echo reply, id {ident}, seq {seq_no}, length {}",
                            ip.src,
                            ip.dst,
                            data.len() + 8
                        )
                    }
                    Icmpv6Repr::PacketTooBig { mtu, .. } => {
                        write!(f, "IP6 {} > {}: ICMP6, packet too big, mtu {mtu}", ip.src, ip.dst)
                    }
                    other => write!(f, "IP6 {} > {}: ICMP6, {other:?}", ip.src, ip.dst),
                },
                L6Repr::Ndp(n) => match n {
                    NdpRepr::NeighborSolicit { target, .. } => {
                        write!(f, "IP6 {} > {}: ICMP6, neighbor solicitation, who has {target}", ip.src, ip.dst)
                    }
                    NdpRepr::NeighborAdvert { target, .. } => {
                        write!(f, "IP6 {} > {}: ICMP6, neighbor advertisement, tgt is {target}", ip.src, ip.dst)
                    }
                    NdpRepr::RouterSolicit { .. } => {
                        write!(f, "IP6 {} > {}: ICMP6, router solicitation", ip.src, ip.dst)
                    }
                    NdpRepr::RouterAdvert { .. } => {
                        write!(f, "IP6 {} > {}: ICMP6, router advertisement", ip.src, ip.dst)
                    }
                },
            },
        }
    }
}

/// A TCP segment's line (`family` is tcpdump's "IP" or "IP6").
fn write_tcp(
    f: &mut core::fmt::Formatter<'_>,
    family: &str,
    src: core::net::IpAddr,
    dst: core::net::IpAddr,
    t: &TcpRepr<'_>,
) -> core::fmt::Result {
    use super::tcp::TcpFlags;
    write!(f, "{family} {src}.{} > {dst}.{}: Flags [", t.src_port, t.dst_port)?;
    for (flag, c) in [
        (TcpFlags::SYN, 'S'),
        (TcpFlags::FIN, 'F'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
        (TcpFlags::ACK, '.'),
    ] {
        if t.flags.contains(flag) {
            write!(f, "{c}")?;
        }
    }
    write!(f, "], seq {}", t.seq)?;
    if t.flags.contains(TcpFlags::ACK) {
        write!(f, ", ack {}", t.ack)?;
    }
    write!(f, ", win {}", t.window)?;
    let o = &t.options;
    let mut opts = Vec::new();
    if let Some(m) = o.mss {
        opts.push(format!("mss {m}"));
    }
    if o.sack_permitted {
        opts.push("sackOK".into());
    }
    if let Some(ts) = o.timestamp {
        opts.push(format!("TS val {} ecr {}", ts.tsval, ts.tsecr));
    }
    if let Some(ws) = o.window_scale {
        opts.push(format!("wscale {ws}"));
    }
    if !o.sack.is_empty() {
        let blocks: Vec<String> = o.sack.as_slice().iter().map(|(l, r)| format!("{{{l}:{r}}}")).collect();
        opts.push(format!("sack {} {}", o.sack.len(), blocks.join("")));
    }
    if !opts.is_empty() {
        write!(f, ", options [{}]", opts.join(","))?;
    }
    write!(f, ", length {}", t.payload.len())
}
