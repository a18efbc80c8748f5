//! The DPDK backend against the Linux kernel, and xtcp against xtcp with no kernel between
//! (issue 17, "Must show"): the `xtcp` binary with `--backend dpdk` in the interop lab of
//! tests/interop.rs (two namespaces of its own per test, a veth pair, removed by a drop guard).
//!
//! ```text
//!  netns xdk-<pid>-<n>-x                        netns xdk-<pid>-<n>-k
//!  xv0  <── veth ──>                             kv0 198.18.0.2/24, kernel sockets
//!  xtcp --backend dpdk --vdev net_af_packet0,iface=xv0      (an AF_PACKET socket on xv0)
//!                       --vdev net_af_xdp0,iface=xv0        (the PMD's own XDP program)
//! ```
//!
//! For each of the two PMDs: echo of 1 B, 1 MB and 256 MB from a kernel client with the SHA-256
//! compared, `xtcp client` through a kernel echo server (the same sizes), 1,000 sequential
//! short connections, half-close both ways, resets for closed ports both ways, ping both ways;
//! for af_packet also `serve --cores 2` on two queue pairs, each flow kept on one core. Then
//! `net_memif`: `xtcp serve` and `xtcp client` joined by shared memory (a unix socket to meet,
//! then rings in memory: no kernel on the data path), 1 MB and 256 MB echoed, and ping. And the
//! errors a user meets: a driver that does not exist, more cores than queue pairs.
//!
//! After each test: no namespace, veth or XDP program left (the af_xdp PMD removes its
//! program when its port goes), no memif socket file. The EAL runs without hugepages, PCI or
//! shared files (xtcp's default EAL arguments), so nothing of DPDK's is left either.
//!
//! Needs root, a build with `--features dpdk` (DPDK's PMDs from Debian's `dpdk` package, which
//! scripts/deps installs), `ip`, `ethtool`, `ping`, `ss`. Outside CI, without them, each test
//! prints a loud NOT RUN and passes; with CI=true it fails instead. Run: `cargo test --features
//! dpdk --test interop_dpdk -- --test-threads=1`.
#![cfg(all(feature = "dpdk", feature = "cli"))]

use std::io::ErrorKind;
use std::net::{SocketAddrV4, TcpStream};
use std::process::Command;

mod common;
#[path = "common/kernel.rs"]
mod kernel;

use common::{may_run, run, Lab, KDEV, KERNEL_IP, XDEV, XTCP_IP, XTCP_MAC};
use kernel::*;

const ECHO_PORT: u16 = 7;
const KERNEL_PORT: u16 = 9000;
const CLOSED_PORT: u16 = 4444;
const MB: usize = 1 << 20;
const TOOLS: &[&str] = &["ip", "ethtool", "ping", "ss"];

/// A lab whose xtcp runs on DPDK with the devargs `vdev` (on xv0).
fn lab(vdev: &str) -> Lab {
    let mut lab = Lab::new("xdk");
    lab.backend = vec!["--backend".into(), "dpdk".into(), "--vdev".into(), vdev.into()];
    // The PMDs take every frame off the link (af_xdp's own XDP program redirects them all),
    // not only xtcp's as our XDP program does: the kernel end's IPv6 chatter (router
    // solicitations, multicast listener reports, repeated for seconds after link-up) would
    // reach an IPv4-only xtcp as unsupported frames. These tests are IPv4: no IPv6 there.
    let off = format!("echo 1 > /proc/sys/net/ipv6/conf/{KDEV}/disable_ipv6");
    run("ip", &["netns", "exec", &lab.kns, "sh", "-c", &off]);
    lab
}

fn af_packet() -> String {
    format!("net_af_packet0,iface={XDEV}")
}

fn af_xdp() -> String {
    format!("net_af_xdp0,iface={XDEV}")
}

/// The kernel-facing set on one PMD.
fn echo_both_ways(test: &str, vdev: &str) {
    if !may_run(test, TOOLS) {
        return;
    }
    let lab = lab(vdev);
    let end = echo_server_kernel_client(&lab, SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(), &[1, MB, 256 * MB], 7000);
    assert!(end.stderr.contains("xtcp: DPDK port"), "xtcp did not run on DPDK:\n{}", end.stderr);
    let (csum, inerr) = lab.kernel(|| (kernel_snmp("Tcp", "InCsumErrors"), kernel_snmp("Tcp", "InErrs")));
    assert_eq!((csum, inerr), (0, 0), "the kernel refused segments from xtcp (checksum errors, errors)");
    xtcp_client_kernel_echo_server(&lab, SocketAddrV4::new(KERNEL_IP, KERNEL_PORT).into(), &[1, MB, 256 * MB]);
    lab.finish();
}

