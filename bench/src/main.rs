//! `xtcp-bench`: load generator and servers. This first cut has the kernel side only — an
//! echo server and a request/response client with latency histograms — which the demo uses to
//! hold xtcp's echo server against the kernel's on identical veth links. The AF_XDP client,
//! the other workloads (crr, stream, open loop) and the matrix come with issue 6.

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
        Cmd::Rr { connect, size, seconds, busy_poll, label } => match rr(connect, size, seconds, busy_poll, &label) {
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
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label:<28} {size:>5} B  {:>9.0} trans/s  RTT p50 {:>7.1} µs  p90 {:>7.1}  p99 {:>7.1}  p99.9 {:>7.1}  max {:>8.1}  ({} polling)",
        n as f64 / secs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        if busy_poll { "busy" } else { "blocking" }
    );
    Ok(())
}
