//! Small applications on the stack, for the `xtcp` CLI and for tests: the classic test
//! services (echo RFC 862, discard RFC 863, chargen RFC 864), a minimal HTTP/1.1 keep-alive
//! responder, a responder for sockperf's TCP modes, and a client that sends and receives a
//! byte count and hashes what it got.
//!
//! They are event-driven the way an embedding application would be: each `StackEvent` is
//! handled at once, reads are drained (an event says "something changed", not "one more
//! segment"), and a write that would block is kept and retried on `Writable`.

use crate::io::Device;
use crate::stack::{Handle, Stack, StackError, StackEvent};
use crate::tcp::{CloseReason, State, TcpError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Which service a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Echo (RFC 862): every byte received is sent back.
    Echo,
    /// Discard (RFC 863): every byte received is thrown away.
    Discard,
    /// Character generator (RFC 864): a repeating pattern of characters sent until the peer
    /// closes; what it sends is thrown away.
    Chargen,
    /// HTTP/1.1 keep-alive, every request answered with 200 and a body of this many bytes.
    Http {
        /// Length of every response body, in bytes.
        body_bytes: usize,
    },
    /// sockperf's server side for TCP (`sockperf ping-pong --tcp`, `sockperf throughput --tcp`):
    /// see [`sockperf_replies`].
    Sockperf,
}

/// sockperf's message header: sequence number (u64), flags (u16), length of the whole message
/// including this header (u32), all big-endian.
pub const SOCKPERF_HEADER: usize = 14;
/// The flag bit a client sets on all its messages; the server's replies clear it.
const SOCKPERF_CLIENT: u16 = 1;
/// The flag bit that asks for a reply (every message in ping-pong; one in `--reply-every` in
/// throughput mode).
const SOCKPERF_PONG_REQUEST: u16 = 2;
/// The longest sockperf message we take (sockperf's own limit is 64 KiB of payload); longer, or
/// shorter than the header, closes the connection.
const SOCKPERF_MAX_MESSAGE: usize = 1 << 20;

/// A sockperf header whose length is shorter than the header or over the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSockperfLength(pub usize);

/// Take every complete sockperf message from the front of `buf` and append the replies owed to
/// `out`: a message that asks for one (flag bit 1) comes back whole, with the client bit (bit 0)
/// cleared; the others are only consumed. Returns the messages consumed, or the length that
/// cannot be a sockperf message (the caller closes the connection).
pub fn sockperf_replies(buf: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<u64, BadSockperfLength> {
    let mut at = 0;
    let mut n = 0;
    while buf.len() - at >= SOCKPERF_HEADER {
        let m = &buf[at..];
        let len = u32::from_be_bytes([m[10], m[11], m[12], m[13]]) as usize;
        if !(SOCKPERF_HEADER..=SOCKPERF_MAX_MESSAGE).contains(&len) {
            return Err(BadSockperfLength(len));
        }
        if m.len() < len {
            break;
        }
        let flags = u16::from_be_bytes([m[8], m[9]]);
        if flags & SOCKPERF_PONG_REQUEST != 0 {
            let start = out.len();
            out.extend_from_slice(&m[..len]);
            let f = (flags & !SOCKPERF_CLIENT).to_be_bytes();
            out[start + 8..start + 10].copy_from_slice(&f);
        }
        at += len;
        n += 1;
    }
    buf.drain(..at);
    Ok(n)
}

/// Most bytes an HTTP request head may take before the connection is closed.
const MAX_REQUEST_HEAD: usize = 8192;
/// Bytes read or written per call.
const CHUNK: usize = 16 * 1024;

#[derive(Debug, Default)]
struct ConnState {
    /// Bytes owed to the peer that did not fit in the send buffer yet (echo data, or an HTTP
    /// response head).
    pending: Vec<u8>,
    /// HTTP: request bytes not yet parsed; body bytes still to send.
    request: Vec<u8>,
    body_left: usize,
    close_after: bool,
    /// Chargen: position in the pattern.
    offset: usize,
    peer_closed: bool,
}

/// Counters a server keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended (`StackEvent::Closed`).
    pub closed: u64,
    /// Bytes read from connections.
    pub bytes_in: u64,
    /// Bytes written to connections (taken by the stack's send buffers).
    pub bytes_out: u64,
    /// HTTP requests answered, and sockperf messages consumed.
    pub requests: u64,
}

