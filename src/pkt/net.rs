//! A tiny socket layer over TCBs: what a script's system calls talk to, and where its
//! packets arrive. It plays the part of the kernel around Linux's TCP in packetdrill: file
//! descriptors (the first socket is 3), listeners with an accept queue, a connection table
//! that demultiplexes inbound segments by port, and `reset_for` for segments that belong to
//! nothing (RFC 9293 §3.10.7.1).
//!
//! The error codes follow Linux, since that is what scripts are written against: which call
//! reports ECONNRESET, EPIPE or EAGAIN, and when (`tcp_sendmsg`, `tcp_recvmsg`, `tcp_poll`,
//! `tcp_reset`).

use super::parse::{Flags, TcpOpt};
use super::symbols::*;
use crate::tcp::{reset_for, CloseReason, Event, Keepalive, RxInfo, SeqNum, State, Tcb, TcpConfig};
use crate::time::{Duration, Instant};
use crate::wire::{RxChecksum, TcpFlags, TcpOption, TcpPacket, TcpRepr};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};

/// The stack's address (packetdrill's local address, in this project's benchmarking range).
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The script's peer.
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The stack's address under `--ip_version=ipv6` (RFC 5180's benchmarking range).
pub const LOCAL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// The script's peer under `--ip_version=ipv6`.
pub const REMOTE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
/// Port for `bind(fd, ..., ...)` and `connect(fd, ..., ...)` when the script does not name
/// one (packetdrill's `--bind_port` and `--connect_port` default).
pub const DEFAULT_PORT: u16 = 8080;
/// Our initial sequence number for every connection. Scripts never see it (sequence numbers
/// are remapped), so it is chosen to make the stack's sequence space wrap 1 KB into every
/// connection: each script also checks modular arithmetic.
pub const LIVE_ISN: u32 = 0xFFFF_FC00;
/// First local port handed out by `connect` on an unbound socket.
const FIRST_EPHEMERAL: u16 = 48000;
/// Most segments one flush may produce before the stack is declared runaway.
const MAX_SEGMENTS_PER_FLUSH: usize = 10_000;

/// The byte at `offset` in any stream the interpreter writes or injects. A position-dependent
/// pattern (not packetdrill's zeros) lets the interpreter check that every retransmission and
/// every read carries the right bytes.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// Fill `buf` with the pattern from stream offset `offset`.
pub fn pattern_fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + i as u64);
    }
}

/// A segment the stack sent, with its options as they were on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSeg {
    pub time: Instant,
    pub local_port: u16,
    pub remote_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<TcpOpt>,
    pub payload: Vec<u8>,
    /// Sent ECN-capable (ECT(0)): the TCB's `last_tx_ect`.
    pub ect: bool,
}

/// One connection and what its socket has been told.
#[derive(Debug)]
pub struct Conn {
    pub tcb: Tcb,
    /// The descriptor that owns it; `None` once closed (or while it waits in an accept queue).
    pub fd: Option<i32>,
    /// The listener whose accept queue holds it.
    pub listener: Option<i32>,
    pub connected: bool,
    pub peer_fin: bool,
    pub closed: Option<CloseReason>,
    /// Linux's `sk_err`: reported (and cleared) by the next call that can fail.
    pub pending_error: Option<i64>,
    last_state: State,
}

/// Socket options the interpreter maps onto the TCB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SockOpts {
    pub nodelay: bool,
    pub cork: bool,
    pub keepalive: bool,
    pub keepidle: Option<u64>,
    pub keepintvl: Option<u64>,
    pub keepcnt: Option<u32>,
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
    pub maxseg: Option<u16>,
    /// `SO_LINGER` with `l_onoff` set: the linger time in seconds.
    pub linger: Option<i64>,
}

#[derive(Debug)]
pub enum SockKind {
    Fresh,
    Listening { backlog: usize, queue: Vec<usize> },
    Conn(usize),
}

#[derive(Debug)]
pub struct Socket {
    pub kind: SockKind,
    pub port: Option<u16>,
    pub nonblocking: bool,
    pub opts: SockOpts,
    pub shut_rd: bool,
    pub shut_wr: bool,
    /// Stream offset of the next byte `read` returns (to check it against the pattern).
    pub read_offset: u64,
    /// Stream offset of the next byte `write` queues.
    pub write_offset: u64,
    /// Linux's `SS_CONNECTED`: a connect() has reported success (or the socket came from
    /// accept), so the next connect() is EISCONN.
    pub connect_reported: bool,
}

/// A system call's result: a value, an errno, or "would block".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysRet {
    Ok(i64),
    Err(i64),
    Block,
}

