//! What the root-only integration tests (tests/afxdp.rs, tests/interop.rs) share: the
//! may-I-run check, a command runner, and the lab — two fresh network namespaces joined by a
//! veth pair, removed on drop even when the test fails.
#![allow(dead_code)] // each test file uses its own part

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The xtcp end of the veth, and the kernel's.
pub const XDEV: &str = "xv0";
pub const KDEV: &str = "kv0";
pub const XTCP_MAC: &str = "02:00:c6:12:00:01";
pub const KERNEL_MAC: &str = "02:00:c6:12:00:02";
pub const XTCP_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The same two ends over IPv6, from RFC 5180's benchmarking range.
pub const XTCP_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const KERNEL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// True when the test can run (root, and `tools` on the PATH). Otherwise: under CI=true,
/// fail; else say so loudly and skip.
pub fn may_run(test: &str, tools: &[&str]) -> bool {
    let mut why = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        why.push("not root".to_string());
    }
    for tool in tools {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.map(|o| o.status.success()).unwrap_or(false) {
            why.push(format!("`{tool}` not found"));
        }
    }
    if why.is_empty() {
        return true;
    }
    let why = why.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run ({why}) and CI=true: failing instead of skipping");
    }
    // Straight to stderr, not eprintln!: the test harness captures the macros of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! NOT RUN: {test}: {why}. It needs root (network namespaces, veth, XDP, tc). !!!!!!!!\n"
    );
    false
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two fresh namespaces joined by a veth pair; both removed (with the veth) on drop.
pub struct Lab {
    pub xns: String,
    pub kns: String,
    /// Arguments every xtcp started in this lab gets first: none for AF_XDP (the default),
    /// `--backend dpdk --vdev …` for the DPDK tests (tests/interop_dpdk.rs).
    pub backend: Vec<String>,
}

impl Lab {
    /// Namespaces `PREFIX-PID-N-x` (xtcp's end, `XDEV`, no address on the kernel there) and
    /// `PREFIX-PID-N-k` (the kernel's end, `KDEV`, `KERNEL_IP/24`, TX checksum offload off).
    pub fn new(prefix: &str) -> Lab {
        Lab::with_queues(prefix, 1)
    }

    /// The same, with `queues` rx and tx queues on each veth end (the multi-core runtime
    /// serves one queue per core).
    pub fn with_queues(prefix: &str, queues: u32) -> Lab {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        // The guard exists before anything is made, so a failure half-way still cleans up.
        let lab = Lab { xns: format!("{tag}-x"), kns: format!("{tag}-k"), backend: Vec::new() };
        run("ip", &["netns", "add", &lab.xns]);
        run("ip", &["netns", "add", &lab.kns]);
        // Made inside the namespaces directly: no name in the host's namespace can clash.
        let q = queues.to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                XDEV,
                "netns",
                &lab.xns,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                KDEV,
                "netns",
                &lab.kns,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ],
        );
        run("ip", &["-n", &lab.xns, "link", "set", XDEV, "address", XTCP_MAC]);
        run("ip", &["-n", &lab.kns, "link", "set", KDEV, "address", KERNEL_MAC]);
        run("ip", &["-n", &lab.kns, "addr", "add", &format!("{KERNEL_IP}/24"), "dev", KDEV]);
        // IPv6 on the kernel's end (no duplicate address detection: the address is usable at
        // once); none on xtcp's, whose kernel would otherwise own the link-local address that
        // the interface's MAC gives, the one xtcp's stack takes (its XDP program sees the
        // frames first either way).
        run("ip", &["-n", &lab.kns, "addr", "add", &format!("{KERNEL_IP6}/64"), "dev", KDEV, "nodad"]);
        let off = format!("echo 1 > /proc/sys/net/ipv6/conf/{XDEV}/disable_ipv6");
        run("ip", &["netns", "exec", &lab.xns, "sh", "-c", &off]);
        // The kernel fills in every checksum, which xtcp verifies (AFXDP-NOTES.md). Before the
        // link goes up: a feature change resets a veth link.
        run("ip", &["netns", "exec", &lab.kns, "ethtool", "-K", KDEV, "tx", "off"]);
        for (ns, dev) in [(&lab.xns, XDEV), (&lab.kns, KDEV)] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run("ip", &["-n", &lab.kns, "-o", "link", "show", KDEV]).contains("LOWER_UP") {
            assert!(Instant::now() < deadline, "{KDEV} did not come up");
            thread::sleep(Duration::from_millis(20));
        }
        lab
    }
}

