//! Instructions per request/response round trip, xtcp against smoltcp in the same harness
//! (issue #15): two stacks over an in-memory link, `CONNS` connections, each round every
//! client sends `SIZE` bytes and reads the server's echo back. Checksums are computed on
//! transmit and verified on receive by both stacks; Nagle is off on every socket; time is
//! virtual and moves by 10 µs only when nothing is in flight, so the application answers at
//! once, no timer fires during the rounds, and the count is the data path alone.
//!
//! The process runs the setup (handshakes), then `ROUNDS` rounds, and exits: run it under
//! callgrind twice with different `ROUNDS`, and the difference in instructions divided by the
//! difference in round trips is the cost of one (setup cancels out). `scripts/bench --ir` does
//! exactly that and prints the table:
//!
//! ```sh
//! cargo bench -p xtcp-bench --bench ir_echo --no-run
//! valgrind --tool=callgrind target/release/deps/ir_echo-* xtcp 64 1 1000
//! ```
//!
//! Without arguments (as `cargo bench` runs it) it does one short round of each, so that the
//! harness is exercised and checked.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::rc::Rc;
use xtcp::io::mem::Faults;
use xtcp::stack::pair::StackPair;
use xtcp::stack::{Handle, StackConfig, StackError, StackEvent};
use xtcp::tcp::{TcpConfig, TcpError};

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 7;
/// Virtual time the harness may spend on one round before it calls the round stuck.
const ROUND_LIMIT_US: u64 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    match &args[..] {
        [which, size, conns, rounds] => {
            let (size, conns, rounds) =
                (size.parse().expect("SIZE"), conns.parse().expect("CONNS"), rounds.parse().expect("ROUNDS"));
            match which.as_str() {
                "xtcp" => xtcp_echo(size, conns, rounds),
                "smoltcp" => smoltcp_echo(size, conns, rounds),
                other => panic!("unknown stack {other}: xtcp or smoltcp"),
            }
        }
        [] => {
            for (size, conns) in [(64, 1), (1448, 1), (64, 64)] {
                xtcp_echo(size, conns, 10);
                smoltcp_echo(size, conns, 10);
            }
            println!("ir_echo: both harnesses ran (use scripts/bench --ir for the counts)");
        }
        _ => panic!("usage: ir_echo [xtcp|smoltcp SIZE CONNS ROUNDS]"),
    }
}

/// The requests of every connection, made once (so that the harness's own work per round
/// trip is small and the same for both stacks); each differs, so a mixed-up echo is caught.
fn requests(size: usize, conns: usize) -> Vec<Vec<u8>> {
    (0..conns).map(|c| (0..size).map(|i| (i + 7 * c) as u8).collect()).collect()
}

// ---------------------------------------------------------------------------------- xtcp

fn xtcp_echo(size: usize, conns: usize, rounds: usize) {
    let cfg = |ip| {
        let mut c = StackConfig::new(ip, 24, [7; 16]);
        c.tcp = TcpConfig { nagle: false, ..c.tcp };
        c.max_sockets = conns + 8;
        c
    };
    let mut p = StackPair::new(1, Faults::default(), cfg(IP_A), cfg(IP_B), 4096);
    p.a.listen(PORT, conns.max(1)).expect("listen");
    let (clients, servers) =
        p.open_many(conns, PORT..PORT + 1, xtcp::time::Duration::from_secs(5)).expect("handshakes");
    let mut events = Vec::new();
    let mut buf = vec![0u8; size.max(2048)];
    let reqs = requests(size, conns);
    let mut got = vec![0usize; conns];
    let mut steps = 0u64;
    for r in 0..rounds {
        let start = p.now;
        got.fill(0);
        for (c, &h) in clients.iter().enumerate() {
            assert_eq!(p.b.send(h, &reqs[c]).expect("send"), size);
        }
        let mut done = 0;
        while done < conns {
            step(&mut p, &mut events);
            steps += 1;
            assert!(p.now.saturating_duration_since(start).as_micros() < ROUND_LIMIT_US as u128, "round {r} stuck");
            for (side, h, e) in events.drain(..) {
                if e != StackEvent::Readable {
                    continue;
                }
                if side == 'a' {
                    // The server echoes what arrived.
                    loop {
                        match p.a.recv(h, &mut buf) {
                            Ok(0) => break,
                            Ok(n) => assert_eq!(p.a.send(h, &buf[..n]).expect("echo"), n),
                            Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                            Err(e) => panic!("server recv: {e}"),
                        }
                    }
                } else {
                    let c = index_of(&clients, h);
                    loop {
                        match p.b.recv(h, &mut buf) {
                            Ok(0) => panic!("client {c}: end of stream"),
                            Ok(n) => {
                                assert_eq!(&buf[..n], &reqs[c][got[c]..got[c] + n], "client {c}");
                                got[c] += n;
                                if got[c] == size {
                                    done += 1;
                                }
                            }
                            Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                            Err(e) => panic!("client recv: {e}"),
                        }
                    }
                }
            }
        }
    }
    assert_eq!(servers.len(), conns);
    if std::env::var_os("IR_STATS").is_some() {
        eprintln!("xtcp: {} frames on the wire, {steps} steps", p.link.stats().sent);
    }
}

/// Poll both stacks and collect their events; time moves (by 10 µs, as in the smoltcp
/// harness) only when nothing is in flight or pending. Not `StackPair::step`, which moves time
/// to the next deadline before the application has answered the events: every round trip
/// would then wait out a delayed-ACK timer, and the count would include its firing.
fn step(p: &mut StackPair, events: &mut Vec<(char, Handle, StackEvent)>) {
    p.a.poll(p.now);
    p.b.poll(p.now);
    while let Some((h, e)) = p.a.poll_event() {
        events.push(('a', h, e));
    }
    while let Some((h, e)) = p.b.poll_event() {
        events.push(('b', h, e));
    }
    if p.link.in_flight() == 0 && !p.a.has_pending_output() && !p.b.has_pending_output() {
        p.now += xtcp::time::Duration::from_micros(10);
        p.link.set_now(p.now);
    }
}

