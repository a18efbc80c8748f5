//! The kernel's side of the interop tests (tests/interop.rs, tests/interop_ipv6.rs): the
//! lab's helpers that drive `xtcp` and kernel sockets, deterministic data and its hashes, and
//! the kernel servers. Included by those two (`#[path]`), not by every user of `common`.
#![allow(dead_code)] // each test file uses its own part

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use xtcp::apps::client_pattern;

use crate::common::{in_netns, netns_exists, run, Ended, Lab, Xtcp, KDEV, STUCK, XDEV};
use xtcp::io::tcloss::TcLoss;

/// Bytes per read/write call on the kernel side (a multiple of 8, see `Prng`).
pub const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The lab: two namespaces, one veth, and the guards.

/// Print past the harness's capture (progress of long tests, figures worth seeing).
pub fn say(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "interop: {}", msg.as_ref());
}

impl Lab {
    /// Run `f` on a thread inside the kernel's namespace and return what it returns (or its panic).
    pub fn kernel<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.kns, f).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    pub fn kernel_ifindex(&self) -> i32 {
        let line = run("ip", &["-n", &self.kns, "-o", "link", "show", KDEV]);
        line.split(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("ifindex in {line:?}"))
    }

    pub fn xdp_attached(&self) -> bool {
        run("ip", &["-n", &self.xns, "-d", "link", "show", XDEV]).contains("xdp")
    }

    /// `xtcp serve --app APP --port PORT --stats`, once it is listening.
    pub fn serve(&self, app: &str, port: u16) -> Xtcp {
        let port = port.to_string();
        let mut x = self.xtcp(&["serve", "--app", app, "--port", &port]);
        x.wait_for_stderr("xtcp: serving");
        assert!(!self.ours_xdp() || self.xdp_attached(), "xtcp is serving but no XDP program is on {XDEV}");
        x
    }

    /// `xtcp client --connect ADDR ARGS… --stats`, run to its end.
    pub fn client(&self, connect: impl Into<SocketAddr>, args: &[&str]) -> Ended {
        let connect = connect.into().to_string();
        let mut all = vec!["client", "--connect", &connect];
        all.extend_from_slice(args);
        let ended = self.xtcp(&all).wait();
        assert!(
            !self.xdp_attached(),
            "an XDP program outlived the xtcp client:\n{}",
            run("ip", &["-n", &self.xns, "-d", "link", "show", XDEV])
        );
        ended
    }

    /// Remove everything and check that nothing is left: no namespace, no veth, no XDP program.
    pub fn finish(self) {
        let names = [self.xns.clone(), self.kns.clone()];
        drop(self);
        for ns in &names {
            assert!(!netns_exists(ns), "namespace {ns} left behind");
        }
        let host = run("ip", &["-o", "link"]);
        assert!(!host.contains("xdp"), "an XDP program in the host namespace:\n{host}");
        assert!(
            !host.contains(&format!("{XDEV}@")) && !host.contains(&format!("{KDEV}@")),
            "a test veth in the host namespace:\n{host}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The xtcp process and what it prints.

// ---------------------------------------------------------------------------------------------
// Data: deterministic streams and their hashes.

/// SplitMix64: a deterministic byte stream that, unlike a short repeating pattern, makes any
/// misplaced segment change the hash.
pub struct Prng(pub u64);

impl Prng {
    /// Fill `buf`; every call but the last of a stream must be a multiple of 8 bytes long.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the first `n` bytes of what `xtcp client` sends.
pub fn client_pattern_sha(n: usize) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0;
    while off < n {
        let k = (n - off).min(CHUNK);
        for (i, b) in buf[..k].iter_mut().enumerate() {
            *b = client_pattern(off + i);
        }
        h.update(&buf[..k]);
        off += k;
    }
    hex(&h.finalize())
}

/// The first `n` bytes of the PRNG stream from `seed`, handed to `f` a chunk at a time
/// (with how many bytes are left after it).
fn prng_chunks(seed: u64, n: usize, mut f: impl FnMut(&[u8], usize)) {
    let mut p = Prng(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK);
        p.fill(&mut buf[..k]);
        left -= k;
        f(&buf[..k], left);
    }
}

/// SHA-256 of `n` bytes of the PRNG stream from `seed`.
pub fn prng_sha(seed: u64, n: usize) -> String {
    let mut h = Sha256::new();
    prng_chunks(seed, n, |c, _| h.update(c));
    hex(&h.finalize())
}

/// RFC 864's chargen byte at `pos` (what `xtcp serve --app chargen` sends).
pub fn chargen_byte(pos: u64) -> u8 {
    let (line, col) = (pos / 74, pos % 74);
    match col {
        72 => b'\r',
        73 => b'\n',
        _ => b' ' + ((line + col) % 95) as u8,
    }
}

pub fn watchdog(s: &TcpStream) {
    s.set_read_timeout(Some(STUCK)).unwrap();
    s.set_write_timeout(Some(STUCK)).unwrap();
}

/// Write `n` bytes of the PRNG stream from `seed`, then shut down writing.
pub fn write_prng(mut s: TcpStream, seed: u64, n: usize) {
    prng_chunks(seed, n, |c, left| {
        s.write_all(c).unwrap_or_else(|e| panic!("writing, {} of {n} bytes to go: {e}", left + c.len()))
    });
    s.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
}

/// Read to EOF: (bytes, SHA-256).
pub fn read_to_eof(s: &mut TcpStream) -> (usize, String) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (n, hex(&h.finalize())),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading after {n} bytes: {e}"),
        }
    }
}

