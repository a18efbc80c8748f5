#![cfg(feature = "mem")]
//! TIME-WAIT reuse for active opens (`StackConfig::time_wait_reuse`, Linux's
//! net.ipv4.tcp_tw_reuse = 1): a client that closes first and has one port left to a
//! destination opens again on that port once its connection there has been in TIME-WAIT
//! for the delay, when timestamps were in use; otherwise the port waits out TIME-WAIT.

use std::net::SocketAddrV4;
use xtcp::io::mem::Faults;
use xtcp::stack::{Handle, StackConfig, StackError, StackEvent};
use xtcp::tcp::{CloseReason, SeqNum, State, TcpConfig};
use xtcp::time::Duration;
#[path = "support/pair.rs"]
mod support;
use support::*;

const DELAY: Duration = Duration::from_secs(1);

/// A client (B) with one ephemeral port, and TIME-WAIT reuse after `reuse`.
fn pair(reuse: Option<Duration>, timestamps: bool) -> (Pair, Handle) {
    let mut cb = config(IP_B, 2);
    cb.ephemeral_ports = (40000, 40000);
    cb.time_wait_reuse = reuse;
    cb.tcp = TcpConfig { timestamps, ..cb.tcp };
    let mut p = Pair::with(Faults::default(), 11, config(IP_A, 1), cb);
    let listener = p.a.listen(80, 16).unwrap();
    (p, listener)
}

/// Let `d` of virtual time pass with nothing on the link (the pair's own steps would jump
/// to the next deadline, TIME-WAIT's end), polling both stacks at its end.
fn idle(p: &mut Pair, d: Duration) {
    let start = p.now;
    p.run_until(Duration::from_millis(10), |p| p.link.in_flight() == 0);
    p.poll_at(start + d);
}

/// Connect B → A:80, one request and its answer, the client closes first then the
/// server: returns the client's handle, in TIME-WAIT, and its SND.NXT there.
fn exchange(p: &mut Pair, listener: Handle, client: Handle) -> SeqNum {
    p.run_until(Duration::from_secs(30), |p| p.has('b', client, StackEvent::Connected));
    p.run_until(Duration::from_secs(5), |p| p.a.pending_accepts(listener).unwrap() > 0);
    let server = p.a.accept(listener).unwrap().expect("a connection waits");
    assert_eq!(p.b.send(client, b"GET").unwrap(), 3);
    let mut buf = [0u8; 16];
    p.run_until(Duration::from_secs(5), |p| p.a.recv(server, &mut buf).is_ok_and(|n| n == 3));
    assert_eq!(p.a.send(server, b"OK").unwrap(), 2);
    p.run_until(Duration::from_secs(5), |p| p.b.recv(client, &mut buf).is_ok_and(|n| n == 2));
    p.b.close(client).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.a.recv(server, &mut buf) == Ok(0));
    p.a.close(server).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcb(client).is_ok_and(|t| t.state() == State::TimeWait));
    p.b.tcb(client).unwrap().snd_una()
}

#[test]
fn a_port_in_time_wait_is_reused_after_the_delay_with_a_new_incarnation() {
    let (mut p, l) = pair(Some(DELAY), true);
    let dst = SocketAddrV4::new(IP_A, 80);
    let first = p.b.connect(dst).unwrap();
    let old_nxt = exchange(&mut p, l, first);
    // Too early: the only port is still TIME-WAIT's.
    assert_eq!(p.b.connect(dst), Err(StackError::PortsExhausted));
    assert_eq!(p.b.counters().tcp_time_wait_reused, 0);
    idle(&mut p, DELAY - Duration::from_millis(1));
    assert_eq!(p.b.connect(dst), Err(StackError::PortsExhausted), "1 ms before the delay");
    idle(&mut p, Duration::from_millis(1));
    let second = p.b.connect(dst).expect("the TIME-WAIT port gives way after the delay");
    assert_eq!(p.b.counters().tcp_time_wait_reused, 1);
    assert_ne!(second.index(), first.index(), "the old connection keeps its slot until its event");
    // The new incarnation starts a whole window past the old sequence space (Linux's
    // tcp_twsk_unique: SND.NXT + 65535 + 2).
    assert_eq!(p.b.tcb(second).unwrap().snd_una(), old_nxt + 65_537u32);
    assert_eq!(p.b.tcb(second).unwrap().state(), State::SynSent);
    // The old connection ended normally, now, and says so once.
    p.run_until(Duration::from_secs(1), |p| p.has('b', first, StackEvent::Closed(CloseReason::Normal)));
    // The server (whose side of the old connection is closed) takes the new one, and it works.
    let old_nxt2 = exchange(&mut p, l, second);
    assert!(old_nxt2 != old_nxt);
    assert_eq!(p.a.counters().tcp_rsts_out + p.b.counters().tcp_rsts_out, 0, "no reset on either side");
}

