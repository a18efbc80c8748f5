//! `xtcp-bench`: load generator and servers over the kernel's TCP and xtcp's, latency
//! histograms, plots, and the raw AF_XDP bounce. See the README ("Benchmarks") for what each
//! figure times.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xtcp_bench::client::{self, ClientOptions, Proto, Workload};
use xtcp_bench::net::{KernelNet, Net, XtcpNet, XtcpOptions};
use xtcp_bench::results::{hgrm, RunResult};
use xtcp_bench::server::{Server, ServerMode};
use xtcp_bench::{bounce, plot};

#[derive(Parser)]
#[command(name = "xtcp-bench", about = "Load generator and servers for xtcp and the kernel's TCP")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StackKind {
    Kernel,
    Xtcp,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// Request/response on long-lived connections.
    Rr,
    /// Connect, one request/response, close.
    Crr,
    /// Bulk data client → server.
    Stream,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Answer framed requests (the client's default protocol).
    Framed,
    /// Echo every byte (for `client --raw`, and `xtcp client`).
    Echo,
}

/// Which stack, and for xtcp where it runs.
#[derive(Args, Clone)]
struct StackArgs {
    /// Whose TCP: the kernel's (std sockets + epoll) or xtcp's (AF_XDP, one core).
    #[arg(long, value_enum, default_value_t = StackKind::Kernel)]
    stack: StackKind,
    /// --stack xtcp: the interface to run on.
    #[arg(long)]
    iface: Option<String>,
    /// --stack xtcp: our address and prefix, e.g. 198.18.3.2/24.
    #[arg(long)]
    ip: Option<String>,
    /// --stack xtcp: an IPv6 address and prefix too (dual stack), e.g. 2001:2:0:3::2/64; the
    /// stack also takes the link-local address its MAC gives.
    #[arg(long)]
    ip6: Option<String>,
    /// --stack xtcp: the most sockets (connections + listeners).
    #[arg(long, default_value_t = 65536)]
    max_sockets: usize,
    /// --stack xtcp: TIME-WAIT, in ms, of connections this side closes first (the stack's
    /// default, 60 s, as Linux's).
    #[arg(long, default_value_t = 60_000)]
    time_wait_ms: u64,
    /// --stack xtcp: a new connection may take the port of one in TIME-WAIT (with
    /// timestamps) after this many ms there, as the kernel clients' tcp_tw_reuse = 1 lets
    /// them after tcp_tw_reuse_delay (1 s by default; 1 ms, the least Linux allows, is one
    /// tick of the timestamp clock, which is all the new SYN needs to be newer than
    /// anything of the old connection's). 0: no reuse.
    #[arg(long, default_value_t = 1)]
    time_wait_reuse_ms: u64,
    /// --stack xtcp: send and receive buffer per connection, KiB (default: the stack's, 256);
    /// smaller for 100k+ connections.
    #[arg(long)]
    tcp_buffer_kb: Option<usize>,
    /// --stack xtcp: run on a DPDK port with these devargs (net_af_xdp0,iface=IF,
    /// net_memif0,role=…,socket=…, …) instead of AF_XDP on --iface (a build with the `dpdk`
    /// feature).
    #[arg(long)]
    vdev: Option<String>,
    /// --vdev: DPDK EAL arguments, replacing xtcp's defaults.
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// Never sleep: spin on the sockets (kernel: epoll_wait with a zero timeout; xtcp: the
    /// rings). Without it: sleep in epoll_wait / poll(2) when idle.
    #[arg(long)]
    busy_poll: bool,
}

impl StackArgs {
    fn xtcp(&self, extra_ips: &[Ipv4Addr]) -> Result<XtcpNet, String> {
        let o = self.xtcp_options(extra_ips)?;
        let net = XtcpNet::open(&o)?;
        eprintln!("xtcp-bench: xtcp on {} {} ({})", o.iface, o.ip, net.mode);
        Ok(net)
    }

    #[cfg(feature = "dpdk")]
    fn xtcp_dpdk(&self, extra_ips: &[Ipv4Addr], vdev: &str) -> Result<XtcpNet<xtcp::io::dpdk::DpdkDevice>, String> {
        let o = self.xtcp_options(extra_ips)?;
        let net = XtcpNet::open_dpdk(&o, vdev, self.eal.as_deref())?;
        eprintln!("xtcp-bench: xtcp on {vdev} {} ({})", o.ip, net.mode);
        Ok(net)
    }

