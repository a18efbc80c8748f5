//! The multi-core runtime: one run-to-completion loop per core, each on a thread pinned to its
//! own CPU (core_affinity), each owning one [`Stack`] over one device (one AF_XDP socket per
//! (core, queue)). Nothing is shared between the loops but the [`steer`](mod@steer) hand-off rings and
//! buffer pool, which are bounded and lock-free (DESIGN.md, "The path of one frame").
//!
//! * **Steering** ([`steer`](mod@steer)): the owner core of a flow is the RSS (Toeplitz) hash of its
//!   4-tuple; frames that arrive on another core's queue are handed to the owner, and each
//!   core's active opens pick ports that hash back to it.
//! * **Modes**: busy-poll (spin on the rings: lowest latency, a full CPU per core) or blocking
//!   (sleep in the device's `wait` until frames come or the stack's next deadline; with more
//!   than one core the sleep is capped at [`steer::HANDOFF_WAIT`], since a hand-off from
//!   another core does not wake the socket).
//! * **Shutdown**: when the stop flag is set (SIGINT/SIGTERM through [`crate::io::shutdown`]),
//!   every core closes its connections (FINs, not resets) and keeps polling until each is gone
//!   or in TIME-WAIT (nothing left to exchange), or the grace period is over; all cores keep polling until every core is done, so the
//!   hand-off still carries the peers' last ACKs and FINs. Then the threads end and their
//!   devices are dropped, which closes the sockets and detaches the XDP program.
//! * **Counters**: each core reports its stack's [`Counters`], its [`SteerStats`] (among them
//!   `foreign_tcp`, TCP segments of a flow the core does not own that reached its stack: 0 when
//!   every flow stays on one core) and the flows whose SYN it handled.

pub mod steer;

pub use steer::{steer, FlowSteering, SteerStats, SteeredDevice, SteeringConfig, SteeringError, HANDOFF_BIT};

use core::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

#[cfg(feature = "apps")]
use crate::apps::Server;
use crate::io::Device;
use crate::stack::{Counters, Handle, Stack, StackConfig, StackEvent};
use crate::time::{Duration, Instant};

/// An application run on every core, one instance per core (created on its core).
pub trait CoreApp<D: Device> {
    /// One event of the core's stack.
    fn on_event(&mut self, stack: &mut Stack<D>, h: Handle, ev: StackEvent);
    /// Stop listening and close every connection gracefully.
    fn close_all(&mut self, stack: &mut Stack<D>);
    /// Connections the application holds (TIME-WAIT included).
    fn connections(&self) -> usize;
    /// Connections that still have something to exchange (not yet in TIME-WAIT): shutdown
    /// waits for these.
    fn unfinished(&self, stack: &Stack<D>) -> usize;
    /// Connections accepted so far.
    fn accepted(&self) -> u64;
}

#[cfg(feature = "apps")]
impl<D: Device> CoreApp<D> for Server {
    fn on_event(&mut self, stack: &mut Stack<D>, h: Handle, ev: StackEvent) {
        Server::on_event(self, stack, h, ev)
    }
    fn close_all(&mut self, stack: &mut Stack<D>) {
        Server::close_all(self, stack)
    }
    fn connections(&self) -> usize {
        Server::connections(self)
    }
    fn unfinished(&self, stack: &Stack<D>) -> usize {
        Server::unfinished(self, stack)
    }
    fn accepted(&self) -> u64 {
        self.stats.accepted
    }
}

/// How the cores run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Spin instead of sleeping when idle.
    pub busy_poll: bool,
    /// Pin core `i`'s thread to the `i`-th CPU the process may use (modulo their number).
    pub pin: bool,
    /// How long shutdown waits for connections to close.
    pub shutdown_grace: std::time::Duration,
    /// Call the snapshot callback this often (`None`: never).
    pub stats_interval: Option<std::time::Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            busy_poll: false,
            pin: true,
            shutdown_grace: std::time::Duration::from_secs(2),
            stats_interval: None,
        }
    }
}

/// Why the runtime could not run.
#[derive(Debug)]
pub enum RuntimeError {
    /// No device given.
    NoCores,
    /// The application could not start on a core (e.g. the port is taken).
    App {
        /// The core (device index) it failed on.
        core: usize,
        /// What the application reported.
        error: String,
    },
    /// A core's thread panicked.
    Panicked {
        /// The core (device index) whose thread panicked.
        core: usize,
    },
}

