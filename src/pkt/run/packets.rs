//! Packet lines: inbound segments built and delivered, outbound ones matched against what the
//! stack sent (aggregation, comparison, option mapping).

use super::*;
use core::net::IpAddr;

impl Interp<'_> {
    // ------------------------------------------------------------------ packets

    pub(super) fn ensure_flow_for_inbound(&mut self) {
        let local_port = match &self.sut {
            Sut::Flow(_) => return,
            Sut::Listening(p) => *p,
            Sut::Socket(fd) => self.k.sockets.get(fd).and_then(|s| s.port).unwrap_or(DEFAULT_PORT),
            Sut::None => DEFAULT_PORT,
        };
        let remote_port = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1);
        self.sut = Sut::Flow(Box::new(Flow { local_port, remote_port, ..Flow::default() }));
    }

    pub(super) fn inbound(&mut self, times: Option<(u64, Option<u64>)>, p: &Packet) -> R<()> {
        self.settle_at(times)?;
        self.ensure_flow_for_inbound();
        let Sut::Flow(flow) = &mut self.sut else { return self.fail("internal error: no flow") };
        // The peer's ISN: from its SYN (a new one replaces it), or from a SYN-ACK if no SYN
        // was seen (our active open).
        if p.flags.syn && (!p.flags.ack || flow.remote_isn.is_none()) {
            flow.remote_isn = Some(p.seq);
        }
        let flow: &Flow = flow;
        let bytes = match inbound_bytes(flow, p, self.k.ips()) {
            Ok(b) => b,
            Err(e) => return self.fail(e),
        };
        let r = self.k.deliver(&bytes, p.ecn == Some(IpEcn::Ce));
        self.kernel(r)?;
        self.drain_notes();
        self.check_pending()
    }

    /// An ICMP error from the peer about a segment of the connection under test (the quoted
    /// sequence number is ours, in script numbers, as packetdrill's
    /// map_inbound_icmp_tcp_packet maps it).
    pub(super) fn inbound_icmp(&mut self, times: Option<(u64, Option<u64>)>, i: &IcmpPacket) -> R<()> {
        self.settle_at(times)?;
        let ips = self.k.ips();
        let (ty, code) = match super::super::icmp::type_and_code(&i.kind, i.code.as_deref(), ips.0.is_ipv6()) {
            Ok(tc) => tc,
            Err(e) => return self.fail(e),
        };
        let Some(flow) = self.sut_flow() else {
            return self.fail("an ICMP error quotes a segment of the connection under test, but there is none yet");
        };
        let q = super::super::icmp::Quoted {
            ips,
            local_port: flow.local_port,
            remote_port: flow.remote_port,
            seq: flow.local_to_live(i.seq),
            len: i.len,
        };
        let msg = super::super::icmp::message(ty, code, i.mtu, q);
        let r = self.k.deliver_icmp(&msg);
        self.kernel(r)?;
        self.drain_notes();
        self.check_pending()
    }

    pub(super) fn outbound(&mut self, times: Option<(u64, Option<u64>)>, p: &Packet) -> R<()> {
        if self.sut_flow().is_none() {
            return self.fail("an outbound packet is expected, but no connection is under test yet");
        }
        let (limit, window) = match times {
            Some((start, end)) => {
                let tol = self.tolerance(start);
                let end = end.unwrap_or(start);
                (
                    Instant::from_micros(end.saturating_add(tol)),
                    Some((start.saturating_sub(tol), end.saturating_add(tol), start, tol)),
                )
            }
            None => (Instant::FAR_FUTURE, None),
        };
        let Some(first) = self.next_sut_segment(limit)? else {
            let expected = expected_line(p);
            let by = if limit == Instant::FAR_FUTURE {
                "with no timer left to run".to_string()
            } else {
                format!("by {} s", secs(limit.as_micros()))
            };
            return self.fail(format!("expected outbound `{expected}`, but the stack sent nothing {by}"));
        };
        let seg = self.aggregate(first, p, limit)?;
        let flow = match &mut self.sut {
            Sut::Flow(f) => f,
            _ => return self.fail("internal error: no flow"),
        };
        // Learn our ISN from the first SYN the script expects, and from every SYN-ACK (a new
        // connection on the same ports has a new one; packetdrill:
        // handle_connect_for_script_packet and the SYN-ACK case of do_outbound_script_packet).
        let syn_ack = p.flags.ack && seg.flags.ack;
        if p.flags.syn && seg.flags.syn && (flow.local_isn.is_none() || syn_ack) {
            flow.local_isn = Some((p.seq, seg.seq));
        }
        // Remember which live TS val the script's value stands for (inbound `ecr` maps back),
        // before comparing, as packetdrill's map_outbound_live_packet does.
        if let (Some(TcpOpt::Ts { val: sv, .. }), Some(TcpOpt::Ts { val: lv, .. })) = (
            p.options.as_ref().and_then(|o| o.iter().find(|x| matches!(x, TcpOpt::Ts { .. }))),
            seg.options.iter().find(|x| matches!(x, TcpOpt::Ts { .. })),
        ) {
            flow.ts_map.insert(*sv, *lv);
            flow.ts_first.get_or_insert((*sv, *lv));
        }
        let text_actual = script_line(flow, &seg);
        let mismatch = compare(flow, p, &seg, self.cfg.lenient, self.ts_tick_usecs, self.tol_usecs);
        let at = seg.time.as_micros();
        self.trace(|| format!("    {}: stack sent {}", secs(at), text_actual));
        if let Some(why) = mismatch {
            return self.fail(format!(
                "outbound segment mismatch ({why})\n    expected: {} s {}\n    actual:   {} s {}",
                times.map_or_else(|| "*".to_string(), |(s, _)| secs(s)),
                expected_line(p),
                secs(at),
                text_actual
            ));
        }
        if let Some((lo, hi, start, tol)) = window {
            if at < lo || at > hi {
                return self.fail(format!(
                    "timing error: expected `{}` at {} s (tolerance {} s) but the stack sent it at {} s",
                    expected_line(p),
                    secs(start),
                    secs(tol),
                    secs(at)
                ));
            }
        }
        Ok(())
    }

    /// packetdrill's aggregation: when the script expects more payload than one segment
    /// carried, consecutive segments that continue it (same flags, ACK and window; equal-sized
    /// but for the last) are merged, as a TSO burst would be. `--strict_segments` turns it off.
    pub(super) fn aggregate(&mut self, first: OutSeg, p: &Packet, limit: Instant) -> R<OutSeg> {
        let want = p.len as usize;
        let mut seg = first;
        let piece = seg.payload.len();
        while !self.strict_segments && piece > 0 && seg.payload.len() < want {
            let Some(next) = self.next_sut_segment(limit)? else { break };
            let fits = next.seq == seg.seq.wrapping_add(seg.payload.len() as u32)
                && next.ack == seg.ack
                && next.window == seg.window
                && (next.flags.syn, next.flags.rst, next.flags.ack) == (seg.flags.syn, seg.flags.rst, seg.flags.ack)
                && !seg.flags.fin
                && (seg.payload.len() % piece == 0)
                && (next.payload.len() == piece || seg.payload.len() + next.payload.len() == want)
                && seg.payload.len() + next.payload.len() <= want
                && !next.payload.is_empty();
            if !fits {
                self.k.out.push_front(next);
                break;
            }
            seg.payload.extend_from_slice(&next.payload);
            // packetdrill's aggregate_packets: the headers (PSH and FIN) of the last.
            seg.flags.psh = next.flags.psh;
            seg.flags.fin = next.flags.fin;
        }
        Ok(seg)
    }
}

