//! The raw AF_XDP ceiling (issue 6): every UDP datagram to our address goes straight back to
//! its sender, MACs, IPs and ports swapped in place in the received UMEM frame. No TCP, no
//! stack, no copy: what any stack on this backend can at best reach. ARP requests for our
//! address are answered too (in place), so a kernel peer can find us.
//!
//! Swapping source and destination leaves the IPv4 and UDP checksums valid (both are sums, and
//! the pseudo-header sums the two addresses), so nothing is recomputed. Nothing is verified
//! either: this measures the ring path, not a receiver.
//!
//! It busy-polls (one thread, every queue in turn) for `--seconds`, or until SIGINT/SIGTERM,
//! then prints packet rates, the XDP program's counters and the device and socket counters.
//!
//! ```sh
//! scripts/lab up
//! cargo build --release --example xdp_bounce
//! taskset -c 1 target/release/examples/xdp_bounce --netns xtcp-x1 --iface x1k --addr 198.18.1.1 --seconds 5 &
//! # a kernel UDP load from the peer namespace (any UDP sender works; this one counts replies):
//! taskset -c 0 target/release/examples/xdp_bounce client --netns xtcp-k1 --dst 198.18.1.1:9 --seconds 5
//! ```

use std::fs::File;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use nix::sched::{setns, CloneFlags};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice, BindModeRequest, XdpModeRequest};
use xtcp::io::{shutdown, Device, Frame};
use xtcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, FrameRepr, IpProtocol, Ipv4Packet,
    NetRepr, UdpPacket,
};

#[derive(Parser)]
#[command(about = "Bounce UDP over AF_XDP: the raw ceiling of the backend", args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Network namespace to enter first (e.g. xtcp-x1 from scripts/lab).
    #[arg(long)]
    netns: Option<String>,
    /// Interface to bind (e.g. x1k).
    #[arg(long)]
    iface: Option<String>,
    /// Our IPv4 address: UDP to it is bounced, ARP for it answered.
    #[arg(long)]
    addr: Option<Ipv4Addr>,
    /// Bind a socket on each of queues 0..N (a veth sender picks the queue).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Frames per rx/tx burst.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// UMEM frames per queue.
    #[arg(long, default_value_t = 4096)]
    frames: u32,
    /// Force generic (skb) XDP instead of native-then-generic.
    #[arg(long)]
    generic: bool,
    /// Force copy mode instead of zero-copy-then-copy.
    #[arg(long)]
    copy: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// A kernel UDP load for the bounce: send with a window of datagrams in flight per socket,
    /// count the replies.
    Client {
        #[arg(long)]
        netns: Option<String>,
        /// Where to send (the bounce's --addr, any port).
        #[arg(long)]
        dst: SocketAddrV4,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Kernel UDP sockets (a veth picks the queue per socket).
        #[arg(long, default_value_t = 4)]
        sockets: usize,
        /// Datagrams in flight per socket.
        #[arg(long, default_value_t = 32)]
        window: u32,
        /// UDP payload bytes.
        #[arg(long, default_value_t = 18)]
        size: usize,
    },
}

fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {ns}: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.cmd {
        Some(Cmd::Client { ref netns, dst, seconds, sockets, window, size }) => {
            client(netns.as_deref(), dst, seconds, sockets, window, size)
        }
        None => bounce(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdp_bounce: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a received frame is to the bounce.
enum Kind {
    /// UDP to us; the IPv4 header is this long.
    Udp {
        ihl: usize,
    },
    Arp(ArpRepr),
    Other,
}

fn classify(b: &[u8], ours: Ipv4Addr) -> Kind {
    let Ok(eth) = EthernetFrame::new_checked(b) else { return Kind::Other };
    match eth.ethertype() {
        EtherType::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Kind::Other };
            if ip.protocol() != IpProtocol::Udp || ip.dst_addr() != ours || ip.is_fragment() {
                return Kind::Other;
            }
            match UdpPacket::new_checked(ip.payload()) {
                Ok(_) => Kind::Udp { ihl: ip.header_len() },
                Err(_) => Kind::Other,
            }
        }
        EtherType::Arp => match ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p)) {
            Ok(a) if a.operation == ArpOperation::Request && a.target_ip == ours => Kind::Arp(a),
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// Turn a UDP datagram around in place. Checksums stay valid (see the module docs).
fn swap_udp(p: &mut [u8], ihl: usize) {
    const ETH: usize = 14;
    for i in 0..6 {
        p.swap(i, 6 + i); // destination and source MAC
    }
    for i in 0..4 {
        p.swap(ETH + 12 + i, ETH + 16 + i); // source and destination IPv4 address
    }
    let udp = ETH + ihl;
    p.swap(udp, udp + 2); // source and destination port
    p.swap(udp + 1, udp + 3);
}

struct Queue {
    dev: AfXdpDevice,
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    bounced: u64,
    arp_replies: u64,
    other: u64,
}

fn bounce(args: &Args) -> Result<(), String> {
    let (Some(iface), Some(ours)) = (args.iface.as_deref(), args.addr) else {
        return Err("--iface and --addr are needed (or the `client` subcommand)".into());
    };
    if let Some(ns) = &args.netns {
        enter_netns(ns)?;
    }
    let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
    let mut cfg = AfXdpConfig::new(iface, &[ours]);
    cfg.batch = args.batch;
    cfg.frame_count = args.frames;
    if args.generic {
        cfg.xdp_mode = XdpModeRequest::Generic;
    }
    if args.copy {
        cfg.bind_mode = BindModeRequest::Copy;
    }
    let devs = AfXdpDevice::open_queues(&cfg, args.queues).map_err(|e| e.to_string())?;
    let first = &devs[0];
    println!(
        "xdp_bounce: {iface} ({}), {} queue(s), XDP {:?} mode, {:?} bind{}; bouncing UDP to {ours} for {} s",
        first.mac(),
        devs.len(),
        first.program().mode(),
        first.bind_mode(),
        first.zero_copy_refusal().map(|r| format!(" (zero-copy refused: {r})")).unwrap_or_default(),
        args.seconds
    );
    let mut queues: Vec<Queue> = devs
        .into_iter()
        .map(|dev| Queue {
            dev,
            rx: Vec::with_capacity(args.batch),
            tx: Vec::with_capacity(args.batch * 2),
            bounced: 0,
            arp_replies: 0,
            other: 0,
        })
        .collect();

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let (mut first_frame, mut last_frame): (Option<Instant>, Option<Instant>) = (None, None);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for q in &mut queues {
            let Queue { dev, rx, tx, bounced, arp_replies, other } = q;
            if dev.rx_burst(rx, args.batch) > 0 {
                let now = Instant::now();
                first_frame.get_or_insert(now);
                last_frame = Some(now);
            }
            for mut f in rx.drain(..) {
                match classify(dev.frame(&f), ours) {
                    Kind::Udp { ihl } => {
                        let (off, len) = (f.offset as usize, f.len as usize);
                        swap_udp(&mut dev.buffer_mut(&f)[off..off + len], ihl);
                        tx.push(f);
                        *bounced += 1;
                    }
                    Kind::Arp(a) => {
                        let mac = dev.mac();
                        let reply = FrameRepr {
                            eth: EthernetRepr { src: mac, dst: a.source_mac, ethertype: EtherType::Arp },
                            net: NetRepr::Arp(ArpRepr {
                                operation: ArpOperation::Reply,
                                source_mac: mac,
                                source_ip: ours,
                                target_mac: a.source_mac,
                                target_ip: a.source_ip,
                            }),
                        };
                        let off = f.offset as usize;
                        match reply.emit(&mut dev.buffer_mut(&f)[off..]) {
                            Ok(n) => {
                                f.len = n as u32;
                                tx.push(f);
                                *arp_replies += 1;
                            }
                            Err(_) => dev.recycle(f),
                        }
                    }
                    Kind::Other => {
                        *other += 1;
                        dev.recycle(f);
                    }
                }
            }
            // Frames the TX ring had no room for stay in `tx` for the next round.
            if !tx.is_empty() {
                dev.tx_burst(tx);
            }
            dev.flush();
        }
    }
    let elapsed = start.elapsed();
    // Rates are over the time frames were arriving, so idle time before and after the load
    // does not dilute them.
    let busy = match (first_frame, last_frame) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => elapsed.as_secs_f64(),
    }
    .max(1e-9);

    let bounced: u64 = queues.iter().map(|q| q.bounced).sum();
    let rx: u64 = queues.iter().map(|q| q.dev.stats().rx_frames).sum();
    let tx: u64 = queues.iter().map(|q| q.dev.stats().tx_frames).sum();
    println!(
        "xdp_bounce: ran {:.2} s ({}), {:.2} s of it with traffic",
        elapsed.as_secs_f64(),
        if stop.load(Ordering::Relaxed) { "stopped by a signal" } else { "time up" },
        busy
    );
    println!(
        "  bounced {bounced} UDP ({:.0} pps); rx {rx} ({:.0} pps), tx {tx} ({:.0} pps); ARP replies {}; other {}",
        bounced as f64 / busy,
        rx as f64 / busy,
        tx as f64 / busy,
        queues.iter().map(|q| q.arp_replies).sum::<u64>(),
        queues.iter().map(|q| q.other).sum::<u64>(),
    );
    match queues[0].dev.xdp_counters() {
        Ok(c) => println!("  XDP program: {c}"),
        Err(e) => println!("  XDP program counters: {e}"),
    }
    for q in &queues {
        println!("  queue {}: {:?}", q.dev.queue(), q.dev.stats());
        if let Ok(s) = q.dev.socket_stats() {
            println!("  queue {} socket: {s:?}", q.dev.queue());
        }
    }
    // Dropping the devices closes the sockets and detaches the program.
    drop(queues);
    Ok(())
}

