//! The loss benchmark: the same work done by the kernel's TCP and by xtcp's, into kernel
//! receivers, over identical veth links with the same random loss, in one run.
//!
//! Two pairs of network namespaces of its own (removed on drop, whatever happens):
//! * `…-x` (xtcp on AF_XDP on `lx`, 198.18.7.1, no kernel address) ↔ `…-k` (kernel, `lk`,
//!   198.18.7.2);
//! * `…-a` (kernel, `la`, 198.18.8.2) ↔ `…-b` (kernel, `lb`, 198.18.8.1).
//!
//! Every link end is set up alike: MTU 1500, one queue, TX checksum offload off (xtcp checks
//! checksums; veth leaves them partial otherwise), and TSO, GSO and GRO off, so that every
//! frame is one segment of at most one MSS on the wire. (With GSO on, a kernel sender hands
//! veth 64 KB super-packets and a drop takes 45 segments at once: a different, gentler loss
//! than a network's.) Loss comes from `bpf/loss.bpf.c` (`xtcp::io::tcloss`) on the receiving
//! kernel's end (`lk`, `lb`): the share of TCP frames it drops at ingress (frames to the
//! kernel, `TC_ACT_SHOT`) and at egress (frames to the sender, `TC_ACT_STOLEN`).
//!
//! * **Transfers**: a kernel sink (a thread in `…-k` or `…-b`) accepts one connection and
//!   reads until EOF, checking every byte against `xtcp::apps::client_pattern`; the time is
//!   from `accept` to EOF, at the receiver. Senders: a kernel socket (a thread in `…-a`)
//!   writing the pattern, and the `xtcp client --send-bytes` binary. Loss on data only (the
//!   receiver's ingress). Each figure is the median of `runs` runs; retransmissions are the
//!   sender's (the kernel's `RetransSegs`, xtcp's counters), drops the program's.
//! * **Request/response**: `xtcp-bench server` (kernel) answering `xtcp-bench client --workload
//!   rr` (one connection, 64 B, busy-polling) over the kernel and over xtcp, with the same loss
//!   each way; the clients' latency percentiles.
//!
//! Receivers and servers run on CPU 1, senders and clients on CPU 0.

use crate::results::RunResult;
use nix::sched::{sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use xtcp::apps::client_pattern;
use xtcp::io::tcloss::{Seen, TcLoss};

const XTCP_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 7, 1);
const K_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 7, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 8, 1);
const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 8, 2);
const SINK_PORT: u16 = 9000;
const RR_PORT: u16 = 7000;
const RECEIVER_CPU: usize = 1;
const SENDER_CPU: usize = 0;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// (loss share, bytes) per row of the transfer matrix.
    pub transfers: Vec<(f64, usize)>,
    /// Runs per figure (the median is reported).
    pub runs: usize,
    /// Loss each way for request/response (0 to skip it), and its length.
    pub rr_loss: f64,
    pub rr_seconds: f64,
    /// The `xtcp` and `xtcp-bench` binaries.
    pub xtcp: PathBuf,
    pub bench: PathBuf,
    /// Where the client JSONs of the rr runs go (and the summary).
    pub out: Option<PathBuf>,
    /// The kernel senders' congestion control (net.ipv4.tcp_congestion_control of their
    /// namespace); `None`: the system's default.
    pub kernel_cc: Option<String>,
    /// xtcp's congestion control (`xtcp client --cc`); `None`: xtcp's default (CUBIC).
    pub xtcp_cc: Option<String>,
    /// A fixed send buffer for xtcp (`xtcp client --send-buffer N --send-buffer-max N`);
    /// `None`: xtcp's default, which grows as the kernel's does, up to the same bound
    /// (net.ipv4.tcp_wmem's maximum, as `--send-buffer-max`).
    pub xtcp_send_buffer: Option<usize>,
    /// Capture each transfer's frames at the sender (tcpdump on the kernel sender's link,
    /// `xtcp client --pcap` for xtcp) into this directory.
    pub pcap: Option<PathBuf>,
}

