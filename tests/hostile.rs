#![cfg(feature = "mem")]
//! Hostile traffic against a whole stack over the in-memory link: SYN floods answered with SYN
//! cookies while real clients get in, forged cookie ACKs, ACK floods at closed ports, RST and
//! ACK storms against a live connection, ARP storms from invented neighbours, ICMP storms.
//! Each checks that the stack serves what it should, counts what it refuses, and stays inside
//! its configured bounds (connections, neighbours, frames). The same flood over veth against
//! the real binary, beside Linux, is in tests/interop.rs.

#[path = "support/pair.rs"]
mod support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{Ipv4Addr, SocketAddrV4};
use support::*;
use xtcp::io::mem::Faults;
use xtcp::stack::{Handle, StackConfig, StackError, StackEvent, SynCookieMode};
use xtcp::tcp::{EcnMode, State, TcpConfig, TcpError};
use xtcp::time::Duration;
use xtcp::wire::{
    ArpOperation, ArpRepr, DstUnreachable, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, IpProtocol, Ipv4Repr,
    L4Repr, MacAddr, NetRepr, TcpFlags, TcpOptions, TcpRepr,
};

/// An address on the subnet that nobody answers for (the flood's spoofed source).
const SILENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);

/// A TCP segment from `src` to A, put on the wire from B's side.
fn inject_tcp(p: &mut Pair, src: Ipv4Addr, seg: TcpRepr<'_>) {
    let frame = FrameRepr {
        eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv4 },
        net: NetRepr::Ipv4 {
            ip: Ipv4Repr {
                src,
                dst: IP_A,
                protocol: IpProtocol::Tcp,
                payload_len: 0,
                ttl: 64,
                ident: 0,
                dont_frag: true,
                dscp_ecn: 0,
            },
            l4: L4Repr::Tcp(seg),
        },
    };
    raw_send(p.b.device_mut(), &frame);
}

fn segment(src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: TcpFlags) -> TcpRepr<'static> {
    TcpRepr {
        src_port,
        dst_port,
        seq,
        ack,
        flags,
        window: 64240,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

/// A SYN as Linux sends it: MSS, SACK, timestamps, window scale.
fn flood_syn(rng: &mut ChaCha8Rng) -> TcpRepr<'static> {
    TcpRepr {
        options: TcpOptions::linux_syn(rng.random()),
        ..segment(rng.random_range(1024..65535), 80, rng.random(), 0, TcpFlags::SYN)
    }
}

/// Step the pair once, recording events; the stack under attack must stay consistent.
fn step(p: &mut Pair) {
    let mut ev = std::mem::take(&mut p.events);
    p.inner.step(&mut ev);
    p.events = ev;
    if let Err(e) = p.a.check_invariants() {
        panic!("at {:?}: {e}", p.now);
    }
}

/// Clients on B that each connect to A:80, send 64 bytes, read the echo and close; A's side
/// accepts, echoes and closes when the client has. Returns how many clients got their echo.
struct EchoClients {
    /// Each client's handle and the bytes of echo it read.
    clients: Vec<(Handle, usize)>,
    servers: Vec<Handle>,
}

impl EchoClients {
    fn new() -> EchoClients {
        EchoClients { clients: Vec::new(), servers: Vec::new() }
    }

    fn open(&mut self, p: &mut Pair) {
        let h = p.b.connect(SocketAddrV4::new(IP_A, 80)).expect("a port for the client");
        self.clients.push((h, 0));
    }

