//! Embedding xtcp under tokio: an echo server written as for tokio's own sockets, on one
//! core's stack over AF_XDP (`xtcp::tokio`, feature `tokio`).
//!
//! ```sh
//! scripts/lab up
//! ip netns exec xtcp-x1 cargo run --release --features tokio --example tokio_echo -- x1k 198.18.1.1 7
//! ip netns exec xtcp-k1 nc 198.18.1.1 7      # from the kernel side
//! ```
use std::net::Ipv4Addr;
use tokio::io::AsyncWriteExt;
use tokio::task::{spawn_local, LocalSet};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::stack::{os_secret, Stack, StackConfig};
use xtcp::time::Clock;
use xtcp::tokio::Net;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, ip, port] = &args[..] else {
        return Err("usage: tokio_echo IFACE IP PORT".into());
    };
    let (ip, port): (Ipv4Addr, u16) = (ip.parse()?, port.parse()?);
    // One device, one stack, one thread with a current-thread runtime: nothing is shared.
    let dev = AfXdpDevice::open(&AfXdpConfig::new(iface.as_str(), &[ip]), 0)?;
    let clock = Clock::new();
    let net = Net::new(Stack::new(dev, StackConfig::new(ip, 24, os_secret()?), clock.now()), clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    LocalSet::new().block_on(&rt, async move {
        // The driver: receives, runs timers, transmits, wakes the tasks below.
        let driver = spawn_local({
            let net = net.clone();
            async move { net.run().await }
        });
        let listener = net.listen(port, 128)?;
        eprintln!("tokio_echo: listening on {ip}:{port}");
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = accepted?;
                    spawn_local(async move {
                        let (mut r, mut w) = tokio::io::split(stream);
                        match tokio::io::copy(&mut r, &mut w).await {
                            Ok(n) => eprintln!("tokio_echo: {peer}: {n} bytes echoed"),
                            Err(e) => eprintln!("tokio_echo: {peer}: {e}"),
                        }
                        let _ = w.shutdown().await;
                    });
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        net.stop();
        driver.await??;
        Ok(())
    })
}
