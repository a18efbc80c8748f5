#![cfg(feature = "mem")]
//! The simulator on whole stacks: two `Stack`s over `io::mem` with seeded faults on the wire
//! (loss, duplication, reordering, delay and jitter, corruption), driven through the public
//! API by applications whose behaviour each seed draws: copying or zero-copy sends, reads
//! that copy or read in place, readers that hold frames for a while, buffer sizes, MSS, the
//! bounds on held frames. Where `tests/simulation.rs` exercises the TCB alone, this runs the
//! whole path of a frame: parse, table, TCB, zero-copy queues, ARP, timers, frame pools. A
//! quarter of the seeds (drawn from a hash of the seed, so that the others replay as they
//! always did) run the connection over IPv6: neighbour discovery instead of ARP, the IPv6
//! header (with no checksum of its own, so a corrupted address is caught by TCP's).
//!
//! Checks on every run: every byte delivered once and in order both ways, both connections
//! end in a normal close, every frame is back in its pool (nothing leaked by the zero-copy
//! queues), and no connection is left. Replay one seed with
//! `XTCP_STACK_SIM_SEED=N cargo test --test stack_sim -- --nocapture` (add `SIM_TRACE=1` for every
//! event).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use xtcp::io::mem::{Faults, MemDevice};
use xtcp::stack::pair::StackPair;
use xtcp::stack::{Handle, Stack, StackConfig, StackError, StackEvent};
use xtcp::tcp::{CloseReason, TcpConfig, TcpError};
use xtcp::time::{Duration, Instant};

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const FRAMES: usize = 4096;
const SEEDS: u64 = 300;
/// Seeds outside CI's range that once failed, run every time: 7340312 stalled a connection
/// behind a zero window whose update was lost (the RTO sent nothing into the closed window)
/// until it timed out 925 s later; 2066487 stalled the same way when duplicate ACKs for
/// data-less segments outside the window were rate-limited as Linux does (the limit was taken
/// out again); 3091870 deadlocked with everything delivered both ways, each side's ACKs
/// refused by the other, once window-scale rounding had moved both right edges left.
const REGRESSION_SEEDS: [u64; 3] = [7_340_312, 2_066_487, 3_091_870];

fn pattern(stream: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add((i >> 8) as u8).wrapping_add(stream)
}

#[derive(Debug, Clone, Copy)]
enum Read {
    /// `recv` into a buffer of this size.
    Copy(usize),
    /// `recv_chunks`, then `consume` at most this much a turn.
    InPlace(usize),
}

#[derive(Debug)]
struct App {
    h: Handle,
    /// Stream id of what this side sends (the peer checks against it).
    stream: u8,
    to_send: usize,
    sent: usize,
    received: usize,
    zero_copy_send: bool,
    read: Read,
    /// Chance per turn to stop reading for a while (holding whatever frames it has).
    hold_chance: f64,
    hold_until: Instant,
    shut: bool,
    eof: bool,
    closed: Option<CloseReason>,
}

impl App {
    fn new(rng: &mut ChaCha8Rng, h: Handle, stream: u8, max: usize) -> App {
        App {
            h,
            stream,
            to_send: rng.random_range(0..=max),
            sent: 0,
            received: 0,
            zero_copy_send: rng.random_bool(0.5),
            read: if rng.random_bool(0.5) {
                Read::Copy(rng.random_range(1..20_000))
            } else {
                Read::InPlace(rng.random_range(1000..100_000))
            },
            hold_chance: if rng.random_bool(0.3) { 0.05 } else { 0.0 },
            hold_until: Instant::from_secs(0),
            shut: false,
            eof: false,
            closed: None,
        }
    }

