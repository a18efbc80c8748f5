//! The interpreter's link: an in-memory device the stack sends into and receives from, as
//! packetdrill's tun device is for the kernel, and the framing of the script's segments.
//!
//! The script's peer lives at the far end: its TCP segments go in as Ethernet frames
//! (IPv4 or IPv6, CE-marked when the line says so); what the stack transmits comes out as
//! frames, whose TCP segments the interpreter matches and whose ARP requests and IPv6
//! neighbour solicitations for the peer it answers at once (the tun device needs neither;
//! an Ethernet device does, and the stack's neighbour cache is exercised on the way).

use super::parse::{Flags, TcpOpt};
use crate::io::pool::FramePool;
use crate::io::{Device, Frame};
use crate::time::Instant;
use crate::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetRepr, FrameRepr, IpProtocol, Ipv4Repr, Ipv6Repr, L4Repr, L6Repr, MacAddr,
    NdpOptions, NdpRepr, NetRepr, RxChecksum, TcpFlags, TcpOption, TcpPacket,
};
use core::net::IpAddr;
use std::collections::VecDeque;

/// The stack's MAC address.
pub const LOCAL_MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0, 0, 1]);
/// The script's peer's MAC address.
pub const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0, 0, 2]);
/// Bytes of one frame buffer: the largest segment a script injects (packetdrill's tun device
/// takes up to 64 KiB at once, as GRO hands the kernel) with its headers.
const FRAME_SIZE: usize = 65536 + 256;
/// Frame buffers of the device's pool (received frames the stack holds, frames to send).
pub const FRAMES: usize = 256;
/// IPv6 neighbour discovery's hop limit (RFC 4861 §7.1.2).
const NDP_HOP_LIMIT: u8 = 255;

/// A device whose wire is two queues of byte vectors the interpreter reads and fills.
#[derive(Debug)]
pub struct ScriptDevice {
    pool: FramePool,
    /// Frames for the stack to receive, oldest first.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames the stack sent, oldest first.
    pub tx: VecDeque<Vec<u8>>,
}

impl ScriptDevice {
    pub fn new() -> ScriptDevice {
        ScriptDevice { pool: FramePool::new(FRAMES, FRAME_SIZE), rx: VecDeque::new(), tx: VecDeque::new() }
    }
}

impl Device for ScriptDevice {
    fn frame_capacity(&self) -> usize {
        FRAME_SIZE
    }

    fn mac(&self) -> MacAddr {
        LOCAL_MAC
    }

    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            // No free buffer: the frame waits (the interpreter delivers one at a time, and the
            // stack lends at most its bound of received frames).
            let Some(bytes) = self.rx.front() else { break };
            let Some(frame) = self.pool.fill(bytes) else { break };
            self.rx.pop_front();
            out.push(frame);
            n += 1;
        }
        n
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        self.pool.frame(f)
    }

    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        self.pool.buffer_mut(f)
    }

    fn recycle(&mut self, f: Frame) {
        self.pool.recycle(f);
    }

    fn alloc_tx(&mut self) -> Option<Frame> {
        self.pool.alloc()
    }

    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize {
        let n = frames.len();
        for f in frames.drain(..) {
            self.tx.push_back(self.pool.frame(&f).to_vec());
            self.pool.recycle(f);
        }
        n
    }
}

/// A segment the stack sent, with its options as they were on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSeg {
    pub time: Instant,
    pub local_port: u16,
    pub remote_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<TcpOpt>,
    pub payload: Vec<u8>,
    /// Sent ECN-capable: ECT(0) in the IP header (RFC 3168 §5).
    pub ect: bool,
}

/// What a frame the stack sent was.
#[derive(Debug)]
pub enum Sent {
    /// A TCP segment to the peer.
    Segment(OutSeg),
    /// A frame the peer answers at once (an ARP request or neighbour solicitation for the
    /// peer's address): the answer, to deliver.
    Answer(Vec<u8>, String),
    /// Anything else (gratuitous ARP, duplicate address detection, a reset to another
    /// address...): what it was, for the trace.
    Other(String),
}

