//! xtcp::tokio over the in-memory link: two stacks, each behind a `Net`, on one current-thread
//! runtime, in real time. tokio code (AsyncReadExt/AsyncWriteExt, split, copy, timeout) runs
//! on them unchanged: echo, many connections, cancelled reads, shutdown, refusals and resets.
#![cfg(all(feature = "tokio", feature = "mem"))]

use std::cell::Cell;
use std::future::Future;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration as StdDuration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{spawn_local, LocalSet};
use xtcp::io::mem::{Faults, MemDevice, MemLink};
use xtcp::stack::{Stack, StackConfig};
use xtcp::time::{Clock, Duration};
use xtcp::tokio::Net;
use xtcp::wire::MacAddr;

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two stacks over one in-memory link, `a` (198.18.0.1) and `b` (198.18.0.2), and a task that
/// drives both (the link's clock is set from the real one before each turn).
struct Nets {
    a: Net<MemDevice>,
    b: Net<MemDevice>,
    link: MemLink,
}

/// Run `test` with two stacks on a fresh runtime; their driver stops when it returns.
fn with_nets<F: Future<Output = ()>>(faults: Faults, test: impl FnOnce(Nets) -> F) {
    let (link, da, db) = MemLink::pair(
        7,
        [faults.clone(), faults],
        [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])],
        4096,
        2048,
    );
    let clock = Clock::new();
    link.set_now(clock.now());
    let a = Net::new(Stack::new(da, StackConfig::new(IP_A, 24, [1; 16]), clock.now()), clock);
    let b = Net::new(Stack::new(db, StackConfig::new(IP_B, 24, [2; 16]), clock.now()), clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    LocalSet::new().block_on(&rt, async move {
        let stop = Rc::new(Cell::new(false));
        let driver = spawn_local({
            let (a, b, stop, link) = (a.clone(), b.clone(), stop.clone(), link.clone());
            async move {
                while !stop.get() {
                    link.set_now(clock.now());
                    a.turn();
                    b.turn();
                    tokio::task::yield_now().await;
                }
            }
        });
        // A hung test fails rather than hangs.
        tokio::time::timeout(StdDuration::from_secs(120), test(Nets { a, b, link })).await.expect("test timed out");
        stop.set(true);
        driver.await.unwrap();
    });
}

fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed as u32).to_be_bytes()[0]).collect()
}