/// A server for one listening port.
#[derive(Debug)]
pub struct Server {
    kind: AppKind,
    listener: Handle,
    conns: HashMap<Handle, ConnState>,
    scratch: Vec<u8>,
    /// What the server has counted so far.
    pub stats: ServerStats,
}

impl Server {
    /// Listen on `port` and serve `kind`.
    pub fn listen<D: Device>(
        stack: &mut Stack<D>,
        kind: AppKind,
        port: u16,
        backlog: usize,
    ) -> Result<Server, StackError> {
        let listener = stack.listen(port, backlog)?;
        Ok(Server { kind, listener, conns: HashMap::new(), scratch: vec![0u8; CHUNK], stats: ServerStats::default() })
    }

    /// The listening socket's handle.
    pub fn listener(&self) -> Handle {
        self.listener
    }

    /// Connections being served.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Connections that still have something to exchange with their peer: all but those in
    /// TIME-WAIT (which only wait out 2×MSL, RFC 9293 §3.10.7.4) and those already gone.
    pub fn unfinished<D: Device>(&self, stack: &Stack<D>) -> usize {
        self.conns.keys().filter(|&&h| !matches!(stack.state(h), Ok(State::TimeWait) | Err(_))).count()
    }

    /// Stop listening and close every connection (a graceful shutdown: FINs, not resets).
    pub fn close_all<D: Device>(&mut self, stack: &mut Stack<D>) {
        let _ = stack.close(self.listener);
        for (&h, _) in self.conns.iter() {
            let _ = stack.close(h);
        }
    }

    /// Handle one event of the stack (events for other sockets are ignored).
    pub fn on_event<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle, ev: StackEvent) {
        if h == self.listener {
            if ev == StackEvent::Accepted {
                while let Ok(Some(c)) = stack.accept(self.listener) {
                    self.stats.accepted += 1;
                    let _ = stack.set_nodelay(c, true);
                    self.conns.insert(c, ConnState::default());
                    self.serve(stack, c);
                }
            }
            return;
        }
        if !self.conns.contains_key(&h) {
            return;
        }
        match ev {
            StackEvent::Closed(_) => {
                self.conns.remove(&h);
                self.stats.closed += 1;
            }
            StackEvent::PeerClosed => {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.peer_closed = true;
                }
                self.serve(stack, h);
            }
            _ => self.serve(stack, h),
        }
    }

    /// Do all that can be done for one connection now.
    fn serve<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle) {
        let Some(mut c) = self.conns.remove(&h) else { return };
        let keep = self.serve_conn(stack, h, &mut c);
        if keep {
            self.conns.insert(h, c);
        }
    }

    /// Returns false when the connection is finished with (closed by us).
    fn serve_conn<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle, c: &mut ConnState) -> bool {
        // First what is owed from before.
        if !flush_pending(stack, h, &mut c.pending, &mut self.stats) {
            return true; // still blocked; wait for Writable
        }
        loop {
            let n = match stack.recv(h, &mut self.scratch) {
                Ok(0) => {
                    c.peer_closed = true;
                    break;
                }
                Ok(n) => n,
                Err(StackError::Tcp(TcpError::WouldBlock)) => break,
                Err(_) => return false,
            };
            self.stats.bytes_in += n as u64;
            match self.kind {
                AppKind::Echo => {
                    c.pending.extend_from_slice(&self.scratch[..n]);
                    if !flush_pending(stack, h, &mut c.pending, &mut self.stats) {
                        return true; // backpressure: stop reading until Writable
                    }
                }
                AppKind::Discard | AppKind::Chargen => {}
                AppKind::Sockperf => {
                    c.request.extend_from_slice(&self.scratch[..n]);
                    match sockperf_replies(&mut c.request, &mut c.pending) {
                        Ok(k) => self.stats.requests += k,
                        Err(BadSockperfLength(_)) => {
                            let _ = stack.close(h);
                            return false;
                        }
                    }
                    if !flush_pending(stack, h, &mut c.pending, &mut self.stats) {
                        return true; // backpressure: stop reading until Writable
                    }
                }
                AppKind::Http { .. } => {
                    if c.request.len() + n > MAX_REQUEST_HEAD + CHUNK {
                        let _ = stack.close(h);
                        return false;
                    }
                    c.request.extend_from_slice(&self.scratch[..n]);
                }
            }
        }
        match self.kind {
            AppKind::Chargen => {
                // RFC 864: keep sending while the connection is open.
                loop {
                    let line = chargen_bytes(c.offset, CHUNK, &mut self.scratch);
                    match stack.send(h, line) {
                        Ok(m) => {
                            c.offset += m;
                            self.stats.bytes_out += m as u64;
                        }
                        Err(_) => break,
                    }
                }
            }
            AppKind::Http { body_bytes } => {
                if !self.serve_http(stack, h, c, body_bytes) {
                    return false;
                }
            }
            AppKind::Echo | AppKind::Discard | AppKind::Sockperf => {}
        }
        if c.peer_closed && c.pending.is_empty() && c.body_left == 0 {
            let _ = stack.close(h);
        }
        true
    }

    fn serve_http<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle, c: &mut ConnState, body: usize) -> bool {
        loop {
            // Finish the body of the current response first.
            while c.body_left > 0 {
                let k = c.body_left.min(self.scratch.len());
                self.scratch[..k].fill(b'x');
                match stack.send(h, &self.scratch[..k]) {
                    Ok(m) => {
                        c.body_left -= m;
                        self.stats.bytes_out += m as u64;
                    }
                    Err(_) => return true, // wait for Writable
                }
            }
            if c.close_after {
                let _ = stack.close(h);
                return false;
            }
            // The next complete request head, if any.
            let Some(end) = c.request.windows(4).position(|w| w == b"\r\n\r\n") else {
                if c.request.len() > MAX_REQUEST_HEAD {
                    let _ = stack.close(h);
                    return false;
                }
                return true;
            };
            let head = &c.request[..end];
            let keep_alive = http_keep_alive(head);
            c.request.drain(..end + 4);
            self.stats.requests += 1;
            c.pending.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nServer: xtcp\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\n{}\r\n",
                    if keep_alive { "" } else { "Connection: close\r\n" }
                )
                .as_bytes(),
            );
            c.body_left = body;
            c.close_after = !keep_alive;
            if !flush_pending(stack, h, &mut c.pending, &mut self.stats) {
                return true;
            }
        }
    }
}

