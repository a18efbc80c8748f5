//! Interop with the Linux kernel's TCP (issue 5, "Must show"): the `xtcp` binary on AF_XDP at
//! one end of a veth pair, the kernel at the other, each test in two network namespaces of its
//! own (removed by a drop guard, whatever happens).
//!
//! ```text
//!  netns xint-<pid>-<n>-x                  netns xint-<pid>-<n>-k
//!  xv0 02:00:c6:12:00:01  <── veth ──>     kv0 02:00:c6:12:00:02, 198.18.0.2/24
//!  `ip netns exec … xtcp serve|client`     std sockets from a thread that entered the
//!  --ip 198.18.0.1/24 (the stack's only;   namespace with setns(2); `ping`, `ss`, `ip neigh`
//!  not configured on that kernel)          through `ip netns exec`; tx checksum offload off
//! ```
//!
//! What is shown: bulk transfers both ways with the SHA-256 of the data compared (1 B, 1 MB,
//! 256 MB; xtcp as echo server and as client; discard, chargen and a one-way source), 1,000
//! sequential short connections, half-close in both directions (data that provably travels
//! after the FIN), resets for closed ports both ways, ping and ARP both ways, and transfers
//! under 1 % and 5 % random loss in both directions.
//!
//! # How each side is driven
//!
//! xtcp runs as the real binary (`env!("CARGO_BIN_EXE_xtcp")`) under `ip netns exec`, which
//! execs it without forking: the child's PID is xtcp's own (checked through `/proc/PID/comm`), so
//! the guard ends it with SIGTERM by that PID (SIGKILL if it will not go). Its XDP program hangs on
//! a BPF link, so it goes with the process; the tests check that it is gone. The kernel side is
//! std sockets opened from a thread that entered the kernel namespace with `setns(2)` (a socket
//! stays in the namespace it was made in, so it may be handed to other threads): plain Rust,
//! results and panics come back through `join`, no helper binary.
//!
//! # Loss injection
//!
//! A lost frame must be invisible to its sender. `bpf/loss.bpf.c` holds two tc (clsact) programs
//! that drop a configured share of IPv4 TCP segments with `bpf_get_prandom_u32()`, both attached
//! to the kernel's end, `kv0`:
//!
//! * frames to the kernel: `loss_ingress` on kv0's ingress, returning `TC_ACT_SHOT`: the
//!   receiving side's ingress (AFXDP-NOTES.md), xtcp cannot know.
//! * frames to xtcp: the receiving side's ingress is xv0, where our XDP program runs first and
//!   redirects to the AF_XDP socket before tc would see anything, and a second XDP program cannot
//!   be attached there. So `loss_egress` runs on kv0's *egress* and returns `TC_ACT_STOLEN`, not
//!   `TC_ACT_SHOT`. SHOT on egress is what AFXDP-NOTES.md warns about: `dev_queue_xmit` returns
//!   `NET_XMIT_DROP`, `tcp_transmit_skb` fails, the segment stays unsent and the socket enters
//!   CWR — local congestion, not loss (measured kernel→kernel, 20 MB at 5 %: 0 retransmissions,
//!   0 out-of-order segments at the receiver). STOLEN reports `NET_XMIT_SUCCESS` and frees the
//!   frame, so the sender believes it sent it: measured the same way, 625 fast retransmissions
//!   and 4222 out-of-order segments, the picture of SHOT on the receiver's ingress (745 and
//!   9657). The test asserts that the kernel retransmits, which a local drop would not cause.
//!   The alternatives were a third namespace forwarding between two veths (more moving parts
//!   for the same effect) or a test-only drop rate in our production XDP program (a branch and
//!   a map lookup on the fast path for the sake of a test).
//!
//! Only TCP is dropped (ARP and ICMP pass), SYNs and FINs included. The programs are loaded
//! with libbpf-rs from `loss.bpf.o`, which build.rs compiles next to our XDP program; they are
//! attached with netlink tc hooks, detached (and the clsact qdisc removed) by a guard, and the
//! test checks that no filter is left before the namespaces go.
//!
//! # Rules kept
//!
//! Addresses from 198.18.0.0/15; traffic only inside the namespaces made here; unique names
//! (pid and a counter); every process started is ended by PID. No assertion is about time: the
//! only clocks are watchdogs (`STUCK` without progress, `HUNG` for a whole client run) that turn
//! a hang into a failure; the durations printed are for the reader.
//!
//! Needs root, `ip`, `ethtool`, `ping`, `ss` and `tc`. Outside CI, without them, each test prints
//! a loud NOT RUN and passes; with CI=true it fails instead. Run: `cargo test --test interop --
//! --test-threads=1` (the tests are independent, but 256 MB transfers side by side on two cores
//! only make each other slower).
#![cfg(all(feature = "afxdp", feature = "cli"))]

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddrV4, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod common;
#[path = "common/kernel.rs"]
mod kernel;

