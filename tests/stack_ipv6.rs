#![cfg(feature = "mem")]
//! IPv6 through two whole stacks over the in-memory link: neighbour discovery, TCP over IPv6
//! (clean and lossy), one listener for both families, resets, ICMPv6 echo and Packet Too Big.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use xtcp::io::mem::Faults;
use xtcp::stack::{link_local_from, Handle, StackConfig, StackError, StackEvent};
use xtcp::tcp::{CloseReason, State, TcpError};
use xtcp::time::Duration;
use xtcp::wire::{
    EtherType, EthernetRepr, FrameRepr, Icmpv6Repr, IpProtocol, Ipv6Repr, L6Repr, NdpOptions, NdpRepr, NetRepr,
    RxChecksum,
};
#[path = "support/pair.rs"]
mod support;
use support::*;

/// Addresses from RFC 5180's benchmarking range.
const V6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const V6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

fn dual(ip4: std::net::Ipv4Addr, ip6: Ipv6Addr, seed: u8) -> StackConfig {
    let mut c = config(ip4, seed);
    c.ipv6 = vec![ip6];
    c
}

fn pair(faults: Faults, seed: u64) -> Pair {
    Pair::with(faults, seed, dual(IP_A, V6_A, 1), dual(IP_B, V6_B, 2))
}

