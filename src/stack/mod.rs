//! One core's stack: a device, an interface address, ARP and ICMP, the connection table,
//! listeners with bounded queues, port allocation, the core's timer wheel, counters, and the
//! API an application on that core uses.
//!
//! Everything here belongs to one core: handles are not `Send`, nothing is shared, nothing
//! locks. The run-to-completion loop is [`Stack::poll`]: receive a burst, process it all, run
//! due timers, transmit a burst, flush once (DESIGN.md, "The path of one frame").
//!
//! Bounds, all set in [`StackConfig`] and allocated up front: sockets (connections plus
//! listeners), each listener's SYN and accept queues, the ARP cache and its queue of frames
//! waiting for a resolution, the timer wheel, the device's frame pool. What happens at each
//! bound is defined and counted in [`Counters`].

mod arp;
mod counters;
pub mod pair;
mod ports;
pub mod table;

pub use counters::Counters;
pub use ports::Rss;
pub use table::{ConnTable, FourTuple};

use crate::io::{Device, Frame};
use crate::tcp::{
    reset_for, CloseReason, Event, IcmpError, IsnGenerator, Keepalive, RxInfo, State, Tcb, TcbBuffers, TcpConfig,
    TcpError,
};
use crate::time::{Duration, Instant, TimerHandle, TimerWheel};
use crate::wire::{
    self, ArpOperation, ArpRepr, DstUnreachable, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, IpProtocol, Ipv4Repr,
    L4Repr, MacAddr, NetRepr, TcpRepr,
};
use arp::ArpCache;
use core::fmt;
use core::marker::PhantomData;
use core::net::{Ipv4Addr, SocketAddrV4};
use ports::PortAllocator;
use std::collections::{HashMap, VecDeque};

const ETH_LEN: usize = wire::ethernet::HEADER_LEN;
const IP_LEN: usize = wire::ipv4::HEADER_LEN;
/// Headroom before a TCP payload: Ethernet, IPv4 and the largest TCP header.
const HEADROOM: usize = ETH_LEN + IP_LEN + wire::tcp::MAX_HEADER_LEN;

/// Configuration of one core's stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub ip: Ipv4Addr,
    /// Further addresses of the interface, on the same subnet: the stack answers ARP for
    /// them, accepts connections to them, and active opens use them as sources when the
    /// first address has no port left for a destination (or on request, `connect_from`) —
    /// so one stack can hold more connections to one server than one address's ports allow.
    pub extra_ips: Vec<Ipv4Addr>,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Defaults for every connection.
    pub tcp: TcpConfig,
    /// Connections plus listeners.
    pub max_sockets: usize,
    /// Ephemeral ports for active opens (Linux: 32768–60999).
    pub ephemeral_ports: (u16, u16),
    pub arp_cache_size: usize,
    /// How long a learned mapping is trusted (RFC 1122 §2.3.2.1 asks for a timeout).
    pub arp_ttl: Duration,
    /// Frames that may wait for ARP resolution at once.
    pub arp_pending: usize,
    /// How long a frame waits for ARP before it is dropped.
    pub arp_pending_timeout: Duration,
    /// Secret for ISNs (RFC 6528) and port choice (RFC 6056): draw it from the OS.
    pub secret: [u8; 16],
    /// Frames taken from the device per burst.
    pub rx_burst: usize,
    /// RSS-aware port choice, when the NIC spreads flows over queues.
    pub rss: Option<Rss>,
    /// Resolution of the core's timer wheel.
    pub timer_resolution: Duration,
    /// Zero-copy receive: in-order payload stays in the frame it arrived in until the
    /// application consumes it ([`Stack::recv_chunks`], or `recv` copying straight from the
    /// frame). Off: every payload is copied into the connection's buffer on arrival.
    pub zero_copy_rx: bool,
    /// Received frames all connections together may hold (a share of the device's pool, so
    /// the NIC keeps frames to receive into). Past it, payload is copied: nothing is dropped.
    pub max_rx_frames_held: usize,
    /// Received frames one connection may hold; past it, its payload is copied.
    pub max_rx_frames_per_conn: usize,
    /// Frames all connections together may hold for zero-copy send (queued, unacknowledged,
    /// or taken with [`Stack::alloc_send_buf`] and not yet queued).
    pub max_tx_frames_held: usize,
    /// Bytes of send/receive buffer storage kept from closed connections for new ones, so
    /// that opening a connection neither allocates nor zeroes its buffers.
    pub buffer_pool_bytes: usize,
}

impl StackConfig {
    pub fn new(ip: Ipv4Addr, prefix_len: u8, secret: [u8; 16]) -> StackConfig {
        StackConfig {
            ip,
            extra_ips: Vec::new(),
            prefix_len,
            gateway: None,
            tcp: TcpConfig { send_buffer: 64 * 1024, recv_buffer: 64 * 1024, ..TcpConfig::default() },
            max_sockets: 1024,
            ephemeral_ports: (32768, 60999),
            arp_cache_size: 256,
            arp_ttl: Duration::from_secs(60),
            arp_pending: 256,
            arp_pending_timeout: Duration::from_secs(3),
            secret,
            rx_burst: 64,
            rss: None,
            timer_resolution: Duration::from_millis(1),
            zero_copy_rx: true,
            max_rx_frames_held: 1024,
            max_rx_frames_per_conn: 64,
            max_tx_frames_held: 1024,
            buffer_pool_bytes: 64 << 20,
        }
    }
}

/// The IPv4 header of a TCP segment we send: DF set (RFC 1191 path MTU discovery), TTL 64.
/// ECN codepoints of the IP header's two low TOS bits (RFC 3168 §5).
const ECN_MASK: u8 = 0b11;
const ECN_ECT0: u8 = 0b10;
const ECN_CE: u8 = 0b11;

fn tcp_ip_header(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, ect: bool) -> Ipv4Repr {
    // RFC 3168 §6.1.2: ECT(0) on what the TCB marked ECN-capable (new data on an ECN
    // connection); Not-ECT on everything else.
    let dscp_ecn = if ect { ECN_ECT0 } else { 0 };
    Ipv4Repr { src, dst, protocol: IpProtocol::Tcp, payload_len, ttl: 64, ident: 0, dont_frag: true, dscp_ecn }
}

/// Per-connection settings the stack accepts: buffers that hold at least one byte and at
/// most 1 GiB (RFC 7323 §2.3: a window scale of 14 covers 1 GiB), an MSS of at least 88
/// bytes (a 128-byte MTU, the RFC 1191 floor used for ICMP too), and RTO bounds with
/// 1 ms ≤ min ≤ max ≤ 1 hour (the timer wheel ticks in milliseconds; RFC 6298 §2.5 wants the
/// maximum at least 60 s, but a test or a datacenter may choose less).
fn check_tcp_config(tcp: &TcpConfig) -> Result<(), StackError> {
    const MAX: usize = 1 << 30;
    let rto_ok = Duration::from_millis(1) <= tcp.min_rto
        && tcp.min_rto <= tcp.max_rto
        && tcp.max_rto <= Duration::from_secs(3600)
        && tcp.initial_rto >= tcp.min_rto;
    let ok = (1..=MAX).contains(&tcp.send_buffer) && (1..=MAX).contains(&tcp.recv_buffer) && tcp.mss >= 88 && rto_ok;
    ok.then_some(()).ok_or(StackError::InvalidOption)
}

/// A socket of this core: a connection or a listener. Not `Send`: it means something only to
/// the core that made it. A handle whose socket is gone is refused ([`StackError::InvalidHandle`]),
/// even if the slot was reused (generation check).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    idx: u32,
    gen: u32,
    _core_local: PhantomData<*const ()>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}#{})", self.idx, self.gen)
    }
}

/// What the application is told, per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackEvent {
    /// An active open completed.
    Connected,
    /// A listener has a connection waiting in `accept`.
    Accepted,
    Readable,
    Writable,
    /// The peer closed its side; reading returns the rest, then end of stream.
    PeerClosed,
    /// The connection is over and its handle is now invalid. After a normal end with data
    /// still unread, it comes once that data is read (or on `close`/`abort`): until then the
    /// handle reads the rest and then the end of stream, as a kernel socket does.
    Closed(CloseReason),
}

