//! The interpreter: runs a parsed script against one xtcp stack ([`Kernel`]) in virtual time.
//! This file has the loop, the clock and the queue of what the stack sent; `packets`,
//! `syscalls` and `text` the rest.
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
use super::parse::{
    Action, Direction, Event, Expr, IcmpPacket, IpEcn, Packet, Script, Syscall, TcpOpt, Time, TimeKind,
};
use super::symbols::*;
use super::{Failure, Outcome, Profile, Report, RunConfig};
use crate::time::Instant;
use crate::wire::checksum;
use std::collections::HashMap;
use std::fmt::Write as _;

mod packets;
mod syscalls;
mod text;

use packets::*;
#[cfg(test)]
pub(super) use packets::{compare, inbound_bytes};
use text::*;
pub(super) use text::{eval_int, script_line};

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
    Write { len: usize, done: usize, dontwait: bool, more: bool },
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
    /// The variables the script's inline code set (`cwnd = 10`).
    code_vars: std::collections::HashMap<String, i64>,
}

/// Run a parsed script.
pub(super) fn run(script: &Script, cfg: &RunConfig, current_line: &std::cell::Cell<usize>) -> Report {
    let mut it = Interp {
        cfg,
        k: Kernel::new(
            cfg.profile.config(),
            if cfg.profile == Profile::FreeBsd { ErrnoOf::FreeBsd } else { ErrnoOf::Linux },
        ),
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
        code_vars: Default::default(),
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
        self.k.now().as_micros()
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
                // Before any socket (packetdrill reads it from the command line or the top of
                // the script): every connection is then over IPv6.
                Some("ipv6") if self.k.sockets.is_empty() => self.k.use_ipv6(),
                Some("ipv6") => return self.fail("--ip_version=ipv6 after a socket was made"),
                _ => return self.unsupported_script("IPv4-mapped IPv6 (`--ip_version=ipv4-mapped-ipv6`)"),
            },
            // The interface's MTU: the SYN's MSS follows it (RFC 9293 §3.7.1: MTU less the IP
            // and TCP headers, 40 bytes over IPv4; the stack takes 20 more over IPv6).
            "mtu" => match value.and_then(|v| v.parse::<u32>().ok()) {
                Some(mtu @ 128..=65535) => self.k.base_mut().mss = (mtu - 40) as u16,
                Some(mtu) => {
                    return self.unsupported_script(&format!(
                        "--mtu={mtu} (the stack's smallest MSS is 88 bytes, an MTU of 128)"
                    ))
                }
                None => return self.fail("--mtu needs a number"),
            },
            // Address and device settings are fixed by the interpreter; these change nothing
            // a script can observe here.
            "local_ip" | "remote_ip" | "gateway_ip" | "netmask_ip" | "speed" | "bind_port" | "connect_port"
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
                match super::sysctl::apply(cmd, &mut base, self.cfg.script_dir.as_deref()) {
                    Ok(()) => {
                        *self.k.base_mut() = base;
                        Ok(())
                    }
                    Err(super::sysctl::Refused::Line(why)) => {
                        // What could be honoured was; the rest is reported.
                        *self.k.base_mut() = base;
                        self.unsupported(&why)
                    }
                    Err(super::sysctl::Refused::Script(why)) => self.unsupported_script(&why),
                }
            }
            Action::Code(src) => {
                // Inline code only reads the connection's state (packetdrill runs it with
                // the tcp_info of that moment): segments already sent stay for the lines
                // after it to match.
                let (start, _) = times.unwrap_or((self.now_us(), None));
                self.advance_to(Instant::from_micros(start))?;
                let info = self.sut_flow().and_then(|f| self.k.tcp_info(f.local_port, f.remote_port));
                match super::code::run(src, info.as_ref(), &mut self.code_vars) {
                    super::code::Outcome::Ok => Ok(()),
                    super::code::Outcome::Failed(why) => self.fail(why),
                    super::code::Outcome::Unsupported(why) => self.unsupported(&why),
                }
            }
            Action::Unsupported { what } => {
                self.settle_at(times)?;
                self.unsupported(what)
            }
            Action::Icmp(i) if i.dir == Direction::Inbound => self.inbound_icmp(times, i),
            Action::Icmp(_) => {
                self.settle_at(times)?;
                self.unsupported("outbound ICMP packets")
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
        let at = d.max(self.k.now());
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
        self.k.set_now(at);
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
        if t > self.k.now() {
            self.k.set_now(t);
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
                let ips = self.k.ips();
                self.trace(|| format!("    ignored a segment of another connection: {}", live_line(&seg, ips)));
            }
        }
    }

    /// A segment the stack sent that no outbound line has matched yet, before an inbound
    /// line, a call or a command: an error in strict mode. `--lenient` checks as packetdrill
    /// does — the stack's segments queue up and each outbound line is compared with the
    /// oldest (its time included), so one sent too early still fails there, and what is left
    /// when the script ends is not looked at.
    fn check_unexpected(&mut self) -> R<()> {
        if self.cfg.lenient {
            return Ok(());
        }
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
}