/// From a thread in the kernel's namespace: connect to `to`, stream `n` PRNG bytes while
/// another thread reads what comes back, shut down writing, read to EOF. (bytes back, SHA-256).
pub fn kernel_send_and_receive(to: impl Into<SocketAddr>, seed: u64, n: usize) -> (usize, String) {
    let to = to.into();
    let mut s = TcpStream::connect(to).unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    watchdog(&s);
    let w = s.try_clone().unwrap();
    // Writing and reading at once: neither side can stall the other on full buffers.
    let writer = thread::spawn(move || write_prng(w, seed, n));
    let got = read_to_eof(&mut s);
    writer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    got
}

/// A line of the kernel's `/proc/net/snmp` for the calling thread's namespace, e.g. ("Tcp", "RetransSegs").
pub fn kernel_snmp(proto: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("/proc/thread-self/net/snmp");
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (head, vals) = (lines.next().expect("header"), lines.next().expect("values"));
    let i = head.split_whitespace().position(|w| w == name).unwrap_or_else(|| panic!("no {proto} {name}"));
    vals.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// What a kernel server does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum KernelApp {
    /// Write back what is read as it comes; shut down writing at EOF.
    Echo,
    /// Read everything to EOF first, then write it all back: every reply byte follows the
    /// client's FIN.
    CollectThenReply,
    /// Write `n` PRNG bytes from `seed`, shut down writing, read to EOF.
    Source { seed: u64, n: usize },
    /// Read to EOF, then shut down writing: nothing goes back.
    Sink,
}

/// A kernel server on `port` of every address (IPv6's wildcard, which takes IPv4 too:
/// `bindv6only` is 0) for `conns` connections, one after the other. Returns
/// once it listens; joining gives the bytes received on each connection and their SHA-256.
pub fn kernel_server(lab: &Lab, port: u16, conns: usize, app: KernelApp) -> thread::JoinHandle<Vec<(usize, String)>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = in_netns(&lab.kns, move || {
        let l = TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        for _ in 0..conns {
            let deadline = Instant::now() + STUCK;
            let mut s = loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "kernel server: no connection came");
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            s.set_nonblocking(false).unwrap();
            watchdog(&s);
            let received = match app {
                KernelApp::Echo => {
                    let mut buf = vec![0u8; CHUNK];
                    let (mut n, mut h) = (0, Sha256::new());
                    loop {
                        let k = s.read(&mut buf).expect("kernel echo: read");
                        if k == 0 {
                            break;
                        }
                        s.write_all(&buf[..k]).expect("kernel echo: write");
                        h.update(&buf[..k]);
                        n += k;
                    }
                    s.shutdown(Shutdown::Write).expect("shutdown");
                    (n, hex(&h.finalize()))
                }
                KernelApp::CollectThenReply => {
                    let mut all = Vec::new();
                    s.read_to_end(&mut all).expect("kernel collect: read");
                    s.write_all(&all).expect("kernel collect: write after the client's FIN");
                    s.shutdown(Shutdown::Write).expect("shutdown");
                    (all.len(), hex(&Sha256::digest(&all)))
                }
                KernelApp::Source { seed, n } => {
                    write_prng(s.try_clone().unwrap(), seed, n);
                    read_to_eof(&mut s)
                }
                KernelApp::Sink => {
                    let got = read_to_eof(&mut s);
                    s.shutdown(Shutdown::Write).expect("shutdown");
                    got
                }
            };
            got.push(received);
        }
        got
    });
    if ready_rx.recv().is_err() {
        std::panic::resume_unwind(h.join().unwrap_err());
    }
    h
}