/// What a test harness sees go wrong inside the socket layer (not a script mismatch).
pub type NetError = String;

/// The socket layer and every connection.
#[derive(Debug)]
pub struct Kernel {
    pub now: Instant,
    base: TcpConfig,
    /// The stack's address and the script's peer's: IPv4 unless `--ip_version=ipv6`.
    ips: (IpAddr, IpAddr),
    pub conns: Vec<Option<Conn>>,
    pub sockets: BTreeMap<i32, Socket>,
    /// The descriptor the script expects the next `socket`/`accept` to return.
    pub fd_hint: Option<i32>,
    /// Segments sent and not yet consumed by the script, oldest first.
    pub out: VecDeque<OutSeg>,
    next_ephemeral: u16,
    payload_buf: Vec<u8>,
    /// Things worth telling in `--verbose` mode.
    pub notes: Vec<String>,
}

impl Kernel {
    pub fn new(base: TcpConfig) -> Kernel {
        Kernel {
            now: Instant::ZERO,
            base,
            ips: (LOCAL_IP.into(), REMOTE_IP.into()),
            conns: Vec::new(),
            sockets: BTreeMap::new(),
            fd_hint: None,
            out: VecDeque::new(),
            next_ephemeral: FIRST_EPHEMERAL,
            payload_buf: vec![0u8; 65536],
            notes: Vec::new(),
        }
    }

    /// The settings new sockets start from (a script's `sysctl` lines change them).
    pub fn base(&self) -> &TcpConfig {
        &self.base
    }
    pub fn base_mut(&mut self) -> &mut TcpConfig {
        &mut self.base
    }

    /// Run over IPv6 (`--ip_version=ipv6`): the stack at [`LOCAL_IP6`], the peer at
    /// [`REMOTE_IP6`], the MSS 20 bytes smaller for IPv6's larger header (RFC 8200 §5: 1500
    /// − 40 − 20), as the stack's own connections over IPv6 have it.
    pub fn use_ipv6(&mut self) {
        self.ips = (LOCAL_IP6.into(), REMOTE_IP6.into());
    }

    /// (the stack's address, the peer's address).
    pub fn ips(&self) -> (IpAddr, IpAddr) {
        self.ips
    }

    fn note(&mut self, s: String) {
        self.notes.push(s);
    }

    fn conn(&self, id: usize) -> Option<&Conn> {
        self.conns.get(id).and_then(Option::as_ref)
    }

    fn conn_mut(&mut self, id: usize) -> Option<&mut Conn> {
        self.conns.get_mut(id).and_then(Option::as_mut)
    }

    /// The live connection for a 4-tuple (a CLOSED TCB no longer owns its tuple).
    fn lookup(&self, local_port: u16, remote_port: u16) -> Option<usize> {
        self.conns.iter().position(|c| {
            c.as_ref().is_some_and(|c| {
                c.tcb.state() != State::Closed
                    && c.tcb.local().port() == local_port
                    && c.tcb.remote().port() == remote_port
            })
        })
    }

    fn listener_on(&self, port: u16) -> Option<i32> {
        self.sockets
            .iter()
            .find(|(_, s)| matches!(s.kind, SockKind::Listening { .. }) && s.port == Some(port))
            .map(|(&fd, _)| fd)
    }

    fn config_for(&self, opts: &SockOpts) -> TcpConfig {
        let mut cfg = self.base.clone();
        if opts.nodelay {
            cfg.nagle = false;
        }
        if let Some(b) = opts.rcvbuf {
            cfg.recv_buffer = b;
        }
        if let Some(b) = opts.sndbuf {
            // SO_SNDBUF fixes the size (Linux's SOCK_SNDBUF_LOCK: no autotuning after it).
            cfg.send_buffer = b;
            cfg.send_buffer_max = b;
        }
        if let Some(m) = opts.maxseg {
            cfg.mss = m;
        } else if self.ips.0.is_ipv6() {
            cfg.mss = cfg.mss.saturating_sub(20).max(88); // as stack::listen's conn_tcp_config
        }
        cfg.keepalive = keepalive_of(opts);
        cfg
    }

