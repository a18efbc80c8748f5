//! Packet conversations for the closes: four-way, simultaneous, half-close, TIME-WAIT, resets.

use super::*;

/// RFC 9293 §3.6 figure 12: we close first. FIN-WAIT-1 → (ACK) FIN-WAIT-2 → (FIN)
/// TIME-WAIT → 2·MSL (60 s) → CLOSED.
#[test]
fn four_way_close_active_side() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    assert_eq!(t.tcb.state(), State::FinWait1);
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    t.input(seg(F::ACK).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::FinWait2);
    t.at(1000);
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    assert_eq!(t.tcb.state(), State::TimeWait);
    t.at(60_999);
    assert_eq!(t.tcb.state(), State::TimeWait);
    t.at(61_000);
    assert_eq!(t.tcb.state(), State::Closed);
    assert_eq!(t.events(), vec![Event::Readable, Event::PeerClosed, Event::Closed(CloseReason::Normal)]);
    assert_eq!(t.tcb.poll_timeout(), None, "no timer left behind");
}

/// RFC 9293 §3.6: the peer closes first. CLOSE-WAIT → (our close) LAST-ACK → (ACK) CLOSED.
#[test]
fn four_way_close_passive_side() {
    let mut t = T::established(cfg());
    t.input(seg(F::FIN | F::ACK));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 2);
    assert_eq!(t.tcb.state(), State::CloseWait);
    assert_eq!(t.tcb.recv(&mut [0; 8]), Ok(0), "end of stream");
    t.tcb.close().unwrap();
    assert_eq!(t.tcb.state(), State::LastAck);
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 2);
    t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::Closed);
    assert!(t.events().contains(&Event::Closed(CloseReason::Normal)));
}

/// The three-segment close: the application closes before we ACK the peer's FIN, so our
/// FIN rides on that ACK.
#[test]
fn three_segment_close_fin_rides_on_the_ack() {
    let mut t = T::established(cfg());
    t.input(seg(F::FIN | F::ACK));
    t.tcb.close().unwrap();
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 2);
    t.none();
    t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::Closed);
}

/// RFC 9293 §3.10.7.4 eighth: FIN-WAIT-1 + a FIN that also ACKs our FIN → TIME-WAIT
/// directly.
#[test]
fn fin_wait_1_fin_ack_goes_straight_to_time_wait() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.output().unwrap();
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::TimeWait);
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
}

/// RFC 9293 §3.6 figure 13, simultaneous close: FIN-WAIT-1 + FIN → CLOSING; the ACK of
/// our FIN → TIME-WAIT.
#[test]
fn simultaneous_close_through_closing() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    t.input(seg(F::FIN | F::ACK).ack(ISS + 1));
    assert_eq!(t.tcb.state(), State::Closing);
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::TimeWait);
}

/// Half-close, our side: after shutdown() we keep reading until the peer's FIN.
#[test]
fn half_close_we_stop_writing_and_keep_reading() {
    let mut t = T::established(cfg());
    t.tcb.shutdown().unwrap();
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    t.input(seg(F::ACK).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::FinWait2);
    assert_eq!(t.tcb.send(b"x"), Err(TcpError::WriteClosed));
    t.input(seg(F::ACK | F::PSH).ack(ISS + 2).data(b"still flowing"));
    let mut buf = [0u8; 32];
    assert_eq!(t.tcb.recv(&mut buf), Ok(13));
    t.at(100);
    t.expect(F::ACK, ISS + 2, PEER_ISS + 14);
    // FIN-WAIT-2 does not time out after a shutdown (the application still reads).
    t.at(200_000);
    assert_eq!(t.tcb.state(), State::FinWait2);
    t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 14).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::TimeWait);
    assert_eq!(t.tcb.recv(&mut buf), Ok(0));
}

/// Half-close, the peer's side: after its FIN we keep writing (CLOSE-WAIT).
#[test]
fn half_close_peer_stops_writing_we_keep_writing() {
    let mut t = T::established(cfg());
    t.input(seg(F::FIN | F::ACK));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 2);
    assert_eq!(t.tcb.send(b"reply"), Ok(5));
    let o = t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 2);
    assert_eq!(o.payload, b"reply");
    t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 6));
    assert_eq!(t.tcb.state(), State::CloseWait);
}

/// RFC 9293 §3.10.7.4: in TIME-WAIT a retransmitted FIN is ACKed again and restarts the
/// 2·MSL timer.
#[test]
fn time_wait_reacks_fin_and_restarts_timer() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.output().unwrap();
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.output().unwrap();
    t.at(30_000);
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    t.at(60_000);
    assert_eq!(t.tcb.state(), State::TimeWait, "restarted at 30 s");
    t.at(90_000);
    assert_eq!(t.tcb.state(), State::Closed);
}