/// API misuse, or a call that cannot complete now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// The handle names no socket (closed, or never was).
    InvalidHandle,
    /// A connection call on a listener.
    IsListener,
    /// A listener call on a connection.
    NotListener,
    /// Something already listens on that port.
    AddrInUse,
    /// Connecting to our own address.
    ConnectToSelf,
    /// Not a unicast address we can reach (0.0.0.0, broadcast, multicast, port 0).
    InvalidAddress,
    /// Every ephemeral port is taken for that destination.
    PortsExhausted,
    /// `max_sockets` reached.
    TooManySockets,
    /// Zero-copy send on a connection with copied data still queued (`send` before the
    /// connection switched to frames); it may switch once that data is acknowledged.
    SendQueueBusy,
    /// A zero-copy send of more bytes than the buffer holds.
    BadSendBuf,
    /// A connection setting out of range (a buffer of 0 bytes or over 1 GiB, an MSS
    /// under 88 bytes).
    InvalidOption,
    /// The connection refused the call (would block, write after shutdown, closed...).
    Tcp(TcpError),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::InvalidHandle => f.write_str("invalid handle"),
            StackError::IsListener => f.write_str("the socket is a listener"),
            StackError::NotListener => f.write_str("the socket is not a listener"),
            StackError::AddrInUse => f.write_str("address already in use"),
            StackError::ConnectToSelf => f.write_str("cannot connect to our own address"),
            StackError::InvalidAddress => f.write_str("invalid address"),
            StackError::PortsExhausted => f.write_str("no ephemeral port left for that destination"),
            StackError::TooManySockets => f.write_str("socket limit reached"),
            StackError::SendQueueBusy => f.write_str("copied data still queued; zero-copy send must wait"),
            StackError::BadSendBuf => f.write_str("length beyond the send buffer's capacity"),
            StackError::InvalidOption => f.write_str("connection setting out of range"),
            StackError::Tcp(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StackError {}

impl From<TcpError> for StackError {
    fn from(e: TcpError) -> Self {
        StackError::Tcp(e)
    }
}

#[derive(Debug)]
struct Conn {
    tcb: Tcb,
    key: FourTuple,
    timer: Option<TimerHandle>,
    deadline: Option<Instant>,
    dirty: bool,
    ready: bool,
    /// The listener that accepted the SYN, while the application has not taken it.
    listener: Option<u32>,
    /// Was ESTABLISHED at some point (for the failed-open counter).
    opened: bool,
    /// The Closed event was handed out: the slot is freed.
    closed_reported: bool,
    /// In-order received data not yet consumed, in sequence order (zero-copy receive).
    rxq: VecDeque<RxChunk>,
    /// Frames among `rxq`.
    rx_frames: usize,
    /// Zero-copy send: the frames of the data queued and not yet acknowledged, in order.
    txq: VecDeque<TxChunk>,
    /// Stream offset (since zero-copy send began) of the first unacknowledged byte.
    tx_acked: u64,
    /// Stream offset just past the last byte queued.
    tx_end: u64,
    /// Send buffers taken and not yet queued or given back.
    tx_bufs_out: usize,
    /// Ended normally with data unread: `Closed` is reported once it is read (or on close).
    close_pending: Option<CloseReason>,
}

/// In-order received bytes of a connection.
#[derive(Debug)]
enum RxChunk {
    /// This many bytes of the TCB's own buffer (copied: they arrived out of order, or the
    /// bound on held frames was reached).
    Buffered(usize),
    /// The unread part of a received frame (`offset..offset + len` is the payload left).
    InFrame(Frame),
}

/// A frame of zero-copy send data: `frame.offset..+len` is the payload, `start` its offset
/// in the connection's stream.
#[derive(Debug)]
struct TxChunk {
    frame: Frame,
    start: u64,
}

/// A zero-copy send buffer ([`Stack::alloc_send_buf`]): a frame of the device with room for
/// headers before the payload. Write the payload with [`Stack::send_buf_mut`], then queue it
/// with [`Stack::send_frame`], or give it back with [`Stack::drop_send_buf`]; the stack
/// keeps the frame until the peer acknowledges it, and retransmits from it. Dropping it
/// otherwise leaks the frame until the connection's slot is reused: it is `#[must_use]`.
#[must_use = "a send buffer holds a frame of the device: queue it or give it back"]
#[derive(Debug)]
pub struct SendBuf {
    frame: Frame,
    conn: Handle,
    capacity: usize,
}

impl SendBuf {
    /// Payload bytes it holds at most (at most one segment).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The readable bytes of a connection in place ([`Stack::recv_chunks`]): slices of the
/// frames they arrived in, or of the connection's buffer for data that arrived out of order.
pub struct RecvChunks<'a, D: Device> {
    dev: &'a D,
    tcb: &'a Tcb,
    q: std::collections::vec_deque::Iter<'a, RxChunk>,
    buffered_off: usize,
    pending: &'a [u8],
}

impl<D: Device> fmt::Debug for RecvChunks<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvChunks").field("chunks_left", &self.q.len()).finish()
    }
}

impl<'a, D: Device> RecvChunks<'a, D> {
    /// The peer has closed: after these bytes the stream ends.
    pub fn fin(&self) -> bool {
        self.tcb.fin_received()
    }
}

impl<'a, D: Device> Iterator for RecvChunks<'a, D> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if !self.pending.is_empty() {
            return Some(core::mem::take(&mut self.pending));
        }
        loop {
            match self.q.next()? {
                RxChunk::InFrame(f) => return Some(self.dev.frame(f)),
                RxChunk::Buffered(n) => {
                    let (a, b) = self.tcb.recv_slices(self.buffered_off, *n);
                    self.buffered_off += n;
                    self.pending = b;
                    if !a.is_empty() {
                        return Some(a);
                    }
                    if !self.pending.is_empty() {
                        return Some(core::mem::take(&mut self.pending));
                    }
                }
            }
        }
    }
}

impl Conn {
    fn new(tcb: Tcb, key: FourTuple, listener: Option<u32>) -> Conn {
        Conn {
            tcb,
            key,
            timer: None,
            deadline: None,
            dirty: false,
            ready: false,
            listener,
            opened: false,
            closed_reported: false,
            rxq: VecDeque::new(),
            rx_frames: 0,
            txq: VecDeque::new(),
            tx_acked: 0,
            tx_end: 0,
            tx_bufs_out: 0,
            close_pending: None,
        }
    }
}

#[derive(Debug)]
struct Listener {
    port: u16,
    backlog: usize,
    /// Connections from this listener still in SYN-RECEIVED.
    syn_pending: usize,
    accept_queue: VecDeque<u32>,
    ready: bool,
    /// Settings for accepted connections, when not the stack's.
    tcp: Option<Box<TcpConfig>>,
}

#[derive(Debug)]
enum Entry {
    Free,
    Conn(Box<Conn>),
    Listener(Listener),
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    entry: Entry,
}

/// One core's stack over a device.
pub struct Stack<D: Device> {
    dev: D,
    cfg: StackConfig,
    mac: MacAddr,
    now: Instant,
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: ConnTable,
    listen_ports: HashMap<u16, u32, ahash::RandomState>,
    timers: TimerWheel<u32>,
    arp: ArpCache,
    ports: PortAllocator,
    isn: IsnGenerator,
    dirty: Vec<u32>,
    ready: VecDeque<u32>,
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    counters: Counters,
    /// Received frames connections hold (zero-copy receive).
    rx_frames_held: usize,
    /// Frames held for zero-copy send (queued data and buffers handed out).
    tx_frames_held: usize,
    /// Connections refused a send buffer at `max_tx_frames_held`: told `Writable` when frames
    /// come back.
    tx_waiters: Vec<u32>,
    /// Buffer storage of closed connections, by size, for new ones.
    buffer_pool: HashMap<usize, Vec<Box<[u8]>>, ahash::RandomState>,
    /// Scoreboard storage of closed connections, for the next ones.
    scoreboard_pool: Vec<VecDeque<crate::tcp::recovery::Seg>>,
    buffer_pool_bytes: usize,
}

impl<D: Device> fmt::Debug for Stack<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("ip", &self.cfg.ip)
            .field("mac", &self.mac)
            .field("sockets", &self.table.len())
            .finish()
    }
}

