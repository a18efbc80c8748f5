//! The AF_XDP backend against the Linux kernel, across a veth pair between two network
//! namespaces this test makes (and removes, in a drop guard, whatever happens).
//!
//! ```text
//!  netns <tag>-x                          netns <tag>-k
//!  xv0 02:00:c6:12:00:01  <── veth ──>    kv0 02:00:c6:12:00:02, 198.18.0.2/24
//!  AfXdpDevice, our XDP program;          the kernel: ping, a UDP socket
//!  "198.18.0.1" is the stack's only      (checksum offload off, so it fills in
//!  (not configured on the kernel)         every checksum)
//! ```
//!
//! The device is opened from a thread that entered `<tag>-x` with `setns(2)`: the interface
//! lookup, the XDP attachment and the socket bind all happen in the namespace of the calling
//! thread, and the device keeps working (and detaches correctly: the program hangs on a BPF
//! link fd) whichever thread uses or drops it. A child process started with `ip netns exec`
//! would work too, but would need a second binary and a way back for its findings; a thread
//! keeps it all in one test with plain Rust assertions. The kernel side is driven with
//! `ip netns exec <tag>-k ping` and a UDP socket opened from a thread inside `<tag>-k`.
//!
//! Needs root. Outside CI, without root, each test prints a loud NOT RUN line and passes;
//! with CI=true it fails instead.
#![cfg(feature = "afxdp")]

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{in_netns, may_run, netns_exists, run, Lab};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice, BindMode, XdpMode};
use xtcp::io::{Device, Frame};
use xtcp::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, IpProtocol, Ipv4Repr, L4Repr, MacAddr,
    NetRepr,
};

const OURS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const KERNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
const KERNEL_MAC: MacAddr = MacAddr([0x02, 0x00, 0xc6, 0x12, 0x00, 0x02]);
const UDP_PORT: u16 = 7777;
const KERNEL_UDP_PORT: u16 = 40000;

impl Lab {
    /// `ip -d link show DEV` in `ns`, which names the XDP program while one is attached.
    fn link_details(&self, ns: &str, dev: &str) -> String {
        run("ip", &["-n", ns, "-d", "link", "show", dev])
    }

    fn xdp_attached(&self) -> bool {
        self.link_details(&self.xns, "xv0").contains("prog/xdp")
    }
}

/// What the device side saw.
#[derive(Debug, Default)]
struct Seen {
    udp: Vec<(EthernetRepr, Ipv4Repr, u16, u16, Vec<u8>)>,
    arp_requests: u32,
    echo_requests: u32,
    other: u32,
    parse_errors: Vec<String>,
}

