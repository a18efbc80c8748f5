//! The whole-stack fuzz harness: stack A (the one under test) with a listener and live
//! connections to a real peer, stack B, over the in-memory link; the fuzzer's bytes are
//! decoded into a sequence of operations — frames put on the wire towards A (raw, or TCP
//! segments aimed at its live connections and listener with numbers near the real ones, over
//! IPv4 or IPv6 (both stacks are dual-stack), ARP, ICMP), steps of virtual time, and application calls on either side — interleaved with the
//! pair's own traffic. After every operation A's bookkeeping must hold
//! (`Stack::check_invariants`); at the end, with every connection aborted, both stacks must
//! empty and every frame must be back in A's pool.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use xtcp::io::mem::{Faults, MemDevice};
use xtcp::io::Device;
use xtcp::stack::pair::{StackPair, MAC_A, MAC_B};
use xtcp::stack::{Handle, Stack, StackConfig, StackEvent, SynCookieMode};
use xtcp::time::Duration;
use xtcp::wire::{
    checksum, ArpOperation, ArpRepr, DstUnreachable, EtherType, EthernetRepr, FrameRepr, Icmpv4Repr, IpProtocol,
    Ipv4Repr, Ipv6Repr, L4Repr, L6Repr, MacAddr, NetRepr, SackBlocks, TcpFlags, TcpOptions, TcpRepr, Timestamp,
};

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const FRAMES: usize = 512;

/// The fuzzer's bytes, read front to back; past the end everything reads as zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Harness {
    p: StackPair,
    events: Vec<(char, Handle, StackEvent)>,
    /// Connections of each side the application knows (accepted or opened).
    a_conns: Vec<Handle>,
    b_conns: Vec<Handle>,
    listeners: Vec<Handle>,
    b_listener: Handle,
}

fn config(ip: Ipv4Addr, ip6: Ipv6Addr, secret: u8, cookies: SynCookieMode) -> StackConfig {
    let mut c = StackConfig::new(ip, 24, [secret; 16]);
    c.ipv6 = vec![ip6];
    c.max_sockets = 64;
    c.arp_cache_size = 16;
    c.arp_pending = 32;
    c.max_rx_frames_held = 128;
    c.max_tx_frames_held = 128;
    c.syn_cookies = cookies;
    c.tcp.send_buffer = 16 * 1024;
    c.tcp.recv_buffer = 16 * 1024;
    c
}

impl Harness {
    /// A listening on 80 (backlog 4), B on 81; one connection each way, established.
    fn new(mode: u8) -> Harness {
        let cookies = [SynCookieMode::WhenFull, SynCookieMode::Always, SynCookieMode::Off][mode as usize % 3];
        let faults = Faults { delay: Duration::from_micros(50), ..Faults::default() };
        let mut p = StackPair::new(
            1,
            faults,
            config(IP_A, IP6_A, 1, cookies),
            config(IP_B, IP6_B, 2, SynCookieMode::WhenFull),
            FRAMES,
        );
        let lb = p.b.listen(81, 4).unwrap();
        let mut h = Harness {
            p,
            events: Vec::new(),
            a_conns: Vec::new(),
            b_conns: Vec::new(),
            listeners: Vec::new(),
            b_listener: lb,
        };
        h.listeners.push(h.p.a.listen(80, 4).unwrap());
        let to_a = h.p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
        let to_b = h.p.a.connect(SocketAddrV4::new(IP_B, 81)).unwrap();
        h.b_conns.push(to_a);
        h.a_conns.push(to_b);
        for _ in 0..10_000 {
            h.step();
            if h.a_conns.len() == 2 && h.b_conns.len() == 2 {
                break;
            }
        }
        assert_eq!((h.a_conns.len(), h.b_conns.len()), (2, 2), "the harness's connections open");
        h
    }

    fn step(&mut self) {
        self.p.step(&mut self.events);
        for (side, h, ev) in self.events.drain(..) {
            match (side, ev) {
                ('a', StackEvent::Accepted) => {
                    while let Ok(Some(c)) = self.p.a.accept(h) {
                        self.a_conns.push(c);
                    }
                }
                ('b', StackEvent::Accepted) => {
                    while let Ok(Some(c)) = self.p.b.accept(h) {
                        self.b_conns.push(c);
                    }
                }
                ('a', StackEvent::Closed(_)) => self.a_conns.retain(|&c| c != h),
                ('b', StackEvent::Closed(_)) => self.b_conns.retain(|&c| c != h),
                _ => {}
            }
        }
        if let Err(e) = self.p.a.check_invariants() {
            panic!("stack A at {:?}: {e}", self.p.now);
        }
    }