    fn xtcp_options(&self, extra_ips: &[Ipv4Addr]) -> Result<XtcpOptions, String> {
        let iface = match (&self.iface, &self.vdev) {
            (Some(i), _) => i.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => return Err("--stack xtcp needs --iface (or --vdev)".into()),
        };
        let ip = self.ip.as_deref().ok_or("--stack xtcp needs --ip ADDR/PREFIX")?;
        let (addr, prefix) = ip.split_once('/').ok_or("--ip wants ADDR/PREFIX, e.g. 198.18.3.2/24")?;
        let ip: Ipv4Addr = addr.parse().map_err(|e| format!("--ip {addr}: {e}"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or(format!("--ip: bad prefix {prefix}"))?;
        let (ipv6, ipv6_prefix) = match self.ip6.as_deref() {
            None => (Vec::new(), 64),
            Some(s) => {
                let (a, p) = s.split_once('/').ok_or("--ip6 wants ADDR/PREFIX, e.g. 2001:2:0:3::2/64")?;
                let a: std::net::Ipv6Addr = a.parse().map_err(|e| format!("--ip6 {a}: {e}"))?;
                let p: u8 = p.parse().ok().filter(|p| *p <= 128).ok_or(format!("--ip6: bad prefix {p}"))?;
                (vec![a], p)
            }
        };
        Ok(XtcpOptions {
            iface,
            ip,
            prefix,
            ipv6,
            ipv6_prefix,
            max_sockets: self.max_sockets,
            time_wait: Duration::from_millis(self.time_wait_ms),
            time_wait_reuse: (self.time_wait_reuse_ms > 0).then(|| Duration::from_millis(self.time_wait_reuse_ms)),
            tcp_buffer: self.tcp_buffer_kb.map(|k| k.max(1) * 1024),
            extra_ips: extra_ips.iter().copied().filter(|&x| x != ip).collect(),
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the client's workloads (framed requests) or echo, on one thread.
    Server {
        #[command(flatten)]
        stack: StackArgs,
        /// ADDR:PORT, either family; `[::]:PORT` takes both (the xtcp stack listens on every
        /// address of its own).
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, value_enum, default_value_t = ModeArg::Framed)]
        mode: ModeArg,
        #[arg(long, default_value_t = 4096)]
        backlog: usize,
    },
    /// Generate load and measure it.
    Client(Box<ClientArgs>),
    /// Plot several result JSONs' latency distributions in one SVG.
    Plot {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "latency by percentile")]
        title: String,
        /// Result files written by `client --json`.
        #[arg(required = true)]
        json: Vec<PathBuf>,
    },
    /// Print a Markdown table of several result JSONs side by side (what scripts/bench shows).
    Table {
        /// The label of the column the ratio columns divide by.
        #[arg(long)]
        baseline: Option<String>,
        /// Labels to make a ratio column for (repeat the flag).
        #[arg(long)]
        ratio: Vec<String>,
        #[arg(required = true)]
        json: Vec<PathBuf>,
    },
    /// The raw AF_XDP path, no TCP: UDP frames bounced between two AF_XDP sockets.
    Bounce {
        #[command(subcommand)]
        role: BounceRole,
    },
    /// Under random loss, the same transfers and request/response by the kernel's TCP and by
    /// xtcp's, into kernel receivers on identical veth links, in namespaces of its own (root).
    Loss(LossArgs),
}

#[derive(Args)]
struct LossArgs {
    /// Rows of the transfer matrix, LOSS%:MB (the default is issue 11's).
    #[arg(long, value_delimiter = ',', default_value = "0:32,1:16,5:8,10:4")]
    transfers: Vec<String>,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Loss each way for request/response, percent (0 skips it).
    #[arg(long, default_value_t = 1.0)]
    rr_loss: f64,
    /// Seconds of request/response per stack.
    #[arg(long, default_value_t = 20.0)]
    rr_seconds: f64,
    /// The `xtcp` binary (default: next to this one).
    #[arg(long)]
    xtcp: Option<PathBuf>,
    /// Where to save loss.json, loss-table.md and the rr clients' JSONs.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Capture every transfer at its sender into this directory (pcap files).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// The kernel senders' congestion control (default: the system's).
    #[arg(long)]
    kernel_cc: Option<String>,
    /// xtcp's congestion control: cubic, reno or bbr (default: xtcp's, CUBIC).
    #[arg(long)]
    xtcp_cc: Option<String>,
    /// A fixed send buffer for xtcp, bytes (default: xtcp's, autotuned from 64 KiB up to
    /// the most the kernel's may grow to, tcp_wmem).
    #[arg(long)]
    xtcp_send_buffer: Option<usize>,
}

fn loss_cmd(a: LossArgs) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let xtcp = a.xtcp.unwrap_or_else(|| me.with_file_name("xtcp"));
    if !xtcp.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release --bin xtcp) or pass --xtcp",
            xtcp.display()
        ));
    }
    let mut transfers = Vec::new();
    for t in &a.transfers {
        let (l, mb) = t.split_once(':').ok_or_else(|| format!("--transfers {t}: want LOSS%:MB"))?;
        let l: f64 = l.parse().map_err(|e| format!("--transfers {t}: {e}"))?;
        let mb: usize = mb.parse().map_err(|e| format!("--transfers {t}: {e}"))?;
        transfers.push((l / 100.0, mb << 20));
    }
    let o = xtcp_bench::loss::Options {
        transfers,
        runs: a.runs,
        rr_loss: a.rr_loss / 100.0,
        rr_seconds: a.rr_seconds,
        xtcp,
        bench: me,
        out: a.out.clone(),
        pcap: a.pcap.clone(),
        kernel_cc: a.kernel_cc.clone(),
        xtcp_cc: a.xtcp_cc.clone(),
        xtcp_send_buffer: a.xtcp_send_buffer,
    };
    let report = xtcp_bench::loss::run_all(&o)?;
    print!("{}", xtcp_bench::loss::markdown(&report));
    if let Some(dir) = &a.out {
        xtcp_bench::loss::save(&report, dir)?;
    }
    Ok(())
}

