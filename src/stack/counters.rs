//! Per-core counters, in the manner of `netstat -s`: every frame the stack receives is either
//! handled or counted under the reason it was dropped.

use crate::wire;

/// Counters of one core's stack. Plain integers: one core owns them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from the device.
    pub frames_in: u64,
    /// Frames the device took for transmission.
    pub frames_out: u64,

    // Drops of received frames, by reason.
    /// Received frames too short for a header or for the length a header claims
    /// ([`wire::Error::Truncated`]).
    pub drop_truncated: u64,
    /// Received frames with a header that makes no sense: a bad version, length or option
    /// ([`wire::Error::Malformed`]).
    pub drop_malformed: u64,
    /// Received frames with a wrong IPv4 header, TCP, UDP or ICMP checksum
    /// ([`wire::Error::BadChecksum`]).
    pub drop_bad_checksum: u64,
    /// Received IPv4 or IPv6 fragments: there is no reassembly ([`wire::Error::Fragmented`]).
    pub drop_fragment: u64,
    /// Received frames of a kind not handled: another EtherType, IP protocol or ICMP type,
    /// non-Ethernet ARP, an IPv6 jumbogram ([`wire::Error::Unsupported`]).
    pub drop_unsupported: u64,
    /// Unicast to another MAC, or IPv4 to another address.
    pub drop_not_for_us: u64,
    /// UDP to us (no UDP sockets yet).
    pub drop_udp: u64,

    // TCP.
    /// TCP segments received for one of our addresses (after the frame parsed and checked),
    /// whether or not a connection took them.
    pub tcp_segs_in: u64,
    /// TCP segments sent, of every kind.
    pub tcp_segs_out: u64,
    /// TCP segments received with RST set.
    pub tcp_rsts_in: u64,
    /// TCP resets sent: by connections (aborts, refused segments) and for segments of no connection.
    pub tcp_rsts_out: u64,
    /// Loss recovery, summed from each connection when it ends (`TcbStats`): segments sent
    /// again, of which in fast recovery; retransmission timeouts; fast recoveries entered;
    /// retransmissions found lost again (RACK); tail loss probes; reductions undone as
    /// spurious (DSACK, timestamps, F-RTO); reductions for ECN echoes.
    pub tcp_retransmits: u64,
    /// Of `tcp_retransmits`, those sent during fast recovery.
    pub tcp_fast_retransmits: u64,
    /// Retransmission timer expiries.
    pub tcp_timeouts: u64,
    /// Fast recoveries entered.
    pub tcp_recoveries: u64,
    /// Retransmissions found lost again by RACK (RFC 8985 §6.2).
    pub tcp_lost_retransmits: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub tcp_tlp_probes: u64,
    /// Window reductions undone as spurious (DSACK, timestamps, F-RTO).
    pub tcp_undos: u64,
    /// Window reductions for an ECN echo (RFC 3168 §6.1.2).
    pub tcp_ecn_reductions: u64,
    /// SACK blocks a connection's full scoreboard could not take (the bytes stay unSACKed).
    pub tcp_sack_blocks_ignored: u64,
    /// Segments that arrived marked Congestion Experienced (RFC 3168).
    pub ecn_ce_in: u64,
    /// Connections opened by the application (`connect`).
    pub tcp_active_opens: u64,
    /// Handshakes begun at a listener: SYNs queued, and ACKs with a good SYN cookie.
    pub tcp_passive_opens: u64,
    /// Opens that never reached ESTABLISHED (refused, timed out, reset in SYN-RECEIVED).
    pub tcp_failed_opens: u64,
    /// Established connections ended by a reset (either way) or a timeout.
    pub tcp_resets: u64,
    /// Segments for no connection and no listener (answered with a reset).
    pub tcp_no_socket: u64,
    /// Segments at a listener with neither SYN nor ACK (a bare FIN, data without ACK):
    /// dropped, not reset (RFC 9293 §3.10.7.2, "fourth, other data or control").
    pub tcp_listen_dropped: u64,
    /// Resets for segments of no connection not sent: over `rst_rate_limit`.
    pub tcp_rsts_rate_limited: u64,
    /// SYNs dropped because the listener's SYN queue held `backlog` handshakes (and no cookie was
    /// sent instead).
    pub tcp_syn_queue_full: u64,
    /// SYN-ACKs sent with a SYN cookie (RFC 4987 §3.6) instead of a queued handshake.
    pub tcp_syn_cookies_sent: u64,
    /// ACKs whose cookie was good: connections made from them.
    pub tcp_syn_cookies_accepted: u64,
    /// ACKs at a listener that had sent cookies lately whose cookie was not good (forged,
    /// stale, of another tuple); answered with a reset, as any ACK in LISTEN.
    pub tcp_syn_cookies_refused: u64,
    /// Handshakes dropped or reset because the listener's accept queue held `backlog` connections:
    /// SYNs and cookie ACKs dropped, handshakes completed together reset.
    pub tcp_accept_queue_full: u64,
    /// SYNs refused because the connection table was full.
    pub tcp_table_full: u64,

    // ARP.
    /// ARP requests received, for us or not.
    pub arp_requests_in: u64,
    /// ARP replies received, for us or not.
    pub arp_replies_in: u64,
    /// ARP requests sent.
    pub arp_requests_out: u64,
    /// ARP replies sent.
    pub arp_replies_out: u64,
    /// Frames dropped while waiting for an ARP reply or a neighbour advertisement (queue
    /// full or never resolved).
    pub arp_queue_drops: u64,
    /// Frames that had to wait for a resolution (the first ones to a neighbour, or to one
    /// forgotten): an entry that merely expired is still used while it is asked for again.
    pub neigh_queued: u64,
    /// Unicast probes of neighbours in PROBE (RFC 4861 §7.3.3: solicitations, or ARP
    /// requests, to the address we have).
    pub neigh_probes_out: u64,
    /// Neighbours given up after their probes went unanswered (the next packet resolves
    /// them again).
    pub neigh_failed: u64,

    // IPv6 neighbour discovery (RFC 4861).
    /// Neighbour solicitations received with hop limit 255, for us or not, duplicate address
    /// detection probes included; those then failing §7.1.1's checks count in `ndp_invalid` too.
    pub ndp_solicits_in: u64,
    /// Neighbour advertisements received with hop limit 255; those then failing §7.1.2's checks
    /// count in `ndp_invalid` too.
    pub ndp_adverts_in: u64,
    /// Neighbour solicitations sent: address resolution and duplicate address detection probes.
    pub ndp_solicits_out: u64,
    /// Neighbour advertisements sent: answers to solicitations for our addresses, defences of
    /// an address probed for, and unsolicited announcements to all nodes.
    pub ndp_adverts_out: u64,
    /// Router solicitations and advertisements, and redirects: not acted on (addresses and
    /// routes are configured).
    pub ndp_ignored: u64,
    /// Neighbour discovery messages that fail RFC 4861's validity checks (§7.1: hop limit
    /// other than 255, a multicast target, an unspecified source with a link-layer option),
    /// dropped.
    pub ndp_invalid: u64,
    /// Another node probed for or advertised one of our IPv6 addresses (RFC 4862 §5.4): a
    /// duplicate. In the first second, the address is given up.
    pub ipv6_duplicates: u64,

    // ICMP.
    /// Echo requests to us, ICMPv4 and ICMPv6 (RFC 4443 §4.1).
    pub icmp_echo_in: u64,
    /// Echo replies sent, ICMPv4 and ICMPv6.
    pub icmp_echo_out: u64,
    /// Echo requests of our own sent (`Stack::send_echo_request`).
    pub icmp_echo_requests_out: u64,
    /// Echo replies to our requests, queued for `Stack::poll_echo_reply`.
    pub icmp_echo_replies_in: u64,
    /// Echo replies dropped: to an identifier we did not use lately, or with the queue full.
    pub icmp_echo_replies_dropped: u64,
    /// Destination-unreachable and time-exceeded messages about one of our connections
    /// (RFC 1122 §4.2.3.9: soft errors, the connection goes on).
    pub icmp_errors_in: u64,
    /// ICMP errors about no connection of ours, or quoting a sequence number not in flight
    /// (RFC 5927 §4.1): ignored.
    pub icmp_errors_ignored: u64,

    /// Active opens that took the 4-tuple of a connection in TIME-WAIT
    /// (`StackConfig::time_wait_reuse`).
    pub tcp_time_wait_reused: u64,
    /// Connections that ended on closing instead of entering TIME-WAIT, because as many as
    /// `StackConfig::max_time_wait` were there already.
    pub tcp_time_wait_overflow: u64,
    /// A TX frame was needed and the pool had none.
    pub tx_pool_empty: u64,

    // Zero-copy.
    /// Segments whose payload stayed in the frame it arrived in until the application read it.
    pub tcp_rx_in_place: u64,
    /// Segments sent from the application's own frame (zero-copy send), headers written in
    /// front of its payload.
    pub tcp_tx_in_place: u64,
    /// Zero-copy data that had to be copied into a fresh frame to go out: a retransmission
    /// cut differently from the application's frames, a frame still in flight, a header
    /// that did not fit, or a device that cannot send a frame it does not own.
    pub tcp_tx_copied: u64,
    /// Copied segments whose headers came out longer or shorter than the connection's last
    /// (new options, a SACK block more or less), so the payload was moved in its frame to
    /// meet them at the frame's start.
    pub tcp_tx_payload_moved: u64,
    /// Send buffers refused at `max_tx_frames_held`.
    pub tx_frames_exhausted: u64,
}

