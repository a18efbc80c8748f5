//! The raw AF_XDP ceiling: UDP frames bounced between two AF_XDP sockets, no TCP, no stack.
//!
//! * `bounce serve`: every UDP datagram to our address goes back to its sender, MACs, IPs and
//!   ports swapped in place in the received UMEM frame (checksums stay valid: they are sums);
//!   ARP requests for our address are answered in place.
//! * `bounce client`: on AF_XDP too; resolves the server's MAC by ARP, then keeps `window`
//!   datagrams in flight, each carrying its send time; RTT = receive time − that send time,
//!   both read on the client's clock (send time taken just before the frame is queued on the TX
//!   ring, receive time just after the burst that holds the reply is taken from the RX ring).
//!   Throughput: replies per second. Datagrams not back within 100 ms are counted lost and
//!   their window slots reopened.

use crate::results::{new_histogram, percentile_points, Latency, RunResult};
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
use xtcp::io::{Device, Frame};
use xtcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, FrameRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, L4Repr, MacAddr, NetRepr, UdpPacket, UdpRepr,
};

const BATCH: usize = 64;
const PORT: u16 = 9;

fn open(iface: &str, addr: Ipv4Addr) -> Result<AfXdpDevice, String> {
    AfXdpDevice::open(&AfXdpConfig::new(iface, &[addr]), 0)
        .map_err(|e| format!("AF_XDP on {iface}: {e} (needs root and the interface in this namespace)"))
}

enum Kind {
    Udp { ihl: usize },
    ArpRequest(ArpRepr),
    ArpReply(ArpRepr),
    Other,
}

fn classify(b: &[u8], ours: Ipv4Addr) -> Kind {
    let Ok(eth) = EthernetFrame::new_checked(b) else { return Kind::Other };
    match eth.ethertype() {
        EtherType::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Kind::Other };
            if ip.protocol() != IpProtocol::Udp || ip.dst_addr() != ours || ip.is_fragment() {
                return Kind::Other;
            }
            match UdpPacket::new_checked(ip.payload()) {
                Ok(_) => Kind::Udp { ihl: ip.header_len() },
                Err(_) => Kind::Other,
            }
        }
        EtherType::Arp => match ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p)) {
            Ok(a) if a.operation == ArpOperation::Request && a.target_ip == ours => Kind::ArpRequest(a),
            Ok(a) if a.operation == ArpOperation::Reply && a.target_ip == ours => Kind::ArpReply(a),
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

fn swap_udp(p: &mut [u8], ihl: usize) {
    const ETH: usize = 14;
    for i in 0..6 {
        p.swap(i, 6 + i);
    }
    for i in 0..4 {
        p.swap(ETH + 12 + i, ETH + 16 + i);
    }
    let udp = ETH + ihl;
    p.swap(udp, udp + 2);
    p.swap(udp + 1, udp + 3);
}

/// Emit `repr` into a fresh TX frame and queue it; false if no frame was free.
fn emit(dev: &mut AfXdpDevice, tx: &mut Vec<Frame>, repr: &FrameRepr) -> bool {
    let Some(mut f) = dev.alloc_tx() else { return false };
    let off = f.offset as usize;
    match repr.emit(&mut dev.buffer_mut(&f)[off..]) {
        Ok(n) => {
            f.len = n as u32;
            tx.push(f);
            true
        }
        Err(_) => {
            dev.recycle(f);
            false
        }
    }
}

fn arp_reply(mac: MacAddr, ours: Ipv4Addr, a: &ArpRepr) -> FrameRepr<'static> {
    FrameRepr {
        eth: EthernetRepr { src: mac, dst: a.source_mac, ethertype: EtherType::Arp },
        net: NetRepr::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_mac: mac,
            source_ip: ours,
            target_mac: a.source_mac,
            target_ip: a.source_ip,
        }),
    }
}

/// Bounce until `stop` or `seconds` (0: forever); returns (frames bounced, seconds with traffic).
pub fn serve(iface: &str, ours: Ipv4Addr, seconds: f64, stop: &AtomicBool) -> Result<(u64, f64), String> {
    let mut dev = open(iface, ours)?;
    eprintln!(
        "xtcp-bench bounce: serving on {iface} {ours} ({:?} XDP, {:?} socket)",
        dev.program().mode(),
        dev.bind_mode()
    );
    let (mut rx, mut tx) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH * 2));
    let deadline = (seconds > 0.0).then(|| Instant::now() + Duration::from_secs_f64(seconds));
    let (mut bounced, mut first, mut last) = (0u64, None, None);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        if dev.rx_burst(&mut rx, BATCH) > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
        }
        for f in rx.drain(..) {
            match classify(dev.frame(&f), ours) {
                Kind::Udp { ihl } => {
                    let (off, len) = (f.offset as usize, f.len as usize);
                    swap_udp(&mut dev.buffer_mut(&f)[off..off + len], ihl);
                    tx.push(f);
                    bounced += 1;
                }
                Kind::ArpRequest(a) => {
                    let mac = dev.mac();
                    dev.recycle(f);
                    emit(&mut dev, &mut tx, &arp_reply(mac, ours, &a));
                }
                _ => dev.recycle(f),
            }
        }
        if !tx.is_empty() {
            dev.tx_burst(&mut tx);
        }
        dev.flush();
    }
    let busy = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    Ok((bounced, busy))
}

pub struct BounceClient {
    pub iface: String,
    pub ours: Ipv4Addr,
    pub server: Ipv4Addr,
    pub seconds: f64,
    pub warmup: f64,
    pub window: usize,
    pub size: usize,
    pub label: String,
}