#[derive(Subcommand)]
enum BounceRole {
    /// Bounce every UDP datagram to our address back to its sender.
    Serve {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        addr: Ipv4Addr,
        /// Seconds to run (0: until SIGINT/SIGTERM).
        #[arg(long, default_value_t = 0.0)]
        seconds: f64,
    },
    /// Send datagrams with a window in flight, time their return.
    Client {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        addr: Ipv4Addr,
        /// The bounce server's address.
        #[arg(long)]
        server: Ipv4Addr,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 0.5)]
        warmup: f64,
        /// Datagrams in flight (1: pure round-trip latency).
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// UDP payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value = "af_xdp bounce")]
        label: String,
        #[command(flatten)]
        out: OutArgs,
    },
}

#[derive(Args, Clone)]
struct OutArgs {
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency distribution in HdrHistogram's percentile format.
    #[arg(long)]
    hgrm: Option<PathBuf>,
}

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The server, ADDR:PORT or [IPv6]:PORT.
    #[arg(long)]
    connect: SocketAddr,
    #[arg(long, value_enum, default_value_t = WorkloadArg::Rr)]
    workload: WorkloadArg,
    /// Connections at once.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Request bytes (framed: header included; stream: each message, default 65536).
    #[arg(long)]
    req_bytes: Option<usize>,
    /// Response bytes (default: the request size; with --http: ignored).
    #[arg(long)]
    resp_bytes: Option<usize>,
    /// Requests outstanding per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop: requests per second in total, on a fixed schedule; latency from the intended
    /// send time (coordinated omission corrected).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// No framing: send --req-bytes, expect --resp-bytes back (an echo server).
    #[arg(long, conflicts_with = "http")]
    raw: bool,
    /// HTTP/1.1 keep-alive GETs of --http-path; responses need a Content-Length.
    #[arg(long)]
    http: bool,
    #[arg(long, default_value = "/")]
    http_path: String,
    /// Source addresses, used in turn, e.g. 198.18.1.2,198.18.1.10-198.18.1.40. Kernel: each
    /// must be on the client's interface; xtcp: they become the stack's addresses (beside
    /// --ip). Many addresses, many ports: 100k+ connections.
    #[arg(long, value_parser = parse_srcs)]
    src: Option<SrcList>,
    /// Connections in the handshake at once (a SYN flood beyond the server's backlog only
    /// causes retransmissions).
    #[arg(long, default_value_t = 256)]
    max_connecting: usize,
    /// Give up on a handshake after this many seconds (counted as an error).
    #[arg(long, default_value_t = 3.0)]
    connect_timeout: f64,
    /// Label for the output.
    #[arg(long)]
    label: Option<String>,
    /// No progress line on stderr (it is printed once a second otherwise).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    out: OutArgs,
}

/// Source addresses from `--src` (a newtype: clap would take a bare `Vec` for repeated values).
#[derive(Clone, Debug)]
struct SrcList(Vec<Ipv4Addr>);