/// One option of a segment we sent, mapped into script space. Our SACK blocks describe the
/// peer's sequence space, which scripts write as the stack sees it (no mapping); TS val is
/// mapped from the first one the script showed (packetdrill's `map_outbound_live_packet`).
pub(super) fn script_opt(flow: &Flow, o: &TcpOpt) -> TcpOpt {
    match o {
        TcpOpt::Ts { val, ecr } => match flow.ts_first {
            Some((s, l)) => TcpOpt::Ts { val: val.wrapping_sub(l).wrapping_add(s), ecr: *ecr },
            None => o.clone(),
        },
        other => other.clone(),
    }
}

/// The first difference between the segment the script expects and the one the stack sent,
/// in packetdrill's order of checks (verify_tcp, then options, then payload).
pub(in crate::pkt) fn compare(
    flow: &Flow,
    p: &Packet,
    seg: &OutSeg,
    lenient: bool,
    ts_tick: u64,
    tol_usecs: u64,
) -> Option<String> {
    let e = p.flags;
    let a = seg.flags;
    let flag_pairs = [
        ("SYN", e.syn, a.syn),
        ("RST", e.rst, a.rst),
        ("ACK", e.ack, a.ack),
        ("FIN", e.fin, a.fin),
        ("PSH", e.psh, a.psh),
        ("URG", e.urg, a.urg),
        ("ECE", e.ece, a.ece),
        ("CWR", e.cwr, a.cwr),
        ("AE", e.ae, a.ae),
    ];
    for (name, want, got) in flag_pairs {
        if want != got {
            return Some(format!(
                "flags: {name} {} (expected {}, actual {})",
                if got { "set" } else { "not set" },
                e,
                a
            ));
        }
    }
    let seq = flow.local_to_script(seg.seq);
    if seq != p.seq {
        return Some(format!("sequence number: expected {}, actual {seq}", p.seq));
    }
    let want_ack = p.ack.unwrap_or(0);
    if seg.ack != want_ack && (e.ack || seg.ack != 0 || p.ack.is_some()) {
        return Some(format!("acknowledgment number: expected {want_ack}, actual {}", seg.ack));
    }
    if let Some(w) = p.win {
        if !lenient && w != seg.window {
            return Some(format!("window: expected {w}, actual {}", seg.window));
        }
    }
    if let Some(u) = p.urg {
        if u != seg.urgent {
            return Some(format!("urgent pointer: expected {u}, actual {}", seg.urgent));
        }
    }
    if seg.payload.len() != p.len as usize {
        return Some(format!("payload: expected {} bytes, actual {}", p.len, seg.payload.len()));
    }
    // The ECN codepoint, when the line gives one (xtcp sends only ECT(0) or Not-ECT).
    if let Some(want) = p.ecn {
        let ok = match want {
            IpEcn::NotEct => !seg.ect,
            IpEcn::Ect0 | IpEcn::Ect01 => seg.ect,
            IpEcn::Ect1 | IpEcn::Ce => false,
        };
        if !ok {
            return Some(format!(
                "ECN codepoint: expected {want:?}, actual {}",
                if seg.ect { "ECT(0)" } else { "Not-ECT" }
            ));
        }
    }
    if let Some(opts) = &p.options {
        if let Some(why) = compare_options(flow, opts, &seg.options, lenient, ts_tick, tol_usecs) {
            return Some(why);
        }
    }
    // The payload must be the bytes the application wrote at that stream offset (checks
    // retransmissions); only when our ISN is known, so offsets mean something.
    if let Some((sisn, _)) = flow.local_isn {
        let first = u64::from(p.seq.wrapping_sub(sisn.wrapping_add(1)).wrapping_add(u32::from(e.syn)));
        if let Some(i) = seg.payload.iter().enumerate().position(|(i, &b)| b != pattern_byte(first + i as u64)) {
            return Some(format!(
                "payload bytes: byte {i} is not what the application wrote at stream offset {}",
                first + i as u64
            ));
        }
    }
    None
}