impl Lab {
    /// Whether xtcp runs on AF_XDP with our XDP program here (the XDP checks apply).
    pub fn ours_xdp(&self) -> bool {
        self.backend.is_empty()
    }

    /// `xtcp ARGS…` in the xtcp namespace (ARGS begin with the subcommand), with this lab's
    /// backend arguments after them.
    pub fn xtcp(&self, args: &[&str]) -> Xtcp {
        let mut all = args.to_vec();
        all.extend(self.backend.iter().map(String::as_str));
        Xtcp::spawn(&self.xns, &all)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.xns, &self.kns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
        || run("ip", &["netns", "list"]).lines().any(|l| l.split_whitespace().next() == Some(name))
}

/// Run `f` on a new thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

// ---------------------------------------------------------------------------------------------
// An `xtcp` process (the binary under test) in the lab's xtcp namespace.

/// A watchdog, not a measurement: no progress for this long fails the test instead of hanging.
pub const STUCK: Duration = Duration::from_secs(120);
/// The watchdog on a whole `xtcp client` run (which prints nothing until its end).
pub const HUNG: Duration = Duration::from_secs(900);

/// How an xtcp process ended, and everything it printed.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ended {
    /// A counter from the `--stats` output: the last `name: N` (the final counters of `serve`).
    pub fn stat(&self, name: &str) -> u64 {
        let key = format!("{name}: ");
        let at = self.stderr.rfind(&key).unwrap_or_else(|| panic!("no {name} in xtcp's output:\n{}", self.stderr));
        let digits: String = self.stderr[at + key.len()..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or_else(|_| panic!("{name}: not a number in xtcp's output"))
    }

    /// A figure from the one-line `--stats` summary, e.g. `retrans 3` or `drops 0`.
    pub fn line_stat(&self, name: &str) -> u64 {
        let line = self.stderr.lines().rev().find(|l| l.starts_with("xtcp: conns")).expect("a --stats line");
        let at = line.find(&format!("{name} ")).unwrap_or_else(|| panic!("no {name} in {line:?}"));
        let digits: String = line[at + name.len() + 1..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or_else(|_| panic!("{name} in {line:?}"))
    }

    /// A counter of the device's `--stats` line (`xtcp: device … name=N …`), the last printed.
    pub fn device_stat(&self, name: &str) -> u64 {
        let line = self.stderr.lines().rev().find(|l| l.starts_with("xtcp: device")).expect("a --stats device line");
        let word = line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='));
        word.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name}=N in {line:?}"))
    }

    /// `xtcp client`'s result line: (SHA-256 hex, bytes received, bytes sent).
    pub fn client_result(&self) -> (String, usize, usize) {
        let line = self.stdout.lines().find(|l| l.contains(" received ")).unwrap_or_else(|| {
            panic!("no result line from xtcp client; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
        });
        let w: Vec<&str> = line.split_whitespace().collect();
        // HASH  received N bytes, sent M bytes in T s
        assert!(w.len() >= 7 && w[1] == "received" && w[4] == "sent", "unexpected result line {line:?}");
        (w[0].to_string(), w[2].parse().expect("received"), w[5].parse().expect("sent"))
    }

    pub fn assert_success(&self, what: &str) {
        assert!(self.status.success(), "{what}: xtcp exited with {}:\n{}{}", self.status, self.stdout, self.stderr);
    }
}

/// An `xtcp` process in the xtcp namespace. Dropped: SIGTERM by PID, then SIGKILL if needed.
pub struct Xtcp {
    child: Child,
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
    reaped: Option<ExitStatus>,
}

impl Xtcp {
    pub fn spawn(xns: &str, args: &[&str]) -> Xtcp {
        Xtcp::spawn_with(xns, args, &[&format!("{XTCP_IP}/24"), &format!("{XTCP_IP6}/64")])
    }

    /// The same with these `--ip` addresses (an IPv6-only stack: IPv6 ones alone).
    pub fn spawn_with(xns: &str, args: &[&str], ips: &[&str]) -> Xtcp {
        let ips = ips.iter().flat_map(|ip| ["--ip", ip]);
        let mut child = Command::new("ip")
            .args(["netns", "exec", xns, env!("CARGO_BIN_EXE_xtcp")])
            .args(args)
            .args(["--iface", XDEV])
            .args(ips)
            .arg("--stats")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xtcp under ip netns exec");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for (pipe, sink) in [
            (Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Arc::clone(&stdout)),
            (Box::new(child.stderr.take().unwrap()), Arc::clone(&stderr)),
        ] {
            readers.push(thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        Xtcp { child, stderr, readers, stdout, reaped: None }
    }

    /// The process id (of xtcp itself: `ip netns exec` execs it in place).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Wait until xtcp prints `needle` on stderr. Also checks that the PID is xtcp's own.
    pub fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + STUCK;
        while !self.stderr.lock().unwrap().contains(needle) {
            assert!(Instant::now() < deadline, "xtcp did not print {needle:?}:\n{}", self.stderr.lock().unwrap());
            if let Some(status) = self.reap(Instant::now()) {
                let ended = self.collect(status);
                panic!("xtcp ended ({}) before printing {needle:?}:\n{}", ended.status, ended.stderr);
            }
            thread::sleep(Duration::from_millis(10));
        }
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.child.id())).unwrap_or_default();
        assert_eq!(comm.trim(), "xtcp", "`ip netns exec` was expected to exec xtcp in place");
    }

