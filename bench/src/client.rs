//! The load generator: workloads over any [`Net`], measured with hdrhistogram.
//!
//! What is timed (all on the client, `std::time::Instant`, monotonic):
//! * `rr`: from the moment a request is handed to the stack (written into the send buffer) to
//!   the moment the last byte of its response is read by the client. With `--pipeline N`, N
//!   requests are outstanding per connection; each is timed from its own hand-over.
//! * open loop (`--rate R`): from the request's *intended* send time on a fixed schedule (each
//!   connection sends every `conns / R` seconds), not from when it could actually be sent, so a
//!   stall delays the clock of every request behind it too (coordinated omission corrected, as
//!   wrk2 does).
//! * `crr`: from the start of `connect()` to the last byte of the one response; the close that
//!   follows (client first, so TIME-WAIT stays on the client) is not in the latency but is in
//!   connections/s.
//! * `stream`: no latency; bytes handed to the stack over the measured time, the time ending
//!   when the server has answered a final 1-byte request sent after the data (so the bytes
//!   counted have all reached the server application).

use crate::net::{Net, NetEvent};
use crate::proto::{header, ResponseReader, HEADER_LEN};
use crate::results::{cpu_times, new_histogram, percentile_points, Latency, RunResult};
use hdrhistogram::Histogram;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Rr,
    Crr,
    Stream,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// The bench's framing (proto.rs): needs `xtcp-bench server`.
    Framed,
    /// Send req_bytes, expect resp_bytes back (an echo server).
    Raw,
    /// HTTP/1.1 GET of this path.
    Http { path: String, host: String },
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub target: SocketAddr,
    pub workload: Workload,
    pub proto: Proto,
    pub conns: usize,
    pub req_bytes: usize,
    pub resp_bytes: usize,
    pub pipeline: usize,
    /// Open loop: total requests per second.
    pub rate: Option<f64>,
    pub seconds: f64,
    pub warmup: f64,
    pub busy_poll: bool,
    /// Source addresses, used in turn (kernel stack only).
    pub srcs: Vec<Ipv4Addr>,
    /// Connections allowed in the handshake at once.
    pub max_connecting: usize,
    pub connect_timeout: Duration,
    pub progress: bool,
    pub label: String,
}

/// A misuse of the options, refused before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    ReqTooSmall(usize),
    TooLarge(usize),
    Zero(&'static str),
    RateWithWorkload(&'static str),
    StreamProto,
    BadRate,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionError::ReqTooSmall(n) => {
                write!(
                    f,
                    "--req-bytes {n}: a framed request carries an {HEADER_LEN}-byte header, so at least {HEADER_LEN}"
                )
            }
            OptionError::TooLarge(n) => write!(f, "{n} bytes is over the limit of {}", crate::proto::MAX_MESSAGE),
            OptionError::Zero(what) => write!(f, "{what} must be at least 1"),
            OptionError::RateWithWorkload(w) => write!(f, "--rate is for rr only, not {w}"),
            OptionError::StreamProto => f.write_str("stream needs the bench's framing (no --raw or --http)"),
            OptionError::BadRate => f.write_str("--rate must be a positive number"),
        }
    }
}