impl<D: Device> Stack<D> {
    /// A stack on `dev` with the configured address. Announces itself with a gratuitous ARP
    /// (RFC 5227 §2.3) on the first `poll`.
    pub fn new(dev: D, cfg: StackConfig, now: Instant) -> Stack<D> {
        let mac = dev.mac();
        let n = cfg.max_sockets;
        let isn = IsnGenerator::new(cfg.secret);
        let mut port_key = cfg.secret;
        port_key[0] ^= 0x5a; // a different key for ports than for ISNs
        let mut s = Stack {
            mac,
            now,
            slots: (0..n).map(|_| Slot { gen: 0, entry: Entry::Free }).collect(),
            free: (0..n as u32).rev().collect(),
            table: ConnTable::with_capacity(n),
            listen_ports: HashMap::with_capacity_and_hasher(n.min(1024), ahash::RandomState::new()),
            timers: TimerWheel::new(n, cfg.timer_resolution, now),
            arp: ArpCache::new(cfg.arp_cache_size, cfg.arp_ttl, cfg.arp_pending),
            ports: PortAllocator::new(cfg.ephemeral_ports, IsnGenerator::new(port_key)),
            isn,
            dirty: Vec::with_capacity(n),
            ready: VecDeque::with_capacity(n),
            rx: Vec::with_capacity(cfg.rx_burst),
            tx: Vec::with_capacity(cfg.rx_burst * 2),
            counters: Counters::default(),
            rx_frames_held: 0,
            tx_frames_held: 0,
            tx_waiters: Vec::new(),
            buffer_pool: HashMap::with_hasher(ahash::RandomState::new()),
            scoreboard_pool: Vec::new(),
            buffer_pool_bytes: 0,
            dev,
            cfg,
        };
        for ip in s.addresses().collect::<Vec<_>>() {
            s.send_arp_from(ip, ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, ip);
        }
        s
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }
    pub fn device(&self) -> &D {
        &self.dev
    }
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }
    pub fn ip(&self) -> Ipv4Addr {
        self.cfg.ip
    }

    /// Every address of the stack, the first address first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        core::iter::once(self.cfg.ip).chain(self.cfg.extra_ips.iter().copied())
    }

    /// Is `ip` one of the stack's addresses?
    #[inline]
    fn is_ours(&self, ip: Ipv4Addr) -> bool {
        ip == self.cfg.ip || self.cfg.extra_ips.contains(&ip)
    }
    /// Whether a `poll` now would have something to do besides receiving: application calls
    /// left connections with output pending, or frames wait for a TX ring with room.
    pub fn has_pending_output(&self) -> bool {
        !self.dirty.is_empty() || !self.tx.is_empty()
    }

    /// Connections in the table (TIME-WAIT included).
    pub fn connection_count(&self) -> usize {
        self.table.len()
    }

    // ------------------------------------------------------------------ the API

    /// Listen on `port` with room for `backlog` connections in each of the SYN and accept
    /// queues.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<Handle, StackError> {
        self.listen_inner(port, backlog, None)
    }

    /// Listen with per-connection settings for what it accepts (buffer sizes, Nagle,
    /// keep-alive, timeouts) instead of the stack's defaults.
    pub fn listen_with(&mut self, port: u16, backlog: usize, tcp: TcpConfig) -> Result<Handle, StackError> {
        check_tcp_config(&tcp)?;
        self.listen_inner(port, backlog, Some(Box::new(tcp)))
    }

    fn listen_inner(&mut self, port: u16, backlog: usize, tcp: Option<Box<TcpConfig>>) -> Result<Handle, StackError> {
        if port == 0 {
            return Err(StackError::InvalidAddress);
        }
        if self.listen_ports.contains_key(&port) {
            return Err(StackError::AddrInUse);
        }
        let idx = self.alloc_slot()?;
        self.slots[idx as usize].entry = Entry::Listener(Listener {
            port,
            backlog: backlog.max(1),
            syn_pending: 0,
            accept_queue: VecDeque::with_capacity(backlog.max(1)),
            ready: false,
            tcp,
        });
        self.listen_ports.insert(port, idx);
        Ok(self.handle(idx))
    }

    /// Open a connection to `remote` (the SYN goes out on the next `poll`).
    pub fn connect(&mut self, remote: SocketAddrV4) -> Result<Handle, StackError> {
        let tcp = self.cfg.tcp.clone();
        self.connect_with(remote, tcp)
    }

    /// Connect with per-connection settings (buffer sizes, Nagle, keep-alive, timeouts)
    /// instead of the stack's defaults.
    pub fn connect_with(&mut self, remote: SocketAddrV4, tcp: TcpConfig) -> Result<Handle, StackError> {
        // The first address, then the others when it has no port left for this destination.
        let n = 1 + self.cfg.extra_ips.len();
        for i in 0..n {
            let local_ip = if i == 0 { self.cfg.ip } else { self.cfg.extra_ips[i - 1] };
            match self.connect_from(local_ip, remote, tcp.clone()) {
                Err(StackError::PortsExhausted) if i + 1 < n => continue,
                r => return r,
            }
        }
        Err(StackError::PortsExhausted)
    }

    /// Connect from one of the stack's addresses (`extra_ips`), with per-connection settings.
    pub fn connect_from(
        &mut self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        tcp: TcpConfig,
    ) -> Result<Handle, StackError> {
        check_tcp_config(&tcp)?;
        if !self.is_ours(local_ip) {
            return Err(StackError::InvalidAddress);
        }
        let ip = *remote.ip();
        if self.is_ours(ip) {
            return Err(StackError::ConnectToSelf);
        }
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || remote.port() == 0 {
            return Err(StackError::InvalidAddress);
        }
        if self.free.is_empty() {
            return Err(StackError::TooManySockets);
        }
        let table = &self.table;
        let listen_ports = &self.listen_ports;
        let port = self
            .ports
            .allocate(SocketAddrV4::new(local_ip, 0), remote, self.cfg.rss.as_ref(), |p| {
                listen_ports.contains_key(&p)
                    || table.contains(&FourTuple { local: SocketAddrV4::new(local_ip, p), remote })
            })
            .ok_or(StackError::PortsExhausted)?;
        let local = SocketAddrV4::new(local_ip, port);
        let iss = self.isn.isn(self.now, local, remote);
        let bufs = self.take_buffers(&tcp);
        let tcb = Tcb::connect_in(tcp, local, remote, iss, self.now, Some(bufs));
        let idx = self.alloc_slot()?;
        let key = FourTuple { local, remote };
        self.slots[idx as usize].entry = Entry::Conn(Box::new(Conn::new(tcb, key, None)));
        let inserted = self.table.insert(key, idx);
        debug_assert!(inserted, "the table holds max_sockets entries");
        self.counters.tcp_active_opens += 1;
        self.mark_dirty(idx);
        Ok(self.handle(idx))
    }

    /// The next established connection of a listener, if one is waiting.
    pub fn accept(&mut self, listener: Handle) -> Result<Option<Handle>, StackError> {
        let idx = self.check(listener)?;
        let Entry::Listener(l) = &mut self.slots[idx as usize].entry else {
            return Err(StackError::NotListener);
        };
        let Some(c) = l.accept_queue.pop_front() else { return Ok(None) };
        if let Entry::Conn(conn) = &mut self.slots[c as usize].entry {
            conn.listener = None;
        }
        // Events that arrived before the application knew the handle are now deliverable.
        self.mark_ready(c);
        Ok(Some(self.handle(c)))
    }

    /// Queue a copy of `data` for sending; returns how much was taken (`WouldBlock` when
    /// the send buffer is full: a `Writable` event follows when room opens). On a connection
    /// that sends from frames (after [`Stack::alloc_send_buf`]), the bytes are copied into
    /// frames of the device.
    pub fn send(&mut self, h: Handle, data: &[u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        if !self.conn(idx).tcb.external_send() {
            let r = self.conn_mut(idx).tcb.send(data);
            self.mark_dirty(idx);
            return Ok(r?);
        }
        let mut sent = 0;
        while sent < data.len() {
            let buf = match self.alloc_send_buf(h) {
                Ok(b) => b,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            };
            let n = buf.capacity().min(data.len() - sent);
            self.send_buf_mut(&buf)[..n].copy_from_slice(&data[sent..sent + n]);
            self.send_frame(buf, n)?;
            sent += n;
        }
        Ok(sent)
    }

    /// Copy up to `out.len()` received bytes into `out`. `Ok(0)` (with a non-empty `out`) is
    /// the end of the stream; `WouldBlock` means nothing yet (a `Readable` event follows).
    /// Bytes held in received frames are copied straight from them, which frees the frames.
    pub fn recv(&mut self, h: Handle, out: &mut [u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let n = self.take_rx(idx, out.len(), Some(out));
        self.mark_dirty(idx); // reading may open the window
        if n > 0 || out.is_empty() {
            return Ok(n);
        }
        // Nothing queued: the TCB says whether the stream ended or data is still to come.
        Ok(self.conn_mut(idx).tcb.recv(out)?)
    }

    /// Zero-copy receive: the readable bytes of `h` in place, in order, as slices of the
    /// frames they arrived in (or of the connection's buffer, for data that arrived out of
    /// order). Nothing is consumed until [`Stack::consume`]; until then the frames stay
    /// with the application and count against the connection's receive window, so a slow
    /// reader shrinks the window rather than losing data.
    pub fn recv_chunks(&self, h: Handle) -> Result<RecvChunks<'_, D>, StackError> {
        let idx = self.conn_idx(h)?;
        let c = self.conn(idx);
        Ok(RecvChunks { dev: &self.dev, tcb: &c.tcb, q: c.rxq.iter(), buffered_off: 0, pending: &[] })
    }

    /// Consume `n` bytes from the front of what [`Stack::recv_chunks`] showed: frames read to
    /// the end go back to the device and the window opens. Returns how many were consumed.
    pub fn consume(&mut self, h: Handle, n: usize) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let n = self.take_rx(idx, n, None);
        self.mark_dirty(idx);
        Ok(n)
    }

    /// Take up to `max` bytes from the front of a connection's received data, copying them
    /// into `out` if given.
    fn take_rx(&mut self, idx: u32, max: usize, mut out: Option<&mut [u8]>) -> usize {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return 0 };
        let mut done = 0;
        while done < max {
            let Some(front) = c.rxq.front_mut() else { break };
            let want = max - done;
            match front {
                RxChunk::Buffered(k) => {
                    let m = want.min(*k);
                    let got = match out.as_deref_mut() {
                        Some(o) => c.tcb.recv(&mut o[done..done + m]).unwrap_or(0),
                        None => c.tcb.consume_buffered(m),
                    };
                    debug_assert_eq!(got, m, "the TCB holds what the queue says");
                    *k -= m;
                    done += m;
                    if *k == 0 || got < m {
                        c.rxq.pop_front();
                    }
                }
                RxChunk::InFrame(f) => {
                    let m = want.min(f.len as usize);
                    if let Some(o) = out.as_deref_mut() {
                        o[done..done + m].copy_from_slice(&self.dev.frame(f)[..m]);
                    }
                    f.offset += m as u32;
                    f.len -= m as u32;
                    c.tcb.release_rx(m);
                    done += m;
                    if f.len == 0 {
                        if let Some(RxChunk::InFrame(f)) = c.rxq.pop_front() {
                            self.dev.recycle(f);
                        }
                        c.rx_frames -= 1;
                        self.rx_frames_held -= 1;
                    }
                }
            }
        }
        if c.close_pending.is_some() && c.rxq.is_empty() {
            self.mark_ready_always(idx);
        }
        done
    }

    /// Zero-copy send: a frame to write up to one segment of payload into, in place
    /// ([`Stack::send_buf_mut`]), then queue with [`Stack::send_frame`]. The stack keeps the
    /// frame until the peer acknowledges its bytes and retransmits from it. The first call
    /// switches the connection to sending from frames, which needs its copied data (from
    /// [`Stack::send`]) to be acknowledged first (`SendQueueBusy`). `WouldBlock` when the
    /// connection's send buffer is full or every frame the stack lends for sending is out
    /// (`max_tx_frames_held`); a `Writable` event follows.
    pub fn alloc_send_buf(&mut self, h: Handle) -> Result<SendBuf, StackError> {
        let idx = self.conn_idx(h)?;
        let c = self.conn_mut(idx);
        if c.tcb.set_external_send().is_err() {
            return Err(StackError::SendQueueBusy);
        }
        let mss = c.tcb.send_mss();
        let offset = ETH_LEN + IP_LEN + c.tcb.data_header_len();
        let queued = (c.tx_end - c.tx_acked) as usize + c.tx_bufs_out * mss;
        if queued >= c.tcb.config().send_buffer {
            c.tcb.note_send_full();
            return Err(StackError::Tcp(TcpError::WouldBlock));
        }
        if self.tx_frames_held >= self.cfg.max_tx_frames_held {
            self.counters.tx_frames_exhausted += 1;
            self.conn_mut(idx).tcb.note_send_full();
            if !self.tx_waiters.contains(&idx) {
                self.tx_waiters.push(idx);
            }
            return Err(StackError::Tcp(TcpError::WouldBlock));
        }
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return Err(StackError::Tcp(TcpError::WouldBlock));
        };
        let capacity = mss.min(self.dev.frame_capacity().saturating_sub(offset));
        frame.offset = offset as u32;
        frame.len = capacity as u32;
        self.tx_frames_held += 1;
        self.conn_mut(idx).tx_bufs_out += 1;
        Ok(SendBuf { frame, conn: h, capacity })
    }

    /// The payload area of a send buffer (`capacity()` bytes), to write in place.
    pub fn send_buf_mut(&mut self, b: &SendBuf) -> &mut [u8] {
        let start = b.frame.offset as usize;
        &mut self.dev.buffer_mut(&b.frame)[start..start + b.capacity]
    }

    /// Queue the first `len` bytes of a send buffer's payload on its connection. The buffer
    /// is the stack's from now on, whatever the outcome (on an error its frame goes back).
    pub fn send_frame(&mut self, mut b: SendBuf, len: usize) -> Result<(), StackError> {
        let idx = match self.conn_idx(b.conn) {
            Ok(i) => i,
            Err(e) => {
                // The connection is gone: its count of buffers went with it.
                self.tx_frames_held -= 1;
                self.dev.recycle(b.frame);
                return Err(e);
            }
        };
        if len > b.capacity {
            self.drop_send_buf(b);
            return Err(StackError::BadSendBuf);
        }
        let c = self.conn_mut(idx);
        c.tx_bufs_out -= 1;
        if len == 0 {
            self.tx_frames_held -= 1;
            self.dev.recycle(b.frame);
            return Ok(());
        }
        if let Err(e) = c.tcb.send_external(len) {
            self.tx_frames_held -= 1;
            self.dev.recycle(b.frame);
            return Err(e.into());
        }
        b.frame.len = len as u32;
        let start = c.tx_end;
        c.tx_end += len as u64;
        c.txq.push_back(TxChunk { frame: b.frame, start });
        self.mark_dirty(idx);
        Ok(())
    }

    /// Give back a send buffer without sending it.
    pub fn drop_send_buf(&mut self, b: SendBuf) {
        if let Ok(idx) = self.conn_idx(b.conn) {
            self.conn_mut(idx).tx_bufs_out -= 1;
        }
        self.tx_frames_held -= 1;
        self.dev.recycle(b.frame);
        self.wake_tx_waiters();
    }

    /// Frames held by connections: received data not yet consumed, and zero-copy send data
    /// (queued, unacknowledged, or in buffers handed out).
    pub fn frames_held(&self) -> (usize, usize) {
        (self.rx_frames_held, self.tx_frames_held)
    }

    /// Shut down writing (half-close).
    pub fn shutdown(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        let r = self.conn_mut(idx).tcb.shutdown();
        self.mark_dirty(idx);
        Ok(r?)
    }

    /// Close a connection (FIN; a reset if unread data remains), or stop a listener (its
    /// queued connections are reset).
    pub fn close(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.check(h)?;
        if let Entry::Listener(l) = &mut self.slots[idx as usize].entry {
            let queued: Vec<u32> = l.accept_queue.drain(..).collect();
            let port = l.port;
            self.listen_ports.remove(&port);
            for c in queued {
                self.conn_mut(c).tcb.abort();
                self.conn_mut(c).listener = None;
                self.mark_dirty(c);
            }
            self.free_slot(idx);
            return Ok(());
        }
        if self.conn(idx).close_pending.is_some() {
            // Over already, with data unread: drop it; `Closed` follows.
            self.take_rx(idx, usize::MAX, None);
            return Ok(());
        }
        let r = self.conn_mut(idx).tcb.close();
        self.mark_dirty(idx);
        Ok(r?)
    }

    /// Reset a connection at once.
    pub fn abort(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        if self.conn(idx).close_pending.is_some() {
            self.take_rx(idx, usize::MAX, None);
            return Ok(());
        }
        self.conn_mut(idx).tcb.abort();
        self.mark_dirty(idx);
        Ok(())
    }

    /// TCP_NODELAY: Nagle off (`true`) or on.
    pub fn set_nodelay(&mut self, h: Handle, nodelay: bool) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        self.conn_mut(idx).tcb.set_nagle(!nodelay);
        self.mark_dirty(idx);
        Ok(())
    }

    pub fn set_keepalive(&mut self, h: Handle, ka: Option<Keepalive>) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        let now = self.now;
        self.conn_mut(idx).tcb.set_keepalive(ka, now);
        self.mark_dirty(idx);
        Ok(())
    }

    /// State of a connection.
    pub fn state(&self, h: Handle) -> Result<State, StackError> {
        let idx = self.conn_idx(h)?;
        Ok(self.conn(idx).tcb.state())
    }

    /// The connection's TCB, for statistics and inspection.
    pub fn tcb(&self, h: Handle) -> Result<&Tcb, StackError> {
        let idx = self.conn_idx(h)?;
        Ok(&self.conn(idx).tcb)
    }

    /// The next event, if any. A `Closed` event is the last for its handle.
    pub fn poll_event(&mut self) -> Option<(Handle, StackEvent)> {
        while let Some(&idx) = self.ready.front() {
            let h = self.handle(idx);
            match &mut self.slots[idx as usize].entry {
                Entry::Listener(l) => {
                    l.ready = false;
                    self.ready.pop_front();
                    if !l.accept_queue.is_empty() {
                        return Some((h, StackEvent::Accepted));
                    }
                }
                Entry::Conn(c) if c.listener.is_none() => {
                    // A connection that ended normally with data still unread stays readable
                    // (as a kernel socket does until close()); `Closed` comes once it is read.
                    if let Some(r) = c.close_pending {
                        if c.rxq.is_empty() {
                            c.close_pending = None;
                            c.closed_reported = true;
                            self.ready.pop_front();
                            self.free_slot(idx);
                            return Some((h, StackEvent::Closed(r)));
                        }
                    }
                    if let Some(ev) = c.tcb.poll_event() {
                        let ev = match ev {
                            Event::Connected => StackEvent::Connected,
                            Event::Readable => StackEvent::Readable,
                            Event::Writable => StackEvent::Writable,
                            Event::PeerClosed => StackEvent::PeerClosed,
                            Event::Closed(r @ CloseReason::Normal) if !c.rxq.is_empty() => {
                                c.close_pending = Some(r);
                                StackEvent::Readable
                            }
                            Event::Closed(r) => {
                                c.closed_reported = true;
                                StackEvent::Closed(r)
                            }
                        };
                        if c.closed_reported {
                            self.ready.pop_front();
                            self.free_slot(idx);
                        }
                        return Some((h, ev));
                    }
                    c.ready = false;
                    self.ready.pop_front();
                }
                _ => {
                    self.ready.pop_front();
                }
            }
        }
        None
    }

    // ------------------------------------------------------------------ the loop

    /// One turn of the run-to-completion loop at `now`: receive and process a burst, run due
    /// timers, transmit. Returns the next time something is due (call again then, or when
    /// the device has frames).
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.now = self.now.max(now);
        let now = self.now;
        // Receive.
        let mut rx = core::mem::take(&mut self.rx);
        loop {
            let n = self.dev.rx_burst(&mut rx, self.cfg.rx_burst);
            for f in rx.drain(..) {
                self.counters.frames_in += 1;
                // A frame whose payload a connection keeps (zero-copy receive) stays out.
                if let Some(f) = self.process_frame(f) {
                    self.dev.recycle(f);
                }
            }
            if n < self.cfg.rx_burst {
                break;
            }
        }
        self.rx = rx;
        // Timers.
        while let Some((_, idx)) = self.timers.poll_expired(now) {
            if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
                c.timer = None;
                c.deadline = None;
                c.tcb.handle_timeout(now);
                self.mark_dirty(idx);
            }
        }
        self.expire_arp_pending(now);
        // Output of every connection touched. A connection that could not send everything
        // (TX pool empty) marks itself dirty again, for the next poll.
        let mut dirty = core::mem::take(&mut self.dirty);
        for idx in dirty.drain(..) {
            self.flush_conn(idx);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
        self.transmit();
        let arp_next = self.arp.pending.front().map(|p| p.since + Duration::from_secs(1));
        [self.timers.next_deadline(), arp_next].into_iter().flatten().min()
    }

    fn transmit(&mut self) {
        if !self.tx.is_empty() {
            let n = self.dev.tx_burst(&mut self.tx);
            self.counters.frames_out += n as u64;
            self.dev.flush();
        }
    }

    // ------------------------------------------------------------------ input

    /// Handle one received frame; gives it back unless a connection kept its payload.
    fn process_frame(&mut self, f: Frame) -> Option<Frame> {
        let rx_csum = self.dev.rx_checksum();
        // `bytes` borrows the device; the fields used while it lives are disjoint from it.
        let bytes = self.dev.frame(&f);
        let parsed = match FrameRepr::parse(bytes, rx_csum) {
            Ok(p) => p,
            Err(e) => {
                self.counters.count_wire_error(e);
                return Some(f);
            }
        };
        if parsed.eth.dst != self.mac && !parsed.eth.dst.is_broadcast() {
            self.counters.drop_not_for_us += 1;
            return Some(f);
        }
        let eth_src = parsed.eth.src;
        match parsed.net {
            NetRepr::Arp(a) => self.process_arp(a, eth_src),
            NetRepr::Ipv4 { ip, .. } if !self.is_ours(ip.dst) => self.counters.drop_not_for_us += 1,
            NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(seg) } => {
                self.counters.tcp_segs_in += 1;
                if seg.flags.contains(wire::TcpFlags::RST) {
                    self.counters.tcp_rsts_in += 1;
                }
                let remote = SocketAddrV4::new(ip.src, seg.src_port);
                let local = SocketAddrV4::new(ip.dst, seg.dst_port);
                let key = FourTuple { local, remote };
                // The fast path: the connection takes the payload where it lies.
                if let Some(idx) = self.table.get(&key) {
                    let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return Some(f) };
                    let may_lend = self.cfg.zero_copy_rx
                        && !seg.payload.is_empty()
                        && self.rx_frames_held < self.cfg.max_rx_frames_held
                        && c.rx_frames < self.cfg.max_rx_frames_per_conn;
                    let before = c.tcb.recv_buffered();
                    let ce = ip.dscp_ecn & ECN_MASK == ECN_CE;
                    self.counters.ecn_ce_in += u64::from(ce);
                    let lent = c.tcb.on_segment_with(self.now, remote, &seg, RxInfo { ce, may_lend });
                    let copied = c.tcb.recv_buffered().saturating_sub(before);
                    if copied > 0 {
                        match c.rxq.back_mut() {
                            Some(RxChunk::Buffered(n)) => *n += copied,
                            _ => c.rxq.push_back(RxChunk::Buffered(copied)),
                        }
                    }
                    if !c.dirty {
                        c.dirty = true;
                        self.dirty.push(idx);
                    }
                    if let Some((off, len)) = lent {
                        // The payload's place in the frame (a subslice of `bytes`).
                        let at = seg.payload.as_ptr() as usize - bytes.as_ptr() as usize + off;
                        c.rxq.push_back(RxChunk::InFrame(Frame {
                            index: f.index,
                            offset: f.offset + at as u32,
                            len: len as u32,
                        }));
                        c.rx_frames += 1;
                        self.rx_frames_held += 1;
                        self.counters.tcp_rx_in_place += 1;
                        return None;
                    }
                    return Some(f);
                }
                // No connection: a SYN for a listener, or a reset. Neither needs the payload
                // (data on a SYN is not accepted), so the frame borrow ends here.
                let rst = reset_for(&seg);
                let header = TcpRepr { payload: &[], ..seg };
                self.process_tcp_no_conn(local, remote, header, rst);
            }
            NetRepr::Ipv4 { ip, l4: L4Repr::Icmp(icmp) } => {
                // Copy what an echo reply needs out of the device's frame.
                let mut copy = [0u8; 1500];
                let icmp = match icmp {
                    Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::EchoRequest { ident, seq_no, data: &copy[..n] }
                    }
                    Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data: &copy[..n] }
                    }
                    Icmpv4Repr::TimeExceeded { reason, header, data } => {
                        let n = data.len().min(copy.len());
                        copy[..n].copy_from_slice(&data[..n]);
                        Icmpv4Repr::TimeExceeded { reason, header, data: &copy[..n] }
                    }
                    Icmpv4Repr::EchoReply { .. } => return Some(f),
                };
                self.process_icmp(ip, icmp, eth_src);
            }
            NetRepr::Ipv4 { l4: L4Repr::Udp(_), .. } => self.counters.drop_udp += 1,
        }
        Some(f)
    }

    fn process_arp(&mut self, a: ArpRepr, _eth_src: MacAddr) {
        let now = self.now;
        match a.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_in += 1;
                if self.is_ours(a.target_ip) {
                    // RFC 826: the requester is about to talk to us; learn it, then reply.
                    self.arp.insert(a.source_ip, a.source_mac, now);
                    self.send_arp_from(a.target_ip, ArpOperation::Reply, a.source_mac, a.source_mac, a.source_ip);
                    self.flush_arp_pending(a.source_ip, a.source_mac);
                } else {
                    // RFC 826 "merge": refresh what we already know, learn nothing new.
                    self.arp.refresh(a.source_ip, a.source_mac, now);
                }
            }
            ArpOperation::Reply => {
                self.counters.arp_replies_in += 1;
                if self.is_ours(a.target_ip) {
                    self.arp.insert(a.source_ip, a.source_mac, now);
                    self.flush_arp_pending(a.source_ip, a.source_mac);
                } else {
                    self.arp.refresh(a.source_ip, a.source_mac, now);
                }
            }
        }
    }

    fn process_icmp(&mut self, ip: Ipv4Repr, icmp: Icmpv4Repr<'_>, eth_src: MacAddr) {
        match icmp {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                self.counters.icmp_echo_in += 1;
                let mut copy = [0u8; 1500];
                let n = data.len().min(copy.len());
                copy[..n].copy_from_slice(&data[..n]);
                let reply = Icmpv4Repr::EchoReply { ident, seq_no, data: &copy[..n] };
                let ipr = Ipv4Repr {
                    src: ip.dst,
                    dst: ip.src,
                    protocol: IpProtocol::Icmp,
                    payload_len: reply.buffer_len(),
                    ttl: 64,
                    ident: 0,
                    dont_frag: false,
                    dscp_ecn: 0,
                };
                let frame = FrameRepr {
                    eth: EthernetRepr { src: self.mac, dst: eth_src, ethertype: EtherType::Ipv4 },
                    net: NetRepr::Ipv4 { ip: ipr, l4: L4Repr::Icmp(reply) },
                };
                if self.emit_frame(&frame) {
                    self.counters.icmp_echo_out += 1;
                }
            }
            Icmpv4Repr::DstUnreachable { header, data, .. } | Icmpv4Repr::TimeExceeded { header, data, .. } => {
                let err = match icmp {
                    Icmpv4Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu, .. } => {
                        IcmpError::FragmentationNeeded { mtu: next_hop_mtu }
                    }
                    Icmpv4Repr::DstUnreachable { .. } => IcmpError::Unreachable,
                    _ => IcmpError::TimeExceeded,
                };
                // RFC 1122 §4.2.3.9: for TCP these are soft errors; the connection goes on. The
                // quoted header names the connection (our address, TCP, its ports).
                if self.is_ours(header.src) && header.protocol == IpProtocol::Tcp && data.len() >= 4 {
                    let local = SocketAddrV4::new(header.src, u16::from_be_bytes([data[0], data[1]]));
                    let remote = SocketAddrV4::new(header.dst, u16::from_be_bytes([data[2], data[3]]));
                    if let Some(idx) = self.table.get(&FourTuple { local, remote }) {
                        self.counters.icmp_errors_in += 1;
                        self.conn_mut(idx).tcb.on_icmp_error(err);
                        self.mark_dirty(idx);
                    }
                }
            }
            Icmpv4Repr::EchoReply { .. } => {}
        }
    }

    fn process_tcp_no_conn(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: TcpRepr<'static>,
        rst: Option<TcpRepr<'static>>,
    ) {
        if let Some(&lidx) = self.listen_ports.get(&seg.dst_port) {
            let f = seg.flags;
            if f.contains(wire::TcpFlags::SYN) && !f.intersects(wire::TcpFlags::ACK | wire::TcpFlags::RST) {
                self.accept_syn(lidx, local, remote, &seg);
                return;
            }
            // RFC 9293 §3.10.7.2: in LISTEN, an RST is ignored and an ACK gets a reset.
            if f.contains(wire::TcpFlags::RST) {
                return;
            }
        }
        // §3.10.7.1: no connection.
        self.counters.tcp_no_socket += 1;
        if let Some(rst) = rst {
            self.send_segment(*local.ip(), remote, &rst);
            self.counters.tcp_rsts_out += 1;
        }
    }

    fn accept_syn(&mut self, lidx: u32, local: SocketAddrV4, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
        let Entry::Listener(l) = &self.slots[lidx as usize].entry else { return };
        // Linux drops a SYN when either queue is full; the peer retries (no SYN cookies yet).
        if l.syn_pending >= l.backlog {
            self.counters.tcp_syn_queue_full += 1;
            return;
        }
        if l.accept_queue.len() >= l.backlog {
            self.counters.tcp_accept_queue_full += 1;
            return;
        }
        let Ok(idx) = self.alloc_slot() else {
            self.counters.tcp_table_full += 1;
            return;
        };
        let iss = self.isn.isn(self.now, local, remote);
        let cfg = match &self.slots[lidx as usize].entry {
            Entry::Listener(Listener { tcp: Some(t), .. }) => (**t).clone(),
            _ => self.cfg.tcp.clone(),
        };
        let bufs = self.take_buffers(&cfg);
        let tcb = Tcb::from_syn_in(cfg, local, remote, iss, seg, self.now, Some(bufs));
        let key = FourTuple { local, remote };
        self.slots[idx as usize].entry = Entry::Conn(Box::new(Conn::new(tcb, key, Some(lidx))));
        if let Entry::Listener(l) = &mut self.slots[lidx as usize].entry {
            l.syn_pending += 1;
        }
        let inserted = self.table.insert(key, idx);
        debug_assert!(inserted, "the table holds max_sockets entries");
        self.counters.tcp_passive_opens += 1;
        self.mark_dirty(idx);
    }

    // ------------------------------------------------------------------ output

    /// After a connection was touched: send what it has, collect its events, follow its
    /// state (listener queues, table), and keep its timer in the wheel in step.
    fn flush_conn(&mut self, idx: u32) {
        let now = self.now;
        {
            let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return };
            c.dirty = false;
        }
        // What the peer acknowledged since: the TCB's offsets now start after it.
        self.release_acked_tx(idx);
        // Transmit everything the TCB has, straight into device frames.
        loop {
            let remote = self.conn(idx).key.remote;
            let Some(mut frame) = self.dev.alloc_tx() else {
                self.counters.tx_pool_empty += 1;
                // The TCB keeps what it could not send; the next poll tries again.
                self.mark_dirty(idx);
                break;
            };
            let buf = self.dev.buffer_mut(&frame);
            let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { unreachable!() };
            let Some(seg) = c.tcb.poll_transmit(now, &mut buf[HEADROOM..]) else {
                self.dev.recycle(frame);
                break;
            };
            let mut payload_len = seg.payload.len();
            let header = TcpRepr { payload: &[], ..seg };
            let ect = c.tcb.last_tx_ect();
            if let Some((off, len)) = c.tcb.take_tx_range() {
                // Zero-copy send: the payload is in the application's frames.
                if self.send_in_place(idx, &header, off, len, ect) {
                    self.dev.recycle(frame);
                    continue;
                }
                self.copy_from_tx_frames(idx, &frame, off, len);
                self.counters.tcp_tx_copied += 1;
                payload_len = len;
            }
            if header.flags.contains(wire::TcpFlags::RST) {
                self.counters.tcp_rsts_out += 1;
            }
            self.counters.tcp_segs_out += 1;
            // Headers go right before the payload the TCB wrote at HEADROOM.
            let tcp_len = header.header_len();
            let start = HEADROOM - tcp_len - IP_LEN - ETH_LEN;
            let local_ip = *self.conn(idx).key.local.ip();
            let buf = self.dev.buffer_mut(&frame);
            let seg_bytes = &mut buf[HEADROOM - tcp_len..HEADROOM + payload_len];
            if header.emit_header_over(seg_bytes, local_ip, *remote.ip()).is_err() {
                self.dev.recycle(frame);
                continue;
            }
            let ipr = tcp_ip_header(local_ip, *remote.ip(), tcp_len + payload_len, ect);
            let _ = ipr.emit(&mut buf[start + ETH_LEN..]);
            frame.offset = start as u32;
            frame.len = (ETH_LEN + IP_LEN + tcp_len + payload_len) as u32;
            self.send_ipv4_frame(*remote.ip(), frame);
        }
        self.release_acked_tx(idx);
        // Follow the connection's state.
        let (state, has_events, listener, opened) = {
            let c = self.conn(idx);
            (c.tcb.state(), true, c.listener, c.opened)
        };
        if state != State::Closed && state != State::SynSent && state != State::SynReceived && !opened {
            self.conn_mut(idx).opened = true;
            if let Some(l) = listener {
                self.promote_to_accept_queue(l, idx);
            }
        }
        if state == State::Closed {
            self.on_closed(idx);
            return;
        }
        if has_events && self.conn(idx).listener.is_none() {
            self.mark_ready(idx);
        }
        if state == State::TimeWait {
            // 2·MSL with nothing to send or receive: the buffers go back to the pool now.
            if let Some(b) = self.conn_mut(idx).tcb.release_buffers() {
                self.keep_buffers(b);
            }
        }
        // Keep the wheel in step with the TCB's next deadline.
        let want = self.conn(idx).tcb.poll_timeout();
        let (have, timer) = {
            let c = self.conn(idx);
            (c.deadline, c.timer)
        };
        if want != have {
            if let Some(t) = timer {
                self.timers.cancel(t);
            }
            let new_timer = want.and_then(|d| self.timers.schedule(d, idx).ok());
            let c = self.conn_mut(idx);
            c.timer = new_timer;
            c.deadline = if new_timer.is_some() { want } else { None };
        }
    }

    /// Send a zero-copy segment from the application's frame itself: the payload is exactly
    /// one queued frame, not in flight, with room for the headers right before it, and the
    /// next hop is known. Returns false when any of that fails (the caller copies).
    fn send_in_place(&mut self, idx: u32, header: &TcpRepr<'_>, off: usize, len: usize, ect: bool) -> bool {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return false };
        let (local_ip, remote) = (*c.key.local.ip(), c.key.remote);
        let at = c.tx_acked + off as u64;
        let i = c.txq.partition_point(|ch| ch.start < at);
        let Some(chunk) = c.txq.get(i).filter(|ch| ch.start == at) else { return false };
        let (index, pay_off) = (chunk.frame.index, chunk.frame.offset as usize);
        let tcp_len = header.header_len();
        if chunk.frame.len as usize != len || pay_off < ETH_LEN + IP_LEN + tcp_len || self.dev.in_flight(&chunk.frame) {
            return false;
        }
        let Some(mac) = self.arp.lookup(self.next_hop(*remote.ip()), self.now) else { return false };
        // Earlier segments queued for the burst go first: keep the connection's order.
        if !self.tx.is_empty() {
            let n = self.dev.tx_burst(&mut self.tx);
            self.counters.frames_out += n as u64;
            if !self.tx.is_empty() {
                return false;
            }
        }
        let start = pay_off - tcp_len - IP_LEN - ETH_LEN;
        let whole = Frame { index, offset: start as u32, len: (ETH_LEN + IP_LEN + tcp_len + len) as u32 };
        let buf = self.dev.buffer_mut(&whole);
        if header.emit_header_over(&mut buf[pay_off - tcp_len..pay_off + len], local_ip, *remote.ip()).is_err() {
            return false;
        }
        let ipr = tcp_ip_header(local_ip, *remote.ip(), tcp_len + len, ect);
        let _ = ipr.emit(&mut buf[start + ETH_LEN..]);
        self.write_eth(&whole, mac);
        if !self.dev.tx_kept(&whole) {
            return false;
        }
        self.counters.frames_out += 1;
        self.counters.tcp_segs_out += 1;
        self.counters.tcp_tx_in_place += 1;
        true
    }

    /// Copy `len` bytes of zero-copy send data from stream offset `off` (after SND.UNA) out
    /// of the connection's frames into `frame`'s payload area (at `HEADROOM`).
    fn copy_from_tx_frames(&mut self, idx: u32, frame: &Frame, off: usize, len: usize) {
        let Entry::Conn(c) = &self.slots[idx as usize].entry else { return };
        let mut at = c.tx_acked + off as u64;
        let end = at + len as u64;
        let mut to = HEADROOM;
        // Both frames belong to the device, which lends one at a time: copy through the stack.
        let mut piece = [0u8; 2048];
        while at < end {
            let Entry::Conn(c) = &self.slots[idx as usize].entry else { return };
            // Chunks are in stream order: the first that ends after `at` holds it.
            let i = c.txq.partition_point(|ch| ch.start + ch.frame.len as u64 <= at);
            let Some(ch) = c.txq.get(i) else { break };
            let from = (at - ch.start) as usize;
            let n = (ch.frame.len as usize - from).min((end - at) as usize).min(piece.len());
            piece[..n].copy_from_slice(&self.dev.frame(&ch.frame)[from..from + n]);
            self.dev.buffer_mut(frame)[to..to + n].copy_from_slice(&piece[..n]);
            to += n;
            at += n as u64;
        }
        debug_assert_eq!(at, end, "the queued frames cover what the TCB sends");
    }

    /// Give back the frames of zero-copy send data the peer acknowledged (or that a closed
    /// connection abandoned).
    fn release_acked_tx(&mut self, idx: u32) {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return };
        let acked = c.tcb.take_released_tx();
        if acked == 0 {
            return;
        }
        c.tx_acked += acked as u64;
        let mut freed = 0;
        while let Some(ch) = c.txq.front() {
            if ch.start + ch.frame.len as u64 > c.tx_acked {
                break;
            }
            let ch = c.txq.pop_front().expect("front exists");
            self.dev.recycle(ch.frame);
            freed += 1;
        }
        if freed > 0 {
            self.tx_frames_held -= freed;
            self.wake_tx_waiters();
        }
    }

    /// Frames for sending came back: connections refused one hear `Writable`.
    fn wake_tx_waiters(&mut self) {
        if self.tx_waiters.is_empty() || self.tx_frames_held >= self.cfg.max_tx_frames_held {
            return;
        }
        let waiters = core::mem::take(&mut self.tx_waiters);
        for &w in &waiters {
            if let Entry::Conn(c) = &mut self.slots[w as usize].entry {
                c.tcb.notify_writable();
                self.mark_ready(w);
            }
        }
        self.tx_waiters = waiters;
        self.tx_waiters.clear();
    }

    fn promote_to_accept_queue(&mut self, lidx: u32, idx: u32) {
        let Entry::Listener(l) = &mut self.slots[lidx as usize].entry else { return };
        l.syn_pending = l.syn_pending.saturating_sub(1);
        if l.accept_queue.len() >= l.backlog {
            // Both queues were checked at SYN time, but several handshakes can complete
            // together: the overflow is reset and counted.
            self.counters.tcp_accept_queue_full += 1;
            self.conn_mut(idx).tcb.abort();
            self.conn_mut(idx).listener = None;
            self.mark_dirty(idx);
            return;
        }
        l.accept_queue.push_back(idx);
        if !l.ready {
            l.ready = true;
            self.ready.push_back(lidx);
        }
    }

    fn on_closed(&mut self, idx: u32) {
        let (key, timer, listener, opened) = {
            let c = self.conn(idx);
            (c.key, c.timer, c.listener, c.opened)
        };
        if let Some(t) = timer {
            self.timers.cancel(t);
        }
        self.table.remove(&key);
        let st = *self.conn(idx).tcb.stats();
        self.counters.add_tcb(&st);
        let c = self.conn_mut(idx);
        c.timer = None;
        c.deadline = None;
        // What ended it: peek without consuming (the application still gets the event).
        let failed = !opened;
        if failed {
            self.counters.tcp_failed_opens += 1;
        }
        if let Some(l) = listener {
            // Never accepted: nobody to tell; drop it from the listener's queues.
            if let Entry::Listener(lst) = &mut self.slots[l as usize].entry {
                if opened {
                    lst.accept_queue.retain(|&c| c != idx);
                } else {
                    lst.syn_pending = lst.syn_pending.saturating_sub(1);
                }
            }
            self.free_slot(idx);
            return;
        }
        self.mark_ready(idx);
    }

    /// Send a segment that belongs to no connection (a reset).
    fn send_segment(&mut self, local_ip: Ipv4Addr, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return;
        };
        let ipr = tcp_ip_header(local_ip, *remote.ip(), seg.buffer_len(), false);
        let buf = self.dev.buffer_mut(&frame);
        if ipr.emit(&mut buf[ETH_LEN..]).is_err()
            || seg.emit(&mut buf[ETH_LEN + IP_LEN..], local_ip, *remote.ip()).is_err()
        {
            self.dev.recycle(frame);
            return;
        }
        frame.offset = 0;
        frame.len = (ETH_LEN + IP_LEN + seg.buffer_len()) as u32;
        self.counters.tcp_segs_out += 1;
        self.send_ipv4_frame(*remote.ip(), frame);
    }

    /// The next hop for `dst`: itself when on-link, else the gateway.
    fn next_hop(&self, dst: Ipv4Addr) -> Ipv4Addr {
        let mask = if self.cfg.prefix_len == 0 { 0 } else { u32::MAX << (32 - self.cfg.prefix_len.min(32)) };
        let on_link = (u32::from(dst) & mask) == (u32::from(self.cfg.ip) & mask);
        match (on_link, self.cfg.gateway) {
            (false, Some(gw)) => gw,
            _ => dst,
        }
    }

    /// Fill in the Ethernet header of a frame holding an IPv4 packet and queue it, or park it
    /// until ARP resolves the next hop.
    fn send_ipv4_frame(&mut self, dst: Ipv4Addr, frame: Frame) {
        let hop = self.next_hop(dst);
        let now = self.now;
        match self.arp.lookup(hop, now) {
            Some(mac) => {
                self.write_eth(&frame, mac);
                self.tx.push(frame);
                if self.tx.len() >= self.cfg.rx_burst {
                    self.transmit();
                }
            }
            None => {
                if let Err(frame) = self.arp.enqueue(hop, frame, now) {
                    self.counters.arp_queue_drops += 1;
                    self.dev.recycle(frame);
                }
                if self.arp.should_request(hop, now) {
                    self.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, hop);
                }
            }
        }
    }

    fn write_eth(&mut self, frame: &Frame, dst: MacAddr) {
        let eth = EthernetRepr { src: self.mac, dst, ethertype: EtherType::Ipv4 };
        let off = frame.offset as usize;
        let _ = eth.emit(&mut self.dev.buffer_mut(frame)[off..]);
    }

    fn flush_arp_pending(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        let mut i = 0;
        while i < self.arp.pending.len() {
            if self.arp.pending[i].next_hop == ip {
                let p = self.arp.pending.remove(i).expect("index checked");
                self.write_eth(&p.frame, mac);
                self.tx.push(p.frame);
            } else {
                i += 1;
            }
        }
    }

    fn expire_arp_pending(&mut self, now: Instant) {
        while let Some(p) = self.arp.pending.front() {
            if now.saturating_duration_since(p.since) < self.cfg.arp_pending_timeout {
                break;
            }
            let p = self.arp.pending.pop_front().expect("front exists");
            self.counters.arp_queue_drops += 1;
            self.dev.recycle(p.frame);
        }
        // Ask again for what still waits (rate-limited per address).
        let hops: Vec<Ipv4Addr> =
            if self.arp.pending.is_empty() { Vec::new() } else { self.arp.pending_hops().collect() };
        for hop in hops {
            if self.arp.should_request(hop, now) {
                self.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, hop);
            }
        }
    }

    fn send_arp(&mut self, op: ArpOperation, eth_dst: MacAddr, target_mac: MacAddr, target_ip: Ipv4Addr) {
        self.send_arp_from(self.cfg.ip, op, eth_dst, target_mac, target_ip)
    }

    fn send_arp_from(
        &mut self,
        source_ip: Ipv4Addr,
        op: ArpOperation,
        eth_dst: MacAddr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
    ) {
        let frame = FrameRepr {
            eth: EthernetRepr { src: self.mac, dst: eth_dst, ethertype: EtherType::Arp },
            net: NetRepr::Arp(ArpRepr { operation: op, source_mac: self.mac, source_ip, target_mac, target_ip }),
        };
        if self.emit_frame(&frame) {
            match op {
                ArpOperation::Request => self.counters.arp_requests_out += 1,
                ArpOperation::Reply => self.counters.arp_replies_out += 1,
            }
        }
    }

    /// Write a whole frame into a TX frame and queue it.
    fn emit_frame(&mut self, repr: &FrameRepr<'_>) -> bool {
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return false;
        };
        match repr.emit(self.dev.buffer_mut(&frame)) {
            Ok(n) => {
                frame.offset = 0;
                frame.len = n as u32;
                self.tx.push(frame);
                true
            }
            Err(_) => {
                self.dev.recycle(frame);
                false
            }
        }
    }

    // ------------------------------------------------------------------ slots

    fn handle(&self, idx: u32) -> Handle {
        Handle { idx, gen: self.slots[idx as usize].gen, _core_local: PhantomData }
    }

    fn check(&self, h: Handle) -> Result<u32, StackError> {
        match self.slots.get(h.idx as usize) {
            Some(s) if s.gen == h.gen && !matches!(s.entry, Entry::Free) => Ok(h.idx),
            _ => Err(StackError::InvalidHandle),
        }
    }

    fn conn_idx(&self, h: Handle) -> Result<u32, StackError> {
        let idx = self.check(h)?;
        match &self.slots[idx as usize].entry {
            Entry::Conn(c) if !c.closed_reported => Ok(idx),
            Entry::Conn(_) => Err(StackError::InvalidHandle),
            Entry::Listener(_) => Err(StackError::IsListener),
            Entry::Free => Err(StackError::InvalidHandle),
        }
    }

    fn conn(&self, idx: u32) -> &Conn {
        match &self.slots[idx as usize].entry {
            Entry::Conn(c) => c,
            _ => panic!("slot {idx} is not a connection"),
        }
    }

    fn conn_mut(&mut self, idx: u32) -> &mut Conn {
        match &mut self.slots[idx as usize].entry {
            Entry::Conn(c) => c,
            _ => panic!("slot {idx} is not a connection"),
        }
    }

    /// Buffer storage for a new connection: from the pool when it has the sizes, else new.
    fn take_buffers(&mut self, tcp: &TcpConfig) -> TcbBuffers {
        let mut take = |size: usize| match self.buffer_pool.get_mut(&size).and_then(Vec::pop) {
            Some(b) => {
                self.buffer_pool_bytes -= size;
                b
            }
            None => vec![0u8; size].into_boxed_slice(),
        };
        let send = take(tcp.send_buffer);
        let recv = take(tcp.recv_buffer);
        let scoreboard = match self.scoreboard_pool.pop() {
            Some(sb) => {
                self.buffer_pool_bytes -= sb.capacity() * core::mem::size_of::<crate::tcp::recovery::Seg>();
                sb
            }
            None => VecDeque::new(),
        };
        TcbBuffers { send, recv, scoreboard }
    }

    /// Keep a closed connection's buffer storage for the next, up to `buffer_pool_bytes`.
    fn keep_buffers(&mut self, b: TcbBuffers) {
        // The scoreboard's entries (a few KiB) count against the same bound.
        let sb_bytes = b.scoreboard.capacity() * core::mem::size_of::<crate::tcp::recovery::Seg>();
        if sb_bytes > 0 && self.buffer_pool_bytes + sb_bytes <= self.cfg.buffer_pool_bytes {
            self.buffer_pool_bytes += sb_bytes;
            self.scoreboard_pool.push(b.scoreboard);
        }
        for buf in [b.send, b.recv] {
            let size = buf.len();
            if size > 0 && self.buffer_pool_bytes + size <= self.cfg.buffer_pool_bytes {
                self.buffer_pool_bytes += size;
                self.buffer_pool.entry(size).or_default().push(buf);
            }
        }
    }

    fn alloc_slot(&mut self) -> Result<u32, StackError> {
        self.free.pop().ok_or(StackError::TooManySockets)
    }

    fn free_slot(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if let Entry::Conn(c) = core::mem::replace(&mut s.entry, Entry::Free) {
            // Frames the connection still held go back to the device. (Send buffers the
            // application holds come back through `send_frame`/`drop_send_buf`.)
            let c = *c;
            self.keep_buffers(c.tcb.into_buffers());
            for chunk in c.rxq {
                if let RxChunk::InFrame(f) = chunk {
                    self.dev.recycle(f);
                    self.rx_frames_held -= 1;
                }
            }
            for ch in c.txq {
                self.dev.recycle(ch.frame);
                self.tx_frames_held -= 1;
            }
            self.tx_waiters.retain(|&w| w != idx);
        }
        let s = &mut self.slots[idx as usize];
        s.entry = Entry::Free;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(idx);
    }

    fn mark_dirty(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Queue a connection for `poll_event` even if it is queued already (a `Closed` that
    /// waited for unread data to be read).
    fn mark_ready_always(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }

    fn mark_ready(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if !c.ready && c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }
}
