//! The socket layer a script's system calls talk to, over one real [`Stack`]: file
//! descriptors (the first socket is 3), what each socket has been told, and Linux's error
//! reporting, in front of the stack's listeners, accept queues, demultiplexing, resets for
//! segments of no connection, neighbour resolution and timer wheel. It plays the part of the
//! kernel's socket layer around Linux's TCP in packetdrill; the stack is driven through its
//! public API, over an in-memory device ([`super::link`]) in virtual time, as an application
//! on one core would drive it.
//!
//! The error codes follow Linux, since that is what scripts are written against: which call
//! reports ECONNRESET, EPIPE or EAGAIN, and when (`tcp_sendmsg`, `tcp_recvmsg`, `tcp_poll`,
//! `tcp_reset`).

pub use super::link::OutSeg;
use super::link::{classify, inbound_frame, ScriptDevice, Sent};
use super::symbols::*;
use crate::stack::{Handle, Stack, StackConfig, StackError, StackEvent, SynCookieMode};
use crate::tcp::{CloseReason, IcmpError, Keepalive, State, TcpConfig, TcpError};
use crate::time::{Duration, Instant};
use crate::wire::IpProtocol;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::{BTreeMap, HashMap, VecDeque};

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
/// The stack's secret (ISNs, ports, SYN cookies): fixed, so that a run is repeatable.
const SECRET: [u8; 16] = *b"xtcp-pkt-secret!";
/// Most segments the stack may send at one instant before it is declared runaway.
const MAX_SEGMENTS_PER_INSTANT: usize = 10_000;
/// Sockets of the stack (connections and listeners): scripts use a handful.
const MAX_SOCKETS: usize = 64;

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

/// One connection a socket owns (or owned), and what it has been told.
#[derive(Debug)]
pub struct Conn {
    /// The stack's handle: refused by the stack once the connection is over.
    h: Handle,
    /// The descriptor that owns it; `None` once closed.
    pub fd: Option<i32>,
    pub local_port: u16,
    pub remote_port: u16,
    pub connected: bool,
    pub peer_fin: bool,
    /// The stack reported its end (`StackEvent::Closed`): the handle is gone.
    pub closed: Option<CloseReason>,
    /// Linux's `sk_err`: reported (and cleared) by the next call that can fail.
    pub pending_error: Option<i64>,
    last_state: State,
}

/// Socket options the interpreter maps onto the connection's settings.
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
    /// A listener of the stack.
    Listening(Handle),
    /// A connection: an index into the connections.
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

impl Socket {
    fn new(kind: SockKind, port: Option<u16>, nonblocking: bool, opts: SockOpts) -> Socket {
        Socket {
            kind,
            port,
            nonblocking,
            opts,
            shut_rd: false,
            shut_wr: false,
            read_offset: 0,
            write_offset: 0,
            connect_reported: false,
        }
    }
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

/// Whose socket layer's error codes a run reports, where Linux's and FreeBSD's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrnoOf {
    Linux,
    FreeBsd,
}

/// The socket layer, the stack, and the link to the script's peer.
pub struct Kernel {
    errno_of: ErrnoOf,
    now: Instant,
    /// The time the stack was last polled at.
    stack_now: Instant,
    base: TcpConfig,
    /// The stack's address and the script's peer's: IPv4 unless `--ip_version=ipv6`.
    ips: (IpAddr, IpAddr),
    stack: Stack<ScriptDevice>,
    conns: Vec<Option<Conn>>,
    by_handle: HashMap<Handle, usize>,
    pub sockets: BTreeMap<i32, Socket>,
    /// The descriptor the script expects the next `socket`/`accept` to return.
    pub fd_hint: Option<i32>,
    /// Segments sent and not yet consumed by the script, oldest first.
    pub out: VecDeque<OutSeg>,
    /// (instant, segments sent at it): for the runaway check.
    sent_at: (Instant, usize),
    /// Things worth telling in `--verbose` mode.
    pub notes: Vec<String>,
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel").field("now", &self.now).field("sockets", &self.sockets.len()).finish()
    }
}

