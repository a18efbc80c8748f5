#![cfg(feature = "mem")]
//! Two whole stacks over the in-memory link (io::mem): connect, accept, transfer, close through
//! the public API, with and without faults; ARP, ICMP and resets; misuse of the API.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use xtcp::io::mem::{Faults, MemDevice, MemLink};
use xtcp::io::Device;
use xtcp::stack::{Handle, Stack, StackConfig, StackError, StackEvent, SynCookieMode};
use xtcp::tcp::{CloseReason, State, TcpConfig, TcpError};
use xtcp::time::{Duration, Instant};
#[path = "support/pair.rs"]
mod support;
use support::*;
use xtcp::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, IpProtocol, Ipv4Repr, L4Repr, MacAddr,
    NetRepr, RxChecksum,
};

/// Connect B → A:80, move `n` bytes each way, both close; check every byte and the events.
/// Both ways `n` bytes, checked, then closed; returns the virtual time from the connect until
/// both sides had read everything.
fn transfer(p: &mut Pair, n: usize) -> Duration {
    let start = p.now;
    let listener = p.a.listen(80, 16).unwrap();
    let client = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    p.run_until(Duration::from_secs(30), |p| p.has('b', client, StackEvent::Connected));
    p.run_until(Duration::from_secs(5), |p| p.has('a', listener, StackEvent::Accepted));
    let server = p.a.accept(listener).unwrap().expect("a connection waits");
    assert_eq!(p.a.accept(listener).unwrap(), None);

    let (mut sent, mut got) = ([0usize; 2], [0usize; 2]);
    let mut buf = vec![0u8; 8192];
    let mut chunk = vec![0u8; 8192];
    let mut closed = [false; 2];
    p.run_until(Duration::from_secs(600), |p| {
        for (side, h, stream) in [(0usize, client, 1u8), (1usize, server, 2u8)] {
            let st = if side == 0 { &mut p.b } else { &mut p.a };
            while sent[side] < n {
                let k = (n - sent[side]).min(chunk.len());
                for (j, c) in chunk[..k].iter_mut().enumerate() {
                    *c = byte(stream, sent[side] + j);
                }
                match st.send(h, &chunk[..k]) {
                    Ok(m) => sent[side] += m,
                    Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            loop {
                match st.recv(h, &mut buf) {
                    Ok(0) => break,
                    Ok(m) => {
                        for (j, &b) in buf[..m].iter().enumerate() {
                            assert_eq!(b, byte(3 - stream, got[side] + j), "side {side} byte {}", got[side] + j);
                        }
                        got[side] += m;
                    }
                    Err(StackError::Tcp(TcpError::WouldBlock)) => break,
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
    let took = p.now - start;
    // TIME-WAIT (60 s) then both connections are gone.
    p.run_until(Duration::from_secs(200), |p| {
        p.has('a', server, StackEvent::Closed(CloseReason::Normal))
            && p.has('b', client, StackEvent::Closed(CloseReason::Normal))
    });
    assert_eq!((got, sent), ([n, n], [n, n]));
    assert_eq!(p.a.connection_count(), 0);
    assert_eq!(p.b.connection_count(), 0);
    assert_eq!(p.b.send(client, b"late"), Err(StackError::InvalidHandle), "the handle died with the connection");
    took
}

#[test]
fn connect_accept_transfer_close() {
    let mut p = Pair::new(Faults::default(), 1);
    transfer(&mut p, 300_000);
    let (ca, cb) = (p.a.counters(), p.b.counters());
    assert_eq!(ca.tcp_passive_opens, 1);
    assert_eq!(cb.tcp_active_opens, 1);
    assert_eq!(ca.tcp_retransmits + cb.tcp_retransmits, 0, "a clean link needs no retransmission");
    assert_eq!(ca.drops() + cb.drops(), 0);
    // ARP: each side announced itself, then B resolved A (and A learned B from the request).
    assert!(cb.arp_requests_out >= 2);
    assert!(ca.arp_replies_out >= 1);
    // Every frame is back in its pool.
    assert_eq!(p.a.device().free_frames(), 4096);
    assert_eq!(p.b.device().free_frames(), 4096);
}

#[test]
fn transfer_with_faults() {
    for seed in 0..4 {
        let faults = Faults {
            loss: 0.03,
            duplicate: 0.02,
            reorder: 0.05,
            corrupt: 0.01,
            jitter: Duration::from_micros(200),
            ..Faults::default()
        };
        let mut p = Pair::new(faults, seed);
        transfer(&mut p, 100_000);
        let c = p.a.counters();
        let d = p.b.counters();
        assert!(c.tcp_retransmits + d.tcp_retransmits > 0, "seed {seed}: loss must have cost retransmissions");
        assert!(c.drop_bad_checksum + d.drop_bad_checksum + p.link.stats().lost > 0);
    }
}

/// ECN end to end (RFC 3168): the stacks agree on it, data leaves ECN-capable (ECT(0) in the
/// IP header, which the wire then marks CE as a congested router would), the receiver's stack
/// hands the mark to the connection, its ACKs echo it, and the sender reduces its window —
/// with no loss and so no retransmission.
#[test]
fn ecn_marks_reduce_the_window_without_loss() {
    use xtcp::tcp::EcnMode;
    let mut ca = config(IP_A, 1);
    let mut cb = config(IP_B, 2);
    // B connects and asks; A, the listener, agrees (Linux's default).
    ca.tcp.ecn = EcnMode::Passive;
    cb.tcp.ecn = EcnMode::On;
    let faults = Faults { ce_mark: 0.02, ..Faults::default() };
    let mut p = Pair::with(faults.clone(), 7, ca, cb);
    transfer(&mut p, 2_000_000);
    let (ca, cb) = (p.a.counters(), p.b.counters());
    assert!(p.link.stats().ce_marked > 0);
    assert_eq!(ca.ecn_ce_in + cb.ecn_ce_in, p.link.stats().ce_marked, "every mark reached a connection");
    assert!(ca.tcp_ecn_reductions + cb.tcp_ecn_reductions > 0, "{ca:?} {cb:?}");
    assert_eq!(ca.tcp_retransmits + cb.tcp_retransmits, 0);
    // Without ECN agreed nothing is ECN-capable, so nothing is marked.
    let mut p = Pair::with(faults, 7, config(IP_A, 1), config(IP_B, 2));
    transfer(&mut p, 200_000);
    assert_eq!(p.link.stats().ce_marked, 0);
}

/// BBR through the stack: paced by the stack's millisecond timer wheel (a pacing deadline
/// the wheel missed would stall the sender until its RTO), and not taking random loss for
/// congestion: 2 MB each way over a 10 ms round trip with 3 % loss each way take less than
/// half the virtual time CUBIC takes, which cuts its window to 70 % on every loss.
#[test]
fn bbr_is_paced_by_the_timer_wheel_and_outruns_cubic_under_random_loss() {
    use xtcp::tcp::cc::Algorithm;
    let faults = Faults { loss: 0.03, delay: Duration::from_millis(5), ..Faults::default() };
    let mut time = Vec::new();
    for alg in [Algorithm::Bbr, Algorithm::Cubic] {
        let (mut ca, mut cb) = (config(IP_A, 1), config(IP_B, 2));
        for c in [&mut ca, &mut cb] {
            c.tcp.congestion = alg;
            c.tcp.send_buffer = 1 << 20;
            c.tcp.recv_buffer = 1 << 20;
        }
        let mut p = Pair::with(faults.clone(), 11, ca, cb);
        let took = transfer(&mut p, 2_000_000);
        let (a, b) = (p.a.counters(), p.b.counters());
        assert!(a.tcp_retransmits + b.tcp_retransmits > 0, "{alg:?}: the loss cost retransmissions");
        time.push((alg, took, a.tcp_timeouts + b.tcp_timeouts));
    }
    let (bbr, cubic) = (time[0].1, time[1].1);
    // (Seed 11: BBR 368 ms, CUBIC 1.95 s.)
    assert!(bbr * 2 < cubic, "BBR {bbr:?} vs CUBIC {cubic:?}: {time:?}");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut p = Pair::new(Faults::default(), 3);
    let c = p.b.connect(SocketAddrV4::new(IP_A, 81)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', c, StackEvent::Closed(CloseReason::Refused)));
    assert_eq!(p.a.counters().tcp_no_socket, 1);
    assert_eq!(p.a.counters().tcp_rsts_out, 1);
    assert_eq!(p.b.counters().tcp_failed_opens, 1);
}

#[test]
fn api_misuse_returns_typed_errors() {
    let mut p = Pair::new(Faults::default(), 4);
    let l = p.a.listen(80, 4).unwrap();
    assert_eq!(p.a.listen(80, 4), Err(StackError::AddrInUse));
    assert_eq!(p.a.listen(0, 4), Err(StackError::InvalidAddress));
    let mut buf = [0u8; 8];
    assert_eq!(p.a.recv(l, &mut buf), Err(StackError::IsListener), "read on a listener");
    assert_eq!(p.a.send(l, b"x"), Err(StackError::IsListener));
    assert_eq!(p.a.connect(SocketAddrV4::new(IP_A, 80)), Err(StackError::ConnectToSelf));
    assert_eq!(p.a.connect(SocketAddrV4::new(Ipv4Addr::BROADCAST, 80)), Err(StackError::InvalidAddress));
    assert_eq!(p.a.connect(SocketAddrV4::new(IP_B, 0)), Err(StackError::InvalidAddress));
    let c = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    assert_eq!(p.b.accept(c), Err(StackError::NotListener));
    p.run_until(Duration::from_secs(5), |p| p.has('b', c, StackEvent::Connected));
    p.b.shutdown(c).unwrap();
    assert_eq!(p.b.send(c, b"after shutdown"), Err(StackError::Tcp(TcpError::WriteClosed)), "write after close");
    assert_eq!(p.b.recv(c, &mut buf), Err(StackError::Tcp(TcpError::WouldBlock)));
    // A handle whose socket is gone is refused, even when its slot is reused.
    p.a.close(l).unwrap();
    assert_eq!(p.a.accept(l), Err(StackError::InvalidHandle));
    let l2 = p.a.listen(80, 4).unwrap();
    assert_ne!(l, l2);
    assert_eq!(p.a.accept(l), Err(StackError::InvalidHandle));
}

#[test]
fn ephemeral_ports_run_out_with_a_typed_error() {
    let mut cb = config(IP_B, 2);
    cb.ephemeral_ports = (40000, 40002);
    let mut p = Pair::with(Faults::default(), 5, config(IP_A, 1), cb);
    let dst = SocketAddrV4::new(IP_A, 80);
    let handles: Vec<_> = (0..3).map(|_| p.b.connect(dst).unwrap()).collect();
    assert_eq!(p.b.connect(dst), Err(StackError::PortsExhausted));
    // Another destination has its own ports (RFC 6056: the 4-tuple must be unique).
    assert!(p.b.connect(SocketAddrV4::new(IP_A, 81)).is_ok());
    drop(handles);
}

/// Handle::index is a dense slot number: distinct among live sockets, below max_sockets,
/// and reused after a socket is gone while the old handle is refused.
#[test]
fn handle_indices_are_dense_and_reused() {
    let mut cb = config(IP_B, 2);
    cb.max_sockets = 8;
    let mut p = Pair::with(Faults::default(), 6, config(IP_A, 1), cb);
    let hs: Vec<Handle> = (0..8).map(|i| p.b.listen(100 + i, 1).unwrap()).collect();
    let mut idx: Vec<usize> = hs.iter().map(|h| h.index()).collect();
    idx.sort();
    assert_eq!(idx, (0..8).collect::<Vec<_>>());
    let gone = hs[3];
    p.b.close(gone).unwrap();
    let again = p.b.listen(200, 1).unwrap();
    assert_eq!(again.index(), gone.index(), "the freed slot is reused");
    assert_ne!(again, gone);
    assert_eq!(p.b.close(gone), Err(StackError::InvalidHandle), "the old handle is not");
}

#[test]
fn socket_limit_is_a_typed_error() {
    let mut cb = config(IP_B, 2);
    cb.max_sockets = 2;
    let mut p = Pair::with(Faults::default(), 6, config(IP_A, 1), cb);
    p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    p.b.listen(90, 1).unwrap();
    assert_eq!(p.b.connect(SocketAddrV4::new(IP_A, 80)), Err(StackError::TooManySockets));
    assert_eq!(p.b.listen(91, 1), Err(StackError::TooManySockets));
}

#[test]
fn backlog_bounds_the_queues_and_counts_what_it_drops() {
    // Without SYN cookies (tests/hostile.rs has the same with them).
    let ca = StackConfig { syn_cookies: SynCookieMode::Off, ..config(IP_A, 1) };
    let mut p = Pair::with(Faults::default(), 7, ca, config(IP_B, 2));
    let l = p.a.listen(80, 2).unwrap();
    let clients: Vec<_> = (0..5).map(|_| p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap()).collect();
    // Nobody accepts: two fill the accept queue, the others' SYNs are dropped and retried.
    let t0 = p.now;
    p.run_until(Duration::from_secs(1), |p| p.now >= t0 + Duration::from_millis(500));
    let c = p.a.counters();
    assert_eq!(c.tcp_accept_queue_full + c.tcp_syn_queue_full, 3, "{c:?}");
    let connected = clients.iter().filter(|&&c| p.has('b', c, StackEvent::Connected)).count();
    assert_eq!(connected, 2);
    // Accepting makes room; the retried SYNs get in.
    p.a.accept(l).unwrap().unwrap();
    p.a.accept(l).unwrap().unwrap();
    p.run_until(Duration::from_secs(10), |p| {
        clients.iter().filter(|&&c| p.has('b', c, StackEvent::Connected)).count() == 4
    });
    // The fifth still waits its turn in SYN-SENT, retrying.
    let waiting: Vec<_> = clients.iter().filter(|&&c| p.b.state(c) == Ok(State::SynSent)).collect();
    assert_eq!(waiting.len(), 1);
}

/// Drive one stack with a raw device on the other end of the link.
fn raw_pair(seed: u64) -> (MemLink, Stack<MemDevice>, MemDevice, Instant) {
    let (link, da, db) = MemLink::pair(seed, [Faults::default(), Faults::default()], [MAC_A, MAC_B], 256, 2048);
    let now = Instant::from_secs(1);
    link.set_now(now);
    (link, Stack::new(da, config(IP_A, 1), now), db, now)
}

/// An ICMP echo request from B to A's address, sent to `dst_mac`.
fn echo_request(dst_mac: MacAddr, data: &[u8]) -> FrameRepr<'_> {
    FrameRepr {
        eth: EthernetRepr { src: MAC_B, dst: dst_mac, ethertype: EtherType::Ipv4 },
        net: NetRepr::Ipv4 {
            ip: Ipv4Repr {
                src: IP_B,
                dst: IP_A,
                protocol: IpProtocol::Icmp,
                payload_len: 0,
                ttl: 64,
                ident: 1,
                dont_frag: false,
                dscp_ecn: 0,
            },
            l4: L4Repr::Icmp(Icmpv4Repr::EchoRequest { ident: 7, seq_no: 1, data }),
        },
    }
}

#[test]
fn gratuitous_arp_then_echo_reply() {
    let (_link, mut a, mut raw, now) = raw_pair(8);
    a.poll(now);
    let frames = raw_recv(&mut raw);
    let f = FrameRepr::parse(&frames[0], RxChecksum::Verify).unwrap();
    let NetRepr::Arp(g) = f.net else { panic!("not ARP: {f:?}") };
    assert!(f.eth.dst.is_broadcast());
    assert_eq!((g.source_ip, g.target_ip, g.source_mac), (IP_A, IP_A, MAC_A), "RFC 5227 announcement");

    // ping: an echo request from B gets an echo reply with the same data.
    let req = echo_request(MAC_A, b"ping data");
    raw_send(&mut raw, &req);
    a.poll(now);
    let frames = raw_recv(&mut raw);
    assert_eq!(frames.len(), 1);
    let f = FrameRepr::parse(&frames[0], RxChecksum::Verify).unwrap();
    assert_eq!(f.eth.dst, MAC_B);
    let NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(Icmpv4Repr::EchoReply { ident, seq_no, data }) } = f.net else {
        panic!("not an echo reply: {f:?}")
    };
    assert_eq!((ip.src, ip.dst, ident, seq_no, data), (IP_A, IP_B, 7, 1, &b"ping data"[..]));
    assert_eq!(a.counters().icmp_echo_out, 1);
}

#[test]
fn frames_not_for_us_and_garbage_are_counted() {
    let (_link, mut a, mut raw, now) = raw_pair(9);
    a.poll(now);
    raw_recv(&mut raw);
    // Garbage, a truncated frame, and a frame for another MAC.
    for bytes in [&[0xffu8; 60][..], &[1, 2, 3][..]] {
        let mut f = raw.alloc_tx().unwrap();
        raw.buffer_mut(&f)[..bytes.len()].copy_from_slice(bytes);
        f.len = bytes.len() as u32;
        raw.tx_burst(&mut vec![f]);
    }
    let other = echo_request(MacAddr([2, 9, 9, 9, 9, 9]), b"x");
    raw_send(&mut raw, &other);
    a.poll(now);
    let c = a.counters();
    assert_eq!(c.frames_in, 3);
    assert_eq!(c.drops(), 3, "{c:?}");
    assert_eq!(c.drop_not_for_us, 1);
    assert!(raw_recv(&mut raw).is_empty(), "nothing answered");
}

/// RFC 1122 §4.2.3.9 / RFC 1191: an ICMP "fragmentation needed" quoting one of our
/// connections reaches that connection's TCB: a soft error, and a smaller MSS.
#[test]
fn icmp_frag_needed_reaches_the_connection() {
    let mut p = Pair::new(Faults::default(), 10);
    // A delays its ACKs (no quick-ACK mode), so B's segment stays in flight while the errors
    // that quote it arrive.
    let _l = p.a.listen_with(80, 4, TcpConfig { quick_ack: false, ..Default::default() }).unwrap();
    let c = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', c, StackEvent::Connected));
    let local_port = p.b.tcb(c).unwrap().local().port();
    // B has a segment in flight, so the quote names a sequence number it sent.
    p.b.send(c, &[7; 100]).unwrap();
    let now = p.now;
    p.b.poll(now);
    let in_flight = p.b.tcb(c).unwrap().snd_una();
    assert_eq!(p.b.tcb(c).unwrap().send_mss(), 1460 - 12);
    // A router on the way says: MTU 1000. It quotes B's segment: IPv4 header, then the ports.
    let quoted = Ipv4Repr {
        src: IP_B,
        dst: IP_A,
        protocol: IpProtocol::Tcp,
        payload_len: 1460,
        ttl: 63,
        ident: 0,
        dont_frag: true,
        dscp_ecn: 0,
    };
    let quote = |seq: u32| {
        let mut q = [0u8; 8];
        q[..2].copy_from_slice(&local_port.to_be_bytes());
        q[2..4].copy_from_slice(&80u16.to_be_bytes());
        q[4..8].copy_from_slice(&seq.to_be_bytes());
        q
    };
    let send_error = |p: &mut Pair, data: &[u8; 8]| {
        let err = FrameRepr {
            eth: EthernetRepr { src: MAC_A, dst: MAC_B, ethertype: EtherType::Ipv4 },
            net: NetRepr::Ipv4 {
                ip: Ipv4Repr { src: IP_A, dst: IP_B, protocol: IpProtocol::Icmp, ..quoted },
                l4: L4Repr::Icmp(Icmpv4Repr::DstUnreachable {
                    reason: xtcp::wire::DstUnreachable::FragRequired,
                    next_hop_mtu: 1000,
                    header: quoted,
                    data,
                }),
            },
        };
        raw_send(p.a.device_mut(), &err);
    };
    // RFC 5927 §4.1: a quote of a sequence number not in flight is ignored (a blind
    // attacker who knows the ports cannot shrink the MSS).
    send_error(&mut p, &quote(in_flight.0.wrapping_sub(5000)));
    p.run_until(Duration::from_secs(1), |p| p.b.counters().icmp_errors_ignored == 1);
    assert_eq!(p.b.tcb(c).unwrap().send_mss(), 1460 - 12);
    assert_eq!(p.b.counters().icmp_errors_in, 0);
    send_error(&mut p, &quote(in_flight.0));
    p.run_until(Duration::from_secs(1), |p| p.b.counters().icmp_errors_in == 1);
    let tcb = p.b.tcb(c).unwrap();
    assert_eq!(tcb.last_icmp_error(), Some(xtcp::tcp::IcmpError::FragmentationNeeded { mtu: 1000 }));
    assert_eq!(tcb.send_mss(), 1000 - 40 - 12, "MTU − IP − TCP − timestamps");
    assert_eq!(p.b.state(c), Ok(State::Established), "a soft error");
}

// ---------------------------------------------------------------------- zero-copy

/// B sends `n` pattern bytes with zero-copy send buffers; A reads them in place with
/// `recv_chunks`/`consume`, at most `read_per_step` bytes a step (0: only after B is done),
/// and nothing before `hold` has passed. Returns what A read.
fn zero_copy_stream(
    p: &mut Pair,
    client: Handle,
    server: Handle,
    n: usize,
    read_per_step: usize,
    hold: Duration,
) -> Vec<u8> {
    let reads_from = p.now + hold;
    let mut sent = 0;
    let mut got = Vec::with_capacity(n);
    let mut max_held = 0;
    p.run_until(Duration::from_secs(600), |p| {
        while sent < n {
            let mut buf = match p.b.send_buf(client) {
                Ok(b) => b,
                Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(e) => panic!("send_buf: {e}"),
            };
            let k = buf.capacity().min(n - sent);
            for (j, c) in buf[..k].iter_mut().enumerate() {
                *c = byte(1, sent + j);
            }
            buf.commit(k).unwrap();
            sent += k;
        }
        max_held = max_held.max(p.a.frames_held().0);
        if (read_per_step > 0 || sent == n) && p.now >= reads_from {
            let limit = if read_per_step > 0 { read_per_step } else { usize::MAX };
            let mut take = 0;
            for chunk in p.a.recv_chunks(server).unwrap() {
                let k = chunk.len().min(limit - take);
                got.extend_from_slice(&chunk[..k]);
                take += k;
                if take == limit {
                    break;
                }
            }
            assert_eq!(p.a.consume(server, take).unwrap(), take);
        }
        got.len() == n
    });
    assert!(max_held <= StackConfig::new(IP_A, 24, [0; 16]).max_rx_frames_held);
    got
}

#[test]
fn zero_copy_receive_and_send_move_every_byte_in_place() {
    let mut p = Pair::new(Faults::default(), 7);
    let (client, server) = open(&mut p);
    let n = 500_000;
    let got = zero_copy_stream(&mut p, client, server, n, 64 * 1024, Duration::ZERO);
    let bad = got.iter().enumerate().position(|(i, &b)| b != byte(1, i));
    assert_eq!(bad, None, "the stream arrived intact ({} bytes)", got.len());
    let (ca, cb) = (*p.a.counters(), *p.b.counters());
    // On a clean link every data segment went out from the application's own frame and
    // stayed in the frame it arrived in until read.
    let segs = n.div_ceil(p.b.tcb(client).unwrap().send_mss()) as u64;
    assert_eq!(cb.tcp_tx_in_place, segs, "every segment sent in place");
    assert_eq!(cb.tcp_tx_copied, 0);
    assert_eq!(ca.tcp_rx_in_place, segs, "every segment read in place");
    // Acknowledged frames went back; nothing is held.
    p.run_until(Duration::from_secs(5), |p| p.b.frames_held() == (0, 0));
    assert_eq!(p.a.frames_held(), (0, 0));
    p.a.close(server).unwrap();
    p.b.close(client).unwrap();
    p.run_until(Duration::from_secs(200), |p| p.a.connection_count() == 0 && p.b.connection_count() == 0);
    assert_eq!(p.a.device().free_frames(), 4096, "every frame back in A's pool");
    assert_eq!(p.b.device().free_frames(), 4096, "every frame back in B's pool");
}

#[test]
fn zero_copy_send_stays_in_place_after_the_window_closes_and_reopens() {
    // A reads nothing for 3 s: its window closes, B's persist timer probes it with one byte
    // (RFC 9293 §3.8.6.1), and the window then opens at sizes of A's choosing. Every later
    // segment must still be one of the application's frames, not straddle two and be copied
    // (found by tests/interop.rs, where a kernel echo server's window closed at random).
    let mut p = Pair::new(Faults::default(), 7);
    let (client, server) = open(&mut p);
    let n = 2_000_000;
    let got = zero_copy_stream(&mut p, client, server, n, 48 * 1024, Duration::from_secs(3));
    let bad = got.iter().enumerate().position(|(i, &b)| b != byte(1, i));
    assert_eq!(bad, None, "the stream arrived intact ({} bytes)", got.len());
    let cb = *p.b.counters();
    let probes = p.b.tcb(client).unwrap().stats().window_probes;
    assert!(probes > 0, "the window closed and B probed it");
    let segs = n.div_ceil(p.b.tcb(client).unwrap().send_mss()) as u64;
    assert!(
        cb.tcp_tx_copied <= 2 * probes + 2,
        "a probe costs a copy or two, then segments are frames again: {} copied, {} in place of ~{segs}, {probes} probes",
        cb.tcp_tx_copied,
        cb.tcp_tx_in_place
    );
}

#[test]
fn a_reader_that_holds_frames_shrinks_the_window_and_loses_nothing() {
    // A holds at most 8 frames; past that its payload is copied, and the window closes when
    // the buffer (held frames included) is full. B keeps writing; A reads nothing for a while.
    let mut ca = config(IP_A, 1);
    ca.max_rx_frames_per_conn = 8;
    ca.tcp.recv_buffer = 32 * 1024;
    let mut p = Pair::with(Faults::default(), 3, ca, config(IP_B, 2));
    let (client, server) = open(&mut p);
    let data: Vec<u8> = (0..200_000).map(|i| byte(2, i)).collect();
    let mut sent = 0;
    // Phase 1: A does not read. B stalls once A's window is full.
    p.run_until(Duration::from_secs(5), |p| {
        while sent < data.len() {
            match p.b.send(client, &data[sent..]) {
                Ok(k) => sent += k,
                Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        p.now > Instant::from_secs(3)
    });
    let held = p.a.frames_held().0;
    assert_eq!(held, 8, "A holds as many frames as it may, no more");
    let queued = p.a.tcb(server).unwrap().recv_available();
    let mss = p.b.tcb(client).unwrap().send_mss();
    // Full to within less than a segment (the sender's silly-window avoidance keeps the rest
    // from being sent in a sliver): the window is closed to B.
    assert!(queued <= 32 * 1024 && queued + mss > 32 * 1024, "buffer full: {queued} bytes held and copied");
    assert!(sent < data.len(), "B had to stop");
    assert_eq!(p.a.counters().drops(), 0);
    // Phase 2: A reads everything, in order, mixing in-place and copied chunks.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 3000];
    p.run_until(Duration::from_secs(600), |p| {
        while sent < data.len() {
            match p.b.send(client, &data[sent..]) {
                Ok(k) => sent += k,
                Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match p.a.recv(server, &mut buf) {
                Ok(k) if k > 0 => got.extend_from_slice(&buf[..k]),
                Ok(_) | Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        got.len() == data.len()
    });
    assert!(got == data, "in-place and copied data were delivered in order");
    assert_eq!(p.a.frames_held(), (0, 0));
}

#[test]
fn zero_copy_send_survives_loss_and_reordering() {
    for seed in 0..3 {
        let faults = Faults {
            loss: 0.03,
            duplicate: 0.02,
            reorder: 0.05,
            jitter: Duration::from_micros(200),
            ..Faults::default()
        };
        let mut p = Pair::new(faults, seed);
        let (client, server) = open(&mut p);
        let n = 200_000;
        let got = zero_copy_stream(&mut p, client, server, n, 10_000, Duration::ZERO);
        let bad = got.iter().enumerate().position(|(i, &b)| b != byte(1, i));
        assert_eq!(bad, None, "seed {seed}: stream intact");
        let cb = *p.b.counters();
        assert!(cb.tcp_retransmits + p.b.tcb(client).unwrap().stats().retransmits > 0, "seed {seed}: loss cost");
        assert!(cb.tcp_tx_in_place > 0);
        p.run_until(Duration::from_secs(60), |p| p.b.frames_held() == (0, 0));
        p.a.abort(server).unwrap();
        p.run_until(Duration::from_secs(60), |p| p.b.connection_count() == 0 && p.a.connection_count() == 0);
        assert_eq!(p.a.device().free_frames(), 4096, "seed {seed}: A leaked frames");
        assert_eq!(p.b.device().free_frames(), 4096, "seed {seed}: B leaked frames");
    }
}

#[test]
fn zero_copy_misuse_returns_typed_errors() {
    let mut cb = config(IP_B, 2);
    cb.max_tx_frames_held = 4;
    let mut p = Pair::with(Faults::default(), 5, config(IP_A, 1), cb);
    let (client, server) = open(&mut p);
    // Copied data still queued: the connection cannot switch to frames yet.
    p.b.send(client, b"copied first").unwrap();
    assert_eq!(p.b.send_buf(client).unwrap_err(), StackError::SendQueueBusy);
    p.run_until(Duration::from_secs(5), |p| p.b.tcb(client).unwrap().send_queued() == 0);
    // More than the buffer holds.
    let free = p.b.device().free_frames();
    let buf = p.b.send_buf(client).unwrap();
    let cap = buf.capacity();
    assert_eq!(buf.commit(cap + 1), Err(StackError::BadSendBuf));
    assert_eq!(p.b.frames_held().1, 0, "the refused buffer went back");
    assert_eq!(p.b.device().free_frames(), free);
    // The stack-wide bound on frames lent for sending: four queued, the fifth refused.
    for _ in 0..4 {
        p.b.send_buf(client).unwrap().commit(100).unwrap();
    }
    assert_eq!(p.b.send_buf(client).unwrap_err(), StackError::Tcp(TcpError::WouldBlock));
    assert_eq!(p.b.counters().tx_frames_exhausted, 1);
    // Their acknowledgement frees the frames and says so.
    p.run_until(Duration::from_secs(5), |p| p.has('b', client, StackEvent::Writable));
    assert_eq!(p.b.frames_held().1, 0);
    let mut out = [0u8; 1024];
    p.run_until(Duration::from_secs(5), |p| p.a.tcb(server).unwrap().recv_available() >= 412);
    assert_eq!(p.a.recv(server, &mut out).unwrap(), 412, "\"copied first\" and four 100-byte frames");
    // A connection that is gone.
    p.b.abort(client).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', client, StackEvent::Closed(CloseReason::Aborted)));
    assert_eq!(p.b.send_buf(client).unwrap_err(), StackError::InvalidHandle);
    assert_eq!(p.b.frames_held(), (0, 0));
    assert_eq!(p.b.recv_chunks(client).unwrap_err(), StackError::InvalidHandle);
}

/// A send buffer the application drops without queueing it gives its frame back: taking and
/// dropping many more buffers than the device has frames leaks nothing, and the connection
/// still sends afterwards (issue #14: the frame and its `tx_frames_held` slot used to leak).
#[test]
fn a_dropped_send_buffer_gives_its_frame_back() {
    let mut p = Pair::new(Faults::default(), 6);
    let (client, server) = open(&mut p);
    let free = p.b.device().free_frames();
    for i in 0..3 * free {
        let mut buf = p.b.send_buf(client).unwrap_or_else(|e| panic!("buffer {i}: {e}"));
        buf[0] = 1; // written, then abandoned
        drop(buf);
    }
    assert_eq!(p.b.frames_held(), (0, 0));
    assert_eq!(p.b.device().free_frames(), free);
    let mut buf = p.b.send_buf(client).unwrap();
    buf[..5].copy_from_slice(b"after");
    buf.commit(5).unwrap();
    let mut out = [0u8; 16];
    p.run_until(Duration::from_secs(5), |p| p.a.tcb(server).unwrap().recv_available() >= 5);
    assert_eq!(p.a.recv(server, &mut out).unwrap(), 5);
    assert_eq!(&out[..5], b"after");
}

#[test]
fn per_connection_buffer_sizes_and_options() {
    let mut p = Pair::new(Faults::default(), 11);
    let small = TcpConfig { recv_buffer: 4096, send_buffer: 8192, nagle: false, ..TcpConfig::default() };
    let listener = p.a.listen_with(80, 4, small.clone()).unwrap();
    let big = TcpConfig { recv_buffer: 1 << 20, send_buffer: 1 << 20, ..TcpConfig::default() };
    let client = p.b.connect_with(SocketAddrV4::new(IP_A, 80), big).unwrap();
    p.run_until(Duration::from_secs(30), |p| p.has('a', listener, StackEvent::Accepted));
    let server = p.a.accept(listener).unwrap().unwrap();
    assert_eq!(p.a.tcb(server).unwrap().config().recv_buffer, 4096);
    assert!(!p.a.tcb(server).unwrap().config().nagle);
    assert_eq!(p.b.tcb(client).unwrap().config().send_buffer, 1 << 20);
    // The accepted connection's small buffer bounds what the client gets in before A reads.
    let data = vec![7u8; 100_000];
    let mut sent = 0;
    p.run_until(Duration::from_secs(2), |p| {
        if let Ok(k) = p.b.send(client, &data[sent..]) {
            sent += k;
        }
        p.now > Instant::from_secs(3)
    });
    assert!(p.a.tcb(server).unwrap().recv_available() <= 4096);
    assert!(p.b.tcb(client).unwrap().send_queued() > 90_000, "the rest waits on the small window");
    // Out-of-range settings are refused with a typed error.
    let zero = TcpConfig { recv_buffer: 0, ..TcpConfig::default() };
    assert_eq!(p.b.connect_with(SocketAddrV4::new(IP_A, 80), zero.clone()), Err(StackError::InvalidOption));
    assert_eq!(p.a.listen_with(81, 4, zero), Err(StackError::InvalidOption));
    let tiny_mss = TcpConfig { mss: 40, ..TcpConfig::default() };
    assert_eq!(p.b.connect_with(SocketAddrV4::new(IP_A, 80), tiny_mss), Err(StackError::InvalidOption));
}

#[test]
fn data_unread_when_the_connection_ends_stays_readable() {
    // Found by tests/stack_sim.rs: A sends and closes; B half-closes without reading, so its
    // connection ends (LAST-ACK acknowledged) with A's data unread. As with a kernel socket,
    // the data and then the end of stream must still be readable; `Closed` comes after.
    let mut p = Pair::new(Faults::default(), 13);
    let (client, server) = open(&mut p);
    let data: Vec<u8> = (0..20_000).map(|i| byte(4, i)).collect();
    assert_eq!(p.a.send(server, &data).unwrap(), data.len());
    p.a.shutdown(server).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', client, StackEvent::PeerClosed));
    p.b.shutdown(client).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcb(client).unwrap().state() == State::Closed);
    p.run_until(Duration::from_secs(1), |_| true);
    assert!(!p.has('b', client, StackEvent::Closed(CloseReason::Normal)), "not before the data is read");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match p.b.recv(client, &mut buf).unwrap() {
            0 => break,
            k => got.extend_from_slice(&buf[..k]),
        }
    }
    assert!(got == data, "all {} bytes readable after the end", data.len());
    p.run_until(Duration::from_secs(1), |p| p.has('b', client, StackEvent::Closed(CloseReason::Normal)));
    assert_eq!(p.b.recv(client, &mut buf), Err(StackError::InvalidHandle));
    assert_eq!(p.b.frames_held(), (0, 0));
}

#[test]
fn extra_addresses_extend_the_ports_of_active_opens() {
    // B has three addresses and three ephemeral ports: nine connections to one server, each
    // source address announced, resolved by ARP and answered.
    const B2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const B3: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
    let mut cb = config(IP_B, 2);
    cb.extra_ips = vec![B2, B3];
    cb.ephemeral_ports = (40000, 40002);
    let mut p = Pair::with(Faults::default(), 17, config(IP_A, 1), cb);
    let listener = p.a.listen(80, 16).unwrap();
    let dst = SocketAddrV4::new(IP_A, 80);
    let clients: Vec<_> = (0..9).map(|_| p.b.connect(dst).unwrap()).collect();
    assert_eq!(p.b.connect(dst), Err(StackError::PortsExhausted), "3 addresses × 3 ports");
    let mut sources: Vec<IpAddr> = clients.iter().map(|&h| p.b.tcb(h).unwrap().local().ip()).collect();
    sources.dedup();
    assert_eq!(sources, [IP_B, B2, B3].map(IpAddr::from), "the first address first, then the others in turn");
    let mut servers = Vec::new();
    p.run_until(Duration::from_secs(10), |p| {
        while let Ok(Some(s)) = p.a.accept(listener) {
            servers.push(s);
        }
        servers.len() == 9
    });
    // Each connection carries its own bytes both ways.
    for (i, &c) in clients.iter().enumerate() {
        p.b.send(c, &[i as u8; 100]).unwrap();
    }
    p.run_until(Duration::from_secs(5), |p| servers.iter().all(|&s| p.a.tcb(s).unwrap().recv_available() == 100));
    let mut seen: Vec<(IpAddr, u8)> = servers
        .iter()
        .map(|&s| {
            let mut buf = [0u8; 100];
            assert_eq!(p.a.recv(s, &mut buf).unwrap(), 100);
            (p.a.tcb(s).unwrap().remote().ip(), buf[0])
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 9);
    assert_eq!(seen.iter().filter(|(ip, _)| *ip == IpAddr::from(B3)).count(), 3);
    // A learned every source address of B by ARP, and a connection from an address that is
    // not B's own is refused with a typed error.
    assert_eq!(
        p.b.connect_from(Ipv4Addr::new(198, 18, 0, 99), dst, Default::default()),
        Err(StackError::InvalidAddress)
    );
    assert_eq!(p.b.connect(SocketAddrV4::new(B2, 80)), Err(StackError::ConnectToSelf));
    assert_eq!(p.a.counters().drops(), 0);
}

// ---------------------------------------------------------------------- wakers

/// A waker that counts its wakes.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn counting_waker() -> (std::sync::Arc<Count>, std::task::Waker) {
    let c = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
    (c.clone(), std::task::Waker::from(c))
}

fn wakes(c: &Count) -> usize {
    c.0.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn registered_wakers_are_woken_once_per_registration_by_their_sockets_events() {
    let mut p = Pair::new(Faults::default(), 5);
    // A listener's waker: woken when a connection is ready to accept.
    let listener = p.a.listen(80, 16).unwrap();
    let (accepts, w) = counting_waker();
    p.a.register_recv_waker(listener, &w).unwrap();
    let client = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('a', listener, StackEvent::Accepted));
    assert_eq!(wakes(&accepts), 1, "the listener's waker, once");
    let server = p.a.accept(listener).unwrap().unwrap();

    // A reader's waker: woken by data, then not again until registered again.
    let (reads, w) = counting_waker();
    p.a.register_recv_waker(server, &w).unwrap();
    p.a.register_recv_waker(server, &w).unwrap(); // the same waker twice: still one
    p.b.send(client, b"first").unwrap();
    p.run_until(Duration::from_secs(1), |p| p.a.tcb(server).unwrap().recv_available() == 5);
    assert_eq!(wakes(&reads), 1, "woken by the data");
    p.b.send(client, b"second").unwrap();
    p.run_until(Duration::from_secs(1), |p| p.a.tcb(server).unwrap().recv_available() == 11);
    assert_eq!(wakes(&reads), 1, "not woken again without registering again");
    p.a.register_recv_waker(server, &w).unwrap();
    p.b.shutdown(client).unwrap();
    p.run_until(Duration::from_secs(1), |p| p.has('a', server, StackEvent::PeerClosed));
    assert_eq!(wakes(&reads), 2, "woken by the peer's FIN");

    // A writer's waker, in its own slot: woken when a full send buffer drains.
    let (writes, w) = counting_waker();
    let data = vec![7u8; 1 << 20];
    let mut sent = 0;
    while let Ok(k) = p.a.send(server, &data[sent..]) {
        sent += k;
    }
    p.a.register_send_waker(server, &w).unwrap();
    let (reads2, r) = counting_waker();
    p.a.register_recv_waker(server, &r).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    p.run_until(Duration::from_secs(5), |p| {
        while let Ok(k) = p.b.recv(client, &mut buf) {
            if k == 0 {
                break;
            }
        }
        wakes(&writes) > 0
    });
    assert_eq!(wakes(&writes), 1, "woken once room opened");
    assert!(wakes(&reads2) <= 1, "the reader's slot is separate and woken at most once");
    // A stale handle is refused.
    p.a.abort(server).unwrap();
    p.run_until(Duration::from_secs(1), |p| p.a.connection_count() == 0);
    assert_eq!(p.a.register_recv_waker(server, &w), Err(StackError::InvalidHandle));
}

#[test]
fn a_neighbour_in_use_stays_reachable_and_a_silent_one_is_probed_then_given_up() {
    let mut p = Pair::new(Faults::default(), 21);
    let (client, server) = open(&mut p);
    // 200 s of a little traffic every 10 s, well past the entries' 60 s lifetime: TCP's
    // progress confirms the neighbour each way (RFC 4861 §7.3.1), so nothing is probed.
    let mut buf = [0u8; 64];
    for _ in 0..20 {
        p.b.send(client, b"ping").unwrap();
        p.a.send(server, b"pong").unwrap();
        let until = p.now + Duration::from_secs(10);
        p.run_until(Duration::from_secs(11), |p| p.now >= until);
        while let Ok(k @ 1..) = p.a.recv(server, &mut buf) {
            let _ = k;
        }
        while let Ok(k @ 1..) = p.b.recv(client, &mut buf) {
            let _ = k;
        }
    }
    for s in [&p.a, &p.b] {
        assert_eq!((s.counters().neigh_probes_out, s.counters().neigh_failed), (0, 0), "{:?}", s.counters());
    }
    // B falls silent (everything it sends is lost). A keeps retransmitting to it: its entry
    // goes STALE, then DELAY, then three unicast probes (RFC 4861 §7.3.3) a second apart go
    // unanswered and it is given up; the next retransmission asks anew, by broadcast.
    p.link.set_faults(1, Faults { loss: 1.0, delay: Duration::from_micros(50), ..Faults::default() });
    p.a.send(server, &[1u8; 1000]).unwrap();
    let requests = p.a.counters().arp_requests_out;
    p.run_until(Duration::from_secs(600), |p| p.a.counters().neigh_failed == 1);
    assert_eq!(p.a.counters().neigh_probes_out, 3);
    p.run_until(Duration::from_secs(600), |p| p.a.counters().arp_requests_out > requests + 3);
    assert!(p.a.counters().neigh_queued > 0, "after it was given up, frames waited for a new resolution");
}

/// `Stack::flush` sends what the application's calls produced without a poll: the segment
/// leaves the device at once (frames_out moves, the peer's link has it), and the deadline it
/// returns covers the retransmission timer the send set.
#[test]
fn flush_sends_the_application_output_in_the_same_turn() {
    let mut p = Pair::new(Faults::default(), 3);
    let (client, _server) = open(&mut p);
    // Settle: nothing pending on either side.
    p.run_until(Duration::from_secs(1), |p| !p.b.has_pending_output());
    let before = p.b.counters().frames_out;
    assert_eq!(p.b.send(client, b"ping").unwrap(), 4);
    assert!(p.b.has_pending_output(), "a send leaves output pending until something flushes it");
    let next = p.b.flush();
    assert!(!p.b.has_pending_output());
    assert_eq!(p.b.counters().frames_out, before + 1, "the segment left in the flush");
    assert!(next.is_some(), "a deadline for the data in flight (its retransmission timer)");
    // Nothing pending: flush sends nothing and still says when the next timer is due.
    assert_eq!(p.b.flush(), next);
    assert_eq!(p.b.counters().frames_out, before + 1);
}

/// A connection keeps its next hop's address only while the neighbour cache would give the
/// same: when B hears that A moved to another MAC (an ARP reply it did not ask for), B's next
/// segments go to the new address (here nobody's, so A counts them not for it), and when A
/// announces its own again, the transfer completes.
#[test]
fn a_connection_follows_its_neighbours_new_address() {
    let mut p = Pair::new(Faults::default(), 31);
    let (client, server) = open(&mut p);
    let arp_from_a = |mac: MacAddr| FrameRepr {
        eth: EthernetRepr { src: mac, dst: MAC_B, ethertype: EtherType::Arp },
        net: NetRepr::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_mac: mac,
            source_ip: IP_A,
            target_mac: MAC_B,
            target_ip: IP_B,
        }),
    };
    let elsewhere = MacAddr([2, 0, 0, 0, 0, 0x77]);
    let moved = arp_from_a(elsewhere);
    raw_send(p.a.device_mut(), &moved);
    p.run_until(Duration::from_millis(5), |p| p.link.in_flight() == 0);
    let not_for_a = p.a.counters().drop_not_for_us;
    p.b.send(client, b"to the new address").unwrap();
    p.run_until(Duration::from_millis(5), |p| p.link.in_flight() == 0 && !p.b.has_pending_output());
    assert!(p.a.counters().drop_not_for_us > not_for_a, "B's segment went to the address it just learnt");
    let back = arp_from_a(MAC_A);
    raw_send(p.a.device_mut(), &back);
    let mut buf = [0u8; 64];
    p.run_until(Duration::from_secs(5), |p| p.a.recv(server, &mut buf).is_ok_and(|n| n > 0));
    assert_eq!(&buf[..18], b"to the new address");
}