    fn add_conn(&mut self, conn: Conn) -> usize {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            self.conns[i] = Some(conn);
            i
        } else {
            self.conns.push(Some(conn));
            self.conns.len() - 1
        }
    }

    fn new_conn(tcb: Tcb, fd: Option<i32>, listener: Option<i32>) -> Conn {
        let last_state = tcb.state();
        Conn { tcb, fd, listener, connected: false, peer_fin: false, closed: None, pending_error: None, last_state }
    }

    // ------------------------------------------------------------------ the wire

    /// A segment from the script's peer, as bytes on the wire (the stack parses them the way
    /// it parses a received frame).
    pub fn deliver(&mut self, local_port: u16, remote_port: u16, bytes: &[u8], ce: bool) -> Result<(), NetError> {
        let pkt = match TcpPacket::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.note(format!("the wire layer dropped the inbound segment: {e}"));
                return Ok(());
            }
        };
        let (local_ip, remote_ip) = self.ips;
        let seg = match TcpRepr::parse(&pkt, remote_ip, local_ip, RxChecksum::Verify) {
            Ok(s) => s,
            Err(e) => {
                self.note(format!("the wire layer dropped the inbound segment: {e}"));
                return Ok(());
            }
        };
        let from = SocketAddr::new(remote_ip, remote_port);
        if let Some(id) = self.lookup(local_port, remote_port) {
            let now = self.now;
            if let Some(c) = self.conn_mut(id) {
                c.tcb.on_segment_with(now, from, &seg, RxInfo { ce, may_lend: false });
            }
        } else if let Some(lfd) = self.listener_on(local_port) {
            self.listener_input(lfd, from, &seg);
        } else {
            // RFC 9293 §3.10.7.1: CLOSED. Everything but a reset gets a reset.
            if let Some(rst) = reset_for(&seg) {
                self.note("no socket for the inbound segment: answered with a reset".into());
                self.queue_out(local_port, remote_port, &rst);
            } else {
                self.note("no socket for the inbound reset: dropped".into());
            }
        }
        self.flush()
    }

    /// RFC 9293 §3.10.7.2, for a listener that keeps an accept queue instead of a TCB in
    /// LISTEN: a SYN makes a child in SYN-RECEIVED (`Tcb::from_syn`).
    fn listener_input(&mut self, lfd: i32, from: SocketAddr, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return; // "An incoming RST segment could not be valid ... ignore it."
        }
        if f.contains(TcpFlags::ACK) {
            // "Any acknowledgment is bad if it arrives on a connection still in the LISTEN
            // state": <SEQ=SEG.ACK><CTL=RST>.
            if let Some(rst) = reset_for(seg) {
                self.queue_out(seg.dst_port, seg.src_port, &rst);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        let Some(sock) = self.sockets.get(&lfd) else { return };
        let SockKind::Listening { backlog, queue } = &sock.kind else { return };
        // Linux admits backlog + 1 connections to the queue; beyond that SYNs are dropped and
        // the peer retransmits.
        if queue.len() > *backlog {
            self.note(format!("accept queue of fd {lfd} is full: SYN dropped"));
            return;
        }
        let cfg = self.config_for(&sock.opts);
        let local = SocketAddr::new(self.ips.0, seg.dst_port);
        let tcb = Tcb::from_syn(cfg, local, from, SeqNum(LIVE_ISN), seg, self.now);
        let id = self.add_conn(Kernel::new_conn(tcb, None, Some(lfd)));
        if let Some(Socket { kind: SockKind::Listening { queue, .. }, .. }) = self.sockets.get_mut(&lfd) {
            queue.push(id);
        }
    }

    fn queue_out(&mut self, local_port: u16, remote_port: u16, r: &TcpRepr<'_>) {
        let seg = out_seg(self.now, self.ips, local_port, remote_port, r);
        self.out.push_back(seg);
    }

    /// Take every segment the stack wants to send now, learn what happened to each
    /// connection, and forget connections that are over.
    pub fn flush(&mut self) -> Result<(), NetError> {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.payload_buf);
        let mut produced = Vec::new();
        for c in self.conns.iter_mut().flatten() {
            let mut n = 0;
            while let Some(r) = c.tcb.poll_transmit(now, &mut buf) {
                n += 1;
                if n > MAX_SEGMENTS_PER_FLUSH {
                    self.payload_buf = buf;
                    return Err(format!(
                        "the stack produced more than {MAX_SEGMENTS_PER_FLUSH} segments at one instant (runaway output)"
                    ));
                }
                let ips = (c.tcb.local().ip(), c.tcb.remote().ip());
                let mut seg = out_seg(now, ips, c.tcb.local().port(), c.tcb.remote().port(), &r);
                seg.ect = c.tcb.last_tx_ect();
                produced.push(seg);
            }
        }
        self.payload_buf = buf;
        self.out.extend(produced);
        self.collect_events();
        self.collect_garbage();
        Ok(())
    }

    fn collect_events(&mut self) {
        for c in self.conns.iter_mut().flatten() {
            while let Some(ev) = c.tcb.poll_event() {
                match ev {
                    Event::Connected => c.connected = true,
                    Event::PeerClosed => c.peer_fin = true,
                    Event::Closed(reason) => {
                        c.closed = Some(reason);
                        // Linux tcp_reset: ECONNREFUSED in SYN-SENT, EPIPE in CLOSE-WAIT,
                        // ECONNRESET otherwise; tcp_write_err: ETIMEDOUT.
                        c.pending_error = match reason {
                            CloseReason::Refused => Some(ECONNREFUSED),
                            CloseReason::Reset if c.last_state == State::CloseWait => Some(EPIPE),
                            CloseReason::Reset => Some(ECONNRESET),
                            CloseReason::TimedOut => Some(ETIMEDOUT),
                            CloseReason::Aborted | CloseReason::Normal => None,
                        };
                    }
                    Event::Readable | Event::Writable => {}
                }
            }
            c.last_state = c.tcb.state();
        }
    }

    fn collect_garbage(&mut self) {
        let mut dead = Vec::new();
        for (id, slot) in self.conns.iter().enumerate() {
            let Some(c) = slot else { continue };
            if c.fd.is_some() {
                continue;
            }
            match c.listener {
                // A child that never completed the handshake and is gone leaves the queue
                // (Linux drops the request socket); one that connected stays, and accept()
                // returns it with its error.
                Some(_) if c.closed.is_some() && !c.connected => dead.push(id),
                Some(_) => {}
                None if c.tcb.state() == State::Closed => dead.push(id),
                None => {}
            }
        }
        for id in dead {
            if let Some(c) = self.conns.get_mut(id).and_then(Option::take) {
                if let Some(lfd) = c.listener {
                    if let Some(Socket { kind: SockKind::Listening { queue, .. }, .. }) = self.sockets.get_mut(&lfd) {
                        queue.retain(|&q| q != id);
                    }
                }
            }
        }
    }

    /// The earliest timer of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().filter_map(|c| c.tcb.poll_timeout()).min()
    }

    /// Run every timer due at `self.now`, then flush.
    pub fn fire_timers(&mut self) -> Result<(), NetError> {
        let now = self.now;
        for c in self.conns.iter_mut().flatten() {
            if matches!(c.tcb.poll_timeout(), Some(d) if d <= now) {
                c.tcb.handle_timeout(now);
            }
        }
        self.flush()
    }

    // ------------------------------------------------------------------ system calls

    fn lowest_free_fd(&mut self) -> i32 {
        // packetdrill maps the script's descriptor numbers to the live ones: a script may
        // name its first socket 4. The number the script expects is used when it is free.
        if let Some(want) = self.fd_hint.take() {
            if want >= 3 && !self.sockets.contains_key(&want) {
                return want;
            }
        }
        let mut fd = 3;
        while self.sockets.contains_key(&fd) {
            fd += 1;
        }
        fd
    }

    pub fn socket(&mut self, nonblocking: bool) -> i64 {
        let fd = self.lowest_free_fd();
        self.sockets.insert(
            fd,
            Socket {
                kind: SockKind::Fresh,
                port: None,
                nonblocking,
                opts: SockOpts::default(),
                shut_rd: false,
                shut_wr: false,
                read_offset: 0,
                write_offset: 0,
                connect_reported: false,
            },
        );
        i64::from(fd)
    }

    pub fn bind(&mut self, fd: i32, port: u16) -> SysRet {
        let in_use = self.sockets.iter().any(|(&f, s)| f != fd && s.port == Some(port));
        let Some(s) = self.sockets.get_mut(&fd) else { return SysRet::Err(EBADF) };
        if s.port.is_some() || !matches!(s.kind, SockKind::Fresh) {
            return SysRet::Err(EINVAL);
        }
        if in_use {
            return SysRet::Err(EADDRINUSE);
        }
        s.port = Some(port);
        SysRet::Ok(0)
    }

    pub fn listen(&mut self, fd: i32, backlog: i64) -> SysRet {
        let Some(s) = self.sockets.get_mut(&fd) else { return SysRet::Err(EBADF) };
        let backlog = usize::try_from(backlog.max(0)).unwrap_or(0).min(4096);
        match &mut s.kind {
            SockKind::Fresh => {
                // An unbound socket listens on the default port (Linux would pick an
                // ephemeral one; scripts bind first).
                s.port.get_or_insert(DEFAULT_PORT);
                s.kind = SockKind::Listening { backlog, queue: Vec::new() };
                SysRet::Ok(0)
            }
            SockKind::Listening { backlog: b, .. } => {
                *b = backlog;
                SysRet::Ok(0)
            }
            SockKind::Conn(_) => SysRet::Err(EINVAL),
        }
    }

    /// `Ok(fd)` of the accepted connection.
    pub fn accept(&mut self, fd: i32) -> SysRet {
        let Some(s) = self.sockets.get(&fd) else { return SysRet::Err(EBADF) };
        let SockKind::Listening { queue, .. } = &s.kind else { return SysRet::Err(EINVAL) };
        let ready = queue.iter().copied().find(|&id| self.conn(id).is_some_and(|c| c.connected));
        let Some(id) = ready else {
            return if s.nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block };
        };
        let (port, opts) = (s.port, s.opts.clone());
        if let Some(Socket { kind: SockKind::Listening { queue, .. }, .. }) = self.sockets.get_mut(&fd) {
            queue.retain(|&q| q != id);
        }
        let new_fd = self.lowest_free_fd();
        if let Some(c) = self.conn_mut(id) {
            c.fd = Some(new_fd);
            c.listener = None;
        }
        self.sockets.insert(
            new_fd,
            Socket {
                kind: SockKind::Conn(id),
                port,
                nonblocking: false,
                opts,
                shut_rd: false,
                shut_wr: false,
                read_offset: 0,
                write_offset: 0,
                connect_reported: true,
            },
        );
        SysRet::Ok(i64::from(new_fd))
    }

    /// Start (or check on) an active open. Returns the connection id too when one was made.
    pub fn connect(&mut self, fd: i32, remote_port: u16) -> Result<(SysRet, Option<usize>), NetError> {
        let Some(s) = self.sockets.get(&fd) else { return Ok((SysRet::Err(EBADF), None)) };
        match s.kind {
            SockKind::Fresh => {}
            SockKind::Listening { .. } => return Ok((SysRet::Err(EISCONN), None)),
            SockKind::Conn(id) => return Ok((self.connect_progress(fd, id), None)),
        }
        let local_port = match s.port {
            Some(p) => p,
            None => {
                let p = self.next_ephemeral;
                self.next_ephemeral = self.next_ephemeral.wrapping_add(1).max(FIRST_EPHEMERAL);
                p
            }
        };
        let cfg = self.config_for(&s.opts);
        let nonblocking = s.nonblocking;
        let tcb = Tcb::connect(
            cfg,
            SocketAddr::new(self.ips.0, local_port),
            SocketAddr::new(self.ips.1, remote_port),
            SeqNum(LIVE_ISN),
            self.now,
        );
        let id = self.add_conn(Kernel::new_conn(tcb, Some(fd), None));
        if let Some(s) = self.sockets.get_mut(&fd) {
            s.kind = SockKind::Conn(id);
            s.port = Some(local_port);
        }
        self.flush()?;
        let ret = if nonblocking { SysRet::Err(EINPROGRESS) } else { self.connect_progress(fd, id) };
        Ok((ret, Some(id)))
    }

    /// A connect() on a socket whose open already started (a blocking connect waiting, or a
    /// non-blocking one asked again), as Linux `__inet_stream_connect`: EALREADY while the
    /// handshake runs, the connection's error once it failed, 0 the first time after it
    /// succeeded, EISCONN after that.
    pub fn connect_progress(&mut self, fd: i32, id: usize) -> SysRet {
        let Some(s) = self.sockets.get(&fd) else { return SysRet::Err(EBADF) };
        let (nonblocking, reported) = (s.nonblocking, s.connect_reported);
        if reported {
            return SysRet::Err(EISCONN);
        }
        let Some(c) = self.conn_mut(id) else { return SysRet::Err(EBADF) };
        if c.closed.is_some() {
            return SysRet::Err(c.pending_error.take().unwrap_or(ECONNABORTED));
        }
        if c.connected {
            if let Some(s) = self.sockets.get_mut(&fd) {
                s.connect_reported = true;
            }
            return SysRet::Ok(0);
        }
        if nonblocking {
            SysRet::Err(EALREADY)
        } else {
            SysRet::Block
        }
    }

    /// Whether a blocking connect has finished (connected or failed).
    pub fn connect_done(&self, id: usize) -> bool {
        self.conn(id).is_none_or(|c| c.connected || c.closed.is_some())
    }

    fn sock_conn(&self, fd: i32) -> Option<usize> {
        match self.sockets.get(&fd)?.kind {
            SockKind::Conn(id) => Some(id),
            _ => None,
        }
    }

    /// Read up to `len` bytes; `Ok(n)` with the bytes in `data`.
    pub fn read(&mut self, fd: i32, len: usize, dontwait: bool, data: &mut Vec<u8>) -> SysRet {
        data.clear();
        let Some(s) = self.sockets.get(&fd) else { return SysRet::Err(EBADF) };
        let nonblocking = s.nonblocking || dontwait;
        let shut_rd = s.shut_rd;
        let Some(c) = self.sock_conn(fd).and_then(|id| self.conn_mut(id)) else {
            return if shut_rd { SysRet::Ok(0) } else { SysRet::Err(ENOTCONN) };
        };
        // After SHUT_RD Linux still takes data in and hands it out; with nothing queued the
        // read is the end of the stream (tcp_recvmsg checks RCV_SHUTDOWN after copying).
        if shut_rd && c.tcb.recv_available() == 0 {
            return SysRet::Ok(0);
        }
        if len == 0 {
            return SysRet::Ok(0);
        }
        data.resize(len.min(1 << 24), 0);
        match c.tcb.recv(data) {
            Ok(n) => {
                data.truncate(n);
                if let Some(s) = self.sockets.get_mut(&fd) {
                    s.read_offset += n as u64;
                }
                SysRet::Ok(n as i64)
            }
            Err(e) => {
                data.clear();
                if let Some(err) = c.pending_error.take() {
                    return SysRet::Err(err);
                }
                match e {
                    crate::tcp::TcpError::WouldBlock if nonblocking => SysRet::Err(EAGAIN),
                    crate::tcp::TcpError::WouldBlock => SysRet::Block,
                    // The error was reported once; then the stream just ends (Linux: a done
                    // socket reads 0).
                    crate::tcp::TcpError::Closed(_) => SysRet::Ok(0),
                    crate::tcp::TcpError::InvalidState(_) | crate::tcp::TcpError::WriteClosed => SysRet::Err(ENOTCONN),
                }
            }
        }
    }

    /// Whether a blocking read could return now.
    pub fn read_ready(&self, fd: i32) -> bool {
        let Some(s) = self.sockets.get(&fd) else { return true };
        if s.shut_rd {
            return true;
        }
        let Some(c) = self.sock_conn(fd).and_then(|id| self.conn(id)) else { return true };
        c.tcb.recv_available() > 0 || c.peer_fin || c.closed.is_some() || c.pending_error.is_some()
    }

    /// Queue up to `len` bytes of the pattern; `Ok(n)` bytes taken. A blocking write that
    /// could take only part returns `Block` after queueing what fit (the caller keeps count).
    pub fn write(&mut self, fd: i32, len: usize, dontwait: bool) -> SysRet {
        let Some(s) = self.sockets.get(&fd) else { return SysRet::Err(EBADF) };
        let nonblocking = s.nonblocking || dontwait;
        let offset = s.write_offset;
        if s.shut_wr {
            return SysRet::Err(EPIPE);
        }
        // Linux tcp_sendmsg on a socket that is not connected: EPIPE.
        let Some(id) = self.sock_conn(fd) else { return SysRet::Err(EPIPE) };
        let Some(c) = self.conn_mut(id) else { return SysRet::Err(EPIPE) };
        if let Some(e) = c.pending_error.take() {
            return SysRet::Err(e);
        }
        match c.tcb.state() {
            State::Closed => return SysRet::Err(EPIPE),
            // sk_stream_wait_connect: wait for the handshake (or EAGAIN).
            State::SynSent | State::SynReceived => {
                return if nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block };
            }
            _ => {}
        }
        if len == 0 {
            return SysRet::Ok(0);
        }
        let room = c.tcb.send_capacity().min(len);
        let mut data = vec![0u8; room];
        pattern_fill(&mut data, offset);
        let taken = match c.tcb.send(&data) {
            Ok(n) => n,
            Err(crate::tcp::TcpError::WouldBlock) => 0,
            Err(_) => return SysRet::Err(EPIPE),
        };
        if let Some(s) = self.sockets.get_mut(&fd) {
            s.write_offset += taken as u64;
        }
        if taken == 0 {
            return if nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block };
        }
        SysRet::Ok(taken as i64)
    }

    /// Whether a blocked write can make progress.
    pub fn write_ready(&self, fd: i32) -> bool {
        let Some(s) = self.sockets.get(&fd) else { return true };
        if s.shut_wr {
            return true;
        }
        let Some(c) = self.sock_conn(fd).and_then(|id| self.conn(id)) else { return true };
        match c.tcb.state() {
            State::SynSent | State::SynReceived => c.pending_error.is_some(),
            State::Established | State::CloseWait => c.tcb.send_capacity() > 0 || c.pending_error.is_some(),
            _ => true,
        }
    }

    pub fn close(&mut self, fd: i32) -> Result<SysRet, NetError> {
        let Some(s) = self.sockets.remove(&fd) else { return Ok(SysRet::Err(EBADF)) };
        match s.kind {
            SockKind::Fresh => {}
            SockKind::Listening { queue, .. } => {
                // Linux inet_csk_listen_stop: children that completed the handshake are reset
                // (tcp_disconnect); half-open ones are dropped without a word.
                for id in queue {
                    let Some(c) = self.conn_mut(id) else { continue };
                    c.listener = None;
                    if c.connected {
                        c.tcb.abort();
                    } else if let Some(slot) = self.conns.get_mut(id) {
                        *slot = None;
                    }
                }
            }
            SockKind::Conn(id) => {
                let linger_zero = s.opts.linger == Some(0);
                if let Some(c) = self.conn_mut(id) {
                    c.fd = None;
                    if linger_zero {
                        // SO_LINGER with a zero timeout: an abortive close (RFC 9293 §3.10.5).
                        c.tcb.abort();
                    } else if c.tcb.state() != State::Closed {
                        let _ = c.tcb.close();
                    }
                }
            }
        }
        self.flush()?;
        Ok(SysRet::Ok(0))
    }

    pub fn shutdown(&mut self, fd: i32, how: i64) -> Result<SysRet, NetError> {
        let Some(s) = self.sockets.get_mut(&fd) else { return Ok(SysRet::Err(EBADF)) };
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Ok(SysRet::Err(EINVAL));
        }
        let SockKind::Conn(id) = s.kind else { return Ok(SysRet::Err(ENOTCONN)) };
        if how == SHUT_RD || how == SHUT_RDWR {
            s.shut_rd = true;
        }
        if how == SHUT_WR || how == SHUT_RDWR {
            s.shut_wr = true;
            if let Some(c) = self.conn_mut(id) {
                if c.tcb.state() != State::Closed {
                    let _ = c.tcb.shutdown();
                }
            }
        }
        self.flush()?;
        Ok(SysRet::Ok(0))
    }

    /// The tcp_info of the connection between these ports (the newest, if several).
    pub fn tcp_info(&self, local_port: u16, remote_port: u16) -> Option<crate::tcp::TcpInfo> {
        self.conns
            .iter()
            .rev()
            .flatten()
            .find(|c| c.tcb.local().port() == local_port && c.tcb.remote().port() == remote_port)
            .map(|c| c.tcb.info())
    }

    /// Act on the socket's connection, if it has one (TCP_NODELAY's push, MSG_MORE,
    /// TCP_QUICKACK: calls on the TCB rather than lasting options).
    pub fn with_tcb(&mut self, fd: i32, f: impl FnOnce(&mut crate::tcp::Tcb, Instant)) {
        let now = self.now;
        if let Some(c) = self.sock_conn(fd).and_then(|id| self.conn_mut(id)) {
            f(&mut c.tcb, now);
        }
    }

    /// Apply socket options that act on a live TCB (Nagle, keep-alive).
    pub fn apply_live_opts(&mut self, fd: i32) {
        let now = self.now;
        let Some(s) = self.sockets.get(&fd) else { return };
        let opts = s.opts.clone();
        let Some(id) = self.sock_conn(fd) else { return };
        if let Some(c) = self.conn_mut(id) {
            if c.tcb.config().nagle == opts.nodelay {
                c.tcb.set_nagle(!opts.nodelay);
            }
            c.tcb.set_cork(opts.cork);
            if c.tcb.config().keepalive != keepalive_of(&opts) {
                c.tcb.set_keepalive(keepalive_of(&opts), now);
            }
        }
    }

    /// Take the pending error (`SO_ERROR`).
    pub fn take_error(&mut self, fd: i32) -> i64 {
        let Some(id) = self.sock_conn(fd) else { return 0 };
        self.conn_mut(id).and_then(|c| c.pending_error.take()).unwrap_or(0)
    }

    /// The MSS a socket sends with once the peer's SYN told it (for FreeBSD's rounding of
    /// its buffers, which happens then).
    pub fn connected_mss(&self, fd: i32) -> Option<usize> {
        let c = self.conn(self.sock_conn(fd)?)?;
        let known = !matches!(c.tcb.state(), State::Closed | State::Listen | State::SynSent);
        known.then(|| c.tcb.send_mss())
    }

    /// Whether the socket has a TCB yet (buffer sizes can no longer change).
    pub fn has_tcb(&self, fd: i32) -> bool {
        self.sockets.get(&fd).is_some_and(|s| !matches!(s.kind, SockKind::Fresh))
    }

    /// What `poll` would report for `fd` (before masking with the requested events), the way
    /// Linux `tcp_poll` computes it.
    pub fn revents(&self, fd: i32) -> i64 {
        let Some(s) = self.sockets.get(&fd) else { return POLLNVAL };
        match &s.kind {
            // An unconnected socket is in CLOSE: hung up, and writable (nothing queued).
            SockKind::Fresh => POLLOUT | POLLWRNORM | POLLHUP,
            SockKind::Listening { queue, .. } => {
                if queue.iter().any(|&id| self.conn(id).is_some_and(|c| c.connected)) {
                    POLLIN | POLLRDNORM
                } else {
                    0
                }
            }
            SockKind::Conn(id) => {
                let Some(c) = self.conn(*id) else { return POLLHUP };
                let state = c.tcb.state();
                let closed = state == State::Closed;
                let rcv_shut = c.peer_fin || s.shut_rd || closed;
                let snd_shut = s.shut_wr || closed;
                let mut m = 0;
                if (rcv_shut && snd_shut) || closed {
                    m |= POLLHUP;
                }
                if rcv_shut {
                    m |= POLLIN | POLLRDNORM | POLLRDHUP;
                }
                if !matches!(state, State::SynSent | State::SynReceived) {
                    if c.tcb.recv_available() > 0 {
                        m |= POLLIN | POLLRDNORM;
                    }
                    // sk_stream_is_writeable: free space at least half of what is queued.
                    let writable = c.tcb.send_capacity() > 0 && c.tcb.send_capacity() >= c.tcb.send_queued() / 2;
                    if snd_shut || writable {
                        m |= POLLOUT | POLLWRNORM;
                    }
                }
                if c.pending_error.is_some() {
                    m |= POLLERR;
                }
                m
            }
        }
    }
}