/// One transfer.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Transfer {
    pub secs: f64,
    pub retransmits: u64,
    /// Of them: retransmission timeouts and tail loss probes (the kernel's TCPTimeouts and
    /// TCPLossProbes).
    pub timeouts: Option<u64>,
    pub tlps: Option<u64>,
    /// Data frames the receiver's ingress saw and dropped.
    pub frames: u64,
    pub dropped: u64,
}

/// One row of the transfer matrix: median runs of each sender.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub loss: f64,
    pub bytes: usize,
    pub kernel: Transfer,
    pub xtcp: Transfer,
    pub kernel_runs: Vec<f64>,
    pub xtcp_runs: Vec<f64>,
    /// Runs in which the sender's retransmission timer expired at least once.
    pub kernel_runs_with_rto: usize,
    pub xtcp_runs_with_rto: usize,
}

/// The rr runs.
#[derive(Debug, Clone, Serialize)]
pub struct Rr {
    pub loss: f64,
    pub kernel: RunResult,
    pub xtcp: RunResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    /// The senders' congestion control.
    pub kernel_cc: String,
    pub xtcp_cc: String,
    /// The most the kernel's send buffer may grow to (xtcp's grows to the same), and xtcp's
    /// send buffer when it was fixed instead.
    pub kernel_wmem_max: usize,
    pub xtcp_send_buffer: Option<usize>,
    pub rows: Vec<Row>,
    pub rr: Option<Rr>,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run `f` on a thread inside namespace `ns`, pinned to `cpu`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    cpu: usize,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> thread::JoinHandle<Result<T, String>> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
        let mut set = CpuSet::new();
        if set.set(cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &set);
        }
        f()
    })
}

fn join<T>(h: thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    h.join().map_err(|_| "a benchmark thread panicked".to_string())?
}

