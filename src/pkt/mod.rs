//! packetdrill scripts, run natively against one xtcp stack in virtual time.
//!
//! A `.pkt` script says which segments arrive when, which system calls the application makes,
//! and which segments must come out (packetdrill, Cardwell et al., USENIX ATC 2013). Scripts
//! are how TCP implementations are held against each other; this module runs them against a
//! real [`Stack`](crate::stack::Stack) over an in-memory device, as packetdrill runs them
//! against the kernel through a tun device, with the clock virtual, so a run is exact,
//! deterministic and takes milliseconds.
//!
//! * [`parse`]: the dialect (see `tests/pkt/README.md`), into an AST with line numbers.
//! * `net`: the socket layer the system calls talk to (descriptors, what each socket was
//!   told, Linux's errno reporting) over the stack's public API.
//! * `link`: the device, the script's segments framed for it and the stack's frames read
//!   back (the peer answers ARP and neighbour solicitations).
//! * `run`: the interpreter (virtual time, remapping, matching, tolerance).
//!
//! ```
//! use xtcp::pkt::{run_script, Outcome, RunConfig};
//! let script = "
//!     0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//!    +0 bind(3, ..., ...) = 0
//!    +0 listen(3, 1) = 0
//!    +0 < S 0:0(0) win 65535 <mss 1460>
//!    +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
//!  +.01 < . 1:1(0) ack 1 win 65535
//!    +0 accept(3, ..., ...) = 4
//! ";
//! let report = run_script(script, &RunConfig::default());
//! assert_eq!(report.outcome, Outcome::Pass, "{}", report.summary());
//! ```

mod code;
mod icmp;
mod link;
mod net;
pub mod parse;
mod preprocess;
mod run;
mod symbols;
mod sysctl;

#[cfg(test)]
mod tests;

use crate::tcp::TcpConfig;
use core::cell::Cell;
use core::fmt;
use std::path::{Path, PathBuf};

pub use net::{DEFAULT_PORT, LOCAL_IP, REMOTE_IP};

/// Whose tunables a script assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Linux's: initial window 10, minimum RTO 200 ms, delayed ACK 40 ms, SYN retries 6,
    /// and Linux's SYN option order (`mss, sackOK, TS, nop, wscale`). These are xtcp's
    /// defaults, so this is `TcpConfig::default()`.
    #[default]
    Linux,
    /// xtcp's own defaults. Identical to `Linux` today; kept separate so that scripts written
    /// for xtcp keep their meaning if xtcp's defaults ever move away from Linux's.
    Xtcp,
    /// FreeBSD's defaults where they show on the wire or through the socket API: socket
    /// buffers of 64 KiB (receive, `net.inet.tcp.recvspace`) and 32 KiB (send), a window
    /// scale sized by `kern.ipc.maxsockbuf` (2 MiB), and `SO_RCVBUF` reported rounded up to
    /// a multiple of the MSS once connected, as FreeBSD's tcp_mss rounds the buffer; no
    /// quick-ACK mode (FreeBSD delays the first ACK like any other), and FreeBSD's rule for
    /// announcing a window a read opened (`WindowUpdate::TwoSegments`). The
    /// FreeBSD suite's `sysctl` lines set the same knobs (see `sysctl.rs`).
    FreeBsd,
}

impl Profile {
    /// The configuration every connection of a run starts from.
    pub fn config(self) -> TcpConfig {
        match self {
            Profile::Linux | Profile::Xtcp => TcpConfig::default(),
            Profile::FreeBsd => TcpConfig {
                recv_buffer: 65536,
                send_buffer: 32768,
                recv_buffer_max: 2 << 20,
                quick_ack: false,
                window_update: crate::tcp::WindowUpdate::TwoSegments,
                ecn_syn_retries: 1,
                ..TcpConfig::default()
            },
        }
    }
}