/// `n` bytes each way over one connection from B to `dst` (A listens on its port), every
/// byte checked, both sides closed; returns (client, server).
fn echo_both_ways(p: &mut Pair, listener: Handle, dst: SocketAddr, n: usize) -> (Handle, Handle) {
    let client = p.b.connect(dst).unwrap();
    p.run_until(Duration::from_secs(30), |p| p.has('b', client, StackEvent::Connected));
    p.run_until(Duration::from_secs(5), |p| p.has('a', listener, StackEvent::Accepted));
    let server = p.a.accept(listener).unwrap().expect("a connection waits");
    let (mut sent, mut got, mut closed) = ([0usize; 2], [0usize; 2], [false; 2]);
    let mut buf = vec![0u8; 8192];
    p.run_until(Duration::from_secs(600), |p| {
        for (side, h, stream) in [(0usize, client, 1u8), (1usize, server, 2u8)] {
            let st = if side == 0 { &mut p.b } else { &mut p.a };
            while sent[side] < n {
                let k = (n - sent[side]).min(4096);
                let chunk: Vec<u8> = (0..k).map(|j| byte(stream, sent[side] + j)).collect();
                match st.send(h, &chunk) {
                    Ok(m) => sent[side] += m,
                    Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            loop {
                match st.recv(h, &mut buf) {
                    Ok(0) | Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                    Ok(m) => {
                        for (j, &b) in buf[..m].iter().enumerate() {
                            assert_eq!(b, byte(3 - stream, got[side] + j), "side {side} byte {}", got[side] + j);
                        }
                        got[side] += m;
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            if sent[side] == n && got[side] == n && !closed[side] {
                st.close(h).unwrap();
                closed[side] = true;
            }
        }
        closed == [true, true]
    });
    (client, server)
}

#[test]
fn tcp_over_ipv6_resolves_by_neighbour_discovery_and_moves_data_both_ways() {
    let mut p = pair(Faults::default(), 61);
    let listener = p.a.listen(80, 16).unwrap();
    let (client, server) = echo_both_ways(&mut p, listener, SocketAddrV6::new(V6_A, 80, 0, 0).into(), 300_000);
    // The connection is IPv6 end to end, from B's first address, with IPv6's MSS.
    let c = p.b.tcb(client).unwrap();
    assert_eq!(c.local().ip(), IpAddr::V6(V6_B));
    assert_eq!(c.remote(), SocketAddr::new(V6_A.into(), 80));
    assert_eq!(c.send_mss(), 1460 - 20 - 12, "MTU 1500 − 40 − 20, less the timestamp option");
    assert_eq!(p.a.tcb(server).unwrap().remote().ip(), IpAddr::V6(V6_B));
    p.run_until(Duration::from_secs(200), |p| {
        p.has('a', server, StackEvent::Closed(CloseReason::Normal))
            && p.has('b', client, StackEvent::Closed(CloseReason::Normal))
    });
    // Each probed its two addresses at start (RFC 4862 §5.4.2: the global and the link-local
    // one); then B solicited A (RFC 4861 §7.2.2) and learned it from the answer; A learned B
    // from the solicitation (§7.2.3) and needed none of its own. No ARP beyond the start-up
    // announcements, nothing dropped, no duplicate.
    let (a, b) = (p.a.counters(), p.b.counters());
    assert_eq!((b.ndp_solicits_out, a.ndp_solicits_in, a.ndp_solicits_out), (2 + 1, 2 + 1, 2), "{a:?}");
    assert_eq!((a.ipv6_duplicates, b.ipv6_duplicates), (0, 0));
    assert!(b.ndp_adverts_in >= 1);
    for c in [a, b] {
        assert_eq!((c.arp_requests_in, c.arp_requests_out), (1, 1), "only the gratuitous ARPs");
        assert_eq!(c.drops(), 0, "{c:?}");
    }
}

#[test]
fn tcp_over_ipv6_recovers_from_loss_and_reordering() {
    let faults = Faults { loss: 0.03, reorder: 0.02, reorder_delay: Duration::from_micros(200), ..Faults::default() };
    let mut p = pair(faults, 62);
    let listener = p.a.listen(80, 16).unwrap();
    let (client, _) = echo_both_ways(&mut p, listener, SocketAddrV6::new(V6_A, 80, 0, 0).into(), 200_000);
    assert!(p.b.tcb(client).is_ok_and(|t| t.stats().retransmits > 0) || p.b.counters().tcp_retransmits > 0);
}

#[test]
fn one_listener_answers_ipv4_and_ipv6_clients_at_once() {
    let mut p = pair(Faults::default(), 63);
    let listener = p.a.listen(80, 16).unwrap();
    let v4 = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    let v6 = p.b.connect(SocketAddrV6::new(V6_A, 80, 0, 0)).unwrap();
    let mut remotes = Vec::new();
    p.run_until(Duration::from_secs(10), |p| {
        while let Ok(Some(s)) = p.a.accept(listener) {
            remotes.push(p.a.tcb(s).unwrap().remote().ip());
        }
        remotes.len() == 2
    });
    remotes.sort();
    assert_eq!(remotes, [IpAddr::V4(IP_B), IpAddr::V6(V6_B)]);
    assert_eq!(p.b.tcb(v4).unwrap().state(), State::Established);
    assert_eq!(p.b.tcb(v6).unwrap().state(), State::Established);
}

#[test]
fn a_closed_ipv6_port_answers_with_a_reset() {
    let mut p = pair(Faults::default(), 64);
    let h = p.b.connect(SocketAddrV6::new(V6_A, 9, 0, 0)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', h, StackEvent::Closed(CloseReason::Refused)));
    assert_eq!(p.a.counters().tcp_rsts_out, 1);
    assert_eq!(p.a.counters().tcp_no_socket, 1);
}

#[test]
fn misuse_over_ipv6_returns_typed_errors() {
    let mut p = pair(Faults::default(), 65);
    // To itself, to multicast, from an address of the wrong family or not its own.
    assert_eq!(p.b.connect(SocketAddrV6::new(V6_B, 80, 0, 0)), Err(StackError::ConnectToSelf));
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    assert_eq!(p.b.connect(SocketAddrV6::new(all_nodes, 80, 0, 0)), Err(StackError::InvalidAddress));
    assert_eq!(
        p.b.connect_from(IP_B, SocketAddrV6::new(V6_A, 80, 0, 0), Default::default()),
        Err(StackError::InvalidAddress)
    );
    // A stack without IPv6 refuses IPv6 destinations and ignores IPv6 frames.
    let mut q = Pair::new(Faults::default(), 66);
    assert_eq!(q.b.connect(SocketAddrV6::new(V6_A, 80, 0, 0)), Err(StackError::InvalidAddress));
    assert_eq!(q.a.ipv6_addresses().count(), 0);
}

/// A frame from a raw peer "R" (B's device, its stack unused) to A.
fn frame_from_r(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, dst_mac: xtcp::wire::MacAddr, l4: L6Repr<'_>) -> Vec<u8> {
    let ip = Ipv6Repr {
        src,
        dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: 0,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    let repr = FrameRepr {
        eth: EthernetRepr { src: MAC_B, dst: dst_mac, ethertype: EtherType::Ipv6 },
        net: NetRepr::Ipv6 { ip, l4 },
    };
    let mut v = vec![0u8; repr.buffer_len()];
    repr.emit(&mut v).unwrap();
    v
}

/// The frames A sends to B's device in the next few steps, parsed.
fn from_a(p: &mut Pair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let now = p.now;
        p.a.poll(now);
        p.inner.now += Duration::from_micros(100);
        let now = p.now;
        p.link.set_now(now);
        out.extend(raw_recv(p.b.device_mut()));
    }
    out
}

#[test]
fn neighbour_solicitations_echo_and_bad_ndp_are_handled_by_the_rfcs() {
    let mut p = pair(Faults::default(), 67);
    let _ = from_a(&mut p); // the start-up announcements
    let solicited = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    let ns = |hop_limit| {
        let options = NdpOptions { source_ll: Some(MAC_B), ..NdpOptions::default() };
        frame_from_r(
            V6_B,
            solicited,
            hop_limit,
            xtcp::wire::MacAddr([0x33, 0x33, 0xff, 0, 0, 1]),
            L6Repr::Ndp(NdpRepr::NeighborSolicit { target: V6_A, options }),
        )
    };
    // RFC 4861 §7.1.1: a solicitation with a hop limit other than 255 came from off the link.
    let bad = ns(64);
    raw_send_bytes(&mut p, &bad);
    assert!(from_a(&mut p).is_empty());
    assert_eq!(p.a.counters().ndp_invalid, 1);
    // A valid one: answered, solicited and with override, from the target to the asker.
    raw_send_bytes(&mut p, &ns(255));
    let got = from_a(&mut p);
    assert_eq!(got.len(), 1);
    let f = FrameRepr::parse(&got[0], RxChecksum::Verify).unwrap();
    assert_eq!(f.eth.dst, MAC_B);
    let NetRepr::Ipv6 { ip, l4: L6Repr::Ndp(NdpRepr::NeighborAdvert { solicited, override_, target, options, .. }) } =
        f.net
    else {
        panic!("expected an advertisement: {f}")
    };
    assert_eq!((ip.src, ip.dst, ip.hop_limit), (V6_A, V6_B, 255));
    assert!(solicited && override_);
    assert_eq!((target, options.target_ll), (V6_A, Some(MAC_A)));
    // An echo request to the link-local address comes back from it, data intact.
    let ll_a = link_local_from(MAC_A);
    let echo = Icmpv6Repr::EchoRequest { ident: 7, seq_no: 3, data: b"xtcp ipv6" };
    raw_send_bytes(&mut p, &frame_from_r(link_local_from(MAC_B), ll_a, 64, MAC_A, L6Repr::Icmp(echo)));
    let got = from_a(&mut p);
    assert_eq!(got.len(), 1);
    let f = FrameRepr::parse(&got[0], RxChecksum::Verify).unwrap();
    let NetRepr::Ipv6 { ip, l4: L6Repr::Icmp(Icmpv6Repr::EchoReply { ident, seq_no, data }) } = f.net else {
        panic!("expected an echo reply: {f}")
    };
    assert_eq!((ip.src, ip.dst, ident, seq_no, data), (ll_a, link_local_from(MAC_B), 7, 3, &b"xtcp ipv6"[..]));
    assert_eq!(p.a.counters().icmp_echo_out, 1);
}

fn raw_send_bytes(p: &mut Pair, bytes: &[u8]) {
    use xtcp::io::Device;
    let dev = p.b.device_mut();
    let mut f = dev.alloc_tx().unwrap();
    dev.buffer_mut(&f)[..bytes.len()].copy_from_slice(bytes);
    f.len = bytes.len() as u32;
    let mut v = vec![f];
    dev.tx_burst(&mut v);
}

#[test]
fn packet_too_big_lowers_the_mss_of_the_connection_it_quotes() {
    let mut p = pair(Faults::default(), 68);
    let listener = p.a.listen(80, 16).unwrap();
    let client = p.b.connect(SocketAddrV6::new(V6_A, 80, 0, 0)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', client, StackEvent::Connected));
    let _ = p.a.accept(listener);
    let before = p.b.tcb(client).unwrap().send_mss();
    // A router says the path to A takes 1280 bytes (IPv6's minimum MTU), quoting B's SYN-ish
    // segment: IPv6 header, then TCP ports and a sequence number in flight.
    let t = p.b.tcb(client).unwrap();
    let (local, remote) = (t.local(), t.remote());
    // Data in flight, so that the quoted sequence number is one not yet acknowledged.
    p.b.send(client, &[1u8; 4000]).unwrap();
    let now = p.now;
    p.b.poll(now);
    let mut invoking = vec![0u8; 48];
    let quoted = Ipv6Repr {
        src: match local.ip() {
            IpAddr::V6(a) => a,
            _ => unreachable!(),
        },
        dst: match remote.ip() {
            IpAddr::V6(a) => a,
            _ => unreachable!(),
        },
        next_header: IpProtocol::Tcp,
        payload_len: 1400,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    quoted.emit(&mut invoking).unwrap();
    invoking[40..42].copy_from_slice(&local.port().to_be_bytes());
    invoking[42..44].copy_from_slice(&remote.port().to_be_bytes());
    let seq = p.b.tcb(client).unwrap().snd_una();
    invoking[44..48].copy_from_slice(&seq.0.to_be_bytes());
    let ptb = Icmpv6Repr::PacketTooBig { mtu: 1280, invoking: &invoking };
    // From the router to B: A's device plays the router here.
    let ip = Ipv6Repr {
        src: V6_A,
        dst: V6_B,
        next_header: IpProtocol::Icmpv6,
        payload_len: 0,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let repr = FrameRepr {
        eth: EthernetRepr { src: MAC_A, dst: MAC_B, ethertype: EtherType::Ipv6 },
        net: NetRepr::Ipv6 { ip, l4: L6Repr::Icmp(ptb) },
    };
    raw_send(p.a.device_mut(), &repr);
    p.run_until(Duration::from_millis(10), |p| p.b.counters().icmp_errors_in == 1);
    let after = p.b.tcb(client).unwrap().send_mss();
    assert!(after < before, "{before} → {after}");
    assert_eq!(after, 1280 - 60 - 12, "RFC 8201: the path MTU less IPv6 and TCP headers and timestamps");
}

/// A connection that lives longer than a neighbour entry (60 s): the sender's entry is kept
/// fresh by the progress of its data (RFC 4861 §7.3.1), and the receiver, which only sends
/// ACKs, goes on using its expired (stale) entry while it asks again (§7.3.2). No frame
/// waits for a resolution after the first; over IPv4 and IPv6 alike.
#[test]
fn neighbour_entries_outlive_their_lifetime_under_a_live_connection() {
    for dst in [SocketAddrV4::new(IP_A, 80).into(), SocketAddr::from(SocketAddrV6::new(V6_A, 80, 0, 0))] {
        let mut p = pair(Faults::default(), 69);
        let listener = p.a.listen(80, 16).unwrap();
        let client = p.b.connect(dst).unwrap();
        p.run_until(Duration::from_secs(5), |p| p.has('b', client, StackEvent::Connected));
        p.run_until(Duration::from_secs(5), |p| p.has('a', listener, StackEvent::Accepted));
        let server = p.a.accept(listener).unwrap().unwrap();
        let queued = (p.a.counters().neigh_queued, p.b.counters().neigh_queued);
        let mut buf = [0u8; 2048];
        // 1 KB a second for 200 s.
        for _ in 0..200 {
            p.b.send(client, &[7u8; 1024]).unwrap();
            let until = p.now + Duration::from_secs(1);
            p.run_until(Duration::from_secs(2), |p| {
                while matches!(p.a.recv(server, &mut buf), Ok(n) if n > 0) {}
                p.now >= until
            });
        }
        let (a, b) = (p.a.counters(), p.b.counters());
        assert_eq!((a.neigh_queued, b.neigh_queued), queued, "{dst}: a frame waited for a resolution");
        // The sender never asked again; the receiver did, about once a lifetime. (Not counted:
        // the gratuitous ARP and the two duplicate address detection probes of each stack.)
        let asked = |c: &xtcp::stack::Counters| {
            if dst.is_ipv6() {
                c.ndp_solicits_out - 2
            } else {
                c.arp_requests_out - 1
            }
        };
        assert!(asked(b) <= 1, "{dst}: the sender asked again: {b:?}");
        assert!((1..=5).contains(&asked(a)), "{dst}: the receiver's solicitations: {a:?}");
        assert_eq!(p.b.tcb(client).unwrap().stats().retransmits, 0);
    }
}

/// Duplicate address detection (RFC 4862 §5.4, optimistic as RFC 4429): two stacks that
/// start with the same IPv6 address each hear the other's probe (a different nonce, RFC 7527)
/// within the first second and give the address up; a stack past that second defends its
/// address against a probe with an advertisement to all nodes.
#[test]
fn duplicate_addresses_are_detected_and_ours_defended() {
    let mut p = Pair::with(Faults::default(), 70, dual(IP_A, V6_A, 1), dual(IP_B, V6_A, 2));
    p.run_until(Duration::from_millis(100), |p| {
        p.a.counters().ipv6_duplicates > 0 && p.b.counters().ipv6_duplicates > 0
    });
    for st in [&p.a, &p.b] {
        assert!(!st.ipv6_addresses().any(|a| a == V6_A), "a duplicate kept");
        assert!(st.ipv6_addresses().any(|a| a.is_unicast_link_local()), "the link-local one is not a duplicate");
    }
    assert_eq!(p.b.connect(SocketAddrV6::new(V6_A, 80, 0, 0)), Err(StackError::InvalidAddress));

    // Past the first second, a probe for A's address is answered, not given in to.
    let mut p = pair(Faults::default(), 71);
    p.run_until(Duration::from_secs(2), |p| p.now.as_micros() > 2_500_000);
    let _ = from_a(&mut p);
    let group = xtcp::wire::ndp::solicited_node(V6_A);
    let options = NdpOptions { nonce: Some([9, 9, 9, 9, 9, 9]), ..NdpOptions::default() };
    let probe = NdpRepr::NeighborSolicit { target: V6_A, options };
    let mac = xtcp::wire::MacAddr([0x33, 0x33, 0xff, 0, 0, 1]);
    raw_send_bytes(&mut p, &frame_from_r(Ipv6Addr::UNSPECIFIED, group, 255, mac, L6Repr::Ndp(probe)));
    let got = from_a(&mut p);
    assert_eq!(got.len(), 1, "one advertisement in defence");
    let f = FrameRepr::parse(&got[0], RxChecksum::Verify).unwrap();
    let NetRepr::Ipv6 { ip, l4: L6Repr::Ndp(NdpRepr::NeighborAdvert { solicited, target, .. }) } = f.net else {
        panic!("expected an advertisement: {f}")
    };
    assert_eq!((ip.dst, target, solicited), ("ff02::1".parse().unwrap(), V6_A, false));
    assert!(p.a.ipv6_addresses().any(|a| a == V6_A));
    assert_eq!(p.a.counters().ipv6_duplicates, 0);
}

#[test]
fn echo_requests_of_our_own_are_answered_over_both_families() {
    // B pings A's IPv4, IPv6 and link-local addresses: the first request of each waits for
    // ARP or neighbour discovery; every reply comes back with its identifier, sequence
    // number and data. A reply to an identifier B never used is counted and dropped.
    let mut p = pair(Faults::default(), 9);
    let ll_a = link_local_from(MAC_A);
    let data: Vec<u8> = (0..56).collect();
    for (i, dst) in [IpAddr::from(IP_A), V6_A.into(), ll_a.into()].into_iter().enumerate() {
        for seq in 0..3u16 {
            p.b.send_echo_request(dst, 0x1234 + i as u16, seq, &data).unwrap();
            p.run_until(Duration::from_secs(2), |p| {
                p.b.counters().icmp_echo_replies_in == (i * 3) as u64 + u64::from(seq) + 1
            });
            let r = p.b.poll_echo_reply().expect("a reply");
            assert_eq!((r.from, r.ident, r.seq, &r.data), (dst, 0x1234 + i as u16, seq, &data), "reply from {dst}");
        }
    }
    assert_eq!(p.a.counters().icmp_echo_in, 9);
    assert_eq!(p.b.counters().icmp_echo_requests_out, 9);
    assert_eq!(p.b.poll_echo_reply(), None);
    // A's own request to B, then B forgets nothing but A's stray replies: a reply to an
    // identifier A used is kept; one to another identifier is not.
    p.a.send_echo_request(IP_B.into(), 7, 1, b"x").unwrap();
    p.run_until(Duration::from_secs(1), |p| p.a.counters().icmp_echo_replies_in == 1);
    assert_eq!(p.a.poll_echo_reply().map(|r| (r.ident, r.seq)), Some((7, 1)));
    let stray = FrameRepr {
        eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv6 },
        net: NetRepr::Ipv6 {
            ip: Ipv6Repr {
                src: V6_B,
                dst: V6_A,
                next_header: IpProtocol::Icmpv6,
                payload_len: 12,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            },
            l4: L6Repr::Icmp(Icmpv6Repr::EchoReply { ident: 99, seq_no: 0, data: b"stry" }),
        },
    };
    raw_send(p.b.device_mut(), &stray);
    p.run_until(Duration::from_secs(1), |p| p.a.counters().icmp_echo_replies_dropped == 1);
    assert_eq!(p.a.poll_echo_reply(), None, "a stray reply is not handed out");
    // Misuse is a typed error.
    assert_eq!(p.b.send_echo_request(IP_B.into(), 1, 1, b""), Err(StackError::ConnectToSelf));
    assert_eq!(p.b.send_echo_request(Ipv6Addr::UNSPECIFIED.into(), 1, 1, b""), Err(StackError::InvalidAddress));
    assert_eq!(p.b.send_echo_request(IP_A.into(), 1, 1, &[0; 1401]), Err(StackError::InvalidAddress));
}

#[test]
fn ipv6_only_stacks_talk_over_ipv6_and_refuse_ipv4() {
    let cfg = |ip6, seed| StackConfig::new_ipv6(ip6, 64, [seed; 16]);
    let mut p = Pair::with(Faults::default(), 11, cfg(V6_A, 1), cfg(V6_B, 2));
    assert_eq!(p.a.addresses().count(), 0, "no IPv4 address");
    let listener = p.a.listen(80, 4).unwrap();
    echo_both_ways(&mut p, listener, SocketAddrV6::new(V6_A, 80, 0, 0).into(), 100_000);
    for s in [&p.a, &p.b] {
        let c = s.counters();
        assert_eq!((c.arp_requests_out, c.arp_replies_out), (0, 0), "an IPv6-only stack sends no ARP");
        assert!(c.ndp_solicits_out > 0 || c.ndp_adverts_out > 0, "it resolves by neighbour discovery");
    }
    // IPv4 is refused as misuse, and IPv4 frames are not for it.
    assert_eq!(p.b.connect(SocketAddrV4::new(IP_A, 80)), Err(StackError::InvalidAddress));
    assert_eq!(p.b.send_echo_request(IP_A.into(), 1, 1, b""), Err(StackError::InvalidAddress));
    let arp_for_nothing = FrameRepr {
        eth: EthernetRepr { src: MAC_B, dst: xtcp::wire::MacAddr::BROADCAST, ethertype: EtherType::Arp },
        net: NetRepr::Arp(xtcp::wire::ArpRepr {
            operation: xtcp::wire::ArpOperation::Request,
            source_mac: MAC_B,
            source_ip: IP_B,
            target_mac: xtcp::wire::MacAddr::UNSPECIFIED,
            target_ip: std::net::Ipv4Addr::UNSPECIFIED,
        }),
    };
    let before = p.a.counters().arp_requests_in;
    raw_send(p.b.device_mut(), &arp_for_nothing);
    p.run_until(Duration::from_secs(1), |p| p.a.counters().arp_requests_in > before);
    assert_eq!(p.a.counters().arp_replies_out, 0, "no ARP reply for 0.0.0.0");
}
