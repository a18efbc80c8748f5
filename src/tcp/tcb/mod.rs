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
use super::cc::{CongestionControl, Controller};
use super::config::TcpConfig;
use super::config::{EcnMode, WindowUpdate};
use super::isn::IsnGenerator;
use super::recovery::rate::RateState;
use super::recovery::{Prr, Rack, Scoreboard, Seg, Tlp};
use super::rtt::RttEstimator;
use super::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr, Timestamp};
use core::fmt;
use core::net::SocketAddr;
use std::sync::Arc;

mod app;
mod buffers;
mod info;
mod input;
mod output;
mod recovery;
mod timers;
mod types;

pub use app::TimeWaitReuse;
pub use buffers::TcbBuffers;
pub use info::{CaState, TcpInfo, INFINITE_SSTHRESH};
pub use input::{reset_for, RxInfo};
use types::Counters;
pub use types::{CloseReason, Event, IcmpError, State, TcbStats, TcpError};

const EV_CONNECTED: u8 = 1;
const EV_READABLE: u8 = 2;
const EV_WRITABLE: u8 = 4;
const EV_PEER_CLOSED: u8 = 8;
const EV_CLOSED: u8 = 16;

/// The MSS assumed when the peer sends none (RFC 9293 §3.7.1, RFC 1122 §4.2.2.6).
pub(crate) const DEFAULT_MSS: u16 = 536;
/// Bytes the timestamps option takes in every segment once negotiated.
const TS_OPTION_LEN: usize = 12;
/// Most SACK blocks we send: 4 fit in the 40 bytes of options (RFC 2018 §3), 3 beside
/// timestamps (RFC 2018 §4, as Linux's tcp_established_options).
const MAX_SACK_SEND: usize = 4;
const MAX_SACK_SEND_WITH_TS: usize = 3;

/// Where the sender stands in loss recovery (Linux's `tcp_ca_state`, less Disorder, which the
/// scoreboard's counters tell without a state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing known lost.
    Open,
    /// A window reduction without loss recovery: an ECN echo (RFC 3168 §6.1.2), or a loss that
    /// a tail loss probe repaired (RFC 8985 §7.4.2). PRR until SND.UNA passes `high`.
    Cwr { high: SeqNum },
    /// Fast recovery (RFC 6675 §5, RFC 6582 without SACK): PRR until SND.UNA passes the
    /// recovery point `high`. `rescued`: RFC 6675's one rescue retransmission went out.
    Recovery { high: SeqNum, rescued: bool },
    /// After a retransmission timeout (RFC 5681 §3.1, Linux's Loss state): slow start from
    /// one segment, resending what is marked lost, until SND.UNA passes `high`.
    Loss { high: SeqNum },
}

/// A reduction that may turn out spurious, and how to undo it (Linux's undo_marker,
/// undo_retrans and prior_cwnd; RFC 2883 §5, RFC 3522, RFC 5682 §4).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Undo {
    /// SND.UNA when the episode began: DSACKs below it are about older episodes.
    marker: SeqNum,
    /// Retransmissions of the episode not yet shown unnecessary by a DSACK.
    retrans: u32,
    /// The controller before the reduction.
    prior: Controller,
    /// TSval of the episode's first retransmission (RFC 3522: an ACK echoing an older one was
    /// sent for an original transmission).
    first_rtx_ts: Option<u32>,
}

/// ECN state of a connection (RFC 3168 §6.1).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EcnState {
    /// Negotiated in the handshake.
    on: bool,
    /// Receiver: a CE mark arrived and no CWR since; every ACK carries ECE (§6.1.3).
    echo: bool,
    /// Sender: the next new data segment carries CWR (§6.1.2).
    send_cwr: bool,
    /// The segment `poll_transmit` last returned goes out ECN-capable (ECT(0)).
    last_ect: bool,
}

/// RFC 7661-style record of whether cwnd was the limit (Linux's is_cwnd_limited,
/// max_packets_out and cwnd_usage_seq): only a window that was used may grow.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CwndUse {
    limited: bool,
    max_flight: usize,
    until: SeqNum,
}