/// An echo server on `net`:`port` for `conns` connections, each copied back to its EOF with
/// tokio's own `copy` over `split` halves; returns when all are done.
async fn echo_server(net: Net<MemDevice>, port: u16, conns: usize) {
    let listener = net.listen(port, 1024).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), IP_B);
        tasks.push(spawn_local(async move {
            let (mut r, mut w) = tokio::io::split(s);
            let n = tokio::io::copy(&mut r, &mut w).await.expect("echo copy");
            w.shutdown().await.unwrap();
            n
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Write `data` while reading the echo back to EOF; returns what came back.
async fn echo_client(net: Net<MemDevice>, port: u16, data: Vec<u8>) -> Vec<u8> {
    let s = net.connect(SocketAddrV4::new(IP_A, port)).await.expect("connect");
    let (mut r, mut w) = tokio::io::split(s);
    let writer = spawn_local(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.expect("read the echo");
    drop(writer.await.unwrap());
    back
}

#[test]
fn echo_of_8_mb_with_tokio_copy_and_split() {
    with_nets(Faults::default(), |n| async move {
        let server = spawn_local(echo_server(n.a.clone(), 7, 1));
        let data = pattern(1, 8 << 20);
        let back = echo_client(n.b.clone(), 7, data.clone()).await;
        assert!(back == data, "echo intact ({} of {} bytes)", back.len(), data.len());
        server.await.unwrap();
    });
}

#[test]
fn echo_survives_loss_and_reordering() {
    let faults = Faults { loss: 0.02, reorder: 0.02, delay: Duration::from_micros(100), ..Faults::default() };
    with_nets(faults, |n| async move {
        let server = spawn_local(echo_server(n.a.clone(), 7, 1));
        let data = pattern(2, 2 << 20);
        let back = echo_client(n.b.clone(), 7, data.clone()).await;
        assert!(back == data, "echo intact under loss ({} of {} bytes)", back.len(), data.len());
        server.await.unwrap();
        let wire = n.link.stats();
        assert!(wire.lost > 10 && wire.sent > wire.delivered, "the link lost frames: {wire:?}");
    });
}

#[test]
fn two_hundred_concurrent_connections() {
    with_nets(Faults::default(), |n| async move {
        let server = spawn_local(echo_server(n.a.clone(), 8080, 200));
        let clients: Vec<_> = (0..200u32)
            .map(|i| {
                let data = pattern(i as u8, 1000 + i as usize * 37);
                let net = n.b.clone();
                spawn_local(async move { (echo_client(net, 8080, data.clone()).await, data) })
            })
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            let (back, data) = c.await.unwrap();
            assert!(back == data, "connection {i}: echo intact");
        }
        server.await.unwrap();
    });
}

#[test]
fn a_cancelled_read_loses_nothing() {
    // The reader gives up on most of its reads (a timeout shorter than the writer's pauses);
    // every byte must still arrive, once and in order: a dropped read future took nothing.
    with_nets(Faults::default(), |n| async move {
        let listener = n.a.listen(9, 4).unwrap();
        let data = pattern(3, 300_000);
        let writer = spawn_local({
            let (net, data) = (n.b.clone(), data.clone());
            async move {
                let mut s = net.connect(SocketAddrV4::new(IP_A, 9)).await.unwrap();
                for chunk in data.chunks(10_000) {
                    s.write_all(chunk).await.unwrap();
                    tokio::time::sleep(StdDuration::from_millis(3)).await;
                }
                s.shutdown().await.unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.unwrap();
            }
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut got, mut cancelled) = (Vec::new(), 0);
        let mut buf = vec![0u8; 4096];
        loop {
            match tokio::time::timeout(StdDuration::from_micros(500), s.read(&mut buf)).await {
                Err(_) => cancelled += 1,
                Ok(Ok(0)) => break,
                Ok(Ok(k)) => got.extend_from_slice(&buf[..k]),
                Ok(Err(e)) => panic!("read: {e}"),
            }
        }
        assert!(cancelled > 10, "reads were cancelled ({cancelled})");
        assert!(got == data, "every byte once, in order ({} of {})", got.len(), data.len());
        drop(s);
        writer.await.unwrap();
    });
}

#[test]
fn shutdown_is_a_half_close_and_the_reply_still_arrives() {
    with_nets(Faults::default(), |n| async move {
        let listener = n.a.listen(80, 4).unwrap();
        let server = spawn_local(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).await.unwrap(); // to the client's FIN
            s.write_all(format!("got {} bytes", req.len()).as_bytes()).await.unwrap();
            // Dropped: FIN after the reply.
        });
        let mut c = n.b.connect(SocketAddrV4::new(IP_A, 80)).await.unwrap();
        c.write_all(&[7u8; 5000]).await.unwrap();
        c.shutdown().await.unwrap();
        let err = c.write_all(b"late").await.expect_err("writing after shutdown");
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        let mut reply = String::new();
        c.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "got 5000 bytes");
        server.await.unwrap();
    });
}

#[test]
fn refused_and_reset_connections_are_io_errors() {
    with_nets(Faults::default(), |n| async move {
        let err = n.b.connect(SocketAddrV4::new(IP_A, 4444)).await.expect_err("nothing listens on 4444");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        // A server that drops its connection with the request unread resets it (as close(2)).
        let listener = n.a.listen(81, 4).unwrap();
        let server = spawn_local(async move {
            let (s, _) = listener.accept().await.unwrap();
            s.readable().await;
            drop(s);
        });
        let mut c = n.b.connect(SocketAddrV4::new(IP_A, 81)).await.unwrap();
        c.write_all(b"unread request").await.unwrap();
        server.await.unwrap();
        let mut buf = [0u8; 16];
        let err = c.read(&mut buf).await.expect_err("the peer reset the connection");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    });
}
