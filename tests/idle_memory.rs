#![cfg(feature = "mem")]
//! Idle connections and their rings' storage (`Tcb::detach_idle_rings`): when the stack's
//! connections would hold more ring storage than its pool may (`buffer_pool_bytes`), an idle
//! connection gives its empty rings' storage to the pool, keeps its window, and takes storage
//! back when it next has bytes to hold; below that, connections keep their rings.

use std::net::SocketAddrV4;
use xtcp::io::mem::Faults;
use xtcp::stack::{Handle, StackConfig, StackError, StackEvent};
use xtcp::tcp::{TcpConfig, TcpError};
use xtcp::time::Duration;
#[path = "support/pair.rs"]
mod support;
use support::*;

const RING: usize = 16 * 1024;

fn cfg(ip: std::net::Ipv4Addr, seed: u8, pool: usize) -> StackConfig {
    let mut c = config(ip, seed);
    c.tcp = TcpConfig { send_buffer: RING, recv_buffer: RING, ..c.tcp };
    c.buffer_pool_bytes = pool;
    c
}

/// `n` connections B → A:80, each moving `len` bytes each way (checked); returns (clients, servers).
fn open_and_exchange(p: &mut Pair, n: usize, len: usize) -> (Vec<Handle>, Vec<Handle>) {
    let l = p.a.listen(80, n).unwrap();
    let clients: Vec<Handle> = (0..n).map(|_| p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap()).collect();
    p.run_until(Duration::from_secs(10), |p| p.a.pending_accepts(l).unwrap() == n);
    let servers: Vec<Handle> = (0..n).map(|_| p.a.accept(l).unwrap().unwrap()).collect();
    exchange(p, &clients, &servers, len);
    (clients, servers)
}

fn exchange(p: &mut Pair, clients: &[Handle], servers: &[Handle], len: usize) {
    let data: Vec<u8> = (0..len).map(|i| byte(1, i)).collect();
    let mut sent = vec![(0usize, 0usize); clients.len()];
    let mut got = vec![(0usize, 0usize); clients.len()];
    let mut buf = vec![0u8; 4096];
    p.run_until(Duration::from_secs(10), |p| {
        for (i, (&c, &s)) in clients.iter().zip(servers).enumerate() {
            for (side, h) in [(0, c), (1, s)] {
                let st = if side == 0 { &mut p.b } else { &mut p.a };
                let at = if side == 0 { &mut sent[i].0 } else { &mut sent[i].1 };
                match st.send(h, &data[*at..]) {
                    Ok(m) => *at += m,
                    Err(StackError::Tcp(TcpError::WouldBlock)) => {}
                    Err(e) => panic!("send: {e}"),
                }
                loop {
                    match st.recv(h, &mut buf) {
                        Ok(0) | Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                        Ok(m) => {
                            let at = if side == 0 { &mut got[i].0 } else { &mut got[i].1 };
                            assert_eq!(&buf[..m], &data[*at..*at + m]);
                            *at += m;
                        }
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            }
        }
        got.iter().all(|&g| g == (len, len))
    });
    // Everything acknowledged, and a flush after it (the delayed ACKs' timers).
    p.run_until(Duration::from_secs(1), |p| p.link.in_flight() == 0);
    let until = p.now + Duration::from_millis(300);
    p.run_until(Duration::from_secs(1), |p| p.now >= until);
}

#[test]
fn under_pressure_idle_connections_hold_no_ring_storage_and_still_work() {
    // Eight connections of 2 × 16 KiB rings each against a 64 KiB pool: pressure.
    let mut p = Pair::with(Faults::default(), 21, cfg(IP_A, 1, 64 * 1024), cfg(IP_B, 2, 64 * 1024));
    let (clients, servers) = open_and_exchange(&mut p, 8, 3000);
    for (&c, &s) in clients.iter().zip(&servers) {
        assert_eq!(p.b.tcb(c).unwrap().detached_ring_sizes(), (RING, RING), "client rings given up while idle");
        assert_eq!(p.a.tcb(s).unwrap().detached_ring_sizes(), (RING, RING), "server rings given up while idle");
        assert!(p.b.tcb(c).unwrap().scoreboard_detached() && p.a.tcb(s).unwrap().scoreboard_detached());
    }
    // They take storage back to move more than a ring holds (so the window they advertise
    // while idle is the whole ring still), bytes intact, and give it up again after.
    exchange(&mut p, &clients, &servers, 3 * RING);
    for &c in &clients {
        // (The send ring grew for the larger transfer, and gave up its grown storage.)
        let (send, recv) = p.b.tcb(c).unwrap().detached_ring_sizes();
        assert!(send >= RING && recv == RING, "({send}, {recv})");
    }
    assert!(p.events.iter().all(|&(_, _, e)| !matches!(e, StackEvent::Closed(_))), "no connection ended");
}

#[test]
fn without_pressure_connections_keep_their_rings() {
    let mut p = Pair::with(Faults::default(), 22, cfg(IP_A, 1, 64 << 20), cfg(IP_B, 2, 64 << 20));
    let (clients, servers) = open_and_exchange(&mut p, 8, 3000);
    for (&c, &s) in clients.iter().zip(&servers) {
        assert_eq!(p.b.tcb(c).unwrap().detached_ring_sizes(), (0, 0));
        assert_eq!(p.a.tcb(s).unwrap().detached_ring_sizes(), (0, 0));
        assert!(!p.b.tcb(c).unwrap().scoreboard_detached());
    }
}

/// Connections made with the same settings share one copy of them (`Tcb::config` points at
/// the same `TcpConfig`); a connection whose own setting changes gets its own copy, and the
/// others keep theirs unchanged.
#[test]
fn connections_share_their_settings_until_one_changes_its_own() {
    let mut p = Pair::with(Faults::default(), 23, cfg(IP_A, 1, 64 << 20), cfg(IP_B, 2, 64 << 20));
    let (clients, servers) = open_and_exchange(&mut p, 4, 100);
    let shared = |s: &xtcp::stack::Stack<_>, a: Handle, b: Handle| {
        core::ptr::eq(s.tcb(a).unwrap().config(), s.tcb(b).unwrap().config())
    };
    assert!(clients.windows(2).all(|w| shared(&p.b, w[0], w[1])), "clients share one copy");
    assert!(servers.windows(2).all(|w| shared(&p.a, w[0], w[1])), "accepted connections share one copy");
    let nagle = p.b.tcb(clients[0]).unwrap().config().nagle;
    p.b.set_nodelay(clients[0], nagle).unwrap();
    assert!(!shared(&p.b, clients[0], clients[1]), "the changed connection has its own copy");
    assert_eq!(p.b.tcb(clients[0]).unwrap().config().nagle, !nagle);
    assert_eq!(p.b.tcb(clients[1]).unwrap().config().nagle, nagle, "the others keep theirs");
    assert!(shared(&p.b, clients[1], clients[2]));
    // A new connection still finds the stack's copy.
    let c = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    assert!(shared(&p.b, c, clients[1]));
    // And the counters still count once split (segments inline, rarer events boxed).
    let st = p.b.tcb(clients[1]).unwrap().stats();
    assert!(st.segs_in > 0 && st.segs_out > 0 && st.bytes_out >= 100 && st.bytes_in >= 100, "{st:?}");
    assert_eq!(st.retransmits, 0);
}
