//! Interop with the Linux kernel over IPv6 (issue 13): the `xtcp` binary on AF_XDP, dual-stack
//! (198.18.0.1/24 and 2001:2::1/64, plus the link-local address its MAC gives), at one end of a
//! veth pair; the kernel at the other with 198.18.0.2/24 and 2001:2::2/64. The lab, the
//! guards and the kernel's helpers are tests/interop.rs's (tests/common): see there for how each
//! side is driven and the rules kept. Addresses from RFC 5180's 2001:2::/48 only.
//!
//! What is shown: echo both ways with SHA-256 (1 B, 1 MB, 256 MB to xtcp; 1 MB and 64 MB from
//! it), neighbour discovery both ways, `ping -6` to xtcp's global and link-local addresses and
//! `xtcp ping` to the kernel's,
//! half-close both ways, a reset for a closed port, 1,000 short connections, one xtcp server
//! answering an IPv4 and an IPv6 client at once, an IPv6-only xtcp, and 1 % loss both ways.
#![cfg(all(feature = "afxdp", feature = "cli"))]

use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream};
use std::process::Command;
use std::time::Instant;

mod common;
#[path = "common/kernel.rs"]
mod kernel;

use common::{may_run, run, Lab, Xtcp, KDEV, KERNEL_IP6, XTCP_IP, XTCP_IP6, XTCP_MAC};
use kernel::*;

const ECHO_PORT: u16 = 7;
const KERNEL_PORT: u16 = 9000;
const CLOSED_PORT: u16 = 4444;
const MB: usize = 1 << 20;
const TOOLS: &[&str] = &["ip", "ethtool", "ping", "ss", "tc"];

fn v6(ip: std::net::Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddrV6::new(ip, port, 0, 0).into()
}

/// xtcp's link-local address: fe80:: and the modified EUI-64 of its MAC (RFC 4291 App. A).
fn xtcp_link_local() -> String {
    let m: Vec<u8> = XTCP_MAC.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    let ll = xtcp::stack::link_local_from(xtcp::wire::MacAddr([m[0], m[1], m[2], m[3], m[4], m[5]]));
    ll.to_string()
}