impl Kernel {
    pub fn new(base: TcpConfig, errno_of: ErrnoOf) -> Kernel {
        let mut cfg = StackConfig::new(LOCAL_IP, 24, SECRET);
        cfg.ipv6 = vec![LOCAL_IP6];
        cfg.tcp = base.clone();
        cfg.max_sockets = MAX_SOCKETS;
        cfg.max_rx_frames_held = super::link::FRAMES / 2;
        cfg.buffer_pool_bytes = 0;
        // Linux answers every segment of no connection with a reset: no rate limit.
        cfg.rst_rate_limit = 0;
        cfg.syn_cookies = SynCookieMode::WhenFull;
        let mut k = Kernel {
            errno_of,
            now: Instant::ZERO,
            stack_now: Instant::ZERO,
            base,
            ips: (LOCAL_IP.into(), REMOTE_IP.into()),
            stack: Stack::new(ScriptDevice::new(), cfg, Instant::ZERO),
            conns: Vec::new(),
            by_handle: HashMap::new(),
            sockets: BTreeMap::new(),
            fd_hint: None,
            out: VecDeque::new(),
            sent_at: (Instant::ZERO, 0),
            notes: Vec::new(),
        };
        // The stack announces itself (gratuitous ARP, duplicate address detection).
        k.stack.poll(Instant::ZERO);
        let _ = k.pump();
        k
    }

    /// The settings new sockets start from (a script's `sysctl` lines change them).
    pub fn base(&self) -> &TcpConfig {
        &self.base
    }
    pub fn base_mut(&mut self) -> &mut TcpConfig {
        &mut self.base
    }

    /// Run over IPv6 (`--ip_version=ipv6`): the stack at [`LOCAL_IP6`], the peer at
    /// [`REMOTE_IP6`] (the stack has both addresses; this picks the family the sockets use).
    pub fn use_ipv6(&mut self) {
        self.ips = (LOCAL_IP6.into(), REMOTE_IP6.into());
    }

    /// (the stack's address, the peer's address).
    pub fn ips(&self) -> (IpAddr, IpAddr) {
        self.ips
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Move the virtual time (the stack sees it at the next call or delivery).
    pub fn set_now(&mut self, t: Instant) {
        self.now = t;
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

    /// The live handle of connection `id` (none once the stack reported its end).
    fn live(&self, id: usize) -> Option<Handle> {
        self.conn(id).filter(|c| c.closed.is_none()).map(|c| c.h)
    }

    /// The TCB of connection `id`, while it lives.
    fn tcb(&self, id: usize) -> Option<&crate::tcp::Tcb> {
        self.live(id).and_then(|h| self.stack.tcb(h).ok())
    }

    /// The state of connection `id`: CLOSED once it is over.
    fn state(&self, id: usize) -> State {
        self.tcb(id).map_or(State::Closed, |t| t.state())
    }

    /// A connection's settings from its socket's options (Linux: a socket's options, and
    /// those a listener's children inherit).
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
            // TCP_MAXSEG is the MSS itself; the stack's setting is for IPv4's header and
            // takes 20 bytes off over IPv6 (Stack::conn_tcp_config).
            cfg.mss = if self.ips.0.is_ipv6() { m.saturating_add(20) } else { m };
        }
        cfg.keepalive = keepalive_of(opts);
        cfg
    }

