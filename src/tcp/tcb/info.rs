//! What a connection reports about itself, in the shape of Linux's `struct tcp_info`
//! (TCP_INFO): the fields monitoring tools and packetdrill's scripts read, counted as Linux
//! counts them (segments where Linux counts packets).

use super::*;

/// Linux's `TCP_INFINITE_SSTHRESH`: the slow-start threshold before any loss.
pub const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

/// Linux's congestion-avoidance states (`tcpi_ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CaState {
    /// Nothing unusual.
    Open = 0,
    /// Duplicate ACKs or SACKs seen, no recovery yet.
    Disorder = 1,
    /// A window reduction without loss recovery (an ECN echo, a probe-repaired loss).
    Cwr = 2,
    /// Fast recovery.
    Recovery = 3,
    /// After a retransmission timeout.
    Loss = 4,
}

/// A snapshot of one connection (Linux's `tcp_info`, the fields xtcp has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Linux's congestion-avoidance state.
    pub ca_state: CaState,
    /// Congestion window, segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Slow-start threshold, segments; [`INFINITE_SSTHRESH`] before any reduction.
    pub snd_ssthresh: u32,
    /// Segments sent and not cumulatively acknowledged (`tcpi_unacked`, Linux's packets_out).
    pub unacked: u32,
    /// Of those, selectively acknowledged (`tcpi_sacked`),
    pub sacked: u32,
    /// deemed lost (`tcpi_lost`),
    pub lost: u32,
    /// and retransmitted and in flight (`tcpi_retrans`).
    pub retrans: u32,
    /// Retransmissions over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// The reordering degree seen, segments: 3 until more is seen (Linux's `tp->reordering`,
    /// its duplicate threshold; xtcp's RACK adapts its window in time and only reports it).
    pub reordering: u32,
    /// How many ACKs showed reordering (`tcpi_reord_seen`).
    pub reord_seen: u32,
    /// Smoothed RTT, microseconds (0 before a sample).
    pub rtt_us: u32,
    /// Minimum RTT, microseconds (0 before a sample).
    pub min_rtt_us: u32,
    /// Retransmission timeout, microseconds.
    pub rto_us: u32,
    /// The MSS segments are sent with (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// The MSS we advertised (`tcpi_advmss`).
    pub advmss: u32,
}

fn segs(bytes: usize, mss: usize) -> u32 {
    u32::try_from(bytes.div_ceil(mss.max(1))).unwrap_or(u32::MAX)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Tcb {
    /// The connection's `tcp_info` (Linux's TCP_INFO).
    pub fn info(&self) -> TcpInfo {
        let mss = self.snd_mss.max(1);
        let ca_state = match self.phase {
            Phase::Open if self.sb.sacked_bytes() > 0 || self.dupacks > 0 => CaState::Disorder,
            Phase::Open => CaState::Open,
            Phase::Cwr { .. } => CaState::Cwr,
            Phase::Recovery { .. } => CaState::Recovery,
            Phase::Loss { .. } => CaState::Loss,
        };
        let ssthresh = self.cc.ssthresh() / mss;
        TcpInfo {
            ca_state,
            snd_cwnd: u32::try_from(self.cc.cwnd() / mss).unwrap_or(u32::MAX),
            snd_ssthresh: u32::try_from(ssthresh).map_or(INFINITE_SSTHRESH, |s| s.min(INFINITE_SSTHRESH)),
            unacked: segs(self.snd_nxt.since(self.snd_una) as usize, mss),
            sacked: segs(self.sb.sacked_bytes(), mss),
            lost: segs(self.sb.lost_bytes(), mss),
            retrans: segs(self.sb.retrans_bytes(), mss),
            total_retrans: u32::try_from(self.stats.get().retransmits).unwrap_or(u32::MAX),
            reordering: self.reordering,
            reord_seen: self.reord_seen,
            rtt_us: self.rtt.srtt().map_or(0, micros),
            min_rtt_us: self.rack.min_rtt().map_or(0, micros),
            rto_us: micros(self.rtt.rto()),
            snd_mss: mss as u32,
            advmss: u32::from(self.cfg.mss),
        }
    }
}
