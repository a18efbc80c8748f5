//! The TCB's vocabulary: connection states, events, close reasons and ICMP errors, the
//! errors its calls return, and its counters.

use core::fmt;

/// The connection states of RFC 9293 §3.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection: before an open, or after the connection ended.
    Closed,
    /// Waiting for a connection request (a SYN) on the local address.
    Listen,
    /// Our SYN sent (active open); waiting for the peer's SYN and its ACK of ours.
    SynSent,
    /// The peer's SYN received and our SYN-ACK sent; waiting for the ACK of our SYN.
    SynReceived,
    /// The handshake completed: data flows both ways.
    Established,
    /// The application shut down writing (our FIN goes out after the queued data); waiting for
    /// the FIN's ACK or the peer's FIN.
    FinWait1,
    /// Our FIN acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer's FIN received; waiting for the application to close.
    CloseWait,
    /// Both sides sent FIN at the same time; waiting for the ACK of ours.
    Closing,
    /// The peer's FIN received, then the application shut down writing too; waiting for the ACK
    /// of our FIN.
    LastAck,
    /// Both FINs acknowledged; held for `TcpConfig::time_wait` so that late segments of this
    /// connection die out before the four-tuple is reused.
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
    /// A hard ICMP error ended the open in SYN-SENT (RFC 1122 §4.2.3.9): port or protocol
    /// unreachable (ECONNREFUSED), administratively prohibited or time exceeded
    /// (EHOSTUNREACH).
    Unreachable(IcmpError),
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

/// An ICMP error about a connection (RFC 1122 §4.2.3.9, RFC 4443 §3). Soft errors leave the
/// connection alone; hard ones end an open still in SYN-SENT (`Tcb::on_icmp_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpError {
    /// Destination unreachable, a soft error: network or host unreachable or unknown, source
    /// route failed, host isolated (ICMPv4 codes 0, 1, 5–8, 11, 12; ICMPv6 no route, beyond
    /// scope, address unreachable). RFC 1122: "TCP MUST NOT abort the connection".
    Unreachable,
    /// Protocol unreachable (ICMPv4 code 2; ICMPv6's parameter problem "unrecognized Next
    /// Header"): a hard error (RFC 1122 §4.2.3.9).
    ProtocolUnreachable,
    /// Port unreachable (ICMPv4 code 3, ICMPv6 code 4): a hard error.
    PortUnreachable,
    /// Communication administratively prohibited or refused by precedence (ICMPv4 codes 9,
    /// 10, 13–15; ICMPv6 codes 1, 5, 6): a hard error, as Linux and FreeBSD take it. `code`
    /// is the message's code.
    Prohibited {
        /// The ICMP code (ICMPv4's, or ICMPv6's for an IPv6 connection).
        code: u8,
    },
    /// Fragmentation needed with DF set (RFC 1191), or IPv6's Packet Too Big (RFC 8201): the
    /// path's MTU.
    FragmentationNeeded {
        /// The MTU the error reports (the next-hop MTU, or the Packet Too Big MTU), in bytes.
        mtu: u16,
    },
    /// Time exceeded (the TTL or hop limit ran out, or reassembly timed out). RFC 1122 says to
    /// treat it as the soft unreachables ("should"); Linux and FreeBSD end an open in SYN-SENT
    /// on it, and so does xtcp.
    TimeExceeded,
    /// An ICMPv6 parameter problem other than an unrecognized Next Header: soft.
    ParameterProblem,
}

impl IcmpError {
    /// The error of an ICMPv4 destination unreachable with `code` (RFC 792, RFC 1812 §5.2.7.1).
    pub fn from_v4_unreachable(code: u8, next_hop_mtu: u16) -> IcmpError {
        match code {
            2 => IcmpError::ProtocolUnreachable,
            3 => IcmpError::PortUnreachable,
            4 => IcmpError::FragmentationNeeded { mtu: next_hop_mtu },
            9 | 10 | 13..=15 => IcmpError::Prohibited { code },
            _ => IcmpError::Unreachable,
        }
    }

    /// The error of an ICMPv6 destination unreachable with `code` (RFC 4443 §3.1).
    pub fn from_v6_unreachable(code: u8) -> IcmpError {
        match code {
            4 => IcmpError::PortUnreachable,
            1 | 5 | 6 => IcmpError::Prohibited { code },
            _ => IcmpError::Unreachable,
        }
    }