/// Read a frame the stack sent. Frames that fail to parse (a bad checksum included: the
/// stack's own checksums are verified here) are the stack's fault: an error.
pub fn classify(bytes: &[u8], now: Instant, ips: (IpAddr, IpAddr)) -> Result<Sent, String> {
    let f = FrameRepr::parse(bytes, RxChecksum::Verify)
        .map_err(|e| format!("the stack sent a frame that does not parse ({e}): {bytes:02x?}"))?;
    let (local, peer) = ips;
    match f.net {
        NetRepr::Arp(a) if a.operation == ArpOperation::Request && IpAddr::V4(a.target_ip) == peer => {
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                source_mac: PEER_MAC,
                source_ip: a.target_ip,
                target_mac: a.source_mac,
                target_ip: a.source_ip,
            };
            let frame = FrameRepr {
                eth: EthernetRepr { src: PEER_MAC, dst: a.source_mac, ethertype: EtherType::Arp },
                net: NetRepr::Arp(reply),
            };
            Ok(Sent::Answer(emit(&frame)?, format!("answered {f}")))
        }
        NetRepr::Ipv6 { ip, l4: L6Repr::Ndp(NdpRepr::NeighborSolicit { target, .. }) }
            if IpAddr::V6(target) == peer && !ip.src.is_unspecified() =>
        {
            // RFC 4861 §7.2.4: a solicited advertisement to the soliciting node, with our
            // link-layer address.
            let na = NdpRepr::NeighborAdvert {
                router: false,
                solicited: true,
                override_: true,
                target,
                options: NdpOptions { target_ll: Some(PEER_MAC), ..NdpOptions::default() },
            };
            let ip6 = Ipv6Repr {
                src: target,
                dst: ip.src,
                next_header: IpProtocol::Icmpv6,
                payload_len: 0,
                hop_limit: NDP_HOP_LIMIT,
                traffic_class: 0,
                flow_label: 0,
            };
            let frame = FrameRepr {
                eth: EthernetRepr { src: PEER_MAC, dst: f.eth.src, ethertype: EtherType::Ipv6 },
                net: NetRepr::Ipv6 { ip: ip6, l4: L6Repr::Ndp(na) },
            };
            Ok(Sent::Answer(emit(&frame)?, format!("answered {f}")))
        }
        NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(_) } if IpAddr::V4(ip.src) == local && IpAddr::V4(ip.dst) == peer => {
            let ect = ip.dscp_ecn & 0b11 == 0b10;
            out_seg(tcp_bytes(bytes, crate::wire::ipv4::HEADER_LEN), now, ect)
        }
        NetRepr::Ipv6 { ip, l4: L6Repr::Tcp(_) } if IpAddr::V6(ip.src) == local && IpAddr::V6(ip.dst) == peer => {
            let ect = ip.traffic_class & 0b11 == 0b10;
            out_seg(tcp_bytes(bytes, crate::wire::ipv6::HEADER_LEN), now, ect)
        }
        _ => Ok(Sent::Other(f.to_string())),
    }
}

/// The TCP segment of a frame whose IP header is `ip_len` long (the stack sends no IP options
/// or IPv6 extension headers).
fn tcp_bytes(frame: &[u8], ip_len: usize) -> &[u8] {
    &frame[crate::wire::ethernet::HEADER_LEN + ip_len..]
}

fn emit(frame: &FrameRepr<'_>) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; frame.buffer_len()];
    frame.emit(&mut buf).map_err(|e| format!("internal error: cannot build an answer frame: {e}"))?;
    Ok(buf)
}

