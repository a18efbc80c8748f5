//! A hyper HTTP/1.1 server on xtcp (`xtcp::tokio`), or the same program on the kernel's sockets,
//! for comparing the two with `wrk` (scripts/bench --http).
//!
//! ```sh
//! scripts/lab up
//! ip netns exec xtcp-x1 cargo run --release --features tokio --example hyper_server -- xtcp x1k 198.18.1.1 8080
//! ip netns exec xtcp-k1 curl http://198.18.1.1:8080/
//! ip netns exec xtcp-k2a cargo run --release --features tokio --example hyper_server -- kernel 198.18.2.1:8080
//! ```
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::task::{spawn_local, LocalSet};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::stack::{os_secret, Stack, StackConfig};
use xtcp::time::Clock;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"Hello from hyper\n"))))
}

/// Serve one connection (any tokio stream) with keep-alive, on this thread.
fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static>(stream: S) {
    spawn_local(async move {
        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello)).await;
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = LocalSet::new();
    match &args[1..] {
        [mode, iface, ip, port, rest @ ..] if mode == "xtcp" => {
            let (ip, port): (std::net::Ipv4Addr, u16) = (ip.parse()?, port.parse()?);
            let dev = AfXdpDevice::open(&AfXdpConfig::new(iface.as_str(), &[ip]), 0)?;
            let clock = Clock::new();
            let net =
                xtcp::tokio::Net::new(Stack::new(dev, StackConfig::new(ip, 24, os_secret()?), clock.now()), clock);
            let busy = rest.iter().any(|a| a == "--busy");
            local.block_on(&rt, async move {
                let driver = net.clone();
                spawn_local(async move {
                    if busy {
                        driver.run_busy().await
                    } else {
                        driver.run().await.unwrap()
                    }
                });
                let listener = net.listen(port, 1024)?;
                eprintln!("hyper_server: xtcp on {ip}:{port}{}", if busy { ", busy-polling" } else { "" });
                loop {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    serve(stream);
                }
            })
        }
        [mode, addr] if mode == "kernel" => local.block_on(&rt, async move {
            let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
            eprintln!("hyper_server: kernel sockets on {addr}");
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                serve(stream);
            }
        }),
        _ => Err("usage: hyper_server xtcp IFACE IP PORT [--busy] | hyper_server kernel ADDR:PORT".into()),
    }
}
