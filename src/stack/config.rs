//! The stack's configuration and the bounds it checks on per-connection settings.

use super::Rss;
use super::StackError;
use crate::tcp::TcpConfig;
use crate::time::Duration;
use core::net::{Ipv4Addr, Ipv6Addr};

/// When listeners use SYN cookies (Linux's `net.ipv4.tcp_syncookies` 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynCookieMode {
    /// Never: a SYN that finds the SYN queue full is dropped (the peer retries).
    Off,
    /// When a listener's SYN queue is full (the default, as Linux's).
    #[default]
    WhenFull,
    /// For every SYN: no SYN queue at all.
    Always,
}

/// Configuration of one core's stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The interface's first IPv4 address: the source of active opens unless another is asked for.
    pub ip: Ipv4Addr,
    /// Further addresses of the interface, on the same subnet: the stack answers ARP for
    /// them, accepts connections to them, and active opens use them as sources when the
    /// first address has no port left for a destination (or on request, `connect_from`) —
    /// so one stack can hold more connections to one server than one address's ports allow.
    pub extra_ips: Vec<Ipv4Addr>,
    /// Length of the IPv4 subnet's prefix, in bits: destinations inside it are on-link.
    pub prefix_len: u8,
    /// The router for IPv4 destinations off the subnet; `None`: every destination is resolved as
    /// if it were on-link.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 addresses of the interface (RFC 4291), beside the IPv4 ones: the stack answers
    /// neighbour solicitations for them (RFC 4861 §7.2.4), accepts connections to them, and
    /// active opens to IPv6 destinations take the first as their source. With any, the
    /// stack also has the link-local address its MAC gives (fe80::/64 with the modified
    /// EUI-64 interface identifier, RFC 4291 §2.5.1 and appendix A; every IPv6 interface has
    /// one, §2.8). Empty (the default): no IPv6 at all, as before.
    pub ipv6: Vec<Ipv6Addr>,
    /// The on-link prefix of the IPv6 addresses (64 by default, RFC 4291 §2.5.1).
    pub ipv6_prefix_len: u8,
    /// The router for IPv6 destinations off the prefix.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// Defaults for every connection.
    pub tcp: TcpConfig,
    /// Connections plus listeners.
    pub max_sockets: usize,
    /// Ephemeral ports for active opens (Linux: 32768–60999).
    pub ephemeral_ports: (u16, u16),
    /// An active open may take the 4-tuple of a connection of ours in TIME-WAIT that has
    /// been there this long, when timestamps were in use on it (Linux's
    /// net.ipv4.tcp_tw_reuse = 1 with tcp_tw_reuse_delay; `Tcb::time_wait_reusable`): a
    /// client that closes first can then open more than one connection per port per
    /// TIME-WAIT to one destination. `None` (the default, as Linux's for other than
    /// loopback): a port waits out TIME-WAIT.
    pub time_wait_reuse: Option<Duration>,
    /// Most connections in TIME-WAIT at once (Linux's net.ipv4.tcp_max_tw_buckets); a
    /// connection closing when as many wait already ends at once instead, counted
    /// (`Counters::tcp_time_wait_overflow`; Linux's TCPTimeWaitOverflow), so that a server
    /// that closes first cannot fill its table with TIME-WAIT and turn new connections away.
    /// `None` (the default): half of `max_sockets`, as Linux sizes it to half its table of
    /// established connections.
    pub max_time_wait: Option<usize>,
    /// Most neighbours the cache (ARP and IPv6 neighbour discovery together) holds.
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
    /// Resolution of the core's timer wheel: no timer fires more than this late. 10 µs by
    /// default, so that pacing (which Linux runs on high-resolution timers) and RACK's
    /// reordering window (a quarter of the minimum RTT: 25 µs on a veth link) keep their
    /// time on datacenter paths; connections get it as `TcpConfig::timer_granularity`.
    /// The wheel's cost is per timer fired and per cascade, not per tick.
    pub timer_resolution: Duration,
    /// Zero-copy receive: in-order payload stays in the frame it arrived in until the
    /// application consumes it ([`Stack::recv_chunks`](crate::stack::Stack::recv_chunks), or `recv` copying straight from the
    /// frame). Off: every payload is copied into the connection's buffer on arrival.
    pub zero_copy_rx: bool,
    /// Received frames all connections together may hold (a share of the device's pool, so
    /// the NIC keeps frames to receive into). Past it, payload is copied: nothing is dropped.
    pub max_rx_frames_held: usize,
    /// Received frames one connection may hold; past it, its payload is copied.
    pub max_rx_frames_per_conn: usize,
    /// Frames all connections together may hold for zero-copy send ([`Stack::send_buf`](crate::stack::Stack::send_buf)):
    /// queued or unacknowledged.
    pub max_tx_frames_held: usize,
    /// When a listener answers SYNs with SYN cookies (RFC 4987 §3.6) instead of queueing
    /// them. Linux's `tcp_syncookies`: 1 (when the SYN queue is full) by default.
    pub syn_cookies: SynCookieMode,
    /// Resets a second at most for segments of no connection (0: no limit). A flood of stray
    /// ACKs then costs the stack no more than this many frames out.
    pub rst_rate_limit: u32,
    /// Bytes of send/receive buffer storage kept from closed connections for new ones, so
    /// that opening a connection neither allocates nor zeroes its buffers.
    pub buffer_pool_bytes: usize,
}

impl StackConfig {
    /// Most connections in TIME-WAIT at once: `max_time_wait`, or half of `max_sockets`.
    pub fn time_wait_limit(&self) -> usize {
        self.max_time_wait.unwrap_or(self.max_sockets / 2)
    }

