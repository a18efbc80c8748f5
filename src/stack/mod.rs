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
//!
//! By concern: `config` (the configuration and its checks), `api` (the application's calls
//! and events), `input` (the loop and demultiplexing), `listen` (SYNs, listener queues,
//! segments of no connection), `output` (segments into device frames), `icmp`, `neigh` (ARP
//! on the stack; `arp` is the cache), `slots` (handles, the end of a connection, the buffer
//! pool), `ports`, `table`, `counters`.

mod api;
mod arp;
mod config;
mod counters;
mod icmp;
mod input;
mod listen;
mod ndp;
mod neigh;
mod output;
#[cfg(feature = "mem")]
pub mod pair;
mod ping;
mod pool;
mod ports;
mod slots;
pub mod table;

pub use api::{RecvChunks, SendBuf};
use config::check_tcp_config;
pub use config::{os_secret, StackConfig, SynCookieMode};
pub use counters::Counters;
pub use ping::EchoReply;
pub use ports::Rss;
pub use table::{ConnTable, FourTuple};

use crate::io::{Device, Frame};
use crate::tcp::{
    reset_for, CloseReason, Event, IcmpError, IsnGenerator, Keepalive, RxInfo, State, SynCookies, Tcb, TcbBuffers,
    TcpConfig, TcpError,
};
use crate::time::{Duration, Instant, TimerHandle, TimerWheel};
use crate::wire::{
    self, ArpOperation, ArpRepr, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, Icmpv6Repr, IpProtocol, Ipv4Repr,
    Ipv6Repr, L4Repr, L6Repr, MacAddr, NetRepr, TcpRepr,
};
use arp::ArpCache;
use core::fmt;
use core::marker::PhantomData;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::task::Waker;
use pool::BufferPool;
use ports::PortAllocator;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Distinct connection settings the stack keeps one shared copy of (a listener's own,
/// the stack's, each per address family, and a few an application passes to connect).
const SHARED_TCP_CONFIGS: usize = 8;
const ETH_LEN: usize = wire::ethernet::HEADER_LEN;
/// How long duplicate address detection listens after start: RFC 4861's RetransTimer (1 s)
/// for RFC 4862's one probe (DupAddrDetectTransmits = 1).
const DAD_TIME: Duration = Duration::from_secs(1);
/// Headroom before a TCP payload: Ethernet, the larger IP header (IPv6's) and the largest
/// TCP header.
const HEADROOM: usize = ETH_LEN + wire::ipv6::HEADER_LEN + wire::tcp::MAX_HEADER_LEN;
/// ECN codepoints of the IP header's two low TOS bits (RFC 3168 §5).
const ECN_MASK: u8 = 0b11;
const ECN_ECT0: u8 = 0b10;
const ECN_CE: u8 = 0b11;

/// A socket of this core: a connection or a listener. Not `Send`: it means something only to
/// the core that made it. A handle whose socket is gone is refused ([`StackError::InvalidHandle`]),
/// even if the slot was reused (generation check).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    idx: u32,
    gen: u32,
    _core_local: PhantomData<*const ()>,
}