/// Run the client; the result (requests = replies) and its RTT histogram.
pub fn client(c: &BounceClient, stop: &AtomicBool) -> Result<(RunResult, Histogram<u64>), String> {
    let mut dev = open(&c.iface, c.ours)?;
    let mac = dev.mac();
    let (mut rx, mut tx) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH * 2));
    // Resolve the server's MAC.
    let request = FrameRepr {
        eth: EthernetRepr { src: mac, dst: MacAddr::BROADCAST, ethertype: EtherType::Arp },
        net: NetRepr::Arp(ArpRepr {
            operation: ArpOperation::Request,
            source_mac: mac,
            source_ip: c.ours,
            target_mac: MacAddr([0; 6]),
            target_ip: c.server,
        }),
    };
    let give_up = Instant::now() + Duration::from_secs(3);
    let mut last_ask = None::<Instant>;
    let peer = loop {
        if Instant::now() > give_up {
            return Err(format!("no ARP answer from {}", c.server));
        }
        if last_ask.is_none_or(|t| t.elapsed() > Duration::from_millis(100)) {
            emit(&mut dev, &mut tx, &request);
            dev.tx_burst(&mut tx);
            dev.flush();
            last_ask = Some(Instant::now());
        }
        dev.rx_burst(&mut rx, BATCH);
        let mut found = None;
        for f in rx.drain(..) {
            if let Kind::ArpReply(a) = classify(dev.frame(&f), c.ours) {
                if a.source_ip == c.server {
                    found = Some(a.source_mac);
                }
            }
            dev.recycle(f);
        }
        if let Some(m) = found {
            break m;
        }
    };
    let size = c.size.max(16);
    let mut payload = vec![0x5au8; size];
    let t0 = Instant::now();
    let now_ns = || t0.elapsed().as_nanos() as u64;
    let warm_end = (c.warmup * 1e9) as u64;
    let end = warm_end + (c.seconds * 1e9) as u64;
    let mut hist = new_histogram();
    let (mut in_flight, mut replies, mut sent, mut lost) = (0usize, 0u64, 0u64, 0u64);
    let mut last_reply = 0u64;
    let mut ident = 0u16;
    let mut seq = 0u64;
    let mut cpu0 = crate::results::cpu_times();
    let mut measuring = false;
    loop {
        let now = now_ns();
        if !measuring && now >= warm_end {
            measuring = true;
            cpu0 = crate::results::cpu_times();
            replies = 0;
            sent = 0;
            lost = 0;
        }
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        while in_flight < c.window {
            seq += 1;
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            payload[8..16].copy_from_slice(&now_ns().to_be_bytes());
            ident = ident.wrapping_add(1);
            let repr = FrameRepr {
                eth: EthernetRepr { src: mac, dst: peer, ethertype: EtherType::Ipv4 },
                net: NetRepr::Ipv4 {
                    ip: Ipv4Repr {
                        src: c.ours,
                        dst: c.server,
                        protocol: IpProtocol::Udp,
                        payload_len: 8 + size,
                        ttl: 64,
                        ident,
                        dont_frag: true,
                        dscp_ecn: 0,
                    },
                    l4: L4Repr::Udp(UdpRepr { src_port: PORT, dst_port: PORT, payload: &payload }),
                },
            };
            if !emit(&mut dev, &mut tx, &repr) {
                break;
            }
            in_flight += 1;
            sent += 1;
        }
        if !tx.is_empty() {
            dev.tx_burst(&mut tx);
        }
        dev.flush();
        if dev.rx_burst(&mut rx, BATCH) > 0 {
            let now = now_ns();
            for f in rx.drain(..) {
                if let Kind::Udp { ihl } = classify(dev.frame(&f), c.ours) {
                    let b = dev.frame(&f);
                    let at = 14 + ihl + 8;
                    if let Some(ts) = b.get(at + 8..at + 16) {
                        let ts = u64::from_be_bytes(ts.try_into().unwrap_or([0; 8]));
                        in_flight = in_flight.saturating_sub(1);
                        replies += 1;
                        last_reply = now;
                        if measuring {
                            let _ = hist.record(now.saturating_sub(ts).max(1));
                        }
                    }
                }
                dev.recycle(f);
            }
        } else if in_flight > 0 && now.saturating_sub(last_reply) > 100_000_000 {
            lost += in_flight as u64;
            in_flight = 0;
            last_reply = now;
        }
    }
    let cpu1 = crate::results::cpu_times();
    let secs = (now_ns().saturating_sub(warm_end)) as f64 / 1e9;
    let cpu = (cpu1.0 - cpu0.0) + (cpu1.1 - cpu0.1);
    let res = RunResult {
        label: c.label.clone(),
        stack: "af_xdp".into(),
        workload: "bounce".into(),
        polling: "busy".into(),
        target: c.server.to_string(),
        conns: 1,
        req_bytes: size,
        resp_bytes: size,
        pipeline: c.window,
        seconds: secs,
        requests: replies,
        bytes_sent: sent * size as u64,
        bytes_received: replies * size as u64,
        requests_per_sec: replies as f64 / secs.max(1e-9),
        latency_us: Latency::of(&hist),
        cpu_user_s: cpu1.0 - cpu0.0,
        cpu_sys_s: cpu1.1 - cpu0.1,
        cpu_us_per_request: cpu * 1e6 / replies.max(1) as f64,
        errors: lost,
        percentiles: percentile_points(&hist),
        ..Default::default()
    };
    Ok((res, hist))
}
