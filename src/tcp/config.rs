//! Tunables of one connection. Defaults follow what Linux does, so that xtcp behaves the way
//! peers and scripts written against Linux expect.

use crate::tcp::cc::Algorithm;
use crate::time::Duration;

/// When a read that opens the receive window gets an ACK of its own (the RFCs leave it open:
/// RFC 9293 §3.8.6.2.2 only says how far the right edge may move).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowUpdate {
    /// Linux's rule (tcp_cleanup_rbuf): when the window offered is at most half of the
    /// largest one and the new window at least doubles it — a closed or nearly closed
    /// window reopening. The default.
    Doubling,
    /// FreeBSD's (tcp_output): when the window grows by two segments and by a quarter of the
    /// buffer (or the buffer is small, or the window nearly closed), or by half the buffer.
    TwoSegments,
}

/// Explicit Congestion Notification (RFC 3168) on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EcnMode {
    /// Never: a peer's ECN-setup SYN is answered without ECN.
    Off,
    /// Agree when the peer asks (its SYN carries ECE and CWR), never ask: Linux's default
    /// (`tcp_ecn = 2`).
    #[default]
    Passive,
    /// Ask in our SYN too (`tcp_ecn = 1`).
    On,
}

/// Keep-alive settings (RFC 1122 §4.2.3.6; RFC 9293 §3.8.4). Off unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (Linux `tcp_keepalive_time`: 7200 s).
    pub idle: Duration,
    /// Time between unanswered probes (`tcp_keepalive_intvl`: 75 s).
    pub interval: Duration,
    /// Unanswered probes before the peer is declared dead (`tcp_keepalive_probes`: 9).
    pub probes: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { idle: Duration::from_secs(7200), interval: Duration::from_secs(75), probes: 9 }
    }
}

