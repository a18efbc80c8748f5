//! Frames the Linux kernel sent across a veth pair (tests/fixtures/kernel-veth.hex, made by
//! scripts/capture-fixtures) parsed by xtcp's wire layer: checksums verify, fields read back
//! as the kernel wrote them, and re-emitting the parsed frame reproduces the kernel's bytes
//! exactly (same option layout, same checksums). The same over IPv6
//! (tests/fixtures/kernel-veth-ipv6.hex): neighbour discovery, ICMPv6 echo, TCP, UDP.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use xtcp::wire::checksum;
use xtcp::wire::ndp::solicited_node;
use xtcp::wire::{
    ArpOperation, DstUnreachable, Error, EtherType, EthernetFrame, EthernetRepr, FrameRepr, Icmpv4Repr, Icmpv6Packet,
    Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, L4Repr, MacAddr, NdpRepr, NetRepr, RxChecksum, TcpFlags, TcpPacket,
    TcpRepr, UdpRepr,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
const SERVER_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x02]);

/// The stored fixtures, or, when `XTCP_FIXTURES` names a file, frames just captured from this
/// machine's kernel by `scripts/capture-fixtures` (scripts/test does that when root).
fn fixtures() -> BTreeMap<String, Vec<u8>> {
    let path = std::env::var("XTCP_FIXTURES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kernel-veth.hex").to_string());
    load(&path)
}

/// NAME HEX lines, `#` comments.
fn load(path: &str) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("NAME HEX");
            (name.to_string(), hex::decode(hex.trim()).expect("hex"))
        })
        .collect()
}

fn frame<'a>(f: &'a BTreeMap<String, Vec<u8>>, name: &str) -> FrameRepr<'a> {
    let bytes = f.get(name).unwrap_or_else(|| panic!("fixture {name} missing"));
    FrameRepr::parse(bytes, RxChecksum::Verify).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tcp<'a>(f: &'a BTreeMap<String, Vec<u8>>, name: &str) -> TcpRepr<'a> {
    match frame(f, name).net {
        NetRepr::Ipv4 { l4: L4Repr::Tcp(t), .. } => t,
        other => panic!("{name} is not TCP: {other:?}"),
    }
}

#[test]
fn fixtures_are_present() {
    let f = fixtures();
    for name in ["arp-request", "arp-reply", "icmp-echo-request", "icmp-echo-reply", "tcp-syn", "tcp-syn-ack", "udp"] {
        assert!(f.contains_key(name), "fixture {name} missing");
    }
    assert!(f.len() >= 15, "only {} fixtures", f.len());
}

#[test]
fn every_frame_parses_with_verified_checksums_and_re_emits_byte_exact() {
    for (name, bytes) in fixtures() {
        if name.ends_with("-partial-csum") {
            continue;
        }
        let r = FrameRepr::parse(&bytes, RxChecksum::Verify).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).unwrap();
        assert_eq!(hex::encode(&out), hex::encode(&bytes), "{name}: re-emitted bytes differ");
        // The IPv4 header sums to all ones: the checksum the kernel wrote is right.
        if let NetRepr::Ipv4 { .. } = r.net {
            assert_eq!(checksum::sum(&bytes[14..34]), 0xffff, "{name}");
        }
    }
}

#[test]
fn partial_checksum_from_offload_is_refused_unless_trusted() {
    let f = fixtures();
    let bytes = &f["tcp-syn-partial-csum"];
    assert_eq!(FrameRepr::parse(bytes, RxChecksum::Verify), Err(Error::BadChecksum));
    let r = FrameRepr::parse(bytes, RxChecksum::TrustL4).expect("parses when the device vouches for L4");
    // Re-emitted, it differs from the kernel's frame only in the (now complete) TCP checksum.
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut out).unwrap();
    let csum_at = 14 + 20 + 16;
    assert_ne!(out[csum_at..csum_at + 2], bytes[csum_at..csum_at + 2]);
    out[csum_at..csum_at + 2].copy_from_slice(&bytes[csum_at..csum_at + 2]);
    assert_eq!(&out, bytes);
    // The RST the closed port sent back acknowledges that SYN (RFC 9293 §3.10.7.1).
    let NetRepr::Ipv4 { l4: L4Repr::Tcp(syn), .. } = r.net else { panic!("not TCP") };
    let rst = tcp(&f, "tcp-ack-rst");
    assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(rst.ack, syn.seq.wrapping_add(1));
    assert_eq!(rst.seq, 0);
}