use common::{may_run, netns_exists, run, Lab, KDEV, KERNEL_IP, XTCP_IP, XTCP_MAC};
use kernel::*;
const ECHO_PORT: u16 = 7;
const DISCARD_PORT: u16 = 9;
const CHARGEN_PORT: u16 = 19;
const KERNEL_PORT: u16 = 9000;
/// A port nobody listens on, on either side.
const CLOSED_PORT: u16 = 4444;
const MB: usize = 1 << 20;
/// What the interop tests run besides the xtcp binary.
const TOOLS: &[&str] = &["ip", "ethtool", "ping", "ss", "tc"];

// ---------------------------------------------------------------------------------------------
// The tests.

/// Kernel client → `xtcp serve --app echo`: 1 B, 1 MB and 256 MB, each streamed while the echo
/// is read on another thread; half-close; the SHA-256 of what came back equals what was sent.
#[test]
fn interop_echo_server_kernel_client() {
    if !may_run("interop_echo_server_kernel_client", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    echo_server_kernel_client(&lab, SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(), &[1, MB, 256 * MB], 1000);
    let (csum, inerr) = lab.kernel(|| (kernel_snmp("Tcp", "InCsumErrors"), kernel_snmp("Tcp", "InErrs")));
    assert_eq!((csum, inerr), (0, 0), "the kernel refused segments from xtcp (checksum errors, errors)");
    lab.finish();
}

/// `xtcp client --send-bytes N` → a kernel echo server: 1 B, 1 MB, 256 MB; the client's
/// SHA-256 of what came back equals that of the pattern it sent.
#[test]
fn interop_xtcp_client_kernel_echo_server() {
    if !may_run("interop_xtcp_client_kernel_echo_server", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    xtcp_client_kernel_echo_server(&lab, SocketAddrV4::new(KERNEL_IP, KERNEL_PORT).into(), &[1, MB, 256 * MB]);
    lab.finish();
}

/// `xtcp client --zero-copy`: 64 MB sent from frames written in place (kept until the kernel
/// acknowledges them) and hashed where the echo arrived, over real AF_XDP rings.
#[test]
fn interop_zero_copy_client_kernel_echo_server() {
    if !may_run("interop_zero_copy_client_kernel_echo_server", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let n = 64 * MB;
    let server = kernel_server(&lab, KERNEL_PORT, 2, KernelApp::Echo);
    // The copying calls first, for comparison (printed, not asserted: timing is the bench's).
    let started = Instant::now();
    let copied = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), &["--send-bytes", &n.to_string()]);
    say(format!("xtcp client (copying) → kernel echo: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    copied.assert_success("xtcp client");
    assert_eq!(copied.line_stat("tx-in-place"), 0, "the copying client sends no frame in place");
    // Issue #15: copied segments are laid out with their headers at the frame's start, so
    // the AF_XDP device never moves one before it goes.
    assert_eq!(copied.device_stat("tx_realigned"), 0, "frames the device had to move before sending");
    let started = Instant::now();
    let end = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), &["--send-bytes", &n.to_string(), "--zero-copy"]);
    say(format!("xtcp client --zero-copy → kernel echo: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    end.assert_success("xtcp client --zero-copy");
    let (sha, received, sent) = end.client_result();
    assert_eq!((received, sent), (n, n));
    assert_eq!(sha, client_pattern_sha(n), "SHA-256 of the echo");
    let segs = (n / 1448) as u64;
    let (rx, tx) = (end.line_stat("rx-in-place"), end.line_stat("tx-in-place"));
    say(format!("in place: rx {rx} tx {tx} segments, copied {}", end.line_stat("tx-copied")));
    assert!(tx >= segs * 9 / 10, "most segments went out from the application's frames: {tx} of ~{segs}");
    assert!(rx > 0, "received payload was read in place");
    assert_eq!(end.line_stat("drops"), 0);
    let echoed = server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(echoed, vec![(n, client_pattern_sha(n)); 2]);
    lab.finish();
}

/// One-way transfers: 256 MB from the kernel into `xtcp serve --app discard` (counted by
/// xtcp), 256 MB of RFC 864 chargen from xtcp into the kernel (checked byte by byte), and
/// 256 MB from a kernel source into `xtcp client --recv-bytes` (hashed).
#[test]
fn interop_one_way_discard_chargen_source() {
    if !may_run("interop_one_way_discard_chargen_source", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let n = 256 * MB;

    // Kernel → xtcp discard.
    let server = lab.serve("discard", DISCARD_PORT);
    let started = Instant::now();
    let (back, _) = lab.kernel(move || kernel_send_and_receive(SocketAddrV4::new(XTCP_IP, DISCARD_PORT), 7, n));
    say(format!("kernel → xtcp discard: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!(back, 0, "discard sent something back");
    let end = server.terminate();
    end.assert_success("xtcp serve --app discard");
    assert_eq!(end.stat("bytes_in"), n as u64, "bytes xtcp's discard server counted");
    assert_eq!((end.stat("accepted"), end.stat("closed"), end.stat("tcp_resets")), (1, 1, 0));

    // xtcp chargen → kernel: read n bytes checking each, then half-close and read the rest to
    // xtcp's FIN (chargen closes once its peer has).
    let server = lab.serve("chargen", CHARGEN_PORT);
    let started = Instant::now();
    let total = lab.kernel(move || {
        let mut s = TcpStream::connect((XTCP_IP, CHARGEN_PORT)).expect("connect to chargen");
        watchdog(&s);
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        let mut shut = false;
        loop {
            let k = s.read(&mut buf).expect("reading chargen");
            if k == 0 {
                assert!(shut, "chargen closed before we did");
                return pos;
            }
            for &b in &buf[..k] {
                assert_eq!(b, chargen_byte(pos), "chargen byte {pos}");
                pos += 1;
            }
            if !shut && pos >= n as u64 {
                s.shutdown(Shutdown::Write).expect("shutdown");
                shut = true;
            }
        }
    });
    say(format!("xtcp chargen → kernel: {total} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    assert!(total >= n as u64);
    let end = server.terminate();
    end.assert_success("xtcp serve --app chargen");
    assert_eq!(end.stat("bytes_out"), total, "chargen's count of bytes sent against the kernel's of bytes read");
    assert_eq!((end.stat("closed"), end.stat("tcp_resets")), (1, 0));

    // Kernel source → xtcp client --recv-bytes.
    let server = kernel_server(&lab, KERNEL_PORT, 1, KernelApp::Source { seed: 99, n });
    let started = Instant::now();
    let end = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), &["--recv-bytes", &n.to_string()]);
    say(format!("kernel source → xtcp client: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    end.assert_success("xtcp client --recv-bytes");
    let (sha, received, sent) = end.client_result();
    assert_eq!((received, sent), (n, 0));
    assert_eq!(sha, prng_sha(99, n));
    let got = server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(got[0].0, 0, "the xtcp client sent nothing");
    lab.finish();
}

/// 1,000 sequential short connections from the kernel to `xtcp serve --app echo`: connect,
/// one request, its reply, half-close, EOF, close. Every one succeeds.
#[test]
fn interop_thousand_short_connections() {
    if !may_run("interop_thousand_short_connections", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let server = lab.serve("echo", ECHO_PORT);
    const CONNS: usize = 1000;
    let started = Instant::now();
    let ports = lab.kernel(|| kernel_short_connections(SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(), CONNS));
    say(format!("{CONNS} short connections in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!(ports, CONNS, "distinct client ports");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert_eq!((end.stat("accepted"), end.stat("closed")), (CONNS as u64, CONNS as u64));
    assert_eq!((end.stat("tcp_passive_opens"), end.stat("tcp_failed_opens"), end.stat("tcp_resets")), (1000, 0, 0));
    lab.finish();
}

/// Half-close both ways, with data that provably travels after the FIN:
/// * the kernel writes 48 KiB with a tiny receive buffer, shuts down writing, and waits
///   without reading until xtcp has acknowledged its FIN (FIN-WAIT-2): by then at most its
///   receive queue of echo has arrived; the rest must come from xtcp in CLOSE-WAIT.
/// * `xtcp client` sends 100 kB and shuts down writing (as it always does) to a kernel server
///   that only replies after reading EOF: every byte it receives follows its own FIN.
#[test]
fn interop_half_close_both_ways() {
    if !may_run("interop_half_close_both_ways", TOOLS) {
        return;
    }
    half_close_both_ways(
        "xint",
        SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(),
        SocketAddrV4::new(KERNEL_IP, KERNEL_PORT).into(),
    );
}

/// A closed port answers with a reset both ways: the kernel's connect() to xtcp fails with
/// ECONNREFUSED, and `xtcp client` to a kernel port with no listener exits non-zero, "Refused".
#[test]
fn interop_closed_ports_refuse() {
    if !may_run("interop_closed_ports_refuse", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let server = lab.serve("echo", ECHO_PORT);
    let err =
        lab.kernel(|| TcpStream::connect((XTCP_IP, CLOSED_PORT)).map(|_| ()).expect_err("connected to a closed port"));
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // The listener still works next to it.
    let (got, sha) = lab.kernel(|| kernel_send_and_receive(SocketAddrV4::new(XTCP_IP, ECHO_PORT), 3, 1000));
    assert_eq!((got, sha), (1000, prng_sha(3, 1000)));
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert!(end.stat("tcp_no_socket") >= 1 && end.stat("tcp_rsts_out") >= 1, "xtcp counted no reset:\n{}", end.stderr);

    let end = lab.client(SocketAddrV4::new(KERNEL_IP, CLOSED_PORT), &["--send-bytes", "10"]);
    assert!(!end.status.success(), "xtcp client to a closed port exited successfully:\n{}", end.stderr);
    assert!(end.stderr.contains("Refused"), "xtcp client did not say Refused:\n{}", end.stderr);
    assert!(end.line_stat("rst in") >= 1, "no reset counted by the xtcp client:\n{}", end.stderr);
    lab.finish();
}

/// ARP both ways and ping: `xtcp client` in a fresh lab must resolve the kernel's MAC
/// (its ARP request counted, the connection works, the kernel learnt xtcp's MAC from the
/// request); then the kernel, its neighbour table flushed, resolves xtcp's address and gets
/// 3 of 3 ping replies, and lists xtcp's MAC as a live neighbour.
#[test]
fn interop_ping_and_arp() {
    if !may_run("interop_ping_and_arp", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let neigh = || run("ip", &["-n", &lab.kns, "neigh", "show", &XTCP_IP.to_string(), "dev", KDEV]);
    assert!(neigh().trim().is_empty(), "a fresh lab already has a neighbour entry: {}", neigh());

    let server = kernel_server(&lab, KERNEL_PORT, 1, KernelApp::Echo);
    let end = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), &["--send-bytes", "1000"]);
    end.assert_success("xtcp client");
    assert_eq!(end.client_result().0, client_pattern_sha(1000));
    let arp = end.stderr.lines().rev().find_map(|l| l.split("arp req ").nth(1)).expect("arp figures");
    let out: u64 = arp.split('/').nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(out >= 1, "xtcp sent no ARP request, yet reached the kernel: {arp}");
    server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let learnt = neigh();
    say(format!("kernel's entry after xtcp's ARP request: {}", learnt.trim()));
    assert!(learnt.contains(XTCP_MAC), "the kernel did not learn xtcp's MAC from its ARP request: {learnt}");

    let server = lab.serve("echo", ECHO_PORT);
    run("ip", &["-n", &lab.kns, "neigh", "flush", "dev", KDEV]);
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.kns, "ping", "-n", "-c", "3", "-W", "5", &XTCP_IP.to_string()])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout).into_owned();
    say(text.trim());
    assert!(ping.status.success() && text.contains("3 received"), "ping did not get 3 replies:\n{text}");
    let entry = neigh();
    say(format!("kernel's entry after ping: {}", entry.trim()));
    assert!(entry.contains(XTCP_MAC), "xtcp's MAC not in the kernel's neighbour table: {entry}");
    assert!(
        ["REACHABLE", "STALE", "DELAY"].iter().any(|s| entry.contains(s)),
        "xtcp's neighbour entry is not live: {entry}"
    );
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert!(end.stat("arp_requests_in") >= 1 && end.stat("arp_replies_out") >= 1, "{}", end.stderr);
    assert!(end.stat("icmp_echo_in") >= 3 && end.stat("icmp_echo_out") >= 3, "{}", end.stderr);
    // And the other way: the stack's own echo requests (`xtcp ping`) to the kernel.
    xtcp_pings_kernel(&lab, KERNEL_IP.into());
    lab.finish();
}

/// Transfers under random loss of `share` of the TCP segments in both directions (see the
/// module docs for where the loss comes from):
/// * 1 MB through an echo each way (kernel client → xtcp echo, xtcp client → kernel echo):
///   data and ACKs are lost in both directions on one connection;
/// * `large` bytes one way each: `xtcp client --send-bytes` into a kernel sink (the kernel
///   hashes) and a kernel source into `xtcp client --recv-bytes` (xtcp hashes).
///
/// Checks the hashes, that frames were dropped both ways at about the configured rate, and
/// that both senders repaired losses (retransmitted): the kernel's retransmissions are what
/// show the drops on its egress to be losses to it, not local congestion.
fn transfers_under_loss(test: &str, share: f64, large: usize) {
    if !may_run(test, TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let loss = Loss::attach(&lab, share);
    let retrans_before = lab.kernel(|| kernel_snmp("Tcp", "RetransSegs"));
    let pct = share * 100.0;
    let timed = |what: &str, n: usize, started: Instant| {
        say(format!("{pct}% loss: {what}: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()))
    };

    let server = lab.serve("echo", ECHO_PORT);
    let started = Instant::now();
    let (got, sha) = lab.kernel(move || kernel_send_and_receive(SocketAddrV4::new(XTCP_IP, ECHO_PORT), 11, MB));
    timed("kernel → xtcp echo → kernel", MB, started);
    assert_eq!((got, sha), (MB, prng_sha(11, MB)), "the echo under loss");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    let server_retrans = end.stat("tcp_retransmits");
    assert_eq!((end.stat("accepted"), end.stat("closed"), end.stat("tcp_resets")), (1, 1, 0));

    let mut client_retrans = 0;
    let mut client = |args: &[&str], app: KernelApp| {
        let server = kernel_server(&lab, KERNEL_PORT, 1, app);
        let end = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), args);
        end.assert_success("xtcp client under loss");
        client_retrans += end.line_stat("retrans");
        let kernel = server.join().unwrap_or_else(|p| std::panic::resume_unwind(p)).remove(0);
        (end.client_result(), kernel)
    };
    let started = Instant::now();
    let ((sha, received, sent), kernel) = client(&["--send-bytes", &MB.to_string()], KernelApp::Echo);
    timed("xtcp client → kernel echo → xtcp", MB, started);
    assert_eq!((received, sent), (MB, MB));
    assert_eq!(sha, client_pattern_sha(MB), "the echo under loss");
    assert_eq!(kernel, (MB, client_pattern_sha(MB)), "what the kernel echoed");

    let started = Instant::now();
    let ((_, received, sent), kernel) = client(&["--send-bytes", &large.to_string()], KernelApp::Sink);
    timed("xtcp client → kernel sink", large, started);
    assert_eq!((received, sent), (0, large));
    assert_eq!(kernel, (large, client_pattern_sha(large)), "what the kernel received under loss");

    let started = Instant::now();
    let source = KernelApp::Source { seed: 12, n: large };
    let ((sha, received, sent), _) = client(&["--recv-bytes", &large.to_string()], source);
    timed("kernel source → xtcp client", large, started);
    assert_eq!((received, sent), (large, 0));
    assert_eq!(sha, prng_sha(12, large), "what xtcp received under loss");

    let kernel_retrans = lab.kernel(|| kernel_snmp("Tcp", "RetransSegs")) - retrans_before;
    let c = loss.counts();
    say(format!(
        "{pct}% loss: dropped {} of {} TCP frames to the kernel ({} with data), {} of {} to xtcp ({} with \
         data); retransmitted: kernel {kernel_retrans}, xtcp server {server_retrans}, xtcp clients {client_retrans}",
        c.to_kernel.1, c.to_kernel.0, c.data_dropped.0, c.to_xtcp.1, c.to_xtcp.0, c.data_dropped.1
    ));
    for (what, (seen, dropped)) in [("to the kernel", c.to_kernel), ("to xtcp", c.to_xtcp)] {
        // Thousands of segments: the share dropped is well inside a factor of two of the rate.
        let got = dropped as f64 / seen as f64;
        assert!(seen > 1000 && got > share / 2.0 && got < share * 2.0, "{what}: {dropped} of {seen} dropped");
    }
    // The kernel sends in GSO frames of up to 64 KB, a few hundred in all, and pure ACKs are
    // dropped too: at 1 % it happens that none of its data is lost. When some was, it must
    // have been sent again, or the drops were not losses to it.
    if c.data_dropped.1 > 0 {
        assert!(kernel_retrans > 0, "the kernel never retransmitted {} lost data frames", c.data_dropped.1);
    }
    assert!(c.data_dropped.0 > 0, "none of xtcp's data was dropped");
    assert!(server_retrans > 0 && client_retrans > 0, "xtcp never retransmitted");
    loss.remove();
    lab.finish();
}

// The large transfers are sized by xtcp as a sender under loss, which recovers from most losses
// by retransmission timeout (200 ms) against a Linux receiver: it fast-retransmits only on three
// duplicate ACKs that repeat the window (RFC 5681 §2, (e)), and Linux's duplicate ACKs carry a
// window that grows while its receive buffer autotunes. About 0.3 MB/s at 5 % loss here, where
// the kernel sends to xtcp at about 1 Gbit/s.

#[test]
fn interop_loss_1_percent() {
    transfers_under_loss("interop_loss_1_percent", 0.01, 16 * MB);
}

#[test]
fn interop_loss_5_percent() {
    transfers_under_loss("interop_loss_5_percent", 0.05, 8 * MB);
}

/// KNOWN BUG, ignored until fixed (`cargo test --test interop -- --ignored` shows it): when
/// Regression (found by this test, fixed): when `xtcp client` closed first, it ACKed the kernel's
/// FIN and then, in TIME-WAIT, sent a window update once the application had read the last data. The kernel's socket, closed by the
/// first ACK (LAST-ACK → CLOSED), answers the second with a reset. Linux sends no window update
/// once the peer has closed (tcp_cleanup_rbuf: "useless"). Whether the update goes out depends
/// on whether the last read comes after the ACK, so it happens on some closes, not all (1 to 3
/// of these 3 here). A normal close should leave the kernel with no reset to send.
#[test]
fn interop_no_reset_after_a_normal_close() {
    if !may_run("interop_no_reset_after_a_normal_close", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    let sizes = [1, MB, 16 * MB];
    let server = kernel_server(&lab, KERNEL_PORT, sizes.len(), KernelApp::Echo);
    let before = lab.kernel(|| kernel_snmp("Tcp", "OutRsts"));
    for &n in &sizes {
        let end = lab.client(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT), &["--send-bytes", &n.to_string()]);
        end.assert_success("xtcp client");
        assert_eq!(end.client_result().0, client_pattern_sha(n));
    }
    server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let resets = lab.kernel(|| kernel_snmp("Tcp", "OutRsts")) - before;
    assert_eq!(resets, 0, "the kernel answered {resets} segment(s) of {} normal closes with a reset", sizes.len());
    lab.finish();
}

/// The guards hold when a test fails half-way: with xtcp serving and the loss programs
/// attached, a panic leaves no process, no namespace and no program behind.
#[test]
fn interop_guards_clean_up_after_a_panic() {
    if !may_run("interop_guards_clean_up_after_a_panic", TOOLS) {
        return;
    }
    let made = Arc::new(Mutex::new(None));
    let body = {
        let made = Arc::clone(&made);
        move || {
            let lab = Lab::new("xint");
            let _loss = Loss::attach(&lab, 0.5);
            let server = lab.serve("echo", ECHO_PORT);
            *made.lock().unwrap() = Some((lab.xns.clone(), lab.kns.clone(), server.id()));
            panic!("deliberate panic with xtcp serving and loss attached (expected by this test)");
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    match result {
        Err(p) if p.downcast_ref::<&str>().is_some_and(|m| m.starts_with("deliberate panic")) => {}
        Err(p) => std::panic::resume_unwind(p),
        Ok(()) => unreachable!(),
    }
    let (xns, kns, pid) = made.lock().unwrap().clone().expect("the lab was made");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "xtcp (pid {pid}) outlived its guard");
    assert!(!netns_exists(&xns) && !netns_exists(&kns), "namespaces left behind: {xns} {kns}");
    let host = run("ip", &["-o", "link"]);
    assert!(!host.contains("xdp"), "an XDP program in the host namespace:\n{host}");
}
