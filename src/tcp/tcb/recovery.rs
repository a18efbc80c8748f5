//! The sender's side of an arriving ACK (RFC 9293 §3.10.7.4 fifth, and what it says about
//! data in flight): the scoreboard from the cumulative ACK and SACK blocks (RFC 2018, RFC
//! 6675), DSACKs (RFC 2883), RTT samples (RFC 6298), loss detection by RACK (RFC 8985) with
//! SACK or by duplicate ACKs without it (RFC 5681, RFC 6582), fast recovery with PRR (RFC
//! 6937), ECN echoes (RFC 3168), the tail loss probe's outcome (RFC 8985 §7.4), F-RTO (RFC
//! 5682), the undo of spurious reductions, and the timers that follow.

use super::*;
use crate::tcp::cc::{self, AckSample};
use crate::tcp::recovery::{probe_timeout, Delivered, DUP_THRESH};

impl Tcb {
    /// §3.10.7.4, fifth, for ESTABLISHED and the closing states.
    pub(super) fn process_ack(&mut self, now: Instant, seq: SeqNum, ack: SeqNum, seg: &TcpRepr<'_>) {
        let window = (seg.window as u32) << self.snd_wscale;
        let old_wnd = self.snd_wnd;
        // "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK), set SND.WND".
        if self.snd_wl1.lt(seq) || (self.snd_wl1 == seq && self.snd_wl2.le(ack)) {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }
        self.last_ack_rcvd = now;

        let prior_una = self.snd_una;
        let prior_fack = self.sb.high_sacked().map_or(prior_una, |h| h.max(prior_una));
        let prior_dupack_bytes = self.dupack_bytes();
        let prior_in_flight = self.pipe();
        let prior_lost = self.sb.total_lost;
        let mut d = Delivered::default();

        // RFC 2883 §4: a first SACK block below the cumulative ACK, or inside the second
        // block, reports a duplicate (DSACK), not data held beyond a hole.
        let blocks = if self.sack_enabled { seg.options.sack.as_slice() } else { &[] };
        let mut dsack = false;
        if let Some(&(l, r)) = blocks.first() {
            let (l, r) = (SeqNum(l), SeqNum(r));
            let inside_second = blocks.get(1).is_some_and(|&(l2, r2)| SeqNum(l2).le(l) && r.le(SeqNum(r2)));
            if l.lt(r) && (r.le(ack) || inside_second) {
                dsack = true;
                self.on_dsack(l, r, prior_una);
            }
        }
        let mut sacked_news = false;
        for (i, &(l, r)) in blocks.iter().enumerate() {
            if i == 0 && dsack {
                continue;
            }
            let (l, r) = (SeqNum(l), SeqNum(r));
            // RFC 2018 §3 / RFC 6675 §5: blocks must lie in the data sent and not yet
            // cumulatively acknowledged; others are stale or forged and change nothing.
            if !l.lt(r) || r.gt(self.snd_nxt) || r.le(ack) || r.since(l) > 1 << 30 {
                continue;
            }
            let before = d.bytes;
            self.sb.on_sack(l.max(ack), r, prior_fack, self.snd_mss, &mut d);
            sacked_news |= d.bytes > before;
        }
        if self.sb.ignored_blocks != 0 {
            self.stats.rare().sack_blocks_ignored = self.sb.ignored_blocks;
        }

        let una_advanced = self.snd_una.lt(ack);
        let mut dupack = false;
        // The application had found the send buffer full and this ACK made room.
        let mut buffer_limited = false;
        if una_advanced {
            let acked = ack.since(self.snd_una) as usize;
            // Sequence space the SYN or our FIN take is not data in the buffer.
            let syn_part = (self.snd_una == self.iss) as usize;
            let fin_part = matches!(self.our_fin, Some(f) if f.in_range(self.snd_una, ack)) as usize;
            let data_acked = acked.saturating_sub(syn_part + fin_part).min(self.sendq_len());
            self.sendq_discard(data_acked);
            self.sb.on_cumulative_ack(ack, prior_fack, &mut d);
            self.snd_una = ack;
            self.retries = 0;
            if data_acked > 0 && self.send_was_full {
                self.send_was_full = false;
                self.events |= EV_WRITABLE;
                buffer_limited = true;
            }
            if self.sack_enabled {
                self.dupacks = 0;
            } else {
                // Without SACK the duplicates stood for segments delivered beyond the hole;
                // a cumulative ACK covers them now (Linux's tcp_remove_reno_sacks).
                let segs = (acked as u32).div_ceil(self.snd_mss.max(1) as u32);
                self.dupacks = self.dupacks.saturating_sub(segs.saturating_sub(1));
                if !matches!(self.phase, Phase::Recovery { .. }) {
                    self.dupacks = 0;
                }
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
            && window != 0
            && self.snd_una != self.snd_nxt
            && (window == old_wnd || (self.sack_enabled && !seg.options.sack.is_empty()))
        {
            // RFC 5681 §2: a duplicate ACK. The RFC wants the window unchanged, so that window
            // updates do not count; but a receiver whose application reads while a hole is
            // open (Linux) sends duplicates with a growing window. One that carries SACK
            // blocks reports data beyond a hole, not a window update (RFC 6675 §2, "DupAck").
            // With a zero window the "duplicates" answer window probes: not signs of loss.
            self.stats.rare().dup_acks_in += 1;
            self.dupacks = self.dupacks.saturating_add(1);
            dupack = true;
        }
        // RFC 6937's DeliveredData: with SACK, what the scoreboard newly saw delivered;
        // without, one segment per duplicate ACK and the rest of a cumulative ACK.
        let delivered = if self.sack_enabled {
            d.bytes
        } else if dupack {
            self.snd_mss.min(self.flight_size())
        } else {
            // Less what the duplicates already counted (Linux: max(acked − sacked_out, 1)).
            let counted = prior_dupack_bytes.saturating_sub(self.dupack_bytes());
            d.bytes.saturating_sub(counted).max(usize::from(una_advanced))
        };

        self.take_rtt_samples(now, seg, &d, una_advanced && !dsack);

        // Loss detection.
        let lost_before = self.sb.lost_bytes();
        let mut reo_timeout = None;
        if self.sack_enabled {
            self.rack.on_delivered(now, &d);
            if d.reordered_low.is_some() {
                self.note_reordering(&d);
            }
            reo_timeout = self.rack_detect_loss(now);
        } else {
            self.dupack_detect_loss(una_advanced, dupack);
        }
        let newly_lost = self.sb.lost_bytes() > lost_before;

        self.process_tlp_ack(now, ack, una_advanced, dsack, dupack, sacked_news);

        // RFC 3168 §6.1.2: an echo of congestion from the receiver.
        if self.ecn.on && seg.flags.contains(TcpFlags::ECE) {
            self.on_ecn_echo(now);
        }

        self.update_phase(now, seg, &d, una_advanced, dupack, newly_lost, sacked_news);
        self.try_undo_dsack();

        // The delivery rate this ACK shows (draft-cheng-iccrg-delivery-rate-estimation).
        let rate = self.rate.on_ack(now, delivered as u64, d.rate, self.rack.min_rtt());
        // The RTT of the newest segment delivered, sent once (Linux's ca_rtt).
        let rtt = d.last_orig.filter(|_| !d.retrans_delivered).map(|(x, _)| now.saturating_duration_since(x));
        let sample = AckSample {
            now,
            delivered,
            rtt,
            min_rtt: self.rack.min_rtt(),
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            cwnd_limited: self.cwnd_limited(),
            rate,
            total_delivered: self.rate.delivered,
            lost: (self.sb.total_lost - prior_lost) as usize,
            in_flight: self.pipe(),
            prior_in_flight,
            phase: self.cc_phase(),
        };
        if self.cc.model_based() {
            // A model-based controller sets cwnd itself on every ACK, in every phase (as
            // Linux's cong_control modules: no PRR).
            self.cc.on_ack(&sample);
        } else {
            // The window: PRR during a reduction, the controller's growth otherwise.
            match self.phase {
                Phase::Recovery { .. } | Phase::Cwr { .. } => {
                    let pipe = self.pipe();
                    let safe = una_advanced && !newly_lost;
                    if let Some(cwnd) = self.prr.on_ack(delivered, pipe, self.cc.ssthresh(), self.snd_mss, safe) {
                        self.cc.set_cwnd(cwnd);
                    }
                }
                Phase::Open | Phase::Loss { .. } => {
                    // Growth on forward progress only (Linux's tcp_may_raise_cwnd: data
                    // cumulatively acknowledged), by all that was delivered with it.
                    if delivered > 0 && una_advanced {
                        self.cc.on_ack(&sample);
                    }
                }
            }
        }
        self.batch_delivered = self.batch_delivered.saturating_add(delivered);
        if self.snd_una.ge(self.cwnd_use.until) {
            // A new window: what the last one showed about cwnd's use no longer holds.
            self.cwnd_use.limited = false;
            self.cwnd_use.max_flight = self.flight_size();
            self.cwnd_use.until = self.snd_nxt;
        }

        // The peer's window opened: stop probing (RFC 9293 §3.8.6.1). A probe byte it did not
        // take goes again with what follows it, as new data (it was refused for want of room,
        // not lost to congestion; otherwise Nagle would wait for an ACK of a byte the peer
        // dropped). Only the probe byte can be outstanding while probing.
        if self.snd_wnd > 0 {
            if self.probing && self.snd_una.lt(self.snd_nxt) {
                self.sb.truncate(self.snd_una);
                self.snd_nxt = self.snd_una;
            }
            self.probing = false;
            self.persist_deadline = None;
            self.persist_backoff = 0;
        }

        self.rearm_timers(now, una_advanced, reo_timeout);
        if buffer_limited {
            self.maybe_grow_send_buffer();
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

    /// Send-buffer autotuning, as Linux's tcp_should_expand_sndbuf and tcp_sndbuf_expand:
    /// when the application was held back by a full buffer and cwnd has room for more than
    /// the buffer holds (the buffer, not the network, limits the sender), the buffer becomes twice cwnd (at least the
    /// initial window; three times with a model-based controller, Linux's BBR
    /// sndbuf_expand), up to `send_buffer_max`. Twice, so that a window's worth of new data
    /// waits behind the one in flight and recovery (RFC 6675) has data to send past a hole.
    /// The storage at least doubles each time, so a connection grows in a few steps.
    fn maybe_grow_send_buffer(&mut self) {
        let max = self.cfg.send_buffer_max;
        if self.send_limit >= max || self.our_fin.is_some() {
            return;
        }
        // Linux asks after sending what the ACK let out: would cwnd be full once the data
        // queued behind SND.NXT went? Then cwnd, not the buffer, is the limit.
        let unsent = self.sendq_len().saturating_sub(self.snd_nxt.since(self.snd_una) as usize);
        if self.pipe() + unsent >= self.cc.cwnd() {
            return;
        }
        let factor = if self.cc.model_based() { 3 } else { 2 };
        let segs = self.cc.cwnd().max(self.cfg.initial_window * self.snd_mss);
        let want = factor * segs;
        if want <= self.send_limit {
            return;
        }
        let size = want.max(2 * self.send_limit).min(max);
        if !self.tx_external {
            self.send_buf.grow(size);
        }
        self.sb.grow(TcpConfig::scoreboard_entries_for(size));
        self.send_limit = size;
        self.stats.rare().send_buffer_grown += 1;
    }

    /// RFC 6298 §2–3 samples, with Karn's algorithm from the scoreboard: the oldest newly
    /// acknowledged byte sent once (as Linux's seq_rtt; SACKed bytes if nothing was
    /// cumulatively acknowledged). When everything acknowledged had been retransmitted, the
    /// timestamp echo names the copy (RFC 7323 §4.1) and gives the sample instead.
    fn take_rtt_samples(&mut self, now: Instant, seg: &TcpRepr<'_>, d: &Delivered, una_advanced: bool) {
        // Karn (RFC 6298 §3), as Linux applies it (FLAG_RETRANS_DATA_ACKED): an ACK that
        // also acknowledges retransmitted data may have been sent for the retransmission, so
        // none of what it acknowledges is timed by it. (Without this, after a timeout the
        // originals that were received but whose ACKs were lost give samples as long as the
        // timeout itself, and the RTO feeds on them.)
        let clean = !d.retrans_delivered;
        let mut sample =
            d.first_orig_cum.or(d.first_orig_sack).filter(|_| clean).map(|t| now.saturating_duration_since(t));
        // `una_advanced` is false for an ACK carrying a DSACK: a duplicate made the receiver
        // send it, and it echoes the timestamp of whatever last advanced its window, maybe a
        // timeout ago (RFC 7323 §4.3 rule 2 never updates TS.Recent from a duplicate).
        if sample.is_none() && una_advanced && self.ts_enabled {
            if let Some(ts) = seg.options.timestamp {
                let age = self.ts_now(now).wrapping_sub(ts.tsecr);
                if ts.tsecr != 0 && (age as i32) >= 0 {
                    sample = Some(Duration::from_millis(age as u64));
                }
            }
        }
        if let Some(r) = sample {
            self.rtt.sample(r);
        }
        // The newest segment delivered sent once: the path's current RTT (Linux's ca_rtt),
        // for the minimum-RTT filter RACK and CUBIC use.
        if let Some((x, _)) = d.last_orig.filter(|_| clean) {
            self.rack.sample_min_rtt(now, now.saturating_duration_since(x));
        }
    }

    /// Reordering seen: how far, in segments, from the reordered segment to the highest SACK
    /// (Linux's tcp_check_sack_reordering, which raises `tp->reordering` to it, at most 300).
    /// xtcp's loss detection does not use it (RACK's window is in time); `tcp_info` reports it.
    #[cold]
    #[inline(never)]
    fn note_reordering(&mut self, d: &Delivered) {
        let (Some(low), Some(fack)) = (d.reordered_low, self.sb.high_sacked()) else { return };
        self.reord_seen = self.reord_seen.saturating_add(1);
        let mss = self.snd_mss.max(1) as u32;
        let metric = fack.since(low);
        if metric > self.reordering.saturating_mul(mss) {
            self.reordering = metric.div_ceil(mss).min(300);
        }
    }

    /// RFC 8985 §6.2 step 5: mark losses; returns the reordering timeout if some segments are
    /// waiting out the reordering window.
    pub(super) fn rack_detect_loss(&mut self, now: Instant) -> Option<Duration> {
        if self.sb.is_empty() {
            return None; // nothing outstanding, nothing to find lost (the usual ACK of all)
        }
        let (xmit, end) = self.rack.newest()?;
        let in_recovery = matches!(self.phase, Phase::Recovery { .. } | Phase::Loss { .. });
        let sacked_segs = self.sb.sacked_bytes() / self.snd_mss.max(1);
        let reo_wnd = self.rack.reo_wnd(in_recovery, sacked_segs, self.rtt.srtt());
        let (newly, timeout) = self.sb.rack_detect_loss(xmit, end, self.rack.rtt() + reo_wnd, now);
        if newly > 0 {
            self.stats.rare().lost_retransmits = self.sb.lost_retransmits;
        }
        timeout
    }

    /// Recovery without SACK (RFC 5681 §3.2, RFC 6582 §3.2): the third duplicate ACK marks the
    /// first unacknowledged segment lost — unless its ACK does not cover more than `recover`
    /// (duplicates from segments sent before an earlier loss event); in recovery, a partial
    /// ACK marks the next one.
    fn dupack_detect_loss(&mut self, una_advanced: bool, dupack: bool) {
        let beyond_recover = self.recover.is_none_or(|r| self.snd_una.gt(r));
        match self.phase {
            Phase::Open | Phase::Cwr { .. } if dupack && self.dupacks == DUP_THRESH as u32 && beyond_recover => {
                self.sb.mark_lost_range(self.snd_una, self.snd_mss);
            }
            Phase::Recovery { high, .. } if una_advanced && self.snd_una.lt(high) => {
                // RFC 6582 §3.2 step 5: a partial ACK; the segment at the new SND.UNA is lost.
                self.sb.mark_lost_range(self.snd_una, self.snd_mss);
            }
            _ => {}
        }
    }

    /// Phase changes an ACK causes: entering fast recovery, leaving it or a reduction or RTO
    /// recovery, and F-RTO's verdict on a timeout.
    #[allow(clippy::too_many_arguments)]
    fn update_phase(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        d: &Delivered,
        una_advanced: bool,
        dupack: bool,
        newly_lost: bool,
        sacked_news: bool,
    ) {
        let tsecr = seg.options.timestamp.map(|t| t.tsecr);
        match self.phase {
            Phase::Open => {
                if newly_lost {
                    self.enter_recovery(now);
                }
            }
            Phase::Cwr { high } => {
                if newly_lost {
                    // A loss during an ECN reduction: the reduction becomes a recovery
                    // (cwnd already going down; RFC 3168 §6.1.2 reduces once per window).
                    self.phase = Phase::Recovery { high: self.snd_nxt, rescued: false };
                    self.stats.rare().recoveries += 1;
                } else if self.snd_una.ge(high) {
                    self.cc.on_reduction_end();
                    self.phase = Phase::Open;
                }
            }
            Phase::Recovery { high, .. } => {
                if self.snd_una.ge(high) {
                    // RFC 6675 §5 step (C) / RFC 6582 §3.2 step 3: a full ACK ends recovery;
                    // RFC 3522 (Eifel): if the echo predates the first retransmission, the
                    // originals arrived and the reduction was for nothing.
                    if !self.try_undo(tsecr, false) {
                        self.cc.on_reduction_end();
                        self.phase = Phase::Open;
                    }
                    self.rack.on_recovery_exit();
                    if !self.sack_enabled {
                        self.dupacks = 0;
                    }
                }
            }
            Phase::Loss { high } => {
                let recovered = self.snd_una.ge(high);
                if una_advanced && self.try_undo(tsecr, true) {
                    return;
                }
                if self.frto {
                    // RFC 5682 §3.1 step 3b, as Linux reads it: the timeout was spurious if
                    // data never retransmitted, sent before it, was (s)acknowledged now.
                    if d.first_orig_end.is_some_and(|e| e.le(high)) && self.undo_now(true) {
                        self.stats.rare().spurious_rtos += 1;
                        return;
                    }
                    if self.snd_nxt.gt(high) {
                        // Step 3a: after new data went out (2b), a duplicate or SACK says the
                        // loss was real: conventional recovery from here.
                        if sacked_news || dupack {
                            self.frto = false;
                        }
                    } else if una_advanced && !recovered {
                        // Step 2b: the first ACK after the timeout advanced the window: send
                        // new data rather than retransmit, if there is any and the window
                        // takes it; otherwise carry on conventionally.
                        self.phase = Phase::Loss { high: self.snd_nxt };
                        if self.data_end().gt(self.snd_nxt) && (self.snd_una + self.snd_wnd).gt(self.snd_nxt) {
                            self.frto_send_new = true;
                            return;
                        }
                        self.frto = false;
                    }
                }
                if recovered {
                    // The undo record stays: a DSACK may still show the retransmissions
                    // unneeded (Linux keeps its undo_marker the same way).
                    self.phase = Phase::Open;
                    self.frto = false;
                    self.rack.on_recovery_exit();
                }
            }
        }
    }

    /// RFC 6675 §5 (entering loss recovery) with RFC 6937 for the window, once a loss is
    /// detected outside recovery.
    pub(super) fn enter_recovery(&mut self, now: Instant) {
        self.stats.rare().recoveries += 1;
        self.start_undo();
        let flight = self.flight_size();
        self.cc.on_congestion(now, flight);
        // ACKs of the same burst that came before this one gave the sender no chance to send
        // (the stack transmits after the burst). Processed one by one, as Linux processes
        // them, each would have let new data out under the window from before; PRR owes
        // the sender those segments now, after the retransmission — where, delivered, they
        // also show RACK whether it arrived. Only as much as there is new data for: an
        // opportunity with nothing to send was not one.
        let unsent = self.data_end().since(self.snd_nxt) as usize;
        self.prr = Prr::with_owed(flight, self.batch_delivered.min(unsent));
        self.phase = Phase::Recovery { high: self.snd_nxt, rescued: false };
        // RFC 6582 §3.2 step 2 (also kept with SACK, where it is harmless).
        self.recover = Some(self.snd_nxt);
        // RFC 8985 §7.4: a probe outstanding is moot once recovery started.
        self.tlp = Tlp::default();
        self.probe_deadline = None;
        // RFC 3168 §6.1.2 as Linux applies it: any reduction is announced with CWR.
        if self.ecn.on {
            self.ecn.send_cwr = true;
        }
    }

    /// RFC 3168 §6.1.2: reduce once per window of data for an ECN echo.
    fn on_ecn_echo(&mut self, now: Instant) {
        if self.phase != Phase::Open {
            // Already reducing (recovery, RTO recovery, or an echo within this window).
            return;
        }
        self.stats.rare().ecn_reductions += 1;
        let flight = self.flight_size();
        self.cc.on_congestion(now, flight);
        self.prr = Prr::new(flight);
        self.phase = Phase::Cwr { high: self.snd_nxt };
        self.ecn.send_cwr = true;
        // Not undone: an ECN mark is an explicit signal, never spurious (Linux clears its
        // undo marker on entering CWR).
        self.undo = None;
    }

    /// RFC 8985 §7.4.2: what the ACK says about the last tail loss probe.
    fn process_tlp_ack(
        &mut self,
        now: Instant,
        ack: SeqNum,
        una_advanced: bool,
        dsack: bool,
        dupack: bool,
        sacked_news: bool,
    ) {
        let Some(end) = self.tlp.end_seq else { return };
        if ack.lt(end) {
            return;
        }
        if !self.tlp.is_retrans {
            // A probe of new data was acknowledged: nothing to learn about loss.
            self.tlp = Tlp::default();
        } else if dsack {
            // The probe and the original both arrived: no loss.
            self.tlp = Tlp::default();
        } else if ack.gt(end) {
            // The probe repaired a loss (the ACK covers data sent after it was, and no DSACK
            // says the original arrived too): reduce the window once, as Linux does (an
            // immediate CWR episode).
            self.tlp = Tlp::default();
            if self.phase == Phase::Open {
                self.stats.rare().tlp_repairs += 1;
                self.cc.on_congestion(now, self.flight_size());
                self.cc.on_reduction_end();
                if self.ecn.on {
                    self.ecn.send_cwr = true;
                }
            }
        } else if !una_advanced && dupack && !sacked_news {
            // A pure duplicate for exactly the probe's end: original and probe arrived.
            self.tlp = Tlp::default();
        }
    }

    /// A DSACK for `[l, r)` (RFC 2883): a retransmission was unnecessary, or the network
    /// duplicated a segment. Feeds RACK's reordering window and the undo count.
    fn on_dsack(&mut self, l: SeqNum, r: SeqNum, prior_una: SeqNum) {
        self.stats.rare().dsacks_in += 1;
        self.rack.on_dsack(self.snd_una, self.snd_nxt);
        let _ = prior_una;
        if let Some(u) = self.undo.as_mut() {
            // Linux (tcp_check_dsack, tcp_sacktag_one): a DSACK for data of this episode
            // (above its marker) answers one of its retransmissions.
            if r.gt(u.marker) {
                let segs = (r.since(l) as usize).div_ceil(self.snd_mss.max(1)) as u32;
                u.retrans = u.retrans.saturating_sub(segs.max(1));
            }
        }
    }

    /// Remember how to undo the reduction about to happen.
    pub(super) fn start_undo(&mut self) {
        let u = Undo { marker: self.snd_una, retrans: 0, prior: self.cc, first_rtx_ts: None };
        match self.undo.as_mut() {
            Some(b) => **b = u,
            None => self.undo = Some(Box::new(u)),
        }
    }

    /// RFC 3522 / Linux's tcp_may_undo: every retransmission of the episode was DSACKed, or
    /// the ACK echoes a timestamp from before the first of them.
    fn may_undo(&self, tsecr: Option<u32>) -> bool {
        let Some(u) = &self.undo else { return false };
        if u.retrans == 0 && u.first_rtx_ts.is_some() {
            return true;
        }
        match (u.first_rtx_ts, tsecr) {
            (Some(first), Some(e)) if self.ts_enabled && e != 0 => (e.wrapping_sub(first) as i32) < 0,
            _ => false,
        }
    }

    /// Undo if [`Tcb::may_undo`]; `unmark` also forgets the loss marks (after a timeout).
    fn try_undo(&mut self, tsecr: Option<u32>, unmark: bool) -> bool {
        self.may_undo(tsecr) && self.undo_now(unmark)
    }

    /// Every retransmission of the episode was shown unnecessary by DSACKs: undo now, in
    /// recovery or after it — the DSACK for a spurious retransmission usually arrives after
    /// the original's ACK ended the recovery (Linux's tcp_try_undo_dsack, in Recovery, Open
    /// and Disorder).
    fn try_undo_dsack(&mut self) {
        let done = matches!(&self.undo, Some(u) if u.retrans == 0 && u.first_rtx_ts.is_some());
        if done && matches!(self.phase, Phase::Recovery { .. } | Phase::Open) {
            self.undo_now(false);
        }
    }

    /// Restore the window from before the reduction (Linux's tcp_undo_cwnd_reduction: cwnd
    /// and ssthresh back to at least what they were; RFC 9438 §4.9 for CUBIC's state).
    fn undo_now(&mut self, unmark: bool) -> bool {
        let Some(u) = self.undo.take() else { return false };
        if self.cc.model_based() {
            // The model stays; only the controller's view of the episode is undone.
            self.cc.on_undo();
        } else {
            let cwnd = self.cc.cwnd();
            self.cc = u.prior;
            self.cc.set_cwnd(cwnd.max(u.prior.cwnd()));
        }
        if unmark {
            self.sb.unmark_lost();
        }
        self.phase = Phase::Open;
        self.frto = false;
        self.frto_send_new = false;
        self.stats.rare().undos += 1;
        true
    }

    /// The phase as the controller sees it.
    fn cc_phase(&self) -> cc::Phase {
        match self.phase {
            Phase::Open => cc::Phase::Open,
            Phase::Cwr { .. } => cc::Phase::Cwr,
            Phase::Recovery { .. } => cc::Phase::Recovery,
            Phase::Loss { .. } => cc::Phase::Loss,
        }
    }

    /// Whether cwnd was the limit lately (RFC 7661 §4.3, Linux's tcp_is_cwnd_limited): only
    /// then may it grow; in slow start, it may until twice what was in flight.
    pub(super) fn cwnd_limited(&self) -> bool {
        self.cwnd_use.limited || (self.cc.in_slow_start() && self.cc.cwnd() < 2 * self.cwnd_use.max_flight)
    }

    /// Record a transmission's view of cwnd (Linux's tcp_cwnd_validate).
    pub(super) fn note_cwnd_use(&mut self, limited: bool) {
        let flight = self.flight_size();
        let u = &mut self.cwnd_use;
        if self.snd_una.ge(u.until) || limited || (!u.limited && flight > u.max_flight) {
            u.limited = limited;
            u.max_flight = flight;
            u.until = self.snd_nxt;
        }
    }

    /// Whether a tail loss probe may be scheduled (RFC 8985 §7.2, Linux's conditions): SACK,
    /// data in flight, nothing being recovered, no probe outstanding.
    pub(super) fn tlp_allowed(&self) -> bool {
        self.cfg.tail_loss_probe
            && self.sack_enabled
            && self.state.is_synchronized()
            && self.snd_una != self.snd_nxt
            && matches!(self.phase, Phase::Open | Phase::Cwr { .. })
            && self.tlp.end_seq.is_none()
    }

    /// The timers after an ACK: RFC 6298 §5.2–5.3 for the RTO (stopped when everything is
    /// acknowledged, restarted when the ACK acknowledged new data), RACK's reordering timer,
    /// and the probe timer in place of a later RTO.
    fn rearm_timers(&mut self, now: Instant, una_advanced: bool, reo: Option<Duration>) {
        if self.snd_una == self.snd_nxt {
            self.rtx_deadline = None;
            self.probe_deadline = None;
            self.reorder_deadline = None;
            return;
        }
        if self.probing {
            // A zero-window probe is outstanding: the persist timer paces the probes.
            self.rtx_deadline = None;
            self.probe_deadline = None;
            self.reorder_deadline = None;
            return;
        }
        if una_advanced || self.rtx_deadline.is_none() {
            self.arm_rtx(now);
        }
        let rto_at = self.rtx_deadline.unwrap_or(now + self.rtt.rto());
        self.reorder_deadline = reo.map(|r| (now + r).min(rto_at));
        // RFC 8985 §7.2: the probe timer restarts "upon receiving an ACK that cumulatively
        // acknowledges new data" (Linux: FLAG_SET_XMIT_TIMER comes with FLAG_ACKED); a
        // duplicate ACK or a SACK leaves it, so that a lost tail is probed two RTTs after it
        // was sent, however many ACKs for earlier data trickle in.
        if una_advanced || !self.tlp_allowed() {
            self.schedule_probe(now);
        } else if let Some(p) = self.probe_deadline {
            self.probe_deadline = Some(p.min(rto_at));
        }
    }

    /// RFC 8985 §7.2: arm the probe timer (when a probe is allowed), never later than the RTO.
    pub(super) fn schedule_probe(&mut self, now: Instant) {
        if !self.tlp_allowed() {
            self.probe_deadline = None;
            return;
        }
        let rto_at = self.rtx_deadline.unwrap_or(now + self.rtt.rto());
        let one_segment = self.flight_size() <= self.snd_mss;
        let pto = probe_timeout(self.rtt.srtt(), one_segment, self.cfg.min_rto, rto_at.saturating_duration_since(now));
        self.probe_deadline = Some(now + pto);
    }
}