/// Per-connection configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// MSS we advertise: the most payload we accept in one segment (MTU 1500 − 40).
    pub mss: u16,
    /// Send buffer, bytes (unacknowledged plus unsent data): its size when the connection
    /// opens.
    pub send_buffer: usize,
    /// The most the send buffer grows to (Linux's `tcp_wmem[2]`, 4 MiB). A sender the
    /// buffer holds back while cwnd has room gets a buffer of twice cwnd (three times with
    /// BBR), as Linux's tcp_sndbuf_expand; at or below `send_buffer` the size is fixed, as a
    /// socket whose SO_SNDBUF was set.
    pub send_buffer_max: usize,
    /// Receive buffer, bytes: the most we advertise, and the room for out-of-order data.
    pub recv_buffer: usize,
    /// The largest receive buffer the window scale must be able to announce, if more than
    /// `recv_buffer` (Linux sizes its scale by `tcp_rmem[2]`, FreeBSD by
    /// `kern.ipc.maxsockbuf`); 0: `recv_buffer`.
    pub recv_buffer_max: usize,
    /// Offer window scaling (RFC 7323 §2). The shift is the smallest that covers `recv_buffer`.
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018); we send SACK blocks for out-of-order data when the peer agrees.
    pub sack: bool,
    /// Nagle's algorithm (RFC 1122 §4.2.3.4). On by default; off is TCP_NODELAY.
    pub nagle: bool,
    /// Delayed-ACK timer (RFC 1122 §4.2.3.2: under 0.5 s; Linux's minimum is 40 ms).
    pub delayed_ack: Duration,
    /// Linux's quick-ACK mode: the first data of a connection, and data after an idle time
    /// longer than the RTO, are ACKed at once for up to 16 segments (so that the sender's
    /// slow start is not held back by delayed ACKs), unless the connection is interactive —
    /// its replies leave within the delayed-ACK time and carry the ACKs. On by default;
    /// off is the plain RFC 1122 §4.2.3.2 policy (FreeBSD's).
    pub quick_ack: bool,
    /// When a read that opens the receive window is announced with an ACK of its own.
    pub window_update: WindowUpdate,
    /// A hard ICMP error (port or protocol unreachable, administratively prohibited, time
    /// exceeded) about our SYN ends the open (RFC 1122 §4.2.3.9: "SHOULD abort"; Linux and
    /// FreeBSD do). Off, every ICMP error is soft (FreeBSD's `icmp_may_rst=0`). On by default.
    pub icmp_aborts_open: bool,
    /// Retransmissions of an ECN-setup SYN that still ask for ECN before the SYN goes
    /// without it (RFC 3168 §6.1.1.1: a middlebox may drop ECN-setup SYNs). 0, Linux's:
    /// only the first SYN asks. FreeBSD's `net.inet.tcp.ecn.maxretries` (1).
    pub ecn_syn_retries: u32,
    /// RFC 6298 §2.1: RTO before any RTT sample.
    pub initial_rto: Duration,
    /// Lower bound on the RTO (RFC 6298 §2.4 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Upper bound on the RTO and on backoff (Linux `TCP_RTO_MAX`: 120 s).
    pub max_rto: Duration,
    /// SYN retransmissions before giving up on an active open (Linux `tcp_syn_retries`: 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions in SYN-RECEIVED (Linux `tcp_synack_retries`: 5).
    pub synack_retries: u32,
    /// Retransmissions of the same data before aborting (Linux `tcp_retries2`: 15).
    pub data_retries: u32,
    /// TIME-WAIT length, 2·MSL (Linux: a fixed 60 s).
    pub time_wait: Duration,
    /// How long FIN-WAIT-2 may last after the application closed (not just shut down
    /// writing); Linux `tcp_fin_timeout`: 60 s.
    pub fin_wait2_timeout: Duration,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: usize,
    /// Keep-alive, `None` = off (RFC 1122 §4.2.3.6: off by default).
    pub keepalive: Option<Keepalive>,
    /// How late after a deadline the caller may run `handle_timeout`: the resolution of
    /// the timers that drive the connection. A paced sender (BBR) may run this far ahead of
    /// its schedule, so that a late timer costs it no rate; beyond that its bursts are as
    /// long as Linux's (`Tcb::pace_slack`). The stack sets it to its timer wheel's
    /// resolution; a caller with finer timers lowers it and gets shorter queues.
    pub timer_granularity: Duration,
    /// Most separate out-of-order ranges held; a segment that would make more is dropped
    /// (and counted). Bounds the bookkeeping an attacker can make us do.
    pub max_ooo_ranges: usize,
    /// RFC 5961 §7: at most this many challenge ACKs per second.
    pub challenge_ack_limit: u32,
    /// The congestion controller (RFC 9438 CUBIC by default, as Linux; or Reno).
    pub congestion: Algorithm,
    /// ECN (RFC 3168); Linux's default answers a peer that asks.
    pub ecn: EcnMode,
    /// RFC 8985 §7's tail loss probe (Linux `tcp_early_retrans = 3`: on).
    pub tail_loss_probe: bool,
    /// RFC 5682's F-RTO detection of spurious timeouts (Linux `tcp_frto = 2`: on).
    pub frto: bool,
    /// RFC 5681 §4.1: after an idle time longer than the RTO, restart from the initial
    /// window (Linux `tcp_slow_start_after_idle`, on by default).
    pub slow_start_after_idle: bool,
    /// The fewest segments Linux puts in a TSO packet (`tcp_min_tso_segs`, 2): xtcp marks
    /// PSH at the end of each group of new data Linux would send as one (see `Tcb`).
    pub min_tso_segs: u8,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: 256 * 1024,
            send_buffer_max: 4 << 20,
            recv_buffer: 256 * 1024,
            recv_buffer_max: 0,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: true,
            delayed_ack: Duration::from_millis(40),
            quick_ack: true,
            window_update: WindowUpdate::Doubling,
            icmp_aborts_open: true,
            ecn_syn_retries: 0,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 6,
            synack_retries: 5,
            data_retries: 15,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            initial_window: 10,
            keepalive: None,
            max_ooo_ranges: 32,
            timer_granularity: Duration::from_millis(1),
            challenge_ack_limit: 1000,
            congestion: Algorithm::Cubic,
            ecn: EcnMode::Passive,
            tail_loss_probe: true,
            frto: true,
            slow_start_after_idle: true,
            min_tso_segs: 2,
        }
    }
}

impl TcpConfig {
    /// RFC 7323 §2.3: the shift we announce, the smallest that lets the window field cover the
    /// receive buffer (or `recv_buffer_max`), at most 14.
    pub fn window_shift(&self) -> u8 {
        if !self.window_scaling {
            return 0;
        }
        let covered = self.recv_buffer.max(self.recv_buffer_max);
        let mut shift = 0u8;
        while shift < 14 && (covered >> shift) > 0xffff {
            shift += 1;
        }
        shift
    }
}

impl TcpConfig {
    /// Entries in the sender's scoreboard (`recovery::Scoreboard`): about one per KiB of send
    /// buffer (one per full segment sent alone, with room to spare), 32 to 16,384.
    pub fn scoreboard_entries(&self) -> usize {
        Self::scoreboard_entries_for(self.send_buffer)
    }
    /// The same for a send buffer of `bytes` (one that has grown).
    pub fn scoreboard_entries_for(bytes: usize) -> usize {
        (bytes / 1024 + 16).clamp(32, 16_384)
    }
}
