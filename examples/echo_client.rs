//! Embedding xtcp: a TCP client on one core, over AF_XDP. Sends a message, prints the echo,
//! with the zero-copy calls: the message is written straight into a frame of the device, and
//! the echo is read where it arrived.
//!
//! ```sh
//! scripts/lab up
//! ip netns exec xtcp-k1 nc -lk 198.18.1.2 7 -e /bin/cat &   # or any echo server on the kernel side
//! ip netns exec xtcp-x1 cargo run --release --example echo_client -- x1k 198.18.1.1 198.18.1.2:7 hello
//! ```
use std::net::{Ipv4Addr, SocketAddrV4};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::stack::{os_secret, Stack, StackConfig, StackEvent};
use xtcp::time::Clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, ip, server, message] = &args[..] else {
        return Err("usage: echo_client IFACE OUR_IP SERVER_IP:PORT MESSAGE".into());
    };
    let ip: Ipv4Addr = ip.parse()?;
    let server: SocketAddrV4 = server.parse()?;
    let dev = AfXdpDevice::open(&AfXdpConfig::new(iface.as_str(), &[ip]), 0)?;
    let clock = Clock::new();
    let now = || clock.now();
    let mut stack = Stack::new(dev, StackConfig::new(ip, 24, os_secret()?), now());
    stack.connect(server)?; // ARP, then the SYN, go out on the next polls
    let mut echoed = Vec::new();
    let deadline = now() + xtcp::time::Duration::from_secs(5);
    while now() < deadline {
        stack.poll(now());
        while let Some((h, event)) = stack.poll_event() {
            match event {
                StackEvent::Connected => {
                    let mut frame = stack.send_buf(h)?; // up to one segment, headers go in front
                    let n = message.len().min(frame.capacity());
                    frame[..n].copy_from_slice(&message.as_bytes()[..n]);
                    frame.commit(n)?; // kept by the stack until acknowledged
                }
                StackEvent::Readable => {
                    let n: usize = stack.recv_chunks(h)?.map(|c| (echoed.extend_from_slice(c), c.len()).1).sum();
                    stack.consume(h, n)?; // the frames go back to the device
                    if echoed.len() >= message.len() {
                        stack.close(h)?;
                        stack.poll(now()); // the FIN goes out (TIME-WAIT would keep it 60 s)
                        println!("{}", String::from_utf8_lossy(&echoed));
                        return Ok(());
                    }
                }
                StackEvent::Closed(reason) => return Err(format!("connection ended: {reason:?}").into()),
                _ => {}
            }
        }
    }
    Err(format!("no answer from {server} within 5 s").into())
}