    fn add_conn(&mut self, conn: Conn) -> usize {
        let id = match self.conns.iter().position(Option::is_none) {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        if let Some(c) = self.conn(id) {
            let h = c.h;
            self.by_handle.insert(h, id);
        }
        id
    }

    fn new_conn(&self, h: Handle, fd: i32, connected: bool) -> Conn {
        let (local_port, remote_port, last_state) = match self.stack.tcb(h) {
            Ok(t) => (t.local().port(), t.remote().port(), t.state()),
            Err(_) => (0, 0, State::Closed),
        };
        Conn {
            h,
            fd: Some(fd),
            local_port,
            remote_port,
            connected,
            peer_fin: false,
            closed: None,
            pending_error: None,
            last_state,
        }
    }

    // ------------------------------------------------------------------ the wire

    /// Bring the stack to the current time: a call or a segment happens now.
    fn sync(&mut self) -> Result<(), NetError> {
        if self.stack_now < self.now {
            self.poll()?;
        }
        Ok(())
    }

    /// One turn of the stack's loop at the current time, then what it sent.
    fn poll(&mut self) -> Result<(), NetError> {
        self.stack.poll(self.now);
        self.stack_now = self.now;
        self.pump()
    }

    /// Take what the stack sent: segments for the script, answers to its neighbour
    /// resolution (delivered at once, and the stack polled again), and notes of the rest;
    /// then the events of every connection.
    fn pump(&mut self) -> Result<(), NetError> {
        loop {
            let mut answered = false;
            while let Some(bytes) = self.stack.device_mut().tx.pop_front() {
                match classify(&bytes, self.now, self.ips)? {
                    Sent::Segment(seg) => {
                        if self.sent_at.0 != self.now {
                            self.sent_at = (self.now, 0);
                        }
                        self.sent_at.1 += 1;
                        if self.sent_at.1 > MAX_SEGMENTS_PER_INSTANT {
                            return Err(format!(
                                "the stack sent more than {MAX_SEGMENTS_PER_INSTANT} segments at one instant (runaway output)"
                            ));
                        }
                        self.out.push_back(seg);
                    }
                    Sent::Answer(frame, what) => {
                        self.note(what);
                        self.stack.device_mut().rx.push_back(frame);
                        answered = true;
                    }
                    Sent::Other(what) => self.note(format!("the stack sent {what}")),
                }
            }
            if !answered {
                break;
            }
            self.stack.poll(self.now);
        }
        self.collect_events();
        self.stack.check_invariants().map_err(|e| format!("the stack's bookkeeping is inconsistent: {e}"))
    }

    /// A segment from the script's peer, as TCP bytes on the wire (checksum included),
    /// delivered to the stack in a frame.
    pub fn deliver(&mut self, tcp: &[u8], ce: bool) -> Result<(), NetError> {
        self.deliver_frame(inbound_frame(tcp, IpProtocol::Tcp, self.ips, ce))
    }

    /// An ICMP message from the peer (ICMPv6 over IPv6), checksum included.
    pub fn deliver_icmp(&mut self, msg: &[u8]) -> Result<(), NetError> {
        let before = self.stack.counters().icmp_errors_ignored;
        self.deliver_frame(inbound_frame(msg, IpProtocol::Icmp, self.ips, false))?;
        if self.stack.counters().icmp_errors_ignored > before {
            self.note(
                "the stack ignored the ICMP error (no connection of its own, or a sequence number not in flight)"
                    .into(),
            );
        }
        Ok(())
    }

    fn deliver_frame(&mut self, frame: Vec<u8>) -> Result<(), NetError> {
        self.sync()?;
        if let Err(e) = crate::wire::FrameRepr::parse(&frame, crate::wire::RxChecksum::Verify) {
            self.note(format!("the stack drops the inbound segment: {e}"));
        }
        let before = self.stack.counters().tcp_no_socket;
        self.stack.device_mut().rx.push_back(frame);
        self.poll()?;
        if self.stack.counters().tcp_no_socket > before {
            self.note("no socket for the inbound segment (a reset answers all but a reset)".into());
        }
        Ok(())
    }

    /// Send what the calls since the last turn produced.
    pub fn flush(&mut self) -> Result<(), NetError> {
        self.sync()?;
        self.stack.flush();
        self.pump()
    }

    /// Learn what happened to each connection (the stack's events), and forget connections
    /// that are over and have no descriptor.
    fn collect_events(&mut self) {
        while let Some((h, ev)) = self.stack.poll_event() {
            let Some(&id) = self.by_handle.get(&h) else { continue };
            let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) else { continue };
            match ev {
                StackEvent::Connected => c.connected = true,
                StackEvent::PeerClosed => c.peer_fin = true,
                StackEvent::Closed(reason) => {
                    c.closed = Some(reason);
                    // Linux tcp_reset: ECONNREFUSED in SYN-SENT, EPIPE in CLOSE-WAIT,
                    // ECONNRESET otherwise (FreeBSD's tcp_input: ECONNRESET in CLOSE-WAIT
                    // too); tcp_write_err: ETIMEDOUT.
                    let epipe = self.errno_of == ErrnoOf::Linux && c.last_state == State::CloseWait;
                    c.pending_error = match reason {
                        CloseReason::Refused => Some(ECONNREFUSED),
                        CloseReason::Reset if epipe => Some(EPIPE),
                        CloseReason::Reset => Some(ECONNRESET),
                        CloseReason::TimedOut => Some(ETIMEDOUT),
                        CloseReason::Unreachable(e) => Some(icmp_errno(e, self.errno_of, self.ips.0.is_ipv6())),
                        CloseReason::Aborted | CloseReason::Normal => None,
                    };
                    self.by_handle.remove(&h);
                }
                StackEvent::Readable | StackEvent::Writable | StackEvent::Accepted => {}
            }
        }
        for id in 0..self.conns.len() {
            let state = self.state(id);
            let Some(c) = self.conns[id].as_mut() else { continue };
            c.last_state = state;
            if c.fd.is_none() && c.closed.is_some() {
                self.conns[id] = None;
            }
        }
    }

