//! What the root-only integration tests (tests/afxdp.rs, tests/interop.rs) share: the
//! may-I-run check, a command runner, and the lab — two fresh network namespaces joined by a
//! veth pair, removed on drop even when the test fails.
#![allow(dead_code)] // each test file uses its own part

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// The xtcp end of the veth, and the kernel's.
pub const XDEV: &str = "xv0";
pub const KDEV: &str = "kv0";
pub const XTCP_MAC: &str = "02:00:c6:12:00:01";
pub const KERNEL_MAC: &str = "02:00:c6:12:00:02";
pub const XTCP_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

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
        let lab = Lab { xns: format!("{tag}-x"), kns: format!("{tag}-k") };
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