impl core::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeError::NoCores => f.write_str("no core to run on"),
            RuntimeError::App { core, error } => write!(f, "core {core}: {error}"),
            RuntimeError::Panicked { core } => write!(f, "core {core}: the loop panicked"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// One core's figures at a moment.
#[derive(Debug, Clone, Copy)]
pub struct CoreSnapshot {
    /// The core's index: that of its device and queue.
    pub core: usize,
    /// The CPU the core's thread is pinned to, if pinning was asked for and worked.
    pub cpu: Option<usize>,
    /// The core's stack counters.
    pub counters: Counters,
    /// The core's flow-steering counters.
    pub steer: SteerStats,
    /// Connections the application holds (TIME-WAIT included).
    pub connections: usize,
    /// Of those, the ones not yet in TIME-WAIT.
    pub unfinished: usize,
    /// Connections the application accepted so far ([`CoreApp::accepted`]).
    pub accepted: u64,
}

/// What a core did, at its end.
#[derive(Debug, Clone)]
pub struct CoreReport {
    /// The core's figures after its last turn.
    pub snapshot: CoreSnapshot,
    /// (local, remote) of the SYNs this core's stack handled: the flows it owned.
    pub flows: Vec<(SocketAddr, SocketAddr)>,
    /// Connections not yet in TIME-WAIT when the grace period ended.
    pub unfinished: usize,
}

/// Run `make_app` on one core per device until `stop` is set, then shut down gracefully.
///
/// Device `i` is core `i`'s (its queue `i`); `stack_cfg` is every core's stack configuration,
/// with `rss` set per core from the devices' [`FlowSteering`]. `make_app` runs on each core
/// with its stack; `ready` is called once every core's application has started (e.g. to print
/// that the server is up); `on_snapshot` is called from each core every `stats_interval`.
pub fn run<D, A, F>(
    devices: Vec<SteeredDevice<D>>,
    stack_cfg: &StackConfig,
    cfg: &RuntimeConfig,
    stop: &AtomicBool,
    make_app: F,
    ready: impl FnOnce(),
    on_snapshot: &(dyn Fn(&CoreSnapshot) + Sync),
) -> Result<Vec<CoreReport>, RuntimeError>
where
    D: Device + Send,
    A: CoreApp<SteeredDevice<D>>,
    F: Fn(usize, &mut Stack<SteeredDevice<D>>) -> Result<A, String> + Sync,
{
    let n = devices.len();
    if n == 0 {
        return Err(RuntimeError::NoCores);
    }
    let cpus = if cfg.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    let started = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Cores still closing their connections at shutdown; every core polls until it is 0.
    let closing = AtomicUsize::new(n);
    let epoch = std::time::Instant::now();
    let shared = Ctx { cfg, stop, failed: &failed, started: &started, closing: &closing, epoch, on_snapshot };
    thread::scope(|s| {
        let handles: Vec<_> = devices
            .into_iter()
            .enumerate()
            .map(|(core, dev)| {
                let cpu = if cpus.is_empty() { None } else { Some(cpus[core % cpus.len()]) };
                let mut scfg = stack_cfg.clone();
                scfg.rss = Some(dev.steering().rss_for(core));
                let make_app = &make_app;
                let ctx = &shared;
                thread::Builder::new()
                    .name(format!("xtcp-core{core}"))
                    .spawn_scoped(s, move || core_loop(core, cpu, dev, scfg, ctx, make_app))
                    .expect("spawning a core thread")
            })
            .collect();
        // Tell the caller once every core listens, or stop at the first failure.
        while started.load(Ordering::Acquire) < n && !failed.load(Ordering::Acquire) {
            if handles.iter().any(|h| h.is_finished()) {
                break;
            }
            thread::sleep(std::time::Duration::from_millis(1));
        }
        if started.load(Ordering::Acquire) == n {
            ready();
        }
        let mut reports = Vec::with_capacity(n);
        let mut first_err = None;
        for (core, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(r)) => reports.push(r),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    failed.store(true, Ordering::Release);
                    first_err.get_or_insert(RuntimeError::Panicked { core });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    })
}

/// What the cores share for the run (all read-only or atomic).
struct Ctx<'a> {
    cfg: &'a RuntimeConfig,
    stop: &'a AtomicBool,
    failed: &'a AtomicBool,
    started: &'a AtomicUsize,
    closing: &'a AtomicUsize,
    epoch: std::time::Instant,
    on_snapshot: &'a (dyn Fn(&CoreSnapshot) + Sync),
}