/// Kernel client → `xtcp serve --app echo` at `to` (which the lab's xtcp serves): each of
/// `sizes` streamed while the echo is read, half-closed, its SHA-256 checked; then xtcp's
/// counters: every connection accepted and closed, every byte in and out, no checksum
/// refused, no reset. Returns what `xtcp serve` printed, for the caller's own checks.
pub fn echo_server_kernel_client(lab: &Lab, to: SocketAddr, sizes: &[usize], seed0: u64) -> Ended {
    let server = lab.serve("echo", to.port());
    for (i, &n) in sizes.iter().enumerate() {
        let seed = seed0 + i as u64;
        let started = Instant::now();
        let (got, sha) = lab.kernel(move || kernel_send_and_receive(to, seed, n));
        say(format!("kernel → xtcp echo {to} → kernel: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
        assert_eq!(got, n, "echoed bytes for a {n}-byte transfer");
        assert_eq!(sha, prng_sha(seed, n), "SHA-256 of the echo of {n} bytes");
    }
    let end = server.terminate();
    end.assert_success("xtcp serve");
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    let conns = sizes.len() as u64;
    assert_eq!((end.stat("accepted"), end.stat("closed")), (conns, conns));
    assert_eq!((end.stat("bytes_in"), end.stat("bytes_out")), (total, total));
    assert_eq!(end.stat("drop_bad_checksum"), 0, "xtcp refused the kernel's checksums");
    assert_eq!(end.stat("tcp_resets"), 0);
    assert!(!lab.xdp_attached(), "the XDP program outlived xtcp serve");
    end
}

/// `xtcp client --send-bytes N` → a kernel echo server at `to`, for each of `sizes`: the
/// client's SHA-256 of what came back equals that of the pattern it sent, and the kernel
/// received (and echoed) exactly that.
pub fn xtcp_client_kernel_echo_server(lab: &Lab, to: SocketAddr, sizes: &[usize]) {
    let server = kernel_server(lab, to.port(), sizes.len(), KernelApp::Echo);
    for &n in sizes {
        let started = Instant::now();
        let end = lab.client(to, &["--send-bytes", &n.to_string()]);
        say(format!("xtcp client → kernel echo {to} → xtcp: {n} bytes in {:.3} s", started.elapsed().as_secs_f64()));
        end.assert_success("xtcp client");
        let (sha, received, sent) = end.client_result();
        assert_eq!((received, sent), (n, n));
        assert_eq!(sha, client_pattern_sha(n), "SHA-256 of the echo of {n} bytes");
        assert_eq!(end.line_stat("drops"), 0, "xtcp dropped frames from the kernel:\n{}", end.stderr);
    }
    let echoed = server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let want: Vec<_> = sizes.iter().map(|&n| (n, client_pattern_sha(n))).collect();
    assert_eq!(echoed, want, "what the kernel received (and echoed) per connection");
}

/// A counter of the kernel's `/proc/net/snmp6` in the calling thread's namespace.
pub fn kernel_snmp6(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp6").expect("/proc/thread-self/net/snmp6");
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().expect("a number")))
        .unwrap_or_else(|| panic!("no {name} in snmp6"))
}