    /// Act on the events since the last turn (only connections that have something to do).
    fn turn(&mut self, p: &mut Pair, listener: Handle) {
        let mut buf = [0u8; 256];
        for (side, h, ev) in std::mem::take(&mut p.events) {
            match (side, ev) {
                ('a', StackEvent::Accepted) if h == listener => {
                    while let Ok(Some(s)) = p.a.accept(listener) {
                        self.servers.push(s);
                    }
                }
                ('a', StackEvent::Readable | StackEvent::PeerClosed) => loop {
                    match p.a.recv(h, &mut buf) {
                        Ok(0) => {
                            p.a.close(h).unwrap();
                            break;
                        }
                        Ok(n) => assert_eq!(p.a.send(h, &buf[..n]), Ok(n)),
                        Err(_) => break,
                    }
                },
                ('b', StackEvent::Connected) => assert_eq!(p.b.send(h, &[0x5a; 64]), Ok(64)),
                ('b', StackEvent::Readable) => {
                    let Some(c) = self.clients.iter_mut().find(|c| c.0 == h) else { continue };
                    while let Ok(n) = p.b.recv(h, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        assert!(buf[..n].iter().all(|&b| b == 0x5a), "the echo is what was sent");
                        c.1 += n;
                        if c.1 == 64 {
                            p.b.close(h).unwrap();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn served(&self) -> usize {
        self.clients.iter().filter(|c| c.1 == 64).count()
    }
}

/// RFC 4987 §3.6: a SYN flood from a silent, spoofed address fills the SYN queue (each
/// entry retransmitting its SYN-ACK into an ARP resolution that never comes); the SYNs past
/// it are answered with cookies and cost nothing, and 200 real clients opening connections
/// meanwhile are all served — by cookies, since the queue stays full.
#[test]
fn a_syn_flood_leaves_real_clients_served_by_syn_cookies() {
    let mut p = Pair::new(Faults::default(), 21);
    let backlog = 16;
    let listener = p.a.listen(80, backlog).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut echo = EchoClients::new();
    let start = p.now;
    let mut floods = 0;
    while echo.served() < 200 {
        assert!(p.now < start + Duration::from_secs(60), "served {} of 200 in a minute", echo.served());
        // 50 flood SYNs, and a new client every few turns.
        for _ in 0..50 {
            inject_tcp(&mut p, SILENT, flood_syn(&mut rng));
            floods += 1;
        }
        if echo.clients.len() < 200 && floods % 150 == 0 {
            echo.open(&mut p);
        }
        step(&mut p);
        echo.turn(&mut p, listener);
        let c = p.a.counters();
        assert!(p.a.connection_count() <= backlog + 200, "the flood holds no more than the SYN queue");
        assert!(p.a.neighbour_count() <= p.a.config().arp_cache_size);
        assert!(c.tcp_syn_queue_full == 0, "a full SYN queue means cookies, not drops");
    }
    let c = *p.a.counters();
    assert!(c.tcp_syn_cookies_sent >= floods - backlog as u64, "{c:?}");
    assert!(c.tcp_syn_cookies_accepted >= 190, "the real clients came in by cookie: {c:?}");
    assert_eq!(c.tcp_syn_cookies_refused, 0);
    // Once the flood stops, the queue's entries time out and every frame comes back.
    p.run_until(Duration::from_secs(300), |p| {
        echo.turn(p, listener);
        p.a.connection_count() == 0 && p.b.connection_count() == 0
    });
    let free = p.a.device().free_frames();
    assert_eq!(free + p.a.frames_held().0 + p.a.frames_held().1, 4096, "A leaked frames");
}

/// A connection made from a cookie has what the SYN offered (SACK, ECN, window scaling ride
/// in the timestamp) and carries a transfer through loss; without timestamps it has only the
/// MSS, as on Linux.
#[test]
fn cookie_connections_keep_what_the_syn_offered() {
    for timestamps in [true, false] {
        let ca = StackConfig {
            syn_cookies: SynCookieMode::Always,
            tcp: TcpConfig { ecn: EcnMode::Passive, ..config(IP_A, 1).tcp },
            ..config(IP_A, 1)
        };
        let cb =
            StackConfig { tcp: TcpConfig { ecn: EcnMode::On, timestamps, ..config(IP_B, 2).tcp }, ..config(IP_B, 2) };
        let faults = Faults { loss: 0.01, ..Faults::default() };
        let mut p = Pair::with(faults, 22, ca, cb);
        let (client, server) = open(&mut p);
        let c = p.a.counters();
        assert_eq!((c.tcp_syn_cookies_sent, c.tcp_syn_cookies_accepted), (1, 1), "{c:?}");
        let tcb = p.a.tcb(server).unwrap();
        assert_eq!((tcb.sack_enabled(), tcb.ecn_enabled()), (timestamps, timestamps), "timestamps {timestamps}");
        assert_eq!(p.b.tcb(client).unwrap().sack_enabled(), timestamps, "both ends agree");
        // 1 MB from the client through 1 % loss, every byte checked.
        let n = 1 << 20;
        let (mut sent, mut got) = (0, 0);
        let mut buf = vec![0u8; 16384];
        p.run_until(Duration::from_secs(120), |p| {
            while sent < n {
                let chunk: Vec<u8> = (sent..(sent + 4096).min(n)).map(|i| byte(1, i)).collect();
                match p.b.send(client, &chunk) {
                    Ok(k) => sent += k,
                    Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            while let Ok(k) = p.a.recv(server, &mut buf) {
                if k == 0 {
                    break;
                }
                assert!(buf[..k].iter().enumerate().all(|(j, &b)| b == byte(1, got + j)));
                got += k;
            }
            got == n
        });
        assert!(p.a.tcb(server).unwrap().stats().retransmits + p.b.tcb(client).unwrap().stats().retransmits > 0);
    }
}

/// ACKs with guessed cookies at a listener that sends cookies are refused and answered with
/// resets, as any ACK in LISTEN — at most `rst_rate_limit` a second, like the resets for an
/// ACK flood at a closed port. Nothing is created for them.
#[test]
fn forged_cookie_acks_and_ack_floods_are_refused_with_rate_limited_resets() {
    let ca = StackConfig { syn_cookies: SynCookieMode::Always, rst_rate_limit: 1000, ..config(IP_A, 1) };
    let mut p = Pair::with(Faults::default(), 23, ca, config(IP_B, 2));
    let (_client, _server) = open(&mut p);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let start = p.now;
    let n = 20_000u64;
    for i in 0..n {
        // Half at the listener (cookie guesses), half at a closed port, from B's address.
        let port = if i % 2 == 0 { 80 } else { 81 };
        inject_tcp(
            &mut p,
            IP_B,
            segment(rng.random_range(1024..65535), port, rng.random(), rng.random(), TcpFlags::ACK),
        );
        if i % 100 == 99 {
            // 100 ACKs every 5 ms: 20,000 a second for a second.
            let until = p.now + Duration::from_millis(5);
            p.run_until(Duration::from_millis(6), |p| p.now >= until);
        }
    }
    let elapsed = p.now - start;
    let c = p.a.counters();
    assert_eq!(c.tcp_syn_cookies_refused, n / 2, "{c:?}");
    assert_eq!(c.tcp_syn_cookies_accepted, 1, "only the real client");
    assert_eq!(p.a.connection_count(), 1);
    let allowed = 1000 * elapsed.as_millis() as u64 / 1000 + 100;
    assert!(c.tcp_rsts_out <= allowed, "{} resets in {elapsed:?}", c.tcp_rsts_out);
    assert!(c.tcp_rsts_out >= allowed / 2, "the limit still lets resets out: {}", c.tcp_rsts_out);
    assert_eq!(c.tcp_rsts_out + c.tcp_rsts_rate_limited, n, "every ACK was answered or counted");
}

/// RFC 5961: a storm of RSTs, SYNs and ACKs with guessed numbers on a live connection's
/// 4-tuple leaves it established (challenge ACKs, rate-limited per RFC 5961 §7), and it still
/// carries data afterwards.
#[test]
fn rst_syn_and_ack_storms_do_not_break_a_live_connection() {
    let mut p = Pair::new(Faults::default(), 24);
    let (client, server) = open(&mut p);
    let port = p.b.tcb(client).unwrap().local().port();
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    for i in 0..30_000u32 {
        let flags = match i % 3 {
            0 => TcpFlags::RST,
            1 => TcpFlags::SYN,
            _ => TcpFlags::ACK,
        };
        inject_tcp(&mut p, IP_B, segment(port, 80, rng.random(), rng.random(), flags));
        if i % 100 == 99 {
            step(&mut p);
        }
    }
    p.run_until(Duration::from_secs(1), |_| true);
    assert_eq!(p.a.state(server), Ok(State::Established));
    assert_eq!(p.b.state(client), Ok(State::Established));
    let st = p.a.tcb(server).unwrap().stats();
    assert!(st.challenge_acks > 0 && st.challenge_acks_suppressed > 0, "{st:?}");
    p.b.send(client, b"still here").unwrap();
    let mut buf = [0u8; 32];
    p.run_until(Duration::from_secs(5), |p| p.a.tcb(server).unwrap().recv_available() >= 10);
    assert_eq!(p.a.recv(server, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"still here");
}

/// RFC 826 has us learn every sender that asks for our address; a storm of requests from
/// 20,000 invented neighbours keeps the cache at its bound and never evicts the neighbour a
/// live connection talks to (A does not need to ask for B again).
#[test]
fn an_arp_storm_keeps_the_neighbours_we_talk_to() {
    let mut p = Pair::new(Faults::default(), 25);
    let (client, server) = open(&mut p);
    let asked = p.a.counters().arp_requests_out;
    for i in 0..20_000u32 {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
        let mac = MacAddr([2, 0x77, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]);
        let req = FrameRepr {
            eth: EthernetRepr { src: mac, dst: MacAddr::BROADCAST, ethertype: EtherType::Arp },
            net: NetRepr::Arp(ArpRepr {
                operation: ArpOperation::Request,
                source_mac: mac,
                source_ip: ip,
                target_mac: MacAddr::UNSPECIFIED,
                target_ip: IP_A,
            }),
        };
        raw_send(p.b.device_mut(), &req);
        if i % 100 == 99 {
            step(&mut p);
            assert!(p.a.neighbour_count() <= p.a.config().arp_cache_size);
        }
    }
    p.run_until(Duration::from_millis(100), |_| true);
    assert!(p.a.counters().arp_requests_in >= 20_000);
    assert_eq!(p.a.neighbour_count(), p.a.config().arp_cache_size);
    p.a.send(server, b"to B").unwrap();
    let mut buf = [0u8; 8];
    p.run_until(Duration::from_secs(5), |p| p.b.tcb(client).unwrap().recv_available() >= 4);
    assert_eq!(p.b.recv(client, &mut buf), Ok(4));
    assert_eq!(p.a.counters().arp_requests_out, asked, "B's entry survived the storm");
}

/// ICMP storms: echo requests are answered within the frame pool (never more frames than it
/// has), and 10,000 forged "fragmentation needed" errors naming a live connection's ports but
/// no sequence number in flight are ignored and counted (RFC 5927 §4.1): its MSS stays.
#[test]
fn an_icmp_storm_is_bounded_and_forged_errors_ignored() {
    let mut p = Pair::new(Faults::default(), 26);
    let (client, _server) = open(&mut p);
    let port = p.b.tcb(client).unwrap().local().port();
    let mss = p.a.tcb(_server).unwrap().send_mss();
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    for i in 0..10_000u32 {
        let ip = Ipv4Repr {
            src: IP_B,
            dst: IP_A,
            protocol: IpProtocol::Icmp,
            payload_len: 0,
            ttl: 64,
            ident: 0,
            dont_frag: false,
            dscp_ecn: 0,
        };
        let quoted = Ipv4Repr { src: IP_A, dst: IP_B, protocol: IpProtocol::Tcp, payload_len: 1460, ..ip };
        let mut data = [0u8; 8];
        data[..2].copy_from_slice(&80u16.to_be_bytes());
        data[2..4].copy_from_slice(&port.to_be_bytes());
        data[4..8].copy_from_slice(&rng.random::<u32>().to_be_bytes());
        let icmp = if i % 2 == 0 {
            Icmpv4Repr::EchoRequest { ident: 1, seq_no: i as u16, data: &[0u8; 56] }
        } else {
            Icmpv4Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: 128,
                header: quoted,
                data: &data,
            }
        };
        let f = FrameRepr {
            eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv4 },
            net: NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(icmp) },
        };
        raw_send(p.b.device_mut(), &f);
        if i % 200 == 199 {
            step(&mut p);
        }
    }
    p.run_until(Duration::from_millis(100), |_| true);
    let c = p.a.counters();
    assert_eq!(c.icmp_echo_in, 5_000);
    assert_eq!(c.icmp_echo_out + c.tx_pool_empty, 5_000, "each answered, or refused a frame and counted");
    assert_eq!((c.icmp_errors_ignored, c.icmp_errors_in), (5_000, 0), "{c:?}");
    assert_eq!(p.a.tcb(_server).unwrap().send_mss(), mss);
    assert_eq!(p.a.device().free_frames(), 4096, "every frame came back");
}

/// Closing a listener takes its handshakes in progress with it: a SYN-RECEIVED connection
/// from a silent address does not end up in the accept queue of the listener that reuses
/// the slot.
#[test]
fn closing_a_listener_resets_its_half_open_handshakes() {
    let mut p = Pair::new(Faults::default(), 27);
    let l = p.a.listen(80, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(27);
    for _ in 0..3 {
        inject_tcp(&mut p, SILENT, flood_syn(&mut rng));
    }
    p.run_until(Duration::from_secs(1), |p| p.a.connection_count() == 3);
    p.a.close(l).unwrap();
    let l2 = p.a.listen(81, 8).unwrap();
    p.run_until(Duration::from_secs(1), |p| p.a.connection_count() == 0);
    step(&mut p);
    assert_eq!(p.a.accept(l2), Ok(None));
}

/// Handshakes that complete together past the accept queue's room are reset and counted; the
/// application hears nothing of them, and the stack's table never names a freed slot (the
/// whole-stack fuzzer's first find: the overflow was handed to the application, whose
/// `poll_event` freed the slot before the table let go of it).
#[test]
fn an_accept_queue_overflow_is_reset_quietly() {
    let ca = StackConfig { syn_cookies: SynCookieMode::Off, ..config(IP_A, 1) };
    let mut p = Pair::with(Faults::default(), 28, ca, config(IP_B, 2));
    let listener = p.a.listen(80, 2).unwrap();
    for round in 0..4 {
        for _ in 0..3 {
            p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
        }
        for _ in 0..50 {
            step(&mut p);
        }
        if round == 0 {
            // One place free in the accept queue and none taken in the SYN queue: the next
            // two SYNs are both queued, and the second to complete finds no room.
            assert!(p.a.accept(listener).unwrap().is_some());
        }
    }
    let c = p.a.counters();
    assert!(c.tcp_accept_queue_full > 0, "{c:?}");
    let accepted: Vec<_> = p.events.iter().filter(|e| e.0 == 'a' && e.1 != listener).collect();
    assert!(
        accepted.iter().all(|e| !matches!(e.2, StackEvent::Closed(_))),
        "no Closed for a handle never accepted: {accepted:?}"
    );
}