impl Handle {
    /// The socket's slot: dense, below [`StackConfig::max_sockets`], unique among the live
    /// sockets of this stack, so per-connection state can live in a `Vec` indexed by it
    /// instead of a hash map. A slot is reused once its socket is gone (after
    /// [`StackEvent::Closed`]); the handle itself is then refused, the index is not.
    pub fn index(self) -> usize {
        self.idx as usize
    }
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
    /// A listener has a connection waiting in `accept` (raised when one joins the accept
    /// queue; accept until `None`).
    Accepted,
    /// New in-order data can be read. Edge-triggered: raised by each arrival that adds
    /// readable bytes (arrivals before the event is polled coalesce into one), not again for
    /// bytes already reported, so read until `WouldBlock`.
    Readable,
    /// Room opened in the send buffer after a send was refused for want of it (`WouldBlock`).
    /// Edge-triggered: once per refusal; a sender that never filled the buffer is not told.
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

/// The `std::io` kinds a socket API would give (Linux's errno for each, where it has one), so
/// that code written against `std::io` can use `?` on the stack's calls.
impl From<StackError> for std::io::Error {
    fn from(e: StackError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e {
            StackError::InvalidHandle => K::NotConnected, // EBADF/ENOTCONN: no such socket
            StackError::IsListener | StackError::NotListener => K::InvalidInput,
            StackError::AddrInUse => K::AddrInUse,
            StackError::ConnectToSelf | StackError::InvalidAddress => K::AddrNotAvailable,
            StackError::PortsExhausted => K::AddrNotAvailable, // EADDRNOTAVAIL, as Linux's connect
            StackError::TooManySockets => K::OutOfMemory,      // EMFILE/ENOBUFS
            StackError::SendQueueBusy => K::WouldBlock,
            StackError::BadSendBuf | StackError::InvalidOption => K::InvalidInput,
            StackError::Tcp(TcpError::WouldBlock) => K::WouldBlock,
            StackError::Tcp(TcpError::InvalidState(_)) => K::NotConnected,
            StackError::Tcp(TcpError::WriteClosed) => K::BrokenPipe, // EPIPE after shutdown
            StackError::Tcp(TcpError::Closed(r)) => match r {
                CloseReason::Reset => K::ConnectionReset,
                CloseReason::Refused => K::ConnectionRefused,
                CloseReason::TimedOut => K::TimedOut,
                CloseReason::Aborted => K::ConnectionAborted,
                CloseReason::Normal => K::NotConnected,
                CloseReason::Unreachable(IcmpError::PortUnreachable | IcmpError::ProtocolUnreachable) => {
                    K::ConnectionRefused
                }
                CloseReason::Unreachable(_) => K::HostUnreachable,
            },
        };
        std::io::Error::new(kind, e)
    }
}

#[derive(Debug)]
struct Conn {
    tcb: Tcb,
    timer: Option<TimerHandle>,
    deadline: Option<Instant>,
    dirty: bool,
    ready: bool,
    /// The listener that accepted the SYN, while the application has not taken it.
    listener: Option<u32>,
    /// Was ESTABLISHED at some point (for the failed-open counter).
    opened: bool,
    /// Counted among the connections in TIME-WAIT (`Stack::time_wait_conns`).
    time_waiting: bool,
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
    /// Ended normally with data unread: `Closed` is reported once it is read (or on close).
    close_pending: Option<CloseReason>,
    /// When this connection's progress last confirmed its neighbour (RFC 4861 §7.3.1).
    confirmed_at: Option<Instant>,
    /// Tasks waiting on this connection (`Stack::register_recv_waker`/`register_send_waker`):
    /// boxed, so connections nobody waits on in this way pay one word.
    wakers: Option<Box<[Option<Waker>; 2]>>,
    /// Where in a TX frame the next copied segment's payload goes: the length of the
    /// Ethernet, IP and TCP headers its last segment had (a connection's headers change only
    /// when its options do), so that the headers end at the frame's start and no device has
    /// to move the frame (`Stack::flush_conn`).
    tx_payload_at: u16,
    /// The next hop's link-layer address while the neighbour cache has it REACHABLE: (address,
    /// until, the cache's generation then) (`Stack::send_conn_frame`).
    next_hop_mac: Option<(MacAddr, Instant, u64)>,
}

impl Conn {
    /// The connection's key in the table: its TCB's addresses (not kept twice).
    fn key(&self) -> FourTuple {
        FourTuple { local: self.tcb.local(), remote: self.tcb.remote() }
    }

