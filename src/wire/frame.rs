//! A whole received frame, parsed top to bottom: Ethernet II, then ARP or IPv4, then ICMPv4,
//! TCP or UDP. This is the single entry point for untrusted bytes; the stack's input path and
//! the whole-frame fuzz target both go through it.

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpPacket, TcpRepr};
use super::udp::{UdpPacket, UdpRepr};
use super::{Error, Result, RxChecksum};

/// The transport layer of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Repr<'a> {
    Tcp(TcpRepr<'a>),
    Udp(UdpRepr<'a>),
    Icmp(Icmpv4Repr<'a>),
}

/// What an Ethernet frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetRepr<'a> {
    Arp(ArpRepr),
    Ipv4 { ip: Ipv4Repr, l4: L4Repr<'a> },
}

/// A parsed frame. Payloads borrow the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRepr<'a> {
    pub eth: EthernetRepr,
    pub net: NetRepr<'a>,
}

impl<'a> FrameRepr<'a> {
    /// Parse untrusted bytes. Never panics; every rejection is an [`Error`] to count.
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
            EtherType::Ipv6 | EtherType::Unknown(_) => return Err(Error::Unsupported),
        };
        Ok(FrameRepr { eth, net })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        ethernet::HEADER_LEN
            + match &self.net {
                NetRepr::Arp(a) => a.buffer_len(),
                NetRepr::Ipv4 { l4, .. } => ipv4::HEADER_LEN + l4_len(l4),
            }
    }

    /// Write the whole frame. The IPv4 header's `payload_len` is taken from the transport
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
        }
        Ok(len)
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
        use super::tcp::TcpFlags;
        match &self.net {
            NetRepr::Arp(a) => match a.operation {
                ArpOperation::Request => write!(f, "ARP request who-has {} tell {}", a.target_ip, a.source_ip),
                ArpOperation::Reply => write!(f, "ARP reply {} is-at {}", a.source_ip, a.source_mac),
            },
            NetRepr::Ipv4 { ip, l4 } => match l4 {
                L4Repr::Tcp(t) => {
                    write!(f, "IP {}.{} > {}.{}: Flags [", ip.src, t.src_port, ip.dst, t.dst_port)?;
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
                        let blocks: Vec<String> =
                            o.sack.as_slice().iter().map(|(l, r)| format!("{{{l}:{r}}}")).collect();
                        opts.push(format!("sack {} {}", o.sack.len(), blocks.join("")));
                    }
                    if !opts.is_empty() {
                        write!(f, ", options [{}]", opts.join(","))?;
                    }
                    write!(f, ", length {}", t.payload.len())
                }
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
        }
    }
}
