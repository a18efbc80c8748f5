//! The interpreter: runs a parsed script against one xtcp stack ([`Kernel`]) in virtual time.
//!
//! The model is packetdrill's (run.c, run_packet.c, run_system_call.c), with the clock
//! virtual instead of real:
//!
//! * Each event has a time. Before an inbound packet or a system call at time T, the clock
//!   advances to T, running every TCB timer due on the way and collecting what the stack
//!   sends. An outbound line takes the next segment the stack sent (advancing the clock until
//!   one is sent, at most to the line's time plus the tolerance) and compares it with the
//!   script, after mapping the stack's sequence numbers and timestamps into the script's.
//! * Relative times (`+0.1`) count from when the previous event actually happened (for an
//!   outbound packet: when the stack sent it), as packetdrill's `adjust_relative_event_times`.
//! * The tolerance is packetdrill's `verify_time`: the larger of `--tolerance_usecs` (4 ms)
//!   and `--tolerance_percent` (12.5 %) of the time since the previous event.
//! * A segment the stack sends that the script does not expect before its next inbound packet
//!   or system call is a failure (stricter than packetdrill, which only notices it at the next
//!   outbound line); segments still queued when the script ends are ignored, as packetdrill
//!   does.
//! * System calls written with a time range (`0.1...0.3 read(...)`) may block: the call starts
//!   at the first time, the script goes on, and the call must return at the second time.
//!   Other calls must return at once (within the tolerance).
//! * There is one connection under test at a time (packetdrill's `socket_under_test`): the
//!   newest socket, the child made by an inbound packet to a listener, or the connecting one.

use super::net::*;
use super::parse::{Action, Direction, Event, Expr, IpEcn, Packet, Script, Syscall, TcpOpt, Time, TimeKind};
use super::symbols::*;
use super::{Failure, Outcome, Profile, Report, RunConfig};
use crate::time::Instant;
use crate::wire::checksum;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Remote port given to the first connection a script's inbound packets open; later ones
/// count up (packetdrill picks an ephemeral port).
const FIRST_REMOTE_PORT: u16 = 40000;
/// Timer firings at one instant before the stack is declared stuck.
const MAX_FIRINGS_PER_INSTANT: u32 = 10_000;
/// Timer firings in one advance before the script is declared runaway (e.g. an hour of
/// 1 ms timers).
const MAX_FIRINGS_PER_ADVANCE: u32 = 2_000_000;
/// Largest SO_RCVBUF / SO_SNDBUF a script may set (64 MiB).
const MAX_BUFFER: usize = 64 << 20;

/// Why the run stopped early.
enum Stop {
    Fail(Failure),
    /// Lenient mode met a feature that makes the rest of the script meaningless.
    Skip(String),
}

type R<T> = Result<T, Stop>;

/// The mapping between one connection's script values and live values.
#[derive(Debug, Clone, Default)]
pub(super) struct Flow {
    pub(super) local_port: u16,
    pub(super) remote_port: u16,
    /// The peer's ISN, as the script gave it (inbound sequence numbers are used as written,
    /// as packetdrill does); only needed to know which pattern bytes a payload carries.
    pub(super) remote_isn: Option<u32>,
    /// Our ISN: (script, live), learned from the first SYN or SYN-ACK the script expects.
    pub(super) local_isn: Option<(u32, u32)>,
    /// Script TS val → the live TS val the stack sent when the script showed that value.
    pub(super) ts_map: HashMap<u32, u32>,
    /// The first (script, live) TS val pair: the base for `--tcp_ts_tick_usecs` checks.
    pub(super) ts_first: Option<(u32, u32)>,
}

impl Flow {
    /// Our sequence space, live → script.
    pub(super) fn local_to_script(&self, live: u32) -> u32 {
        match self.local_isn {
            Some((script, isn)) => live.wrapping_sub(isn).wrapping_add(script),
            None => live,
        }
    }
    /// Our sequence space, script → live (the ACKs and SACK blocks the peer sends).
    pub(super) fn local_to_live(&self, script: u32) -> u32 {
        match self.local_isn {
            Some((sisn, isn)) => script.wrapping_sub(sisn).wrapping_add(isn),
            None => script,
        }
    }
}

/// Timer firings during one clock advance, to notice a stack whose timers never settle.
#[derive(Debug)]
struct Firings {
    /// The instant of the last firing, and how many firings happened at it.
    instant: Instant,
    at_instant: u32,
    total: u32,
}

impl Default for Firings {
    fn default() -> Self {
        Firings { instant: Instant::FAR_FUTURE, at_instant: 0, total: 0 }
    }
}

/// The connection under test.
#[derive(Debug)]
enum Sut {
    None,
    Socket(i32),
    Listening(u16),
    Flow(Box<Flow>),
}

/// A system call that blocked, waiting to complete.
#[derive(Debug)]
struct Pending {
    line: usize,
    call: Syscall,
    kind: PendingKind,
    fd: i32,
    start: u64,
    /// The time the call must return at: a range's end, or (unranged) its start.
    end: u64,
    ranged: bool,
    tol: u64,
}

#[derive(Debug)]
enum PendingKind {
    Accept,
    Connect(usize),
    Read { len: usize, dontwait: bool },
    Write { len: usize, done: usize, dontwait: bool },
    Poll { fds: Vec<PollFd>, deadline: Option<Instant> },
}

#[derive(Debug, Clone)]
struct PollFd {
    fd: i32,
    events: i64,
    revents: Option<i64>,
}

struct Interp<'a> {
    cfg: &'a RunConfig,
    k: Kernel,
    tol_usecs: u64,
    tol_percent: f64,
    ts_tick_usecs: u64,
    strict_segments: bool,
    sut: Sut,
    /// The previous event's script time (µs), for the dynamic tolerance.
    last_script_time: Option<u64>,
    last_absolute: Option<u64>,
    pending: Option<Pending>,
    next_remote_port: u16,
    line: usize,
    skipped: Vec<(usize, String)>,
    trace: Vec<String>,
}

/// Run a parsed script.
pub(super) fn run(script: &Script, cfg: &RunConfig, current_line: &std::cell::Cell<usize>) -> Report {
    let mut it = Interp {
        cfg,
        k: Kernel::new(cfg.profile.config()),
        tol_usecs: 4000,
        tol_percent: 12.5,
        ts_tick_usecs: 0,
        strict_segments: false,
        sut: Sut::None,
        last_script_time: None,
        last_absolute: None,
        pending: None,
        next_remote_port: FIRST_REMOTE_PORT,
        line: 0,
        skipped: Vec::new(),
        trace: Vec::new(),
    };
    let result = it.run_all(script, current_line);
    let outcome = match result {
        Ok(()) => Outcome::Pass,
        Err(Stop::Fail(f)) => Outcome::Fail(f),
        Err(Stop::Skip(why)) => Outcome::Skipped(why),
    };
    Report { outcome, skipped: it.skipped, trace: it.trace }
}