/// The four namespaces and two veth pairs; removed on drop.
struct Lab {
    x: String,
    k: String,
    a: String,
    b: String,
    /// net.ipv4.tcp_wmem's maximum in the kernel sender's namespace, and xtcp's send buffer.
    kernel_wmem_max: usize,
    xtcp_send_buffer: Option<usize>,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!("xlm-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let lab = Lab {
            x: format!("{tag}-x"),
            k: format!("{tag}-k"),
            a: format!("{tag}-a"),
            b: format!("{tag}-b"),
            kernel_wmem_max: 0,
            xtcp_send_buffer: None,
        };
        for ns in [&lab.x, &lab.k, &lab.a, &lab.b] {
            run("ip", &["netns", "add", ns])?;
        }
        for (n1, d1, n2, d2) in [(&lab.x, "lx", &lab.k, "lk"), (&lab.a, "la", &lab.b, "lb")] {
            run("ip", &["link", "add", d1, "netns", n1, "type", "veth", "peer", "name", d2, "netns", n2])?;
        }
        for (ns, dev, ip) in
            [(&lab.x, "lx", None), (&lab.k, "lk", Some(K_IP)), (&lab.a, "la", Some(A_IP)), (&lab.b, "lb", Some(B_IP))]
        {
            // Before the link goes up (a feature change resets a veth link).
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
            )?;
            if let Some(ip) = ip {
                run("ip", &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev])?;
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            // IPv6 off, as the lab has it: no router solicitations on the wire.
            let _ = run("ip", &["netns", "exec", ns, "sysctl", "-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (ns, dev) in [(&lab.k, "lk"), (&lab.b, "lb"), (&lab.x, "lx"), (&lab.a, "la")] {
            while !run("ip", &["-n", ns, "-o", "link", "show", dev])?.contains("LOWER_UP") {
                if Instant::now() > deadline {
                    return Err(format!("{dev} did not come up"));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(lab)
    }

    fn ifindex(ns: &str, dev: &str) -> Result<i32, String> {
        let line = run("ip", &["-n", ns, "-o", "link", "show", dev])?;
        line.split(':').next().and_then(|n| n.trim().parse().ok()).ok_or(format!("no ifindex for {dev}: {line}"))
    }

    /// Attach the loss programs to a receiver's link.
    fn loss(&self, ns: &str, dev: &str, ingress: f64, egress: f64) -> Result<Loss, String> {
        let ifindex = Lab::ifindex(ns, dev)?;
        let inner = join(in_netns(ns, RECEIVER_CPU, move || TcLoss::attach(ifindex, ingress, egress)))?;
        Ok(Loss { ns: ns.to_string(), inner: Some(inner) })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.x, &self.k, &self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The loss programs on one link; detached (from a thread in its namespace) on drop.
struct Loss {
    ns: String,
    inner: Option<TcLoss>,
}

impl Loss {
    fn counts(&self) -> (Seen, Seen) {
        self.inner.as_ref().map(TcLoss::counts).unwrap_or_default()
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        if let Some(l) = self.inner.take() {
            let _ = in_netns(&self.ns, RECEIVER_CPU, move || {
                drop(l);
                Ok(())
            })
            .join();
        }
    }
}

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
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

/// The kernel sink: accept one connection, read to EOF checking the pattern; (bytes, secs).
fn sink(listener: TcpListener) -> Result<(usize, f64), String> {
    let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let t0 = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(j) = (0..n).find(|&j| buf[j] != client_pattern(got + j)) {
                    return Err(format!("byte {} is wrong", got + j));
                }
                got += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok((got, t0.elapsed().as_secs_f64()))
}

/// `Tcp: RetransSegs` of the calling thread's namespace.
fn retrans_segs() -> Result<u64, String> {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").map_err(|e| format!("snmp: {e}"))?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (lines.next().ok_or("no Tcp: in snmp")?, lines.next().ok_or("no Tcp: values")?);
    let i = names.split_whitespace().position(|n| n == "RetransSegs").ok_or("no RetransSegs")?;
    values.split_whitespace().nth(i).and_then(|v| v.parse().ok()).ok_or_else(|| "bad RetransSegs".into())
}

/// `TcpExt:` counters of the calling thread's namespace, by name.
fn tcp_ext(names: &[&str]) -> Result<Vec<u64>, String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").map_err(|e| format!("netstat: {e}"))?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (keys, values) = (lines.next().ok_or("no TcpExt")?, lines.next().ok_or("no TcpExt values")?);
    let keys: Vec<&str> = keys.split_whitespace().collect();
    let values: Vec<&str> = values.split_whitespace().collect();
    Ok(names
        .iter()
        .map(|n| keys.iter().position(|k| k == n).and_then(|i| values.get(i)?.parse().ok()).unwrap_or(0))
        .collect())
}

/// The kernel sender: connect, write the pattern, shut down, wait for the sink to close.
/// Returns the namespace's retransmissions, timeouts and loss probes meanwhile.
fn kernel_send(n: usize, cc: Option<&str>) -> Result<(u64, u64, u64), String> {
    const EXT: [&str; 2] = ["TCPTimeouts", "TCPLossProbes"];
    let before = retrans_segs()?;
    let ext_before = tcp_ext(&EXT)?;
    let to = SocketAddrV4::new(B_IP, SINK_PORT);
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
    if let Some(cc) = cc {
        // TCP_CONGESTION on this socket (the namespace's default may not be changed).
        sock.set_tcp_congestion(cc.as_bytes()).map_err(|e| format!("TCP_CONGESTION {cc}: {e}"))?;
    }
    sock.connect_timeout(&to.into(), Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    let mut s: TcpStream = sock.into();
    // The pattern xtcp's client sends, from a table as it does (no per-byte work).
    const CHUNK: usize = 64 * 1024;
    let table = xtcp::apps::pattern_table(CHUNK);
    let mut chunk = vec![0u8; CHUNK];
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(CHUNK);
        let at = sent % 26;
        s.write_all(&table[at..at + k]).map_err(|e| format!("write: {e}"))?;
        sent += k;
    }
    s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    let _ = s.read(&mut chunk);
    let ext = tcp_ext(&EXT)?;
    Ok((retrans_segs()? - before, ext[0] - ext_before[0], ext[1] - ext_before[1]))
}

/// A number after `key ` in `text`.
fn stat_after(text: &str, key: &str) -> Option<u64> {
    let at = text.rfind(key)? + key.len();
    text[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Lab {
    /// One transfer of `n` bytes by `sender` ("kernel" or "xtcp") at `loss` on data.
    fn transfer(&self, o: &Options, xtcp: bool, n: usize, loss: f64) -> Result<Transfer, String> {
        let (rns, rdev, rip) = if xtcp { (&self.k, "lk", K_IP) } else { (&self.b, "lb", B_IP) };
        let l = self.loss(rns, rdev, loss, 0.0)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let receiver = in_netns(rns, RECEIVER_CPU, move || {
            let listener = TcpListener::bind(SocketAddrV4::new(rip, SINK_PORT)).map_err(|e| format!("bind: {e}"))?;
            let _ = tx.send(());
            sink(listener)
        });
        rx.recv().map_err(|_| "the sink did not start".to_string())?;
        let pcap = o.pcap.as_ref().map(|d| {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "{}-{:.0}pct-{}.pcap",
                if xtcp { "xtcp" } else { "kernel" },
                loss * 100.0,
                N.fetch_add(1, Ordering::Relaxed)
            );
            d.join(name)
        });
        let _dump = match (&pcap, xtcp) {
            (Some(p), false) => Some(Proc(
                Command::new("ip")
                    .args(["netns", "exec", &self.a, "tcpdump", "-q", "-i", "la", "-s", "128", "-w"])
                    .arg(p)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("tcpdump: {e}"))?,
            )),
            _ => None,
        };
        if _dump.is_some() {
            thread::sleep(Duration::from_millis(300));
        }
        let (retransmits, timeouts, tlps) = if xtcp {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &self.x, "taskset", "-c", &SENDER_CPU.to_string()])
                .arg(&o.xtcp)
                .args(["client", "--iface", "lx", "--ip", &format!("{XTCP_IP}/24")])
                .args(["--connect", &format!("{K_IP}:{SINK_PORT}"), "--send-bytes", &n.to_string(), "--stats"]);
            if let Some(cc) = &o.xtcp_cc {
                cmd.args(["--cc", cc]);
            }
            match self.xtcp_send_buffer {
                Some(b) => cmd.args(["--send-buffer", &b.to_string(), "--send-buffer-max", &b.to_string()]),
                None => cmd.args(["--send-buffer-max", &self.kernel_wmem_max.to_string()]),
            };
            if let Some(p) = &pcap {
                cmd.arg("--pcap").arg(p);
            }
            let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("xtcp client: {e}"))?;
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                return Err(format!("xtcp client failed: {err}"));
            }
            (stat_after(&err, "retrans").unwrap_or(0), stat_after(&err, "rto"), stat_after(&err, "tlp"))
        } else {
            let cc = o.kernel_cc.clone();
            let (r, t, p) = join(in_netns(&self.a, SENDER_CPU, move || kernel_send(n, cc.as_deref())))?;
            (r, Some(t), Some(p))
        };
        let (got, secs) = join(receiver)?;
        if got != n {
            return Err(format!("the sink got {got} of {n} bytes"));
        }
        let (ingress, _) = l.counts();
        Ok(Transfer { secs, retransmits, timeouts, tlps, frames: ingress.seen, dropped: ingress.dropped })
    }