    /// The connection raised an event: wake whoever waits on it (once each).
    fn wake(&mut self) {
        if let Some(w) = self.wakers.as_mut() {
            for w in w.iter_mut().filter_map(Option::take) {
                w.wake();
            }
        }
    }
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

impl Conn {
    fn new(tcb: Tcb, key: FourTuple, listener: Option<u32>) -> Conn {
        debug_assert!(tcb.local() == key.local && tcb.remote() == key.remote);
        Conn {
            tcb,
            timer: None,
            deadline: None,
            dirty: false,
            ready: false,
            listener,
            opened: false,
            time_waiting: false,
            closed_reported: false,
            rxq: VecDeque::new(),
            rx_frames: 0,
            txq: VecDeque::new(),
            tx_acked: 0,
            tx_end: 0,
            close_pending: None,
            confirmed_at: None,
            wakers: None,
            tx_payload_at: HEADROOM as u16,
            next_hop_mac: None,
        }
    }

    /// Zero-copy send: keep the TCB's next new segment from straddling two of the
    /// application's full-sized frames. When the segment would start inside such a frame
    /// (after a zero-window probe's byte or a window-limited runt), it ends where that frame
    /// does, and the segments after it are whole frames again, sent in place. Frames smaller
    /// than a segment are combined as usual (cutting at their ends would only make runts).
    fn bound_next_new_segment(&mut self) {
        if !self.tcb.external_send() {
            return;
        }
        let mut limit = usize::MAX;
        if let Some(off) = self.tcb.next_new_offset() {
            let at = self.tx_acked + off as u64;
            let i = self.txq.partition_point(|ch| ch.start + u64::from(ch.frame.len) <= at);
            if let Some(ch) = self.txq.get(i) {
                if ch.start < at && ch.frame.len as usize >= self.tcb.send_mss() {
                    limit = (ch.start + u64::from(ch.frame.len) - at) as usize;
                }
            }
        }
        self.tcb.limit_next_new(limit);
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
    /// When it last answered a SYN with a cookie (ACKs are checked for cookies for two
    /// minutes after).
    cookies_sent_at: Option<Instant>,
    /// The task waiting for a connection to accept (`Stack::register_recv_waker`).
    waker: Option<Waker>,
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
    /// The IPv6 link-local address (from the MAC), when IPv6 is configured.
    link_local: Option<Ipv6Addr>,
    /// Duplicate address detection (RFC 4862 §5.4, optimistic as RFC 4429 §3: the addresses
    /// are used at once): until this time a probe or an advertisement for one of our IPv6
    /// addresses from another node makes it a duplicate, and it is given up.
    dad_until: Instant,
    /// The nonce of our probes (RFC 7527 §4), to tell them apart when the link loops them back.
    dad_nonce: [u8; 6],
    now: Instant,
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: ConnTable,
    listen_ports: HashMap<u16, u32, ahash::RandomState>,
    timers: TimerWheel<u32>,
    arp: ArpCache,
    ports: PortAllocator,
    isn: IsnGenerator,
    cookies: SynCookies,
    /// Token bucket of resets for segments of no connection: last refill, tokens left.
    rst_bucket: (Instant, u32),
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
    /// Buffer storage of closed connections, for new ones.
    pool: BufferPool,
    /// The connection settings in use, one copy of each: connections made with the same
    /// settings share it (`Stack::share_tcp_config`; at most `SHARED_TCP_CONFIGS`).
    tcp_configs: Vec<Arc<TcpConfig>>,
    /// Connections in TIME-WAIT (`StackConfig::max_time_wait`).
    time_wait_conns: usize,
    /// Identifiers of our recent echo requests, and the replies to them not yet taken.
    ping_idents: Vec<u16>,
    echo_replies: VecDeque<EchoReply>,
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
        let link_local = (!cfg.ipv6.is_empty()).then(|| link_local_from(mac));
        let dad_nonce = {
            let h = isn.hash(
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
                7,
            );
            let b = h.to_be_bytes();
            [b[0], b[1], b[2], b[3], b[4], b[5]]
        };
        let mut s = Stack {
            mac,
            link_local,
            dad_until: now + DAD_TIME,
            dad_nonce,
            now,
            slots: (0..n).map(|_| Slot { gen: 0, entry: Entry::Free }).collect(),
            free: (0..n as u32).rev().collect(),
            table: ConnTable::with_capacity(n),
            listen_ports: HashMap::with_capacity_and_hasher(n.min(1024), ahash::RandomState::new()),
            timers: TimerWheel::new(n, cfg.timer_resolution, now),
            arp: ArpCache::new(cfg.arp_cache_size, cfg.arp_ttl, cfg.arp_pending),
            ports: PortAllocator::new(cfg.ephemeral_ports, IsnGenerator::new(port_key)),
            isn,
            cookies: SynCookies::new(cfg.secret),
            rst_bucket: (now, cfg.rst_rate_limit.div_ceil(10)),
            tcp_configs: Vec::new(),
            time_wait_conns: 0,
            dirty: Vec::with_capacity(n),
            ready: VecDeque::with_capacity(n),
            rx: Vec::with_capacity(cfg.rx_burst),
            tx: Vec::with_capacity(cfg.rx_burst * 2),
            counters: Counters::default(),
            rx_frames_held: 0,
            tx_frames_held: 0,
            tx_waiters: Vec::new(),
            ping_idents: Vec::new(),
            echo_replies: VecDeque::new(),
            pool: BufferPool::default(),
            dev,
            cfg,
        };
        for ip in s.addresses().collect::<Vec<_>>() {
            s.send_arp_from(ip, ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, ip);
        }
        // RFC 4862 §5.4.2: a duplicate address detection probe for each IPv6 address, then
        // (RFC 4861 §7.2.6) an unsolicited advertisement of it, as the gratuitous ARP above
        // does for IPv4, so that a neighbour that cached an old mapping learns this one.
        for ip in s.ipv6_addresses().collect::<Vec<_>>() {
            s.send_dad_probe(ip);
            s.send_unsolicited_na(ip);
        }
        s
    }