    /// Poll for the end of the process until `deadline`.
    pub fn reap(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.reaped {
                return Some(s);
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                self.reaped = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn collect(&mut self, status: ExitStatus) -> Ended {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ended { status, stdout: self.stdout.lock().unwrap().clone(), stderr: self.stderr.lock().unwrap().clone() }
    }

    /// SIGTERM (xtcp's graceful shutdown) and wait for the end.
    pub fn terminate(mut self) -> Ended {
        let _ = kill(self.pid(), Signal::SIGTERM);
        let status = self.reap(Instant::now() + STUCK).unwrap_or_else(|| panic!("xtcp ignored SIGTERM"));
        self.collect(status)
    }

    /// Wait for the end after a signal the caller sent (`pid`).
    pub fn wait_end(mut self) -> Ended {
        let status = self.reap(Instant::now() + STUCK).unwrap_or_else(|| panic!("xtcp ignored SIGTERM"));
        self.collect(status)
    }

    /// Wait for the process to end by itself (a client). It prints nothing until the end, so
    /// the watchdog is on the whole run: `HUNG`.
    pub fn wait(mut self) -> Ended {
        let status = self
            .reap(Instant::now() + HUNG)
            .unwrap_or_else(|| panic!("xtcp client still running after {HUNG:?}:\n{}", self.stderr.lock().unwrap()));
        self.collect(status)
    }
}

impl Drop for Xtcp {
    fn drop(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        if thread::panicking() {
            eprintln!("xtcp's output so far:\n{}", self.stderr.lock().unwrap());
        }
        // Only the process this guard started, by its PID.
        let _ = kill(self.pid(), Signal::SIGTERM);
        if self.reap(Instant::now() + Duration::from_secs(5)).is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
