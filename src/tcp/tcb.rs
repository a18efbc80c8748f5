//! The transmission control block: one TCP connection as a sans-IO state machine.
//!
//! The owner (the stack, the simulator, the `.pkt` interpreter) drives it with four calls,
//! all taking `now`:
//! * [`Tcb::on_segment`] for each segment that belongs to the connection;
//! * [`Tcb::poll_transmit`] until it returns `None`, emitting each segment it hands out;
//! * [`Tcb::poll_timeout`] for the next deadline, and [`Tcb::handle_timeout`] when it passes;
//! * the application calls: [`Tcb::send`], [`Tcb::recv`], [`Tcb::shutdown`], [`Tcb::close`],
//!   [`Tcb::abort`], and [`Tcb::poll_event`] for what happened.
//!
//! Section numbers refer to RFC 9293 unless another RFC is named.

use super::assembler::Assembler;
use super::buffer::RingBuffer;
use super::config::TcpConfig;
use super::congestion::{DupAckAction, NewReno, RecoveryAction};
use super::isn::IsnGenerator;
use super::rtt::RttEstimator;
use super::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr, Timestamp};
use core::fmt;
use core::net::SocketAddrV4;

/// The connection states of RFC 9293 §3.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// RFC 9293 §3.3.2: states after the handshake completed.
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent | State::SynReceived)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        })
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both sides closed (through TIME-WAIT or LAST-ACK).
    Normal,
    /// The peer reset an established connection.
    Reset,
    /// The peer answered our SYN with a reset (ECONNREFUSED).
    Refused,
    /// Retransmissions or keep-alive probes went unanswered (ETIMEDOUT).
    TimedOut,
    /// The application aborted it.
    Aborted,
}

/// What the application is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The handshake completed (either side).
    Connected,
    /// In-order data (or the end of the stream) can be read.
    Readable,
    /// Room opened in the send buffer.
    Writable,
    /// The peer sent FIN: no more data will arrive after what is buffered.
    PeerClosed,
    /// The connection is over; the TCB can be freed.
    Closed(CloseReason),
}

/// An ICMP error about a connection (RFC 1122 §4.2.3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpError {
    /// Destination unreachable: network, host, protocol or port (soft errors for TCP).
    Unreachable,
    /// Fragmentation needed with DF set: the path's MTU (RFC 1191).
    FragmentationNeeded {
        mtu: u16,
    },
    TimeExceeded,
}

/// Misuse of the API, or a call that cannot complete now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// Nothing to read, or no room to write, right now.
    WouldBlock,
    /// The call makes no sense in this state (send on a listener, connect twice…).
    InvalidState(State),
    /// Writing was shut down by this side.
    WriteClosed,
    /// The connection is over.
    Closed(CloseReason),
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::WouldBlock => f.write_str("operation would block"),
            TcpError::InvalidState(s) => write!(f, "invalid in state {s}"),
            TcpError::WriteClosed => f.write_str("writing was shut down"),
            TcpError::Closed(r) => write!(f, "connection closed ({r:?})"),
        }
    }
}

impl std::error::Error for TcpError {}

/// Counters of one connection (the stack sums them per core).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcbStats {
    pub segs_in: u64,
    pub segs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Segments sent again (RTO, fast retransmit, partial ACK).
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub rto_expirations: u64,
    pub dup_acks_in: u64,
    pub out_of_order_in: u64,
    /// Segments outside the window, or failing PAWS: answered with an ACK and dropped.
    pub unacceptable_in: u64,
    /// Out-of-order segments dropped because `max_ooo_ranges` was reached.
    pub ooo_limit_drops: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub window_probes: u64,
    pub keepalive_probes: u64,
    pub rsts_out: u64,
}

const EV_CONNECTED: u8 = 1;
const EV_READABLE: u8 = 2;
const EV_WRITABLE: u8 = 4;
const EV_PEER_CLOSED: u8 = 8;
const EV_CLOSED: u8 = 16;

/// The MSS assumed when the peer sends none (RFC 9293 §3.7.1, RFC 1122 §4.2.2.6).
const DEFAULT_MSS: u16 = 536;
/// Bytes the timestamps option takes in every segment once negotiated.
const TS_OPTION_LEN: usize = 12;
/// Most SACK blocks we send (RFC 2018 §4: 3 fit beside timestamps).
const MAX_SACK_SEND: usize = 3;

/// One TCP connection.
pub struct Tcb {
    cfg: TcpConfig,
    state: State,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// Opened from LISTEN (a reset in SYN-RECEIVED returns there, §3.10.7.4).
    passive: bool,
    isn: Option<IsnGenerator>,

    // Send sequence space (§3.3.1).
    iss: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    /// Highest sequence number sent plus one: after an RTO `snd_nxt` goes back to `snd_una`
    /// (go-back-N), and ACKs up to `snd_max` stay acceptable.
    snd_max: SeqNum,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    snd_wscale: u8,
    /// Payload bytes per segment (peer's MSS, less the timestamps option).
    snd_mss: usize,
    /// Our FIN's sequence number, once the application shut down writing.
    our_fin: Option<SeqNum>,

    // Receive sequence space.
    irs: SeqNum,
    rcv_nxt: SeqNum,
    rcv_wscale: u8,
    /// The window field of our SYN (never scaled).
    syn_window: u16,
    /// Right edge of the window we last advertised: never moved left (§3.8.6.2.2).
    rcv_adv: SeqNum,
    /// The peer's FIN, if it arrived ahead of data still missing.
    peer_fin: Option<SeqNum>,
    fin_received: bool,

    // Options (RFC 7323, RFC 2018).
    ws_agreed: bool,
    ts_enabled: bool,
    ts_recent: u32,
    ts_offset: u32,
    last_ack_sent: SeqNum,
    sack_enabled: bool,

    send_buf: RingBuffer,
    recv_buf: RingBuffer,
    assembler: Assembler,
    /// Zero-copy receive (the caller keeps in-order payload in the frames it arrived in):
    /// may the segment being processed be lent, and what of it was (offset into its payload,
    /// length).
    rx_lend: bool,
    rx_lent: Option<(usize, usize)>,
    /// In-order bytes the caller holds outside `recv_buf`; they count against the receive
    /// buffer, so the window shrinks while the application holds them.
    rx_external: usize,
    /// Zero-copy send: the data lives in the caller's frames; the TCB keeps only its length.
    tx_external: bool,
    tx_ext_len: usize,
    /// Bytes acknowledged (or dropped at close) since the caller last asked.
    tx_ext_released: usize,
    /// The payload the segment last returned by `poll_transmit` carries (offset from the
    /// first unacknowledged byte, length), in external mode.
    tx_ext_out: Option<(usize, usize)>,
    /// The application called close() (not just shutdown): FIN-WAIT-2 may time out.
    app_closed: bool,
    send_was_full: bool,

    // Timers.
    rtx_deadline: Option<Instant>,
    delack_deadline: Option<Instant>,
    persist_deadline: Option<Instant>,
    persist_backoff: u32,
    /// A zero-window probe byte is out.
    probing: bool,
    keepalive_deadline: Option<Instant>,
    keepalive_unanswered: u32,
    close_deadline: Option<Instant>,
    /// Consecutive retransmissions without progress.
    retries: u32,
    rtt: RttEstimator,
    /// Karn's algorithm: one segment timed at a time, never a retransmitted one.
    rtt_probe: Option<(SeqNum, Instant)>,
    cc: NewReno,
    last_send: Instant,

    // What the next poll_transmit owes the peer.
    ack_now: bool,
    /// Duplicate ACKs owed for out-of-order segments received since the last transmit.
    dup_acks_owed: u32,
    /// In-order bytes received since our last ACK.
    unacked_bytes: usize,
    send_syn: bool,
    fast_rtx: bool,
    probe_now: bool,
    /// The override timeout fired: send into a small window once (RFC 1122 §4.2.3.4).
    sws_override: bool,
    keepalive_now: bool,
    rst_now: bool,
    /// A reset answering a segment this TCB refuses (§3.10.7.1 rules).
    reply_rst: Option<TcpRepr<'static>>,
    challenge_window: (Instant, u32),

    events: u8,
    close_reason: Option<CloseReason>,
    last_icmp_error: Option<IcmpError>,
    stats: TcbStats,
}

/// A TCB's send and receive buffer storage, kept for the next connection (a stack's pool).
#[derive(Debug)]
pub struct TcbBuffers {
    pub send: Box<[u8]>,
    pub recv: Box<[u8]>,
}