pub(super) fn opt_kind(o: &TcpOpt) -> u8 {
    match o {
        TcpOpt::Eol => 0,
        TcpOpt::Nop => 1,
        TcpOpt::Mss(_) => 2,
        TcpOpt::WScale(_) => 3,
        TcpOpt::SackOk => 4,
        TcpOpt::Sack(_) => 5,
        TcpOpt::Ts { .. } => 8,
        TcpOpt::Unknown(k) => *k,
    }
}

/// One option's value check (kinds already match). TS val is checked only with
/// `--tcp_ts_tick_usecs` (packetdrill's default leaves it unchecked); TS ecr always.
pub(super) fn option_value_mismatch(
    flow: &Flow,
    want: &TcpOpt,
    got: &TcpOpt,
    ts_tick: u64,
    tol_usecs: u64,
) -> Option<String> {
    match (want, got) {
        (TcpOpt::Ts { val: wv, ecr: we }, TcpOpt::Ts { val: gv, ecr: ge }) => {
            if we != ge {
                return Some(format!("TS ecr: expected {we}, actual {ge}"));
            }
            if ts_tick > 0 {
                if let Some((s, l)) = flow.ts_first {
                    let mapped = gv.wrapping_sub(l).wrapping_add(s);
                    let off = u64::from(mapped.wrapping_sub(*wv).min(wv.wrapping_sub(mapped)));
                    if off.saturating_mul(ts_tick) > tol_usecs {
                        return Some(format!("TS val: expected {wv}, actual {mapped}"));
                    }
                }
            }
            None
        }
        _ if want == got => None,
        _ => Some(format!("option value: expected {want}, actual {got}")),
    }
}