fn index_of(hs: &[Handle], h: Handle) -> usize {
    hs.iter().position(|&x| x == h).expect("a client handle")
}

// ------------------------------------------------------------------------------- smoltcp

/// One end of an in-memory Ethernet link: what it transmits goes to the other end's queue.
struct Pipe {
    rx: Rc<RefCell<VecDeque<Vec<u8>>>>,
    tx: Rc<RefCell<VecDeque<Vec<u8>>>>,
}

struct RxToken(Vec<u8>);
struct TxToken(Rc<RefCell<VecDeque<Vec<u8>>>>);

thread_local! {
    /// Frames smoltcp put on the link (for `IR_STATS`).
    static SENT: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.borrow_mut().push_back(frame);
        SENT.with(|n| n.set(n.get() + 1));
        r
    }
}

impl Device for Pipe {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken;

    fn capabilities(&self) -> DeviceCapabilities {
        // Checksums computed and verified (the default), Ethernet with a 1500-byte MTU.
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxToken, TxToken)> {
        let frame = self.rx.borrow_mut().pop_front()?;
        Some((RxToken(frame), TxToken(Rc::clone(&self.tx))))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxToken> {
        Some(TxToken(Rc::clone(&self.tx)))
    }
}

struct Side {
    dev: Pipe,
    iface: Interface,
    sockets: SocketSet<'static>,
}

fn side(mac: u8, ip: Ipv4Addr, rx: &Rc<RefCell<VecDeque<Vec<u8>>>>, tx: &Rc<RefCell<VecDeque<Vec<u8>>>>) -> Side {
    let mut dev = Pipe { rx: Rc::clone(rx), tx: Rc::clone(tx) };
    let mut config = Config::new(EthernetAddress([2, 0, 0, 0, 0, mac]).into());
    config.random_seed = u64::from(mac);
    let mut iface = Interface::new(config, &mut dev, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).expect("address"));
    Side { dev, iface, sockets: SocketSet::new(Vec::new()) }
}

fn socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 65536]), tcp::SocketBuffer::new(vec![0; 65536]));
    s.set_nagle_enabled(false);
    s
}

fn smoltcp_echo(size: usize, conns: usize, rounds: usize) {
    let (ab, ba) = (Rc::new(RefCell::new(VecDeque::new())), Rc::new(RefCell::new(VecDeque::new())));
    let mut a = side(1, IP_A, &ba, &ab);
    let mut b = side(2, IP_B, &ab, &ba);
    // smoltcp's listening socket becomes the connection: one listener per client.
    let servers: Vec<SocketHandle> = (0..conns)
        .map(|_| {
            let mut s = socket();
            s.listen(PORT).expect("listen");
            a.sockets.add(s)
        })
        .collect();
    let clients: Vec<SocketHandle> = (0..conns)
        .map(|c| {
            let mut s = socket();
            let remote = (IpAddress::Ipv4(IP_A), PORT);
            s.connect(b.iface.context(), remote, 40000 + c as u16).expect("connect");
            b.sockets.add(s)
        })
        .collect();
    let mut now = smoltcp::time::Instant::ZERO;
    let poll = |a: &mut Side, b: &mut Side, now: &mut smoltcp::time::Instant| {
        a.iface.poll(*now, &mut a.dev, &mut a.sockets);
        b.iface.poll(*now, &mut b.dev, &mut b.sockets);
        // Time moves only when nothing is in flight (as StackPair's clock), by 10 µs.
        if a.dev.rx.borrow().is_empty() && b.dev.rx.borrow().is_empty() {
            *now += smoltcp::time::Duration::from_micros(10);
        }
    };
    let mut spins = 0;
    while !clients.iter().all(|&h| b.sockets.get::<tcp::Socket>(h).may_send()) {
        poll(&mut a, &mut b, &mut now);
        spins += 1;
        assert!(spins < 1_000_000, "handshakes stuck");
    }
    let mut buf = vec![0u8; size.max(2048)];
    let reqs = requests(size, conns);
    let mut got = vec![0usize; conns];
    for r in 0..rounds {
        for (c, &h) in clients.iter().enumerate() {
            assert_eq!(b.sockets.get_mut::<tcp::Socket>(h).send_slice(&reqs[c]).expect("send"), size);
        }
        got.fill(0);
        let start = now;
        while got.iter().any(|&g| g < size) {
            poll(&mut a, &mut b, &mut now);
            spins += 1;
            assert!((now - start).total_micros() < ROUND_LIMIT_US, "round {r} stuck");
            for &h in &servers {
                let s = a.sockets.get_mut::<tcp::Socket>(h);
                while s.can_recv() {
                    let n = s.recv_slice(&mut buf).expect("server recv");
                    assert_eq!(s.send_slice(&buf[..n]).expect("echo"), n);
                }
            }
            for (c, &h) in clients.iter().enumerate() {
                let s = b.sockets.get_mut::<tcp::Socket>(h);
                while s.can_recv() {
                    let n = s.recv_slice(&mut buf).expect("client recv");
                    assert_eq!(&buf[..n], &reqs[c][got[c]..got[c] + n], "client {c}");
                    got[c] += n;
                }
            }
        }
    }
    if std::env::var_os("IR_STATS").is_some() {
        eprintln!("smoltcp: {} frames on the wire, {spins} polls of both", SENT.with(|n| n.get()));
    }
}