    /// rr over one stack, with `loss` each way on the server's link.
    fn rr(&self, o: &Options, xtcp: bool, loss: f64) -> Result<RunResult, String> {
        let (sns, sdev, sip) = if xtcp { (&self.k, "lk", K_IP) } else { (&self.b, "lb", B_IP) };
        let _l = self.loss(sns, sdev, loss, loss)?;
        let listen = format!("{sip}:{RR_PORT}");
        let server = Proc(
            Command::new("ip")
                .args(["netns", "exec", sns, "taskset", "-c", &RECEIVER_CPU.to_string()])
                .arg(&o.bench)
                .args(["server", "--listen", &listen, "--busy-poll"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("xtcp-bench server: {e}"))?,
        );
        // Ready when it accepts (probed from its own namespace).
        join(in_netns(sns, RECEIVER_CPU, move || {
            let to = SocketAddrV4::new(sip, RR_PORT).into();
            for _ in 0..100 {
                if TcpStream::connect_timeout(&to, Duration::from_millis(100)).is_ok() {
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(format!("no server at {sip}:{RR_PORT}"))
        }))?;
        let label = format!(
            "{} client → kernel server, {:.0} % loss each way",
            if xtcp { "xtcp" } else { "kernel" },
            loss * 100.0
        );
        let json = match &o.out {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
                d.join(format!("loss-rr-{}.json", if xtcp { "xtcp" } else { "kernel" }))
            }
            None => std::env::temp_dir().join(format!("xtcp-loss-rr-{}-{}.json", std::process::id(), xtcp)),
        };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", if xtcp { &self.x } else { &self.a }, "taskset", "-c", &SENDER_CPU.to_string()]);
        cmd.arg(&o.bench).arg("client");
        if xtcp {
            cmd.args(["--stack", "xtcp", "--iface", "lx", "--ip", &format!("{XTCP_IP}/24")]);
        }
        cmd.args(["--connect", &listen, "--busy-poll", "--workload", "rr", "--conns", "1", "--req-bytes", "64"])
            .args(["--seconds", &o.rr_seconds.to_string(), "--quiet", "--label", &label])
            .arg("--json")
            .arg(&json)
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|e| format!("xtcp-bench client: {e}"))?;
        if !out.status.success() {
            return Err(format!("rr client failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        drop(server);
        let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))
    }
}

fn median(mut v: Vec<Transfer>) -> (Transfer, Vec<f64>) {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let secs = v.iter().map(|t| t.secs).collect();
    (v[v.len() / 2], secs)
}

/// Run the matrix (and rr), printing progress on stderr.
pub fn run_all(o: &Options) -> Result<Report, String> {
    let mut lab = Lab::new()?;
    lab.kernel_wmem_max = join(in_netns(&lab.a, SENDER_CPU, || {
        let s = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").map_err(|e| format!("tcp_wmem: {e}"))?;
        s.split_whitespace().nth(2).and_then(|m| m.parse().ok()).ok_or_else(|| format!("tcp_wmem: {s:?}"))
    }))?;
    lab.xtcp_send_buffer = o.xtcp_send_buffer;
    // The xtcp sender's stack answers ARP only once up; nothing to wait for beyond the links.
    let mut rows = Vec::new();
    for &(loss, bytes) in &o.transfers {
        let (mut k, mut x) = (Vec::new(), Vec::new());
        for r in 0..o.runs.max(1) {
            // Alternate which goes first, so that neither always runs on a warmer machine.
            let order = if r % 2 == 0 { [false, true] } else { [true, false] };
            for xtcp in order {
                let t = lab.transfer(o, xtcp, bytes, loss)?;
                eprintln!(
                    "loss {:>4.1} %  {:>5} MB  {} sender: {:.3} s, {} retransmitted ({} RTOs, {} TLPs), {} of {} frames dropped",
                    loss * 100.0,
                    bytes >> 20,
                    if xtcp { "xtcp  " } else { "kernel" },
                    t.secs,
                    t.retransmits,
                    t.timeouts.unwrap_or(0),
                    t.tlps.unwrap_or(0),
                    t.dropped,
                    t.frames
                );
                if xtcp {
                    x.push(t)
                } else {
                    k.push(t)
                }
            }
        }
        let with_rto = |v: &[Transfer]| v.iter().filter(|t| t.timeouts.unwrap_or(0) > 0).count();
        let (kernel_runs_with_rto, xtcp_runs_with_rto) = (with_rto(&k), with_rto(&x));
        let (kernel, kernel_runs) = median(k);
        let (xtcp, xtcp_runs) = median(x);
        rows.push(Row { loss, bytes, kernel, xtcp, kernel_runs, xtcp_runs, kernel_runs_with_rto, xtcp_runs_with_rto });
    }
    let rr = if o.rr_loss > 0.0 {
        let kernel = lab.rr(o, false, o.rr_loss)?;
        eprintln!("rr kernel: {:.0} req/s, p99 {:.1} µs", kernel.requests_per_sec, kernel.latency_us.p99);
        let xtcp = lab.rr(o, true, o.rr_loss)?;
        eprintln!("rr xtcp: {:.0} req/s, p99 {:.1} µs", xtcp.requests_per_sec, xtcp.latency_us.p99);
        Some(Rr { loss: o.rr_loss, kernel, xtcp })
    } else {
        None
    };
    let machine = format!(
        "{} CPUs, kernel {}; receivers and servers on CPU {RECEIVER_CPU}, senders and clients on CPU {SENDER_CPU}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        run("uname", &["-r"]).unwrap_or_default().trim()
    );
    let kernel_cc = match &o.kernel_cc {
        Some(cc) => cc.clone(),
        None => join(in_netns(&lab.a, SENDER_CPU, || {
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("tcp_congestion_control: {e}"))
        }))?,
    };
    let xtcp_cc = o.xtcp_cc.clone().unwrap_or_else(|| "cubic".into());
    Ok(Report {
        machine,
        kernel_cc,
        xtcp_cc,
        kernel_wmem_max: lab.kernel_wmem_max,
        xtcp_send_buffer: lab.xtcp_send_buffer,
        rows,
        rr,
    })
}

/// The report as Markdown tables.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("Loss benchmark ({}).\n", r.machine));
    s.push_str(&format!(
        "Congestion control: kernel {}, xtcp {}. Send buffer: kernel autotuned up to {} KiB (tcp_wmem), xtcp {}.\n\n",
        r.kernel_cc,
        r.xtcp_cc,
        r.kernel_wmem_max >> 10,
        match r.xtcp_send_buffer {
            Some(b) => format!("fixed at {} KiB", b >> 10),
            None => format!("autotuned from 64 KiB up to {} KiB", r.kernel_wmem_max >> 10),
        }
    ));
    let runs = r.rows.first().map_or(0, |row| row.kernel_runs.len());
    s.push_str(&format!(
        "Median of {runs} runs each (fastest–slowest in brackets); the retransmission counts are the median run's.\n\n"
    ));
    s.push_str("| loss | bytes | kernel sender | xtcp sender | xtcp ÷ kernel | runs with an RTO: kernel / xtcp | retransmitted (RTOs, TLPs): kernel | xtcp | data frames dropped: kernel / xtcp |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let range = |v: &[f64]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => format!("({a:.3}–{b:.3})"),
        _ => String::new(),
    };
    for row in &r.rows {
        s.push_str(&format!(
            "| {:.0} % | {} MB | {:.3} s {} | {:.3} s {} | {:.2} | {} / {} | {} ({}, {}) | {} ({}, {}) | {} / {} |\n",
            row.loss * 100.0,
            row.bytes >> 20,
            row.kernel.secs,
            range(&row.kernel_runs),
            row.xtcp.secs,
            range(&row.xtcp_runs),
            row.xtcp.secs / row.kernel.secs,
            row.kernel_runs_with_rto,
            row.xtcp_runs_with_rto,
            row.kernel.retransmits,
            row.kernel.timeouts.unwrap_or(0),
            row.kernel.tlps.unwrap_or(0),
            row.xtcp.retransmits,
            row.xtcp.timeouts.unwrap_or(0),
            row.xtcp.tlps.unwrap_or(0),
            row.kernel.dropped,
            row.xtcp.dropped,
        ));
    }
    if let Some(rr) = &r.rr {
        s.push_str(&format!(
            "\nRequest/response, 64 B, one connection, busy-polling, {:.0} % loss each way:\n\n",
            rr.loss * 100.0
        ));
        s.push_str("| client → kernel server | requests/s | p50 | p99 | p99.9 | max | requests |\n|---|---|---|---|---|---|---|\n");
        for (name, x) in [("kernel", &rr.kernel), ("xtcp", &rr.xtcp)] {
            let l = &x.latency_us;
            s.push_str(&format!(
                "| {name} | {:.0} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {} |\n",
                x.requests_per_sec, l.p50, l.p99, l.p999, l.max, x.requests
            ));
        }
        let (k, x) = (&rr.kernel.latency_us, &rr.xtcp.latency_us);
        s.push_str(&format!(
            "\nxtcp ÷ kernel: p50 {:.2}, p99 {:.2}, p99.9 {:.2}\n",
            x.p50 / k.p50.max(1e-9),
            x.p99 / k.p99.max(1e-9),
            x.p999 / k.p999.max(1e-9)
        ));
    }
    s
}

/// Save the report (JSON and Markdown) in `dir`.
pub fn save(r: &Report, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("loss.json"), json).map_err(|e| format!("loss.json: {e}"))?;
    std::fs::write(dir.join("loss-table.md"), markdown(r)).map_err(|e| format!("loss-table.md: {e}"))
}
