//! Smoke test of `xtcp-bench`: every workload, over both stacks and the AF_XDP bounce, for about
//! a second each, in network namespaces of its own. It checks that each run completes and reports
//! sane values (requests > 0, a positive p50, no errors) — never how fast anything is.
//!
//! Root only (namespaces, veth, XDP). Not root: a loud NOT RUN, or a failure under CI=true.

use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_xtcp-bench");
/// Kernel addresses: A on `va`, B on `vb`. xtcp's (on AF_XDP, the kernel does not have them):
/// XA next to the kernel on `va`, XB on `vb`.
const A: &str = "198.18.250.1";
const B: &str = "198.18.250.2";
const XA: &str = "198.18.250.11";
const XB: &str = "198.18.250.12";

fn may_run(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run (not root) and CI=true: failing instead of skipping");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! NOT RUN: {test}: not root. It needs root (network namespaces, veth, XDP). !!!!!!!!\n"
    );
    false
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces `-a` and `-b` joined by a veth pair `va`–`vb`, removed on drop.
struct Lab {
    a: String,
    b: String,
}

impl Lab {
    fn new() -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!("xbs-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let lab = Lab { a: format!("{tag}-a"), b: format!("{tag}-b") };
        run("ip", &["netns", "add", &lab.a]);
        run("ip", &["netns", "add", &lab.b]);
        run("ip", &["link", "add", "va", "netns", &lab.a, "type", "veth", "peer", "name", "vb", "netns", &lab.b]);
        for (ns, dev, ip) in [(&lab.a, "va", A), (&lab.b, "vb", B)] {
            // The kernel fills in its checksums (veth leaves them partial otherwise), which xtcp
            // verifies. Before the link goes up: a feature change resets a veth link.
            run("ip", &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
            run("ip", &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run("ip", &["-n", &lab.b, "-o", "link", "show", "vb"]).contains("LOWER_UP") {
            assert!(Instant::now() < deadline, "vb did not come up");
            thread::sleep(Duration::from_millis(20));
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A server process, stopped with SIGTERM (and reaped) on drop.
struct Server(Child);

impl Server {
    fn start(ns: &str, args: &[&str]) -> Server {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server");
        // Long enough for AF_XDP setup; a client's handshake retries anyway.
        thread::sleep(Duration::from_millis(700));
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run a client (or bounce client) for about a second; its JSON result.
fn client(ns: &str, args: &[&str]) -> Value {
    let json = std::env::temp_dir().join(format!("xtcp-bench-smoke-{}-{}.json", std::process::id(), rand_tag()));
    let hgrm = json.with_extension("hgrm");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, BIN])
        .args(args)
        .args(["--seconds", "1", "--warmup", "0.2", "--json"])
        .arg(&json)
        .arg("--hgrm")
        .arg(&hgrm)
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = writeln!(std::io::stderr(), "{args:?}\n  {}", stdout.trim());
    assert!(out.status.success(), "client {args:?} failed: {stdout}{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON was written")).expect("JSON");
    let h = std::fs::read_to_string(&hgrm).expect("the .hgrm was written");
    assert!(h.contains("Total count"), "{h}");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&hgrm);
    v
}

fn rand_tag() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64().unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// Completed, sane, no errors.
fn sane(v: &Value) {
    assert!(f(v, &["requests"]) > 0.0, "no requests: {v}");
    assert!(f(v, &["latency_us", "p50"]) > 0.0, "p50 not positive: {v}");
    assert!(f(v, &["latency_us", "max"]) >= f(v, &["latency_us", "p99"]), "{v}");
    assert!(f(v, &["cpu_us_per_request"]) >= 0.0, "{v}");
    assert_eq!(f(v, &["errors"]), 0.0, "errors: {v}");
    assert!(!v["percentiles"].as_array().expect("percentiles").is_empty(), "{v}");
}

#[test]
fn bench_smoke_kernel() {
    if !may_run("bench_smoke_kernel") {
        return;
    }
    let lab = Lab::new();
    let listen = format!("{A}:7000");
    let _s = Server::start(&lab.a, &["server", "--listen", &listen]);
    let c = ["client", "--quiet", "--connect", &listen];
    let rr = client(&lab.b, &[&c[..], &["--conns", "4", "--pipeline", "2", "--resp-bytes", "1000"]].concat());
    sane(&rr);
    assert!(f(&rr, &["bytes_received"]) >= f(&rr, &["requests"]) * 1000.0, "{rr}");
    sane(&client(&lab.b, &[&c[..], &["--busy-poll"]].concat()));
    let crr = client(&lab.b, &[&c[..], &["--workload", "crr", "--conns", "4"]].concat());
    sane(&crr);
    assert!(f(&crr, &["connections"]) > 0.0, "{crr}");
    let open = client(&lab.b, &[&c[..], &["--rate", "2000", "--conns", "2"]].concat());
    sane(&open);
    assert_eq!(open["workload"], "rr-open-loop");
    let stream = client(&lab.b, &[&c[..], &["--workload", "stream"]].concat());
    assert!(f(&stream, &["gbit_per_sec"]) > 0.0, "{stream}");
    assert_eq!(f(&stream, &["errors"]), 0.0, "{stream}");
    // Many source addresses: two more on vb, used in turn.
    for extra in ["198.18.250.21", "198.18.250.22"] {
        run("ip", &["-n", &lab.b, "addr", "add", &format!("{extra}/24"), "dev", "vb"]);
    }
    let many =
        client(&lab.b, &[&c[..], &["--conns", "30", "--src", "198.18.250.21-198.18.250.22,198.18.250.2"]].concat());
    sane(&many);
    assert_eq!(f(&many, &["peak_conns"]), 30.0, "{many}");
    // An echo server and a raw client.
    let echo = format!("{A}:7001");
    let _e = Server::start(&lab.a, &["server", "--mode", "echo", "--listen", &echo]);
    sane(&client(&lab.b, &["client", "--quiet", "--raw", "--connect", &echo, "--req-bytes", "100"]));
}

#[test]
fn bench_smoke_xtcp() {
    if !may_run("bench_smoke_xtcp") {
        return;
    }
    let lab = Lab::new();
    // xtcp client (on va, next to the kernel's A) against a kernel server on vb.
    let kernel_srv = format!("{B}:7000");
    let _k = Server::start(&lab.b, &["server", "--listen", &kernel_srv]);
    let xa_ip = format!("{XA}/24");
    let x = ["client", "--quiet", "--stack", "xtcp", "--iface", "va", "--ip", &xa_ip, "--connect", &kernel_srv];
    sane(&client(&lab.a, &[&x[..], &["--conns", "8", "--busy-poll"]].concat()));
    // Two source addresses on the xtcp stack (the second only the stack's and its XDP
    // program's): connections alternate between them, and every one must work.
    let two = client(&lab.a, &[&x[..], &["--conns", "8", "--src", "198.18.250.11,198.18.250.31"]].concat());
    sane(&two);
    let crr = client(&lab.a, &[&x[..], &["--workload", "crr", "--conns", "4"]].concat());
    sane(&crr);
    assert!(f(&crr, &["connections"]) > 0.0, "{crr}");
    let stream = client(&lab.a, &[&x[..], &["--workload", "stream"]].concat());
    assert!(f(&stream, &["gbit_per_sec"]) > 0.0 && f(&stream, &["errors"]) == 0.0, "{stream}");
    // The xtcp client's device counters are in its JSON: frames went both ways, and the AF_XDP
    // device's own figures (its TX kicks) are there by name (`f` fails on a missing one).
    assert!(f(&stream, &["device", "tx_frames"]) > 0.0 && f(&stream, &["device", "rx_frames"]) > 0.0, "{stream}");
    assert!(f(&stream, &["device", "tx_kicks"]) >= 0.0, "{stream}");
    drop(_k);
    // Kernel client (on vb) against an xtcp server on va.
    let xtcp_srv = format!("{XA}:7000");
    let _x =
        Server::start(&lab.a, &["server", "--stack", "xtcp", "--iface", "va", "--ip", &xa_ip, "--listen", &xtcp_srv]);
    let k = ["client", "--quiet", "--connect", &xtcp_srv];
    sane(&client(&lab.b, &[&k[..], &["--conns", "8", "--pipeline", "4"]].concat()));
    sane(&client(&lab.b, &[&k[..], &["--workload", "crr", "--conns", "4"]].concat()));
    sane(&client(&lab.b, &[&k[..], &["--rate", "2000", "--conns", "2"]].concat()));
}

#[test]
fn bench_smoke_bounce() {
    if !may_run("bench_smoke_bounce") {
        return;
    }
    let lab = Lab::new();
    let _s = Server::start(&lab.a, &["bounce", "serve", "--iface", "va", "--addr", XA]);
    let v = client(&lab.b, &["bounce", "client", "--iface", "vb", "--addr", XB, "--server", XA, "--window", "4"]);
    assert!(f(&v, &["requests"]) > 0.0, "{v}");
    assert!(f(&v, &["latency_us", "p50"]) > 0.0, "{v}");
}
