//! A deterministic two-endpoint TCP simulator (DESIGN.md habit 7, after quinn's `Pair` and
//! TigerBeetle's VOPR): two TCBs over an in-memory link with seeded loss, duplication,
//! reordering, delay and jitter, corruption and a bandwidth limit. Time jumps to the next
//! deadline; a run is bounded in steps; every run replays from its seed.
//!
//! Segments cross the link as real bytes (xtcp's own `TcpRepr::emit` and `TcpRepr::parse`
//! with checksums verified), so corruption is caught by the checksum as it would be on a wire.
//!
//! Checks on every run: each byte delivered exactly once and in order in both directions
//! (the payload is a pattern derived from the seed and the offset), both sides end in CLOSED
//! with a normal close (through TIME-WAIT or LAST-ACK), no timer left behind, and on a clean
//! link no retransmission at all.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{Ipv4Addr, SocketAddrV4};
use xtcp::io::mem::DelayQueue;
use xtcp::tcp::cc::Algorithm;
use xtcp::tcp::{CloseReason, Event, IsnGenerator, SeqNum, State, Tcb, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{RxChecksum, TcpPacket, TcpRepr};

pub const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
pub const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);

/// Impairments and sizes of one family of runs. Each seed draws concrete values inside it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    /// Per-packet probability of loss, duplication, extra delay (reordering), corruption.
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    pub corrupt: f64,
    /// One-way delay, and up to this much jitter on top.
    pub delay: Duration,
    pub jitter: Duration,
    /// Link rate in bytes per second, if limited.
    pub bandwidth: Option<u64>,
    /// MSS range drawn from.
    pub mss: (u16, u16),
    /// Receive/send buffer range drawn from.
    pub buffer: (usize, usize),
    /// Most bytes each side sends.
    pub max_bytes: usize,
}

impl Profile {
    pub fn all() -> Vec<Profile> {
        let base = Profile {
            name: "clean",
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            bandwidth: None,
            mss: (536, 1460),
            buffer: (16 * 1024, 256 * 1024),
            max_bytes: 100_000,
        };
        vec![
            base.clone(),
            Profile { name: "lossy", loss: 0.05, jitter: Duration::from_millis(2), ..base.clone() },
            Profile { name: "heavy-loss", loss: 0.30, max_bytes: 20_000, ..base.clone() },
            Profile { name: "reorder", reorder: 0.2, jitter: Duration::from_millis(10), ..base.clone() },
            Profile { name: "dup", dup: 0.2, ..base.clone() },
            Profile { name: "corrupt", corrupt: 0.05, ..base.clone() },
            Profile {
                name: "slow-link",
                bandwidth: Some(1_000_000),
                delay: Duration::from_millis(20),
                buffer: (64 * 1024, 1024 * 1024),
                ..base.clone()
            },
            Profile { name: "tiny-window", buffer: (1, 3000), max_bytes: 30_000, loss: 0.02, ..base.clone() },
            Profile {
                name: "huge-window",
                buffer: (4 << 20, 16 << 20),
                max_bytes: 1_000_000,
                loss: 0.01,
                ..base.clone()
            },
            Profile { name: "tiny-mss", mss: (1, 64), max_bytes: 4_000, loss: 0.02, ..base.clone() },
            Profile { name: "jumbo", mss: (8960, 9000), max_bytes: 300_000, loss: 0.01, ..base.clone() },
            Profile {
                name: "mixed",
                loss: 0.05,
                dup: 0.05,
                reorder: 0.1,
                corrupt: 0.02,
                jitter: Duration::from_millis(5),
                mss: (1, 9000),
                buffer: (1, 1 << 20),
                max_bytes: 50_000,
                ..base
            },
        ]
    }

    pub fn named(name: &str) -> Option<Profile> {
        Profile::all().into_iter().find(|p| p.name == name)
    }