fn secs(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

impl Interp<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> R<T> {
        Err(Stop::Fail(Failure { line: self.line, message: message.into() }))
    }

    fn now_us(&self) -> u64 {
        self.k.now.as_micros()
    }

    fn trace(&mut self, s: impl FnOnce() -> String) {
        if self.cfg.verbose {
            let line = s();
            self.trace.push(line);
        }
    }

    /// An unsupported feature: a failure, or in lenient mode a skipped line.
    fn unsupported(&mut self, what: &str) -> R<()> {
        if self.cfg.lenient {
            self.skipped.push((self.line, what.to_string()));
            self.trace(|| format!("    skipped (unsupported: {what})"));
            Ok(())
        } else {
            self.fail(format!("unsupported: {what} (run with --lenient to skip it)"))
        }
    }

    /// An unsupported feature that the rest of the script depends on.
    fn unsupported_script(&mut self, what: &str) -> R<()> {
        if self.cfg.lenient {
            Err(Stop::Skip(format!("line {}: unsupported: {what}", self.line)))
        } else {
            self.fail(format!("unsupported: {what}"))
        }
    }

    fn run_all(&mut self, script: &Script, current_line: &std::cell::Cell<usize>) -> R<()> {
        for opt in &script.options {
            self.line = opt.line;
            self.script_option(&opt.name, opt.value.as_deref())?;
        }
        for (i, ev) in script.events.iter().enumerate() {
            self.line = ev.line;
            current_line.set(ev.line);
            if i == 0 && ev.time.kind == TimeKind::Absolute && ev.time.start != 0 {
                return self.fail("the first event must be at time 0");
            }
            if ev.time.kind == TimeKind::Absolute {
                if let Some(prev) = self.last_absolute {
                    if ev.time.start < prev {
                        return self.fail(format!(
                            "time goes backward in the script, from {} s to {} s",
                            secs(prev),
                            secs(ev.time.start)
                        ));
                    }
                }
                self.last_absolute = Some(ev.time.start);
            }
            self.event(ev)?;
        }
        if let Some(p) = &self.pending {
            self.line = p.line;
            let name = p.call.name.clone();
            return self.fail(format!("the blocking `{name}` call had not returned when the script ended"));
        }
        Ok(())
    }

    fn script_option(&mut self, name: &str, value: Option<&str>) -> R<()> {
        let num = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
        match name {
            "tolerance_usecs" => match num(value) {
                Some(v) => self.tol_usecs = v as u64,
                None => return self.fail("--tolerance_usecs needs a non-negative number"),
            },
            "tolerance_percent" => match num(value) {
                Some(v) => self.tol_percent = v,
                None => return self.fail("--tolerance_percent needs a non-negative number"),
            },
            "tcp_ts_tick_usecs" => match num(value) {
                Some(v) => self.ts_tick_usecs = v as u64,
                None => return self.fail("--tcp_ts_tick_usecs needs a non-negative number"),
            },
            "strict_segments" => self.strict_segments = true,
            "ip_version" => match value {
                Some("ipv4") => {}
                _ => return self.unsupported_script("IPv6 (`--ip_version` other than ipv4)"),
            },
            // Address and device settings are fixed by the interpreter; these change nothing
            // a script can observe here.
            "local_ip" | "remote_ip" | "gateway_ip" | "netmask_ip" | "mtu" | "speed" | "bind_port" | "connect_port"
            | "verbose" | "non_fatal" | "tcp_ts_ecr_scaled" => {
                return self.unsupported(&format!("option --{name}"));
            }
            _ => return self.unsupported(&format!("option --{name}")),
        }
        Ok(())
    }

    /// (start, end) of an event in µs: absolute, or relative to now. `None` for `*`.
    fn event_times(&self, t: &Time) -> Option<(u64, Option<u64>)> {
        match t.kind {
            TimeKind::Absolute => Some((t.start, t.end)),
            TimeKind::Relative => {
                let base = self.now_us();
                Some((base.saturating_add(t.start), t.end.map(|e| base.saturating_add(e))))
            }
            TimeKind::Any => None,
        }
    }

    /// packetdrill's `verify_time` tolerance for an event expected at `expected`.
    fn tolerance(&self, expected: u64) -> u64 {
        let delta = expected.saturating_sub(self.last_script_time.unwrap_or(expected));
        let dynamic = (delta as f64 * self.tol_percent / 100.0) as u64;
        self.tol_usecs.max(dynamic)
    }

    fn event(&mut self, ev: &Event) -> R<()> {
        let times = self.event_times(&ev.time);
        self.trace(|| format!("line {}: {}", ev.line, describe_action(&ev.action)));
        let result = match &ev.action {
            Action::Command(cmd) => {
                self.settle_at(times)?;
                // A sysctl xtcp can honour changes the settings of sockets made after it.
                let mut base = self.k.base().clone();
                match super::sysctl::apply(cmd, &mut base) {
                    Ok(()) => {
                        *self.k.base_mut() = base;
                        Ok(())
                    }
                    Err(super::sysctl::Refused::Line(why)) => self.unsupported(&why),
                    Err(super::sysctl::Refused::Script(why)) => self.unsupported_script(&why),
                }
            }
            Action::Code(_) => {
                self.settle_at(times)?;
                self.unsupported("inline code (`%{ ... }%`)")
            }
            Action::Unsupported { what } => {
                self.settle_at(times)?;
                self.unsupported(what)
            }
            Action::Packet(p) if p.dir == Direction::Inbound => self.inbound(times, p),
            Action::Packet(p) => self.outbound(times, p),
            Action::Syscall(s) => self.syscall(times, s),
        };
        self.last_script_time = Some(times.map_or(self.now_us(), |(s, _)| s));
        result
    }

    /// Bring the clock to an inbound packet's or system call's time and check that nothing
    /// unexpected went out on the way. Returns the time the event happens.
    fn settle_at(&mut self, times: Option<(u64, Option<u64>)>) -> R<u64> {
        let (start, end) = times.unwrap_or((self.now_us(), None));
        self.advance_to(Instant::from_micros(start))?;
        self.check_unexpected()?;
        let now = self.now_us();
        let tol = self.tolerance(start);
        let latest = end.unwrap_or(start).saturating_add(tol);
        if now > latest {
            return self.fail(format!(
                "timing error: the event is due at {} s (tolerance {} s) but the previous event ended at {} s",
                secs(start),
                secs(tol),
                secs(now)
            ));
        }
        Ok(now)
    }

    // ------------------------------------------------------------------ time

    fn pending_deadline(&self) -> Option<Instant> {
        match &self.pending {
            Some(Pending { kind: PendingKind::Poll { deadline, .. }, .. }) => *deadline,
            _ => None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [self.k.next_deadline(), self.pending_deadline()].into_iter().flatten().min()
    }

    fn kernel<T>(&mut self, r: Result<T, NetError>) -> R<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => self.fail(e),
        }
    }

    /// Fire the timers due at the next deadline (if it is at or before `limit`). Returns
    /// false if there was none.
    fn step(&mut self, limit: Instant, firings: &mut Firings) -> R<bool> {
        let Some(d) = self.next_deadline() else { return Ok(false) };
        if d > limit {
            return Ok(false);
        }
        let at = d.max(self.k.now);
        if at == firings.instant {
            firings.at_instant += 1;
            if firings.at_instant > MAX_FIRINGS_PER_INSTANT {
                return self.fail(format!("the stack's timers are stuck: deadline {at} keeps firing without moving"));
            }
        } else {
            firings.instant = at;
            firings.at_instant = 0;
        }
        firings.total += 1;
        if firings.total > MAX_FIRINGS_PER_ADVANCE {
            return self.fail("too many timer events while advancing the clock (runaway timers)");
        }
        self.k.now = at;
        let r = self.k.fire_timers();
        self.kernel(r)?;
        self.drain_notes();
        self.check_pending()?;
        Ok(true)
    }

    /// Advance the clock to `t`, running every timer due up to and including `t`.
    fn advance_to(&mut self, t: Instant) -> R<()> {
        let mut firings = Firings::default();
        while self.step(t, &mut firings)? {}
        if t > self.k.now {
            self.k.now = t;
        }
        Ok(())
    }

    fn drain_notes(&mut self) {
        let notes = std::mem::take(&mut self.k.notes);
        for n in notes {
            let now = self.now_us();
            self.trace(|| format!("    {}: {n}", secs(now)));
        }
    }

    // ------------------------------------------------------------------ outbound queue

    fn sut_flow(&self) -> Option<&Flow> {
        match &self.sut {
            Sut::Flow(f) => Some(f),
            _ => None,
        }
    }

    /// Drop queued segments that are not the connection under test's (packetdrill ignores
    /// them too), and say whether one of its own is next.
    fn front_is_sut(&mut self) -> bool {
        let tuple = self.sut_flow().map(|f| (f.local_port, f.remote_port));
        loop {
            let Some(front) = self.k.out.front() else { return false };
            if tuple == Some((front.local_port, front.remote_port)) {
                return true;
            }
            if let Some(seg) = self.k.out.pop_front() {
                self.trace(|| format!("    ignored a segment of another connection: {}", live_line(&seg)));
            }
        }
    }

    fn check_unexpected(&mut self) -> R<()> {
        if self.front_is_sut() {
            if let (Some(seg), Some(flow)) = (self.k.out.front(), self.sut_flow()) {
                let text = script_line(flow, seg);
                let at = secs(seg.time.as_micros());
                return self.fail(format!(
                    "unexpected outbound segment: the stack sent `{text}` at {at} s, which the script does not expect before this line"
                ));
            }
        }
        Ok(())
    }

    /// The next segment of the connection under test, advancing the clock (at most to
    /// `limit`) until the stack sends one.
    fn next_sut_segment(&mut self, limit: Instant) -> R<Option<OutSeg>> {
        let mut firings = Firings::default();
        loop {
            if self.front_is_sut() {
                return Ok(self.k.out.pop_front());
            }
            if !self.step(limit, &mut firings)? {
                return Ok(None);
            }
        }
    }

    // ------------------------------------------------------------------ packets

    fn ensure_flow_for_inbound(&mut self) {
        let local_port = match &self.sut {
            Sut::Flow(_) => return,
            Sut::Listening(p) => *p,
            Sut::Socket(fd) => self.k.sockets.get(fd).and_then(|s| s.port).unwrap_or(DEFAULT_PORT),
            Sut::None => DEFAULT_PORT,
        };
        let remote_port = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1);
        self.sut = Sut::Flow(Box::new(Flow { local_port, remote_port, ..Flow::default() }));
    }

    fn inbound(&mut self, times: Option<(u64, Option<u64>)>, p: &Packet) -> R<()> {
        self.settle_at(times)?;
        self.ensure_flow_for_inbound();
        let Sut::Flow(flow) = &mut self.sut else { return self.fail("internal error: no flow") };
        // The peer's ISN: from its SYN (a new one replaces it), or from a SYN-ACK if no SYN
        // was seen (our active open).
        if p.flags.syn && (!p.flags.ack || flow.remote_isn.is_none()) {
            flow.remote_isn = Some(p.seq);
        }
        let flow: &Flow = flow;
        let bytes = match inbound_bytes(flow, p) {
            Ok(b) => b,
            Err(e) => return self.fail(e),
        };
        let (lp, rp) = (flow.local_port, flow.remote_port);
        let r = self.k.deliver(lp, rp, &bytes, p.ecn == Some(IpEcn::Ce));
        self.kernel(r)?;
        self.drain_notes();
        self.check_pending()
    }

    fn outbound(&mut self, times: Option<(u64, Option<u64>)>, p: &Packet) -> R<()> {
        if self.sut_flow().is_none() {
            return self.fail("an outbound packet is expected, but no connection is under test yet");
        }
        let (limit, window) = match times {
            Some((start, end)) => {
                let tol = self.tolerance(start);
                let end = end.unwrap_or(start);
                (
                    Instant::from_micros(end.saturating_add(tol)),
                    Some((start.saturating_sub(tol), end.saturating_add(tol), start, tol)),
                )
            }
            None => (Instant::FAR_FUTURE, None),
        };
        let Some(first) = self.next_sut_segment(limit)? else {
            let expected = expected_line(p);
            let by = if limit == Instant::FAR_FUTURE {
                "with no timer left to run".to_string()
            } else {
                format!("by {} s", secs(limit.as_micros()))
            };
            return self.fail(format!("expected outbound `{expected}`, but the stack sent nothing {by}"));
        };
        let seg = self.aggregate(first, p, limit)?;
        let flow = match &mut self.sut {
            Sut::Flow(f) => f,
            _ => return self.fail("internal error: no flow"),
        };
        // Learn our ISN from the first SYN or SYN-ACK the script expects (packetdrill:
        // handle_connect_for_script_packet and the SYN-ACK case of do_outbound_script_packet).
        if p.flags.syn && seg.flags.syn && flow.local_isn.is_none() {
            flow.local_isn = Some((p.seq, seg.seq));
        }
        // Remember which live TS val the script's value stands for (inbound `ecr` maps back),
        // before comparing, as packetdrill's map_outbound_live_packet does.
        if let (Some(TcpOpt::Ts { val: sv, .. }), Some(TcpOpt::Ts { val: lv, .. })) = (
            p.options.as_ref().and_then(|o| o.iter().find(|x| matches!(x, TcpOpt::Ts { .. }))),
            seg.options.iter().find(|x| matches!(x, TcpOpt::Ts { .. })),
        ) {
            flow.ts_map.insert(*sv, *lv);
            flow.ts_first.get_or_insert((*sv, *lv));
        }
        let text_actual = script_line(flow, &seg);
        let mismatch = compare(flow, p, &seg, self.cfg.lenient, self.ts_tick_usecs, self.tol_usecs);
        let at = seg.time.as_micros();
        self.trace(|| format!("    {}: stack sent {}", secs(at), text_actual));
        if let Some(why) = mismatch {
            return self.fail(format!(
                "outbound segment mismatch ({why})\n    expected: {} s {}\n    actual:   {} s {}",
                times.map_or_else(|| "*".to_string(), |(s, _)| secs(s)),
                expected_line(p),
                secs(at),
                text_actual
            ));
        }
        if let Some((lo, hi, start, tol)) = window {
            if at < lo || at > hi {
                return self.fail(format!(
                    "timing error: expected `{}` at {} s (tolerance {} s) but the stack sent it at {} s",
                    expected_line(p),
                    secs(start),
                    secs(tol),
                    secs(at)
                ));
            }
        }
        Ok(())
    }

    /// packetdrill's aggregation: when the script expects more payload than one segment
    /// carried, consecutive segments that continue it (same flags, ACK and window; equal-sized
    /// but for the last) are merged, as a TSO burst would be. `--strict_segments` turns it off.
    fn aggregate(&mut self, first: OutSeg, p: &Packet, limit: Instant) -> R<OutSeg> {
        let want = p.len as usize;
        let mut seg = first;
        let piece = seg.payload.len();
        while !self.strict_segments && piece > 0 && seg.payload.len() < want {
            let Some(next) = self.next_sut_segment(limit)? else { break };
            let fits = next.seq == seg.seq.wrapping_add(seg.payload.len() as u32)
                && next.ack == seg.ack
                && next.window == seg.window
                && (next.flags.syn, next.flags.rst, next.flags.ack) == (seg.flags.syn, seg.flags.rst, seg.flags.ack)
                && !seg.flags.fin
                && (seg.payload.len() % piece == 0)
                && (next.payload.len() == piece || seg.payload.len() + next.payload.len() == want)
                && seg.payload.len() + next.payload.len() <= want
                && !next.payload.is_empty();
            if !fits {
                self.k.out.push_front(next);
                break;
            }
            seg.payload.extend_from_slice(&next.payload);
            seg.flags.psh |= next.flags.psh;
            seg.flags.fin |= next.flags.fin;
        }
        Ok(seg)
    }

    // ------------------------------------------------------------------ blocking calls

    /// See whether the blocked call can return now; if so, check its result and time.
    fn check_pending(&mut self) -> R<()> {
        let Some(mut p) = self.pending.take() else { return Ok(()) };
        let ret = match &mut p.kind {
            PendingKind::Accept => match self.k.accept(p.fd) {
                SysRet::Block => None,
                r => Some(r),
            },
            PendingKind::Connect(id) => {
                if self.k.connect_done(*id) {
                    Some(self.k.connect_progress(p.fd, *id))
                } else {
                    None
                }
            }
            PendingKind::Read { len, dontwait } => {
                if self.k.read_ready(p.fd) {
                    let mut data = Vec::new();
                    let r = self.k.read(p.fd, *len, *dontwait, &mut data);
                    self.check_read_bytes(p.fd, &data)?;
                    match r {
                        SysRet::Block => None,
                        r => Some(r),
                    }
                } else {
                    None
                }
            }
            PendingKind::Write { len, done, dontwait } => {
                if self.k.write_ready(p.fd) {
                    match self.k.write(p.fd, *len - *done, *dontwait) {
                        SysRet::Ok(n) => {
                            *done += n as usize;
                            let r = self.k.flush();
                            self.kernel(r)?;
                            if *done >= *len {
                                Some(SysRet::Ok(*done as i64))
                            } else {
                                None
                            }
                        }
                        SysRet::Block => None,
                        // Part was written before the error: report that part, as Linux does;
                        // the error comes with the next call.
                        SysRet::Err(_) if *done > 0 => Some(SysRet::Ok(*done as i64)),
                        r => Some(r),
                    }
                } else {
                    None
                }
            }
            PendingKind::Poll { fds, deadline } => {
                let (n, ready) = self.poll_now(fds);
                if n > 0 {
                    *fds = ready;
                    Some(SysRet::Ok(n))
                } else if matches!(deadline, Some(d) if *d <= self.k.now) {
                    *fds = ready;
                    Some(SysRet::Ok(0))
                } else {
                    None
                }
            }
        };
        let Some(ret) = ret else {
            self.pending = Some(p);
            return Ok(());
        };
        let saved = self.line;
        self.line = p.line;
        let now = self.now_us();
        self.trace(|| format!("    {}: blocking `{}` returned {}", secs(now), p.call.name, show_ret(ret)));
        if let PendingKind::Poll { fds, .. } = &p.kind {
            self.check_poll_result(&p.call, fds)?;
        }
        self.check_ret(&p.call, ret)?;
        let late = now.abs_diff(p.end) > p.tol;
        if late {
            let what = if p.ranged {
                format!("expected it to return at {} s (tolerance {} s)", secs(p.end), secs(p.tol))
            } else {
                format!("a call without a time range must return at once ({} s)", secs(p.start))
            };
            return self.fail(format!("timing error: `{}` returned at {} s; {what}", p.call.name, secs(now)));
        }
        self.line = saved;
        Ok(())
    }

    /// A call that would block: wait for it in the background (ranged), or let only the
    /// stack's own timers run for at most the tolerance (unranged, as packetdrill's main
    /// thread blocked in the call would).
    fn block(&mut self, call: &Syscall, fd: i32, kind: PendingKind, start: u64, end: Option<u64>) -> R<()> {
        let ranged = end.is_some();
        let tol = match end {
            Some(e) => self.tol_usecs.max((e.saturating_sub(start) as f64 * self.tol_percent / 100.0) as u64),
            None => self.tolerance(start),
        };
        self.pending = Some(Pending {
            line: self.line,
            call: call.clone(),
            kind,
            fd,
            start,
            end: end.unwrap_or(start),
            ranged,
            tol,
        });
        self.check_pending()?;
        if ranged || self.pending.is_none() {
            return Ok(());
        }
        let limit = Instant::from_micros(start.saturating_add(tol));
        let mut firings = Firings::default();
        while self.pending.is_some() && self.step(limit, &mut firings)? {}
        if self.pending.take().is_some() {
            return self.fail(format!(
                "`{}` would block; a call that waits for later events needs a time range (`T1...T2 {}(...)`)",
                call.name, call.name
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ system calls

    fn arg<'e>(&self, s: &'e Syscall, i: usize) -> R<&'e Expr> {
        match s.args.get(i) {
            Some(e) => Ok(e),
            None => {
                self.fail(format!("`{}` needs at least {} arguments, the script gives {}", s.name, i + 1, s.args.len()))
            }
        }
    }

    fn int(&self, e: &Expr, what: &str) -> R<i64> {
        match eval_int(e) {
            Ok(v) => Ok(v),
            Err(msg) => self.fail(format!("{what}: {msg}")),
        }
    }

    fn fd_arg(&self, s: &Syscall) -> R<i32> {
        let v = self.int(self.arg(s, 0)?, "the file descriptor")?;
        match i32::try_from(v) {
            Ok(fd) => Ok(fd),
            Err(_) => self.fail(format!("file descriptor {v} out of range")),
        }
    }

    fn usize_arg(&self, s: &Syscall, i: usize, what: &str) -> R<usize> {
        let v = self.int(self.arg(s, i)?, what)?;
        match usize::try_from(v) {
            Ok(n) if n <= 1 << 30 => Ok(n),
            _ => self.fail(format!("{what} {v} out of range")),
        }
    }

    fn argc(&self, s: &Syscall, n: &[usize], shape: &str) -> R<()> {
        if n.contains(&s.args.len()) {
            Ok(())
        } else {
            self.fail(format!("`{}` takes {shape}; the script gives {} arguments", s.name, s.args.len()))
        }
    }

    fn syscall(&mut self, times: Option<(u64, Option<u64>)>, s: &Syscall) -> R<()> {
        let start = self.settle_at(times)?;
        if let Some(p) = &self.pending {
            let (name, line) = (p.call.name.clone(), p.line);
            return self.fail(format!(
                "system call while the blocking `{name}` of line {line} is still in progress (packetdrill allows one at a time)"
            ));
        }
        let end = times.and_then(|(_, e)| e);
        let r = match s.name.as_str() {
            "socket" => self.sys_socket(s),
            "bind" => self.sys_bind(s),
            "listen" => self.sys_listen(s),
            "accept" => self.sys_accept(s, start, end),
            "connect" => self.sys_connect(s, start, end),
            "read" => self.sys_read(s, start, end, false),
            "recv" => self.sys_read(s, start, end, true),
            "write" => self.sys_write(s, start, end, false),
            "send" => self.sys_write(s, start, end, true),
            "close" => self.sys_close(s),
            "shutdown" => self.sys_shutdown(s),
            "setsockopt" => self.sys_setsockopt(s),
            "getsockopt" => self.sys_getsockopt(s),
            "fcntl" => self.sys_fcntl(s),
            "poll" => self.sys_poll(s, start, end),
            other => return self.unsupported(&format!("system call `{other}`")),
        };
        self.drain_notes();
        r
    }

    /// Compare a call's result with the script's `= value [ERRNO]`.
    fn check_ret(&self, s: &Syscall, actual: SysRet) -> R<()> {
        let expected = self.int(&s.ret, "the expected result")?;
        let want_errno = match &s.errno {
            Some(name) => match errno_value(name) {
                Some(v) => Some(v),
                None => return self.fail(format!("unknown errno `{name}`")),
            },
            None => None,
        };
        let ok = match actual {
            SysRet::Ok(v) => v == expected,
            SysRet::Err(e) => expected == -1 && want_errno.is_none_or(|w| w == e),
            SysRet::Block => false,
        };
        if ok {
            return Ok(());
        }
        let want = match (&s.errno, expected) {
            (Some(name), _) => format!("{expected} {name}"),
            (None, v) => v.to_string(),
        };
        self.fail(format!("`{}` returned {} but the script expects {want}", call_text(s), show_ret(actual)))
    }

    fn finish(&mut self, s: &Syscall, r: SysRet) -> R<()> {
        let now = self.now_us();
        self.trace(|| format!("    {}: `{}` returned {}", secs(now), s.name, show_ret(r)));
        self.check_ret(s, r)
    }

    fn sys_socket(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[3], "(domain, type, protocol)")?;
        let domain = &s.args[0];
        if !matches!(domain, Expr::Ellipsis) {
            match eval_int(domain) {
                Ok(AF_INET) => {}
                Ok(AF_INET6) => return self.unsupported_script("IPv6 sockets"),
                _ => return self.unsupported_script(&format!("socket domain {domain}")),
            }
        }
        let ty = self.int(&s.args[1], "the socket type")?;
        if ty & 0xf == SOCK_DGRAM {
            return self.unsupported_script("UDP sockets");
        }
        if ty & 0xf != SOCK_STREAM {
            return self.unsupported_script(&format!("socket type {}", s.args[1]));
        }
        if !matches!(&s.args[2], Expr::Ellipsis) {
            let proto = self.int(&s.args[2], "the protocol")?;
            if proto != 0 && proto != IPPROTO_TCP {
                return self.unsupported_script(&format!("protocol {}", s.args[2]));
            }
        }
        let fd = self.k.socket(ty & SOCK_NONBLOCK != 0);
        self.sut = Sut::Socket(fd as i32);
        self.finish(s, SysRet::Ok(fd))
    }

    /// The port in a `sockaddr` argument (`...` is the default port).
    fn port_arg(&mut self, e: &Expr) -> R<Option<u16>> {
        let Expr::Struct(fields) = e else {
            return match e {
                Expr::Ellipsis => Ok(Some(DEFAULT_PORT)),
                _ => {
                    self.fail(format!("expected a socket address (`...` or `{{sa_family=AF_INET, ...}}`), found `{e}`"))
                }
            };
        };
        let mut port = DEFAULT_PORT;
        for (name, v) in fields {
            match name.as_deref() {
                Some("sa_family" | "sin_family") if eval_int(v) == Ok(AF_INET6) => {
                    self.unsupported_script("IPv6 addresses")?;
                    return Ok(None);
                }
                Some("sin_port") => {
                    let p = match v {
                        Expr::Call(f, a) if f == "htons" && a.len() == 1 => self.int(&a[0], "the port")?,
                        other => self.int(other, "the port")?,
                    };
                    port = match u16::try_from(p) {
                        Ok(p) => p,
                        Err(_) => return self.fail(format!("port {p} out of range")),
                    };
                }
                Some(f) if f.starts_with("sin6_") => {
                    self.unsupported_script("IPv6 addresses")?;
                    return Ok(None);
                }
                // The address itself is fixed by the interpreter (198.18.0.1 / 198.18.0.2).
                _ => {}
            }
        }
        Ok(Some(port))
    }

    fn sys_bind(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        let Some(port) = self.port_arg(&s.args[1])? else { return Ok(()) };
        let r = self.k.bind(fd, port);
        self.finish(s, r)
    }

    fn sys_listen(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2], "(fd, backlog)")?;
        let fd = self.fd_arg(s)?;
        let backlog = self.int(&s.args[1], "the backlog")?;
        let r = self.k.listen(fd, backlog);
        if r == SysRet::Ok(0) {
            let port = self.k.sockets.get(&fd).and_then(|s| s.port).unwrap_or(DEFAULT_PORT);
            self.sut = Sut::Listening(port);
        }
        self.finish(s, r)
    }

    fn sys_accept(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        match self.k.accept(fd) {
            SysRet::Block => self.block(s, fd, PendingKind::Accept, start, end),
            r => self.finish(s, r),
        }
    }

    fn sys_connect(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        let Some(port) = self.port_arg(&s.args[1])? else { return Ok(()) };
        let r = self.k.connect(fd, port);
        let (r, made) = self.kernel(r)?;
        self.drain_notes();
        if let Some(id) = made {
            let local_port = self.k.conns.get(id).and_then(Option::as_ref).map_or(0, |c| c.tcb.local().port());
            self.sut = Sut::Flow(Box::new(Flow { local_port, remote_port: port, ..Flow::default() }));
        }
        match (r, made) {
            (SysRet::Block, Some(id)) => self.block(s, fd, PendingKind::Connect(id), start, end),
            (SysRet::Block, None) => match self.k.sockets.get(&fd).map(|s| &s.kind) {
                Some(SockKind::Conn(id)) => {
                    let id = *id;
                    self.block(s, fd, PendingKind::Connect(id), start, end)
                }
                _ => self.finish(s, SysRet::Err(EBADF)),
            },
            (r, _) => self.finish(s, r),
        }
    }

    fn recv_flags(&mut self, s: &Syscall) -> R<Option<bool>> {
        let flags = self.int(&s.args[3], "the flags")?;
        let known = MSG_DONTWAIT | MSG_NOSIGNAL;
        if flags & !known != 0 {
            let what = format!("{} flags `{}`", s.name, s.args[3]);
            self.unsupported(&what)?;
            return Ok(None);
        }
        Ok(Some(flags & MSG_DONTWAIT != 0))
    }

    /// The arguments of read/recv and write/send: fd, length, MSG_DONTWAIT. `None` when the
    /// flags were refused (the failure is already recorded).
    fn io_args(&mut self, s: &Syscall, with_flags: bool) -> R<Option<(i32, usize, bool)>> {
        if with_flags {
            self.argc(s, &[4], "(fd, buffer, length, flags)")?;
        } else {
            self.argc(s, &[3], "(fd, buffer, count)")?;
        }
        let fd = self.fd_arg(s)?;
        let len = self.usize_arg(s, 2, "the length")?;
        let dontwait = if with_flags {
            match self.recv_flags(s)? {
                Some(d) => d,
                None => return Ok(None),
            }
        } else {
            false
        };
        Ok(Some((fd, len, dontwait)))
    }

    fn sys_read(&mut self, s: &Syscall, start: u64, end: Option<u64>, with_flags: bool) -> R<()> {
        let Some((fd, len, dontwait)) = self.io_args(s, with_flags)? else { return Ok(()) };
        let mut data = Vec::new();
        match self.k.read(fd, len, dontwait, &mut data) {
            SysRet::Block => self.block(s, fd, PendingKind::Read { len, dontwait }, start, end),
            r => {
                self.check_read_bytes(fd, &data)?;
                self.flush_after_call()?;
                self.finish(s, r)
            }
        }
    }

    /// The bytes a read returned must be the ones the peer sent at that stream offset.
    fn check_read_bytes(&self, fd: i32, data: &[u8]) -> R<()> {
        let Some(sock) = self.k.sockets.get(&fd) else { return Ok(()) };
        let first = sock.read_offset.saturating_sub(data.len() as u64);
        if let Some(i) = data.iter().enumerate().position(|(i, &b)| b != pattern_byte(first + i as u64)) {
            return self.fail(format!(
                "read returned the wrong byte at stream offset {}: the stack delivered data out of order or corrupted",
                first + i as u64
            ));
        }
        Ok(())
    }

    /// A call that changed what the stack may send (a read opening the window, a write).
    fn flush_after_call(&mut self) -> R<()> {
        let r = self.k.flush();
        self.kernel(r)?;
        self.drain_notes();
        Ok(())
    }

    fn sys_write(&mut self, s: &Syscall, start: u64, end: Option<u64>, with_flags: bool) -> R<()> {
        let Some((fd, len, dontwait)) = self.io_args(s, with_flags)? else { return Ok(()) };
        let nonblocking = dontwait || self.k.sockets.get(&fd).is_some_and(|s| s.nonblocking);
        let r = self.k.write(fd, len, dontwait);
        self.flush_after_call()?;
        match r {
            SysRet::Ok(n) if (n as usize) < len && !nonblocking => {
                self.block(s, fd, PendingKind::Write { len, done: n as usize, dontwait }, start, end)
            }
            SysRet::Block => self.block(s, fd, PendingKind::Write { len, done: 0, dontwait }, start, end),
            r => self.finish(s, r),
        }
    }

    fn sys_close(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[1], "(fd)")?;
        let fd = self.fd_arg(s)?;
        let r = self.k.close(fd);
        let r = self.kernel(r)?;
        self.drain_notes();
        self.finish(s, r)
    }

    fn sys_shutdown(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2], "(fd, how)")?;
        let fd = self.fd_arg(s)?;
        let how = self.int(&s.args[1], "how")?;
        if matches!(self.k.sockets.get(&fd).map(|s| &s.kind), Some(SockKind::Listening { .. })) {
            return self.unsupported("shutdown() on a listening socket");
        }
        let r = self.k.shutdown(fd, how);
        let r = self.kernel(r)?;
        self.drain_notes();
        self.finish(s, r)
    }

    /// The integer an option value carries: `[1]` or `1`.
    fn opt_int(&self, e: &Expr) -> R<i64> {
        match e {
            Expr::List(items) if items.len() == 1 => self.int(&items[0], "the option value"),
            other => self.int(other, "the option value"),
        }
    }

    fn sys_setsockopt(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[5], "(fd, level, name, value, length)")?;
        let fd = self.fd_arg(s)?;
        let level = self.int(&s.args[1], "the level")?;
        let name = self.int(&s.args[2], "the option name")?;
        let Some(sock) = self.k.sockets.get(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        let has_tcb = self.k.has_tcb(fd) && !matches!(sock.kind, SockKind::Listening { .. });
        let mut opts = sock.opts.clone();
        let label = format!("setsockopt {}", s.args[2]);
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR | SO_REUSEPORT) => {
                // Ports are never shared between scripts here, so reuse changes nothing.
                self.opt_int(&s.args[3])?;
            }
            (SOL_SOCKET, SO_KEEPALIVE) => opts.keepalive = self.opt_int(&s.args[3])? != 0,
            (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => {
                if has_tcb {
                    return self.unsupported(&format!("{label} after the connection exists (xtcp sizes buffers once)"));
                }
                let v = self.opt_int(&s.args[3])?;
                // The TCB allocates its buffers up front: a bound keeps a script from asking
                // for more memory than a test machine has.
                let v = match usize::try_from(v) {
                    Ok(v) if (1..=MAX_BUFFER).contains(&v) => v,
                    _ => return self.fail(format!("buffer size {v} out of range (1 to {MAX_BUFFER} bytes)")),
                };
                if name == SO_RCVBUF {
                    opts.rcvbuf = Some(v);
                } else {
                    opts.sndbuf = Some(v);
                }
            }
            (SOL_SOCKET, SO_LINGER) => {
                let Expr::Struct(fields) = &s.args[3] else {
                    return self.fail("SO_LINGER takes `{onoff=1, linger=0}`");
                };
                let mut onoff = 0;
                let mut linger = 0;
                for (i, (n, v)) in fields.iter().enumerate() {
                    let v = self.int(v, "the linger field")?;
                    match (n.as_deref(), i) {
                        (Some("onoff" | "l_onoff"), _) | (None, 0) => onoff = v,
                        (Some("linger" | "l_linger"), _) | (None, 1) => linger = v,
                        _ => return self.fail("SO_LINGER takes `{onoff=1, linger=0}`"),
                    }
                }
                opts.linger = if onoff != 0 { Some(linger) } else { None };
            }
            (IPPROTO_TCP, TCP_NODELAY) => opts.nodelay = self.opt_int(&s.args[3])? != 0,
            (IPPROTO_TCP, TCP_MAXSEG) => {
                if has_tcb {
                    return self.unsupported(&format!("{label} after the connection exists"));
                }
                let v = self.opt_int(&s.args[3])?;
                opts.maxseg = match u16::try_from(v) {
                    Ok(v) if v >= 64 => Some(v),
                    _ => return self.finish(s, SysRet::Err(EINVAL)),
                };
            }
            (IPPROTO_TCP, TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT) => {
                let v = self.opt_int(&s.args[3])?;
                if !(1..=32767).contains(&v) {
                    return self.finish(s, SysRet::Err(EINVAL));
                }
                match name {
                    TCP_KEEPIDLE => opts.keepidle = Some(v as u64),
                    TCP_KEEPINTVL => opts.keepintvl = Some(v as u64),
                    _ => opts.keepcnt = Some(v as u32),
                }
            }
            _ => return self.unsupported(&label),
        }
        if let Some(sock) = self.k.sockets.get_mut(&fd) {
            sock.opts = opts;
        }
        self.k.apply_live_opts(fd);
        self.flush_after_call()?;
        self.finish(s, SysRet::Ok(0))
    }

    fn sys_getsockopt(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[5], "(fd, level, name, value, length)")?;
        let fd = self.fd_arg(s)?;
        let level = self.int(&s.args[1], "the level")?;
        let name = self.int(&s.args[2], "the option name")?;
        let Some(sock) = self.k.sockets.get(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        let opts = sock.opts.clone();
        let base = self.k.base().clone();
        let value = match (level, name) {
            (SOL_SOCKET, SO_ERROR) => self.k.take_error(fd),
            (SOL_SOCKET, SO_KEEPALIVE) => i64::from(opts.keepalive),
            (SOL_SOCKET, SO_RCVBUF) => {
                let size = opts.rcvbuf.unwrap_or(base.recv_buffer);
                let shown = match self.k.connected_mss(fd) {
                    Some(mss) if self.cfg.profile == Profile::FreeBsd => size.div_ceil(mss) * mss,
                    _ => size,
                };
                shown as i64
            }
            (SOL_SOCKET, SO_SNDBUF) => opts.sndbuf.unwrap_or(base.send_buffer) as i64,
            (IPPROTO_TCP, TCP_NODELAY) => i64::from(opts.nodelay),
            (IPPROTO_TCP, TCP_MAXSEG) => i64::from(opts.maxseg.unwrap_or(base.mss)),
            (IPPROTO_TCP, TCP_KEEPIDLE) => opts.keepidle.map_or(7200, |v| v as i64),
            (IPPROTO_TCP, TCP_KEEPINTVL) => opts.keepintvl.map_or(75, |v| v as i64),
            (IPPROTO_TCP, TCP_KEEPCNT) => opts.keepcnt.map_or(9, i64::from),
            _ => return self.unsupported(&format!("getsockopt {}", s.args[2])),
        };
        let expected = &s.args[3];
        if !matches!(expected, Expr::Ellipsis) {
            let want = self.opt_int(expected)?;
            if want != value {
                let shown = if name == SO_ERROR && level == SOL_SOCKET && value != 0 {
                    format!("{value} ({})", errno_name(value))
                } else {
                    value.to_string()
                };
                return self.fail(format!("getsockopt {} gave {shown} but the script expects {expected}", s.args[2]));
            }
        }
        self.finish(s, SysRet::Ok(0))
    }

    fn sys_fcntl(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2, 3], "(fd, command[, argument])")?;
        let fd = self.fd_arg(s)?;
        let cmd = self.int(&s.args[1], "the command")?;
        let Some(sock) = self.k.sockets.get_mut(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        match cmd {
            F_GETFL => {
                let flags = O_RDWR | if sock.nonblocking { O_NONBLOCK } else { 0 };
                self.finish(s, SysRet::Ok(flags))
            }
            F_SETFL => {
                let Some(arg) = s.args.get(2) else { return self.fail("fcntl F_SETFL needs the flags") };
                let flags = match eval_int(arg) {
                    Ok(v) => v,
                    Err(e) => return self.fail(format!("the flags: {e}")),
                };
                sock.nonblocking = flags & O_NONBLOCK != 0;
                self.finish(s, SysRet::Ok(0))
            }
            _ => self.unsupported(&format!("fcntl command {}", s.args[1])),
        }
    }

    fn poll_now(&self, fds: &[PollFd]) -> (i64, Vec<PollFd>) {
        let mut n = 0;
        let mut out = fds.to_vec();
        for p in &mut out {
            let r = self.k.revents(p.fd) & (p.events | POLLERR | POLLHUP | POLLNVAL);
            if r != 0 {
                n += 1;
            }
            p.revents = Some(r);
        }
        (n, out)
    }

    fn sys_poll(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fds, nfds, timeout)")?;
        let Expr::List(items) = &s.args[0] else {
            return self.fail("poll's first argument is a list `[{fd=3, events=POLLIN, revents=POLLIN}]`");
        };
        let mut fds = Vec::new();
        for item in items {
            let Expr::Struct(fields) = item else {
                return self.fail("each pollfd is `{fd=3, events=POLLIN, revents=POLLIN}`");
            };
            let mut p = PollFd { fd: -1, events: 0, revents: None };
            for (name, v) in fields {
                match name.as_deref() {
                    Some("fd") => p.fd = i32::try_from(self.int(v, "fd")?).unwrap_or(-1),
                    Some("events") => p.events = self.int(v, "events")?,
                    // Checked when the call returns (check_poll_result).
                    Some("revents") => {
                        self.int(v, "revents")?;
                    }
                    _ => return self.fail("pollfd fields are fd, events and revents"),
                }
            }
            fds.push(p);
        }
        let nfds = self.int(&s.args[1], "nfds")?;
        if nfds != fds.len() as i64 {
            return self.fail(format!("poll: nfds is {nfds} but the list has {} entries", fds.len()));
        }
        let timeout = self.int(&s.args[2], "the timeout")?;
        let (n, ready) = self.poll_now(&fds);
        if n > 0 || timeout == 0 {
            self.check_poll_result(s, &ready)?;
            return self.finish(s, SysRet::Ok(n));
        }
        let deadline = if timeout < 0 {
            None
        } else {
            Some(Instant::from_micros(start.saturating_add((timeout as u64).saturating_mul(1000))))
        };
        self.block(s, -1, PendingKind::Poll { fds, deadline }, start, end)
    }
}

