//! xtcp::tokio against the Linux kernel over AF_XDP (issue 16): tokio code — `split`, `copy`,
//! `write_all`, `read` — on one core's stack, in this process, on a thread inside the lab's
//! xtcp namespace; the kernel's sockets at the other end of the veth. The lab, its guards and
//! the kernel's helpers are tests/interop.rs's (tests/common).
//!
//! What is shown: an async echo server for a kernel client (64 MB and 1 MB both ways, SHA-256
//! of the echo equal to that of what was sent) and for 1,000 short kernel connections; an
//! async client streaming 64 MB through a kernel echo server, hashed both ways.
#![cfg(all(feature = "afxdp", feature = "cli", feature = "tokio"))]

use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddrV4;
use std::sync::mpsc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{spawn_local, LocalSet};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::stack::{os_secret, Stack, StackConfig};
use xtcp::time::Clock;
use xtcp::tokio::Net;

mod common;
#[path = "common/kernel.rs"]
mod kernel;

use common::{in_netns, may_run, Lab, KERNEL_IP, XDEV, XTCP_IP};
use kernel::*;

const MB: usize = 1 << 20;
const TOOLS: &[&str] = &["ip", "ethtool", "ping", "ss", "tc"];

/// Run `f` on a thread in xtcp's namespace: a `Net` over AF_XDP on the lab's veth, driven by
/// `Net::run` (waiting on the socket's descriptor when idle) on a current-thread runtime.
fn on_xtcp<T, Fut>(lab: &Lab, f: impl FnOnce(Net<AfXdpDevice>) -> Fut + Send + 'static) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    Fut: Future<Output = T>,
{
    in_netns(&lab.xns, move || {
        let dev = AfXdpDevice::open(&AfXdpConfig::new(XDEV, &[XTCP_IP]), 0).expect("AF_XDP on the lab's veth");
        let clock = Clock::new();
        let stack = Stack::new(dev, StackConfig::new(XTCP_IP, 24, os_secret().unwrap()), clock.now());
        let net = Net::new(stack, clock);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        LocalSet::new().block_on(&rt, async move {
            let driver = spawn_local({
                let net = net.clone();
                async move { net.run().await }
            });
            let r = f(net.clone()).await;
            net.stop();
            driver.await.unwrap().expect("the driver's descriptor");
            r
        })
    })
}

/// SHA-256 of a byte stream read to its end, and its length.
async fn hash_to_eof(r: &mut (impl AsyncReadExt + Unpin)) -> (usize, String) {
    let (mut h, mut n, mut buf) = (Sha256::new(), 0, vec![0u8; CHUNK]);
    loop {
        match r.read(&mut buf).await.expect("reading") {
            0 => return (n, hex(&h.finalize())),
            k => {
                h.update(&buf[..k]);
                n += k;
            }
        }
    }
}

#[test]
fn interop_tokio_echo_server_kernel_client() {
    if !may_run("interop_tokio_echo_server_kernel_client", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    const SHORT: usize = 1000;
    let (ready_tx, ready) = mpsc::channel();
    // The echo as a tokio program would write it: split, copy to EOF, shut down.
    let server = on_xtcp(&lab, move |net| async move {
        let listener = net.listen(7, 1024).unwrap();
        ready_tx.send(()).unwrap();
        let mut echoed = Vec::new();
        for _ in 0..2 + SHORT {
            let (s, _) = listener.accept().await.expect("accept");
            echoed.push(spawn_local(async move {
                let (mut r, mut w) = tokio::io::split(s);
                let n = tokio::io::copy(&mut r, &mut w).await.expect("echo");
                w.shutdown().await.unwrap();
                n as usize
            }));
        }
        let mut sizes = Vec::new();
        for e in echoed {
            sizes.push(e.await.unwrap());
        }
        sizes
    });
    ready.recv().expect("the server started");
    let to = SocketAddrV4::new(XTCP_IP, 7);
    for (seed, n) in [(61, 64 * MB), (62, MB)] {
        let started = Instant::now();
        let (back, sha) = lab.kernel(move || kernel_send_and_receive(to, seed, n));
        say(format!("kernel → xtcp::tokio echo: {n} bytes both ways in {:.3} s", started.elapsed().as_secs_f64()));
        assert_eq!((back, sha), (n, prng_sha(seed, n)), "the echo of {n} bytes");
    }
    let started = Instant::now();
    let ports = lab.kernel(move || kernel_short_connections(to.into(), SHORT));
    say(format!("{SHORT} short kernel connections to xtcp::tokio in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!(ports, SHORT, "each connection its own port");
    let sizes = server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(&sizes[..2], &[64 * MB, MB]);
    assert!(sizes[2..].iter().all(|&n| n > 0 && n < 64), "every short connection echoed its request");
    lab.finish();
}

#[test]
fn interop_tokio_client_kernel_echo_server() {
    if !may_run("interop_tokio_client_kernel_echo_server", TOOLS) {
        return;
    }
    let lab = Lab::new("xint");
    const PORT: u16 = 9000;
    let n = 64 * MB;
    let kernel_side = kernel_server(&lab, PORT, 1, KernelApp::Echo);
    let started = Instant::now();
    let client = on_xtcp(&lab, move |net| async move {
        let s = net.connect(SocketAddrV4::new(KERNEL_IP, PORT)).await.expect("connect to the kernel");
        let (mut r, mut w) = tokio::io::split(s);
        let writer = spawn_local(async move {
            let (mut p, mut buf, mut left) = (Prng(71), vec![0u8; CHUNK], n);
            while left > 0 {
                let k = left.min(CHUNK);
                p.fill(&mut buf[..k]);
                w.write_all(&buf[..k]).await.expect("writing");
                left -= k;
            }
            w.shutdown().await.unwrap();
            w
        });
        let back = hash_to_eof(&mut r).await;
        drop(writer.await.unwrap());
        back
    });
    let (back, sha) = client.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    say(format!("xtcp::tokio client → kernel echo: {n} bytes both ways in {:.3} s", started.elapsed().as_secs_f64()));
    assert_eq!((back, &sha), (n, &prng_sha(71, n)), "the echo xtcp read");
    let echoed = kernel_side.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(echoed, vec![(n, prng_sha(71, n))], "what the kernel echoed");
    lab.finish();
}