/// `xtcp ping DEST -c 3` from xtcp's end (the stack's own echo requests): three replies,
/// each printed, and the kernel counted three requests (`Icmp InEchos`, or `Icmp6InEchos`).
pub fn xtcp_pings_kernel(lab: &Lab, dest: std::net::IpAddr) {
    let (proto, name) = if dest.is_ipv4() { ("Icmp", "InEchos") } else { ("", "Icmp6InEchos") };
    let count = move || if proto.is_empty() { kernel_snmp6(name) } else { kernel_snmp(proto, name) };
    let before = lab.kernel(count);
    let dest_s = dest.to_string();
    let end = lab.xtcp(&["ping", &dest_s, "-c", "3"]).wait();
    say(end.stdout.trim());
    end.assert_success("xtcp ping");
    assert!(end.stdout.contains("3 packets transmitted, 3 received"), "xtcp ping {dest}:\n{}", end.stdout);
    assert_eq!(end.stdout.matches(&format!("bytes from {dest}: icmp_seq=")).count(), 3, "{}", end.stdout);
    assert_eq!(lab.kernel(count) - before, 3, "echo requests the kernel received from xtcp");
}

/// From a thread in the kernel's namespace: `conns` sequential short connections to an echo
/// at `to` (connect, one request, its reply, half-close, EOF, close), each checked. Returns
/// how many distinct client ports they used.
pub fn kernel_short_connections(to: SocketAddr, conns: usize) -> usize {
    let mut ports = std::collections::HashSet::new();
    for i in 0..conns {
        let mut s = TcpStream::connect(to).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        watchdog(&s);
        ports.insert(s.local_addr().unwrap().port());
        let req = format!("request {i} from the kernel\n");
        s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("connection {i}: write: {e}"));
        let mut reply = vec![0u8; req.len()];
        s.read_exact(&mut reply).unwrap_or_else(|e| panic!("connection {i}: reading the reply: {e}"));
        assert_eq!(reply, req.as_bytes(), "connection {i}: reply");
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap_or_else(|e| panic!("connection {i}: waiting for xtcp's FIN: {e}"));
        assert!(rest.is_empty(), "connection {i}: more than the reply");
    }
    ports.len()
}

/// Half-close both ways, the data after each FIN checked: a kernel client that writes `n`
/// bytes to xtcp's echo at `xtcp` with a small receive buffer, shuts down writing, and is
/// shown (by `ss`, in FIN-WAIT-2) to have had part of the echo still coming after xtcp
/// acknowledged its FIN; then `xtcp client` half-closing against a kernel server at `kernel`
/// that replies only after reading to EOF.
pub fn half_close_both_ways(prefix: &str, xtcp: SocketAddr, kernel: SocketAddr) {
    half_close_both_ways_in(Lab::new(prefix), xtcp, kernel)
}