/// `A`, `A,B`, `A-B` (a range of addresses), combined with commas.
fn parse_srcs(s: &str) -> Result<SrcList, String> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: Ipv4Addr = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
                let b: Ipv4Addr = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || b - a > 65_535 {
                    return Err(format!("{part}: the range must go up and hold at most 65536 addresses"));
                }
                v.extend((a..=b).map(Ipv4Addr::from));
            }
            None => v.push(part.trim().parse().map_err(|e| format!("{part}: {e}"))?),
        }
    }
    if v.is_empty() {
        return Err("no address".into());
    }
    Ok(SrcList(v))
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Server { stack, listen, mode, backlog } => server(&stack, listen, mode, backlog),
        Cmd::Client(a) => client(&a),
        Cmd::Plot { out, title, json } => plot_cmd(&out, &title, &json),
        Cmd::Table { baseline, ratio, json } => {
            read_runs(&json).map(|runs| print!("{}", xtcp_bench::table::table(&runs, baseline.as_deref(), &ratio)))
        }
        Cmd::Bounce { role } => bounce_cmd(role),
        Cmd::Loss(a) => loss_cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtcp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Room for very many sockets: raise the descriptor limit to 1M when allowed (root), else the
/// soft limit to the hard one.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if setrlimit(Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20).is_ok() {
        return;
    }
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn server(s: &StackArgs, listen: SocketAddr, mode: ModeArg, backlog: usize) -> Result<(), String> {
    let stop = xtcp::io::shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
    let mode = match mode {
        ModeArg::Framed => ServerMode::Framed,
        ModeArg::Echo => ServerMode::Echo,
    };
    let polling = if s.busy_poll { "busy-poll" } else { "blocking" };
    let stats = match s.stack {
        StackKind::Kernel => {
            raise_nofile();
            let net = KernelNet::new().map_err(|e| e.to_string())?;
            let mut srv = Server::new(net, listen, backlog, mode).map_err(|e| format!("listen on {listen}: {e}"))?;
            eprintln!("xtcp-bench: kernel {mode:?} server on {listen} ({polling})");
            srv.run(&stop, s.busy_poll).map_err(|e| e.to_string())?;
            srv.stats
        }
        StackKind::Xtcp => match &s.vdev {
            None => serve_xtcp(s.xtcp(&[])?, s, listen, backlog, mode, &stop)?,
            #[cfg(feature = "dpdk")]
            Some(v) => serve_xtcp(s.xtcp_dpdk(&[], v)?, s, listen, backlog, mode, &stop)?,
            #[cfg(not(feature = "dpdk"))]
            Some(_) => return Err(NO_DPDK.into()),
        },
    };
    eprintln!("xtcp-bench: server done: {stats:?}");
    Ok(())
}

/// What --vdev says in a build without the `dpdk` feature.
#[cfg(not(feature = "dpdk"))]
const NO_DPDK: &str = "--vdev: this xtcp-bench was built without DPDK (cargo build -p xtcp-bench --features dpdk)";