    /// Step until `until`; where the pair only creeps (10 µs a step when nothing is due),
    /// jump there, as a stalled process would find its timers all due at once.
    fn advance(&mut self, until: xtcp::time::Instant) {
        for _ in 0..200 {
            if self.p.now >= until {
                return;
            }
            self.step();
        }
        if self.p.now < until {
            self.p.now = until;
            self.p.link.set_now(until);
            self.step();
        }
    }

    fn inject(&mut self, frame: &FrameRepr<'_>) {
        let dev: &mut MemDevice = self.p.b.device_mut();
        let Some(mut f) = dev.alloc_tx() else { return };
        match frame.emit(dev.buffer_mut(&f)) {
            Ok(n) => {
                f.len = n as u32;
                dev.tx_burst(&mut vec![f]);
            }
            Err(_) => dev.recycle(f),
        }
    }

    fn inject_raw(&mut self, bytes: &[u8]) {
        let mut v = bytes.to_vec();
        // Let the fuzzer past the checksums it cannot guess: fix the IPv4 header's, and a
        // TCP segment's.
        if v.len() >= 14 + 20 && v[12..14] == [8, 0] {
            crate::fix_ipv4_checksum(&mut v[14..]);
            let hl = usize::from(v[14] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([v[16], v[17]]));
            if v[14 + 9] == 6 && hl >= 20 && total >= hl + 20 && 14 + total <= v.len() {
                let (src, dst) = (Ipv4Addr::new(v[26], v[27], v[28], v[29]), Ipv4Addr::new(v[30], v[31], v[32], v[33]));
                let seg = &mut v[14 + hl..14 + total];
                seg[16] = 0;
                seg[17] = 0;
                let ph = checksum::pseudo_header_v4(src, dst, 6, seg.len() as u16);
                let c = checksum::finish(checksum::combine(&[ph, checksum::sum(seg)]));
                seg[16..18].copy_from_slice(&c.to_be_bytes());
            }
        }
        // IPv6: a TCP segment's or an ICMPv6 message's checksum, over RFC 8200 §8.1's
        // pseudo-header (neighbour discovery included: the fuzzer writes NS and NA itself).
        if v.len() >= 14 + 40 && v[12..14] == [0x86, 0xdd] {
            let plen = usize::from(u16::from_be_bytes([v[18], v[19]]));
            let at = match v[20] {
                6 => Some(16),
                58 => Some(2),
                _ => None,
            };
            if let Some(at) = at.filter(|&at| plen >= at + 2 && 54 + plen <= v.len()) {
                let src = Ipv6Addr::from(<[u8; 16]>::try_from(&v[22..38]).expect("16 bytes"));
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&v[38..54]).expect("16 bytes"));
                let next = v[20];
                let l4 = &mut v[54..54 + plen];
                l4[at] = 0;
                l4[at + 1] = 0;
                let ph = xtcp::wire::ipv6::pseudo_header_v6(src, dst, next, plen as u32);
                let c = checksum::finish(checksum::combine(&[ph, checksum::sum(l4)]));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        let dev: &mut MemDevice = self.p.b.device_mut();
        let Some(mut f) = dev.alloc_tx() else { return };
        let n = v.len().min(dev.frame_capacity());
        dev.buffer_mut(&f)[..n].copy_from_slice(&v[..n]);
        f.len = n as u32;
        dev.tx_burst(&mut vec![f]);
    }

    fn ipv4(src: Ipv4Addr, protocol: IpProtocol) -> Ipv4Repr {
        Ipv4Repr { src, dst: IP_A, protocol, payload_len: 0, ttl: 64, ident: 0, dont_frag: true, dscp_ecn: 0 }
    }