impl Tcb {
    /// Give up the TCB, keeping its buffers' storage for another.
    pub fn into_buffers(self) -> TcbBuffers {
        TcbBuffers { send: self.send_buf.into_storage(), recv: self.recv_buf.into_storage() }
    }

    /// In TIME-WAIT with nothing left to read, the buffers serve no purpose (nothing more
    /// can be sent or received): hand their storage over, as Linux shrinks a socket to a
    /// small time-wait one. Otherwise `None`. Thousands of connections a second each spend
    /// 2·MSL here, which without this would hold their buffers all that time.
    pub fn release_buffers(&mut self) -> Option<TcbBuffers> {
        let idle = self.state == State::TimeWait && self.recv_buf.is_empty() && self.rx_external == 0;
        if !idle || self.recv_buf.capacity() == 0 {
            return None;
        }
        let send = core::mem::replace(&mut self.send_buf, RingBuffer::new(0));
        let recv = core::mem::replace(&mut self.recv_buf, RingBuffer::new(0));
        Some(TcbBuffers { send: send.into_storage(), recv: recv.into_storage() })
    }
}

impl fmt::Debug for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcb")
            .field("state", &self.state)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("snd_max", &self.snd_max)
            .field("snd_wnd", &self.snd_wnd)
            .field("cwnd", &self.cc.cwnd())
            .field("rcv_nxt", &self.rcv_nxt)
            .field("rtx_deadline", &self.rtx_deadline)
            .field("persist_deadline", &self.persist_deadline)
            .field("tx_external", &(self.tx_external, self.tx_ext_len))
            .finish_non_exhaustive()
    }
}

impl Tcb {
    fn new(
        cfg: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        state: State,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        let cc = NewReno::new(DEFAULT_MSS as usize, cfg.initial_window);
        let (send_buf, recv_buf) = match bufs {
            Some(b) if b.send.len() == cfg.send_buffer && b.recv.len() == cfg.recv_buffer => {
                (RingBuffer::from_storage(b.send), RingBuffer::from_storage(b.recv))
            }
            _ => (RingBuffer::new(cfg.send_buffer), RingBuffer::new(cfg.recv_buffer)),
        };
        Tcb {
            send_buf,
            recv_buf,
            assembler: Assembler::new(cfg.max_ooo_ranges),
            rx_lend: false,
            rx_lent: None,
            rx_external: 0,
            tx_external: false,
            tx_ext_len: 0,
            tx_ext_released: 0,
            tx_ext_out: None,
            rcv_wscale: 0,
            syn_window: 0,
            state,
            local,
            remote,
            passive: false,
            isn: None,
            iss: SeqNum(0),
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            snd_max: SeqNum(0),
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: SeqNum(0),
            snd_wscale: 0,
            snd_mss: DEFAULT_MSS as usize,
            our_fin: None,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            peer_fin: None,
            fin_received: false,
            ws_agreed: false,
            ts_enabled: false,
            ts_recent: 0,
            ts_offset: 0,
            last_ack_sent: SeqNum(0),
            sack_enabled: false,
            app_closed: false,
            send_was_full: false,
            rtx_deadline: None,
            delack_deadline: None,
            persist_deadline: None,
            persist_backoff: 0,
            probing: false,
            keepalive_deadline: None,
            keepalive_unanswered: 0,
            close_deadline: None,
            retries: 0,
            rtt,
            rtt_probe: None,
            cc,
            last_send: now,
            ack_now: false,
            dup_acks_owed: 0,
            unacked_bytes: 0,
            send_syn: false,
            fast_rtx: false,
            probe_now: false,
            sws_override: false,
            keepalive_now: false,
            rst_now: false,
            reply_rst: None,
            challenge_window: (now, 0),
            events: 0,
            close_reason: None,
            last_icmp_error: None,
            stats: TcbStats::default(),
            cfg,
        }
    }

    /// Active open (§3.10.1): SYN-SENT; the SYN goes out on the next `poll_transmit`.
    pub fn connect(cfg: TcpConfig, local: SocketAddrV4, remote: SocketAddrV4, iss: SeqNum, now: Instant) -> Tcb {
        Tcb::connect_in(cfg, local, remote, iss, now, None)
    }