#[test]
fn arp_exchange() {
    let f = fixtures();
    let NetRepr::Arp(req) = frame(&f, "arp-request").net else { panic!("not ARP") };
    assert_eq!(req.operation, ArpOperation::Request);
    assert_eq!((req.source_mac, req.source_ip, req.target_ip), (CLIENT_MAC, CLIENT, SERVER));
    assert!(frame(&f, "arp-request").eth.dst.is_broadcast());
    let NetRepr::Arp(rep) = frame(&f, "arp-reply").net else { panic!("not ARP") };
    assert_eq!(rep.operation, ArpOperation::Reply);
    assert_eq!((rep.source_mac, rep.source_ip), (SERVER_MAC, SERVER));
    assert_eq!((rep.target_mac, rep.target_ip), (CLIENT_MAC, CLIENT));
}

#[test]
fn icmp_echo_and_port_unreachable() {
    let f = fixtures();
    let NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(Icmpv4Repr::EchoRequest { ident, seq_no, data }) } =
        frame(&f, "icmp-echo-request").net
    else {
        panic!("not an echo request")
    };
    assert_eq!((ip.src, ip.dst, ip.protocol, ip.ttl), (CLIENT, SERVER, IpProtocol::Icmp, 64));
    assert_eq!(seq_no, 1);
    assert_eq!(data.len(), 56);
    let NetRepr::Ipv4 { l4: L4Repr::Icmp(Icmpv4Repr::EchoReply { ident: i2, seq_no: s2, data: d2 }), .. } =
        frame(&f, "icmp-echo-reply").net
    else {
        panic!("not an echo reply")
    };
    assert_eq!((i2, s2, d2), (ident, seq_no, data));
    // The UDP datagram to a closed port drew a port-unreachable quoting its header.
    let NetRepr::Ipv4 { l4: L4Repr::Icmp(Icmpv4Repr::DstUnreachable { reason, header, data, .. }), .. } =
        frame(&f, "icmp-other").net
    else {
        panic!("not a destination unreachable")
    };
    assert_eq!(reason, DstUnreachable::PortUnreachable);
    assert_eq!((header.src, header.dst, header.protocol), (CLIENT, SERVER, IpProtocol::Udp));
    assert!(data.len() >= 8);
    assert_eq!(u16::from_be_bytes([data[2], data[3]]), 9999);
}

#[test]
fn tcp_handshake_data_and_close() {
    let f = fixtures();
    let syn = tcp(&f, "tcp-syn");
    assert_eq!(syn.flags, TcpFlags::SYN);
    assert_eq!(syn.dst_port, 8080);
    assert_eq!(syn.options.mss, Some(1460));
    assert!(syn.options.sack_permitted);
    assert!(syn.options.window_scale.is_some());
    let ts = syn.options.timestamp.expect("Linux sends timestamps");
    assert_eq!(ts.tsecr, 0);

    let syn_ack = tcp(&f, "tcp-syn-ack");
    assert_eq!(syn_ack.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1));
    assert_eq!(syn_ack.options.timestamp.unwrap().tsecr, ts.tsval);

    let ack = tcp(&f, "tcp-ack");
    assert_eq!(ack.ack, syn_ack.seq.wrapping_add(1));
    assert!(ack.payload.is_empty());
    assert!(ack.options.mss.is_none() && ack.options.timestamp.is_some());

    let req = tcp(&f, "tcp-ack-psh-data");
    assert_eq!(req.payload, b"hello xtcp");
    assert_eq!(req.seq, syn.seq.wrapping_add(1));
    let resp = tcp(&f, "tcp-ack-psh-data-2");
    assert_eq!(resp.payload, b"pong:hello xtcp");
    assert_eq!(resp.seq, syn_ack.seq.wrapping_add(1));

    // Both sides sent a FIN; each FIN occupies one sequence number (RFC 9293 §3.4).
    let fins: Vec<_> = ["tcp-ack-fin", "tcp-ack-fin-2"].iter().map(|n| tcp(&f, n)).collect();
    assert!(fins.iter().all(|t| t.flags.contains(TcpFlags::FIN) && t.segment_len() == 1));
}

#[test]
fn udp_datagram() {
    let f = fixtures();
    let NetRepr::Ipv4 { ip, l4: L4Repr::Udp(UdpRepr { dst_port, payload, .. }) } = frame(&f, "udp").net else {
        panic!("not UDP")
    };
    assert_eq!((ip.src, ip.dst), (CLIENT, SERVER));
    assert_eq!((dst_port, payload), (9999, &b"udp datagram"[..]));
}

#[test]
fn truncating_any_fixture_never_panics_and_is_refused() {
    for (name, bytes) in fixtures() {
        for cut in 0..bytes.len() {
            let r = FrameRepr::parse(&bytes[..cut], RxChecksum::Verify);
            // Any cut before the end of the IP datagram must be refused.
            assert!(r.is_err(), "{name} cut at {cut} parsed: {r:?}");
        }
    }
}