pub(super) fn compare_options(
    flow: &Flow,
    want: &[TcpOpt],
    got: &[TcpOpt],
    lenient: bool,
    ts_tick: u64,
    tol_usecs: u64,
) -> Option<String> {
    if lenient {
        // Lenient: the same options, in any order, padding aside.
        let mut w: Vec<&TcpOpt> = want.iter().filter(|o| !matches!(o, TcpOpt::Nop | TcpOpt::Eol)).collect();
        let mut g: Vec<&TcpOpt> = got.iter().filter(|o| !matches!(o, TcpOpt::Nop | TcpOpt::Eol)).collect();
        w.sort_by_key(|o| opt_kind(o));
        g.sort_by_key(|o| opt_kind(o));
        let kinds = |v: &[&TcpOpt]| v.iter().map(|o| opt_kind(o)).collect::<Vec<_>>();
        if kinds(&w) != kinds(&g) {
            return Some(format!("options: expected {}, actual {}", options_text(want), options_text(got)));
        }
        // The window scale shift is sized from the receive buffer, like the window itself:
        // lenient mode ignores both.
        return w
            .iter()
            .zip(&g)
            .filter(|(a, _)| !matches!(a, TcpOpt::WScale(_)))
            .find_map(|(a, b)| option_value_mismatch(flow, a, b, ts_tick, tol_usecs));
    }
    if want.len() != got.len() || want.iter().zip(got).any(|(a, b)| opt_kind(a) != opt_kind(b)) {
        return Some(format!("options: expected {}, actual {}", options_text(want), options_text(got)));
    }
    want.iter().zip(got).find_map(|(a, b)| option_value_mismatch(flow, a, b, ts_tick, tol_usecs))
}