fn serve_xtcp<D: xtcp::io::Device>(
    net: XtcpNet<D>,
    s: &StackArgs,
    listen: SocketAddr,
    backlog: usize,
    mode: ServerMode,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<xtcp_bench::server::ServerStats, String> {
    let polling = if s.busy_poll { "busy-poll" } else { "blocking" };
    let mut srv = Server::new(net, listen, backlog, mode).map_err(|e| format!("listen on {listen}: {e}"))?;
    eprintln!("xtcp-bench: xtcp {mode:?} server on port {} ({polling})", listen.port());
    srv.run(stop, s.busy_poll).map_err(|e| e.to_string())?;
    let c = srv.net().counters();
    eprintln!(
        "xtcp-bench: xtcp counters: segs in {} out {} retransmits {} rst in {} out {} drops {}",
        c.tcp_segs_in,
        c.tcp_segs_out,
        c.tcp_retransmits,
        c.tcp_rsts_in,
        c.tcp_rsts_out,
        c.drops()
    );
    let words: Vec<String> = srv.net().device_counters().iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("xtcp-bench: device counters: {}", words.join(" "));
    Ok(srv.stats)
}

fn client(a: &ClientArgs) -> Result<(), String> {
    let stop = xtcp::io::shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
    let workload = match a.workload {
        WorkloadArg::Rr => Workload::Rr,
        WorkloadArg::Crr => Workload::Crr,
        WorkloadArg::Stream => Workload::Stream,
    };
    let req_bytes = a.req_bytes.unwrap_or(if workload == Workload::Stream { 65536 } else { 64 });
    let proto = if a.http {
        Proto::Http {
            path: a.http_path.clone(),
            host: SocketAddr::new(a.connect.ip(), 0).to_string().trim_end_matches(":0").to_string(),
        }
    } else if a.raw {
        Proto::Raw
    } else {
        Proto::Framed
    };
    let polling = if a.stack.busy_poll { "busy" } else { "blocking" };
    let stack_name = match a.stack.stack {
        StackKind::Kernel => "kernel",
        StackKind::Xtcp => "xtcp",
    };
    let o = ClientOptions {
        target: a.connect,
        workload,
        proto,
        conns: a.conns,
        req_bytes,
        resp_bytes: a.resp_bytes.unwrap_or(req_bytes),
        pipeline: a.pipeline,
        rate: a.rate,
        seconds: a.seconds,
        warmup: a.warmup,
        busy_poll: a.stack.busy_poll,
        srcs: a.src.clone().map(|s| s.0).unwrap_or_default(),
        max_connecting: a.max_connecting,
        connect_timeout: Duration::from_secs_f64(a.connect_timeout.max(0.001)),
        progress: !a.quiet,
        label: a.label.clone().unwrap_or_else(|| {
            let w = match workload {
                Workload::Rr => "rr",
                Workload::Crr => "crr",
                Workload::Stream => "stream",
            };
            format!("{stack_name} {w} {} conn ({polling})", a.conns)
        }),
    };
    o.check().map_err(|e| e.to_string())?;
    let (res, hist) = match a.stack.stack {
        StackKind::Kernel => {
            raise_nofile();
            client::run(KernelNet::new().map_err(|e| e.to_string())?, &o, &stop)?
        }
        // The source addresses become the stack's own (beside --ip); its XDP program steers
        // them to the socket.
        StackKind::Xtcp => match &a.stack.vdev {
            None => client::run(a.stack.xtcp(&o.srcs)?, &o, &stop)?,
            #[cfg(feature = "dpdk")]
            Some(v) => client::run(a.stack.xtcp_dpdk(&o.srcs, v)?, &o, &stop)?,
            #[cfg(not(feature = "dpdk"))]
            Some(_) => return Err(NO_DPDK.into()),
        },
    };
    finish(&res, &hist, &a.out)
}

fn finish(res: &RunResult, hist: &hdrhistogram::Histogram<u64>, out: &OutArgs) -> Result<(), String> {
    println!("{}", res.line());
    if let Some(p) = &out.json {
        let text = serde_json::to_string_pretty(res).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &out.hgrm {
        std::fs::write(p, hgrm(hist)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn read_runs(files: &[PathBuf]) -> Result<Vec<RunResult>, String> {
    let mut runs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r: RunResult = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        runs.push(r);
    }
    Ok(runs)
}

fn plot_cmd(out: &std::path::Path, title: &str, files: &[PathBuf]) -> Result<(), String> {
    let runs = read_runs(files)?;
    plot::plot(out, title, &runs)?;
    eprintln!("xtcp-bench: wrote {}", out.display());
    Ok(())
}

fn bounce_cmd(role: BounceRole) -> Result<(), String> {
    let stop = xtcp::io::shutdown::install().map_err(|e| format!("signal handlers: {e}"))?;
    match role {
        BounceRole::Serve { iface, addr, seconds } => {
            let (n, busy) = bounce::serve(&iface, addr, seconds, &stop)?;
            eprintln!(
                "xtcp-bench bounce: bounced {n} frames ({:.0} pps while traffic flowed)",
                n as f64 / busy.max(1e-9)
            );
            Ok(())
        }
        BounceRole::Client { iface, addr, server, seconds, warmup, window, size, label, out } => {
            let c =
                bounce::BounceClient { iface, ours: addr, server, seconds, warmup, window: window.max(1), size, label };
            let (res, hist) = bounce::client(&c, &stop)?;
            println!(
                "{:<36} {:>9.0} pps round trips  RTT µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}  window {}  lost {}  (busy polling, AF_XDP both ends)",
                res.label,
                res.requests_per_sec,
                res.latency_us.p50,
                res.latency_us.p90,
                res.latency_us.p99,
                res.latency_us.p999,
                res.latency_us.max,
                window,
                res.errors
            );
            if let Some(p) = &out.json {
                std::fs::write(p, serde_json::to_string_pretty(&res).map_err(|e| e.to_string())?)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            if let Some(p) = &out.hgrm {
                std::fs::write(p, hgrm(&hist)).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            Ok(())
        }
    }
}