// ---------------------------------------------------------------- IPv6 (issue #13's wire layer)

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// tests/fixtures/kernel-veth-ipv6.hex, or the file `XTCP_FIXTURES_V6` names (a live capture).
fn fixtures_v6() -> BTreeMap<String, Vec<u8>> {
    let path = std::env::var("XTCP_FIXTURES_V6")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kernel-veth-ipv6.hex").to_string());
    load(&path)
}

/// One IPv6 frame taken apart: Ethernet, the IPv6 header (extension headers walked), and the
/// upper-layer packet.
struct V6<'a> {
    eth: EthernetRepr,
    ip: Ipv6Repr,
    l4: &'a [u8],
}

fn v6<'a>(f: &'a BTreeMap<String, Vec<u8>>, name: &str) -> V6<'a> {
    let bytes = f.get(name).unwrap_or_else(|| panic!("fixture {name} missing"));
    let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
    let eth = EthernetRepr::parse(&frame).unwrap();
    assert_eq!(eth.ethertype, EtherType::Ipv6, "{name}");
    let p = Ipv6Packet::new_checked(&bytes[14..]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (ip, at) = Ipv6Repr::parse(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
    V6 { eth, ip, l4: &bytes[14 + 40 + at..] }
}

#[test]
fn ipv6_fixtures_are_present() {
    let f = fixtures_v6();
    for name in
        ["ndp-ns", "ndp-na", "ndp-ns-dad", "icmpv6-echo-request", "icmpv6-echo-reply", "tcp-syn", "tcp-syn-ack", "udp"]
    {
        assert!(f.contains_key(name), "fixture {name} missing");
    }
}

/// Every frame: the header walk finds the upper layer, its checksum over RFC 8200 §8.1's
/// pseudo-header verifies, and re-emitting the IPv6 header (and the TCP segment, or the
/// ICMPv6 message) reproduces the kernel's bytes exactly.
#[test]
fn every_ipv6_frame_parses_with_verified_checksums_and_re_emits_byte_exact() {
    let f = fixtures_v6();
    for (name, bytes) in &f {
        let V6 { eth, ip, l4 } = v6(&f, name);
        let mut head = [0u8; 54];
        eth.emit(&mut head).unwrap();
        ip.emit(&mut head[14..]).unwrap();
        assert_eq!(hex::encode(head), hex::encode(&bytes[..54]), "{name}: headers re-emitted differ");
        let ph = xtcp::wire::ipv6::pseudo_header_v6(ip.src, ip.dst, ip.next_header.into(), l4.len() as u32);
        assert_eq!(checksum::combine(&[ph, checksum::sum(l4)]), 0xffff, "{name}: checksum");
        match ip.next_header {
            IpProtocol::Tcp => {
                let p = TcpPacket::new_checked(l4).unwrap();
                let t =
                    TcpRepr::parse(&p, ip.src, ip.dst, RxChecksum::Verify).unwrap_or_else(|e| panic!("{name}: {e}"));
                let mut out = vec![0u8; t.buffer_len()];
                t.emit(&mut out, ip.src, ip.dst).unwrap();
                assert_eq!(hex::encode(&out), hex::encode(l4), "{name}: TCP re-emitted differs");
                // A wrong address in the pseudo-header fails the checksum.
                assert_eq!(TcpRepr::parse(&p, ip.dst, ip.dst, RxChecksum::Verify), Err(Error::BadChecksum));
            }
            IpProtocol::Icmpv6 => {
                let p = Icmpv6Packet::new_checked(l4).unwrap();
                assert!(p.verify_checksum(ip.src, ip.dst), "{name}");
                let mut out = vec![0u8; l4.len()];
                if let Ok(ndp) = NdpRepr::parse(l4) {
                    assert_eq!(ndp.emit(&mut out, ip.src, ip.dst).unwrap(), l4.len(), "{name}");
                } else {
                    let m = Icmpv6Repr::parse(&p, ip.src, ip.dst, RxChecksum::Verify).unwrap();
                    assert_eq!(m.emit(&mut out, ip.src, ip.dst).unwrap(), l4.len(), "{name}");
                }
                assert_eq!(hex::encode(&out), hex::encode(l4), "{name}: ICMPv6 re-emitted differs");
            }
            IpProtocol::Udp => assert_eq!(u16::from_be_bytes([l4[4], l4[5]]) as usize, l4.len(), "{name}"),
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

/// RFC 4861 §7.2 as the kernel does it: the solicitation goes to the target's solicited-node
/// group with our link-layer address, hop limit 255 (§7.1.1 refuses anything less); the
/// answer is solicited and overriding, with the target's link-layer address; DAD's probe
/// (RFC 4862 §5.4.2) comes from the unspecified address and carries no link-layer address,
/// only RFC 7527's nonce.
#[test]
fn ipv6_neighbour_discovery() {
    let f = fixtures_v6();
    let ns = v6(&f, "ndp-ns");
    assert_eq!((ns.ip.src, ns.ip.dst, ns.ip.hop_limit), (CLIENT6, solicited_node(SERVER6), 255));
    assert_eq!(ns.eth.dst, MacAddr([0x33, 0x33, 0xff, 0, 0, 2]), "RFC 2464 §7: 33:33 + the group's last 32 bits");
    match NdpRepr::parse(ns.l4).unwrap() {
        NdpRepr::NeighborSolicit { target, options } => {
            assert_eq!(target, SERVER6);
            assert_eq!(options.source_ll, Some(CLIENT_MAC));
        }
        other => panic!("ndp-ns: {other:?}"),
    }
    let na = v6(&f, "ndp-na");
    assert_eq!((na.ip.src, na.ip.dst, na.ip.hop_limit), (SERVER6, CLIENT6, 255));
    match NdpRepr::parse(na.l4).unwrap() {
        NdpRepr::NeighborAdvert { router, solicited, override_, target, options } => {
            assert_eq!((router, solicited, override_, target), (false, true, true, SERVER6));
            assert_eq!(options.target_ll, Some(SERVER_MAC));
        }
        other => panic!("ndp-na: {other:?}"),
    }
    let dad = v6(&f, "ndp-ns-dad");
    let third = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3);
    assert_eq!((dad.ip.src, dad.ip.dst), (Ipv6Addr::UNSPECIFIED, solicited_node(third)));
    match NdpRepr::parse(dad.l4).unwrap() {
        NdpRepr::NeighborSolicit { target, options } => {
            assert_eq!(target, third);
            assert_eq!(options.source_ll, None, "RFC 4861 §7.1.1: none from the unspecified address");
            assert!(options.nonce.is_some(), "Linux's enhanced DAD (RFC 7527) sends a nonce");
        }
        other => panic!("ndp-ns-dad: {other:?}"),
    }
}

#[test]
fn ipv6_echo_and_tcp_handshake() {
    let f = fixtures_v6();
    let (rq, rp) = (v6(&f, "icmpv6-echo-request"), v6(&f, "icmpv6-echo-reply"));
    let parse = |m: &V6<'_>| {
        let p = Icmpv6Packet::new_checked(m.l4).unwrap();
        match Icmpv6Repr::parse(&p, m.ip.src, m.ip.dst, RxChecksum::Verify).unwrap() {
            Icmpv6Repr::EchoRequest { ident, seq_no, data } | Icmpv6Repr::EchoReply { ident, seq_no, data } => {
                (ident, seq_no, data.to_vec())
            }
            other => panic!("not an echo: {other:?}"),
        }
    };
    assert_eq!(parse(&rq), parse(&rp), "RFC 4443 §4.2: the reply echoes identifier, sequence and data");
    assert_eq!((rq.ip.src, rq.ip.dst), (CLIENT6, SERVER6));
    let syn = v6(&f, "tcp-syn");
    let p = TcpPacket::new_checked(syn.l4).unwrap();
    let t = TcpRepr::parse(&p, syn.ip.src, syn.ip.dst, RxChecksum::Verify).unwrap();
    assert_eq!(t.flags, TcpFlags::SYN);
    assert_eq!(t.dst_port, 8080);
    // MSS = MTU − 60 over IPv6 (RFC 8200: a 40-byte header; RFC 9293 §3.7.1).
    assert_eq!(t.options.mss, Some(1440));
    let data = v6(&f, "tcp-ack-psh-data");
    let p = TcpPacket::new_checked(data.l4).unwrap();
    assert_eq!(TcpRepr::parse(&p, data.ip.src, data.ip.dst, RxChecksum::Verify).unwrap().payload, b"hello xtcp");
}

#[test]
fn truncating_any_ipv6_fixture_never_panics_and_is_refused() {
    for (name, bytes) in fixtures_v6() {
        for cut in 14..bytes.len() {
            // The header walk or the length check must refuse any cut.
            let r = Ipv6Packet::new_checked(&bytes[14..cut]).and_then(|p| Ipv6Repr::parse(&p));
            assert!(r.is_err(), "{name} cut at {cut} parsed: {r:?}");
        }
    }
}
