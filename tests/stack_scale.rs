#![cfg(feature = "mem")]
//! 100,000 concurrent established connections in one stack, each echoing a message, over the
//! in-memory link. (Memory per connection and allocations on the hot path are measured by
//! `cargo bench -p xtcp-bench --bench stack_scale`, not asserted here.)

use std::net::Ipv4Addr;
use xtcp::io::mem::Faults;
use xtcp::stack::pair::StackPair;
use xtcp::stack::{Handle, StackConfig, StackError, StackEvent};
use xtcp::tcp::{State, TcpConfig, TcpError};
use xtcp::time::Duration;

const CONNS: usize = 100_000;
const PORTS: u16 = 4; // 4 server ports × ~28k ephemeral ports each
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn cfg(ip: Ipv4Addr, seed: u8) -> StackConfig {
    let mut c = StackConfig::new(ip, 24, [seed; 16]);
    c.max_sockets = CONNS + 16;
    c.tcp = TcpConfig { send_buffer: 1024, recv_buffer: 1024, ..TcpConfig::default() };
    c
}

#[test]
fn hundred_thousand_connections_each_echo_a_message() {
    let faults = Faults { delay: Duration::from_micros(20), capacity: 1 << 21, ..Faults::default() };
    let mut p = StackPair::new(1, faults, cfg(IP_A, 1), cfg(IP_B, 2), 1 << 16);
    let mut events = Vec::new();
    let listeners: Vec<Handle> = (0..PORTS).map(|k| p.a.listen(8000 + k, CONNS).unwrap()).collect();

    // Open them all.
    let (clients, servers) = p.open_many(CONNS, 8000..8000 + PORTS, Duration::from_secs(60)).unwrap();
    assert!(listeners.len() == PORTS as usize);
    assert_eq!(p.a.connection_count(), CONNS);
    assert_eq!(p.b.connection_count(), CONNS);

    // Every client sends its index; the server echoes whatever it reads.
    for (i, &c) in clients.iter().enumerate() {
        p.b.send(c, format!("message {i:06}").as_bytes()).unwrap();
    }
    let mut echoed = vec![false; CONNS];
    let mut done = 0;
    let mut buf = [0u8; 64];
    let deadline = p.now + Duration::from_secs(60);
    while done < CONNS {
        p.step(&mut events);
        assert!(p.now < deadline, "{done} of {CONNS} echoed");
        for (side, h, e) in events.drain(..) {
            if e != StackEvent::Readable {
                continue;
            }
            if side == 'a' {
                loop {
                    match p.a.recv(h, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => assert_eq!(p.a.send(h, &buf[..n]), Ok(n)),
                        Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                        Err(e) => panic!("server recv: {e}"),
                    }
                }
            } else if let Ok(n) = p.b.recv(h, &mut buf) {
                let text = std::str::from_utf8(&buf[..n]).unwrap();
                let idx: usize = text.trim_start_matches("message ").parse().unwrap();
                assert_eq!(clients[idx], h, "echo came back on the right connection");
                assert!(!echoed[idx]);
                echoed[idx] = true;
                done += 1;
            }
        }
    }
    // All of them are still established, concurrently.
    assert!(clients.iter().all(|&c| p.b.state(c) == Ok(State::Established)));
    assert!(servers.iter().all(|&s| p.a.state(s) == Ok(State::Established)));
    assert_eq!(p.a.counters().drops() + p.b.counters().drops(), 0);
}
