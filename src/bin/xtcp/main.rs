//! `xtcp`: servers and diagnostics on the xtcp stack.
//!
//! * `xtcp serve`: a server (echo, discard, chargen, HTTP, sockperf) on an interface, over AF_XDP
//!   (or a DPDK port: `--backend dpdk --vdev DEVARGS`, with the `dpdk` feature).
//! * `xtcp client`: connect, send and receive byte counts, print the SHA-256 of what came back.
//! * `xtcp decode FILE`: print each frame of a pcap (or `NAME HEX` fixture) file as xtcp's
//!   wire layer reads it, with the reason for every frame it refuses.
//! * `xtcp synflood`: SYNs from a spoofed address as fast as AF_XDP sends them, to test a
//!   server's SYN-flood defences (our own, or the kernel's) in a lab; nothing else.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use xtcp::io::pcap::PcapReader;
use xtcp::wire::{FrameRepr, RxChecksum};

mod dpdk_dev;

#[derive(Parser)]
#[command(name = "xtcp", version, about = "Servers and diagnostics on the xtcp kernel-bypass TCP/IP stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an application on an interface, over AF_XDP (or DPDK: --backend dpdk).
    #[cfg(feature = "afxdp")]
    Serve(net::ServeArgs),
    /// Connect to a server, send and receive, print the SHA-256 of what was received.
    #[cfg(feature = "afxdp")]
    Client(net::ClientArgs),
    /// Send ICMP (or ICMPv6) echo requests from the stack and print the replies, like ping(8).
    #[cfg(feature = "afxdp")]
    Ping(net::PingArgs),
    /// Flood a server in the lab with SYNs from a spoofed address, over AF_XDP, to test its
    /// SYN-flood defences. Use only addresses of a lab of your own (198.18.0.0/15).
    #[cfg(feature = "afxdp")]
    Synflood(net::FloodArgs),
    /// Decode frames from a pcap file or a hex fixture file with xtcp's wire layer.
    Decode {
        /// A pcap file (Ethernet), or a text file of `NAME HEX` lines (tests/fixtures/*.hex).
        file: PathBuf,
        /// Checksum policy for received frames.
        #[arg(long, value_enum, default_value_t = Checksums::Verify)]
        checksums: Checksums,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Checksums {
    /// Verify every checksum.
    Verify,
    /// Trust TCP/UDP/ICMP checksums (veth peers with offload on leave them partial).
    TrustL4,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "afxdp")]
        Command::Serve(a) => net::serve(a),
        #[cfg(feature = "afxdp")]
        Command::Client(a) => net::client(a),
        #[cfg(feature = "afxdp")]
        Command::Ping(a) => net::ping(a),
        #[cfg(feature = "afxdp")]
        Command::Synflood(a) => net::synflood(a),
        Command::Decode { file, checksums } => {
            let rx = match checksums {
                Checksums::Verify => RxChecksum::Verify,
                Checksums::TrustL4 => RxChecksum::TrustL4,
            };
            decode(&file, rx).map_err(|e| format!("decode: {}: {e}", file.display()))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtcp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options shared by the commands that run the stack on an interface.
#[derive(Args, Clone)]
#[cfg_attr(not(feature = "afxdp"), allow(dead_code))]
struct NetArgs {
    /// The interface to run on (its frames for our address go to xtcp, the rest to the
    /// kernel). With --backend dpdk, the interface of the default --vdev.
    #[arg(long, required_unless_present = "vdev")]
    iface: Option<String>,
    /// Where frames come from: afxdp (AF_XDP sockets and xtcp's XDP program), or dpdk (a
    /// DPDK poll-mode driver's port: --vdev; needs a build with the `dpdk` feature).
    #[arg(long, value_enum, default_value_t = Backend::Afxdp)]
    backend: Backend,
    /// The DPDK device (--backend dpdk), as DPDK's devargs: net_af_packet0,iface=IF (the
    /// default, on --iface), net_af_xdp0,iface=IF, net_memif0,role=server,socket=PATH, …
    #[arg(long)]
    vdev: Option<String>,
    /// DPDK EAL arguments (--backend dpdk), split at spaces; they replace xtcp's defaults
    /// (no hugepages, 256 MiB, no PCI, no shared files, one lcore on the process's CPUs).
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// Our address and prefix, e.g. 198.18.1.1/24 or 2001:2::1/64; given again, more
    /// addresses (dual stack; IPv6 addresses alone make an IPv6-only stack; the first IPv6
    /// address's prefix is the on-link one). With an IPv6 address the stack also has the
    /// link-local address its MAC gives.
    #[arg(long, value_parser = parse_cidr, required = true)]
    ip: Vec<(std::net::IpAddr, u8)>,
    /// Next hop for destinations off the subnet.
    #[arg(long)]
    gateway: Option<std::net::Ipv4Addr>,
    /// Cores to run on (`serve` only): one pinned loop and one stack per core, core i on rx
    /// queue i, flows steered to their owner core. The interface needs at least this many
    /// queues (`scripts/lab up --queues N`).
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Spin on the rings instead of sleeping in poll(2) when idle (lower latency, a full core).
    #[arg(long)]
    busy_poll: bool,
    /// Where our XDP program runs.
    #[arg(long, value_enum, default_value_t = XdpMode::Native)]
    xdp_mode: XdpMode,
    /// Record every frame sent and received to this pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print counters every second and at the end.
    #[arg(long)]
    stats: bool,
    /// SYN cookies (RFC 4987): off, when-full (when a listener's SYN queue is full: Linux's
    /// default, tcp_syncookies=1), or always.
    #[arg(long, value_enum, default_value_t = SynCookies::WhenFull)]
    syn_cookies: SynCookies,
    #[command(flatten)]
    tcp: TcpArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Backend {
    Afxdp,
    Dpdk,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum SynCookies {
    Off,
    WhenFull,
    Always,
}

/// TCP settings of every connection (defaults as Linux's).
#[derive(Args, Clone)]
#[cfg_attr(not(feature = "afxdp"), allow(dead_code))]
struct TcpArgs {
    /// Congestion control: cubic (RFC 9438 with HyStart++, Linux's default), reno, or bbr
    /// (BBR v1, paced, as Linux's tcp_bbr).
    #[arg(long, default_value = "cubic")]
    cc: xtcp::tcp::cc::Algorithm,
    /// Send buffer of each connection when it opens, bytes (default: the stack's, 64 KiB).
    /// A sender that the buffer holds back while its congestion window has room gets twice
    /// the window, up to --send-buffer-max, as Linux grows its buffer (net.ipv4.tcp_wmem).
    #[arg(long)]
    send_buffer: Option<usize>,
    /// The most a send buffer grows to, bytes (Linux's tcp_wmem maximum, 4 MiB); at or below
    /// --send-buffer the buffer keeps its size (as SO_SNDBUF).
    #[arg(long, default_value_t = 4 << 20)]
    send_buffer_max: usize,
    /// Receive buffer of each connection, bytes (default: the stack's, 64 KiB); sets the
    /// window scale (RFC 7323 §2.3).
    #[arg(long)]
    recv_buffer: Option<usize>,
    /// ECN (RFC 3168): off, passive (agree when the peer asks, Linux's default) or on (ask).
    #[arg(long, value_enum, default_value_t = Ecn::Passive)]
    ecn: Ecn,
    /// Lower bound of the retransmission timeout, ms (Linux: 200; datacenters use 1-5).
    #[arg(long, default_value_t = 200)]
    rto_min_ms: u64,
    /// Upper bound of the retransmission timeout, ms (Linux: 120000).
    #[arg(long, default_value_t = 120_000)]
    rto_max_ms: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Ecn {
    Off,
    Passive,
    On,
}

#[cfg_attr(not(feature = "afxdp"), allow(dead_code))]
impl TcpArgs {
    /// Apply to a connection's settings; out-of-range RTO bounds are refused here (the stack
    /// refuses them too, with a typed error).
    fn apply(&self, tcp: &mut xtcp::tcp::TcpConfig) -> Result<(), String> {
        use xtcp::time::Duration;
        tcp.congestion = self.cc;
        if let Some(b) = self.send_buffer {
            tcp.send_buffer = b;
        }
        tcp.send_buffer_max = self.send_buffer_max;
        if let Some(b) = self.recv_buffer {
            tcp.recv_buffer = b;
        }
        tcp.ecn = match self.ecn {
            Ecn::Off => xtcp::tcp::EcnMode::Off,
            Ecn::Passive => xtcp::tcp::EcnMode::Passive,
            Ecn::On => xtcp::tcp::EcnMode::On,
        };
        if self.rto_min_ms == 0 || self.rto_min_ms > self.rto_max_ms || self.rto_max_ms > 3_600_000 {
            return Err(format!(
                "--rto-min-ms {} --rto-max-ms {}: need 1 <= min <= max <= 3600000",
                self.rto_min_ms, self.rto_max_ms
            ));
        }
        tcp.min_rto = Duration::from_millis(self.rto_min_ms);
        tcp.max_rto = Duration::from_millis(self.rto_max_ms);
        tcp.initial_rto = tcp.initial_rto.clamp(tcp.min_rto, tcp.max_rto);
        Ok(())
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum XdpMode {
    /// In the driver; falls back to skb mode (reported) if the driver refuses.
    Native,
    /// Generic (skb) mode.
    Skb,
}

fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (a, p) = s.split_once('/').ok_or("expected ADDR/PREFIX, e.g. 198.18.1.1/24 or 2001:2::1/64")?;
    let addr: std::net::IpAddr = a.parse().map_err(|e| format!("{a}: {e}"))?;
    let prefix: u8 = p.parse().map_err(|e| format!("{p}: {e}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("prefix {prefix} is over {max}"));
    }
    Ok((addr, prefix))
}

impl NetArgs {
    /// The interface named by --iface ("" when only --vdev was given).
    fn iface(&self) -> &str {
        self.iface.as_deref().unwrap_or("")
    }

    /// The first IPv4 address and its prefix (the stack's primary address).
    /// The first IPv4 address and its prefix; `None`: an IPv6-only stack.
    fn ipv4(&self) -> Option<(std::net::Ipv4Addr, u8)> {
        self.ip.iter().find_map(|&(a, p)| match a {
            std::net::IpAddr::V4(v4) => Some((v4, p)),
            _ => None,
        })
    }
}

#[cfg(feature = "afxdp")]
mod net {
    use super::{NetArgs, XdpMode};
    use clap::{Args, ValueEnum};
    use std::io::BufWriter;
    use std::net::SocketAddrV4;
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use xtcp::apps::{AppKind, Client, Server};
    use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice, XdpModeRequest};
    use xtcp::io::pcap::PcapTap;
    use xtcp::io::{shutdown, Device};
    use xtcp::stack::{Stack, StackConfig};
    use xtcp::tcp::CloseReason;
    use xtcp::time::{Clock, Duration, Instant};

    #[derive(Args)]
    pub struct ServeArgs {
        #[command(flatten)]
        net: NetArgs,
        /// What to serve.
        #[arg(long, value_enum)]
        app: App,
        /// The port to listen on.
        #[arg(long)]
        port: u16,
        /// Bytes in each HTTP response body (--app http).
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        /// Room in the SYN and accept queues.
        #[arg(long, default_value_t = 1024)]
        backlog: usize,
    }

    #[derive(Args)]
    pub struct ClientArgs {
        #[command(flatten)]
        net: NetArgs,
        /// The server, ADDR:PORT.
        #[arg(long)]
        connect: std::net::SocketAddr,
        /// Bytes to send (a repeating a..z pattern), then shut down writing.
        #[arg(long, default_value_t = 0)]
        send_bytes: usize,
        /// Stop after receiving this many bytes (default: until the server closes).
        #[arg(long)]
        recv_bytes: Option<usize>,
        /// Use the zero-copy calls: write what is sent into frames of the device in place,
        /// hash what is received where it arrived.
        #[arg(long)]
        zero_copy: bool,
    }

    #[derive(Args)]
    pub struct PingArgs {
        #[command(flatten)]
        net: NetArgs,
        /// Where to send echo requests: an IPv4 address, or an IPv6 one (with an IPv6 --ip).
        dest: std::net::IpAddr,
        /// Requests to send.
        #[arg(long, short = 'c', default_value_t = 3)]
        count: u16,
        /// Milliseconds between requests.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// Seconds to wait for replies after the last request.
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum App {
        Echo,
        Discard,
        Chargen,
        Http,
        /// The server side of sockperf's TCP ping-pong and throughput modes.
        Sockperf,
    }

    /// `$body` with `$dev` bound to device `$d`, or to `$d` behind the pcap tap with --pcap
    /// (two types, so the body is expanded for each).
    macro_rules! with_tap {
        ($d:expr, $net:expr, $dev:ident => $body:expr) => {
            match &$net.pcap {
                Some(path) => {
                    let $dev = tap($d, path)?;
                    $body
                }
                None => {
                    let $dev = $d;
                    $body
                }
            }
        };
    }

    /// Open the device `$net` asks for (its backend; the pcap tap with --pcap) as `$dev`, and
    /// evaluate `$body` with it: the loops are generic over the device, monomorphised per
    /// backend.
    macro_rules! on_device {
        ($net:expr, $dev:ident => $body:expr) => {{
            let net: &NetArgs = $net;
            match net.backend {
                super::Backend::Afxdp => with_tap!(open(net)?, net, $dev => $body),
                #[cfg(not(feature = "dpdk"))]
                super::Backend::Dpdk => Err(crate::dpdk_dev::MISSING.to_string()),
                #[cfg(feature = "dpdk")]
                super::Backend::Dpdk => with_tap!(crate::dpdk_dev::open(net)?, net, $dev => $body),
            }
        }};
    }

    fn afxdp_config(net: &NetArgs) -> AfXdpConfig {
        let addrs: Vec<std::net::IpAddr> = net.ip.iter().map(|&(a, _)| a).collect();
        let mut cfg = AfXdpConfig::new(net.iface(), &addrs);
        cfg.xdp_mode = match net.xdp_mode {
            XdpMode::Native => XdpModeRequest::Auto,
            XdpMode::Skb => XdpModeRequest::Generic,
        };
        cfg
    }

    fn open(net: &NetArgs) -> Result<AfXdpDevice, String> {
        if net.cores != 1 {
            return Err(format!("--cores {}: `client` runs on one core (--cores 1)", net.cores));
        }
        if net.vdev.is_some() || net.eal.is_some() {
            return Err("--vdev and --eal are for --backend dpdk".into());
        }
        let cfg = afxdp_config(net);
        let dev = AfXdpDevice::open(&cfg, 0).map_err(|e| explain(net.iface(), e))?;
        steer_link_local(&dev, net)?;
        eprintln!(
            "xtcp: {} queue 0: XDP {:?} mode, socket bound in {:?} mode{}",
            net.iface(),
            dev.program().mode(),
            dev.bind_mode(),
            dev.zero_copy_refusal().map(|r| format!(" (zero-copy refused: {r})")).unwrap_or_default()
        );
        Ok(dev)
    }

    /// Turn the system's answer into what the user should do about it.
    fn explain(iface: &str, e: xtcp::io::afxdp::Error) -> String {
        match e.raw_os_error() {
            Some(libc::ENODEV) => format!("no interface {iface} in this network namespace ({e})"),
            Some(libc::EPERM) | Some(libc::EACCES) => {
                format!("permission denied: XDP and AF_XDP need root (or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF) ({e})")
            }
            Some(libc::EBUSY) | Some(libc::EEXIST) => {
                format!("{iface} is already in use by another XDP program or AF_XDP socket (another xtcp?) ({e})")
            }
            _ => format!("{iface}: {e}"),
        }
    }

    /// With IPv6, the XDP program steers the link-local address (from the interface's MAC,
    /// known once the device is open) too.
    fn steer_link_local(dev: &AfXdpDevice, net: &NetArgs) -> Result<(), String> {
        if net.ip.iter().any(|(a, _)| a.is_ipv6()) {
            let ll = xtcp::stack::link_local_from(xtcp::io::Device::mac(dev));
            dev.program().add_addr(ll).map_err(|e| format!("steering {ll}: {e}"))?;
        }
        Ok(())
    }

    fn stack_config(net: &NetArgs) -> Result<StackConfig, String> {
        // The secret keys ISNs (RFC 6528), SYN cookies and port choice (RFC 6056): from the
        // OS's entropy, or no start at all (an all-zero secret makes them all guessable).
        let secret =
            xtcp::stack::os_secret().map_err(|e| format!("no entropy from the OS for the stack's secret: {e}"))?;
        // Without an IPv4 address, an IPv6-only stack (StackConfig::new_ipv6).
        let (ip, prefix) = net.ipv4().unwrap_or((std::net::Ipv4Addr::UNSPECIFIED, 0));
        let mut cfg = StackConfig::new(ip, prefix, secret);
        for &(a, p) in &net.ip {
            match a {
                std::net::IpAddr::V4(v4) if v4 != ip => cfg.extra_ips.push(v4),
                std::net::IpAddr::V4(_) => {}
                std::net::IpAddr::V6(v6) => {
                    if cfg.ipv6.is_empty() {
                        cfg.ipv6_prefix_len = p;
                    }
                    cfg.ipv6.push(v6);
                }
            }
        }
        cfg.gateway = net.gateway;
        cfg.max_sockets = 65536;
        cfg.syn_cookies = match net.syn_cookies {
            super::SynCookies::Off => xtcp::stack::SynCookieMode::Off,
            super::SynCookies::WhenFull => xtcp::stack::SynCookieMode::WhenFull,
            super::SynCookies::Always => xtcp::stack::SynCookieMode::Always,
        };
        net.tcp.apply(&mut cfg.tcp)?;
        Ok(cfg)
    }

    pub fn serve(a: ServeArgs) -> Result<ExitCode, String> {
        let kind = match a.app {
            App::Echo => AppKind::Echo,
            App::Discard => AppKind::Discard,
            App::Chargen => AppKind::Chargen,
            App::Http => AppKind::Http { body_bytes: a.body_bytes },
            App::Sockperf => AppKind::Sockperf,
        };
        let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
        if a.net.cores == 0 {
            return Err("--cores 0: at least one core is needed".into());
        }
        if a.net.cores > 1 {
            return multicore::serve(&a, kind, &stop);
        }
        on_device!(&a.net, dev => run_server(dev, &a, kind, &stop))
    }

    /// `--pcap FILE`: the device, recording every frame to FILE.
    fn tap<D: Device>(dev: D, path: &std::path::Path) -> Result<PcapTap<D, BufWriter<std::fs::File>>, String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        PcapTap::new(dev, BufWriter::new(file), Box::new(wall_micros)).map_err(|e| e.to_string())
    }

    fn wall_micros() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
    }

    fn run_server<D: Device>(dev: D, a: &ServeArgs, kind: AppKind, stop: &Arc<AtomicBool>) -> Result<ExitCode, String> {
        let clock = Clock::new();
        let mut stack = Stack::new(dev, stack_config(&a.net)?, clock.now());
        let mut server = Server::listen(&mut stack, kind, a.port, a.backlog)
            .map_err(|e| format!("listen on port {}: {e}", a.port))?;
        let addrs: Vec<String> =
            stack.addresses().map(|a| a.to_string()).chain(stack.ipv6_addresses().map(|a| format!("[{a}]"))).collect();
        eprintln!("xtcp: serving {:?} on {} port {}", kind, addrs.join(", "), a.port);
        let mut last = clock.now();
        while !stop.load(Ordering::Relaxed) {
            let next = turn(&mut stack, &clock, |st, h, e| server.on_event(st, h, e));
            if a.net.stats && clock.now() - last >= Duration::from_secs(1) {
                last = clock.now();
                eprintln!("{}", stats_line(stack.counters(), server.connections()));
                eprintln!("{}", device_line(stack.device()));
            }
            idle(&mut stack, &clock, next, a.net.busy_poll);
        }
        // Graceful shutdown: FIN every connection, give them a moment to finish.
        eprintln!("xtcp: shutting down, closing {} connection(s)", server.connections());
        server.close_all(&mut stack);
        let until = clock.now() + Duration::from_secs(2);
        while clock.now() < until && server.connections() > 0 {
            turn(&mut stack, &clock, |st, h, e| server.on_event(st, h, e));
        }
        if a.net.stats {
            eprintln!("{}", stats_line(stack.counters(), server.connections()));
            eprintln!("{}", device_line(stack.device()));
            eprintln!("xtcp: final counters: {:#?}", stack.counters());
            eprintln!("xtcp: final app stats: {:#?}", server.stats);
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn client(a: ClientArgs) -> Result<ExitCode, String> {
        let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
        on_device!(&a.net, dev => run_client(dev, &a, &stop))
    }

    fn run_client<D: Device>(dev: D, a: &ClientArgs, stop: &Arc<AtomicBool>) -> Result<ExitCode, String> {
        let clock = Clock::new();
        let mut stack = Stack::new(dev, stack_config(&a.net)?, clock.now());
        let mut client = Client::connect(&mut stack, a.connect, a.send_bytes, a.recv_bytes)
            .map_err(|e| format!("connect to {}: {e}", a.connect))?
            .zero_copy(a.zero_copy);
        let started = clock.now();
        // Done at TIME-WAIT (see `Client::done`): every byte is through both ways by then.
        while !client.done(&stack) && !stop.load(Ordering::Relaxed) {
            let next = turn(&mut stack, &clock, |st, h, e| client.on_event(st, h, e));
            idle(&mut stack, &clock, next, a.net.busy_poll);
        }
        // Let the last ACK and FIN go out.
        turn(&mut stack, &clock, |st, h, e| client.on_event(st, h, e));
        let secs = (clock.now() - started).as_secs_f64();
        println!(
            "{}  received {} bytes, sent {} bytes in {secs:.3} s",
            client.sha256_hex(),
            client.received,
            client.sent
        );
        if a.net.stats {
            // The stack adds a connection's retransmissions to its counters when the connection
            // goes; the client may end in TIME-WAIT, with its connection still there.
            let mut c = *stack.counters();
            if let Ok(tcb) = stack.tcb(client.handle) {
                c.add_tcb(&tcb.stats());
            }
            eprintln!("{}", stats_line(&c, 1));
            eprintln!("{}", device_line(stack.device()));
        }
        match client.finished {
            Some(CloseReason::Normal) => Ok(ExitCode::SUCCESS),
            Some(r) => Err(format!("connection to {} ended: {r:?}", a.connect)),
            None => Err("interrupted".into()),
        }
    }

    /// `xtcp ping`: echo requests every `interval_ms`, each reply printed as ping(8) does
    /// (its data checked against what was sent), then the summary. Succeeds when every
    /// request was answered.
    pub fn ping(a: PingArgs) -> Result<ExitCode, String> {
        let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
        on_device!(&a.net, dev => run_ping(dev, &a, &stop))
    }

    fn run_ping<D: Device>(dev: D, a: &PingArgs, stop: &Arc<AtomicBool>) -> Result<ExitCode, String> {
        let clock = Clock::new();
        let mut stack = Stack::new(dev, stack_config(&a.net)?, clock.now());
        let (ident, data) = (std::process::id() as u16, (0..56u8).collect::<Vec<u8>>());
        let count = usize::from(a.count);
        let (mut sent_at, mut answered) = (Vec::with_capacity(count), vec![false; count]);
        let interval = Duration::from_millis(a.interval_ms);
        let mut next = clock.now();
        println!("PING {} from xtcp: {} data bytes", a.dest, data.len());
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            if sent_at.len() < count && now >= next {
                let seq = sent_at.len() as u16 + 1; // ping(8) counts from 1
                stack.send_echo_request(a.dest, ident, seq, &data).map_err(|e| format!("ping {}: {e}", a.dest))?;
                sent_at.push(now);
                next = now + interval;
            }
            let _ = turn(&mut stack, &clock, |_, _, _| {});
            while let Some(r) = stack.poll_echo_reply() {
                let i = usize::from(r.seq.wrapping_sub(1));
                if r.ident != ident || i >= sent_at.len() || answered[i] || r.data != data {
                    continue;
                }
                answered[i] = true;
                let ms = (r.at - sent_at[i]).as_secs_f64() * 1e3;
                println!("{} bytes from {}: icmp_seq={} time={ms:.3} ms", r.data.len() + 8, r.from, r.seq);
            }
            let got = answered.iter().filter(|&&x| x).count();
            let waited = sent_at.last().is_some_and(|&t| clock.now() - t > Duration::from_secs_f64(a.wait));
            if got == count || (sent_at.len() == count && waited) {
                break;
            }
            idle(&mut stack, &clock, Some(next.min(clock.now() + Duration::from_millis(10))), a.net.busy_poll);
        }
        let got = answered.iter().filter(|&&x| x).count();
        println!("--- {} ping statistics ---\n{} packets transmitted, {got} received", a.dest, sent_at.len());
        if a.net.stats {
            eprintln!("{}", stats_line(stack.counters(), 0));
        }
        match got == count && count > 0 {
            true => Ok(ExitCode::SUCCESS),
            false => {
                Err(format!("{} of {} echo requests to {} unanswered", sent_at.len() - got, sent_at.len(), a.dest))
            }
        }
    }

    /// One turn of the loop: poll the stack, hand its events to the application.
    fn turn<D: Device>(
        stack: &mut Stack<D>,
        clock: &Clock,
        mut on_event: impl FnMut(&mut Stack<D>, xtcp::stack::Handle, xtcp::stack::StackEvent),
    ) -> Option<Instant> {
        stack.poll(clock.now());
        while let Some((h, e)) = stack.poll_event() {
            on_event(stack, h, e);
        }
        // What the application sent in answer leaves in this turn, not after the next
        // receive burst.
        stack.flush()
    }

    /// In blocking mode, sleep in poll(2) on the socket until frames come or a timer is due.
    fn idle<D: Device>(stack: &mut Stack<D>, clock: &Clock, next: Option<Instant>, busy: bool) {
        if busy || stack.has_pending_output() {
            return;
        }
        let now = clock.now();
        let wait = next.map(|n| n - now).unwrap_or(Duration::from_millis(100)).min(Duration::from_millis(100));
        if !wait.is_zero() {
            stack.device_mut().wait(wait);
        }
    }

    /// `serve --cores N` (N > 1): the multi-core runtime, one AF_XDP socket per (core, queue).
    mod multicore {
        use super::{afxdp_config, explain, stack_config, ServeArgs};
        use std::process::ExitCode;
        use std::sync::atomic::AtomicBool;
        use xtcp::apps::{AppKind, Server};
        use xtcp::io::afxdp::AfXdpDevice;
        use xtcp::io::Device;
        use xtcp::runtime::{self, CoreReport, CoreSnapshot, RuntimeConfig, SteeringConfig};

        /// Receive queues of `iface` (sysfs shows the calling process's network namespace).
        fn rx_queues(iface: &str) -> Result<usize, String> {
            let dir = format!("/sys/class/net/{iface}/queues");
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("no interface {iface} here ({dir}: {e})"))?;
            Ok(entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
        }

        pub fn serve(a: &ServeArgs, kind: AppKind, stop: &AtomicBool) -> Result<ExitCode, String> {
            let cores = a.net.cores;
            if a.net.pcap.is_some() {
                return Err(format!("--pcap with --cores {cores}: recording is single-core for now"));
            }
            // DPDK ports count their own queue pairs (the PMD's).
            match a.net.backend {
                super::super::Backend::Afxdp => {}
                #[cfg(not(feature = "dpdk"))]
                super::super::Backend::Dpdk => return Err(crate::dpdk_dev::MISSING.to_string()),
                #[cfg(feature = "dpdk")]
                super::super::Backend::Dpdk => {
                    return run_cores(crate::dpdk_dev::open_queues(&a.net, cores)?, a, kind, stop);
                }
            }
            let queues = rx_queues(a.net.iface())?;
            if queues < cores {
                return Err(format!(
                    "--cores {cores}: {} has {queues} rx queue(s); one queue per core is needed \
                     (scripts/lab up --queues {cores}, or ethtool -L {} combined {cores})",
                    a.net.iface(),
                    a.net.iface()
                ));
            }
            if queues > cores {
                eprintln!(
                    "xtcp: warning: {} has {queues} rx queues and only {cores} are served: frames on queues {cores}.. \
                     go to the kernel",
                    a.net.iface()
                );
            }
            let devs =
                AfXdpDevice::open_queues(&afxdp_config(&a.net), cores as u32).map_err(|e| explain(a.net.iface(), e))?;
            if let Some(d) = devs.first() {
                super::steer_link_local(d, &a.net)?;
            }
            for d in &devs {
                eprintln!(
                    "xtcp: {} queue {}: XDP {:?} mode, socket bound in {:?} mode",
                    a.net.iface(),
                    d.queue(),
                    d.program().mode(),
                    d.bind_mode()
                );
            }
            run_cores(devs, a, kind, stop)
        }

        /// The multi-core runtime on one device per core, whatever the backend.
        fn run_cores<D: Device + Send>(
            devs: Vec<D>,
            a: &ServeArgs,
            kind: AppKind,
            stop: &AtomicBool,
        ) -> Result<ExitCode, String> {
            let cores = devs.len();
            let devs = runtime::steer(devs, &SteeringConfig::default()).map_err(|e| e.to_string())?;
            let cfg = RuntimeConfig {
                busy_poll: a.net.busy_poll,
                pin: true,
                shutdown_grace: std::time::Duration::from_secs(2),
                stats_interval: a.net.stats.then_some(std::time::Duration::from_secs(1)),
            };
            let (port, backlog) = (a.port, a.backlog);
            let at = std::net::SocketAddr::new(a.net.ip[0].0, a.port);
            let reports = runtime::run(
                devs,
                &stack_config(&a.net)?,
                &cfg,
                stop,
                |_core, stack| {
                    Server::listen(stack, kind, port, backlog).map_err(|e| format!("listen on port {port}: {e}"))
                },
                || eprintln!("xtcp: serving {kind:?} on {at} with {cores} cores"),
                &|s: &CoreSnapshot| eprintln!("{}", core_line(s, "")),
            )
            .map_err(|e| e.to_string())?;
            eprintln!("xtcp: shutting down: every core closed its connections");
            if a.net.stats {
                print_final(&reports);
            }
            Ok(ExitCode::SUCCESS)
        }

        /// One core's figures as `name=value` words (tests and scripts read them).
        fn core_line(s: &CoreSnapshot, tag: &str) -> String {
            let c = &s.counters;
            format!(
                "xtcp: core {}{tag} cpu={} accepted={} conns={} unfinished={} frames_in={} frames_out={} tcp_segs_in={} tcp_segs_out={} \
                 retrans={} fast_rtx={} rto={} tlp={} rsts_in={} rsts_out={} tcp_no_socket={} drops={} {}",
                s.core,
                s.cpu.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                s.accepted,
                s.connections,
                s.unfinished,
                c.frames_in,
                c.frames_out,
                c.tcp_segs_in,
                c.tcp_segs_out,
                c.tcp_retransmits,
                c.tcp_fast_retransmits,
                c.tcp_timeouts,
                c.tcp_tlp_probes,
                c.tcp_rsts_in,
                c.tcp_rsts_out,
                c.tcp_no_socket,
                c.drops(),
                s.steer
            )
        }

        fn print_final(reports: &[CoreReport]) {
            for r in reports {
                eprintln!("{}", core_line(&r.snapshot, " final:"));
                let flows: Vec<String> = r.flows.iter().map(|(l, rem)| format!("{rem}->{l}")).collect();
                eprintln!("xtcp: core {} flows: {}", r.snapshot.core, flows.join(" "));
                if r.unfinished > 0 {
                    eprintln!(
                        "xtcp: core {}: {} connection(s) not closed at the end of the grace period",
                        r.snapshot.core, r.unfinished
                    );
                }
            }
            let total = |f: fn(&CoreReport) -> u64| reports.iter().map(f).sum::<u64>();
            eprintln!(
                "xtcp: all cores: accepted={} steered_out={} steered_in={} steer_drops={} foreign_tcp={}",
                total(|r| r.snapshot.accepted),
                total(|r| r.snapshot.steer.steered_out),
                total(|r| r.snapshot.steer.steered_in),
                total(|r| r.snapshot.steer.drops()),
                total(|r| r.snapshot.steer.foreign_tcp)
            );
        }
    }

    /// The device's own counters on one line (`xtcp: device rx_frames=… …`).
    fn device_line<D: Device>(d: &D) -> String {
        let words: Vec<String> = d.counters().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("xtcp: device {}", words.join(" "))
    }

    fn stats_line(c: &xtcp::stack::Counters, conns: usize) -> String {
        // Which kind of drop, when there were any (a test that finds one says which).
        let why = if c.drops() == 0 {
            String::new()
        } else {
            format!(
                " (truncated {} malformed {} checksum {} fragment {} unsupported {} not-for-us {} udp {} ndp {} listen {})",
                c.drop_truncated,
                c.drop_malformed,
                c.drop_bad_checksum,
                c.drop_fragment,
                c.drop_unsupported,
                c.drop_not_for_us,
                c.drop_udp,
                c.ndp_invalid,
                c.tcp_listen_dropped
            )
        };
        format!(
            "xtcp: conns {conns} | frames in {} out {} | tcp segs in {} out {} retrans {} (fast {} rto {} tlp {} undone {}) rst in {} out {} | drops {}{} | arp req {}/{} | icmp echo {} | rx-in-place {} tx-in-place {} tx-copied {}",
            c.frames_in,
            c.frames_out,
            c.tcp_segs_in,
            c.tcp_segs_out,
            c.tcp_retransmits,
            c.tcp_fast_retransmits,
            c.tcp_timeouts,
            c.tcp_tlp_probes,
            c.tcp_undos,
            c.tcp_rsts_in,
            c.tcp_rsts_out,
            c.drops(),
            why,
            c.arp_requests_in,
            c.arp_requests_out,
            c.icmp_echo_in,
            c.tcp_rx_in_place,
            c.tcp_tx_in_place,
            c.tcp_tx_copied
        )
    }

    #[derive(Args)]
    pub struct FloodArgs {
        /// The interface to send on (our XDP program takes only ARP for the spoofed address).
        #[arg(long)]
        iface: String,
        /// The spoofed source address the SYNs claim (one nobody answers for: the server's
        /// SYN-ACKs then wait for ARP in vain, as under a real flood).
        #[arg(long)]
        spoof: std::net::Ipv4Addr,
        /// The server under test, ADDR:PORT.
        #[arg(long)]
        target: SocketAddrV4,
        /// The server's MAC address (the flooder does not ask ARP, to send from its first frame).
        #[arg(long)]
        target_mac: xtcp::wire::MacAddr,
        /// Seconds to flood (0: until SIGINT/SIGTERM).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    }

    /// SYNs as Linux sends them (MSS, SACK-permitted, timestamps, window scale), from random
    /// ports with random sequence numbers, in bursts of 64 as fast as the TX ring takes them.
    pub fn synflood(a: FloodArgs) -> Result<ExitCode, String> {
        use rand::{Rng, SeedableRng};
        use xtcp::wire::{
            EtherType, EthernetRepr, FrameRepr, IpProtocol, Ipv4Repr, L4Repr, NetRepr, TcpFlags, TcpOptions, TcpRepr,
        };
        let mut dev = AfXdpDevice::open(&AfXdpConfig::new(a.iface.as_str(), &[a.spoof]), 0)
            .map_err(|e| format!("AF_XDP on {}: {e} (needs root and the interface in this namespace)", a.iface))?;
        let stop = shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(std::process::id()));
        let mac = dev.mac();
        let start = std::time::Instant::now();
        let (mut sent, mut rx, mut tx) = (0u64, Vec::with_capacity(64), Vec::with_capacity(64));
        while !stop.load(Ordering::Relaxed) && (a.seconds == 0.0 || start.elapsed().as_secs_f64() < a.seconds) {
            // ARP requests for the spoofed address: taken and left unanswered.
            dev.rx_burst(&mut rx, 64);
            for f in rx.drain(..) {
                dev.recycle(f);
            }
            while tx.len() < 64 {
                let Some(mut f) = dev.alloc_tx() else { break };
                let seg = TcpRepr {
                    src_port: rng.random_range(1024..=65535),
                    dst_port: a.target.port(),
                    seq: rng.random(),
                    ack: 0,
                    flags: TcpFlags::SYN,
                    window: 64240,
                    urgent: 0,
                    options: TcpOptions::linux_syn(rng.random()),
                    payload: &[],
                };
                let ip = Ipv4Repr {
                    src: a.spoof,
                    dst: *a.target.ip(),
                    protocol: IpProtocol::Tcp,
                    payload_len: 0,
                    ttl: 64,
                    ident: 0,
                    dont_frag: true,
                    dscp_ecn: 0,
                };
                let frame = FrameRepr {
                    eth: EthernetRepr { src: mac, dst: a.target_mac, ethertype: EtherType::Ipv4 },
                    net: NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(seg) },
                };
                match frame.emit(dev.buffer_mut(&f)) {
                    Ok(n) => {
                        f.offset = 0;
                        f.len = n as u32;
                        tx.push(f);
                    }
                    Err(_) => dev.recycle(f),
                }
            }
            sent += dev.tx_burst(&mut tx) as u64;
            dev.flush();
        }
        for f in tx.drain(..) {
            dev.recycle(f);
        }
        let secs = start.elapsed().as_secs_f64();
        println!("synflood: {sent} SYNs in {secs:.2} s ({:.0}/s) from {} to {}", sent as f64 / secs, a.spoof, a.target);
        Ok(ExitCode::SUCCESS)
    }
}

fn decode(file: &PathBuf, rx: RxChecksum) -> std::io::Result<ExitCode> {
    let bytes = std::fs::read(file)?;
    let frames: Vec<(String, Vec<u8>)> = if bytes.starts_with(&[0xd4, 0xc3, 0xb2, 0xa1])
        || bytes.starts_with(&[0xa1, 0xb2, 0xc3, 0xd4])
        || bytes.starts_with(&[0x4d, 0x3c, 0xb2, 0xa1])
        || bytes.starts_with(&[0xa1, 0xb2, 0x3c, 0x4d])
    {
        let mut r = PcapReader::new(&bytes[..])?;
        let mut v = Vec::new();
        while let Some(rec) = r.next_record()? {
            v.push((format!("{}.{:06}", rec.micros / 1_000_000, rec.micros % 1_000_000), rec.data));
        }
        v
    } else {
        let text = String::from_utf8(bytes).map_err(|_| std::io::Error::other("neither pcap nor a hex text file"))?;
        let mut v = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, hex) = line.split_once(' ').unwrap_or(("?", line));
            let data =
                decode_hex(hex.trim()).ok_or_else(|| std::io::Error::other(format!("line {}: not hex", n + 1)))?;
            v.push((name.to_string(), data));
        }
        v
    };
    let width = frames.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, data) in &frames {
        match FrameRepr::parse(data, rx) {
            Ok(f) => {
                // Emit what was parsed and compare: shows whether xtcp writes the same bytes.
                let mut out = vec![0u8; f.buffer_len()];
                let same = match f.emit(&mut out) {
                    Ok(_) if out == *data => "re-emitted identical".to_string(),
                    Ok(_) => match out.iter().zip(data.iter()).position(|(a, b)| a != b) {
                        Some(at) => format!("re-emitted differs from byte {at}"),
                        None => format!("re-emitted {} of {} bytes", out.len(), data.len()),
                    },
                    Err(e) => format!("re-emit failed: {e}"),
                };
                println!("{name:width$}  {f}  [{same}]")
            }
            Err(e) => println!("{name:width$}  DROPPED ({e}), {} bytes", data.len()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