/// HTTP/1.1 is keep-alive unless the request says `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn http_keep_alive(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let http10 = text.lines().next().is_some_and(|l| l.ends_with("http/1.0"));
    let conn = text.lines().find_map(|l| l.strip_prefix("connection:")).map(|v| v.trim().to_string());
    match conn.as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => !http10,
    }
}

/// Send as much of `pending` as fits; true when all of it went.
fn flush_pending<D: Device>(stack: &mut Stack<D>, h: Handle, pending: &mut Vec<u8>, stats: &mut ServerStats) -> bool {
    while !pending.is_empty() {
        match stack.send(h, pending) {
            Ok(m) => {
                stats.bytes_out += m as u64;
                pending.drain(..m);
            }
            Err(_) => return false,
        }
    }
    true
}

/// RFC 864's pattern: lines of 72 printable characters, each starting one later, CRLF ended.
fn chargen_bytes(offset: usize, len: usize, buf: &mut [u8]) -> &[u8] {
    let len = len.min(buf.len());
    for (i, b) in buf[..len].iter_mut().enumerate() {
        let pos = offset + i;
        let line = pos / 74;
        let col = pos % 74;
        *b = match col {
            72 => b'\r',
            73 => b'\n',
            _ => b' ' + ((line + col) % 95) as u8,
        };
    }
    &buf[..len]
}

/// The byte at `offset` of what `Client` sends: a pattern a receiver can check.
pub fn client_pattern(offset: usize) -> u8 {
    b'a' + (offset % 26) as u8
}

/// The pattern's period.
const PATTERN_PERIOD: usize = 26;

/// `len` bytes of the pattern from `offset`, taken from `table` (the pattern from offset 0,
/// at least `len + PATTERN_PERIOD` long): sending it costs no per-byte work, so a fast
/// stack is not held back by its own test application.
fn pattern_at(table: &[u8], offset: usize, len: usize) -> &[u8] {
    let start = offset % PATTERN_PERIOD;
    &table[start..start + len]
}

/// The pattern from offset 0, `len + PATTERN_PERIOD` bytes (for `pattern_at`).
pub fn pattern_table(len: usize) -> Vec<u8> {
    (0..len + PATTERN_PERIOD).map(client_pattern).collect()
}