/// The revents a poll call's script expects, per entry.
fn poll_expectations(call: &Syscall) -> Vec<Option<i64>> {
    let Some(Expr::List(items)) = call.args.first() else { return Vec::new() };
    items
        .iter()
        .map(|item| match item {
            Expr::Struct(fields) => {
                fields.iter().find(|(n, _)| n.as_deref() == Some("revents")).and_then(|(_, v)| eval_int(v).ok())
            }
            _ => None,
        })
        .collect()
}

impl Interp<'_> {
    fn check_poll_result(&self, call: &Syscall, got: &[PollFd]) -> R<()> {
        for (g, w) in got.iter().zip(poll_expectations(call)) {
            if let (Some(w), Some(r)) = (w, g.revents) {
                if w != r {
                    return self.fail(format!(
                        "poll: fd {} has revents {} but the script expects {}",
                        g.fd,
                        poll_bits(r),
                        poll_bits(w)
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------- helpers

/// Evaluate an integer expression: numbers, named constants, `A|B`, `[x]`.
pub(super) fn eval_int(e: &Expr) -> Result<i64, String> {
    match e {
        Expr::Int(v) => Ok(*v),
        Expr::Sym(name) => lookup(name).ok_or_else(|| format!("unknown symbol `{name}`")),
        Expr::Or(items) => items.iter().try_fold(0, |acc, e| eval_int(e).map(|v| acc | v)),
        Expr::List(items) if items.len() == 1 => eval_int(&items[0]),
        Expr::Call(f, args) if f == "htons" || f == "htonl" || f == "ntohs" || f == "ntohl" => match args.as_slice() {
            [a] => eval_int(a),
            _ => Err(format!("`{f}` takes one argument")),
        },
        other => Err(format!("expected an integer, found `{other}`")),
    }
}

fn show_ret(r: SysRet) -> String {
    match r {
        SysRet::Ok(v) => v.to_string(),
        SysRet::Err(e) => format!("-1 {}", errno_name(e)),
        SysRet::Block => "(would block)".into(),
    }
}

fn call_text(s: &Syscall) -> String {
    let args: Vec<String> = s.args.iter().map(ToString::to_string).collect();
    format!("{}({})", s.name, args.join(", "))
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Packet(p) => expected_line(p),
        Action::Syscall(s) => format!("{} = {}", call_text(s), s.ret),
        Action::Command(c) => format!("`{}`", c.trim()),
        Action::Code(_) => "%{ ... }%".into(),
        Action::Unsupported { what } => format!("({what})"),
    }
}

fn options_text(opts: &[TcpOpt]) -> String {
    let parts: Vec<String> = opts.iter().map(ToString::to_string).collect();
    format!("<{}>", parts.join(","))
}

/// A script packet line as the script wrote it (normalised).
pub(super) fn expected_line(p: &Packet) -> String {
    let mut s = format!(
        "{} {} {}:{}({})",
        if p.dir == Direction::Inbound { '<' } else { '>' },
        p.flags,
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        let _ = write!(s, " ack {a}");
    }
    if let Some(w) = p.win {
        let _ = write!(s, " win {w}");
    }
    if let Some(u) = p.urg {
        let _ = write!(s, " urg {u}");
    }
    match &p.options {
        None => s.push_str(" <...>"),
        Some(o) if o.is_empty() => {}
        Some(o) => {
            s.push(' ');
            s.push_str(&options_text(o));
        }
    }
    s
}

/// A segment the stack sent, in script notation (sequence numbers mapped into the script's
/// space).
pub(super) fn script_line(flow: &Flow, seg: &OutSeg) -> String {
    let seq = flow.local_to_script(seg.seq);
    let len = seg.payload.len() as u32;
    let mut s = format!("> {} {}:{}({})", seg.flags, seq, seq.wrapping_add(len), len);
    if seg.flags.ack || seg.ack != 0 {
        let _ = write!(s, " ack {}", seg.ack);
    }
    let _ = write!(s, " win {}", seg.window);
    if seg.urgent != 0 {
        let _ = write!(s, " urg {}", seg.urgent);
    }
    if !seg.options.is_empty() {
        let opts: Vec<TcpOpt> = seg.options.iter().map(|o| script_opt(flow, o)).collect();
        s.push(' ');
        s.push_str(&options_text(&opts));
    }
    s
}

/// A segment in live values (for segments of no flow under test).
fn live_line(seg: &OutSeg) -> String {
    format!(
        "{}:{} > {}:{} {} seq {} ack {} win {} ({} bytes)",
        LOCAL_IP,
        seg.local_port,
        REMOTE_IP,
        seg.remote_port,
        seg.flags,
        seg.seq,
        seg.ack,
        seg.window,
        seg.payload.len()
    )
}

/// One option of a segment we sent, mapped into script space. Our SACK blocks describe the
/// peer's sequence space, which scripts write as the stack sees it (no mapping); TS val is
/// mapped from the first one the script showed (packetdrill's `map_outbound_live_packet`).
fn script_opt(flow: &Flow, o: &TcpOpt) -> TcpOpt {
    match o {
        TcpOpt::Ts { val, ecr } => match flow.ts_first {
            Some((s, l)) => TcpOpt::Ts { val: val.wrapping_sub(l).wrapping_add(s), ecr: *ecr },
            None => o.clone(),
        },
        other => other.clone(),
    }
}

/// The first difference between the segment the script expects and the one the stack sent,
/// in packetdrill's order of checks (verify_tcp, then options, then payload).
pub(super) fn compare(
    flow: &Flow,
    p: &Packet,
    seg: &OutSeg,
    lenient: bool,
    ts_tick: u64,
    tol_usecs: u64,
) -> Option<String> {
    let e = p.flags;
    let a = seg.flags;
    let flag_pairs = [
        ("SYN", e.syn, a.syn),
        ("RST", e.rst, a.rst),
        ("ACK", e.ack, a.ack),
        ("FIN", e.fin, a.fin),
        ("PSH", e.psh, a.psh),
        ("URG", e.urg, a.urg),
        ("ECE", e.ece, a.ece),
        ("CWR", e.cwr, a.cwr),
        ("AE", e.ae, a.ae),
    ];
    for (name, want, got) in flag_pairs {
        if want != got {
            return Some(format!(
                "flags: {name} {} (expected {}, actual {})",
                if got { "set" } else { "not set" },
                e,
                a
            ));
        }
    }
    let seq = flow.local_to_script(seg.seq);
    if seq != p.seq {
        return Some(format!("sequence number: expected {}, actual {seq}", p.seq));
    }
    let want_ack = p.ack.unwrap_or(0);
    if seg.ack != want_ack && (e.ack || seg.ack != 0 || p.ack.is_some()) {
        return Some(format!("acknowledgment number: expected {want_ack}, actual {}", seg.ack));
    }
    if let Some(w) = p.win {
        if !lenient && w != seg.window {
            return Some(format!("window: expected {w}, actual {}", seg.window));
        }
    }
    if let Some(u) = p.urg {
        if u != seg.urgent {
            return Some(format!("urgent pointer: expected {u}, actual {}", seg.urgent));
        }
    }
    if seg.payload.len() != p.len as usize {
        return Some(format!("payload: expected {} bytes, actual {}", p.len, seg.payload.len()));
    }
    // The ECN codepoint, when the line gives one (xtcp sends only ECT(0) or Not-ECT).
    if let Some(want) = p.ecn {
        let ok = match want {
            IpEcn::NotEct => !seg.ect,
            IpEcn::Ect0 | IpEcn::Ect01 => seg.ect,
            IpEcn::Ect1 | IpEcn::Ce => false,
        };
        if !ok {
            return Some(format!(
                "ECN codepoint: expected {want:?}, actual {}",
                if seg.ect { "ECT(0)" } else { "Not-ECT" }
            ));
        }
    }
    if let Some(opts) = &p.options {
        if let Some(why) = compare_options(flow, opts, &seg.options, lenient, ts_tick, tol_usecs) {
            return Some(why);
        }
    }
    // The payload must be the bytes the application wrote at that stream offset (checks
    // retransmissions); only when our ISN is known, so offsets mean something.
    if let Some((sisn, _)) = flow.local_isn {
        let first = u64::from(p.seq.wrapping_sub(sisn.wrapping_add(1)).wrapping_add(u32::from(e.syn)));
        if let Some(i) = seg.payload.iter().enumerate().position(|(i, &b)| b != pattern_byte(first + i as u64)) {
            return Some(format!(
                "payload bytes: byte {i} is not what the application wrote at stream offset {}",
                first + i as u64
            ));
        }
    }
    None
}

fn opt_kind(o: &TcpOpt) -> u8 {
    match o {
        TcpOpt::Eol => 0,
        TcpOpt::Nop => 1,
        TcpOpt::Mss(_) => 2,
        TcpOpt::WScale(_) => 3,
        TcpOpt::SackOk => 4,
        TcpOpt::Sack(_) => 5,
        TcpOpt::Ts { .. } => 8,
        TcpOpt::Unknown(k) => *k,
    }
}

/// One option's value check (kinds already match). TS val is checked only with
/// `--tcp_ts_tick_usecs` (packetdrill's default leaves it unchecked); TS ecr always.
fn option_value_mismatch(flow: &Flow, want: &TcpOpt, got: &TcpOpt, ts_tick: u64, tol_usecs: u64) -> Option<String> {
    match (want, got) {
        (TcpOpt::Ts { val: wv, ecr: we }, TcpOpt::Ts { val: gv, ecr: ge }) => {
            if we != ge {
                return Some(format!("TS ecr: expected {we}, actual {ge}"));
            }
            if ts_tick > 0 {
                if let Some((s, l)) = flow.ts_first {
                    let mapped = gv.wrapping_sub(l).wrapping_add(s);
                    let off = u64::from(mapped.wrapping_sub(*wv).min(wv.wrapping_sub(mapped)));
                    if off.saturating_mul(ts_tick) > tol_usecs {
                        return Some(format!("TS val: expected {wv}, actual {mapped}"));
                    }
                }
            }
            None
        }
        _ if want == got => None,
        _ => Some(format!("option value: expected {want}, actual {got}")),
    }
}

fn compare_options(
    flow: &Flow,
    want: &[TcpOpt],
    got: &[TcpOpt],
    lenient: bool,
    ts_tick: u64,
    tol_usecs: u64,
) -> Option<String> {
    if lenient {
        // Lenient: the same options, in any order, padding aside.
        let mut w: Vec<&TcpOpt> = want.iter().filter(|o| !matches!(o, TcpOpt::Nop | TcpOpt::Eol)).collect();
        let mut g: Vec<&TcpOpt> = got.iter().filter(|o| !matches!(o, TcpOpt::Nop | TcpOpt::Eol)).collect();
        w.sort_by_key(|o| opt_kind(o));
        g.sort_by_key(|o| opt_kind(o));
        let kinds = |v: &[&TcpOpt]| v.iter().map(|o| opt_kind(o)).collect::<Vec<_>>();
        if kinds(&w) != kinds(&g) {
            return Some(format!("options: expected {}, actual {}", options_text(want), options_text(got)));
        }
        // The window scale shift is sized from the receive buffer, like the window itself:
        // lenient mode ignores both.
        return w
            .iter()
            .zip(&g)
            .filter(|(a, _)| !matches!(a, TcpOpt::WScale(_)))
            .find_map(|(a, b)| option_value_mismatch(flow, a, b, ts_tick, tol_usecs));
    }
    if want.len() != got.len() || want.iter().zip(got).any(|(a, b)| opt_kind(a) != opt_kind(b)) {
        return Some(format!("options: expected {}, actual {}", options_text(want), options_text(got)));
    }
    want.iter().zip(got).find_map(|(a, b)| option_value_mismatch(flow, a, b, ts_tick, tol_usecs))
}

/// Build an inbound segment's bytes from a script line: sequence numbers, SACK blocks and TS
/// ecr mapped to live values (packetdrill's `map_inbound_packet`), options in the script's
/// order, payload from the pattern, checksum computed.
pub(super) fn inbound_bytes(flow: &Flow, p: &Packet) -> Result<Vec<u8>, String> {
    let mut opts = Vec::new();
    for o in p.options.as_deref().unwrap_or(&[]) {
        match o {
            TcpOpt::Eol => opts.push(0),
            TcpOpt::Nop => opts.push(1),
            TcpOpt::Mss(v) => {
                opts.extend_from_slice(&[2, 4]);
                opts.extend_from_slice(&v.to_be_bytes());
            }
            TcpOpt::WScale(v) => opts.extend_from_slice(&[3, 3, *v]),
            TcpOpt::SackOk => opts.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                opts.extend_from_slice(&[5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    opts.extend_from_slice(&flow.local_to_live(*l).to_be_bytes());
                    opts.extend_from_slice(&flow.local_to_live(*r).to_be_bytes());
                }
            }
            TcpOpt::Ts { val, ecr } => {
                let live_ecr = if p.flags.ack {
                    match (flow.ts_map.get(ecr), flow.ts_first) {
                        (Some(l), _) => *l,
                        _ if *ecr == 0 => 0,
                        _ => {
                            return Err(format!(
                                "unable to infer the live TS ecr for script ecr {ecr}: no outbound segment the script \
                                 expected carried TS val {ecr}"
                            ))
                        }
                    }
                } else {
                    *ecr
                };
                opts.extend_from_slice(&[8, 10]);
                opts.extend_from_slice(&val.to_be_bytes());
                opts.extend_from_slice(&live_ecr.to_be_bytes());
            }
            TcpOpt::Unknown(k) => return Err(format!("cannot send option kind {k}")),
        }
    }
    if opts.len() % 4 != 0 {
        return Err(format!(
            "TCP options are not padded to a multiple of 4 bytes ({} bytes); add nop or eol as the script's peer would",
            opts.len()
        ));
    }
    if opts.len() > 40 {
        return Err(format!("TCP options take {} bytes; at most 40 fit in a header", opts.len()));
    }
    let hl = 20 + opts.len();
    let mut b = vec![0u8; hl + p.len as usize];
    b[0..2].copy_from_slice(&flow.remote_port.to_be_bytes());
    b[2..4].copy_from_slice(&flow.local_port.to_be_bytes());
    b[4..8].copy_from_slice(&p.seq.to_be_bytes());
    let ack = match p.ack {
        Some(a) if p.flags.ack => flow.local_to_live(a),
        Some(a) => a,
        None => 0,
    };
    b[8..12].copy_from_slice(&ack.to_be_bytes());
    let f = p.flags;
    let bits: u16 = u16::from(f.fin)
        | u16::from(f.syn) << 1
        | u16::from(f.rst) << 2
        | u16::from(f.psh) << 3
        | u16::from(f.ack) << 4
        | u16::from(f.urg) << 5
        | u16::from(f.ece) << 6
        | u16::from(f.cwr) << 7
        | u16::from(f.ae) << 8;
    let off_flags = ((hl as u16 / 4) << 12) | bits;
    b[12..14].copy_from_slice(&off_flags.to_be_bytes());
    b[14..16].copy_from_slice(&p.win.unwrap_or(0).to_be_bytes());
    b[18..20].copy_from_slice(&p.urg.unwrap_or(0).to_be_bytes());
    b[20..hl].copy_from_slice(&opts);
    // The payload's stream offset: bytes after the peer's SYN (a SYN's own data starts at
    // seq + 1).
    let first_data = p.seq.wrapping_add(u32::from(f.syn));
    let base = flow.remote_isn.map_or(0, |isn| isn.wrapping_add(1));
    pattern_fill(&mut b[hl..], u64::from(first_data.wrapping_sub(base)));
    let len = u16::try_from(b.len()).map_err(|_| "segment too large".to_string())?;
    let ph = checksum::pseudo_header_v4(REMOTE_IP, LOCAL_IP, 6, len);
    let c = checksum::finish(checksum::combine(&[ph, checksum::sum(&b)]));
    b[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(b)
}