impl Ctx<'_> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }
    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }
}

fn core_loop<D, A, F>(
    core: usize,
    cpu: Option<core_affinity::CoreId>,
    dev: SteeredDevice<D>,
    scfg: StackConfig,
    ctx: &Ctx<'_>,
    make_app: &F,
) -> Result<CoreReport, RuntimeError>
where
    D: Device,
    A: CoreApp<SteeredDevice<D>>,
    F: Fn(usize, &mut Stack<SteeredDevice<D>>) -> Result<A, String>,
{
    // A panicking core stops the others (they would otherwise run until a signal).
    let _halt_on_panic = HaltOnPanic(ctx.failed);
    let pinned = cpu.filter(|&c| core_affinity::set_for_current(c)).map(|c| c.id);
    let mut stack = Stack::new(dev, scfg, ctx.now());
    let mut app = match make_app(core, &mut stack) {
        Ok(a) => a,
        Err(error) => {
            ctx.failed.store(true, Ordering::Release);
            ctx.closing.fetch_sub(1, Ordering::AcqRel);
            return Err(RuntimeError::App { core, error });
        }
    };
    ctx.started.fetch_add(1, Ordering::AcqRel);
    let snapshot = |stack: &Stack<SteeredDevice<D>>, app: &A| CoreSnapshot {
        core,
        cpu: pinned,
        counters: *stack.counters(),
        steer: stack.device().stats(),
        connections: app.connections(),
        unfinished: app.unfinished(stack),
        accepted: app.accepted(),
    };
    let mut last_stats = std::time::Instant::now();
    while !ctx.halted() {
        let next = turn(&mut stack, &mut app, ctx);
        if let Some(every) = ctx.cfg.stats_interval {
            if last_stats.elapsed() >= every {
                last_stats = std::time::Instant::now();
                (ctx.on_snapshot)(&snapshot(&stack, &app));
            }
        }
        idle(&mut stack, ctx, next, ctx.cfg.busy_poll);
    }
    // Graceful shutdown: FIN every connection, poll until they are gone (or the grace period
    // is over), then keep polling for the other cores until they are done too.
    app.close_all(&mut stack);
    let until = std::time::Instant::now() + ctx.cfg.shutdown_grace;
    let mut counted_out = false;
    loop {
        let next = turn(&mut stack, &mut app, ctx);
        let timed_out = std::time::Instant::now() >= until;
        if !counted_out && (app.unfinished(&stack) == 0 || timed_out) {
            counted_out = true;
            ctx.closing.fetch_sub(1, Ordering::AcqRel);
        }
        if counted_out && (ctx.closing.load(Ordering::Acquire) == 0 || timed_out) {
            break;
        }
        idle(&mut stack, ctx, next, ctx.cfg.busy_poll);
    }
    // One last turn for what the final events queued.
    turn(&mut stack, &mut app, ctx);
    let snap = snapshot(&stack, &app);
    Ok(CoreReport { snapshot: snap, flows: stack.device().syn_log().to_vec(), unfinished: snap.unfinished })
}

/// Sets the flag when dropped during a panic.
struct HaltOnPanic<'a>(&'a AtomicBool);

impl Drop for HaltOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// One turn of a core's loop: poll the stack, hand its events to the application.
fn turn<D: Device, A: CoreApp<D>>(stack: &mut Stack<D>, app: &mut A, ctx: &Ctx<'_>) -> Option<Instant> {
    stack.poll(ctx.now());
    while let Some((h, e)) = stack.poll_event() {
        app.on_event(stack, h, e);
    }
    // What the application sent leaves now, in this turn (issue #15).
    stack.flush()
}

/// Blocking mode: sleep until frames come or the next deadline (at most 100 ms, to see the
/// stop flag). Busy-poll mode, or output pending: return at once.
fn idle<D: Device>(stack: &mut Stack<D>, ctx: &Ctx<'_>, next: Option<Instant>, busy: bool) {
    if busy || stack.has_pending_output() {
        return;
    }
    let now = ctx.now();
    let wait = next.map(|n| n.saturating_duration_since(now)).unwrap_or(Duration::from_millis(100));
    let wait = wait.min(Duration::from_millis(100));
    if !wait.is_zero() {
        stack.device_mut().wait(wait);
    }
}