fn short_connections(test: &str, vdev: &str) {
    if !may_run(test, TOOLS) {
        return;
    }
    let lab = lab(vdev);
    let server = lab.serve("echo", ECHO_PORT);
    const CONNS: usize = 1000;
    let ports = lab.kernel(|| kernel_short_connections(SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(), CONNS));
    assert_eq!(ports, CONNS, "distinct client ports");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert_eq!((end.stat("accepted"), end.stat("closed")), (CONNS as u64, CONNS as u64));
    assert_eq!((end.stat("tcp_failed_opens"), end.stat("tcp_resets")), (0, 0));
    lab.finish();
}

fn half_close(test: &str, vdev: &str) {
    if !may_run(test, TOOLS) {
        return;
    }
    half_close_both_ways_in(
        lab(vdev),
        SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(),
        SocketAddrV4::new(KERNEL_IP, KERNEL_PORT).into(),
    );
}

/// Resets for closed ports both ways, and ping both ways (the kernel's of xtcp, ARP
/// resolved afresh; xtcp's own of the kernel).
fn resets_and_ping(test: &str, vdev: &str) {
    if !may_run(test, TOOLS) {
        return;
    }
    let lab = lab(vdev);
    let server = lab.serve("echo", ECHO_PORT);
    let err =
        lab.kernel(|| TcpStream::connect((XTCP_IP, CLOSED_PORT)).map(|_| ()).expect_err("connected to a closed port"));
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    run_ping(&lab, 3);
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert!(end.stat("tcp_no_socket") >= 1 && end.stat("tcp_rsts_out") >= 1, "xtcp counted no reset:\n{}", end.stderr);
    assert!(end.stat("icmp_echo_in") >= 3 && end.stat("icmp_echo_out") >= 3, "{}", end.stderr);
    assert!(end.stat("arp_requests_in") >= 1 && end.stat("arp_replies_out") >= 1, "{}", end.stderr);

    let end = lab.client(SocketAddrV4::new(KERNEL_IP, CLOSED_PORT), &["--send-bytes", "10"]);
    assert!(!end.status.success(), "xtcp client to a closed port exited successfully:\n{}", end.stderr);
    assert!(end.stderr.contains("Refused"), "xtcp client did not say Refused:\n{}", end.stderr);
    xtcp_pings_kernel(&lab, KERNEL_IP.into());
    lab.finish();
}

/// The number of a `key=N` word in one of xtcp's `--stats` lines.
fn value_in(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {line}: not a number"))
}

/// The kernel pings xtcp `n` times with its neighbour table flushed: all answered, and the
/// kernel has xtcp's MAC.
fn run_ping(lab: &Lab, n: u32) {
    common::run("ip", &["-n", &lab.kns, "neigh", "flush", "dev", KDEV]);
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.kns, "ping", "-n", "-c", &n.to_string(), "-W", "5", &XTCP_IP.to_string()])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout).into_owned();
    say(text.trim());
    assert!(ping.status.success() && text.contains(&format!("{n} received")), "ping did not get {n} replies:\n{text}");
    let entry = common::run("ip", &["-n", &lab.kns, "neigh", "show", &XTCP_IP.to_string(), "dev", KDEV]);
    assert!(entry.contains(XTCP_MAC), "xtcp's MAC not in the kernel's neighbour table: {entry}");
}

#[test]
fn interop_dpdk_af_packet_echo_both_ways() {
    echo_both_ways("interop_dpdk_af_packet_echo_both_ways", &af_packet());
}

#[test]
fn interop_dpdk_af_packet_thousand_short_connections() {
    short_connections("interop_dpdk_af_packet_thousand_short_connections", &af_packet());
}

#[test]
fn interop_dpdk_af_packet_half_close() {
    half_close("interop_dpdk_af_packet_half_close", &af_packet());
}

#[test]
fn interop_dpdk_af_packet_resets_and_ping() {
    resets_and_ping("interop_dpdk_af_packet_resets_and_ping", &af_packet());
}