fn client(
    netns: Option<&str>,
    dst: SocketAddrV4,
    seconds: f64,
    sockets: usize,
    window: u32,
    size: usize,
) -> Result<(), String> {
    if let Some(ns) = netns {
        enter_netns(ns)?;
    }
    let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
    let mut socks = Vec::new();
    for _ in 0..sockets.max(1) {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
        s.connect(dst).map_err(|e| format!("connect {dst}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        socks.push((s, 0u32));
    }
    let payload = vec![0x5a_u8; size];
    let mut buf = [0u8; 2048];
    let (mut sent, mut received, mut lost) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut last_reply = start;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for (s, in_flight) in &mut socks {
            while *in_flight < window {
                match s.send(&payload) {
                    Ok(_) => {
                        sent += 1;
                        *in_flight += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
            loop {
                match s.recv(&mut buf) {
                    Ok(_) => {
                        received += 1;
                        *in_flight = in_flight.saturating_sub(1);
                        last_reply = Instant::now();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ECONNREFUSED and the like: an ICMP error came back; count it as lost.
                    Err(_) => break,
                }
            }
        }
        // Nothing back for a while: what is in flight is lost; open the windows again.
        if last_reply.elapsed() > Duration::from_millis(50) {
            for (_, in_flight) in &mut socks {
                lost += u64::from(*in_flight);
                *in_flight = 0;
            }
            last_reply = Instant::now();
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "client: {t:.2} s to {dst}, {} socket(s), window {window}, {size}-byte payloads: sent {sent} ({:.0} pps), \
         replies {received} ({:.0} pps), given up as lost {lost}",
        socks.len(),
        sent as f64 / t,
        received as f64 / t
    );
    Ok(())
}