/// Build an inbound segment's bytes from a script line: sequence numbers, SACK blocks and TS
/// ecr mapped to live values (packetdrill's `map_inbound_packet`), options in the script's
/// order, payload from the pattern, checksum computed.
pub(in crate::pkt) fn inbound_bytes(flow: &Flow, p: &Packet, ips: (IpAddr, IpAddr)) -> Result<Vec<u8>, String> {
    let mut opts = Vec::new();
    for o in p.options.as_deref().unwrap_or(&[]) {
        match o {
            TcpOpt::Eol => opts.push(0),
            TcpOpt::Nop => opts.push(1),
            TcpOpt::Mss(v) => {
                opts.extend_from_slice(&[2, 4]);
                opts.extend_from_slice(&v.to_be_bytes());
            }
            TcpOpt::WScale(v) => opts.extend_from_slice(&[3, 3, *v]),
            TcpOpt::SackOk => opts.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                opts.extend_from_slice(&[5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    opts.extend_from_slice(&flow.local_to_live(*l).to_be_bytes());
                    opts.extend_from_slice(&flow.local_to_live(*r).to_be_bytes());
                }
            }
            TcpOpt::Ts { val, ecr } => {
                let live_ecr = if p.flags.ack {
                    match (flow.ts_map.get(ecr), flow.ts_first) {
                        (Some(l), _) => *l,
                        _ if *ecr == 0 => 0,
                        _ => {
                            return Err(format!(
                                "unable to infer the live TS ecr for script ecr {ecr}: no outbound segment the script \
                                 expected carried TS val {ecr}"
                            ))
                        }
                    }
                } else {
                    *ecr
                };
                opts.extend_from_slice(&[8, 10]);
                opts.extend_from_slice(&val.to_be_bytes());
                opts.extend_from_slice(&live_ecr.to_be_bytes());
            }
            TcpOpt::Unknown(k) => return Err(format!("cannot send option kind {k}")),
        }
    }
    if opts.len() % 4 != 0 {
        return Err(format!(
            "TCP options are not padded to a multiple of 4 bytes ({} bytes); add nop or eol as the script's peer would",
            opts.len()
        ));
    }
    if opts.len() > 40 {
        return Err(format!("TCP options take {} bytes; at most 40 fit in a header", opts.len()));
    }
    let hl = 20 + opts.len();
    let mut b = vec![0u8; hl + p.len as usize];
    b[0..2].copy_from_slice(&flow.remote_port.to_be_bytes());
    b[2..4].copy_from_slice(&flow.local_port.to_be_bytes());
    b[4..8].copy_from_slice(&p.seq.to_be_bytes());
    let ack = match p.ack {
        Some(a) if p.flags.ack => flow.local_to_live(a),
        Some(a) => a,
        None => 0,
    };
    b[8..12].copy_from_slice(&ack.to_be_bytes());
    let f = p.flags;
    let bits: u16 = u16::from(f.fin)
        | u16::from(f.syn) << 1
        | u16::from(f.rst) << 2
        | u16::from(f.psh) << 3
        | u16::from(f.ack) << 4
        | u16::from(f.urg) << 5
        | u16::from(f.ece) << 6
        | u16::from(f.cwr) << 7
        | u16::from(f.ae) << 8;
    let off_flags = ((hl as u16 / 4) << 12) | bits;
    b[12..14].copy_from_slice(&off_flags.to_be_bytes());
    b[14..16].copy_from_slice(&p.win.unwrap_or(0).to_be_bytes());
    b[18..20].copy_from_slice(&p.urg.unwrap_or(0).to_be_bytes());
    b[20..hl].copy_from_slice(&opts);
    // The payload's stream offset: bytes after the peer's SYN (a SYN's own data starts at
    // seq + 1).
    let first_data = p.seq.wrapping_add(u32::from(f.syn));
    let base = flow.remote_isn.map_or(0, |isn| isn.wrapping_add(1));
    pattern_fill(&mut b[hl..], u64::from(first_data.wrapping_sub(base)));
    let len = u16::try_from(b.len()).map_err(|_| "segment too large".to_string())?;
    // From the peer to the stack: RFC 9293 §3.1's pseudo-header, or RFC 8200 §8.1's.
    let ph = checksum::pseudo_header(ips.1, ips.0, 6, len);
    let c = checksum::finish(checksum::combine(&[ph, checksum::sum(&b)]));
    b[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(b)
}
