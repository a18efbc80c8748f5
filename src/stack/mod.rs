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
use crate::tcp::{reset_for, CloseReason, Event, IcmpError, IsnGenerator, Keepalive, State, Tcb, TcpConfig, TcpError};
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
}

impl StackConfig {
    pub fn new(ip: Ipv4Addr, prefix_len: u8, secret: [u8; 16]) -> StackConfig {
        StackConfig {
            ip,
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
        }
    }
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
    /// The connection is over and its handle is now invalid.
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
            dev,
            cfg,
        };
        s.send_arp(ArpOperation::Request, MacAddr::BROADCAST, MacAddr::UNSPECIFIED, s.cfg.ip);
        s
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
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
        });
        self.listen_ports.insert(port, idx);
        Ok(self.handle(idx))
    }

    /// Open a connection to `remote` (the SYN goes out on the next `poll`).
    pub fn connect(&mut self, remote: SocketAddrV4) -> Result<Handle, StackError> {
        let ip = *remote.ip();
        if ip == self.cfg.ip {
            return Err(StackError::ConnectToSelf);
        }
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || remote.port() == 0 {
            return Err(StackError::InvalidAddress);
        }
        if self.free.is_empty() {
            return Err(StackError::TooManySockets);
        }
        let local_ip = self.cfg.ip;
        let table = &self.table;
        let listen_ports = &self.listen_ports;
        let port = self
            .ports
            .allocate(SocketAddrV4::new(local_ip, 0), remote, self.cfg.rss.as_ref(), |p| {
                listen_ports.contains_key(&p) || table.contains(&FourTuple { local_port: p, remote })
            })
            .ok_or(StackError::PortsExhausted)?;
        let local = SocketAddrV4::new(local_ip, port);
        let iss = self.isn.isn(self.now, local, remote);
        let tcb = Tcb::connect(self.cfg.tcp.clone(), local, remote, iss, self.now);
        let idx = self.alloc_slot()?;
        let key = FourTuple { local_port: port, remote };
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

    pub fn send(&mut self, h: Handle, data: &[u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let r = self.conn_mut(idx).tcb.send(data);
        self.mark_dirty(idx);
        Ok(r?)
    }

    pub fn recv(&mut self, h: Handle, out: &mut [u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let r = self.conn_mut(idx).tcb.recv(out);
        self.mark_dirty(idx); // reading may open the window
        Ok(r?)
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
        let r = self.conn_mut(idx).tcb.close();
        self.mark_dirty(idx);
        Ok(r?)
    }

    /// Reset a connection at once.
    pub fn abort(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
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
                    if let Some(ev) = c.tcb.poll_event() {
                        let ev = match ev {
                            Event::Connected => StackEvent::Connected,
                            Event::Readable => StackEvent::Readable,
                            Event::Writable => StackEvent::Writable,
                            Event::PeerClosed => StackEvent::PeerClosed,
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
                self.process_frame(&f);
                self.dev.recycle(f);
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

    fn process_frame(&mut self, f: &Frame) {
        let rx_csum = self.dev.rx_checksum();
        // `bytes` borrows the device; the fields used while it lives are disjoint from it.
        let bytes = self.dev.frame(f);
        let parsed = match FrameRepr::parse(bytes, rx_csum) {
            Ok(p) => p,
            Err(e) => {
                self.counters.count_wire_error(e);
                return;
            }
        };
        if parsed.eth.dst != self.mac && !parsed.eth.dst.is_broadcast() {
            self.counters.drop_not_for_us += 1;
            return;
        }
        let eth_src = parsed.eth.src;
        match parsed.net {
            NetRepr::Arp(a) => self.process_arp(a, eth_src),
            NetRepr::Ipv4 { ip, .. } if ip.dst != self.cfg.ip => self.counters.drop_not_for_us += 1,
            NetRepr::Ipv4 { ip, l4: L4Repr::Tcp(seg) } => {
                self.counters.tcp_segs_in += 1;
                if seg.flags.contains(wire::TcpFlags::RST) {
                    self.counters.tcp_rsts_in += 1;
                }
                let remote = SocketAddrV4::new(ip.src, seg.src_port);
                let key = FourTuple { local_port: seg.dst_port, remote };
                // The fast path: the payload goes from the frame straight into the connection.
                if let Some(idx) = self.table.get(&key) {
                    if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
                        c.tcb.on_segment(self.now, remote, &seg);
                        if !c.dirty {
                            c.dirty = true;
                            self.dirty.push(idx);
                        }
                    }
                    return;
                }
                // No connection: a SYN for a listener, or a reset. Neither needs the payload
                // (data on a SYN is not accepted), so the frame borrow ends here.
                let rst = reset_for(&seg);
                let header = TcpRepr { payload: &[], ..seg };
                self.process_tcp_no_conn(remote, header, rst);
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
                    Icmpv4Repr::EchoReply { .. } => return,
                };
                self.process_icmp(ip, icmp, eth_src);
            }
            NetRepr::Ipv4 { l4: L4Repr::Udp(_), .. } => self.counters.drop_udp += 1,
        }
    }

    fn process_arp(&mut self, a: ArpRepr, _eth_src: MacAddr) {
        let now = self.now;
        match a.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_in += 1;
                if a.target_ip == self.cfg.ip {
                    // RFC 826: the requester is about to talk to us; learn it, then reply.
                    self.arp.insert(a.source_ip, a.source_mac, now);
                    self.send_arp(ArpOperation::Reply, a.source_mac, a.source_mac, a.source_ip);
                    self.flush_arp_pending(a.source_ip, a.source_mac);
                } else {
                    // RFC 826 "merge": refresh what we already know, learn nothing new.
                    self.arp.refresh(a.source_ip, a.source_mac, now);
                }
            }
            ArpOperation::Reply => {
                self.counters.arp_replies_in += 1;
                if a.target_ip == self.cfg.ip {
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
                    src: self.cfg.ip,
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
                if header.src == self.cfg.ip && header.protocol == IpProtocol::Tcp && data.len() >= 4 {
                    let local_port = u16::from_be_bytes([data[0], data[1]]);
                    let remote = SocketAddrV4::new(header.dst, u16::from_be_bytes([data[2], data[3]]));
                    if let Some(idx) = self.table.get(&FourTuple { local_port, remote }) {
                        self.counters.icmp_errors_in += 1;
                        self.conn_mut(idx).tcb.on_icmp_error(err);
                        self.mark_dirty(idx);
                    }
                }
            }
            Icmpv4Repr::EchoReply { .. } => {}
        }
    }

    fn process_tcp_no_conn(&mut self, remote: SocketAddrV4, seg: TcpRepr<'static>, rst: Option<TcpRepr<'static>>) {
        if let Some(&lidx) = self.listen_ports.get(&seg.dst_port) {
            let f = seg.flags;
            if f.contains(wire::TcpFlags::SYN) && !f.intersects(wire::TcpFlags::ACK | wire::TcpFlags::RST) {
                self.accept_syn(lidx, remote, &seg);
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
            self.send_segment(remote, &rst);
            self.counters.tcp_rsts_out += 1;
        }
    }

    fn accept_syn(&mut self, lidx: u32, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
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
        let local = SocketAddrV4::new(self.cfg.ip, seg.dst_port);
        let iss = self.isn.isn(self.now, local, remote);
        let tcb = Tcb::from_syn(self.cfg.tcp.clone(), local, remote, iss, seg, self.now);
        let key = FourTuple { local_port: seg.dst_port, remote };
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
            let payload_len = seg.payload.len();
            let header = TcpRepr { payload: &[], ..seg };
            if header.flags.contains(wire::TcpFlags::RST) {
                self.counters.tcp_rsts_out += 1;
            }
            self.counters.tcp_segs_out += 1;
            // Headers go right before the payload the TCB wrote at HEADROOM.
            let tcp_len = header.header_len();
            let start = HEADROOM - tcp_len - IP_LEN - ETH_LEN;
            let local_ip = self.cfg.ip;
            let buf = self.dev.buffer_mut(&frame);
            let seg_bytes = &mut buf[HEADROOM - tcp_len..HEADROOM + payload_len];
            if header.emit_header_over(seg_bytes, local_ip, *remote.ip()).is_err() {
                self.dev.recycle(frame);
                continue;
            }
            let ipr = Ipv4Repr {
                src: local_ip,
                dst: *remote.ip(),
                protocol: IpProtocol::Tcp,
                payload_len: tcp_len + payload_len,
                ttl: 64,
                ident: 0,
                dont_frag: true,
                dscp_ecn: 0,
            };
            let _ = ipr.emit(&mut buf[start + ETH_LEN..]);
            frame.offset = start as u32;
            frame.len = (ETH_LEN + IP_LEN + tcp_len + payload_len) as u32;
            self.send_ipv4_frame(*remote.ip(), frame);
        }
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
        let reason = self.conn(idx).tcb.stats();
        self.counters.tcp_retransmits += reason.retransmits;
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
    fn send_segment(&mut self, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return;
        };
        let ipr = Ipv4Repr {
            src: self.cfg.ip,
            dst: *remote.ip(),
            protocol: IpProtocol::Tcp,
            payload_len: seg.buffer_len(),
            ttl: 64,
            ident: 0,
            dont_frag: true,
            dscp_ecn: 0,
        };
        let local_ip = self.cfg.ip;
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
        let frame = FrameRepr {
            eth: EthernetRepr { src: self.mac, dst: eth_dst, ethertype: EtherType::Arp },
            net: NetRepr::Arp(ArpRepr {
                operation: op,
                source_mac: self.mac,
                source_ip: self.cfg.ip,
                target_mac,
                target_ip,
            }),
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

    fn alloc_slot(&mut self) -> Result<u32, StackError> {
        self.free.pop().ok_or(StackError::TooManySockets)
    }

    fn free_slot(&mut self, idx: u32) {
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

    fn mark_ready(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if !c.ready && c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }
}
