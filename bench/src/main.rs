//! `xtcp-bench`: load generator and servers. This first cut has a kernel echo server and a
//! request/response client over either stack (`--stack kernel`: std sockets; `--stack xtcp`:
//! the xtcp stack on AF_XDP, busy-polling), with latency histograms — what the demo uses to
//! hold xtcp against the kernel on identical veth links. The other workloads (crr, stream,
//! open loop), many connections and the matrix come with issue 6.

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "xtcp-bench", about = "Load generator and servers for xtcp and the kernel's TCP")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stack {
    Kernel,
    Xtcp,
}

#[derive(Subcommand)]
enum Cmd {
    /// A kernel TCP echo server (std sockets, a thread per connection, TCP_NODELAY).
    Server {
        #[arg(long)]
        listen: SocketAddr,
        /// Spin on non-blocking sockets instead of sleeping in the kernel.
        #[arg(long)]
        busy_poll: bool,
    },
    /// Request/response over one kernel TCP connection: send `size` bytes, wait for them to
    /// come back, repeat; report the round-trip latency distribution.
    Rr {
        #[arg(long)]
        connect: SocketAddr,
        /// Whose TCP the client uses.
        #[arg(long, value_enum, default_value_t = Stack::Kernel)]
        stack: Stack,
        /// With --stack xtcp: the interface to run on.
        #[arg(long)]
        iface: Option<String>,
        /// With --stack xtcp: our address and prefix, e.g. 198.18.1.1/24.
        #[arg(long)]
        ip: Option<String>,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seconds to measure (after a warm-up of 1000 round trips).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long)]
        busy_poll: bool,
        /// Label for the result line.
        #[arg(long, default_value = "rr")]
        label: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Server { listen, busy_poll } => match server(listen, busy_poll) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtcp-bench server: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Rr { connect, stack: Stack::Xtcp, iface, ip, size, seconds, label, .. } => {
            match xtcp_rr::run(connect, iface, ip, size, seconds, &label) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtcp-bench rr: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Rr { connect, size, seconds, busy_poll, label, .. } => match rr(connect, size, seconds, busy_poll, &label)
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtcp-bench rr: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn server(listen: SocketAddr, busy_poll: bool) -> std::io::Result<()> {
    let l = TcpListener::bind(listen)?;
    eprintln!("xtcp-bench: kernel echo server on {listen}{}", if busy_poll { " (busy-poll)" } else { "" });
    for s in l.incoming() {
        let s = s?;
        std::thread::spawn(move || {
            let _ = echo(s, busy_poll);
        });
    }
    Ok(())
}

fn echo(mut s: TcpStream, busy_poll: bool) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_nonblocking(busy_poll)?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        write_all(&mut s, &buf[..n])?;
    }
}

fn write_all(s: &mut TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_exact(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The latency line every client prints.
fn report(label: &str, size: usize, n: u64, secs: f64, h: &Histogram<u64>, polling: &str) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label:<34} {size:>5} B  {:>9.0} trans/s  RTT p50 {:>7.1} µs  p90 {:>7.1}  p99 {:>7.1}  p99.9 {:>7.1}  max {:>8.1}  ({polling} polling)",
        n as f64 / secs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
    );
}

fn rr(connect: SocketAddr, size: usize, seconds: f64, busy_poll: bool, label: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect(connect)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(busy_poll)?;
    let req = vec![0x5au8; size];
    let mut resp = vec![0u8; size];
    for _ in 0..1000 {
        write_all(&mut s, &req)?;
        read_exact(&mut s, &mut resp)?;
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        write_all(&mut s, &req)?;
        read_exact(&mut s, &mut resp)?;
        h.record(t.elapsed().as_nanos() as u64).expect("in bounds");
        n += 1;
    }
    if resp != req {
        return Err(std::io::Error::other("the echo differed from the request"));
    }
    let secs = start.elapsed().as_secs_f64();
    report(label, size, n, secs, &h, if busy_poll { "busy" } else { "blocking" });
    Ok(())
}

/// Request/response over one connection of the xtcp stack on AF_XDP, busy-polling.
mod xtcp_rr {
    use super::report;
    use hdrhistogram::Histogram;
    use std::net::{Ipv4Addr, SocketAddr};
    use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
    use xtcp::stack::{Stack, StackConfig, StackEvent};
    use xtcp::time::Instant;

    pub fn run(
        connect: SocketAddr,
        iface: Option<String>,
        ip: Option<String>,
        size: usize,
        seconds: f64,
        label: &str,
    ) -> Result<(), String> {
        let iface = iface.ok_or("--stack xtcp needs --iface")?;
        let ip = ip.ok_or("--stack xtcp needs --ip ADDR/PREFIX")?;
        let (addr, prefix) = ip.split_once('/').ok_or("--ip wants ADDR/PREFIX")?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{prefix}: {e}"))?;
        let SocketAddr::V4(server) = connect else { return Err("IPv4 only".into()) };
        let dev = AfXdpDevice::open(&AfXdpConfig::new(iface.as_str(), &[addr]), 0).map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        let now = || Instant::from_micros(t0.elapsed().as_micros() as u64);
        let mut secret = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?, &mut secret)
            .map_err(|e| e.to_string())?;
        let mut stack = Stack::new(dev, StackConfig::new(addr, prefix, secret), now());
        let conn = stack.connect(server).map_err(|e| e.to_string())?;
        stack.set_nodelay(conn, true).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            stack.poll(now());
            match stack.poll_event() {
                Some((_, StackEvent::Connected)) => break,
                Some((_, StackEvent::Closed(r))) => return Err(format!("connect to {server}: {r:?}")),
                _ if std::time::Instant::now() > deadline => return Err(format!("connect to {server}: no answer")),
                _ => {}
            }
        }
        let req = vec![0x5au8; size];
        let mut buf = vec![0u8; size.max(1)];
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        let (mut n, mut warm) = (0u64, 1000u32);
        let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
        let mut start = std::time::Instant::now();
        while std::time::Instant::now() < end || warm > 0 {
            let t = std::time::Instant::now();
            let mut sent = 0;
            let mut got = 0;
            while got < size {
                if sent < size {
                    sent += stack.send(conn, &req[sent..]).unwrap_or(0);
                }
                stack.poll(now());
                while stack.poll_event().is_some() {}
                while let Ok(k @ 1..) = stack.recv(conn, &mut buf[..size - got]) {
                    got += k;
                }
                if stack.state(conn).is_err() {
                    return Err("the connection ended".into());
                }
            }
            if warm > 0 {
                warm -= 1;
                if warm == 0 {
                    start = std::time::Instant::now();
                }
                continue;
            }
            h.record(t.elapsed().as_nanos() as u64).expect("in bounds");
            n += 1;
        }
        let _ = stack.close(conn);
        stack.poll(now());
        report(label, size, n, start.elapsed().as_secs_f64(), &h, "busy");
        Ok(())
    }
}
