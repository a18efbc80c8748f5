#![cfg(feature = "mem")]
//! The bound on connections in TIME-WAIT (`StackConfig::max_time_wait`, Linux's
//! net.ipv4.tcp_max_tw_buckets): a server that closes first keeps at most that many in
//! TIME-WAIT; a connection that closes when as many wait already ends at once (counted), so
//! the server's table never fills with TIME-WAIT and new connections keep coming in.

use std::net::SocketAddrV4;
use xtcp::io::mem::Faults;
use xtcp::stack::{Handle, StackConfig};
use xtcp::tcp::State;
use xtcp::time::Duration;
#[path = "support/pair.rs"]
mod support;
use support::*;

/// Step both stacks in 10 µs steps until `done` (at most 5 s of virtual time). Not the
/// pair's own `run_until`, which jumps idle time to the next deadline: with TIME-WAIT the
/// only deadline left, that would end TIME-WAIT between the test's connections.
fn until(p: &mut Pair, mut done: impl FnMut(&mut Pair) -> bool) {
    for _ in 0..500_000 {
        if done(p) {
            return;
        }
        let next = p.now + Duration::from_micros(10);
        p.poll_at(next);
    }
    panic!("not done within 5 s");
}

/// One connection B → A:80 from B's port `port` (each its own 4-tuple: a SYN for the
/// 4-tuple of a connection in TIME-WAIT would reopen it instead), that the server (A)
/// closes first; returns A's handle.
fn one(p: &mut Pair, listener: Handle, port: u16) -> Handle {
    let tcp = p.b.config().tcp.clone();
    let local = SocketAddrV4::new(IP_B, port).into();
    let client = p.b.connect_bound(local, SocketAddrV4::new(IP_A, 80), tcp).unwrap();
    until(p, |p| p.a.pending_accepts(listener).unwrap() > 0);
    let server = p.a.accept(listener).unwrap().expect("a connection waits");
    assert_eq!(p.b.send(client, b"GET").unwrap(), 3);
    let mut buf = [0u8; 16];
    until(p, |p| p.a.recv(server, &mut buf).is_ok_and(|n| n == 3));
    p.a.close(server).unwrap();
    until(p, |p| p.b.recv(client, &mut buf) == Ok(0));
    p.b.close(client).unwrap();
    until(p, |p| p.link.in_flight() == 0 && p.b.tcb(client).is_err());
    server
}

fn in_time_wait(p: &Pair, hs: &[Handle]) -> usize {
    hs.iter().filter(|&&h| p.a.tcb(h).is_ok_and(|t| t.state() == State::TimeWait)).count()
}

#[test]
fn a_server_that_closes_first_keeps_at_most_the_bound_in_time_wait() {
    let mut ca: StackConfig = config(IP_A, 1);
    ca.max_sockets = 16; // the listener and 15 connections; TIME-WAIT at most 8 (half)
    let mut p = Pair::with(Faults::default(), 31, ca, config(IP_B, 2));
    let l = p.a.listen(80, 16).unwrap();
    let mut servers = Vec::new();
    for k in 0..40 {
        servers.push(one(&mut p, l, 20000 + k));
        let states: Vec<_> = servers.iter().map(|&h| p.a.tcb(h).map(|t| t.state()).ok()).collect();
        eprintln!(
            "{k} now {:?} tw {} ovf {} {states:?}",
            p.now,
            in_time_wait(&p, &servers),
            p.a.counters().tcp_time_wait_overflow
        );
    }
    let c = p.a.counters();
    assert_eq!(c.tcp_table_full, 0, "no connection was turned away");
    assert_eq!(in_time_wait(&p, &servers), 8, "half the table waits in TIME-WAIT");
    assert_eq!(c.tcp_time_wait_overflow, 32, "the others ended on closing");
    p.a.check_invariants().unwrap();

    // An explicit bound, and TIME-WAIT's end making room again.
    let mut ca: StackConfig = config(IP_A, 1);
    ca.max_sockets = 64;
    ca.max_time_wait = Some(3);
    let mut p = Pair::with(Faults::default(), 32, ca, config(IP_B, 2));
    let l = p.a.listen(80, 16).unwrap();
    let first: Vec<Handle> = (0..5).map(|k| one(&mut p, l, 30000 + k)).collect();
    assert_eq!(in_time_wait(&p, &first), 3);
    assert_eq!(p.a.counters().tcp_time_wait_overflow, 2);
    let t = p.a.config().tcp.time_wait + Duration::from_secs(1);
    let end = p.now + t;
    p.run_until(t + Duration::from_secs(1), |p| p.now >= end);
    assert_eq!(in_time_wait(&p, &first), 0, "2·MSL over");
    let again: Vec<Handle> = (0..3).map(|k| one(&mut p, l, 31000 + k)).collect();
    assert_eq!(in_time_wait(&p, &again), 3, "room again");
    assert_eq!(p.a.counters().tcp_time_wait_overflow, 2);
    p.a.check_invariants().unwrap();
}