    /// A configuration with `ip` on a subnet of `prefix_len` bits, `secret` for ISNs and ports,
    /// and the defaults for the rest (no gateway, no IPv6, 64 KiB buffers, 1024 sockets).
    pub fn new(ip: Ipv4Addr, prefix_len: u8, secret: [u8; 16]) -> StackConfig {
        StackConfig {
            ip,
            extra_ips: Vec::new(),
            prefix_len,
            gateway: None,
            ipv6: Vec::new(),
            ipv6_prefix_len: 64,
            ipv6_gateway: None,
            tcp: TcpConfig { send_buffer: 64 * 1024, recv_buffer: 64 * 1024, ..TcpConfig::default() },
            max_sockets: 1024,
            ephemeral_ports: (32768, 60999),
            time_wait_reuse: None,
            max_time_wait: None,
            arp_cache_size: 256,
            arp_ttl: Duration::from_secs(60),
            arp_pending: 256,
            arp_pending_timeout: Duration::from_secs(3),
            secret,
            rx_burst: 64,
            rss: None,
            timer_resolution: Duration::from_micros(10),
            zero_copy_rx: true,
            max_rx_frames_held: 1024,
            max_rx_frames_per_conn: 64,
            max_tx_frames_held: 1024,
            buffer_pool_bytes: 64 << 20,
            syn_cookies: SynCookieMode::WhenFull,
            rst_rate_limit: 10_000,
        }
    }

    /// An IPv6-only stack: `ip` with an on-link prefix of `prefix_len` bits (and the
    /// link-local address the MAC gives), no IPv4 address — no ARP, IPv4 frames are not for
    /// it, IPv4 connects and pings are refused ([`StackError::InvalidAddress`]).
    /// The rest as [`StackConfig::new`].
    ///
    /// [`StackError::InvalidAddress`]: crate::stack::StackError::InvalidAddress
    pub fn new_ipv6(ip: Ipv6Addr, prefix_len: u8, secret: [u8; 16]) -> StackConfig {
        let mut c = StackConfig::new(Ipv4Addr::UNSPECIFIED, 0, secret);
        c.ipv6 = vec![ip];
        c.ipv6_prefix_len = prefix_len;
        c
    }
}

/// Per-connection settings the stack accepts: buffers that hold at least one byte and at
/// most 1 GiB, growth bounds of at most 1 GiB (RFC 7323 §2.3: a window scale of 14 covers
/// 1 GiB), an MSS of at least 88 bytes (a 128-byte MTU, the RFC 1191 floor used for ICMP
/// too), and RTO bounds with 1 ms ≤ min ≤ max ≤ 1 hour (the timer wheel ticks in
/// milliseconds; RFC 6298 §2.5 wants the maximum at least 60 s, but a test or a datacenter
/// may choose less).
pub(super) fn check_tcp_config(tcp: &TcpConfig) -> Result<(), StackError> {
    const MAX: usize = 1 << 30;
    let rto_ok = Duration::from_millis(1) <= tcp.min_rto
        && tcp.min_rto <= tcp.max_rto
        && tcp.max_rto <= Duration::from_secs(3600)
        && tcp.initial_rto >= tcp.min_rto;
    let ok = (1..=MAX).contains(&tcp.send_buffer)
        && tcp.send_buffer_max <= MAX
        && tcp.recv_buffer_max <= MAX
        && (1..=MAX).contains(&tcp.recv_buffer)
        && tcp.mss >= 88
        && rto_ok;
    ok.then_some(()).ok_or(StackError::InvalidOption)
}

/// A secret for [`StackConfig::secret`] from the operating system's entropy source
/// (`getrandom(2)`). An error when the OS has none to give: a stack must not run with a
/// secret anyone can guess, since its ISNs (RFC 6528 §3), SYN cookies (RFC 4987 §3.6) and
/// ephemeral ports (RFC 6056) are only as unpredictable as it is.
pub fn os_secret() -> Result<[u8; 16], std::io::Error> {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(std::io::Error::from)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackError;
    use crate::tcp::{CloseReason, TcpError};
    use std::io::ErrorKind;

    #[test]
    fn stack_errors_become_the_io_errors_a_socket_would_give() {
        let kind = |e: StackError| std::io::Error::from(e).kind();
        assert_eq!(kind(StackError::Tcp(TcpError::WouldBlock)), ErrorKind::WouldBlock);
        assert_eq!(kind(StackError::Tcp(TcpError::Closed(CloseReason::Reset))), ErrorKind::ConnectionReset);
        assert_eq!(kind(StackError::Tcp(TcpError::Closed(CloseReason::Refused))), ErrorKind::ConnectionRefused);
        assert_eq!(kind(StackError::Tcp(TcpError::Closed(CloseReason::TimedOut))), ErrorKind::TimedOut);
        assert_eq!(kind(StackError::Tcp(TcpError::WriteClosed)), ErrorKind::BrokenPipe);
        assert_eq!(kind(StackError::AddrInUse), ErrorKind::AddrInUse);
        assert_eq!(kind(StackError::PortsExhausted), ErrorKind::AddrNotAvailable);
        let e = std::io::Error::from(StackError::InvalidOption);
        assert_eq!(e.to_string(), "connection setting out of range", "the stack's message is kept");
    }

    #[test]
    fn os_secrets_are_drawn_fresh_each_time() {
        let a = os_secret().expect("this machine has entropy");
        let b = os_secret().expect("this machine has entropy");
        assert_ne!(a, [0; 16]);
        assert_ne!(a, b, "two draws of 128 bits agree only by a failure of the source");
    }
}