    /// `connect` with buffers that were used before ([`Tcb::into_buffers`]), sized as `cfg`
    /// says (others are replaced): no allocation and no zeroing per connection.
    pub fn connect_in(
        cfg: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local, remote, State::SynSent, now, bufs);
        t.iss = iss;
        t.snd_una = iss;
        t.snd_nxt = iss;
        t.snd_max = iss;
        t.ts_offset = iss.0.rotate_left(16);
        t.rcv_wscale = t.cfg.window_shift();
        t.send_syn = true;
        t
    }

    /// Passive open (§3.10.1): LISTEN on `local`. ISNs for the connections it accepts come
    /// from `isn` (RFC 6528).
    pub fn listen(cfg: TcpConfig, local: SocketAddrV4, isn: IsnGenerator, now: Instant) -> Tcb {
        let unspecified = SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0);
        let mut t = Tcb::new(cfg, local, unspecified, State::Listen, now, None);
        t.passive = true;
        t.isn = Some(isn);
        t
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }
    pub fn stats(&self) -> &TcbStats {
        &self.stats
    }
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }
    /// The MSS we send with (payload bytes per full segment).
    pub fn send_mss(&self) -> usize {
        self.snd_mss
    }
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }
    /// In NewReno fast recovery (RFC 6582).
    pub fn in_recovery(&self) -> bool {
        self.cc.in_recovery()
    }
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    /// Bytes the application can read now.
    pub fn recv_available(&self) -> usize {
        self.recv_buf.len() + self.rx_external
    }
    /// Bytes queued and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.sendq_len()
    }
    /// Room in the send buffer.
    pub fn send_capacity(&self) -> usize {
        if self.tx_external {
            self.cfg.send_buffer.saturating_sub(self.tx_ext_len)
        } else {
            self.send_buf.free()
        }
    }
    fn sendq_len(&self) -> usize {
        if self.tx_external {
            self.tx_ext_len
        } else {
            self.send_buf.len()
        }
    }
    /// Drop `n` bytes from the front of the send queue (acknowledged, or abandoned).
    fn sendq_discard(&mut self, n: usize) {
        if self.tx_external {
            let n = n.min(self.tx_ext_len);
            self.tx_ext_len -= n;
            self.tx_ext_released += n;
        } else {
            self.send_buf.discard(n);
        }
    }

    // ------------------------------------------------------------------ zero-copy calls

    /// Bytes of in-order data held in the TCB's own buffer (data that arrived out of order,
    /// or that the caller chose not to keep in place), readable with [`Tcb::recv`].
    pub fn recv_buffered(&self) -> usize {
        self.recv_buf.len()
    }

    /// The first `len` buffered bytes from `offset` on, in place (two slices: the buffer is a
    /// ring).
    pub fn recv_slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        self.recv_buf.slices(offset, len)
    }

    /// Process a segment, letting its in-order payload stay where it is when `may_lend`:
    /// returns the part of `seg.payload` that was accepted that way (offset, length). The
    /// caller then holds those bytes (they count against the receive window until
    /// [`Tcb::release_rx`]) and delivers them to the application in sequence order, after
    /// whatever [`Tcb::recv_buffered`] had before this call. Data that arrives out of order
    /// is copied into the reassembly buffer as always.
    pub fn on_segment_lending(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        seg: &TcpRepr<'_>,
        may_lend: bool,
    ) -> Option<(usize, usize)> {
        self.rx_lend = may_lend;
        self.rx_lent = None;
        self.on_segment(now, from, seg);
        self.rx_lend = false;
        self.rx_lent.take()
    }

    /// Consume `n` bytes of [`Tcb::recv_buffered`] without copying them (after reading them
    /// in place with [`Tcb::recv_slices`]); returns how many.
    pub fn consume_buffered(&mut self, n: usize) -> usize {
        let n = n.min(self.recv_buf.len());
        self.recv_buf.discard(n);
        if n > 0 {
            self.maybe_window_update();
        }
        n
    }

    /// The peer's FIN arrived in order: once the data before it is read, the stream ends.
    pub fn fin_received(&self) -> bool {
        self.fin_received
    }

    /// Bytes of TCP header on a data segment now (options included, no SACK blocks): where a
    /// caller lays out payload so that headers fit exactly in front of it.
    pub fn data_header_len(&self) -> usize {
        crate::wire::tcp::HEADER_LEN + if self.ts_enabled { TS_OPTION_LEN } else { 0 }
    }

    /// Room in the send buffer opened for a reason the TCB cannot see (the caller's frame
    /// budget): report `Writable` if the application was told the buffer was full.
    pub fn notify_writable(&mut self) {
        if self.send_was_full {
            self.send_was_full = false;
            self.events |= EV_WRITABLE;
        }
    }

    /// The application consumed `n` bytes held by the caller: the window may open.
    pub fn release_rx(&mut self, n: usize) {
        debug_assert!(n <= self.rx_external);
        self.rx_external -= n.min(self.rx_external);
        self.maybe_window_update();
    }

    /// Keep send data outside the TCB from now on (zero-copy send: the caller keeps each
    /// segment's frame until it is acknowledged). Only before anything was queued.
    pub fn set_external_send(&mut self) -> Result<(), TcpError> {
        if self.tx_external {
            return Ok(());
        }
        if !self.send_buf.is_empty() {
            return Err(TcpError::WouldBlock);
        }
        self.tx_external = true;
        Ok(())
    }

    /// Whether send data is kept by the caller.
    pub fn external_send(&self) -> bool {
        self.tx_external
    }

    /// Queue `len` bytes the caller holds (zero-copy send), with the checks of [`Tcb::send`].
    /// The buffer bound was checked when the caller took its buffer (`send_capacity`).
    pub fn send_external(&mut self, len: usize) -> Result<(), TcpError> {
        debug_assert!(self.tx_external);
        self.check_send()?;
        self.tx_ext_len += len;
        Ok(())
    }

    /// Bytes the caller may now free from the front of its send queue: acknowledged by the
    /// peer, or abandoned when the connection closed.
    pub fn take_released_tx(&mut self) -> usize {
        core::mem::take(&mut self.tx_ext_released)
    }

    /// In external-send mode, the payload of the segment `poll_transmit` just returned:
    /// (offset from the first unacknowledged byte, length). The returned segment's own
    /// payload is empty; the caller supplies these bytes.
    pub fn take_tx_range(&mut self) -> Option<(usize, usize)> {
        self.tx_ext_out.take()
    }
    /// Turn Nagle's algorithm off (TCP_NODELAY) or on.
    pub fn set_nagle(&mut self, on: bool) {
        self.cfg.nagle = on;
    }
    /// Keep-alive on (with these settings) or off.
    pub fn set_keepalive(&mut self, ka: Option<super::config::Keepalive>, now: Instant) {
        self.cfg.keepalive = ka;
        self.keepalive_unanswered = 0;
        self.keepalive_deadline = match ka {
            Some(k) if self.state.is_synchronized() => Some(now + k.idle),
            _ => None,
        };
    }

    // ------------------------------------------------------------------ application calls

    /// Queue data for sending; returns how much was taken (RFC 9293 §3.10.2 SEND).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if self.tx_external {
            // Data lives in the caller's frames: it copies into those (the stack's `send`).
            return Err(TcpError::InvalidState(self.state));
        }
        self.check_send()?;
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.push(data);
        if n == 0 {
            self.send_was_full = true;
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// Can the application queue data now (RFC 9293 §3.10.2)?
    fn check_send(&self) -> Result<(), TcpError> {
        match self.state {
            State::Closed => return Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            State::Listen => return Err(TcpError::InvalidState(self.state)),
            // §3.10.2: data queued before the handshake completes goes out after it.
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            _ => return Err(TcpError::WriteClosed),
        }
        if self.our_fin.is_some() {
            return Err(TcpError::WriteClosed);
        }
        Ok(())
    }

    /// The application found the send buffer full: tell it when room opens (`Writable`).
    pub fn note_send_full(&mut self) {
        self.send_was_full = true;
    }

    /// Read in-order data (§3.10.3 RECEIVE). `Ok(0)` is the end of the stream (the peer's FIN
    /// and every byte before it have been read).
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, TcpError> {
        if self.state == State::Listen {
            return Err(TcpError::InvalidState(self.state));
        }
        if out.is_empty() {
            return Ok(0);
        }
        let n = self.recv_buf.pop(out);
        if n > 0 {
            self.maybe_window_update();
            return Ok(n);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Shut down writing (half-close): queue a FIN after the data (§3.10.4 CLOSE, the sending
    /// half). Reading goes on until the peer's FIN.
    pub fn shutdown(&mut self) -> Result<(), TcpError> {
        match self.state {
            State::Closed => Err(TcpError::Closed(self.close_reason.unwrap_or(CloseReason::Normal))),
            State::Listen | State::SynSent => {
                // §3.10.4: nothing was synchronized, so there is nothing to close gracefully.
                self.enter_closed(CloseReason::Normal);
                Ok(())
            }
            State::SynReceived | State::Established | State::CloseWait => {
                if self.our_fin.is_none() {
                    self.our_fin = Some(self.data_start() + self.sendq_len());
                }
                // §3.10.4: SYN-RECEIVED and ESTABLISHED go to FIN-WAIT-1, CLOSE-WAIT to
                // LAST-ACK. In SYN-RECEIVED the FIN waits until the handshake completes.
                self.state = match self.state {
                    State::CloseWait => State::LastAck,
                    _ => State::FinWait1,
                };
                Ok(())
            }
            // Already closing: nothing more to do.
            _ => Ok(()),
        }
    }

    /// Close: shut down writing, and let FIN-WAIT-2 time out (the application will not read
    /// any more). Data that arrives after close is answered with a reset (RFC 9293 §3.10.7.4,
    /// RFC 2525 §2.17: as Linux does for an orphaned socket).
    pub fn close(&mut self) -> Result<(), TcpError> {
        if self.state == State::Listen || self.state == State::SynSent {
            self.enter_closed(CloseReason::Normal);
            return Ok(());
        }
        self.app_closed = true;
        // RFC 2525 §2.17: closing with unread data resets the connection, so the peer learns
        // its data was not consumed.
        if self.recv_available() > 0 {
            self.abort();
            return Ok(());
        }
        self.shutdown()
    }

    /// Abort (§3.10.5): send a reset and forget the connection.
    pub fn abort(&mut self) {
        match self.state {
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.rst_now = true;
            }
            _ => {}
        }
        self.enter_closed(CloseReason::Aborted);
    }

    /// An ICMP error about this connection arrived (RFC 1122 §4.2.3.9). Unreachable and
    /// time-exceeded are soft errors: the connection goes on, and the error is kept for the
    /// application (`last_icmp_error`). "Fragmentation needed" lowers the MSS to what the path
    /// carries (RFC 1191 §6.3: MTU − 40), never below 88 bytes of segment (a 128-byte MTU).
    pub fn on_icmp_error(&mut self, err: IcmpError) {
        self.last_icmp_error = Some(err);
        if let IcmpError::FragmentationNeeded { mtu } = err {
            let options = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
            let mss = (mtu.max(128) as usize).saturating_sub(40 + options);
            if mss < self.snd_mss {
                self.snd_mss = mss;
                self.cc.set_mss(mss);
            }
        }
    }

    /// The last ICMP error reported for this connection (RFC 1122 §4.2.3.9 soft errors).
    pub fn last_icmp_error(&self) -> Option<IcmpError> {
        self.last_icmp_error
    }

    /// The next thing that happened, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        for (bit, ev) in [
            (EV_CONNECTED, Event::Connected),
            (EV_READABLE, Event::Readable),
            (EV_WRITABLE, Event::Writable),
            (EV_PEER_CLOSED, Event::PeerClosed),
        ] {
            if self.events & bit != 0 {
                self.events &= !bit;
                return Some(ev);
            }
        }
        if self.events & EV_CLOSED != 0 {
            self.events &= !EV_CLOSED;
            return Some(Event::Closed(self.close_reason.unwrap_or(CloseReason::Normal)));
        }
        None
    }

    // ------------------------------------------------------------------ helpers

    fn enter_closed(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.close_reason = Some(reason);
            self.events |= EV_CLOSED;
        }
        self.rtx_deadline = None;
        self.delack_deadline = None;
        self.persist_deadline = None;
        self.keepalive_deadline = None;
        self.close_deadline = None;
        // Nothing can be sent any more, nor out-of-order data completed: let both go. (In-order
        // data already received stays readable.)
        let queued = self.sendq_len();
        self.sendq_discard(queued);
        self.assembler.clear();
    }

    /// §3.10.7.4: a passive open whose SYN-RECEIVED is reset goes back to LISTEN. A TCB made
    /// by `listen` becomes a listener again; one made by `from_syn` for a listener elsewhere
    /// (the stack's listen queue) just ends, and that listener goes on.
    fn return_to_listen(&mut self, now: Instant) {
        let Some(isn) = self.isn.take() else {
            self.enter_closed(CloseReason::Reset);
            return;
        };
        let cfg = self.cfg.clone();
        let events = self.events;
        let stats = self.stats;
        *self = Tcb::listen(cfg, self.local, isn, now);
        self.events = events;
        self.stats = stats;
    }

    /// Sequence number of the first data byte: after the SYN.
    fn data_start(&self) -> SeqNum {
        if self.snd_una == self.iss && self.state != State::Listen {
            self.iss + 1u32
        } else {
            self.snd_una
        }
    }

    fn data_end(&self) -> SeqNum {
        self.data_start() + self.sendq_len()
    }

    fn fin_acked(&self) -> bool {
        matches!(self.our_fin, Some(f) if self.snd_una.gt(f))
    }

    fn flight_size(&self) -> usize {
        self.snd_max.since(self.snd_una) as usize
    }

    fn ts_now(&self, now: Instant) -> u32 {
        // RFC 7323 §5.4: a 1 ms clock, offset per connection (§7.1) so that the value reveals
        // nothing about uptime.
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Window we can advertise now: the free receive space (out-of-order bytes parked in it
    /// lie inside the window they arrived in), at most what the window field can carry, never
    /// moving the right edge left (§3.8.6.2.2), with the receiver's silly-window avoidance of
    /// RFC 1122 §4.2.3.3.
    fn rcv_window(&self) -> u32 {
        // A 16-bit field, scaled: more cannot be announced (RFC 7323 §2.3).
        let cap = 0xffff_u32 << self.rcv_wscale;
        let free = self.rx_room() as u32;
        if free >= cap {
            // The field, not the buffer, is the limit: the window is as large as it can be
            // and moving its edge with each byte creates no silly window.
            return cap;
        }
        let current = self.rcv_adv.since(self.rcv_nxt);
        let mss = self.cfg.mss as u32;
        let threshold = (self.cfg.recv_buffer as u32 / 2).min(mss);
        if free > current && free - current < threshold {
            // RFC 1122 §4.2.3.3 / RFC 9293 §3.8.6.2.2: do not advance the right edge by less
            // than min(RCV.BUFF/2, MSS).
            current
        } else {
            free.max(current)
        }
    }

    /// RFC 1122 §4.2.3.3: a window update is worth an ACK when it opens the window by at least
    /// min(RCV.BUFF/2, MSS) — in particular when it reopens a zero window.
    fn maybe_window_update(&mut self) {
        // After the peer's FIN no more data comes: a window update has no one to serve (and
        // a peer that has closed its socket answers it with a reset).
        if !self.state.is_synchronized() || self.fin_received {
            return;
        }
        let current = self.rcv_adv.since(self.rcv_nxt);
        let w = self.rcv_window();
        let threshold = (self.cfg.recv_buffer as u32 / 2).min(self.cfg.mss as u32);
        if w > current && w - current >= threshold {
            self.ack_now = true;
        }
    }

    /// Receive space left: the buffer, less what the caller holds in place (zero-copy).
    fn rx_room(&self) -> usize {
        self.recv_buf.free().saturating_sub(self.rx_external)
    }

    fn challenge_ack(&mut self, now: Instant) {
        // RFC 5961 §7: at most `challenge_ack_limit` challenge ACKs a second.
        let (start, _) = self.challenge_window;
        if now.saturating_duration_since(start) >= Duration::from_secs(1) {
            self.challenge_window = (now, 0);
        }
        if self.challenge_window.1 < self.cfg.challenge_ack_limit {
            self.challenge_window.1 += 1;
            self.ack_now = true;
            self.stats.challenge_acks += 1;
        } else {
            self.stats.challenge_acks_suppressed += 1;
        }
    }

    fn arm_rtx(&mut self, now: Instant) {
        self.rtx_deadline = Some(now + self.rtt.rto());
    }

    fn restart_keepalive(&mut self, now: Instant) {
        if let Some(k) = self.cfg.keepalive {
            if self.state.is_synchronized() {
                self.keepalive_deadline = Some(now + k.idle);
                self.keepalive_unanswered = 0;
            }
        }
    }

    /// Learn the options of the peer's SYN (or SYN-ACK) and what we agreed on.
    fn negotiate(&mut self, opts: &TcpOptions) {
        // RFC 7323 §2.2: scaling is on only when both SYNs carry the option; a shift above 14
        // is treated as 14 (§2.3).
        match opts.window_scale {
            Some(ws) if self.cfg.window_scaling => {
                self.ws_agreed = true;
                self.snd_wscale = ws.min(14);
                self.rcv_wscale = self.cfg.window_shift();
            }
            _ => {
                self.ws_agreed = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        // RFC 7323 §3.2: timestamps only when both SYNs carry them.
        self.ts_enabled = self.cfg.timestamps && opts.timestamp.is_some();
        if let Some(ts) = opts.timestamp {
            self.ts_recent = ts.tsval;
        }
        // RFC 2018 §2: SACK when both offered it.
        self.sack_enabled = self.cfg.sack && opts.sack_permitted;
        // RFC 9293 §3.7.1: send no more than the peer's MSS (536 without the option), nor more
        // than our own MTU allows. The MSS bounds data plus options (RFC 9293 §3.7.1, RFC 6691),
        // so the timestamps option every segment carries comes out of it, as in Linux.
        let peer_mss = opts.mss.unwrap_or(DEFAULT_MSS).max(1);
        let mss = peer_mss.min(self.cfg.mss) as usize;
        self.snd_mss = if self.ts_enabled { mss.saturating_sub(TS_OPTION_LEN).max(1) } else { mss };
        self.cc.set_mss(self.snd_mss);
    }

    /// Options of our SYN (everything we offer) or SYN-ACK (only what the peer offered too:
    /// RFC 7323 §1.3, RFC 2018 §2).
    fn syn_options(&self, now: Instant, is_syn_ack: bool) -> TcpOptions {
        let mut o = TcpOptions { mss: Some(self.cfg.mss), ..TcpOptions::default() };
        if self.cfg.window_scaling && (!is_syn_ack || self.ws_agreed) {
            o.window_scale = Some(self.cfg.window_shift());
        }
        if self.cfg.timestamps && (!is_syn_ack || self.ts_enabled) {
            o.timestamp =
                Some(Timestamp { tsval: self.ts_now(now), tsecr: if is_syn_ack { self.ts_recent } else { 0 } });
        }
        if self.cfg.sack && (!is_syn_ack || self.sack_enabled) {
            o.sack_permitted = true;
        }
        o
    }
}

// ---------------------------------------------------------------------- segment arrival

impl Tcb {
    /// Process one segment from `from` (RFC 9293 §3.10.7). Segments that the RFC says to
    /// drop are dropped here (and counted); replies are queued for `poll_transmit`.
    pub fn on_segment(&mut self, now: Instant, from: SocketAddrV4, seg: &TcpRepr<'_>) {
        self.stats.segs_in += 1;
        match self.state {
            State::Closed => {}
            State::Listen => self.on_segment_listen(now, from, seg),
            State::SynSent => self.on_segment_syn_sent(now, seg),
            _ => self.on_segment_synchronized(now, seg),
        }
    }

    /// §3.10.7.2: LISTEN.
    fn on_segment_listen(&mut self, now: Instant, from: SocketAddrV4, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return; // "An incoming RST segment could not be valid ... ignore it."
        }
        if f.contains(TcpFlags::ACK) {
            // "Any acknowledgment is bad if it arrives on a connection still in the LISTEN
            // state. An acceptable reset segment should be formed": <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst = reset_for(seg);
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        self.remote = from;
        let iss = match &self.isn {
            Some(g) => g.isn(now, self.local, from),
            None => SeqNum(0),
        };
        self.accept_syn(now, iss, seg);
    }

    /// §3.10.7.2, the SYN part: SYN-RECEIVED, SYN-ACK queued.
    fn accept_syn(&mut self, now: Instant, iss: SeqNum, seg: &TcpRepr<'_>) {
        self.irs = SeqNum(seg.seq);
        self.rcv_nxt = self.irs + 1u32;
        // Nothing advertised yet: the right edge starts at RCV.NXT.
        self.rcv_adv = self.rcv_nxt;
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        self.snd_max = iss;
        self.ts_offset = iss.0.rotate_left(16);
        self.negotiate(&seg.options);
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = iss;
        self.state = State::SynReceived;
        self.send_syn = true;
        self.last_send = now;
        // Data on a SYN is not accepted (no TFO): the peer sends it again after the handshake.
    }

    /// Create a TCB straight in SYN-RECEIVED for a SYN that reached a listener (the stack's
    /// listen queue does this instead of keeping one TCB per listener in LISTEN).
    pub fn from_syn(
        cfg: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
        now: Instant,
    ) -> Tcb {
        Tcb::from_syn_in(cfg, local, remote, iss, seg, now, None)
    }

    /// `from_syn` with buffers that were used before (see [`Tcb::connect_in`]).
    pub fn from_syn_in(
        cfg: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local, remote, State::Listen, now, bufs);
        t.passive = true;
        t.stats.segs_in = 1;
        t.accept_syn(now, iss, seg);
        t
    }

    /// §3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        let ack = SeqNum(seg.ack);
        // First: the ACK must acknowledge our SYN.
        let ack_ok = f.contains(TcpFlags::ACK) && self.iss.lt(ack) && ack.le(self.snd_max);
        if f.contains(TcpFlags::ACK) && !ack_ok {
            // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set,
            // if so drop the segment)": <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst = reset_for(seg);
            return;
        }
        // Second: RST. RFC 5961 §3.2: in SYN-SENT a reset is acceptable if it acknowledges the
        // SYN.
        if f.contains(TcpFlags::RST) {
            if ack_ok {
                self.enter_closed(CloseReason::Refused);
            }
            return;
        }
        // Fourth: SYN.
        if !f.contains(TcpFlags::SYN) {
            return; // "If neither of the SYN or RST bits is set, then drop the segment."
        }
        self.irs = SeqNum(seg.seq);
        self.rcv_nxt = self.irs + 1u32;
        // What our SYN advertised is the window until our next segment says otherwise.
        self.rcv_adv = self.rcv_nxt + self.syn_window as u32;
        self.negotiate(&seg.options);
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = ack;
        if ack_ok {
            // Our SYN is acknowledged: ESTABLISHED, and ACK the peer's SYN.
            self.snd_una = ack;
            self.on_rtt_sample(now, ack);
            self.retries = 0;
            self.rtx_deadline = None;
            self.send_syn = false;
            self.established(now);
            self.ack_now = true;
        } else {
            // Simultaneous open (§3.5, figure 8): SYN-RECEIVED, send SYN,ACK.
            self.state = State::SynReceived;
            self.send_syn = true;
        }
    }

    fn established(&mut self, now: Instant) {
        self.state = State::Established;
        self.events |= EV_CONNECTED;
        self.restart_keepalive(now);
        if self.our_fin.is_some() {
            // shutdown() was called in SYN-RECEIVED: the FIN goes out now (§3.10.4).
            self.state = State::FinWait1;
        }
    }

    /// §3.10.7.4: every state from SYN-RECEIVED on.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        let mut seq = SeqNum(seg.seq);
        let seg_len = seg.segment_len() as u32;
        // RCV.WND: the window we advertised (§3.10.7.4 tests against it, not our free space).
        let rcv_wnd = self.rcv_adv.since(self.rcv_nxt);

        // SYN-RECEIVED and the peer's SYN again (our SYN-ACK was lost): send the SYN-ACK again,
        // as Linux does, rather than the bare ACK the acceptability test below would give.
        if self.state == State::SynReceived
            && f.contains(TcpFlags::SYN)
            && !f.contains(TcpFlags::ACK)
            && seq == self.irs
        {
            self.send_syn = true;
            return;
        }

        // Simultaneous open (§3.5 figure 8, line 6): the peer's SYN,ACK repeats its SYN, which
        // the acceptability test would refuse (SEG.SEQ < RCV.NXT), but its ACK completes our
        // handshake. Take it as the ACK it carries, as Linux does (tcp_validate_incoming).
        if self.state == State::SynReceived
            && f.contains(TcpFlags::SYN | TcpFlags::ACK)
            && seq == self.irs
            && SeqNum(seg.ack) == self.snd_nxt
        {
            let ack_only = TcpRepr { seq: self.rcv_nxt.0, flags: f - TcpFlags::SYN, payload: &[], ..*seg };
            return self.on_segment_synchronized(now, &ack_only);
        }

        // RFC 7323 §5.3 (PAWS): a segment whose timestamp is older than TS.Recent is a
        // duplicate from an earlier incarnation of the sequence space.
        if self.ts_enabled && !f.contains(TcpFlags::RST) {
            if let Some(ts) = seg.options.timestamp {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.stats.unacceptable_in += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }

        // First: sequence number (§3.10.7.4, the four cases of the acceptability table).
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd)
                    || (seq + (seg_len - 1)).in_range(self.rcv_nxt, self.rcv_nxt + rcv_wnd)
            }
        };
        if !acceptable {
            if !f.contains(TcpFlags::RST) {
                // "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>", then drop.
                self.ack_now = true;
                self.stats.unacceptable_in += 1;
                // TIME-WAIT: a retransmitted FIN restarts the 2 MSL timeout (§3.10.7.4, eighth).
                if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                    self.close_deadline = Some(now + self.cfg.time_wait);
                }
            }
            return;
        }

        // Second: RST. RFC 5961 §3.2: reset only on an exact match of RCV.NXT; anywhere else in
        // the window, a challenge ACK.
        if f.contains(TcpFlags::RST) {
            if seq != self.rcv_nxt {
                self.challenge_ack(now);
                return;
            }
            match self.state {
                State::SynReceived if self.passive => self.return_to_listen(now),
                State::SynReceived => self.enter_closed(CloseReason::Refused),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    self.enter_closed(CloseReason::Reset)
                }
                _ => self.enter_closed(CloseReason::Normal),
            }
            return;
        }

        // Fourth: SYN. RFC 5961 §4.2 (and RFC 9293 §3.10.7.4): challenge ACK in any
        // synchronized state, whatever the sequence number.
        if f.contains(TcpFlags::SYN) {
            if self.state == State::SynReceived && self.passive {
                self.return_to_listen(now);
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // Fifth: ACK.
        if !f.contains(TcpFlags::ACK) {
            return; // "if the ACK bit is off, drop the segment and return"
        }
        let ack = SeqNum(seg.ack);
        if self.state == State::SynReceived {
            if self.snd_una.lt(ack) && ack.le(self.snd_max) {
                // The handshake completes.
                self.snd_una = ack;
                self.on_rtt_sample(now, ack);
                self.retries = 0;
                self.rtx_deadline = None;
                self.send_syn = false;
                self.snd_wnd = (seg.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.established(now);
            } else {
                // "If the segment acknowledgment is not acceptable, form a reset segment
                // <SEQ=SEG.ACK><CTL=RST> and send it."
                self.reply_rst = reset_for(seg);
                return;
            }
        }
        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        let oldest_ok = self.snd_una - self.max_snd_wnd;
        if ack.gt(self.snd_max) || ack.lt(oldest_ok) {
            self.ack_now = true;
            return;
        }
        if self.ts_enabled {
            // RFC 7323 §4.3: take TS.Recent from a segment that covers Last.ACK.sent.
            if let Some(ts) = seg.options.timestamp {
                if seq.le(self.last_ack_sent) {
                    self.ts_recent = ts.tsval;
                }
            }
        }
        self.process_ack(now, seq, ack, seg);
        if self.state == State::Closed {
            return;
        }

        // Any acceptable segment shows the peer is alive.
        self.restart_keepalive(now);

        // Trim what was already received (§3.10.7.4: "segments with higher beginning sequence
        // numbers may be held ... trimmed to the window").
        let mut payload = seg.payload;
        let mut fin = f.contains(TcpFlags::FIN);
        if seq.lt(self.rcv_nxt) {
            let dup = self.rcv_nxt.since(seq) as usize;
            if dup >= payload.len() {
                payload = &[];
                // A duplicate FIN (at seq + len) is still a FIN to re-acknowledge.
                if fin && (seq + seg.payload.len()).lt(self.rcv_nxt) {
                    fin = false;
                }
            } else {
                payload = &payload[dup..];
            }
            seq = self.rcv_nxt;
            self.ack_now = true; // a (partial) duplicate: tell the peer where we are
        }

        // Seventh: segment text.
        match self.state {
            // After close() nobody will read: new data is answered with a reset, so the peer
            // learns it was not consumed (RFC 9293 §3.10.4 leaves room; RFC 2525 §2.17; Linux
            // resets an orphaned socket that receives data).
            State::FinWait1 | State::FinWait2 if self.app_closed && !payload.is_empty() => {
                // The reset the segment itself calls for (§3.10.7.1: <SEQ=SEG.ACK><CTL=RST>),
                // as Linux answers it.
                self.reply_rst = reset_for(seg);
                self.enter_closed(CloseReason::Aborted);
                return;
            }
            State::Established | State::FinWait1 | State::FinWait2 if !payload.is_empty() => {
                let trimmed = seg.payload.len() - payload.len();
                fin &= self.receive_data(now, seq, payload, trimmed);
            }
            // §3.10.7.4 seventh: after the peer's FIN, text is ignored.
            _ => {}
        }

        // Eighth: FIN.
        if fin {
            let fin_seq = seq + payload.len();
            if fin_seq == self.rcv_nxt {
                self.on_fin(now);
            } else if fin_seq.gt(self.rcv_nxt) && self.state != State::TimeWait {
                // FIN ahead of missing data: processed when the gap fills.
                self.peer_fin = Some(fin_seq);
                self.ack_now = true;
            }
        }
    }

    /// §3.10.7.4, fifth, for ESTABLISHED and the closing states; plus RFC 5681/6582 on what
    /// the ACK says about loss.
    fn process_ack(&mut self, now: Instant, seq: SeqNum, ack: SeqNum, seg: &TcpRepr<'_>) {
        let window = (seg.window as u32) << self.snd_wscale;
        let old_wnd = self.snd_wnd;
        // "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK), set SND.WND".
        if self.snd_wl1.lt(seq) || (self.snd_wl1 == seq && self.snd_wl2.le(ack)) {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }

        if self.snd_una.lt(ack) {
            let acked = ack.since(self.snd_una) as usize;
            // Sequence space the SYN or our FIN take is not data in the buffer.
            let syn_part = (self.snd_una == self.iss) as usize;
            let fin_part = matches!(self.our_fin, Some(f) if f.in_range(self.snd_una, ack)) as usize;
            let data_acked = acked.saturating_sub(syn_part + fin_part).min(self.sendq_len());
            self.sendq_discard(data_acked);
            self.snd_una = ack;
            if self.snd_nxt.lt(ack) {
                self.snd_nxt = ack;
            }
            self.on_rtt_sample(now, ack);
            self.retries = 0;
            if self.cc.in_recovery() {
                let flight = self.flight_size();
                if let RecoveryAction::RetransmitFirstUnacked = self.cc.on_ack_in_recovery(ack, data_acked, flight) {
                    // RFC 6582 §3.2 step 5: a partial ACK retransmits the next unacked segment.
                    self.fast_rtx = true;
                }
            } else {
                self.cc.on_ack(data_acked, ack);
            }
            // RFC 6298 §5.2/5.3: all acknowledged → stop the timer; else restart it.
            if self.snd_una == self.snd_max {
                self.rtx_deadline = None;
            } else {
                self.arm_rtx(now);
            }
            if data_acked > 0 && self.send_was_full {
                self.send_was_full = false;
                self.events |= EV_WRITABLE;
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
            && window != 0
            && self.snd_una != self.snd_max
            && (window == old_wnd || (self.sack_enabled && !seg.options.sack.is_empty()))
        {
            // RFC 5681 §2 wants the window unchanged, so that window updates do not count;
            // but a receiver whose application reads while a hole is open (Linux) sends
            // duplicates with a growing window. One that carries SACK blocks reports data
            // beyond a hole, not a window update (RFC 6675 §2, "DupAck"), so it counts.
            // With a zero window the "duplicates" are answers to window probes, not signs of
            // loss: counting them would fast-retransmit into a closed window.
            // RFC 5681 §2: a duplicate ACK.
            self.stats.dup_acks_in += 1;
            let flight = self.flight_size();
            match self.cc.on_dup_ack(flight, self.snd_una, self.snd_max) {
                DupAckAction::FastRetransmit => {
                    self.fast_rtx = true;
                    self.stats.fast_retransmits += 1;
                    self.rtt_probe = None;
                }
                DupAckAction::SendNew | DupAckAction::None => {}
            }
        }

        // The peer's window opened: stop probing (RFC 9293 §3.8.6.1). A probe byte it did not
        // take is sent again with what follows it: rewind to SND.UNA (otherwise Nagle would
        // wait for an ACK of a byte the peer dropped).
        if self.snd_wnd > 0 {
            if self.probing && self.snd_una.lt(self.snd_max) {
                self.snd_nxt = self.snd_una;
            }
            self.probing = false;
            self.persist_deadline = None;
            self.persist_backoff = 0;
        }

        // Our FIN acknowledged?
        if self.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    if self.app_closed {
                        self.close_deadline = Some(now + self.cfg.fin_wait2_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => self.enter_closed(CloseReason::Normal),
                _ => {}
            }
        }
    }

    fn on_rtt_sample(&mut self, now: Instant, ack: SeqNum) {
        // Karn's algorithm (RFC 6298 §3): only a segment sent once is timed; a retransmission
        // clears the probe.
        if let Some((end, sent)) = self.rtt_probe {
            if end.le(ack) {
                self.rtt.sample(now.saturating_duration_since(sent));
                self.rtt_probe = None;
            }
        }
    }

    /// Put payload at `seq` (>= RCV.NXT, inside the window) into the receive buffer. Returns
    /// false if it was dropped at the out-of-order bound (then a FIN with it is dropped too).
    /// `trimmed`: bytes cut from the front of the segment's payload (already received).
    fn receive_data(&mut self, now: Instant, seq: SeqNum, payload: &[u8], trimmed: usize) -> bool {
        let offset = seq.since(self.rcv_nxt) as usize;
        // Trim to the room we have (the window we advertised never exceeds it).
        let room = self.rx_room().saturating_sub(offset);
        let payload = &payload[..payload.len().min(room)];
        if payload.is_empty() {
            self.ack_now = true;
            return false;
        }
        let had_holes = !self.assembler.is_empty();
        if self.rx_lend && offset == 0 && !had_holes {
            // In order with nothing parked after it: the caller keeps the bytes where they
            // are. RCV.NXT advances exactly as if they had been copied.
            self.rx_lent = Some((trimmed, payload.len()));
            self.rx_external += payload.len();
            self.rcv_nxt += payload.len();
            self.events |= EV_READABLE;
        } else {
            if self.assembler.add(offset as u32, payload.len() as u32).is_err() {
                // At the bound: drop, count, and let the ACK tell the peer what we have.
                self.stats.ooo_limit_drops += 1;
                self.ack_now = true;
                return false;
            }
            self.recv_buf.write_after_end(offset, payload);
            let ready = self.assembler.take_front() as usize;
            if ready > 0 {
                self.recv_buf.commit(ready);
                self.rcv_nxt += ready;
                self.events |= EV_READABLE;
            }
        }
        self.stats.bytes_in += payload.len() as u64;
        if offset > 0 {
            // RFC 5681 §4.2: an out-of-order segment is ACKed at once (a duplicate ACK). Each
            // one gets its own, even when a burst of them is processed before we transmit: the
            // sender counts duplicates to detect the loss (RFC 5681 §3.2).
            self.stats.out_of_order_in += 1;
            self.ack_now = true;
            self.dup_acks_owed = self.dup_acks_owed.saturating_add(1);
        } else if had_holes {
            // RFC 5681 §4.2: a segment that fills (part of) a gap is ACKed at once.
            self.ack_now = true;
        } else {
            // RFC 1122 §4.2.3.2 / RFC 5681 §4.2: ACK at least every second full-sized segment,
            // otherwise within the delayed-ACK time. Counted in bytes, as Linux does: more than
            // one MSS unacknowledged (two full segments, or one larger than the MSS, as a
            // coalesced one is) is ACKed at once.
            self.unacked_bytes += payload.len();
            if self.unacked_bytes > self.snd_mss {
                self.ack_now = true;
            } else if self.delack_deadline.is_none() {
                self.delack_deadline = Some(now + self.cfg.delayed_ack);
            }
        }
        // A FIN parked ahead of the gap is now in order?
        if let Some(fs) = self.peer_fin {
            if fs == self.rcv_nxt {
                self.peer_fin = None;
                self.on_fin(now);
            }
        }
        true
    }

    /// §3.10.7.4, eighth: the peer's FIN, in order.
    fn on_fin(&mut self, now: Instant) {
        if self.fin_received {
            // A retransmitted FIN: ACK it again; in TIME-WAIT restart the 2 MSL timeout.
            self.ack_now = true;
            if self.state == State::TimeWait {
                self.close_deadline = Some(now + self.cfg.time_wait);
            }
            return;
        }
        self.fin_received = true;
        self.rcv_nxt += 1u32;
        self.ack_now = true;
        self.events |= EV_PEER_CLOSED | EV_READABLE;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    // Simultaneous close (§3.6, figure 13).
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rtx_deadline = None;
        self.persist_deadline = None;
        self.keepalive_deadline = None;
        self.delack_deadline = None;
        self.close_deadline = Some(now + self.cfg.time_wait);
    }
}

/// §3.10.7.1: the reset to send for a segment that belongs to no connection (or that a
/// LISTEN or SYN-SENT TCB refuses). `None` for a segment that itself carries RST.
pub fn reset_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.flags.contains(TcpFlags::RST) {
        return None;
    }
    let base = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq: 0,
        ack: 0,
        flags: TcpFlags::RST,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    Some(if seg.flags.contains(TcpFlags::ACK) {
        // "If the incoming segment has the ACK bit set, the reset takes its sequence number
        // from the ACK field": <SEQ=SEG.ACK><CTL=RST>.
        TcpRepr { seq: seg.ack, ..base }
    } else {
        // "Otherwise the reset has sequence number zero and the ACK field is set to the sum of
        // the sequence number and segment length": <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
        TcpRepr { ack: seg.seq.wrapping_add(seg.segment_len() as u32), flags: TcpFlags::RST | TcpFlags::ACK, ..base }
    })
}

// ---------------------------------------------------------------------- output and timers

impl Tcb {
    /// The next segment to send, if any; its payload is copied into `payload_buf` (the
    /// caller's TX frame, after room for headers). Call until it returns `None`.
    pub fn poll_transmit<'b>(&mut self, now: Instant, payload_buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        self.tx_ext_out = None;
        if let Some(rst) = self.reply_rst.take() {
            self.stats.rsts_out += 1;
            self.stats.segs_out += 1;
            return Some(rst);
        }
        if self.rst_now {
            // §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>; with the ACK field, as Linux sends it.
            self.rst_now = false;
            self.stats.rsts_out += 1;
            self.stats.segs_out += 1;
            return Some(TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.snd_max.0,
                ack: self.rcv_nxt.0,
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &[],
            });
        }
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => {
                if self.send_syn {
                    Some(self.emit_syn(now))
                } else if self.ack_now && self.state == State::SynReceived {
                    Some(self.emit(now, self.snd_nxt, TcpFlags::ACK, &mut []))
                } else {
                    None
                }
            }
            _ => self.transmit_synchronized(now, payload_buf),
        }
    }

    fn emit_syn(&mut self, now: Instant) -> TcpRepr<'static> {
        self.send_syn = false;
        let is_syn_ack = self.state == State::SynReceived;
        if self.snd_max == self.iss {
            // The first transmission is timed (Karn: a retransmitted SYN is not).
            self.rtt_probe = Some((self.iss + 1u32, now));
        } else {
            self.rtt_probe = None;
            self.stats.retransmits += 1;
        }
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
        self.arm_rtx(now);
        self.stats.segs_out += 1;
        self.last_send = now;
        let options = self.syn_options(now, is_syn_ack);
        // RFC 7323 §2.2: the window in a SYN is not scaled.
        let window = self.recv_buf.free().min(0xffff) as u16;
        self.syn_window = window;
        let (flags, ack) = if is_syn_ack {
            self.rcv_adv = self.rcv_nxt + window as u32;
            self.after_ack_sent();
            (TcpFlags::SYN | TcpFlags::ACK, self.rcv_nxt.0)
        } else {
            (TcpFlags::SYN, 0)
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.iss.0,
            ack,
            flags,
            window,
            urgent: 0,
            options,
            payload: &[],
        }
    }

    fn transmit_synchronized<'b>(&mut self, now: Instant, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        // Retransmissions first: fast retransmit / partial ACK (RFC 5681 §3.2, RFC 6582).
        if self.fast_rtx {
            self.fast_rtx = false;
            if self.snd_una != self.snd_max {
                let seq = self.snd_una;
                self.stats.retransmits += 1;
                return self.emit_data_at(now, seq, buf);
            }
        }
        // Zero-window probe (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): one byte beyond the
        // window.
        if self.probe_now {
            self.probe_now = false;
            if self.snd_una.lt(self.data_end()) {
                self.stats.window_probes += 1;
                self.probing = true;
                let seq = self.snd_una;
                let n = self.copy_payload(seq, 1, buf);
                let end = seq + n;
                if self.snd_max.lt(end) {
                    self.snd_max = end;
                }
                self.snd_nxt = self.snd_nxt.max(end);
                let buf = self.payload_slice(buf, n);
                return Some(self.emit(now, seq, TcpFlags::ACK | TcpFlags::PSH, buf));
            }
        }
        // New (or go-back-N re-sent) data and FIN.
        if matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
        ) {
            if let Some(seg) = self.try_send_data(now, buf) {
                return Some(seg);
            }
        }
        // Keep-alive probe (RFC 1122 §4.2.3.6): SEG.SEQ = SND.NXT - 1, no data, as Linux does;
        // the peer answers with an ACK.
        if self.keepalive_now {
            self.keepalive_now = false;
            self.stats.keepalive_probes += 1;
            let seq = self.snd_una - 1u32;
            return Some(self.emit(now, seq, TcpFlags::ACK, &mut []));
        }
        if self.ack_now {
            let seq = self.ack_seq();
            return Some(self.emit(now, seq, TcpFlags::ACK, &mut []));
        }
        None
    }

    /// The sequence number of a segment without data. After an RTO SND.NXT is rewound to
    /// SND.UNA, but the peer may already have received up to SND.MAX: an ACK numbered below
    /// its RCV.NXT would be unacceptable to it (§3.10.7.4), and if both sides are rewound the
    /// ACKs that would unstick them are all dropped. So, as BSD does (tcp_output: "use snd_max
    /// instead of snd_nxt"), use SND.MAX, kept inside the peer's window as Linux does
    /// (tcp_acceptable_seq).
    fn ack_seq(&self) -> SeqNum {
        let wnd_end = self.snd_una + self.snd_wnd;
        if self.snd_max.le(wnd_end) {
            self.snd_max
        } else {
            wnd_end.max(self.snd_nxt)
        }
    }

    /// Send data (and FIN) from SND.NXT if the windows and Nagle/SWS allow.
    fn try_send_data<'b>(&mut self, now: Instant, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        let data_end = self.data_end();
        let unsent = data_end.since(self.snd_nxt) as usize;
        let fin_pending = matches!(self.our_fin, Some(f) if self.snd_nxt.le(f));
        if unsent == 0 && !fin_pending {
            return None;
        }
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial
        // window.
        if self.snd_una == self.snd_max {
            let idle = now.saturating_duration_since(self.last_send);
            self.cc.on_idle_restart(idle, self.rtt.rto());
        }
        let wnd = (self.snd_wnd as usize).min(self.cc.cwnd());
        let in_flight = self.snd_nxt.since(self.snd_una) as usize;
        let usable = wnd.saturating_sub(in_flight);
        let room = if self.tx_external { usize::MAX } else { buf.len() };
        let len = unsent.min(usable).min(self.snd_mss).min(room);
        let everything = len == unsent;
        // RFC 1122 §4.2.3.4: send when (1) a full segment can go, (2) all queued data can go
        // and either nothing is unacknowledged or Nagle is off, or (3) at least half the
        // largest window the peer offered can go.
        // What goes again after an RTO (below SND.MAX) was sent before: no Nagle or SWS test.
        let resend = self.snd_nxt.lt(self.snd_max);
        let send_data = len > 0
            && (resend
                || self.sws_override
                || len == self.snd_mss
                || (everything && (!self.cfg.nagle || self.snd_una == self.snd_max || fin_pending))
                || (len as u32) >= self.max_snd_wnd / 2);
        let with_fin = fin_pending && everything && (len > 0 || unsent == 0);
        if !(send_data || (with_fin && unsent == 0)) {
            // Nothing can go and nothing is in flight, so no ACK will come to change that: arm
            // the persist timer. With a zero window it probes (RFC 9293 §3.8.6.1); with a
            // window too small to use it is RFC 1122 §4.2.3.4's override timeout, after which
            // what the window allows is sent — otherwise a lost window update deadlocks the
            // connection (found by tests/stack_sim.rs; Linux arms its probe timer the same way).
            if unsent > 0 && self.snd_una == self.snd_max && self.persist_deadline.is_none() {
                self.persist_deadline = Some(now + self.persist_interval());
            }
            return None;
        }
        self.sws_override = false;
        let seq = self.snd_nxt;
        let n = self.copy_payload(seq, len, buf);
        let mut flags = TcpFlags::ACK;
        if n > 0 && seq + n == data_end {
            flags |= TcpFlags::PSH; // the last of what the application wrote
        }
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        let end = seq + n + (with_fin as u32);
        if seq.lt(self.snd_max) {
            // Go-back-N after an RTO re-sends what was sent before.
            self.stats.retransmits += 1;
        } else if self.rtt_probe.is_none() {
            self.rtt_probe = Some((end, now));
        }
        self.snd_nxt = end;
        if self.snd_max.lt(end) {
            self.snd_max = end;
        }
        if self.rtx_deadline.is_none() {
            self.arm_rtx(now);
        }
        self.stats.bytes_out += n as u64;
        let buf = self.payload_slice(buf, n);
        Some(self.emit(now, seq, flags, buf))
    }

    /// Re-send one segment at `seq` (a retransmission): data up to an MSS, and the FIN if it
    /// is the next thing.
    fn emit_data_at<'b>(&mut self, now: Instant, seq: SeqNum, buf: &'b mut [u8]) -> Option<TcpRepr<'b>> {
        let avail = self.data_end().since(seq) as usize;
        let n = self.copy_payload(seq, avail.min(self.snd_mss), buf);
        let mut flags = TcpFlags::ACK;
        let with_fin = matches!(self.our_fin, Some(f) if f == seq + n && f.lt(self.snd_max));
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        if n == 0 && !with_fin {
            return None;
        }
        if self.rtx_deadline.is_none() {
            self.arm_rtx(now);
        }
        let buf = self.payload_slice(buf, n);
        Some(self.emit(now, seq, flags, buf))
    }

    /// Put `len` bytes of send data from `seq` into `buf`; returns how many. In external
    /// mode nothing is copied: the range is recorded for the caller (`take_tx_range`).
    fn copy_payload(&mut self, seq: SeqNum, len: usize, buf: &mut [u8]) -> usize {
        let offset = seq.since(self.data_start()) as usize;
        if self.tx_external {
            let n = len.min(self.tx_ext_len.saturating_sub(offset));
            self.tx_ext_out = (n > 0).then_some((offset, n));
            return n;
        }
        let len = len.min(buf.len());
        self.send_buf.peek(offset, &mut buf[..len])
    }

    /// The payload of a segment: `n` bytes copied into `buf`, or none in external mode (the
    /// caller supplies them).
    fn payload_slice<'b>(&self, buf: &'b mut [u8], n: usize) -> &'b mut [u8] {
        if self.tx_external {
            &mut buf[..0]
        } else {
            &mut buf[..n]
        }
    }

    /// Build a segment that carries an ACK (every segment after the SYN does) and note that
    /// the ACK went out.
    fn emit<'b>(&mut self, now: Instant, seq: SeqNum, flags: TcpFlags, payload: &'b mut [u8]) -> TcpRepr<'b> {
        let mut options = TcpOptions::default();
        if self.ts_enabled {
            options.timestamp = Some(Timestamp { tsval: self.ts_now(now), tsecr: self.ts_recent });
        }
        if self.sack_enabled && !self.assembler.is_empty() {
            // RFC 2018 §4: report what we hold beyond the gap, the newest block first.
            let mut blocks = [(0u32, 0u32); MAX_SACK_SEND];
            let n = self.assembler.sack_blocks(&mut blocks);
            let mut sack = SackBlocks::default();
            for &(l, r) in &blocks[..n] {
                sack.push((self.rcv_nxt + l).0, (self.rcv_nxt + r).0);
            }
            options.sack = sack;
        }
        let window = self.rcv_window();
        // RFC 7323 §2.3: the field is the window shifted right (rounding down; §2.4 allows the
        // edge to seem to move left by less than one unit); RCV.ADV is then exactly what the
        // peer was told, and the acceptability test uses no more window than that.
        let unit = 1u32 << self.rcv_wscale;
        let field = (window >> self.rcv_wscale).min(0xffff);
        self.rcv_adv = self.rcv_nxt + field * unit;
        self.after_ack_sent();
        self.stats.segs_out += 1;
        self.last_send = now;
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: self.rcv_nxt.0,
            flags,
            window: field as u16,
            urgent: 0,
            options,
            payload,
        }
    }

    fn after_ack_sent(&mut self) {
        self.dup_acks_owed = self.dup_acks_owed.saturating_sub(1);
        // More duplicates owed keep the ACK flag up; each costs one segment in.
        self.ack_now = self.dup_acks_owed > 0;
        self.unacked_bytes = 0;
        self.delack_deadline = None;
        self.last_ack_sent = self.rcv_nxt;
    }

    fn persist_interval(&self) -> Duration {
        // RFC 1122 §4.2.2.17: probes back off exponentially; bounded by the maximum RTO.
        let base = self.rtt.rto();
        let shifted = base.saturating_mul(1u32 << self.persist_backoff.min(16));
        shifted.min(self.cfg.max_rto)
    }

    /// The earliest time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.rtx_deadline, self.delack_deadline, self.persist_deadline, self.keepalive_deadline, self.close_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Run the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.close_deadline, Some(d) if d <= now) {
            self.close_deadline = None;
            // TIME-WAIT after 2·MSL, or FIN-WAIT-2 after the orphan timeout: CLOSED.
            self.enter_closed(CloseReason::Normal);
            return;
        }
        if matches!(self.rtx_deadline, Some(d) if d <= now) {
            self.rtx_deadline = None;
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if matches!(self.delack_deadline, Some(d) if d <= now) {
            self.delack_deadline = None;
            self.ack_now = true;
        }
        if matches!(self.persist_deadline, Some(d) if d <= now) {
            self.persist_deadline = None;
            if self.snd_wnd == 0 && self.snd_una.lt(self.data_end()) {
                self.probe_now = true;
                self.persist_backoff += 1;
                self.persist_deadline = Some(now + self.persist_interval());
            } else if self.snd_una == self.snd_max && self.snd_una.lt(self.data_end()) {
                // RFC 1122 §4.2.3.4: the override timeout — send what the window allows.
                self.sws_override = true;
                self.persist_backoff = 0;
            } else {
                self.persist_backoff = 0;
            }
        }
        if matches!(self.keepalive_deadline, Some(d) if d <= now) {
            self.keepalive_deadline = None;
            if let Some(k) = self.cfg.keepalive {
                if self.keepalive_unanswered >= k.probes {
                    // RFC 1122 §4.2.3.6: the peer is dead; Linux resets the connection.
                    self.abort_with(CloseReason::TimedOut);
                    return;
                }
                self.keepalive_unanswered += 1;
                self.keepalive_now = true;
                self.keepalive_deadline = Some(now + k.interval);
            }
        }
    }

    fn abort_with(&mut self, reason: CloseReason) {
        if self.state.is_synchronized() || self.state == State::SynReceived {
            self.rst_now = true;
        }
        self.enter_closed(reason);
    }

    /// RFC 6298 §5.4–5.7 and RFC 5681 §3.1: the retransmission timer expired.
    fn on_rto(&mut self, now: Instant) {
        self.retries += 1;
        self.stats.rto_expirations += 1;
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.data_retries,
        };
        if self.retries > limit {
            // Give up: ETIMEDOUT. Linux sends no reset for an unanswered SYN or SYN-ACK; for a
            // dead synchronized connection it does.
            if matches!(self.state, State::SynSent | State::SynReceived) {
                self.enter_closed(CloseReason::TimedOut);
            } else {
                self.abort_with(CloseReason::TimedOut);
            }
            return;
        }
        // RFC 6298 §5.5: back off; §5.6: restart the timer; Karn: nothing in flight is timed.
        self.rtt.backoff();
        self.rtt_probe = None;
        match self.state {
            State::SynSent | State::SynReceived => {
                self.send_syn = true;
            }
            _ => {
                if self.snd_una == self.snd_max {
                    return; // nothing outstanding (a probe was answered meanwhile)
                }
                self.cc.on_rto(self.flight_size(), self.snd_max);
                // Go back N: resend from the first unacknowledged byte.
                self.snd_nxt = self.snd_una;
            }
        }
        self.arm_rtx(now);
    }
}