/// One TCP connection.
pub struct Tcb {
    /// Shared by the connections made with the same settings (the Stack hands out one per
    /// listener and address family): a connection copies it only when one of its own
    /// settings changes (`Arc::make_mut`).
    cfg: Arc<TcpConfig>,
    state: State,
    local: SocketAddr,
    remote: SocketAddr,
    /// Opened from LISTEN (a reset in SYN-RECEIVED returns there, §3.10.7.4).
    passive: bool,
    isn: Option<IsnGenerator>,

    // Send sequence space (§3.3.1).
    iss: SeqNum,
    snd_una: SeqNum,
    /// The next new sequence number: one past the highest ever sent. It never moves back;
    /// retransmissions come from the scoreboard.
    snd_nxt: SeqNum,
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
    /// Text of the peer's SYN in a simultaneous open, written past the receive buffer's end
    /// and taken in once the handshake completes (RFC 9293 §3.10.7.3); and whether a FIN
    /// came with it.
    syn_text: u32,
    syn_fin: bool,
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
    /// Made without buffers (a passive open's handshake); they come with `attach_buffers`.
    buffers_deferred: bool,
    assembler: Assembler,
    /// Zero-copy receive (the caller keeps in-order payload in the frames it arrived in):
    /// may the segment being processed be lent, and what of it was (offset into its payload,
    /// length).
    rx_lend: bool,
    rx_lent: Option<(usize, usize)>,
    /// The segment being processed arrived with Congestion Experienced (RFC 3168).
    rx_ce: bool,
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
    /// External mode: the next new segment ends here at the latest (bytes from SND.NXT), where
    /// one of the caller's frames ends (`Tcb::limit_next_new`).
    tx_ext_new_limit: usize,
    /// The application called close() (not just shutdown): FIN-WAIT-2 may time out.
    app_closed: bool,
    send_was_full: bool,
    /// The send buffer's size now: `cfg.send_buffer`, grown towards `cfg.send_buffer_max`
    /// (the zero-copy send path has no storage of its own, only this bound).
    send_limit: usize,

    // Timers.
    rtx_deadline: Option<Instant>,
    delack_deadline: Option<Instant>,
    /// Quick-ACK mode (`TcpConfig::quick_ack`, Linux's `icsk_ack.quick`): data segments
    /// still to be ACKed at once; when the last data arrived; and whether the connection is
    /// interactive (Linux's pingpong mode: our data followed the peer's within the
    /// delayed-ACK time), which turns quick ACKs off until a delayed ACK has to fire.
    quick_acks: u8,
    /// Linux's `tp->reordering` and `reord_seen` (`Tcb::note_reordering`), for `tcp_info`.
    reordering: u32,
    reord_seen: u32,
    last_data_in: Option<Instant>,
    pingpong: bool,
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
    /// The SYN's send time, for the handshake's RTT sample (Karn: none after a retransmitted
    /// SYN). Data segments are timed from the scoreboard.
    syn_sent_at: Option<Instant>,
    cc: Controller,
    last_send: Instant,
    /// When an ACK last arrived: a peer that answers is alive, even behind a zero window.
    last_ack_rcvd: Instant,

    // Loss recovery (recovery.rs).
    sb: Scoreboard,
    rack: Rack,
    tlp: Tlp,
    phase: Phase,
    prr: Prr,
    /// Boxed: the prior controller is 200 bytes, and only a reduction in progress has one.
    undo: Option<Box<Undo>>,
    /// RFC 8985 §7.2's probe timeout, and §6.2's reordering timeout (beside `rtx_deadline`,
    /// the RTO; each is at or before it when armed).
    probe_deadline: Option<Instant>,
    reorder_deadline: Option<Instant>,
    /// Delivery-rate estimation (`recovery::rate`), for model-based congestion control.
    rate: RateState,
    /// Bytes delivered by the ACKs processed since the owner last asked for output: a stack
    /// processes a burst of frames before it transmits (`Tcb::enter_recovery`).
    batch_delivered: usize,
    /// New-data segments sent since `poll_transmit` last returned `None` (this output pass):
    /// the last of a burst of two or more carries PSH (`Tcb::build_data`).
    burst_new: u16,
    /// Pacing, when the controller asks for it: the earliest time the next data segment
    /// would leave at the pacing rate, and the timer that wakes the sender for it.
    pace_next: Instant,
    pace_deadline: Option<Instant>,
    /// Duplicate ACKs in a row (RFC 5681 §2): without SACK they drive recovery (RFC 6582),
    /// and each counts as one segment that left the network in `pipe` (limited transmit,
    /// RFC 3042, as Linux's tcp_add_reno_sack).
    dupacks: u32,
    /// RFC 6582 §3.2's `recover` for recovery without SACK: duplicate ACKs at or below it do
    /// not start another recovery.
    recover: Option<SeqNum>,
    /// F-RTO (RFC 5682 §3): the timeout may be spurious; `high` is SND.NXT at the timeout
    /// until new data is sent (step 2b), then SND.NXT after it.
    frto: bool,
    /// F-RTO step 2b: the next transmissions are new data, not retransmissions.
    frto_send_new: bool,
    /// The retransmission timer expired: resend the first unacknowledged segment whatever
    /// cwnd and the peer's window say (it is also the probe of a zero window).
    rto_head_now: bool,
    /// The probe timer expired: send a tail loss probe.
    tlp_now: bool,
    /// DSACK to report in the next ACK (RFC 2883 §4: first block, once).
    dsack: Option<(SeqNum, SeqNum)>,
    ecn: EcnState,
    cwnd_use: CwndUse,

