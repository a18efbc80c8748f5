//! Embedding xtcp: a TCP echo server on one core, over AF_XDP.
//!
//! ```sh
//! scripts/lab up
//! ip netns exec xtcp-x1 cargo run --release --example echo_server -- x1k 198.18.1.1 7
//! ip netns exec xtcp-k1 nc 198.18.1.1 7      # from the kernel side
//! ```
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::io::shutdown;
use xtcp::stack::{os_secret, Stack, StackConfig, StackError, StackEvent};
use xtcp::tcp::TcpError;
use xtcp::time::Clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, ip, port] = &args[..] else {
        return Err("usage: echo_server IFACE IP PORT".into());
    };
    let ip: Ipv4Addr = ip.parse()?;
    let stop = shutdown::install()?;
    // One device (an AF_XDP socket on queue 0), one stack, one thread: nothing is shared.
    let dev = AfXdpDevice::open(&AfXdpConfig::new(iface.as_str(), &[ip]), 0)?;
    let clock = Clock::new();
    let now = || clock.now();
    let mut stack = Stack::new(dev, StackConfig::new(ip, 24, os_secret()?), now());
    let listener = stack.listen(port.parse()?, 128)?;
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        stack.poll(now()); // receive, process, run timers, transmit: one turn, busy-polling
        while let Some((h, event)) = stack.poll_event() {
            match event {
                StackEvent::Accepted => {
                    while let Some(conn) = stack.accept(listener)? {
                        stack.set_nodelay(conn, true)?;
                    }
                }
                // Echo what arrived. (A real server would keep what send() could not take
                // and retry on Writable; apps::Server does.)
                StackEvent::Readable | StackEvent::PeerClosed => loop {
                    match stack.recv(h, &mut buf) {
                        Ok(0) => {
                            stack.close(h)?; // the client is done: so are we
                            break;
                        }
                        Ok(n) => {
                            stack.send(h, &buf[..n])?;
                        }
                        Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                _ => {}
            }
        }
    }
    Ok(()) // dropping the stack closes the socket and detaches the XDP program
}