/// What the script's peer sends, as the bytes of a TCP segment or ICMP message (checksum
/// included), in a frame for the stack: over IPv4 or IPv6 as `ips` are, Congestion
/// Experienced when `ce`. `protocol` is IPv4's (ICMP becomes ICMPv6 over IPv6).
pub fn inbound_frame(l4: &[u8], protocol: IpProtocol, ips: (IpAddr, IpAddr), ce: bool) -> Vec<u8> {
    let ecn = if ce { 0b11 } else { 0 };
    let eth_len = crate::wire::ethernet::HEADER_LEN;
    let (local, peer) = ips;
    let (ethertype, ip_len) = match peer {
        IpAddr::V4(_) => (EtherType::Ipv4, crate::wire::ipv4::HEADER_LEN),
        IpAddr::V6(_) => (EtherType::Ipv6, crate::wire::ipv6::HEADER_LEN),
    };
    let mut buf = vec![0u8; eth_len + ip_len + l4.len()];
    let eth = EthernetRepr { src: PEER_MAC, dst: LOCAL_MAC, ethertype };
    // Buffers are sized for their headers: these cannot fail.
    let _ = eth.emit(&mut buf);
    match (peer, local) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let ip = Ipv4Repr {
                src,
                dst,
                protocol,
                payload_len: l4.len(),
                ttl: 64,
                ident: 0,
                dont_frag: true,
                dscp_ecn: ecn,
            };
            let _ = ip.emit(&mut buf[eth_len..]);
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Repr {
                src,
                dst,
                next_header: if protocol == IpProtocol::Icmp { IpProtocol::Icmpv6 } else { protocol },
                payload_len: l4.len(),
                hop_limit: 64,
                traffic_class: ecn,
                flow_label: 0,
            };
            let _ = ip.emit(&mut buf[eth_len..]);
        }
        _ => {}
    }
    buf[eth_len + ip_len..].copy_from_slice(l4);
    buf
}

fn flags_of(f: TcpFlags) -> Flags {
    Flags {
        fin: f.contains(TcpFlags::FIN),
        syn: f.contains(TcpFlags::SYN),
        rst: f.contains(TcpFlags::RST),
        psh: f.contains(TcpFlags::PSH),
        ack: f.contains(TcpFlags::ACK),
        urg: f.contains(TcpFlags::URG),
        ece: f.contains(TcpFlags::ECE),
        cwr: f.contains(TcpFlags::CWR),
        ae: f.contains(TcpFlags::NS),
    }
}

/// A segment as it left the stack, its options listed in their order on the wire.
fn out_seg(bytes: &[u8], time: Instant, ect: bool) -> Result<Sent, String> {
    let p =
        TcpPacket::new_checked(bytes).map_err(|e| format!("the stack sent a TCP segment that does not parse: {e}"))?;
    let mut options = Vec::new();
    let mut rest = p.options();
    while !rest.is_empty() {
        let Ok((opt, after)) = TcpOption::parse(rest) else {
            options.push(TcpOpt::Unknown(rest[0]));
            break;
        };
        options.push(match opt {
            TcpOption::EndOfList => TcpOpt::Eol,
            TcpOption::NoOperation => TcpOpt::Nop,
            TcpOption::MaxSegmentSize(v) => TcpOpt::Mss(v),
            TcpOption::WindowScale(v) => TcpOpt::WScale(v),
            TcpOption::SackPermitted => TcpOpt::SackOk,
            TcpOption::Sack(b) => TcpOpt::Sack(b.as_slice().to_vec()),
            TcpOption::Timestamp(t) => TcpOpt::Ts { val: t.tsval, ecr: t.tsecr },
            TcpOption::Unknown { kind, .. } => TcpOpt::Unknown(kind),
        });
        rest = after;
    }
    Ok(Sent::Segment(OutSeg {
        time,
        local_port: p.src_port(),
        remote_port: p.dst_port(),
        seq: p.seq_number(),
        ack: p.ack_number(),
        flags: flags_of(p.flags()),
        window: p.window_len(),
        urgent: p.urgent_at(),
        options,
        payload: p.payload().to_vec(),
        ect,
    }))
}