    // What the next poll_transmit owes the peer.
    ack_now: bool,
    /// Duplicate ACKs owed for out-of-order segments received since the last transmit.
    dup_acks_owed: u32,
    /// In-order bytes received since our last ACK.
    unacked_bytes: usize,
    send_syn: bool,
    probe_now: bool,
    /// The override timeout fired: send into a small window once (RFC 1122 §4.2.3.4).
    sws_override: bool,
    /// TCP_CORK: a segment shorter than the MSS waits (for more data, the uncork, or the
    /// persist timer's override), whatever is in flight; a FIN goes.
    cork: bool,
    /// MSG_MORE on the last write: its tail waits like a corked one until the next write
    /// without it, the next segment from the peer, or the persist timer (Linux's: the flag
    /// governs only the push of that call).
    more_coming: bool,
    /// The last write had MSG_MORE: its end is no push point (no PSH there), as Linux marks
    /// PSH only on writes without it (tcp_push).
    tail_unpushed: bool,
    /// TCP_NODELAY was just turned on, or the cork taken off with Nagle off: what is queued
    /// goes now, however short (Linux's TCP_NAGLE_PUSH), until the application writes again.
    push_once: bool,
    keepalive_now: bool,
    rst_now: bool,
    /// A reset answering a segment this TCB refuses (§3.10.7.1 rules).
    reply_rst: Option<Box<TcpRepr<'static>>>,
    challenge_window: (Instant, u32),

    events: u8,
    close_reason: Option<CloseReason>,
    last_icmp_error: Option<IcmpError>,
    stats: Counters,
}

impl fmt::Debug for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcb")
            .field("state", &self.state)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("snd_wnd", &self.snd_wnd)
            .field("cwnd", &self.cc.cwnd())
            .field("ssthresh", &self.cc.ssthresh())
            .field("phase", &self.phase)
            .field("pipe", &self.pipe())
            .field("sacked", &self.sb.sacked_bytes())
            .field("lost", &self.sb.lost_bytes())
            .field("rcv_nxt", &self.rcv_nxt)
            .field("rtx_deadline", &self.rtx_deadline)
            .field("probe_deadline", &self.probe_deadline)
            .field("reorder_deadline", &self.reorder_deadline)
            .field("persist_deadline", &self.persist_deadline)
            .field("tx_external", &(self.tx_external, self.tx_ext_len))
            .finish_non_exhaustive()
    }
}