impl ClientOptions {
    pub fn check(&self) -> Result<(), OptionError> {
        if self.conns == 0 {
            return Err(OptionError::Zero("--conns"));
        }
        if self.pipeline == 0 {
            return Err(OptionError::Zero("--pipeline"));
        }
        if self.max_connecting == 0 {
            return Err(OptionError::Zero("--max-connecting"));
        }
        if self.proto == Proto::Framed && self.req_bytes < HEADER_LEN {
            return Err(OptionError::ReqTooSmall(self.req_bytes));
        }
        for n in [self.req_bytes, self.resp_bytes] {
            if n > crate::proto::MAX_MESSAGE as usize {
                return Err(OptionError::TooLarge(n));
            }
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(OptionError::BadRate);
            }
            match self.workload {
                Workload::Crr => return Err(OptionError::RateWithWorkload("crr")),
                Workload::Stream => return Err(OptionError::RateWithWorkload("stream")),
                Workload::Rr => {}
            }
        }
        if self.workload == Workload::Stream && self.proto != Proto::Framed {
            return Err(OptionError::StreamProto);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Conn {
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    /// When each outstanding request was sent (or was due), ns since the run began.
    inflight: VecDeque<u64>,
    reader: ResponseReader,
    /// Open loop: when the next request is due.
    next_due: u64,
    /// When connect() was called.
    started: u64,
    /// stream: the sync request is queued.
    sync_sent: bool,
}

struct Run<'a, N: Net> {
    o: &'a ClientOptions,
    net: N,
    t0: Instant,
    conns: Vec<Option<Conn>>,
    open: usize,
    connecting: usize,
    request: Vec<u8>,
    scratch: Vec<u8>,
    measuring: bool,
    draining: bool,
    hist: Histogram<u64>,
    second: Histogram<u64>,
    requests: u64,
    connections: u64,
    bytes_sent: u64,
    bytes_received: u64,
    errors: u64,
    resets: u64,
    peak: usize,
    next_src: usize,
    connect_backoff: u64,
    /// Open loop: the connection number given to the next connection (for staggering).
    opened: u64,
    /// Handshakes under way, in the order they began: (start time, connection). An entry
    /// whose connection has connected, gone, or been replaced (another start time) is stale
    /// and skipped, so the timeout sweep costs the handshakes, not every connection (a scan
    /// of a million connections every 100 ms stalled the client for tens of milliseconds).
    handshakes: VecDeque<(u64, usize)>,
    /// Connections `drive` left with work to do: driven again after the next poll.
    again: Vec<usize>,
}

/// Rounds of writing and reading `Run::drive` does on one connection before it lets the loop
/// look at its clock and the other connections.
const DRIVE_ROUNDS: usize = 64;

/// Open loop: when connection number `k` (of `n` at once, each sending every `interval` ns)
/// sends first, if it opens at `now`: its slot's next turn on the run's one schedule, slot
/// `k mod n` being `(k mod n) / n` of the interval past each multiple of it.
fn first_due(now: u64, k: u64, n: u64, interval: u64) -> u64 {
    let phase = (interval as u128 * (k % n) as u128 / n as u128) as u64;
    if now <= phase {
        phase
    } else {
        phase + (now - phase).div_ceil(interval) * interval
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl<N: Net> Run<'_, N> {
    fn now(&self) -> u64 {
        ns(self.t0.elapsed())
    }

    fn conn(&mut self, id: usize) -> Option<&mut Conn> {
        self.conns.get_mut(id).and_then(|c| c.as_mut())
    }

    fn start_conn(&mut self) {
        let now = self.now();
        if now < self.connect_backoff {
            return;
        }
        let src = if self.o.srcs.is_empty() {
            None
        } else {
            self.next_src = (self.next_src + 1) % self.o.srcs.len();
            Some(self.o.srcs[self.next_src])
        };
        match self.net.connect(self.o.target, src.map(Into::into)) {
            Ok(id) => {
                if self.conns.len() <= id {
                    self.conns.resize_with(id + 1, || None);
                }
                let reader = match self.o.proto {
                    Proto::Http { .. } => ResponseReader::http(),
                    _ => ResponseReader::count(if self.o.workload == Workload::Stream { 1 } else { self.o.resp_bytes }),
                };
                let next_due = match self.o.rate {
                    // Each connection slot k sends at k/N of the interval past every multiple of
                    // it, on one clock from the start of the run: with all N open the requests
                    // come at the rate asked, evenly, however long the connections took to
                    // open. (Staggering from each connection's own open time instead offered
                    // N / (ramp + interval) per second: 14.7k of 20k with a million
                    // connections opened over 18 s.) A connection opened late sends at its
                    // slot's next turn.
                    Some(r) => first_due(
                        now,
                        self.opened,
                        self.o.conns as u64,
                        ((self.o.conns as f64 / r * 1e9) as u64).max(1),
                    ),
                    None => 0,
                };
                self.opened += 1;
                self.conns[id] = Some(Conn {
                    connected: false,
                    out: Vec::new(),
                    out_pos: 0,
                    inflight: VecDeque::new(),
                    reader,
                    next_due,
                    started: now,
                    sync_sent: false,
                });
                self.handshakes.push_back((now, id));
                self.open += 1;
                self.connecting += 1;
                self.peak = self.peak.max(self.open);
            }
            Err(e) => {
                if self.measuring {
                    self.errors += 1;
                }
                if e.kind() == ErrorKind::ConnectionReset {
                    self.resets += 1;
                }
                // Ports or addresses exhausted, say: do not spin on it.
                self.connect_backoff = now + 1_000_000;
            }
        }
    }

    /// The connection is gone (closed by us, or by the peer / an error when `error`).
    fn drop_conn(&mut self, id: usize, close: bool, error: bool, reset: bool) {
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.take()) else { return };
        if close {
            self.net.close(id);
        }
        self.open -= 1;
        if !c.connected {
            self.connecting -= 1;
        }
        if error && self.measuring && !self.draining {
            self.errors += 1;
            if reset {
                self.resets += 1;
            }
        }
    }

    fn queue_request(&mut self, id: usize, at: u64) {
        let req = std::mem::take(&mut self.request);
        if let Some(c) = self.conn(id) {
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
            }
            c.out.extend_from_slice(&req);
            c.inflight.push_back(at);
        }
        self.request = req;
    }

