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
                    IpProtocol::Unknown(_) => return Err(Error::Unsupported),
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