/// TIME-WAIT keeps no buffers: with nothing left to read their storage can go (the stack
/// pools it), and the TCB still does its job (re-ACKs a retransmitted FIN) without them.
/// Unread data keeps them.
#[test]
fn time_wait_gives_up_its_buffers_unless_data_is_unread() {
    let mut t = T::established(cfg());
    assert!(t.tcb.release_buffers().is_none(), "not in TIME-WAIT");
    t.tcb.close().unwrap();
    t.output().unwrap();
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.output().unwrap();
    let b = t.tcb.release_buffers().expect("idle TIME-WAIT");
    assert_eq!((b.send.len(), b.recv.len()), (65535, 65535));
    assert!(t.tcb.release_buffers().is_none(), "once");
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    t.at(60_000);
    assert_eq!(t.tcb.state(), State::Closed);

    // Data received and not read before the connection reached TIME-WAIT.
    let mut t = T::established(cfg());
    t.input(seg(F::ACK | F::PSH).data(b"unread"));
    t.tcb.shutdown().unwrap();
    t.outputs();
    t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 7).ack(ISS + 2));
    t.outputs();
    assert_eq!(t.tcb.state(), State::TimeWait);
    assert!(t.tcb.release_buffers().is_none(), "six bytes still to read");
    let mut out = [0u8; 16];
    assert_eq!(t.tcb.recv(&mut out).unwrap(), 6);
    assert!(t.tcb.release_buffers().is_some());
}

/// RFC 9293 §3.10.7.4: other segments in TIME-WAIT are not taken (old data is ACKed and
/// dropped).
#[test]
fn time_wait_drops_old_data() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.output().unwrap();
    t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
    t.output().unwrap();
    t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(ISS + 2).data(b"old"));
    t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    assert_eq!(t.tcb.recv_available(), 0);
}

/// Linux `tcp_fin_timeout`: after close() (not shutdown), FIN-WAIT-2 ends after 60 s.
#[test]
fn fin_wait_2_times_out_after_close() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.output().unwrap();
    t.input(seg(F::ACK).ack(ISS + 2));
    assert_eq!(t.tcb.state(), State::FinWait2);
    t.at(60_000);
    assert_eq!(t.tcb.state(), State::Closed);
}

/// RFC 9293 §3.10.5: abort sends <SEQ=SND.NXT><CTL=RST>.
#[test]
fn abort_sends_reset() {
    let mut t = T::established(cfg());
    t.tcb.abort();
    t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 1);
    assert_eq!(t.events(), vec![Event::Closed(CloseReason::Aborted)]);
}

/// RFC 2525 §2.17: closing with unread data resets instead of a FIN.
#[test]
fn close_with_unread_data_resets() {
    let mut t = T::established(cfg());
    t.input(seg(F::ACK).data(b"unread"));
    t.tcb.close().unwrap();
    t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 7);
}

/// Data that arrives after close() (not shutdown) is answered with a reset: nobody will
/// read it (RFC 2525 §2.17, as Linux does).
#[test]
fn data_after_close_is_reset() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    t.input(seg(F::ACK | F::PSH).ack(ISS + 2).data(b"too late"));
    // The reset the segment calls for (§3.10.7.1): <SEQ=SEG.ACK><CTL=RST>, as Linux sends.
    t.expect(F::RST, ISS + 2, 0);
    assert_eq!(t.tcb.state(), State::Closed);
}

/// The FIN is retransmitted like data when its ACK is lost.
#[test]
fn fin_is_retransmitted() {
    let mut t = T::established(cfg());
    t.tcb.close().unwrap();
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    let rto = t.tcb.rto().as_millis() as u64;
    t.at(rto);
    t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
}

/// Data then FIN out of order: the FIN is held until the gap fills.
#[test]
fn fin_ahead_of_a_gap_waits_for_the_data() {
    let mut t = T::established(cfg());
    t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 4).data(b"def"));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
    assert_eq!(t.tcb.state(), State::Established);
    t.input(seg(F::ACK).data(b"abc"));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 8);
    assert_eq!(t.tcb.state(), State::CloseWait);
    let mut buf = [0u8; 8];
    assert_eq!(t.tcb.recv(&mut buf), Ok(6));
    assert_eq!(&buf[..6], b"abcdef");
    assert_eq!(t.tcb.recv(&mut buf), Ok(0));
}