/// The same in `lab` (whose backend the caller chose).
pub fn half_close_both_ways_in(lab: Lab, xtcp: SocketAddr, kernel: SocketAddr) {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let server = lab.serve("echo", xtcp.port());
    let kns = lab.kns.clone();
    let n = 48 * 1024;
    let (queued_at_fin, got, sha) = lab.kernel(move || {
        let family = if xtcp.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        // Set before connect, so the window offered from the start is small (the kernel
        // doubles it and keeps a floor).
        socket::setsockopt(&fd, sockopt::RcvBuf, &4096).expect("SO_RCVBUF");
        socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(xtcp)).expect("connect");
        let mut s = TcpStream::from(fd);
        watchdog(&s);
        let mut data = vec![0u8; n];
        Prng(5).fill(&mut data);
        s.write_all(&data).expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let deadline = Instant::now() + STUCK;
        let queued = loop {
            let dst = xtcp.to_string();
            let out = run("ip", &["netns", "exec", &kns, "ss", "-tnH", "state", "fin-wait-2", "dst", &dst]);
            if let Some(q) = out.split_whitespace().next() {
                break q.parse::<usize>().expect("Recv-Q");
            }
            assert!(Instant::now() < deadline, "xtcp never acknowledged our FIN");
            thread::sleep(Duration::from_millis(5));
        };
        let (got, sha) = read_to_eof(&mut s);
        (queued, got, sha)
    });
    say(format!(
        "half-close to {xtcp}: {queued_at_fin} of {n} echoed bytes were queued when xtcp acknowledged our FIN"
    ));
    assert_eq!(got, n);
    assert_eq!(sha, prng_sha(5, n), "the echo after our half-close");
    assert!(queued_at_fin < n, "all of the echo had arrived before the FIN: the test showed nothing");
    let end = server.terminate();
    end.assert_success("xtcp serve");
    assert_eq!((end.stat("closed"), end.stat("tcp_resets")), (1, 0));

    let n = 100_000;
    let server = kernel_server(&lab, kernel.port(), 1, KernelApp::CollectThenReply);
    let end = lab.client(kernel, &["--send-bytes", &n.to_string()]);
    end.assert_success("xtcp client");
    let (sha, received, sent) = end.client_result();
    assert_eq!((received, sent), (n, n));
    assert_eq!(sha, client_pattern_sha(n), "what the xtcp client received after its FIN");
    assert_eq!(server.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), vec![(n, client_pattern_sha(n))]);
    lab.finish();
}

// ---------------------------------------------------------------------------------------------
// Loss injection (see tests/interop.rs's module docs).

/// Frames seen and dropped by the loss programs on kv0.
#[derive(Debug, Clone, Copy)]
pub struct LossCounts {
    /// To the kernel (kv0 ingress).
    pub to_kernel: (u64, u64),
    /// To xtcp (kv0 egress).
    pub to_xtcp: (u64, u64),
    /// Dropped segments that carried data: (to the kernel, to xtcp).
    pub data_dropped: (u64, u64),
}

/// `bpf/loss.bpf.c` (`xtcp::io::tcloss`) on kv0's ingress and egress. Dropped: detached,
/// clsact removed (from a thread in the kernel's namespace).
pub struct Loss {
    kns: String,
    inner: Option<TcLoss>,
}

impl Loss {
    /// Drop `share` (0..1) of TCP segments in each direction.
    pub fn attach(lab: &Lab, share: f64) -> Loss {
        let ifindex = lab.kernel_ifindex();
        // A failure half-way leaves filters on kv0; the lab's guard removes them with the namespace.
        let inner = lab.kernel(move || TcLoss::attach(ifindex, share, share).unwrap_or_else(|e| panic!("{KDEV}: {e}")));
        let loss = Loss { kns: lab.kns.clone(), inner: Some(inner) };
        for dir in ["ingress", "egress"] {
            let f = run("tc", &["-n", &loss.kns, "filter", "show", "dev", KDEV, dir]);
            assert!(f.contains("direct-action"), "no BPF filter on {KDEV} {dir}:\n{f}");
        }
        loss
    }

    pub fn counts(&self) -> LossCounts {
        let (i, e) = self.inner.as_ref().map(TcLoss::counts).unwrap_or_default();
        LossCounts {
            to_kernel: (i.seen, i.dropped),
            to_xtcp: (e.seen, e.dropped),
            data_dropped: (i.dropped_data, e.dropped_data),
        }
    }

    pub fn detach(&mut self) {
        if let Some(inner) = self.inner.take() {
            // tc works per namespace: detach from a thread in the kernel's.
            let _ = in_netns(&self.kns, move || drop(inner)).join();
        }
    }

    /// Detach and check that nothing of it is left on kv0.
    pub fn remove(mut self) {
        self.detach();
        for dir in ["ingress", "egress"] {
            let f = run("tc", &["-n", &self.kns, "filter", "show", "dev", KDEV, dir]);
            assert!(f.trim().is_empty(), "a tc filter left on {KDEV} {dir}:\n{f}");
        }
        let q = run("tc", &["-n", &self.kns, "qdisc", "show", "dev", KDEV]);
        assert!(!q.contains("clsact"), "the clsact qdisc is left on {KDEV}:\n{q}");
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        self.detach();
    }
}