/// The keep-alive settings a socket's options ask for (Linux defaults for what is unset).
pub fn keepalive_of(opts: &SockOpts) -> Option<Keepalive> {
    if !opts.keepalive {
        return None;
    }
    let d = Keepalive::default();
    Some(Keepalive {
        idle: opts.keepidle.map_or(d.idle, Duration::from_secs),
        interval: opts.keepintvl.map_or(d.interval, Duration::from_secs),
        probes: opts.keepcnt.unwrap_or(d.probes),
    })
}

fn flags_of(f: TcpFlags) -> Flags {
    Flags {
        fin: f.contains(TcpFlags::FIN),
        syn: f.contains(TcpFlags::SYN),
        rst: f.contains(TcpFlags::RST),
        psh: f.contains(TcpFlags::PSH),
        ack: f.contains(TcpFlags::ACK),
        urg: f.contains(TcpFlags::URG),
        ece: f.contains(TcpFlags::ECE),
        cwr: f.contains(TcpFlags::CWR),
        ae: f.contains(TcpFlags::NS),
    }
}

/// A segment as it leaves the stack: emitted to bytes through the wire layer, so the options
/// are listed in the order (and with the padding) they have on the wire.
fn out_seg(time: Instant, ips: (IpAddr, IpAddr), local_port: u16, remote_port: u16, r: &TcpRepr<'_>) -> OutSeg {
    let mut bytes = vec![0u8; r.buffer_len()];
    let mut options = Vec::new();
    if r.emit(&mut bytes, ips.0, ips.1).is_ok() {
        if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
            let mut rest = p.options();
            while !rest.is_empty() {
                let Ok((opt, after)) = TcpOption::parse(rest) else {
                    options.push(TcpOpt::Unknown(rest[0]));
                    break;
                };
                options.push(match opt {
                    TcpOption::EndOfList => TcpOpt::Eol,
                    TcpOption::NoOperation => TcpOpt::Nop,
                    TcpOption::MaxSegmentSize(v) => TcpOpt::Mss(v),
                    TcpOption::WindowScale(v) => TcpOpt::WScale(v),
                    TcpOption::SackPermitted => TcpOpt::SackOk,
                    TcpOption::Sack(b) => TcpOpt::Sack(b.as_slice().to_vec()),
                    TcpOption::Timestamp(t) => TcpOpt::Ts { val: t.tsval, ecr: t.tsecr },
                    TcpOption::Unknown { kind, .. } => TcpOpt::Unknown(kind),
                });
                rest = after;
            }
        }
    }
    OutSeg {
        time,
        local_port,
        remote_port,
        seq: r.seq,
        ack: r.ack,
        flags: flags_of(r.flags),
        window: r.window,
        urgent: r.urgent,
        options,
        payload: r.payload.to_vec(),
        ect: false,
    }
}