    /// A TCP segment aimed at something of A's, its numbers near the real ones.
    fn segment(&mut self, inp: &mut Input<'_>) {
        let target = inp.u8();
        let (src_port, dst_port, seq_base, ack_base) = match target % 4 {
            // B's connection to A's listener, as B would number it.
            0 | 1 => {
                let Some(&c) = self.b_conns.first() else { return };
                let Ok(t) = self.p.b.tcb(c) else { return };
                let peer = self.a_conns.iter().find_map(|&h| self.p.a.tcb(h).ok().filter(|a| a.remote() == t.local()));
                (t.local().port(), t.remote().port(), t.snd_una().0, peer.map_or(0, |a| a.snd_una().0))
            }
            // A's connection to B's listener, from B's side.
            2 => {
                let Some(&c) = self.a_conns.first() else { return };
                let Ok(t) = self.p.a.tcb(c) else { return };
                (t.remote().port(), t.local().port(), inp.u32(), t.snd_una().0)
            }
            // The listener, or a closed port, from any port.
            _ => (inp.u16(), if target & 0x80 != 0 { 80 } else { 82 }, inp.u32(), inp.u32()),
        };
        let seq = seq_base.wrapping_add(i32::from(inp.u16() as i16) as u32);
        let ack = ack_base.wrapping_add(i32::from(inp.u16() as i16) as u32);
        let flags = TcpFlags::from_bits_truncate(inp.u16());
        let window = inp.u16();
        let o = inp.u8();
        let mut options = TcpOptions::default();
        if o & 1 != 0 {
            options.mss = Some(inp.u16());
        }
        if o & 2 != 0 {
            options.window_scale = Some(inp.u8());
        }
        options.sack_permitted = o & 4 != 0;
        if o & 8 != 0 {
            options.timestamp = Some(Timestamp { tsval: inp.u32(), tsecr: inp.u32() });
        }
        if o & 16 != 0 {
            let mut blocks = SackBlocks::default();
            for _ in 0..(o >> 5) % 4 + 1 {
                let start = ack.wrapping_add(u32::from(inp.u16()));
                blocks.push(start, start.wrapping_add(u32::from(inp.u16())));
            }
            options.sack = blocks;
        }
        let len = usize::from(inp.u8()) * 8;
        let payload = vec![0xa5u8; len.min(1400)];
        let seg = TcpRepr { src_port, dst_port, seq, ack, flags, window, urgent: 0, options, payload: &payload };
        // To the listener or a closed port, half the time over IPv6 (the listener answers both
        // families; the live connections are IPv4).
        let frame = if target % 4 == 3 && target & 0x40 != 0 {
            let ip = Ipv6Repr {
                src: IP6_B,
                dst: IP6_A,
                next_header: IpProtocol::Tcp,
                payload_len: 0,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            FrameRepr {
                eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv6 },
                net: NetRepr::Ipv6 { ip, l4: L6Repr::Tcp(seg) },
            }
        } else {
            FrameRepr {
                eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv4 },
                net: NetRepr::Ipv4 { ip: Self::ipv4(IP_B, IpProtocol::Tcp), l4: L4Repr::Tcp(seg) },
            }
        };
        self.inject(&frame);
    }

    fn arp(&mut self, inp: &mut Input<'_>) {
        let o = inp.u8();
        let source_ip = if o & 1 != 0 { IP_B } else { Ipv4Addr::new(198, 18, inp.u8(), inp.u8()) };
        let target_ip = if o & 2 != 0 { IP_A } else { Ipv4Addr::new(198, 18, 0, inp.u8()) };
        let source_mac = MacAddr([2, inp.u8(), inp.u8(), 0, 0, inp.u8()]);
        let operation = if o & 4 != 0 { ArpOperation::Reply } else { ArpOperation::Request };
        let dst = if o & 8 != 0 { MacAddr::BROADCAST } else { MAC_A };
        let frame = FrameRepr {
            eth: EthernetRepr { src: source_mac, dst, ethertype: EtherType::Arp },
            net: NetRepr::Arp(ArpRepr { operation, source_mac, source_ip, target_mac: MAC_A, target_ip }),
        };
        self.inject(&frame);
    }

    fn icmp(&mut self, inp: &mut Input<'_>) {
        let o = inp.u8();
        let mut quote = [0u8; 8];
        if let Some(t) = self.a_conns.iter().find_map(|&h| self.p.a.tcb(h).ok()) {
            quote[..2].copy_from_slice(&t.local().port().to_be_bytes());
            quote[2..4].copy_from_slice(&t.remote().port().to_be_bytes());
            let seq = t.snd_una().0.wrapping_add(u32::from(inp.u16()));
            quote[4..8].copy_from_slice(&seq.to_be_bytes());
        }
        let header = Ipv4Repr { src: IP_A, dst: IP_B, payload_len: 40, ..Self::ipv4(IP_A, IpProtocol::Tcp) };
        let data = [0x11u8; 64];
        let icmp = match o % 3 {
            0 => Icmpv4Repr::EchoRequest { ident: inp.u16(), seq_no: inp.u16(), data: &data[..usize::from(o) % 64] },
            1 => Icmpv4Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: inp.u16(),
                header,
                data: &quote,
            },
            _ => Icmpv4Repr::DstUnreachable {
                reason: DstUnreachable::PortUnreachable,
                next_hop_mtu: 0,
                header,
                data: &quote,
            },
        };
        let frame = FrameRepr {
            eth: EthernetRepr { src: MAC_B, dst: MAC_A, ethertype: EtherType::Ipv4 },
            net: NetRepr::Ipv4 { ip: Self::ipv4(IP_B, IpProtocol::Icmp), l4: L4Repr::Icmp(icmp) },
        };
        self.inject(&frame);
    }

    /// An application call on one side.
    fn app(&mut self, side_a: bool, inp: &mut Input<'_>) {
        let what = inp.u8();
        let conns = if side_a { &self.a_conns } else { &self.b_conns };
        let Some(&h) = conns.get(usize::from(what >> 4) % conns.len().max(1)) else { return };
        let st: &mut Stack<MemDevice> = if side_a { &mut self.p.a } else { &mut self.p.b };
        let mut buf = [0u8; 4096];
        match what % 8 {
            0 | 1 => {
                let n = usize::from(inp.u16()) % buf.len();
                let _ = st.send(h, &buf[..n]);
            }
            2 | 3 => while st.recv(h, &mut buf).is_ok_and(|n| n > 0) {},
            4 => {
                if let Ok(mut b) = st.send_buf(h) {
                    let n = usize::from(inp.u16()) % (b.capacity() + 1);
                    b[..n].fill(0x3c);
                    if inp.u8() & 1 == 0 {
                        let _ = b.commit(n);
                    } // else dropped: the frame goes back
                }
            }
            5 => {
                let _ = st.shutdown(h);
            }
            6 => {
                let _ = st.close(h);
            }
            _ => {
                if side_a {
                    let _ = st.connect(SocketAddrV4::new(IP_B, 81)).map(|c| self.a_conns.push(c));
                } else {
                    let _ = st.connect(SocketAddrV4::new(IP_A, 80)).map(|c| self.b_conns.push(c));
                }
            }
        }
    }

    /// Abort everything, close the listeners, and let every timer run out: both stacks
    /// must empty and A must have every frame back.
    fn finish(mut self) {
        for h in std::mem::take(&mut self.a_conns) {
            let _ = self.p.a.abort(h);
        }
        for h in std::mem::take(&mut self.b_conns) {
            let _ = self.p.b.abort(h);
        }
        for l in std::mem::take(&mut self.listeners) {
            let _ = self.p.a.close(l);
        }
        let _ = self.p.b.close(self.b_listener);
        let end = self.p.now + Duration::from_secs(3600);
        while self.p.a.connection_count() + self.p.b.connection_count() > 0 || self.p.link.in_flight() > 0 {
            assert!(
                self.p.now < end,
                "connections left after an hour: A {}, B {}",
                self.p.a.connection_count(),
                self.p.b.connection_count()
            );
            let next = self.p.now + Duration::from_millis(100);
            self.advance(next);
            // Connections the application never learned of (accepted after the aborts).
            for h in std::mem::take(&mut self.a_conns) {
                let _ = self.p.a.abort(h);
            }
            for h in std::mem::take(&mut self.b_conns) {
                let _ = self.p.b.abort(h);
            }
        }
        // Frames waiting for ARP expire after a few seconds.
        let until = self.p.now + Duration::from_secs(10);
        self.advance(until);
        let held = self.p.a.frames_held();
        assert_eq!(held, (0, 0), "frames held after every connection ended");
        assert_eq!(self.p.a.device().free_frames(), FRAMES, "A lost frames");
    }
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let mut inp = Input(data);
    let mut h = Harness::new(inp.u8());
    let mut ops = 0;
    while !inp.is_empty() && ops < 2_000 {
        ops += 1;
        match inp.u8() % 10 {
            0 => {
                let n = usize::from(inp.u16()) % 1600;
                let bytes = inp.bytes(n).to_vec();
                h.inject_raw(&bytes);
            }
            1 | 2 => h.segment(&mut inp),
            3 => h.arp(&mut inp),
            4 => h.icmp(&mut inp),
            5 => {
                // Up to ~65 s of virtual time.
                let until = h.p.now + Duration::from_millis(u64::from(inp.u16()));
                h.advance(until);
            }
            6 => h.app(true, &mut inp),
            7 => h.app(false, &mut inp),
            _ => {
                for _ in 0..=inp.u8() % 16 {
                    h.step();
                }
            }
        }
        h.step();
    }
    h.finish();
}