impl Tcb {
    fn new(
        cfg: impl Into<Arc<TcpConfig>>,
        local: SocketAddr,
        remote: SocketAddr,
        state: State,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let cfg: Arc<TcpConfig> = cfg.into();
        let rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        let cc = Controller::new(cfg.congestion, DEFAULT_MSS as usize, cfg.initial_window);
        let entries = cfg.scoreboard_entries();
        let deferred = bufs.as_ref().is_some_and(TcbBuffers::is_deferred);
        let (send_buf, recv_buf, sb) = match bufs {
            Some(b) if deferred => (
                RingBuffer::from_storage(b.send),
                RingBuffer::from_storage(b.recv),
                Scoreboard::with_storage(b.scoreboard, 0),
            ),
            Some(b) if b.send.len() == cfg.send_buffer && b.recv.len() == cfg.recv_buffer => (
                RingBuffer::from_storage(b.send),
                RingBuffer::from_storage(b.recv),
                Scoreboard::with_storage(b.scoreboard, entries),
            ),
            _ => (RingBuffer::new(cfg.send_buffer), RingBuffer::new(cfg.recv_buffer), Scoreboard::new(entries)),
        };
        Tcb {
            send_buf,
            recv_buf,
            buffers_deferred: deferred,
            assembler: Assembler::new(cfg.max_ooo_ranges),
            rx_lend: false,
            rx_lent: None,
            rx_ce: false,
            rx_external: 0,
            tx_external: false,
            tx_ext_len: 0,
            tx_ext_released: 0,
            tx_ext_out: None,
            tx_ext_new_limit: usize::MAX,
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
            syn_text: 0,
            syn_fin: false,
            fin_received: false,
            ws_agreed: false,
            ts_enabled: false,
            ts_recent: 0,
            ts_offset: 0,
            last_ack_sent: SeqNum(0),
            sack_enabled: false,
            app_closed: false,
            send_was_full: false,
            send_limit: cfg.send_buffer,
            rtx_deadline: None,
            delack_deadline: None,
            quick_acks: 0,
            reordering: crate::tcp::recovery::rack::DUP_THRESH as u32,
            reord_seen: 0,
            last_data_in: None,
            pingpong: false,
            persist_deadline: None,
            persist_backoff: 0,
            probing: false,
            keepalive_deadline: None,
            keepalive_unanswered: 0,
            close_deadline: None,
            retries: 0,
            rtt,
            syn_sent_at: None,
            cc,
            last_send: now,
            last_ack_rcvd: now,
            sb,
            rack: Rack::default(),
            tlp: Tlp::default(),
            phase: Phase::Open,
            prr: Prr::default(),
            undo: None,
            probe_deadline: None,
            reorder_deadline: None,
            rate: RateState::default(),
            batch_delivered: 0,
            burst_new: 0,
            pace_next: now,
            pace_deadline: None,
            dupacks: 0,
            recover: None,
            frto: false,
            frto_send_new: false,
            rto_head_now: false,
            tlp_now: false,
            dsack: None,
            ecn: EcnState::default(),
            cwnd_use: CwndUse::default(),
            ack_now: false,
            dup_acks_owed: 0,
            unacked_bytes: 0,
            send_syn: false,
            probe_now: false,
            sws_override: false,
            cork: false,
            more_coming: false,
            tail_unpushed: false,
            push_once: false,
            keepalive_now: false,
            rst_now: false,
            reply_rst: None,
            challenge_window: (now, 0),
            events: 0,
            close_reason: None,
            last_icmp_error: None,
            stats: Counters::default(),
            cfg,
        }
    }

    /// Active open (§3.10.1): SYN-SENT; the SYN goes out on the next `poll_transmit`.
    pub fn connect(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNum,
        now: Instant,
    ) -> Tcb {
        Tcb::connect_in(cfg, local, remote, iss, now, None)
    }

    /// An active open of the 4-tuple of a connection in TIME-WAIT that
    /// [`Tcb::take_over_time_wait`] gave up, as Linux's `tcp_twsk_unique` starts one
    /// (net.ipv4.tcp_tw_reuse): its ISN is the old connection's SND.NXT + 65,537, beyond
    /// every sequence number the old one used and a whole unscaled window past them, so a
    /// peer that still holds the old connection (in TIME-WAIT after a simultaneous close,
    /// or LAST-ACK) sees a new incarnation (RFC 9293 §3.4.1, RFC 6191 §2); and its timestamp
    /// clock is the old one's, so the new SYN's TSval is newer than any the old connection
    /// sent (RFC 6191 §4: a peer in TIME-WAIT accepts a SYN by its timestamp).
    pub fn connect_after_time_wait(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        old: TimeWaitReuse,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let iss = old.snd_nxt + 65_537u32;
        // Linux never uses 0 (it means "not set" there); neither does this.
        let iss = if iss.0 == 0 { SeqNum(1) } else { iss };
        let mut t = Tcb::connect_in(cfg, local, remote, iss, now, bufs);
        t.ts_offset = old.ts_offset;
        t
    }