#[test]
fn interop_dpdk_af_xdp_echo_both_ways() {
    echo_both_ways("interop_dpdk_af_xdp_echo_both_ways", &af_xdp());
}

#[test]
fn interop_dpdk_af_xdp_thousand_short_connections() {
    short_connections("interop_dpdk_af_xdp_thousand_short_connections", &af_xdp());
}

#[test]
fn interop_dpdk_af_xdp_half_close() {
    half_close("interop_dpdk_af_xdp_half_close", &af_xdp());
}

#[test]
fn interop_dpdk_af_xdp_resets_and_ping() {
    resets_and_ping("interop_dpdk_af_xdp_resets_and_ping", &af_xdp());
}

/// `serve --cores 2` on af_packet with two queue pairs (the kernel spreads frames over them by
/// its flow hash, the runtime hands each to its owner core): 200 kernel connections served,
/// by both cores, none reset.
#[test]
fn interop_dpdk_af_packet_two_cores() {
    if !may_run("interop_dpdk_af_packet_two_cores", TOOLS) {
        return;
    }
    let lab = lab(&format!("net_af_packet0,iface={XDEV},qpairs=2"));
    let mut server = lab.xtcp(&["serve", "--app", "echo", "--port", "7", "--cores", "2"]);
    server.wait_for_stderr("xtcp: serving");
    const CONNS: usize = 200;
    let ports = lab.kernel(|| kernel_short_connections(SocketAddrV4::new(XTCP_IP, ECHO_PORT).into(), CONNS));
    assert_eq!(ports, CONNS);
    let end = server.terminate();
    end.assert_success("xtcp serve --cores 2");
    let accepted: Vec<u64> = (0..2)
        .map(|c| {
            let line = end
                .stderr
                .lines()
                .find(|l| l.starts_with(&format!("xtcp: core {c} final:")))
                .unwrap_or_else(|| panic!("no final line of core {c}:\n{}", end.stderr));
            assert!(line.contains("rsts_out=0"), "core {c} sent resets: {line}");
            value_in(line, "accepted")
        })
        .collect();
    say(format!("accepted per core: {accepted:?}"));
    assert_eq!(accepted.iter().sum::<u64>(), CONNS as u64);
    assert!(accepted.iter().all(|&a| a > 0), "one core served every connection: {accepted:?}");
    lab.finish();
}