    fn is_clean(&self) -> bool {
        self.loss == 0.0 && self.dup == 0.0 && self.reorder == 0.0 && self.corrupt == 0.0 && self.jitter.is_zero()
    }
}

/// How the two sides end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosePlan {
    /// The client shuts down after sending; the server after reading the client's FIN.
    ClientFirst,
    /// The other way round.
    ServerFirst,
    /// Each shuts down as soon as it has sent everything, without waiting (simultaneous close
    /// when both finish together).
    BothWhenDone,
    /// The client shuts down at once (half-close) while the server keeps sending.
    ClientHalfClose,
}

/// What one run was, and what happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub profile: &'static str,
    pub plan: ClosePlan,
    pub bytes: [usize; 2],
    /// From the first SYN until both sides have read every byte.
    pub transfer_time: Duration,
    /// From the first SYN until both sides are CLOSED (TIME-WAIT included).
    pub virtual_time: Duration,
    pub retransmits: [u64; 2],
    pub stats: [xtcp::tcp::TcbStats; 2],
    pub steps: u64,
    pub packets: u64,
    pub dropped: u64,
    pub corrupted_dropped: u64,
}

/// A run that broke a check, with everything needed to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub profile: &'static str,
    pub why: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} profile {}: {} (replay: cargo run --release --example sim -- --seeds {}..{} --profile {})",
            self.seed,
            self.profile,
            self.why,
            self.seed,
            self.seed + 1,
            self.profile
        )
    }
}

/// The byte at `offset` of what side `side` sends in run `seed`.
fn pattern(seed: u64, side: usize, offset: usize) -> u8 {
    let x = (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed.rotate_left(17) ^ (side as u64 * 0xabcd);
    (x >> 29) as u8
}

struct Side {
    tcb: Tcb,
    addr: SocketAddrV4,
    to_send: usize,
    sent: usize,
    received: usize,
    eof: bool,
    shut: bool,
    closed: Option<CloseReason>,
}

/// Optional overrides, for the 10 MB table and for replays.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Client sends exactly this much, server nothing.
    pub one_way_bytes: Option<usize>,
    pub loss: Option<f64>,
    pub mss: Option<u16>,
    pub buffer: Option<usize>,
    pub max_steps: Option<u64>,
    /// Every option on (window scaling, timestamps, SACK), Nagle on.
    pub all_options: bool,
    /// Loss of what the server sends (ACKs, in a one-way transfer), if not `loss`.
    pub reverse_loss: Option<f64>,
    /// One-way delay and link rate, if not the profile's.
    pub delay: Option<Duration>,
    pub bandwidth: Option<u64>,
    /// Both sides' congestion control, if not drawn from the seed.
    pub cc: Option<Algorithm>,
    /// Timers fire at the next multiple of this, as the stack's timer wheel (10 µs by
    /// default) makes them; `None`: exactly at their deadline. Either way the connections
    /// are told (`TcpConfig::timer_granularity`: this, or the stack's default).
    pub tick: Option<Duration>,
}

/// The congestion control a side runs: half CUBIC (the default), a quarter each Reno and BBR.
/// Drawn from its own hash of the seed, so the rest of a run's choices stay what they were.
fn draw_cc(seed: u64, side: u64) -> Algorithm {
    let mut x = seed ^ side.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    match x % 4 {
        0 | 1 => Algorithm::Cubic,
        2 => Algorithm::Reno,
        _ => Algorithm::Bbr,
    }
}