    /// `connect` with buffers that were used before ([`Tcb::into_buffers`]), sized as `cfg`
    /// says (others are replaced): no allocation and no zeroing per connection.
    pub fn connect_in(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNum,
        now: Instant,
        bufs: Option<TcbBuffers>,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local.into(), remote.into(), State::SynSent, now, bufs);
        t.iss = iss;
        t.snd_una = iss;
        t.snd_nxt = iss;
        t.ts_offset = Tcb::ts_offset_for(iss);
        t.rcv_wscale = t.cfg.window_shift();
        t.send_syn = true;
        t
    }

    /// Passive open (§3.10.1): LISTEN on `local`. ISNs for the connections it accepts come
    /// from `isn` (RFC 6528).
    pub fn listen(
        cfg: impl Into<Arc<TcpConfig>>,
        local: impl Into<SocketAddr>,
        isn: IsnGenerator,
        now: Instant,
    ) -> Tcb {
        let local = local.into();
        let unspecified: core::net::IpAddr = match local {
            SocketAddr::V4(_) => core::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => core::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let unspecified = SocketAddr::new(unspecified, 0);
        let mut t = Tcb::new(cfg, local, unspecified, State::Listen, now, None);
        t.passive = true;
        t.isn = Some(isn);
        t
    }

    /// The connection state (RFC 9293 §3.3.2).
    pub fn state(&self) -> State {
        self.state
    }
    /// The local address and port.
    pub fn local(&self) -> SocketAddr {
        self.local
    }
    /// The peer's address and port (the unspecified address and port 0 on a listener).
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
    /// This connection's counters.
    pub fn stats(&self) -> TcbStats {
        self.stats.get()
    }
    /// The configuration the TCB was made with.
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }
    /// The MSS we send with (payload bytes per full segment).
    pub fn send_mss(&self) -> usize {
        self.snd_mss
    }
    /// The congestion window, in bytes.
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }
    /// The slow-start threshold, in bytes (`usize::MAX` until the first congestion event).
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }
    /// The congestion controller (its algorithm and state).
    pub fn congestion(&self) -> &Controller {
        &self.cc
    }
    /// In fast recovery (RFC 6675 with SACK, RFC 6582 without).
    pub fn in_recovery(&self) -> bool {
        matches!(self.phase, Phase::Recovery { .. })
    }
    /// Recovering from a retransmission timeout (RFC 5681 §3.1).
    pub fn in_rto_recovery(&self) -> bool {
        matches!(self.phase, Phase::Loss { .. })
    }
    /// Bytes in flight by RFC 6675's `pipe` (outstanding − SACKed − lost + retransmitted).
    pub fn pipe(&self) -> usize {
        let sacked = if self.sack_enabled { 0 } else { self.dupack_bytes() };
        self.sb.pipe(self.flight_size()).saturating_sub(sacked)
    }
    /// The sender's scoreboard (read-only: what is outstanding, SACKed, lost).
    pub fn scoreboard(&self) -> &Scoreboard {
        &self.sb
    }
    /// SACK was agreed in the handshake (RFC 2018 §2).
    pub fn sack_enabled(&self) -> bool {
        self.sack_enabled
    }
    /// ECN was agreed in the handshake (RFC 3168 §6.1.1).
    pub fn ecn_enabled(&self) -> bool {
        self.ecn.on
    }
    /// The segment `poll_transmit` last returned is to be sent ECN-capable: ECT(0) in its IP
    /// header (RFC 3168 §6.1.2: new data on an ECN connection; never retransmissions, pure
    /// ACKs, window probes, keep-alives, SYNs).
    pub fn last_tx_ect(&self) -> bool {
        self.ecn.last_ect
    }
    /// The current retransmission timeout (RFC 6298 §2), doubled for each expiry since the last
    /// new sample (§5.5), at most `TcpConfig::max_rto`.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }
    /// The smoothed round-trip time (RFC 6298 §2), once a sample was taken.
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
    /// The send buffer's size now (it grows, `TcpConfig::send_buffer_max`).
    pub fn send_buffer_size(&self) -> usize {
        self.send_limit
    }
    /// Room in the send buffer.
    pub fn send_capacity(&self) -> usize {
        if self.tx_external {
            self.send_limit.saturating_sub(self.tx_ext_len)
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
}

impl Tcb {
    // ------------------------------------------------------------------ helpers

    fn enter_closed(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.close_reason = Some(reason);
            self.events |= EV_CLOSED;
        }
        self.rtx_deadline = None;
        self.probe_deadline = None;
        self.reorder_deadline = None;
        self.delack_deadline = None;
        self.persist_deadline = None;
        self.keepalive_deadline = None;
        self.close_deadline = None;
        self.pace_deadline = None;
        // Nothing can be sent any more, nor out-of-order data completed: let both go. (In-order
        // data already received stays readable.)
        let queued = self.sendq_len();
        self.sendq_discard(queued);
        self.assembler.clear();
        self.sb.clear();
        self.tlp = Tlp::default();
        self.rto_head_now = false;
        self.tlp_now = false;
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
        let stats = core::mem::take(&mut self.stats);
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

    /// Sequence space sent and not yet acknowledged (RFC 5681's FlightSize).
    fn flight_size(&self) -> usize {
        self.snd_nxt.since(self.snd_una) as usize
    }

    /// Without SACK, each duplicate ACK stands for a segment that left the network (RFC 6675
    /// §1's reading of RFC 5681's window inflation; Linux's tcp_add_reno_sack): counted out of
    /// `pipe`, never more than is outstanding.
    fn dupack_bytes(&self) -> usize {
        (self.dupacks as usize).saturating_mul(self.snd_mss).min(self.flight_size().saturating_sub(1))
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// RFC 7323 §5.4: a 1 ms clock, offset per connection (§7.1) so that the value reveals
    /// nothing about uptime; the offset is drawn from the ISN, so a SYN cookie's SYN-ACK
    /// (which has no connection yet) can read the clock its connection will use.
    pub(crate) fn ts_offset_for(iss: SeqNum) -> u32 {
        iss.0.rotate_left(16)
    }

    /// The timestamp clock of the connection whose ISN is `iss`, at `now`.
    pub(crate) fn ts_clock(now: Instant, iss: SeqNum) -> u32 {
        (now.as_millis() as u32).wrapping_add(Tcb::ts_offset_for(iss))
    }

    /// The window of a SYN-ACK from a connection with settings `cfg` (unscaled, RFC 7323
    /// §2.2): the whole receive buffer, at most 65,535.
    pub(crate) fn initial_window(cfg: &TcpConfig) -> u16 {
        cfg.recv_buffer.min(0xffff) as u16
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

    /// The application read: is the window it opened worth an ACK of its own? The right
    /// edge moves only by min(RCV.BUFF/2, MSS) at least (RFC 9293 §3.8.6.2.2, `rcv_window`);
    /// when to announce it the RFCs leave open, and Linux's rule is taken (tcp_cleanup_rbuf):
    /// only when the window now offered is at most half of the largest one and the new
    /// window at least doubles it — a zero or nearly closed window reopening, not every read
    /// of a large window (whose next ACK carries the update anyway). FreeBSD's
    /// (`WindowUpdate::TwoSegments`, its tcp_output) for its profile.
    fn maybe_window_update(&mut self) {
        // After the peer's FIN no more data comes: a window update has no one to serve (and
        // a peer that has closed its socket answers it with a reset).
        if !self.state.is_synchronized() || self.fin_received {
            return;
        }
        let current = u64::from(self.rcv_adv.since(self.rcv_nxt));
        let max_window = 0xffff_u64 << self.rcv_wscale;
        let buffer = self.cfg.recv_buffer as u64;
        let w = u64::from(self.rcv_window());
        if w <= current {
            return;
        }
        let worth = match self.cfg.window_update {
            WindowUpdate::Doubling => 2 * current <= buffer.min(max_window) && w >= 2 * current,
            WindowUpdate::TwoSegments => {
                let (adv, mss) = (w - current, u64::from(self.cfg.mss));
                let big =
                    adv >= 2 * mss && (adv >= buffer / 4 || w <= buffer / 8 || buffer <= 8 * mss || adv >= max_window);
                big || 2 * adv >= buffer
            }
        };
        if worth {
            self.ack_now = true;
        }
    }

    /// Receive space left: the buffer, less what the caller holds in place (zero-copy).
    fn rx_room(&self) -> usize {
        if self.buffers_deferred {
            // What the buffer will hold: windows advertised before it comes are its size.
            return self.cfg.recv_buffer;
        }
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
            self.stats.rare().challenge_acks += 1;
        } else {
            self.stats.rare().challenge_acks_suppressed += 1;
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