    /// Whether it is a hard error: one that ends a connection still in SYN-SENT.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            IcmpError::ProtocolUnreachable
                | IcmpError::PortUnreachable
                | IcmpError::Prohibited { .. }
                | IcmpError::TimeExceeded
        )
    }
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
    /// Segments handed to the TCB (`on_segment`), acceptable or not.
    pub segs_in: u64,
    /// Segments `poll_transmit` handed out, of every kind (data, ACKs, SYNs, resets, probes).
    pub segs_out: u64,
    /// Payload bytes accepted into the receive window, in order or out of order (copied into the
    /// receive buffer or lent in the caller's frame).
    pub bytes_in: u64,
    /// Payload bytes sent for the first time (retransmissions and window probes not included).
    pub bytes_out: u64,
    /// Segments sent again, for whatever reason.
    pub retransmits: u64,
    /// Of those, sent during fast recovery (RFC 6675, RFC 6582).
    pub fast_retransmits: u64,
    /// Retransmission timer expiries, the SYN's and SYN-ACK's included.
    pub rto_expirations: u64,
    /// Fast recoveries entered (a loss found by RACK or by duplicate ACKs).
    pub recoveries: u64,
    /// Retransmissions found lost again by RACK (RFC 8985 §6.2: they are resent, not left
    /// to the RTO).
    pub lost_retransmits: u64,
    /// RFC 8985 §7 tail loss probes sent, and those that repaired a loss.
    pub tlp_probes: u64,
    /// Tail loss probes that repaired a loss (RFC 8985 §7.4.2), answered with a window reduction.
    pub tlp_repairs: u64,
    /// RFC 6675 rescue retransmissions.
    pub rescue_retransmits: u64,
    /// SACK blocks left unused because the scoreboard was full (its bound, DESIGN habit 9:
    /// the bytes stay unSACKed, the conservative reading).
    pub sack_blocks_ignored: u64,
    /// RACK's reordering timer fired (RFC 8985 §6.2 step 5's timeout).
    pub reorder_timeouts: u64,
    /// DSACK blocks received (RFC 2883) and sent.
    pub dsacks_in: u64,
    /// DSACK blocks sent (RFC 2883 §4).
    pub dsacks_out: u64,
    /// Reductions undone as spurious: by DSACK, by timestamps (RFC 3522), and timeouts found
    /// spurious by F-RTO (RFC 5682).
    pub undos: u64,
    /// Of the undos, retransmission timeouts found spurious by F-RTO (RFC 5682 §3.1).
    pub spurious_rtos: u64,
    /// ECN (RFC 3168): CE-marked segments received, and window reductions for an echo.
    pub ecn_ce_in: u64,
    /// Window reductions made for an ECN echo (RFC 3168 §6.1.2; at most one per window).
    pub ecn_reductions: u64,
    /// Duplicate ACKs received (RFC 5681 §2; one carrying SACK blocks counts even if the window
    /// changed).
    pub dup_acks_in: u64,
    /// Data segments received beyond RCV.NXT (out of order), each answered with an ACK at once.
    pub out_of_order_in: u64,
    /// Segments outside the window, or failing PAWS: answered with an ACK and dropped.
    pub unacceptable_in: u64,
    /// Out-of-order segments dropped because `max_ooo_ranges` was reached.
    pub ooo_limit_drops: u64,
    /// Challenge ACKs sent: answers to a reset that is in the window but not at RCV.NXT
    /// (RFC 5961 §3.2) and to a SYN in a synchronised state (§4.2).
    pub challenge_acks: u64,
    /// Challenge ACKs not sent because `TcpConfig::challenge_ack_limit` a second was reached
    /// (RFC 5961 §7).
    pub challenge_acks_suppressed: u64,
    /// Zero-window probes sent (RFC 9293 §3.8.6.1).
    pub window_probes: u64,
    /// Keep-alive probes sent (RFC 1122 §4.2.3.6).
    pub keepalive_probes: u64,
    /// Resets sent: answers to segments this TCB refuses, and aborts.
    pub rsts_out: u64,
    /// Times the send buffer grew (`TcpConfig::send_buffer_max`).
    pub send_buffer_grown: u64,
}

/// A connection's counters as it keeps them: the four that every segment moves inline, the
/// rest (events of loss, recovery, probes and refusals, which most connections never see) in
/// a box made at the first of them — 200 bytes less per connection that has none.
#[derive(Debug, Clone, Default)]
pub(super) struct Counters {
    pub(super) segs_in: u64,
    pub(super) segs_out: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    rare: Option<Box<TcbStats>>,
}

impl Counters {
    /// The rarer counters, made at the first use.
    pub(super) fn rare(&mut self) -> &mut TcbStats {
        self.rare.get_or_insert_with(Box::default)
    }

    pub(super) fn get(&self) -> TcbStats {
        TcbStats {
            segs_in: self.segs_in,
            segs_out: self.segs_out,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            ..self.rare.as_deref().copied().unwrap_or_default()
        }
    }
}