    /// The stack's counters (as `netstat -s`): every frame in and out, every drop by reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    /// The configuration the stack was made with.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }
    /// The device (for its statistics, or its descriptor: the AF_XDP device is `AsFd`).
    pub fn device(&self) -> &D {
        &self.dev
    }
    /// The device, mutably (tests put hand-made frames on it).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }
    /// The first IPv4 address (the one [`StackConfig::new`] was given); `0.0.0.0` on an
    /// IPv6-only stack ([`StackConfig::new_ipv6`]).
    pub fn ip(&self) -> Ipv4Addr {
        self.cfg.ip
    }

    /// Every IPv4 address of the stack, the first address first (none on an IPv6-only stack).
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        core::iter::once(self.cfg.ip).filter(|ip| !ip.is_unspecified()).chain(self.cfg.extra_ips.iter().copied())
    }

    /// Every IPv6 address of the stack: the configured ones, then the link-local one.
    pub fn ipv6_addresses(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.cfg.ipv6.iter().copied().chain(self.link_local)
    }

    /// Is `ip` one of the stack's (unicast) addresses?
    #[inline]
    fn is_ours(&self, ip: impl Into<IpAddr>) -> bool {
        match ip.into() {
            // An IPv6-only stack's IPv4 address is 0.0.0.0, which is nobody's.
            IpAddr::V4(ip) => (ip == self.cfg.ip && !ip.is_unspecified()) || self.cfg.extra_ips.contains(&ip),
            IpAddr::V6(ip) => self.link_local == Some(ip) || self.cfg.ipv6.contains(&ip),
        }
    }
    /// Whether a `poll` now would have something to do besides receiving: application calls
    /// left connections with output pending, or frames wait for a TX ring with room.
    pub fn has_pending_output(&self) -> bool {
        !self.dirty.is_empty() || !self.tx.is_empty()
    }

    /// Neighbours in the ARP cache (at most `arp_cache_size`).
    pub fn neighbour_count(&self) -> usize {
        self.arp.len()
    }

    /// Connections in the table (TIME-WAIT included).
    pub fn connection_count(&self) -> usize {
        self.table.len()
    }
}

/// The link-local address of an interface with `mac` (RFC 4291 §2.5.1 and appendix A): fe80::/64
/// and the modified EUI-64 identifier, the MAC with ff:fe in its middle and the
/// universal/local bit inverted.
pub fn link_local_from(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}