/// How to run scripts.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Whose tunables the scripts assume (Linux's by default).
    pub profile: Profile,
    /// Ignore option order and advertised windows; skip (and report) unsupported lines
    /// instead of failing on them.
    pub lenient: bool,
    /// Keep a trace of every event and every segment.
    pub verbose: bool,
    /// Names defined for `#ifdef` (`-D NAME`, packetdrill's `--define`).
    pub defines: Vec<String>,
    /// The script's folder: shell commands that name files (the gtests' `defaults.sh`) find
    /// them there. `run_file` sets it.
    pub script_dir: Option<PathBuf>,
}

/// Where a script failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 1-based; 0 when the failure is about the file as a whole.
    pub line: usize,
    /// What went wrong: the first mismatch, or why the script could not run.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// The verdict on one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event happened as the script said.
    Pass,
    /// The script failed: the first mismatch or error.
    Fail(Failure),
    /// Lenient mode met something the whole script depends on and xtcp does not do (IPv6,
    /// UDP sockets).
    Skipped(String),
}

/// What running one script produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub outcome: Outcome,
    /// Lines skipped in lenient mode, with the reason.
    pub skipped: Vec<(usize, String)>,
    /// With `verbose`: every event and segment, in order.
    pub trace: Vec<String>,
}

impl Report {
    /// One line: `PASS`, `FAIL line N: ...` or `SKIP ...`, with the skipped lines counted.
    pub fn summary(&self) -> String {
        let skipped =
            if self.skipped.is_empty() { String::new() } else { format!(" ({} lines skipped)", self.skipped.len()) };
        match &self.outcome {
            Outcome::Pass => format!("PASS{skipped}"),
            Outcome::Fail(f) => format!("FAIL {f}{skipped}"),
            Outcome::Skipped(why) => format!("SKIP {why}"),
        }
    }
}

std::thread_local! {
    /// Where the last panic on this thread happened (set by [`install_quiet_panic_hook`]).
    static LAST_PANIC: core::cell::RefCell<Option<String>> = const { core::cell::RefCell::new(None) };
}

/// Replace the panic hook with one that only records where a panic happened, so that a panic
/// inside the stack under test is reported once, as that script's failure, instead of also
/// being printed to stderr. For command-line tools; libraries should not set hooks.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(at));
    }));
}

/// Run one script given as text.
///
/// Never panics: a malformed script fails with its parse error, and a panic inside the stack
/// under test (a bug the script found) is caught and reported as the failure of the line
/// being run.
pub fn run_script(src: &str, cfg: &RunConfig) -> Report {
    let script = match parse::parse_with(src, &cfg.defines) {
        Ok(s) => s,
        Err(e) => {
            return Report {
                outcome: Outcome::Fail(Failure { line: e.line, message: format!("parse error: {}", e.message) }),
                skipped: Vec::new(),
                trace: Vec::new(),
            }
        }
    };
    let line = Cell::new(0);
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run::run(&script, cfg, &line))) {
        Ok(report) => report,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let at = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            Report {
                outcome: Outcome::Fail(Failure { line: line.get(), message: format!("the stack panicked: {msg}{at}") }),
                skipped: Vec::new(),
                trace: Vec::new(),
            }
        }
    }
}

/// Run one script file.
pub fn run_file(path: &Path, cfg: &RunConfig) -> Report {
    match std::fs::read_to_string(path) {
        Ok(src) => {
            let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
            run_script(&src, &RunConfig { script_dir: dir.map(Path::to_path_buf), ..cfg.clone() })
        }
        Err(e) => Report {
            outcome: Outcome::Fail(Failure { line: 0, message: format!("cannot read {}: {e}", path.display()) }),
            skipped: Vec::new(),
            trace: Vec::new(),
        },
    }
}

/// The `.pkt` files named: files as given, directories' own `.pkt` files (not their
/// subdirectories, so `tests/pkt/known-failures/` runs only when named), sorted.
pub fn collect_scripts(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "pkt"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