    /// Do what can be done on one connection now, up to `DRIVE_ROUNDS` rounds of writing and
    /// reading; a connection with work left is driven again after the next poll (`again`), so
    /// that one that can always write (a stream into a fast receiver) does not keep the loop
    /// from its clock. (Without the bound, an IPv6 kernel stream never left its warm-up: the
    /// events are edge-triggered, and its socket never said WouldBlock.)
    fn drive(&mut self, id: usize) {
        for _ in 0..DRIVE_ROUNDS {
            let now = self.now();
            let o = self.o;
            let draining = self.draining;
            let Some(c) = self.conn(id) else { return };
            if !c.connected {
                return;
            }
            let mut progress = false;
            // Queue requests.
            match o.workload {
                Workload::Rr if !draining => {
                    let mut due = Vec::new();
                    if let Some(r) = o.rate {
                        let interval = (o.conns as f64 / r * 1e9) as u64;
                        while c.next_due <= now && c.inflight.len() + due.len() < o.pipeline {
                            due.push(c.next_due);
                            c.next_due += interval.max(1);
                        }
                    } else {
                        for _ in c.inflight.len()..o.pipeline {
                            due.push(now);
                        }
                    }
                    for at in due {
                        self.queue_request(id, at);
                        progress = true;
                    }
                }
                Workload::Crr if c.inflight.is_empty() && c.out.is_empty() => {
                    let at = c.started;
                    self.queue_request(id, at);
                }
                Workload::Stream => {
                    let idle = c.out_pos == c.out.len();
                    if idle && !draining {
                        let req = std::mem::take(&mut self.request);
                        if let Some(c) = self.conn(id) {
                            c.out.clear();
                            c.out_pos = 0;
                            c.out.extend_from_slice(&req);
                        }
                        self.request = req;
                    } else if idle && !c.sync_sent {
                        c.out.clear();
                        c.out_pos = 0;
                        c.out.extend_from_slice(&header(HEADER_LEN as u32, 1));
                        c.inflight.push_back(now);
                        c.sync_sent = true;
                    }
                }
                _ => {}
            }
            // Write.
            let Some(c) = self.conn(id) else { return };
            if c.out_pos < c.out.len() {
                let (out, pos) = (std::mem::take(&mut c.out), c.out_pos);
                let r = self.net.send(id, &out[pos..]);
                let c = self.conn(id).expect("still there");
                c.out = out;
                match r {
                    Ok(n) => {
                        c.out_pos += n;
                        if self.measuring && !(self.draining && o.workload == Workload::Stream) {
                            self.bytes_sent += n as u64;
                        }
                        progress |= n > 0;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let reset = e.kind() == ErrorKind::ConnectionReset;
                        self.drop_conn(id, true, true, reset);
                        return;
                    }
                }
            }
            // Read.
            match self.net.recv(id, &mut self.scratch) {
                Ok(0) => {
                    // The server closed: for a keep-alive workload that is an error.
                    self.drop_conn(id, true, true, false);
                    return;
                }
                Ok(n) => {
                    progress = true;
                    if self.measuring {
                        self.bytes_received += n as u64;
                    }
                    let now = self.now();
                    let data = std::mem::take(&mut self.scratch);
                    let r = self.conn(id).expect("still there").reader.feed(&data[..n]);
                    self.scratch = data;
                    let (done, failed) = match r {
                        Ok(x) => x,
                        Err(_) => {
                            self.drop_conn(id, true, true, false);
                            return;
                        }
                    };
                    for _ in 0..done {
                        let Some(at) = self.conn(id).and_then(|c| c.inflight.pop_front()) else {
                            // More responses than requests: the server is not speaking our protocol.
                            self.drop_conn(id, true, true, false);
                            return;
                        };
                        if self.measuring && !self.draining {
                            let lat = now.saturating_sub(at).max(1);
                            let _ = self.hist.record(lat);
                            let _ = self.second.record(lat);
                            self.requests += 1;
                        }
                    }
                    if self.measuring {
                        self.errors += failed;
                    }
                    if o.workload == Workload::Crr && done > 0 {
                        if self.measuring && !self.draining {
                            self.connections += 1;
                        }
                        self.drop_conn(id, true, false, false);
                        return;
                    }
                    if o.workload == Workload::Stream && self.draining && done > 0 {
                        self.drop_conn(id, true, false, false);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    let reset = e.kind() == ErrorKind::ConnectionReset;
                    self.drop_conn(id, true, true, reset);
                    return;
                }
            }
            if !progress {
                return;
            }
        }
        self.again.push(id);
    }
}

/// Run the workload; the result, or why it could not start.
pub fn run<N: Net>(net: N, o: &ClientOptions, stop: &AtomicBool) -> Result<(RunResult, Histogram<u64>), String> {
    o.check().map_err(|e| e.to_string())?;
    let request = match (&o.proto, o.workload) {
        (Proto::Framed, Workload::Stream) => {
            let mut r = header(o.req_bytes as u32, 0).to_vec();
            r.resize(o.req_bytes, 0x5a);
            r
        }
        (Proto::Framed, _) => {
            let mut r = header(o.req_bytes as u32, o.resp_bytes as u32).to_vec();
            r.resize(o.req_bytes, 0x5a);
            r
        }
        (Proto::Raw, _) => vec![0x5a; o.req_bytes],
        (Proto::Http { path, host }, _) => {
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xtcp-bench\r\n\r\n").into_bytes()
        }
    };
    let stack = net.name().to_string();
    let mut r = Run {
        o,
        net,
        t0: Instant::now(),
        conns: Vec::new(),
        open: 0,
        connecting: 0,
        request,
        scratch: vec![0u8; 256 * 1024],
        measuring: false,
        draining: false,
        hist: new_histogram(),
        second: new_histogram(),
        requests: 0,
        connections: 0,
        bytes_sent: 0,
        bytes_received: 0,
        errors: 0,
        resets: 0,
        peak: 0,
        next_src: 0,
        connect_backoff: 0,
        opened: 0,
        handshakes: VecDeque::new(),
        again: Vec::new(),
    };
    let warm_end = ns(Duration::from_secs_f64(o.warmup));
    let end = warm_end + ns(Duration::from_secs_f64(o.seconds));
    let mut cpu0 = cpu_times();
    let mut cpu1;
    let mut measured_end: Option<u64>;
    let mut last_progress = 0u64;
    let mut last_count = (0u64, 0u64);
    let mut events = Vec::with_capacity(1024);
    let timeout = if o.busy_poll { Duration::ZERO } else { Duration::from_millis(1) };
    let mut last_sweep = 0u64;
    let mut next_due_min = 0u64;
    let mut schedule: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    if o.warmup <= 0.0 {
        r.measuring = true;
    }
    loop {
        let now = r.now();
        if !r.measuring && now >= warm_end {
            r.measuring = true;
            cpu0 = cpu_times();
        }
        if !r.draining && (now >= end || stop.load(Ordering::Relaxed)) {
            r.draining = true;
            measured_end = Some(now);
            cpu1 = cpu_times();
            if o.workload != Workload::Stream {
                break;
            }
            // stream: the sync round trip on every connection.
            let ids: Vec<usize> = (0..r.conns.len()).filter(|&i| r.conns[i].is_some()).collect();
            for id in ids {
                r.drive(id);
            }
        }
        if r.draining {
            // stream only: wait (at most 5 s) for every sync answer.
            if r.open == 0 || now > end + 5_000_000_000 {
                measured_end = Some(now);
                cpu1 = cpu_times();
                break;
            }
        }
        // Keep the connections up.
        while !r.draining && r.open < o.conns && r.connecting < o.max_connecting && now >= r.connect_backoff {
            r.start_conn();
        }
        events.clear();
        // Open loop, blocking: sleep until the next request is due, in whole milliseconds (what
        // epoll_wait and poll(2) can do) less one, and spin the rest, so that the client's own
        // lateness does not become latency.
        let t = if !r.again.is_empty() {
            Duration::ZERO
        } else if o.rate.is_some() && !o.busy_poll {
            let gap = next_due_min.saturating_sub(r.now());
            Duration::from_millis((gap / 1_000_000).saturating_sub(1).min(100))
        } else {
            timeout
        };
        if let Err(e) = r.net.poll(&mut events, t) {
            return Err(format!("poll: {e}"));
        }
        let again = std::mem::take(&mut r.again);
        for &(id, ev) in &events {
            match ev {
                NetEvent::Connected => {
                    if let Some(c) = r.conn(id) {
                        if !c.connected {
                            c.connected = true;
                            let due = c.next_due;
                            r.connecting -= 1;
                            if o.rate.is_some() {
                                schedule.push(Reverse((due, id)));
                            }
                        }
                    }
                    r.drive(id);
                }
                NetEvent::Ready => r.drive(id),
                NetEvent::Closed { reset, error } => {
                    r.drop_conn(id, false, error || r.conns.get(id).is_some_and(|c| c.is_some()), reset)
                }
                NetEvent::Accepted => {}
            }
        }
        for id in again {
            r.drive(id);
        }
        // Open loop: requests fall due without any event.
        let now = r.now();
        // A heap of (due time, connection): each connected connection has an entry (stale
        // ones, for connections gone or rescheduled by a Ready event, are refreshed or dropped
        // when they come up), so a pass costs the due connections, not all of them.
        if o.rate.is_some() {
            let mut blocked = Vec::new();
            while let Some(&Reverse((due, id))) = schedule.peek() {
                if due > now {
                    break;
                }
                schedule.pop();
                let Some(c) = r.conns.get(id).and_then(|c| c.as_ref()).filter(|c| c.connected) else { continue };
                if c.next_due <= now {
                    r.drive(id);
                }
                if let Some(c) = r.conns.get(id).and_then(|c| c.as_ref()) {
                    // Still due (its pipeline is full): look again after the next poll.
                    if c.next_due <= now {
                        blocked.push(Reverse((c.next_due, id)));
                    } else {
                        schedule.push(Reverse((c.next_due, id)));
                    }
                }
            }
            schedule.extend(blocked);
            next_due_min = schedule.peek().map_or(u64::MAX, |Reverse((d, _))| *d);
        }
        // Handshakes that take too long.
        if now - last_sweep > 100_000_000 {
            last_sweep = now;
            let limit = ns(o.connect_timeout);
            while let Some(&(started, id)) = r.handshakes.front() {
                let waiting =
                    r.conns.get(id).and_then(|c| c.as_ref()).is_some_and(|c| !c.connected && c.started == started);
                if waiting && now.saturating_sub(started) <= limit {
                    break; // the oldest handshake left is within its time: so are the rest
                }
                r.handshakes.pop_front();
                if waiting {
                    r.drop_conn(id, true, true, false);
                }
            }
        }
        if o.progress && now - last_progress >= 1_000_000_000 {
            let secs = (now - last_progress) as f64 / 1e9;
            let phase = if r.measuring { "" } else { " (warm-up)" };
            let p = |q: f64| r.second.value_at_quantile(q) as f64 / 1000.0;
            eprintln!(
                "[{:>5.1} s]{phase} {:>9.0} req/s {:>8.0} conn/s  open {}  p50 {:.1} µs p99 {:.1} µs  errors {} resets {}",
                now as f64 / 1e9,
                (r.requests - last_count.0) as f64 / secs,
                (r.connections - last_count.1) as f64 / secs,
                r.open,
                p(0.5),
                p(0.99),
                r.errors,
                r.resets
            );
            r.second.reset();
            last_progress = now;
            last_count = (r.requests, r.connections);
        }
    }
    let measured = (measured_end.unwrap_or(end).saturating_sub(warm_end)) as f64 / 1e9;
    let measured = measured.max(1e-9);
    // Close everything gracefully and give the stack a moment to send the FINs.
    let ids: Vec<usize> = (0..r.conns.len()).filter(|&i| r.conns[i].is_some()).collect();
    for id in ids {
        r.drop_conn(id, true, false, false);
    }
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        events.clear();
        let _ = r.net.poll(&mut events, Duration::from_millis(1));
    }
    let cpu = (cpu1.0 - cpu0.0) + (cpu1.1 - cpu0.1);
    let per = match o.workload {
        Workload::Stream => cpu * 1e6 / (r.bytes_sent as f64 / 1e6).max(1e-9),
        _ => cpu * 1e6 / (r.requests.max(1) as f64),
    };
    let polling = if o.busy_poll { "busy" } else { "blocking" };
    let hist = std::mem::replace(&mut r.hist, new_histogram());
    Ok((
        RunResult {
            label: o.label.clone(),
            stack,
            workload: match o.workload {
                Workload::Rr if o.rate.is_some() => "rr-open-loop",
                Workload::Rr => "rr",
                Workload::Crr => "crr",
                Workload::Stream => "stream",
            }
            .into(),
            polling: polling.into(),
            target: o.target.to_string(),
            conns: o.conns,
            req_bytes: o.req_bytes,
            resp_bytes: o.resp_bytes,
            pipeline: o.pipeline,
            rate: o.rate.unwrap_or(0.0),
            seconds: measured,
            requests: r.requests,
            connections: r.connections,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            requests_per_sec: r.requests as f64 / measured,
            connections_per_sec: r.connections as f64 / measured,
            gbit_per_sec: (r.bytes_sent + r.bytes_received) as f64 * 8.0 / measured / 1e9,
            latency_us: Latency::of(&hist),
            cpu_user_s: cpu1.0 - cpu0.0,
            cpu_sys_s: cpu1.1 - cpu0.1,
            cpu_us_per_request: per,
            errors: r.errors,
            resets: r.resets,
            peak_conns: r.peak,
            percentiles: percentile_points(&hist),
            device: r.net.device_counters().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        },
        hist,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Net, NetEvent};
    use std::io;
    use std::net::IpAddr;

    /// A stack whose one connection always takes every byte written (a receiver faster than
    /// the writer), edge-triggered: one Connected event, then nothing until the stream's final
    /// 1-byte request, which it answers.
    struct Sink {
        connected: bool,
        sent: u64,
        sync_asked: bool,
        answered: bool,
    }

    impl Net for Sink {
        fn connect(&mut self, _: SocketAddr, _: Option<IpAddr>) -> io::Result<usize> {
            Ok(0)
        }
        fn listen(&mut self, _: SocketAddr, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn send(&mut self, _: usize, data: &[u8]) -> io::Result<usize> {
            self.sent += data.len() as u64;
            // The final request is a bare header asking for a 1-byte answer.
            self.sync_asked |= data == header(HEADER_LEN as u32, 1).as_slice();
            Ok(data.len())
        }
        fn recv(&mut self, _: usize, buf: &mut [u8]) -> io::Result<usize> {
            if self.sync_asked && !self.answered {
                self.answered = true;
                buf[0] = 0;
                return Ok(1);
            }
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn close(&mut self, _: usize) {}
        fn poll(&mut self, out: &mut Vec<(usize, NetEvent)>, _: Duration) -> io::Result<()> {
            if !self.connected {
                self.connected = true;
                out.push((0, NetEvent::Connected));
            } else if self.sync_asked && !self.answered {
                out.push((0, NetEvent::Ready));
            }
            Ok(())
        }
        fn name(&self) -> &'static str {
            "sink"
        }
    }

    /// A stream into a receiver that never pushes back still ends on time: the connection
    /// is driven in bounded turns, so the loop sees its clock (it ran forever before).
    #[test]
    fn a_stream_that_never_blocks_ends_on_time() {
        let o = ClientOptions {
            target: "198.18.2.1:7000".parse().unwrap(),
            workload: Workload::Stream,
            proto: Proto::Framed,
            conns: 1,
            req_bytes: 65536,
            resp_bytes: 0,
            pipeline: 1,
            rate: None,
            seconds: 0.2,
            warmup: 0.0,
            busy_poll: true,
            srcs: Vec::new(),
            max_connecting: 1,
            connect_timeout: Duration::from_secs(3),
            progress: false,
            label: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let net = Sink { connected: false, sent: 0, sync_asked: false, answered: false };
            let _ = tx.send(run(net, &o, &stop).map(|(r, _)| (r.seconds, r.bytes_sent)));
        });
        let got = rx.recv_timeout(Duration::from_secs(20)).expect("the run ended (it spun past its end before)");
        let (seconds, bytes) = got.expect("the run worked");
        assert!((0.2..5.0).contains(&seconds), "measured {seconds} s");
        assert!(bytes > 0);
    }

    /// However slowly the connections open, once all are open the requests fall due at the
    /// rate asked and evenly spread: n per interval, one every interval / n.
    #[test]
    fn the_open_loop_schedule_keeps_its_rate_through_a_slow_ramp() {
        let (n, interval) = (1000u64, 1_000_000u64); // 1000 connections, each every 1 ms: 1M/s
        for ramp in [0u64, 10_000, 3_333_333, 18_000_000] {
            let mut dues: Vec<u64> = (0..n)
                .map(|k| {
                    let opened = ramp * k / n;
                    let d = first_due(opened, k, n, interval);
                    assert!(d >= opened && d < opened + interval, "k {k} opened {opened}: due {d}");
                    // Its first turn at or after a time past the ramp (turns repeat each interval).
                    let t = ramp + interval;
                    d + t.saturating_sub(d).div_ceil(interval) * interval
                })
                .collect();
            dues.sort_unstable();
            let span = dues[dues.len() - 1] - dues[0];
            assert!(span < interval, "ramp {ramp}: one round spans {span} ns");
            let gaps = dues.windows(2).map(|w| w[1] - w[0]);
            assert!(gaps.clone().all(|g| g == interval / n), "ramp {ramp}: uneven {:?}", gaps.max());
        }
    }
}