impl Counters {
    /// Add what a connection counted (the stack does this when it ends).
    pub fn add_tcb(&mut self, st: &crate::tcp::TcbStats) {
        self.tcp_retransmits += st.retransmits;
        self.tcp_fast_retransmits += st.fast_retransmits;
        self.tcp_timeouts += st.rto_expirations;
        self.tcp_recoveries += st.recoveries;
        self.tcp_lost_retransmits += st.lost_retransmits;
        self.tcp_tlp_probes += st.tlp_probes;
        self.tcp_undos += st.undos; // F-RTO's spurious RTOs are among them (TcbStats::spurious_rtos)
        self.tcp_ecn_reductions += st.ecn_reductions;
        self.tcp_sack_blocks_ignored += st.sack_blocks_ignored;
    }

    pub(crate) fn count_wire_error(&mut self, e: wire::Error) {
        match e {
            wire::Error::Truncated => self.drop_truncated += 1,
            wire::Error::Malformed => self.drop_malformed += 1,
            wire::Error::BadChecksum => self.drop_bad_checksum += 1,
            wire::Error::Fragmented => self.drop_fragment += 1,
            wire::Error::Unsupported | wire::Error::BufferTooSmall => self.drop_unsupported += 1,
        }
    }

    /// Every received frame that was dropped, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.drop_truncated
            + self.drop_malformed
            + self.drop_bad_checksum
            + self.drop_fragment
            + self.drop_unsupported
            + self.drop_not_for_us
            + self.drop_udp
            + self.ndp_invalid
            + self.tcp_listen_dropped
    }
}