/// A client: connect, send `send_bytes`, shut down writing, read until the peer closes (or
/// `recv_bytes` have come), and hash what it received.
#[derive(Debug)]
pub struct Client {
    /// The connection's handle.
    pub handle: Handle,
    send_bytes: usize,
    recv_limit: Option<usize>,
    /// Bytes the stack has taken to send.
    pub sent: usize,
    /// Bytes received (and hashed).
    pub received: usize,
    hasher: Sha256,
    shut: bool,
    /// The handshake completed (`StackEvent::Connected` was seen).
    pub connected: bool,
    /// How the connection ended, once it has.
    pub finished: Option<CloseReason>,
    scratch: Vec<u8>,
    pattern: Vec<u8>,
    zero_copy: bool,
}

impl Client {
    /// Connect to `remote` (the stack picks the local address and port), to send `send_bytes` and
    /// then read until the peer closes or `recv_bytes` have come.
    pub fn connect<D: Device>(
        stack: &mut Stack<D>,
        remote: impl Into<core::net::SocketAddr>,
        send_bytes: usize,
        recv_bytes: Option<usize>,
    ) -> Result<Client, StackError> {
        let handle = stack.connect(remote)?;
        Ok(Client {
            handle,
            send_bytes,
            recv_limit: recv_bytes,
            sent: 0,
            received: 0,
            hasher: Sha256::new(),
            shut: false,
            connected: false,
            finished: None,
            scratch: vec![0u8; CHUNK],
            pattern: pattern_table(CHUNK),
            zero_copy: false,
        })
    }

    /// Send from frames of the device written in place, and hash received data where it
    /// lies (the stack's zero-copy calls), instead of copying through a buffer.
    pub fn zero_copy(mut self, on: bool) -> Client {
        self.zero_copy = on;
        self
    }