    /// When the stack next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stack.poll_at()
    }

    /// Run every timer due at the current time.
    pub fn fire_timers(&mut self) -> Result<(), NetError> {
        self.poll()
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
        self.sockets.insert(fd, Socket::new(SockKind::Fresh, None, nonblocking, SockOpts::default()));
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

    pub fn listen(&mut self, fd: i32, backlog: i64) -> Result<SysRet, NetError> {
        self.sync()?;
        let Some(s) = self.sockets.get(&fd) else { return Ok(SysRet::Err(EBADF)) };
        match s.kind {
            SockKind::Fresh => {}
            // Listening already: Linux changes the backlog; the stack keeps its queues.
            SockKind::Listening(_) => return Ok(SysRet::Ok(0)),
            SockKind::Conn(_) => return Ok(SysRet::Err(EINVAL)),
        }
        // An unbound socket listens on the default port (Linux would pick an ephemeral
        // one; scripts bind first).
        let port = s.port.unwrap_or(DEFAULT_PORT);
        // Linux's accept queue is full past `backlog` (sk_acceptq_is_full: more than
        // backlog), so it holds backlog + 1; the stack's holds what it is given.
        let backlog = usize::try_from(backlog.max(0)).unwrap_or(0).min(MAX_SOCKETS / 2) + 1;
        let cfg = self.config_for(&s.opts);
        let h = match self.stack.listen_with(port, backlog, cfg) {
            Ok(h) => h,
            Err(StackError::AddrInUse) => return Ok(SysRet::Err(EADDRINUSE)),
            Err(StackError::InvalidOption) => return Ok(SysRet::Err(EINVAL)),
            Err(e) => return Err(format!("the stack refused listen on port {port}: {e}")),
        };
        if let Some(s) = self.sockets.get_mut(&fd) {
            s.port = Some(port);
            s.kind = SockKind::Listening(h);
        }
        Ok(SysRet::Ok(0))
    }

    /// `Ok(fd)` of the accepted connection.
    pub fn accept(&mut self, fd: i32) -> Result<SysRet, NetError> {
        self.sync()?;
        let Some(s) = self.sockets.get(&fd) else { return Ok(SysRet::Err(EBADF)) };
        let SockKind::Listening(lh) = s.kind else { return Ok(SysRet::Err(EINVAL)) };
        let (nonblocking, port, opts) = (s.nonblocking, s.port, s.opts.clone());
        let h = match self.stack.accept(lh) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(if nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block }),
            Err(e) => return Err(format!("the stack refused accept: {e}")),
        };
        if opts.cork {
            let _ = self.stack.set_cork(h, true);
        }
        let new_fd = self.lowest_free_fd();
        let conn = self.new_conn(h, new_fd, true);
        let id = self.add_conn(conn);
        let mut sock = Socket::new(SockKind::Conn(id), port, false, opts);
        sock.connect_reported = true;
        self.sockets.insert(new_fd, sock);
        // Events that waited for the application to know the connection.
        self.collect_events();
        Ok(SysRet::Ok(i64::from(new_fd)))
    }

    /// Start (or check on) an active open. Returns the connection id too when one was made.
    pub fn connect(&mut self, fd: i32, remote_port: u16) -> Result<(SysRet, Option<usize>), NetError> {
        self.sync()?;
        let Some(s) = self.sockets.get(&fd) else { return Ok((SysRet::Err(EBADF), None)) };
        match s.kind {
            SockKind::Fresh => {}
            SockKind::Listening(_) => return Ok((SysRet::Err(EISCONN), None)),
            SockKind::Conn(id) => return Ok((self.connect_progress(fd, id), None)),
        }
        let cfg = self.config_for(&s.opts);
        let nonblocking = s.nonblocking;
        let remote = SocketAddr::new(self.ips.1, remote_port);
        let r = match s.port {
            Some(p) => self.stack.connect_bound(SocketAddr::new(self.ips.0, p), remote, cfg),
            None => self.stack.connect_from(self.ips.0, remote, cfg),
        };
        let h = match r {
            Ok(h) => h,
            Err(StackError::AddrInUse) => return Ok((SysRet::Err(EADDRINUSE), None)),
            Err(StackError::PortsExhausted) => return Ok((SysRet::Err(EADDRNOTAVAIL), None)),
            Err(StackError::InvalidOption) => return Ok((SysRet::Err(EINVAL), None)),
            Err(e) => return Err(format!("the stack refused connect: {e}")),
        };
        if s.opts.cork {
            let _ = self.stack.set_cork(h, true);
        }
        let conn = self.new_conn(h, fd, false);
        let local_port = conn.local_port;
        let id = self.add_conn(conn);
        if let Some(s) = self.sockets.get_mut(&fd) {
            s.kind = SockKind::Conn(id);
            s.port = Some(local_port);
        }
        self.flush()?;
        let ret = if nonblocking { SysRet::Err(EINPROGRESS) } else { self.connect_progress(fd, id) };
        Ok((ret, Some(id)))
    }

    /// The local port of connection `id`.
    pub fn local_port_of(&self, id: usize) -> Option<u16> {
        self.conn(id).map(|c| c.local_port)
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
        if c.closed.is_some() && !c.connected {
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
    pub fn read(&mut self, fd: i32, len: usize, dontwait: bool, data: &mut Vec<u8>) -> Result<SysRet, NetError> {
        self.sync()?;
        data.clear();
        let Some(s) = self.sockets.get(&fd) else { return Ok(SysRet::Err(EBADF)) };
        let nonblocking = s.nonblocking || dontwait;
        let shut_rd = s.shut_rd;
        let Some(id) = self.sock_conn(fd).filter(|&id| self.conn(id).is_some()) else {
            return Ok(if shut_rd { SysRet::Ok(0) } else { SysRet::Err(ENOTCONN) });
        };
        let Some(h) = self.live(id) else {
            // Over: the error once, then the end of the stream (Linux: a done socket reads 0).
            let err = self.conn_mut(id).and_then(|c| c.pending_error.take());
            return Ok(err.map_or(SysRet::Ok(0), SysRet::Err));
        };
        // After SHUT_RD Linux still takes data in and hands it out; with nothing queued the
        // read is the end of the stream (tcp_recvmsg checks RCV_SHUTDOWN after copying).
        let available = self.tcb(id).map_or(0, |t| t.recv_available());
        if (shut_rd && available == 0) || len == 0 {
            return Ok(SysRet::Ok(0));
        }
        data.resize(len.min(1 << 24), 0);
        let r = self.stack.recv(h, data);
        let ret = match r {
            Ok(n) => {
                data.truncate(n);
                if let Some(s) = self.sockets.get_mut(&fd) {
                    s.read_offset += n as u64;
                }
                SysRet::Ok(n as i64)
            }
            Err(e) => {
                data.clear();
                if let Some(err) = self.conn_mut(id).and_then(|c| c.pending_error.take()) {
                    return Ok(SysRet::Err(err));
                }
                match e {
                    StackError::Tcp(TcpError::WouldBlock) if nonblocking => SysRet::Err(EAGAIN),
                    StackError::Tcp(TcpError::WouldBlock) => SysRet::Block,
                    StackError::Tcp(TcpError::Closed(_)) => SysRet::Ok(0),
                    _ => SysRet::Err(ENOTCONN),
                }
            }
        };
        // Reading may open the window, and may let a normal end be reported.
        self.flush()?;
        Ok(ret)
    }

    /// Whether a blocking read could return now.
    pub fn read_ready(&self, fd: i32) -> bool {
        let Some(s) = self.sockets.get(&fd) else { return true };
        if s.shut_rd {
            return true;
        }
        let Some(id) = self.sock_conn(fd) else { return true };
        let Some(c) = self.conn(id) else { return true };
        let available = self.tcb(id).map_or(0, |t| t.recv_available());
        available > 0 || c.peer_fin || c.closed.is_some() || c.pending_error.is_some()
    }

    /// Queue up to `len` bytes of the pattern; `Ok(n)` bytes taken. A blocking write that
    /// could take only part returns `Block` after queueing what fit (the caller keeps count).
    /// `more` is MSG_MORE.
    pub fn write(&mut self, fd: i32, len: usize, dontwait: bool, more: bool) -> Result<SysRet, NetError> {
        self.sync()?;
        let Some(s) = self.sockets.get(&fd) else { return Ok(SysRet::Err(EBADF)) };
        let nonblocking = s.nonblocking || dontwait;
        let offset = s.write_offset;
        if s.shut_wr {
            return Ok(SysRet::Err(EPIPE));
        }
        // Linux tcp_sendmsg on a socket that is not connected: EPIPE.
        let Some(id) = self.sock_conn(fd) else { return Ok(SysRet::Err(EPIPE)) };
        let Some(c) = self.conn_mut(id) else { return Ok(SysRet::Err(EPIPE)) };
        if let Some(e) = c.pending_error.take() {
            return Ok(SysRet::Err(e));
        }
        let Some(h) = self.live(id) else { return Ok(SysRet::Err(EPIPE)) };
        match self.state(id) {
            State::Closed => return Ok(SysRet::Err(EPIPE)),
            // sk_stream_wait_connect: wait for the handshake (or EAGAIN).
            State::SynSent | State::SynReceived => {
                return Ok(if nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block });
            }
            _ => {}
        }
        if len == 0 {
            return Ok(SysRet::Ok(0));
        }
        let room = self.tcb(id).map_or(0, |t| t.send_capacity()).min(len);
        let mut data = vec![0u8; room];
        pattern_fill(&mut data, offset);
        let r = if more { self.stack.send_more(h, &data) } else { self.stack.send(h, &data) };
        let taken = match r {
            Ok(n) => n,
            Err(StackError::Tcp(TcpError::WouldBlock)) => 0,
            Err(_) => return Ok(SysRet::Err(EPIPE)),
        };
        if let Some(s) = self.sockets.get_mut(&fd) {
            s.write_offset += taken as u64;
        }
        if taken == 0 {
            return Ok(if nonblocking { SysRet::Err(EAGAIN) } else { SysRet::Block });
        }
        Ok(SysRet::Ok(taken as i64))
    }

    /// Whether a blocked write can make progress.
    pub fn write_ready(&self, fd: i32) -> bool {
        let Some(s) = self.sockets.get(&fd) else { return true };
        if s.shut_wr {
            return true;
        }
        let Some(id) = self.sock_conn(fd) else { return true };
        let Some(c) = self.conn(id) else { return true };
        let room = self.tcb(id).map_or(0, |t| t.send_capacity());
        match self.state(id) {
            State::SynSent | State::SynReceived => c.pending_error.is_some(),
            State::Established | State::CloseWait => room > 0 || c.pending_error.is_some(),
            _ => true,
        }
    }

    pub fn close(&mut self, fd: i32) -> Result<SysRet, NetError> {
        self.sync()?;
        let Some(s) = self.sockets.remove(&fd) else { return Ok(SysRet::Err(EBADF)) };
        match s.kind {
            SockKind::Fresh => {}
            // Linux inet_csk_listen_stop: children that completed the handshake are reset.
            SockKind::Listening(h) => {
                let _ = self.stack.close(h);
            }
            SockKind::Conn(id) => {
                let linger_zero = s.opts.linger == Some(0);
                let live = self.live(id);
                if let Some(c) = self.conn_mut(id) {
                    c.fd = None;
                }
                if let Some(h) = live {
                    // SO_LINGER with a zero timeout: an abortive close (RFC 9293 §3.10.5).
                    let _ = if linger_zero { self.stack.abort(h) } else { self.stack.close(h) };
                }
            }
        }
        self.flush()?;
        Ok(SysRet::Ok(0))
    }

    pub fn shutdown(&mut self, fd: i32, how: i64) -> Result<SysRet, NetError> {
        self.sync()?;
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
            if let Some(h) = self.live(id) {
                let _ = self.stack.shutdown(h);
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
            .filter(|c| c.closed.is_none() && c.local_port == local_port && c.remote_port == remote_port)
            .find_map(|c| self.stack.tcp_info(c.h).ok())
    }

    /// TCP_QUICKACK on the socket's connection, if it has one (an action, not a lasting option).
    pub fn quick_ack(&mut self, fd: i32, on: bool) -> Result<(), NetError> {
        self.sync()?;
        if let Some(h) = self.sock_conn(fd).and_then(|id| self.live(id)) {
            let _ = self.stack.set_quick_ack(h, on);
        }
        Ok(())
    }

    /// Apply the socket's options to what lives: its connection's Nagle, cork and
    /// keep-alive, or the settings a listener's future children get. `push` (TCP_NODELAY
    /// set again) pushes what waits, as Linux's does.
    pub fn apply_live_opts(&mut self, fd: i32, push: bool) -> Result<(), NetError> {
        self.sync()?;
        let Some(s) = self.sockets.get(&fd) else { return Ok(()) };
        let opts = s.opts.clone();
        match s.kind {
            SockKind::Fresh => {}
            SockKind::Listening(lh) => {
                let cfg = self.config_for(&opts);
                let _ = self.stack.set_accept_config(lh, cfg);
            }
            SockKind::Conn(id) => {
                let Some(h) = self.live(id) else { return Ok(()) };
                let (nagle, ka) = match self.stack.tcb(h) {
                    Ok(t) => (t.config().nagle, t.config().keepalive),
                    Err(_) => return Ok(()),
                };
                if nagle == opts.nodelay || push {
                    let _ = self.stack.set_nodelay(h, opts.nodelay);
                }
                let _ = self.stack.set_cork(h, opts.cork);
                if ka != keepalive_of(&opts) {
                    let _ = self.stack.set_keepalive(h, keepalive_of(&opts));
                }
            }
        }
        Ok(())
    }

    /// Take the pending error (`SO_ERROR`).
    pub fn take_error(&mut self, fd: i32) -> i64 {
        let Some(id) = self.sock_conn(fd) else { return 0 };
        self.conn_mut(id).and_then(|c| c.pending_error.take()).unwrap_or(0)
    }

    /// The MSS a socket sends with once the peer's SYN told it (for FreeBSD's rounding of
    /// its buffers, which happens then).
    pub fn connected_mss(&self, fd: i32) -> Option<usize> {
        let t = self.tcb(self.sock_conn(fd)?)?;
        let known = !matches!(t.state(), State::Closed | State::Listen | State::SynSent);
        known.then(|| t.send_mss())
    }

    /// Whether the socket has a connection or listener yet (buffer sizes can no longer change).
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
            SockKind::Listening(lh) => {
                if self.stack.pending_accepts(*lh).unwrap_or(0) > 0 {
                    POLLIN | POLLRDNORM
                } else {
                    0
                }
            }
            SockKind::Conn(id) => {
                let Some(c) = self.conn(*id) else { return POLLHUP };
                let state = self.state(*id);
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
                    let (available, room, queued) =
                        self.tcb(*id).map_or((0, 0, 0), |t| (t.recv_available(), t.send_capacity(), t.send_queued()));
                    if available > 0 {
                        m |= POLLIN | POLLRDNORM;
                    }
                    // sk_stream_is_writeable: free space at least half of what is queued.
                    let writable = room > 0 && room >= queued / 2;
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

/// The errno a hard ICMP error ending an open reports: Linux's icmp_err_convert and
/// icmpv6_err_convert, or FreeBSD's (ECONNREFUSED for all but time exceeded, tcp_notify).
fn icmp_errno(e: IcmpError, of: ErrnoOf, v6: bool) -> i64 {
    match (of, e) {
        (_, IcmpError::TimeExceeded) => EHOSTUNREACH,
        (ErrnoOf::FreeBsd, _) => ECONNREFUSED,
        (ErrnoOf::Linux, IcmpError::PortUnreachable) => ECONNREFUSED,
        (ErrnoOf::Linux, IcmpError::ProtocolUnreachable) if v6 => EPROTO,
        (ErrnoOf::Linux, IcmpError::ProtocolUnreachable) => ENOPROTOOPT,
        (ErrnoOf::Linux, IcmpError::Prohibited { .. }) if v6 => EACCES,
        (ErrnoOf::Linux, IcmpError::Prohibited { code: 9 }) => ENETUNREACH,
        (ErrnoOf::Linux, _) => EHOSTUNREACH,
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