/// Run one seed of a profile.
pub fn run(seed: u64, profile: &Profile, ov: &Overrides) -> Result<Outcome, Failure> {
    let fail = |why: String| Failure { seed, profile: profile.name, why };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000_0000_0000);
    let mss = ov.mss.unwrap_or_else(|| rng.random_range(profile.mss.0..=profile.mss.1));
    let mut buf_size = || ov.buffer.unwrap_or_else(|| rng.random_range(profile.buffer.0..=profile.buffer.1));
    let (rb0, sb0, rb1, sb1) = (buf_size(), buf_size(), buf_size(), buf_size());
    let plan = match rng.random_range(0..4) {
        0 => ClosePlan::ClientFirst,
        1 => ClosePlan::ServerFirst,
        2 => ClosePlan::BothWhenDone,
        _ => ClosePlan::ClientHalfClose,
    };
    let bytes = match ov.one_way_bytes {
        Some(n) => [n, 0],
        None => [rng.random_range(0..=profile.max_bytes), rng.random_range(0..=profile.max_bytes)],
    };
    let loss = ov.loss.unwrap_or(profile.loss);
    let all = ov.all_options;
    let mk_cfg = |rb: usize, sb: usize, rng: &mut ChaCha8Rng, side: u64| TcpConfig {
        mss,
        congestion: ov.cc.unwrap_or_else(|| draw_cc(seed, side)),
        timer_granularity: ov.tick.unwrap_or(xtcp::time::Duration::from_micros(10)),
        recv_buffer: rb,
        send_buffer: sb.max(1),
        nagle: all || rng.random_bool(0.5),
        timestamps: all || rng.random_bool(0.8),
        sack: all || rng.random_bool(0.8),
        window_scaling: all || rng.random_bool(0.8),
        // The simulator checks correctness, not Linux's retry budget: at 30 % loss each way an
        // exchange fails half the time, and 7 failed SYN rounds (the default 6 retries) would
        // end about 1 run in 100 with a legitimate timeout.
        syn_retries: 15,
        synack_retries: 15,
        data_retries: 30,
        ..TcpConfig::default()
    };
    let ccfg = mk_cfg(rb0, sb0, &mut rng, 0);
    let scfg = mk_cfg(rb1, sb1, &mut rng, 1);
    let mut now = Instant::from_secs(1);
    // When a deadline's timer fires (`Overrides::tick`).
    let tick = |d: Instant| match ov.tick {
        Some(t) if !t.is_zero() => {
            let t = t.as_micros() as u64;
            Instant::from_micros(d.as_micros().div_ceil(t) * t)
        }
        _ => d,
    };
    let client_iss = SeqNum(rng.random());
    let mut sides = [
        Side {
            tcb: Tcb::connect(ccfg, CLIENT, SERVER, client_iss, now),
            addr: CLIENT,
            to_send: bytes[0],
            sent: 0,
            received: 0,
            eof: false,
            shut: false,
            closed: None,
        },
        Side {
            tcb: Tcb::listen(scfg, SERVER, IsnGenerator::new(rng.random()), now),
            addr: SERVER,
            to_send: bytes[1],
            sent: 0,
            received: 0,
            eof: false,
            shut: false,
            closed: None,
        },
    ];
    // (destination side, bytes) in flight.
    let mut link: DelayQueue<(usize, Vec<u8>)> = DelayQueue::default();
    let mut link_free = [now, now];
    let mut out = Outcome {
        seed,
        profile: profile.name,
        plan,
        bytes,
        transfer_time: Duration::ZERO,
        virtual_time: Duration::ZERO,
        retransmits: [0, 0],
        stats: Default::default(),
        steps: 0,
        packets: 0,
        dropped: 0,
        corrupted_dropped: 0,
    };
    let max_steps = ov.max_steps.unwrap_or(5_000_000);
    let start = now;
    let mut payload = vec![0u8; 65536];
    let mut frame = vec![0u8; 65536 + 60];
    let mut readbuf = vec![0u8; 65536];
    let mut chunk = vec![0u8; 65536];
    // SIM_TRACE=1 prints every segment: for replaying a failing seed.
    let trace = std::env::var_os("SIM_TRACE").is_some();

    loop {
        out.steps += 1;
        if out.steps > max_steps {
            return Err(fail(format!(
                "no end after {max_steps} steps: client {} server {}",
                sides[0].tcb.state(),
                sides[1].tcb.state()
            )));
        }

        // The applications: write what fits, read what is there, shut down per plan.
        for (i, s) in sides.iter_mut().enumerate() {
            while let Some(ev) = s.tcb.poll_event() {
                if let Event::Closed(r) = ev {
                    s.closed = Some(r);
                }
            }
            if s.tcb.state() == State::Closed || s.tcb.state() == State::Listen {
                continue;
            }
            while s.sent < s.to_send && !s.shut {
                let n = (s.to_send - s.sent).min(chunk.len());
                for (k, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern(seed, i, s.sent + k);
                }
                match s.tcb.send(&chunk[..n]) {
                    Ok(m) => s.sent += m,
                    Err(_) => break,
                }
            }
            loop {
                match s.tcb.recv(&mut readbuf) {
                    Ok(0) => {
                        s.eof = true;
                        break;
                    }
                    Ok(n) => {
                        for (k, &b) in readbuf[..n].iter().enumerate() {
                            if b != pattern(seed, 1 - i, s.received + k) {
                                return Err(fail(format!(
                                    "side {i} byte {} corrupted or out of order",
                                    s.received + k
                                )));
                            }
                        }
                        s.received += n;
                    }
                    Err(_) => break,
                }
            }
            let done_sending = s.sent == s.to_send;
            let want_shut = match (plan, i) {
                (ClosePlan::ClientFirst, 0) | (ClosePlan::ServerFirst, 1) => done_sending,
                (ClosePlan::ClientFirst, _) | (ClosePlan::ServerFirst, _) => done_sending && s.eof,
                (ClosePlan::BothWhenDone, _) => done_sending,
                (ClosePlan::ClientHalfClose, 0) => done_sending,
                (ClosePlan::ClientHalfClose, _) => done_sending && s.eof,
            };
            if want_shut && !s.shut && s.tcb.state() != State::SynSent && s.tcb.state() != State::SynReceived {
                s.tcb.shutdown().map_err(|e| fail(format!("side {i} shutdown: {e}")))?;
                s.shut = true;
            }
        }

        // Output onto the link.
        for i in 0..2 {
            while let Some(seg) = sides[i].tcb.poll_transmit(now, &mut payload) {
                out.packets += 1;
                let (src, dst) = (sides[i].addr, sides[1 - i].addr);
                let len = seg.emit(&mut frame, *src.ip(), *dst.ip()).map_err(|e| fail(format!("emit: {e}")))?;
                let mut bytes = frame[..len].to_vec();
                let lost = rng.random_bool(if i == 1 { ov.reverse_loss.unwrap_or(loss) } else { loss });
                if trace {
                    println!(
                        "{:?} {} {} -> {:?} seq {} ack {} win {} len {} {:?}{} [unread {} of {}]",
                        now,
                        if i == 0 { "C" } else { "S" },
                        sides[i].tcb.state(),
                        seg.flags,
                        seg.seq,
                        seg.ack,
                        seg.window,
                        seg.payload.len(),
                        seg.options.sack.as_slice(),
                        if lost { " LOST" } else { "" },
                        sides[i].tcb.recv_available(),
                        sides[i].tcb.config().recv_buffer,
                    );
                }
                if lost {
                    out.dropped += 1;
                    continue;
                }
                if rng.random_bool(profile.corrupt) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= rng.random_range(1..=255u8);
                }
                let copies = if rng.random_bool(profile.dup) { 2 } else { 1 };
                // Serialisation on a rate-limited link, then delay and jitter.
                let depart = match ov.bandwidth.or(profile.bandwidth) {
                    Some(bps) => {
                        let start = link_free[i].max(now);
                        let t = start + Duration::from_nanos(bytes.len() as u64 * 1_000_000_000 / bps);
                        link_free[i] = t;
                        t
                    }
                    None => now,
                };
                for _ in 0..copies {
                    let mut at = depart + ov.delay.unwrap_or(profile.delay);
                    if !profile.jitter.is_zero() {
                        at += Duration::from_micros(rng.random_range(0..=profile.jitter.as_micros() as u64));
                    }
                    if rng.random_bool(profile.reorder) {
                        at += profile.delay * 3;
                    }
                    link.push(at, (1 - i, bytes.clone()));
                }
            }
        }

        if out.transfer_time.is_zero() && sides[0].received == bytes[1] && sides[1].received == bytes[0] {
            out.transfer_time = now - start;
        }

        // Finished?
        if sides.iter().all(|s| s.tcb.state() == State::Closed) && link.is_empty() {
            break;
        }

        // Jump to the next thing that happens.
        let next = [link.next_at(), sides[0].tcb.poll_timeout().map(tick), sides[1].tcb.poll_timeout().map(tick)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return Err(fail(format!(
                "stuck: nothing scheduled; client {} (sent {}/{}, got {}) server {} (sent {}/{}, got {})",
                sides[0].tcb.state(),
                sides[0].sent,
                sides[0].to_send,
                sides[0].received,
                sides[1].tcb.state(),
                sides[1].sent,
                sides[1].to_send,
                sides[1].received
            )));
        };
        now = now.max(next);
        while let Some((to, bytes)) = link.pop_due(now) {
            let from = sides[1 - to].addr;
            let parsed = TcpPacket::new_checked(&bytes[..])
                .and_then(|pk| TcpRepr::parse(&pk, *from.ip(), *sides[to].addr.ip(), RxChecksum::Verify));
            match parsed {
                Ok(seg) if sides[to].tcb.state() == State::Closed => {
                    // No connection any more (TIME-WAIT ended): the stack answers with a reset
                    // (RFC 9293 §3.10.7.1), which crosses the link like any segment.
                    if let Some(rst) = xtcp::tcp::reset_for(&seg) {
                        let len = rst.emit(&mut frame, *sides[to].addr.ip(), *from.ip()).unwrap();
                        if !rng.random_bool(loss) {
                            link.push(now + profile.delay, (1 - to, frame[..len].to_vec()));
                        }
                    }
                }
                Ok(seg) => sides[to].tcb.on_segment(now, from, &seg),
                Err(_) => out.corrupted_dropped += 1,
            }
        }
        for s in sides.iter_mut() {
            if s.tcb.poll_timeout().is_some_and(|d| tick(d) <= now) {
                s.tcb.handle_timeout(now);
            }
        }
    }

    // The checks.
    for (i, s) in sides.iter_mut().enumerate() {
        while let Some(ev) = s.tcb.poll_event() {
            if let Event::Closed(r) = ev {
                s.closed = Some(r);
            }
        }
        let other = 1 - i;
        if s.received != bytes[other] {
            return Err(fail(format!("side {i} received {} of {} bytes", s.received, bytes[other])));
        }
        if s.closed != Some(CloseReason::Normal) {
            return Err(fail(format!("side {i} ended with {:?}, not a normal close", s.closed)));
        }
        if s.tcb.poll_timeout().is_some() {
            return Err(fail(format!("side {i} left a timer behind")));
        }
        if s.tcb.send_queued() != 0 || s.tcb.recv_available() != 0 {
            return Err(fail(format!(
                "side {i} left data behind: {} to send, {} unread",
                s.tcb.send_queued(),
                s.tcb.recv_available()
            )));
        }
        out.retransmits[i] = s.tcb.stats().retransmits;
        out.stats[i] = s.tcb.stats();
    }
    if profile.is_clean() && ov.loss.unwrap_or(0.0) == 0.0 && out.retransmits != [0, 0] {
        return Err(fail(format!("retransmissions on a clean link: {:?}", out.retransmits)));
    }
    out.virtual_time = now - start;
    Ok(out)
}