#[test]
fn without_timestamps_or_without_the_setting_the_port_waits_out_time_wait() {
    for (reuse, ts) in [(None, true), (Some(DELAY), false)] {
        let (mut p, l) = pair(reuse, ts);
        let dst = SocketAddrV4::new(IP_A, 80);
        let first = p.b.connect(dst).unwrap();
        exchange(&mut p, l, first);
        idle(&mut p, Duration::from_secs(3));
        assert_eq!(p.b.connect(dst), Err(StackError::PortsExhausted), "reuse {reuse:?} timestamps {ts}");
        assert_eq!(p.b.tcb(first).unwrap().state(), State::TimeWait);
        assert_eq!(p.b.counters().tcp_time_wait_reused, 0);
    }
}

#[test]
fn a_bound_connect_takes_a_time_wait_4_tuple_only_after_the_delay() {
    let (mut p, l) = pair(Some(DELAY), true);
    let dst = SocketAddrV4::new(IP_A, 80);
    let local = SocketAddrV4::new(IP_B, 40000).into();
    let tcp = p.b.config().tcp.clone();
    let first = p.b.connect_bound(local, dst, tcp.clone()).unwrap();
    exchange(&mut p, l, first);
    assert_eq!(p.b.connect_bound(local, dst, tcp.clone()), Err(StackError::AddrInUse));
    idle(&mut p, DELAY);
    let second = p.b.connect_bound(local, dst, tcp).expect("given way");
    assert_eq!(p.b.counters().tcp_time_wait_reused, 1);
    exchange(&mut p, l, second);
}

#[test]
fn an_established_connection_never_gives_way() {
    let mut cb: StackConfig = config(IP_B, 2);
    cb.time_wait_reuse = Some(Duration::ZERO);
    let mut p = Pair::with(Faults::default(), 12, config(IP_A, 1), cb);
    p.a.listen(80, 4).unwrap();
    let dst = SocketAddrV4::new(IP_A, 80);
    let local = SocketAddrV4::new(IP_B, 40001).into();
    let tcp = p.b.config().tcp.clone();
    let c = p.b.connect_bound(local, dst, tcp.clone()).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.has('b', c, StackEvent::Connected));
    assert_eq!(p.b.connect_bound(local, dst, tcp), Err(StackError::AddrInUse));
    assert_eq!(p.b.tcb(c).unwrap().state(), State::Established);
}

/// Ten ports, 200 connections one after another, each closed by the client first: with
/// reuse after 1 ms every port serves twenty incarnations well inside one TIME-WAIT (60 s),
/// every one completing its exchange, and no reset on either side.
#[test]
fn ten_ports_carry_two_hundred_connections_within_one_time_wait() {
    let mut cb = config(IP_B, 2);
    cb.ephemeral_ports = (40000, 40009);
    cb.time_wait_reuse = Some(Duration::from_millis(1));
    let mut p = Pair::with(Faults::default(), 13, config(IP_A, 1), cb);
    let l = p.a.listen(80, 16).unwrap();
    let dst = SocketAddrV4::new(IP_A, 80);
    let start = p.now;
    for i in 0..200 {
        let c = loop {
            match p.b.connect(dst) {
                Ok(c) => break c,
                Err(StackError::PortsExhausted) => idle(&mut p, Duration::from_millis(1)),
                Err(e) => panic!("connection {i}: {e}"),
            }
        };
        exchange(&mut p, l, c);
    }
    assert!(p.now - start < Duration::from_secs(60), "took {:?}", p.now - start);
    assert!(p.b.counters().tcp_time_wait_reused >= 190, "{}", p.b.counters().tcp_time_wait_reused);
    assert_eq!(p.a.counters().tcp_rsts_out + p.b.counters().tcp_rsts_out, 0);
}