    /// One turn of the application: send what it can, read what it may, close when done.
    fn turn(
        &mut self,
        st: &mut Stack<MemDevice>,
        peer_stream: u8,
        now: Instant,
        rng: &mut ChaCha8Rng,
    ) -> Result<(), String> {
        if self.closed.is_some() {
            return Ok(());
        }
        let h = self.h;
        while self.sent < self.to_send {
            let r = if self.zero_copy_send {
                match st.send_buf(h) {
                    Ok(mut buf) => {
                        let k = buf.capacity().min(self.to_send - self.sent);
                        for (j, b) in buf[..k].iter_mut().enumerate() {
                            *b = pattern(self.stream, self.sent + j);
                        }
                        buf.commit(k).map(|_| k)
                    }
                    Err(e) => Err(e),
                }
            } else {
                let k = (self.to_send - self.sent).min(rng.random_range(1..30_000));
                let data: Vec<u8> = (0..k).map(|j| pattern(self.stream, self.sent + j)).collect();
                st.send(h, &data)
            };
            match r {
                Ok(k) => self.sent += k,
                Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        // Half-close once connected (a shutdown in SYN-SENT abandons the open, as in Linux).
        let connected = !matches!(st.state(h), Ok(xtcp::tcp::State::SynSent | xtcp::tcp::State::SynReceived));
        if self.sent == self.to_send && !self.shut && connected {
            st.shutdown(h).map_err(|e| format!("shutdown: {e}"))?;
            self.shut = true;
        }
        if now < self.hold_until {
            return Ok(());
        }
        if rng.random_bool(self.hold_chance) {
            self.hold_until = now + Duration::from_micros(rng.random_range(0..50_000));
            return Ok(());
        }
        match self.read {
            Read::Copy(size) => {
                let mut buf = vec![0u8; size];
                loop {
                    match st.recv(h, &mut buf) {
                        Ok(0) => {
                            self.eof = true;
                            break;
                        }
                        Ok(k) => {
                            self.check(&buf[..k], peer_stream)?;
                        }
                        Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                        Err(e) => return Err(format!("recv: {e}")),
                    }
                }
            }
            Read::InPlace(max) => {
                let chunks = st.recv_chunks(h).map_err(|e| format!("recv_chunks: {e}"))?;
                let fin = chunks.fin();
                let mut take = 0;
                let mut seen = Vec::new();
                for c in chunks {
                    let k = c.len().min(max - take);
                    seen.extend_from_slice(&c[..k]);
                    take += k;
                    if take == max {
                        break;
                    }
                }
                self.check(&seen, peer_stream)?;
                let n = st.consume(h, take).map_err(|e| format!("consume: {e}"))?;
                if n != take {
                    return Err(format!("consumed {n} of {take}"));
                }
                if fin && st.tcb(h).map_err(|e| e.to_string())?.recv_available() == 0 {
                    self.eof = true;
                }
            }
        }
        if self.eof && self.shut {
            st.close(h).map_err(|e| format!("close: {e}"))?;
            self.closed = Some(CloseReason::Normal);
        }
        Ok(())
    }

    fn check(&mut self, data: &[u8], stream: u8) -> Result<(), String> {
        for (j, &b) in data.iter().enumerate() {
            if b != pattern(stream, self.received + j) {
                return Err(format!(
                    "byte {} of stream {stream} is {b}, not {}",
                    self.received + j,
                    pattern(stream, self.received + j)
                ));
            }
        }
        self.received += data.len();
        Ok(())
    }
}

fn faults(rng: &mut ChaCha8Rng) -> Faults {
    let kind = rng.random_range(0..5);
    let p = |rng: &mut ChaCha8Rng, max: f64| rng.random_range(0.0..max);
    Faults {
        loss: if kind == 1 || kind == 4 { p(rng, 0.08) } else { 0.0 },
        duplicate: if kind == 2 || kind == 4 { p(rng, 0.05) } else { 0.0 },
        reorder: if kind == 3 || kind == 4 { p(rng, 0.1) } else { 0.0 },
        reorder_delay: Duration::from_micros(rng.random_range(100..3000)),
        corrupt: if kind == 4 { p(rng, 0.02) } else { 0.0 },
        delay: Duration::from_micros(rng.random_range(20..3000)),
        jitter: Duration::from_micros(rng.random_range(0..500)),
        ..Faults::default()
    }
}

fn config(rng: &mut ChaCha8Rng, ip: Ipv4Addr) -> StackConfig {
    let mut c = StackConfig::new(ip, 24, rng.random());
    c.zero_copy_rx = rng.random_bool(0.8);
    c.max_rx_frames_per_conn = rng.random_range(1..=64);
    c.max_tx_frames_held = rng.random_range(8..=1024);
    c
}

fn tcp(rng: &mut ChaCha8Rng) -> TcpConfig {
    TcpConfig {
        mss: rng.random_range(536..=1460),
        recv_buffer: rng.random_range(2048..=256 * 1024),
        send_buffer: rng.random_range(2048..=256 * 1024),
        nagle: rng.random_bool(0.5),
        ..TcpConfig::default()
    }
}

/// A seed's own hash (splitmix64's finaliser over it and `salt`), for choices that must not
/// draw from the run's generator (so that older seeds replay as they did).
fn seed_hash(seed: u64, salt: u64) -> u64 {
    let mut x = seed ^ salt;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether a seed runs over IPv6: a quarter of them.
fn over_ipv6(seed: u64) -> bool {
    seed_hash(seed, 0x6a09_e667_f3bc_c908) % 4 == 0
}

/// Whether a seed's stacks run with no buffer pool, so that every idle connection gives its
/// rings' storage up and takes it back (`Tcb::detach_idle_rings`): half of them.
fn reclaims_rings(seed: u64) -> bool {
    seed_hash(seed, 0xbb67_ae85_84ca_a73b) % 2 == 0
}

/// One run; Err describes the first thing that went wrong.
fn run(seed: u64) -> Result<String, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let trace = std::env::var("SIM_TRACE").is_ok();
    let f = faults(&mut rng);
    let (mut ca, mut cb) = (config(&mut rng, IP_A), config(&mut rng, IP_B));
    let v6 = over_ipv6(seed);
    let reclaim = reclaims_rings(seed);
    if reclaim {
        ca.buffer_pool_bytes = 0;
        cb.buffer_pool_bytes = 0;
    }
    let dst: SocketAddr = if v6 {
        ca.ipv6 = vec![IP6_A];
        cb.ipv6 = vec![IP6_B];
        SocketAddrV6::new(IP6_A, 80, 0, 0).into()
    } else {
        SocketAddrV4::new(IP_A, 80).into()
    };
    let summary = format!("{f:?} zero_copy_rx {}/{} ipv6 {v6} reclaim {reclaim}", ca.zero_copy_rx, cb.zero_copy_rx);
    if trace {
        eprintln!("{summary}");
    }
    let mut p = StackPair::new(seed, f, ca, cb, FRAMES);
    p.a.listen_with(80, 4, tcp(&mut rng)).map_err(|e| e.to_string())?;
    let client = p.b.connect_with(dst, tcp(&mut rng)).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut server = None;
    let mut b = App::new(&mut rng, client, 1, 300_000);
    let mut a: Option<App> = None;
    let deadline = p.now + Duration::from_secs(3600);
    let mut steps = 0u64;
    loop {
        p.step(&mut events);
        steps += 1;
        for (side, st) in [("a", &p.a), ("b", &p.b)] {
            if let Err(e) = st.check_invariants() {
                return Err(format!("seed {seed}: stack {side} at {:?}: {e}", p.now));
            }
        }
        if p.now > deadline || steps > 2_000_000 {
            let st = |s: &Stack<MemDevice>, h: Handle| {
                s.tcb(h).map(|t| {
                    format!(
                        "{t:?} queued {} readable {} rto {:?} stats {:?}; counters {:?}",
                        t.send_queued(),
                        t.recv_available(),
                        t.rto(),
                        t.stats(),
                        s.counters()
                    )
                })
            };
            return Err(format!(
                "not done after {steps} steps ({:?} virtual): a {a:?} {:?} held {:?}; b {b:?} {:?} held {:?}",
                p.now,
                a.as_ref().map(|a| st(&p.a, a.h)),
                p.a.frames_held(),
                st(&p.b, b.h),
                p.b.frames_held()
            ));
        }
        for (side, h, e) in events.drain(..) {
            if trace {
                eprintln!(
                    "{:?} {side} {h:?} {e:?} a={:?} b={:?}",
                    p.now,
                    a.as_ref().map(|a| (a.sent, a.received, a.shut, a.eof)),
                    (b.sent, b.received, b.shut, b.eof, p.b.state(b.h))
                );
            }
            match (side, e) {
                ('a', StackEvent::Accepted) => {
                    if let Ok(Some(s)) = p.a.accept(h) {
                        server = Some(s);
                    }
                }
                (_, StackEvent::Closed(r)) if r != CloseReason::Normal => {
                    return Err(format!(
                        "side {side}: connection ended: {r:?} at {:?}; counters a {:?}; b {:?}; wire {:?}",
                        p.now,
                        p.a.counters(),
                        p.b.counters(),
                        p.link.stats()
                    ));
                }
                // A normal end (e.g. LAST-ACK done after our shutdown and the peer's FIN): the
                // handle is gone; whatever was unread is checked at the end.
                ('b', StackEvent::Closed(r)) => b.closed = Some(r),
                ('a', StackEvent::Closed(r)) => {
                    if let Some(a) = a.as_mut() {
                        a.closed = Some(r);
                    }
                }
                _ => {}
            }
        }
        if a.is_none() {
            if let Some(s) = server {
                a = Some(App::new(&mut rng, s, 2, 300_000));
            }
        }
        let now = p.now;
        if let Some(a) = a.as_mut() {
            a.turn(&mut p.a, 1, now, &mut rng).map_err(|e| format!("side a: {e}"))?;
        }
        b.turn(&mut p.b, 2, now, &mut rng).map_err(|e| format!("side b: {e}"))?;
        let Some(a) = a.as_ref() else { continue };
        if a.closed.is_some() && b.closed.is_some() && p.a.connection_count() == 0 && p.b.connection_count() == 0 {
            if a.received != b.to_send || b.received != a.to_send {
                return Err(format!("received {}/{} of {}/{}", a.received, b.received, b.to_send, a.to_send));
            }
            for (name, st) in [("a", &p.a), ("b", &p.b)] {
                if st.frames_held() != (0, 0) {
                    return Err(format!("{name} still holds frames: {:?}", st.frames_held()));
                }
                if st.device().free_frames() != FRAMES {
                    return Err(format!("{name} leaked {} frames", FRAMES - st.device().free_frames()));
                }
            }
            return Ok(format!(
                "{summary}; a→b {} B, b→a {} B, zero-copy send a/b {}/{}, reads {:?}/{:?}",
                a.to_send, b.to_send, a.zero_copy_send, b.zero_copy_send, a.read, b.read
            ));
        }
    }
}

#[test]
fn stacks_over_a_faulty_link_with_random_applications() {
    if let Ok(seed) = std::env::var("XTCP_STACK_SIM_SEED") {
        let seed: u64 = seed.parse().expect("a seed number");
        match run(seed) {
            Ok(s) => println!("seed {seed}: {s}"),
            Err(e) => panic!("seed {seed}: {e}"),
        }
        return;
    }
    // XTCP_STACK_SIM_SEEDS=A..B runs more seeds (offline).
    let range = std::env::var("XTCP_STACK_SIM_SEEDS")
        .ok()
        .and_then(|r| r.split_once("..").and_then(|(a, b)| Some(a.parse().ok()?..b.parse().ok()?)))
        .unwrap_or(0..SEEDS);
    let mut failures = Vec::new();
    let runs = range.end - range.start + REGRESSION_SEEDS.len() as u64;
    let verbose = std::env::var("SIM_PROGRESS").is_ok();
    for seed in range.chain(REGRESSION_SEEDS) {
        if verbose {
            eprintln!("seed {seed}");
        }
        if let Err(e) = run(seed) {
            failures.push(format!("seed {seed}: {e} (replay: XTCP_STACK_SIM_SEED={seed} cargo test --test stack_sim)"));
        }
    }
    for f in failures.iter().take(10) {
        eprintln!("FAILED {f}");
    }
    assert!(failures.is_empty(), "{} of {runs} runs failed (first above)", failures.len());
}