/// Answer ARP requests for OURS and ICMP echo requests to it, record UDP to it, until `stop`.
fn responder(dev: &mut AfXdpDevice, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut rx: Vec<Frame> = Vec::with_capacity(64);
    let mut tx: Vec<Frame> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if dev.rx_burst(&mut rx, 64) == 0 {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        for f in rx.drain(..) {
            // Test code: copy the frame out, so the reply can be built while reading it.
            let bytes = dev.frame(&f).to_vec();
            dev.recycle(f);
            let repr = match FrameRepr::parse(&bytes, dev.rx_checksum()) {
                Ok(r) => r,
                Err(e) => {
                    seen.lock().unwrap().parse_errors.push(format!("{e}: {}", hex(&bytes)));
                    continue;
                }
            };
            let reply = match repr.net {
                NetRepr::Arp(a) if a.operation == ArpOperation::Request && a.target_ip == OURS => {
                    seen.lock().unwrap().arp_requests += 1;
                    Some(FrameRepr {
                        eth: EthernetRepr { src: dev.mac(), dst: a.source_mac, ethertype: EtherType::Arp },
                        net: NetRepr::Arp(ArpRepr {
                            operation: ArpOperation::Reply,
                            source_mac: dev.mac(),
                            source_ip: OURS,
                            target_mac: a.source_mac,
                            target_ip: a.source_ip,
                        }),
                    })
                }
                NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(Icmpv4Repr::EchoRequest { ident, seq_no, data }) }
                    if ip.dst == OURS =>
                {
                    seen.lock().unwrap().echo_requests += 1;
                    Some(FrameRepr {
                        eth: EthernetRepr { src: dev.mac(), dst: repr.eth.src, ethertype: EtherType::Ipv4 },
                        net: NetRepr::Ipv4 {
                            ip: Ipv4Repr {
                                src: OURS,
                                dst: ip.src,
                                protocol: IpProtocol::Icmp,
                                payload_len: 0, // filled in by FrameRepr::emit
                                ttl: 64,
                                ident: 0,
                                dont_frag: false,
                                dscp_ecn: 0,
                            },
                            l4: L4Repr::Icmp(Icmpv4Repr::EchoReply { ident, seq_no, data }),
                        },
                    })
                }
                NetRepr::Ipv4 { ip, l4: L4Repr::Udp(u) } if ip.dst == OURS => {
                    seen.lock().unwrap().udp.push((repr.eth, ip, u.src_port, u.dst_port, u.payload.to_vec()));
                    None
                }
                _ => {
                    seen.lock().unwrap().other += 1;
                    None
                }
            };
            if let Some(reply) = reply {
                let mut t = dev.alloc_tx().expect("a free TX frame");
                let len = reply.emit(dev.buffer_mut(&t)).expect("emit reply");
                t.len = len as u32;
                tx.push(t);
            }
        }
        while !tx.is_empty() {
            dev.tx_burst(&mut tx);
            dev.flush();
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn afxdp_udp_arp_and_ping_against_the_kernel() {
    if !may_run("afxdp_udp_arp_and_ping_against_the_kernel", &["ip", "ethtool", "ping"]) {
        return;
    }
    let lab = Lab::new("xafx");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let device = {
        let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
        in_netns(&lab.xns, move || {
            let cfg = AfXdpConfig::new("xv0", &[OURS]);
            let mut dev = AfXdpDevice::open(&cfg, 0).unwrap_or_else(|e| panic!("opening AF_XDP on xv0: {e}"));
            let refusal = dev.zero_copy_refusal().unwrap_or("zero-copy not refused").to_string();
            // The descriptor an epoll loop waits on is this process's AF_XDP socket.
            let fd = std::os::fd::AsRawFd::as_raw_fd(&dev);
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("the device's fd is open");
            assert!(link.to_string_lossy().starts_with("socket:"), "fd {fd} is {link:?}");
            assert_eq!(std::os::fd::AsFd::as_fd(&dev).try_clone_to_owned().map(|_| ()).ok(), Some(()));
            ready_tx.send((dev.program().mode(), dev.bind_mode(), refusal, dev.mac(), dev.frame_capacity())).unwrap();
            responder(&mut dev, &stop, &seen);
            let report = (dev.xdp_counters().expect("counters"), dev.stats(), dev.socket_stats().expect("stats"));
            assert_eq!(dev.frames_held(), 0, "frames leaked by the responder");
            drop(dev); // closes the socket and detaches the program
            report
        })
    };
    let Ok((mode, bind, refusal, mac, capacity)) = ready_rx.recv() else {
        // The device thread died before it was ready: show its panic.
        std::panic::resume_unwind(device.join().unwrap_err());
    };
    println!("AF_XDP on veth: XDP {mode:?} mode, {bind:?} bind ({refusal}), MAC {mac}, {capacity}-byte frame buffers");
    assert_eq!(mac, OUR_MAC);
    assert_eq!(bind, BindMode::Copy, "veth has no zero-copy (AFXDP-NOTES.md)");
    assert_eq!(mode, XdpMode::Native, "veth supports native XDP");
    let details = lab.link_details(&lab.xns, "xv0");
    assert!(details.contains("prog/xdp"), "no XDP program on xv0 while the device is open:\n{details}");

    // Warm-up: the kernel ARPs for us, and the link may drop a first frame right after coming up.
    let ping = |count: &str| {
        Command::new("ip")
            .args(["netns", "exec", &lab.kns, "ping", "-n", "-c", count, "-W", "1", &OURS.to_string()])
            .output()
            .expect("ping")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ping("1").status.success() {
        assert!(Instant::now() < deadline, "no ping reply at all within 10 s");
    }
    let neigh = run("ip", &["-n", &lab.kns, "neigh", "show", &OURS.to_string(), "dev", "kv0"]);
    println!("kernel neighbour entry: {}", neigh.trim());
    assert!(neigh.contains(&OUR_MAC.to_string()), "the kernel did not learn our MAC from our ARP reply: {neigh}");

    // (a) UDP datagrams from a kernel socket arrive intact, checksums verified.
    let sent: Vec<Vec<u8>> = (0..5).map(|i| format!("xtcp over AF_XDP, datagram {i}").into_bytes()).collect();
    {
        let sent = sent.clone();
        in_netns(&lab.kns, move || {
            let s = UdpSocket::bind((KERNEL, KERNEL_UDP_PORT)).expect("bind");
            for d in &sent {
                s.send_to(d, (OURS, UDP_PORT)).expect("send_to");
            }
        })
        .join()
        .expect("UDP sender");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().udp.len() < sent.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }

    // (b) the kernel's ping gets our ICMP echo replies.
    let out = ping("3");
    let ping_text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", ping_text.trim());

    stop.store(true, Ordering::Relaxed);
    let (counters, stats, sock) = device.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    println!("XDP counters: {counters}");
    println!("device: {stats:?}");
    println!("socket: {sock:?}");

    let seen = seen.lock().unwrap();
    assert!(seen.parse_errors.is_empty(), "frames that did not parse: {:?}", seen.parse_errors);
    assert_eq!(seen.udp.len(), sent.len(), "UDP datagrams received: {:?}", seen.udp);
    for ((eth, ip, sport, dport, payload), want) in seen.udp.iter().zip(&sent) {
        assert_eq!((eth.src, eth.dst, eth.ethertype), (KERNEL_MAC, OUR_MAC, EtherType::Ipv4));
        assert_eq!((ip.src, ip.dst, ip.protocol), (KERNEL, OURS, IpProtocol::Udp));
        assert_eq!((*sport, *dport), (KERNEL_UDP_PORT, UDP_PORT));
        assert_eq!(payload, want);
    }
    assert!(out.status.success() && ping_text.contains("3 received"), "ping did not get 3 replies:\n{ping_text}");
    assert!(seen.arp_requests >= 1, "no ARP request reached the device");
    assert!(seen.echo_requests >= 4, "echo requests seen: {}", seen.echo_requests);
    let ours = sent.len() as u64 + u64::from(seen.echo_requests) + u64::from(seen.arp_requests);
    assert!(counters.redirected >= ours, "XDP redirected {} frames, the device saw {ours}", counters.redirected);
    assert_eq!(counters.no_socket, 0);
    assert!(stats.tx_frames >= u64::from(seen.echo_requests + seen.arp_requests));

    // (c) nothing left behind: no XDP program on the interface, and then no namespaces.
    let details = lab.link_details(&lab.xns, "xv0");
    assert!(!details.contains("prog/xdp"), "XDP still attached after the device was dropped:\n{details}");
    let names = (lab.xns.clone(), lab.kns.clone());
    drop(lab);
    assert!(!netns_exists(&names.0) && !netns_exists(&names.1), "namespaces left behind: {names:?}");
}

/// Drop guards hold when things go wrong: a failed bind, a panicking device thread, and a
/// panicking test body each leave no XDP program and no namespace behind.
#[test]
fn afxdp_guards_clean_up_when_things_go_wrong() {
    if !may_run("afxdp_guards_clean_up_when_things_go_wrong", &["ip", "ethtool", "ping"]) {
        return;
    }
    let names = Arc::new(Mutex::new(None));
    let body = {
        let names = Arc::clone(&names);
        move || {
            let lab = Lab::new("xafx");
            *names.lock().unwrap() = Some((lab.xns.clone(), lab.kns.clone()));

            // A bind that fails (the veth has one queue) after the program was attached.
            let failed = in_netns(&lab.xns, || AfXdpDevice::open(&AfXdpConfig::new("xv0", &[OURS]), 3).map(|_| ()))
                .join()
                .expect("thread");
            let err = failed.expect_err("binding queue 3 of a one-queue veth should fail");
            println!("expected failure: {err}");
            assert!(!lab.xdp_attached(), "a failed bind left the XDP program attached");

            // A thread that panics while its device is open.
            let (tx, rx) = mpsc::channel();
            let panicked = in_netns(&lab.xns, move || {
                let _dev = AfXdpDevice::open(&AfXdpConfig::new("xv0", &[OURS]), 0).expect("open");
                tx.send(()).unwrap();
                thread::sleep(Duration::from_millis(300)); // the main thread looks meanwhile
                panic!("deliberate panic with an AF_XDP device open (expected by this test)");
            });
            rx.recv().expect("device opened");
            assert!(lab.xdp_attached(), "no XDP program while the device is open");
            assert!(panicked.join().is_err(), "the device thread was meant to panic");
            assert!(!lab.xdp_attached(), "the XDP program survived a panic of its device's thread");

            panic!("deliberate panic with the namespaces up (expected by this test)");
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    let names = names.lock().unwrap().clone().expect("the lab was made");
    match result {
        Err(p) if p.downcast_ref::<&str>().is_some_and(|m| m.starts_with("deliberate panic with the namespaces")) => {}
        Err(p) => std::panic::resume_unwind(p),
        Ok(()) => unreachable!(),
    }
    assert!(!netns_exists(&names.0) && !netns_exists(&names.1), "namespaces left behind: {names:?}");
    let host = run("ip", &["-o", "link"]);
    assert!(!host.contains("prog/xdp"), "an XDP program in the host namespace:\n{host}");
}