/// xtcp ↔ xtcp over `net_memif` (shared memory; the unix socket only introduces the two):
/// ping, then 1 MB and 256 MB through the echo, the client's SHA-256 of the echo that of what
/// it sent.
#[test]
fn interop_dpdk_memif_xtcp_to_xtcp() {
    if !may_run("interop_dpdk_memif_xtcp_to_xtcp", TOOLS) {
        return;
    }
    let lab = Lab::new("xdk");
    let sock = format!("/run/xtcp-memif-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let memif = |role: &str, mac: &str| format!("net_memif0,role={role},socket={sock},socket-abstract=no,mac={mac}");
    let server_ip = "198.18.1.1";
    let mut server = common::Xtcp::spawn_with(
        &lab.xns,
        &[
            "serve",
            "--backend",
            "dpdk",
            "--vdev",
            &memif("server", "02:00:c6:12:01:01"),
            "--app",
            "echo",
            "--port",
            "7",
        ],
        &[&format!("{server_ip}/24")],
    );
    server.wait_for_stderr("xtcp: serving");
    assert!(std::path::Path::new(&sock).exists(), "the memif server made no socket at {sock}");
    let client = |args: &[&str]| {
        let v = memif("client", "02:00:c6:12:01:02");
        let mut all = args.to_vec();
        all.extend_from_slice(&["--backend", "dpdk", "--vdev", &v]);
        common::Xtcp::spawn_with(&lab.xns, &all, &["198.18.1.2/24"]).wait()
    };
    let end = client(&["ping", server_ip, "-c", "3"]);
    end.assert_success("xtcp ping over memif");
    assert!(end.stdout.contains("3 packets transmitted, 3 received"), "{}", end.stdout);
    for n in [MB, 256 * MB] {
        let started = std::time::Instant::now();
        let end = client(&["client", "--connect", &format!("{server_ip}:7"), "--send-bytes", &n.to_string()]);
        end.assert_success("xtcp client over memif");
        say(format!("xtcp client → memif → xtcp echo: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
        let (sha, received, sent) = end.client_result();
        assert_eq!((received, sent), (n, n));
        assert_eq!(sha, client_pattern_sha(n), "the echo of {n} bytes over memif");
        assert_eq!(end.line_stat("drops"), 0, "the client dropped frames:\n{}", end.stderr);
    }
    let end = server.terminate();
    end.assert_success("xtcp serve over memif");
    assert_eq!(end.stat("accepted"), 2);
    assert_eq!(end.stat("tcp_resets"), 0);
    // The server made the socket; it removes it when its port goes.
    assert!(!std::path::Path::new(&sock).exists(), "memif socket {sock} left behind");
    lab.finish();
}

/// What a user gets wrong is said plainly: a driver that does not exist, more cores than the
/// port has queue pairs, --vdev without --backend dpdk.
#[test]
fn interop_dpdk_errors_are_clear() {
    if !may_run("interop_dpdk_errors_are_clear", TOOLS) {
        return;
    }
    let lab = Lab::new("xdk");
    let cases: [(&[&str], &str); 3] = [
        (&["ping", "198.18.0.2", "--backend", "dpdk", "--vdev", "net_nosuchpmd0,iface=xv0"], "probing"),
        (
            &[
                "serve",
                "--app",
                "echo",
                "--port",
                "7",
                "--cores",
                "2",
                "--backend",
                "dpdk",
                "--vdev",
                "net_af_packet0,iface=xv0",
            ],
            "queue pair",
        ),
        (&["ping", "198.18.0.2", "--vdev", "net_af_packet0,iface=xv0"], "--backend dpdk"),
    ];
    for (args, needle) in cases {
        let end = lab.xtcp(args).wait();
        assert!(!end.status.success(), "{args:?} succeeded:\n{}", end.stderr);
        assert!(end.stderr.contains(needle), "{args:?}: no {needle:?} in what xtcp said:\n{}", end.stderr);
        say(format!("{args:?}: {}", end.stderr.lines().last().unwrap_or("").trim()));
    }
    lab.finish();
}

/// Checksum offload where the PMD offers it: `net_tap` (a tap interface in xtcp's namespace,
/// the kernel's end of it given 198.18.6.2/24) verifies received checksums and fills in sent
/// TCP checksums. 16 MB echoed from a kernel client with its SHA-256, the kernel counted no
/// checksum error, and xtcp's device counters show both offloads at work: the stack left the
/// TCP checksums of its segments to the PMD and skipped verifying what the PMD had verified.
#[test]
fn interop_dpdk_tap_checksum_offload() {
    if !may_run("interop_dpdk_tap_checksum_offload", TOOLS) {
        return;
    }
    let lab = Lab::new("xdk");
    let mut server = common::Xtcp::spawn_with(
        &lab.xns,
        &["serve", "--backend", "dpdk", "--vdev", "net_tap0,iface=dtap0", "--app", "echo", "--port", "7"],
        &["198.18.6.1/24"],
    );
    server.wait_for_stderr("xtcp: serving");
    common::run("ip", &["-n", &lab.xns, "addr", "add", "198.18.6.2/24", "dev", "dtap0"]);
    common::run("ip", &["-n", &lab.xns, "link", "set", "dtap0", "up"]);
    let to: std::net::SocketAddr = "198.18.6.1:7".parse().unwrap();
    let n = 16 * MB;
    let (got, sha, csum_errors) = common::in_netns(&lab.xns, move || {
        let (got, sha) = kernel_send_and_receive(to, 77, n);
        (got, sha, kernel_snmp("Tcp", "InCsumErrors"))
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!((got, sha), (n, prng_sha(77, n)), "the echo over net_tap");
    assert_eq!(csum_errors, 0, "the kernel refused checksums xtcp left to the PMD");
    let end = server.terminate();
    end.assert_success("xtcp serve on net_tap");
    let line = end.stderr.lines().rev().find(|l| l.starts_with("xtcp: device ")).expect("a device line");
    say(line);
    assert!(value_in(line, "tx_l4_offloaded") > 1000, "TCP checksums were not left to the PMD: {line}");
    assert!(value_in(line, "rx_l4_verified") > 1000, "the PMD's verified checksums were not used: {line}");
    assert_eq!(end.stat("drop_bad_checksum"), 0);
    lab.finish();
}