/// Kernel client → `xtcp serve --app echo` over IPv6: 1 B, 1 MB and 256 MB, the echo's
/// SHA-256 equal to what was sent; the kernel refused nothing of xtcp's.
#[test]
fn interop_ipv6_echo_server_kernel_client() {
    if !may_run("interop_ipv6_echo_server_kernel_client", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let end = echo_server_kernel_client(&lab, v6(XTCP_IP6, ECHO_PORT), &[1, MB, 256 * MB], 2000);
    // TCP's counters are the same for both families (/proc/net/snmp); IPv6's own in snmp6.
    let (csum, inerr) = lab.kernel(|| (kernel_snmp("Tcp", "InCsumErrors"), kernel_snmp6("Ip6InHdrErrors")));
    assert_eq!((csum, inerr), (0, 0), "the kernel refused IPv6 packets from xtcp");
    assert_eq!(end.stat("ndp_invalid"), 0);
    lab.finish();
}

/// `xtcp client` → a kernel echo server over IPv6 (1 MB, 64 MB): xtcp resolves the kernel by
/// neighbour solicitation, and its hash of the echo is that of what it sent.
#[test]
fn interop_ipv6_xtcp_client_kernel_echo_server() {
    if !may_run("interop_ipv6_xtcp_client_kernel_echo_server", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    xtcp_client_kernel_echo_server(&lab, v6(KERNEL_IP6, KERNEL_PORT), &[MB, 64 * MB]);
    // The kernel learned xtcp's MAC from its solicitation (RFC 4861 §7.2.3).
    let neigh = run("ip", &["-n", &lab.kns, "-6", "neigh", "show", &XTCP_IP6.to_string(), "dev", KDEV]);
    say(format!("kernel's entry after xtcp's solicitation: {}", neigh.trim()));
    assert!(neigh.contains(XTCP_MAC), "the kernel did not learn xtcp's MAC: {neigh}");
    lab.finish();
}

/// `ping -6` from the kernel to xtcp's global and link-local addresses, each after the
/// kernel's neighbour entries were flushed: the kernel solicits, xtcp advertises, the echo
/// requests are answered.
#[test]
fn interop_ipv6_ping_and_neighbour_discovery() {
    if !may_run("interop_ipv6_ping_and_neighbour_discovery", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let server = lab.serve("echo", ECHO_PORT);
    let ll = xtcp_link_local();
    for target in [XTCP_IP6.to_string(), format!("{ll}%{KDEV}")] {
        run("ip", &["-n", &lab.kns, "-6", "neigh", "flush", "dev", KDEV]);
        let ping = Command::new("ip")
            .args(["netns", "exec", &lab.kns, "ping", "-6", "-n", "-c", "3", "-W", "5", &target])
            .output()
            .expect("ping -6");
        let text = String::from_utf8_lossy(&ping.stdout).into_owned();
        say(text.trim());
        assert!(ping.status.success() && text.contains("3 received"), "ping -6 {target}: not 3 replies:\n{text}");
    }
    let neigh = run("ip", &["-n", &lab.kns, "-6", "neigh", "show", "dev", KDEV]);
    say(format!("kernel's IPv6 neighbours: {}", neigh.trim()));
    assert!(neigh.contains(&ll) && neigh.contains(XTCP_MAC), "xtcp's link-local entry missing: {neigh}");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert!(end.stat("ndp_solicits_in") >= 2 && end.stat("ndp_adverts_out") >= 2, "{}", end.stderr);
    assert!(end.stat("icmp_echo_in") >= 6 && end.stat("icmp_echo_out") >= 6, "{}", end.stderr);
    assert_eq!(end.stat("ndp_invalid"), 0);
    // And the other way: the stack's own echo requests (`xtcp ping`), the kernel resolved by
    // neighbour solicitation first.
    xtcp_pings_kernel(&lab, KERNEL_IP6.into());
    lab.finish();
}

/// Half-close both ways over IPv6 (the shared test of tests/interop.rs).
#[test]
fn interop_ipv6_half_close_both_ways() {
    if !may_run("interop_ipv6_half_close_both_ways", TOOLS) {
        return;
    }
    half_close_both_ways("xin6", v6(XTCP_IP6, ECHO_PORT), v6(KERNEL_IP6, KERNEL_PORT));
}

/// A closed IPv6 port answers with a reset (ECONNREFUSED at the kernel), and 1,000 short
/// connections over IPv6 each carry a request and its echo.
#[test]
fn interop_ipv6_closed_port_and_short_connections() {
    if !may_run("interop_ipv6_closed_port_and_short_connections", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let server = lab.serve("echo", ECHO_PORT);
    let refused = lab.kernel(|| TcpStream::connect(v6(XTCP_IP6, CLOSED_PORT)).map(|_| ()).map_err(|e| e.kind()));
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));
    const CONNS: usize = 1000;
    let started = Instant::now();
    let done = lab.kernel(|| kernel_short_connections(v6(XTCP_IP6, ECHO_PORT), CONNS));
    say(format!("IPv6: {CONNS} short connections in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!(done, CONNS, "distinct client ports");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert_eq!((end.stat("accepted"), end.stat("closed")), (CONNS as u64, CONNS as u64));
    assert_eq!((end.stat("tcp_no_socket"), end.stat("tcp_rsts_out")), (1, 1), "one reset, for the closed port");
    lab.finish();
}

/// One `xtcp serve` answers an IPv4 and an IPv6 kernel client at the same time (16 MB each
/// through the echo).
#[test]
fn interop_dual_stack_server_answers_both_families_at_once() {
    if !may_run("interop_dual_stack_server_answers_both_families_at_once", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let server = lab.serve("echo", ECHO_PORT);
    let n = 16 * MB;
    let v4 = common::in_netns(&lab.kns, move || kernel_send_and_receive(SocketAddrV4::new(XTCP_IP, ECHO_PORT), 31, n));
    let v6 = common::in_netns(&lab.kns, move || kernel_send_and_receive(v6(XTCP_IP6, ECHO_PORT), 32, n));
    for (h, seed) in [(v4, 31), (v6, 32)] {
        let got = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        assert_eq!(got, (n, prng_sha(seed, n)), "the echo for seed {seed}");
    }
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert_eq!((end.stat("accepted"), end.stat("closed")), (2, 2));
    lab.finish();
}

/// An IPv6-only xtcp (`--ip 2001:2::1/64` alone): a kernel client's echo over IPv6 (1 MB,
/// SHA-256), `xtcp ping` to the kernel; no ARP from xtcp, and the kernel's IPv4 ping of the
/// address xtcp would have had goes unanswered.
#[test]
fn interop_ipv6_only_stack() {
    if !may_run("interop_ipv6_only_stack", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let v6_only = [format!("{XTCP_IP6}/64")];
    let v6_only: Vec<&str> = v6_only.iter().map(String::as_str).collect();
    let mut server = Xtcp::spawn_with(&lab.xns, &["serve", "--app", "echo", "--port", "7"], &v6_only);
    server.wait_for_stderr("xtcp: serving");
    let (got, sha) = lab.kernel(move || kernel_send_and_receive(v6(XTCP_IP6, ECHO_PORT), 51, MB));
    assert_eq!((got, sha), (MB, prng_sha(51, MB)), "the echo of an IPv6-only xtcp");
    let ping4 = Command::new("ip")
        .args(["netns", "exec", &lab.kns, "ping", "-n", "-c", "1", "-W", "1", &XTCP_IP.to_string()])
        .output()
        .expect("ping");
    assert!(!ping4.status.success(), "an IPv6-only xtcp answered an IPv4 ping");
    let end = server.terminate();
    end.assert_success("xtcp serve (IPv6 only)");
    assert_eq!((end.stat("arp_requests_out"), end.stat("arp_replies_out")), (0, 0), "ARP from an IPv6-only stack");
    assert_eq!((end.stat("accepted"), end.stat("closed")), (1, 1));
    let end = Xtcp::spawn_with(&lab.xns, &["ping", &KERNEL_IP6.to_string(), "-c", "3"], &v6_only).wait();
    end.assert_success("xtcp ping (IPv6 only)");
    assert!(end.stdout.contains("3 received"), "{}", end.stdout);
    lab.finish();
}

/// Transfers over IPv6 under 1 % random loss of TCP segments both ways (bpf/loss.bpf.c, as in
/// tests/interop.rs): a 1 MB echo from a kernel client, 16 MB from `xtcp client` into a kernel
/// sink and 16 MB from a kernel source into `xtcp client`. Every hash holds, frames were
/// dropped both ways, both senders retransmitted. (The kernel sends in GSO bursts that the
/// loss program sees, and drops, whole: 1 MB alone may lose none of its.)
#[test]
fn interop_ipv6_loss_1_percent() {
    if !may_run("interop_ipv6_loss_1_percent", TOOLS) {
        return;
    }
    let lab = Lab::new("xin6");
    let loss = Loss::attach(&lab, 0.01);
    let retrans_before = lab.kernel(|| kernel_snmp("Tcp", "RetransSegs"));
    let server = lab.serve("echo", ECHO_PORT);
    let started = Instant::now();
    let (got, sha) = lab.kernel(move || kernel_send_and_receive(v6(XTCP_IP6, ECHO_PORT), 41, MB));
    say(format!("IPv6, 1% loss: kernel → xtcp echo → kernel: {MB} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!((got, sha), (MB, prng_sha(41, MB)), "the echo under loss");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    let server_retrans = end.stat("tcp_retransmits");

    let n = 16 * MB;
    let sink = kernel_server(&lab, KERNEL_PORT, 1, KernelApp::Sink);
    let started = Instant::now();
    let end = lab.client(v6(KERNEL_IP6, KERNEL_PORT), &["--send-bytes", &n.to_string()]);
    say(format!("IPv6, 1% loss: xtcp client → kernel sink: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    end.assert_success("xtcp client under loss");
    let client_retrans = end.line_stat("retrans");
    let kernel = sink.join().unwrap_or_else(|p| std::panic::resume_unwind(p)).remove(0);
    assert_eq!(kernel, (n, client_pattern_sha(n)), "what the kernel received under loss");

    let source = kernel_server(&lab, KERNEL_PORT, 1, KernelApp::Source { seed: 42, n });
    let started = Instant::now();
    let end = lab.client(v6(KERNEL_IP6, KERNEL_PORT), &["--recv-bytes", &n.to_string()]);
    say(format!("IPv6, 1% loss: kernel source → xtcp client: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
    end.assert_success("xtcp client under loss");
    let (sha, received, sent) = end.client_result();
    assert_eq!((received, sent), (n, 0));
    assert_eq!(sha, prng_sha(42, n), "what xtcp received under loss");
    source.join().unwrap_or_else(|p| std::panic::resume_unwind(p));

    let kernel_retrans = lab.kernel(|| kernel_snmp("Tcp", "RetransSegs")) - retrans_before;
    let c = loss.counts();
    say(format!(
        "IPv6, 1% loss: dropped {} of {} TCP frames to the kernel ({} with data), {} of {} to xtcp ({} with data); \
         retransmitted: kernel {kernel_retrans}, xtcp server {server_retrans}, xtcp client {client_retrans}",
        c.to_kernel.1, c.to_kernel.0, c.data_dropped.0, c.to_xtcp.1, c.to_xtcp.0, c.data_dropped.1
    ));
    assert!(c.to_kernel.1 > 0 && c.to_xtcp.1 > 0, "no IPv6 frame was dropped one way: {c:?}");
    assert!(c.data_dropped.0 > 0 && client_retrans > 0, "xtcp's data was not dropped, or not repaired: {c:?}");
    // The kernel's data goes in a few hundred GSO frames: at 1 % none may be lost. If some was,
    // it must have been sent again.
    if c.data_dropped.1 > 0 {
        assert!(kernel_retrans > 0, "the kernel never retransmitted {} lost data frames", c.data_dropped.1);
    }
    loss.remove();
    lab.finish();
}