    /// Handle one event (events for other sockets are ignored).
    pub fn on_event<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle, ev: StackEvent) {
        if h != self.handle || self.finished.is_some() {
            return;
        }
        match ev {
            StackEvent::Closed(r) => {
                self.finished = Some(r);
                return;
            }
            StackEvent::Connected => self.connected = true,
            _ => {}
        }
        if self.zero_copy {
            self.zero_copy_turn(stack, h);
            return;
        }
        // Send.
        while self.sent < self.send_bytes {
            let k = (self.send_bytes - self.sent).min(CHUNK);
            match stack.send(h, pattern_at(&self.pattern, self.sent, k)) {
                Ok(m) => self.sent += m,
                Err(_) => break,
            }
        }
        if self.sent == self.send_bytes && !self.shut && self.connected {
            self.shut = stack.shutdown(h).is_ok();
        }
        // Receive.
        loop {
            match stack.recv(h, &mut self.scratch) {
                Ok(0) => {
                    let _ = stack.close(h);
                    break;
                }
                Ok(n) => {
                    self.hasher.update(&self.scratch[..n]);
                    self.received += n;
                    if self.recv_limit.is_some_and(|l| self.received >= l) {
                        let _ = stack.close(h);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }

    fn zero_copy_turn<D: Device>(&mut self, stack: &mut Stack<D>, h: Handle) {
        // Send: fill frames of the device in place.
        while self.sent < self.send_bytes {
            let Ok(mut buf) = stack.send_buf(h) else { break };
            let k = (self.send_bytes - self.sent).min(buf.capacity());
            buf[..k].copy_from_slice(pattern_at(&self.pattern, self.sent, k));
            if buf.commit(k).is_err() {
                break;
            }
            self.sent += k;
        }
        if self.sent == self.send_bytes && !self.shut && self.connected {
            self.shut = stack.shutdown(h).is_ok();
        }
        // Receive: hash the bytes where they arrived, then release them.
        let Ok(chunks) = stack.recv_chunks(h) else { return };
        let fin = chunks.fin();
        let limit = self.recv_limit.unwrap_or(usize::MAX);
        let mut n = 0;
        for c in chunks {
            let k = c.len().min(limit - self.received - n);
            self.hasher.update(&c[..k]);
            n += k;
            if self.received + n == limit {
                break;
            }
        }
        let _ = stack.consume(h, n);
        self.received += n;
        let drained = stack.tcb(h).map(|t| t.recv_available() == 0).unwrap_or(true);
        if self.received == limit || (fin && drained) {
            let _ = stack.close(h);
        }
    }

    /// Whether the client is done: the connection closed, or it is in TIME-WAIT. In TIME-WAIT
    /// our FIN is acknowledged and the peer's has arrived, so every byte both ways is through
    /// and the close was a normal one; the stack keeps the TCB for 2·MSL (60 s) to re-ACK a
    /// retransmitted FIN, but the exchange is over — as for a kernel socket, whose close()
    /// returns without waiting for TIME-WAIT. (No event marks the entry into TIME-WAIT from
    /// CLOSING, when the ACK of our FIN comes last: hence a query, made after every turn.)
    pub fn done<D: Device>(&mut self, stack: &Stack<D>) -> bool {
        if self.finished.is_none() && stack.state(self.handle) == Ok(State::TimeWait) {
            self.finished = Some(CloseReason::Normal);
        }
        self.finished.is_some()
    }

    /// SHA-256 of everything received, as hex.
    pub fn sha256_hex(&self) -> String {
        self.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(all(test, feature = "mem"))]
mod tests {
    use super::*;
    use crate::io::mem::Faults;
    use crate::stack::pair::StackPair;
    use crate::stack::StackConfig;
    use crate::time::Duration;
    use core::net::{Ipv4Addr, SocketAddrV4};

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn pair() -> StackPair {
        let f = Faults { delay: Duration::from_micros(30), ..Faults::default() };
        StackPair::new(3, f, StackConfig::new(A, 24, [1; 16]), StackConfig::new(B, 24, [2; 16]), 4096)
    }

    /// Step the pair, handing events to the server (on `a`) and the client (on `b`), until
    /// `done`; at most `steps` steps.
    fn run_until(
        p: &mut StackPair,
        server: &mut Server,
        client: &mut Client,
        steps: usize,
        mut done: impl FnMut(&mut Client, &StackPair) -> bool,
    ) {
        let mut events = Vec::new();
        for _ in 0..steps {
            p.step(&mut events);
            for (side, h, e) in events.drain(..) {
                if side == 'a' {
                    server.on_event(&mut p.a, h, e);
                } else {
                    client.on_event(&mut p.b, h, e);
                }
            }
            if done(client, p) {
                return;
            }
        }
        panic!("client not done after {steps} steps: {client:?}");
    }

    fn run(p: &mut StackPair, server: &mut Server, client: &mut Client) {
        run_until(p, server, client, 2_000_000, |c, _| c.finished.is_some());
    }

    /// 500,000 bytes through an echo server; checks the client's count and SHA-256.
    fn echo_500k(zero_copy: bool) -> StackPair {
        let mut p = pair();
        let mut server = Server::listen(&mut p.a, AppKind::Echo, 7, 16).unwrap();
        let mut client =
            Client::connect(&mut p.b, SocketAddrV4::new(A, 7), 500_000, None).unwrap().zero_copy(zero_copy);
        run(&mut p, &mut server, &mut client);
        assert_eq!(client.received, 500_000);
        let mut h = Sha256::new();
        h.update((0..500_000).map(client_pattern).collect::<Vec<u8>>());
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(client.sha256_hex(), want);
        p
    }

    #[test]
    fn echo_returns_what_was_sent() {
        echo_500k(false);
    }

    #[test]
    fn zero_copy_client_gets_the_same_echo() {
        let p = echo_500k(true);
        let c = p.b.counters();
        assert!(c.tcp_tx_in_place > 300 && c.tcp_rx_in_place > 300, "{c:?}");
        assert_eq!(p.b.frames_held(), (0, 0));
    }

    #[test]
    fn client_is_done_in_time_wait() {
        let mut p = pair();
        let mut server = Server::listen(&mut p.a, AppKind::Echo, 7, 16).unwrap();
        let mut client = Client::connect(&mut p.b, SocketAddrV4::new(A, 7), 1000, None).unwrap();
        run_until(&mut p, &mut server, &mut client, 100_000, |c, p| c.done(&p.b));
        // The client sent its FIN first: it is done in TIME-WAIT, long before 2·MSL.
        assert_eq!(client.finished, Some(CloseReason::Normal));
        assert_eq!(p.b.state(client.handle), Ok(State::TimeWait));
        assert_eq!(client.received, 1000);
        assert!(p.now < crate::time::Instant::from_secs(10), "done only at {:?}", p.now);
    }

    #[test]
    fn http_keep_alive_and_close() {
        let mut p = pair();
        let mut server = Server::listen(&mut p.a, AppKind::Http { body_bytes: 10_000 }, 80, 16).unwrap();
        let h = p.b.connect(SocketAddrV4::new(A, 80)).unwrap();
        let mut events = Vec::new();
        let mut got = Vec::new();
        let mut sent = false;
        for _ in 0..1_000_000 {
            p.step(&mut events);
            for (side, hh, e) in events.drain(..) {
                if side == 'a' {
                    server.on_event(&mut p.a, hh, e);
                } else if e == StackEvent::Connected && !sent {
                    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nConnection: close\r\n\r\n";
                    assert_eq!(p.b.send(hh, req), Ok(req.len()));
                    sent = true;
                } else {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = p.b.recv(hh, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                }
            }
            if p.b.state(h).is_err() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "two responses on one connection");
        assert_eq!(text.matches("Connection: close").count(), 1);
        assert_eq!(text.matches(&format!("\r\n\r\n{}", "x".repeat(10_000))).count(), 2, "two full bodies");
        assert_eq!(server.stats.requests, 2);
    }

    fn sockperf_msg(seq: u64, flags: u16, len: usize) -> Vec<u8> {
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.resize(len, 0x33);
        m
    }

    #[test]
    fn sockperf_answers_only_what_asks_for_a_reply() {
        // Ping-pong asks (client | pong-request); a throughput message does not (client only).
        let wire = [sockperf_msg(7, 3, 64), sockperf_msg(8, 1, 100), sockperf_msg(9, 3, 14)].concat();
        for split in 0..wire.len() {
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            buf.extend_from_slice(&wire[..split]);
            let a = sockperf_replies(&mut buf, &mut out).unwrap();
            buf.extend_from_slice(&wire[split..]);
            let b = sockperf_replies(&mut buf, &mut out).unwrap();
            assert_eq!(a + b, 3, "split at {split}");
            assert!(buf.is_empty());
            assert_eq!(out, [sockperf_msg(7, 2, 64), sockperf_msg(9, 2, 14)].concat(), "split at {split}");
        }
    }

    #[test]
    fn sockperf_bad_lengths_are_refused() {
        let mut out = Vec::new();
        assert_eq!(sockperf_replies(&mut sockperf_msg(1, 3, 20)[..14].to_vec(), &mut out), Ok(0));
        let mut short = sockperf_msg(1, 3, 20);
        short[13] = 13; // shorter than its own header
        assert_eq!(sockperf_replies(&mut short, &mut out), Err(BadSockperfLength(13)));
        let mut long = sockperf_msg(1, 3, 20);
        long[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(sockperf_replies(&mut long, &mut out), Err(BadSockperfLength(u32::MAX as usize)));
        assert!(out.is_empty());
    }

    #[test]
    fn sockperf_ping_pong_over_the_stack() {
        let mut p = pair();
        let mut server = Server::listen(&mut p.a, AppKind::Sockperf, 11111, 16).unwrap();
        let h = p.b.connect(SocketAddrV4::new(A, 11111)).unwrap();
        let mut events = Vec::new();
        let mut got = Vec::new();
        let want = [sockperf_msg(1, 2, 64), sockperf_msg(3, 2, 1000)].concat();
        for _ in 0..1_000_000 {
            p.step(&mut events);
            for (side, hh, e) in events.drain(..) {
                if side == 'a' {
                    server.on_event(&mut p.a, hh, e);
                } else if e == StackEvent::Connected {
                    let msgs = [sockperf_msg(1, 3, 64), sockperf_msg(2, 1, 500), sockperf_msg(3, 3, 1000)].concat();
                    assert_eq!(p.b.send(hh, &msgs), Ok(msgs.len()));
                } else {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = p.b.recv(hh, &mut buf) {
                        got.extend_from_slice(&buf[..n]);
                    }
                }
            }
            if got.len() >= want.len() {
                break;
            }
        }
        assert_eq!(got, want);
        assert_eq!(server.stats.requests, 3);
        let _ = h;
    }

    #[test]
    fn chargen_pattern_is_rfc864() {
        let mut buf = [0u8; 148];
        let b = chargen_bytes(0, 148, &mut buf);
        assert_eq!(&b[..3], b" !\"");
        assert_eq!(&b[72..74], b"\r\n");
        assert_eq!(b[74], b'!', "each line starts one character later");
    }

    #[test]
    fn keep_alive_rules() {
        assert!(http_keep_alive(b"GET / HTTP/1.1\r\nHost: a"));
        assert!(!http_keep_alive(b"GET / HTTP/1.1\r\nConnection: close"));
        assert!(!http_keep_alive(b"GET / HTTP/1.0"));
        assert!(http_keep_alive(b"GET / HTTP/1.0\r\nConnection: Keep-Alive"));
    }
}
