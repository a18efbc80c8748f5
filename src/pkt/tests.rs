//! The interpreter's own tests: the parser over the whole dialect, the remapping between
//! script and live values, the timing tolerance, and what failures say. (The scripts in
//! tests/pkt/ test the TCB; these test the tool.)

use super::net::OutSeg;

/// A live ISN near the top of the sequence space, so that the remapping tests also check
/// wrap-around.
const LIVE_ISN: u32 = 0xFFFF_FC00;
use super::parse::*;
use super::preprocess::preprocess;
use super::run::{compare, inbound_bytes, script_line, Flow};
use super::*;
use crate::time::Instant;
use crate::wire::{RxChecksum, TcpFlags, TcpPacket, TcpRepr};
use proptest::prelude::*;

fn run(src: &str) -> Report {
    run_script(src, &RunConfig::default())
}

fn run_lenient(src: &str) -> Report {
    run_script(src, &RunConfig { lenient: true, ..RunConfig::default() })
}

#[track_caller]
fn assert_pass(src: &str) {
    let r = run(src);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary());
}

/// The failure, which must be on `line`.
#[track_caller]
fn failure(src: &str, line: usize) -> String {
    match run(src).outcome {
        Outcome::Fail(f) => {
            assert_eq!(f.line, line, "failed on the wrong line: {f}");
            f.message
        }
        other => panic!("expected a failure on line {line}, got {other:?}"),
    }
}

/// A passive open with MSS only (lines 1-7); RTT 100 ms, so RTO 300 ms.
const PASSIVE: &str = "\
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 1 win 65535 <mss 1460>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
";

fn with_passive(rest: &str) -> String {
    format!("{PASSIVE}{rest}")
}

fn one_event(src: &str) -> Event {
    let s = parse(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.events.len(), 1, "{s:?}");
    s.events.into_iter().next().unwrap()
}

fn packet(src: &str) -> Packet {
    match one_event(src).action {
        Action::Packet(p) => p,
        other => panic!("not a packet: {other:?}"),
    }
}

fn syscall(src: &str) -> Syscall {
    match one_event(src).action {
        Action::Syscall(s) => s,
        other => panic!("not a system call: {other:?}"),
    }
}

fn parse_err(src: &str) -> ParseError {
    parse(src).expect_err("should not parse")
}

// ---------------------------------------------------------------------------------- parser

#[test]
fn ifdef_keeps_the_branches_whose_names_are_defined() {
    let src = "#ifdef STANDARD\n0 `a`\n#else\n0 `b`\n#endif\n#ifndef FreeBSD\n+0 `c`\n#endif\n";
    let d = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cmds = |defs: &[&str]| -> Vec<(usize, Action)> {
        parse_with(src, &d(defs)).unwrap().events.into_iter().map(|e| (e.line, e.action)).collect()
    };
    // Line numbers stay those of the file.
    assert_eq!(cmds(&["STANDARD"]), [(2, Action::Command("a".into())), (7, Action::Command("c".into()))]);
    assert_eq!(cmds(&["FreeBSD"]), [(4, Action::Command("b".into()))]);
    // Nested: the inner branch counts only when the outer one is taken.
    let nested = "#ifdef A\n#ifdef B\n0 `ab`\n#endif\n#endif\n0 `x`\n";
    assert_eq!(parse_with(nested, &d(&["B"])).unwrap().events.len(), 1);
    assert_eq!(parse_with(nested, &d(&["A", "B"])).unwrap().events.len(), 2);
    for (bad, what) in [
        ("#ifdef A\n0 `a`\n", "without #endif"),
        ("#endif\n", "#endif without"),
        ("#else\n", "#else without"),
        ("#ifdef A\n#else\n#else\n#endif\n", "second #else"),
        ("#ifdef\n#endif\n", "one name"),
    ] {
        let e = preprocess(bad, &[]).expect_err(bad);
        assert!(e.message.contains(what), "{bad:?}: {}", e.message);
    }
}

#[test]
fn tilde_ranges_as_packetdrill_writes_them() {
    let t = one_event("+.3~+.303 > . 1:1(0) ack 1").time;
    assert_eq!((t.kind, t.start, t.end), (TimeKind::Relative, 300_000, Some(303_000)));
    let t = one_event("1.0~1.5 > . 1:1(0) ack 1").time;
    assert_eq!((t.kind, t.start, t.end), (TimeKind::Absolute, 1_000_000, Some(1_500_000)));
    assert!(parse_err("+.3~.303 > . 1:1(0) ack 1").message.contains("both"));
    assert!(parse_err("+.3~+.2 > . 1:1(0) ack 1").message.contains("end before"));
}

#[test]
fn times_absolute_relative_any_and_ranges() {
    let t = |s: &str| one_event(&format!("{s} close(3) = 0")).time;
    assert_eq!(t("0"), Time { kind: TimeKind::Absolute, start: 0, end: None });
    assert_eq!(t("1.5"), Time { kind: TimeKind::Absolute, start: 1_500_000, end: None });
    assert_eq!(t("+0.1"), Time { kind: TimeKind::Relative, start: 100_000, end: None });
    assert_eq!(t("+.04"), Time { kind: TimeKind::Relative, start: 40_000, end: None });
    assert_eq!(t("*"), Time { kind: TimeKind::Any, start: 0, end: None });
    assert_eq!(t("0...0.2"), Time { kind: TimeKind::Absolute, start: 0, end: Some(200_000) });
    assert_eq!(t("+0...0.2"), Time { kind: TimeKind::Relative, start: 0, end: Some(200_000) });
    assert_eq!(t("+0...+0.2"), Time { kind: TimeKind::Relative, start: 0, end: Some(200_000) });
    // Exact microseconds, no floating point.
    assert_eq!(t("1.000001").start, 1_000_001);
    assert_eq!(t("0.1000000").start, 100_000);
    assert!(parse_err("0.1234567 close(3) = 0").message.contains("microsecond"));
    assert!(parse_err("0.2...0.1 close(3) = 0").message.contains("end before"));
    assert!(parse_err("1...+2 close(3) = 0").message.contains("relative end"));
    assert!(parse_err("~1 close(3) = 0").message.contains("expected a time"));
}

#[test]
fn packet_flags_sequence_ack_window() {
    let p = packet("0 < P. 1:1001(1000) ack 1 win 257");
    assert_eq!(p.dir, Direction::Inbound);
    assert!(p.flags.psh && p.flags.ack && !p.flags.syn);
    assert_eq!((p.seq, p.len, p.ack, p.win), (1, 1000, Some(1), Some(257)));
    assert_eq!(p.options, Some(vec![]), "no options written means none expected");
    for (word, want) in [
        ("S", "S"),
        ("S.", "S."),
        (".", "."),
        ("F.", "F."),
        ("FP.", "FP."),
        ("R", "R"),
        ("R.", "R."),
        ("SEW", "SEW"),
        ("U.", ".U"),
        ("PA.", "P.A"),
    ] {
        let p = packet(&format!("0 > {word} 0:0(0)"));
        assert_eq!(p.flags.to_string(), want, "{word}");
        assert_eq!(p.win, None, "an outbound window not written is not checked");
    }
    let p = packet("0 > . 4294967295:9(10) ack 7 win 0 urg 3");
    assert_eq!((p.seq, p.len, p.urg), (u32::MAX, 10, Some(3)), "end wraps modulo 2^32");
    assert!(parse_err("0 < . 1:1001(100) ack 1 win 1").message.contains("inconsistent"));
    assert!(parse_err("0 < . 1:1(0) ack 1").message.contains("must give `win`"));
    assert!(parse_err("0 < X 1:1(0) win 1").message.contains("invalid TCP flags"));
    assert!(parse_err("0 < . 1:1(0) win 70000").message.contains("16 bits"));
    assert!(parse_err("0 < . 1:1 win 1").message.contains("`(`"));
}

#[test]
fn packet_options_every_kind() {
    let p = packet("0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7,eol,sack 1:2 3:4>");
    assert_eq!(
        p.options.unwrap(),
        vec![
            TcpOpt::Mss(1460),
            TcpOpt::SackOk,
            TcpOpt::Ts { val: 100, ecr: 0 },
            TcpOpt::Nop,
            TcpOpt::WScale(7),
            TcpOpt::Eol,
            TcpOpt::Sack(vec![(1, 2), (3, 4)]),
        ]
    );
    assert_eq!(packet("0 > . 1:1(0) ack 1 <...>").options, None, "`<...>`: not checked");
    assert_eq!(packet("0 > . 1:1(0) ack 1 < nop , nop >").options, Some(vec![TcpOpt::Nop, TcpOpt::Nop]));
    assert!(parse_err("0 > . 1:1(0) <bogus 1>").message.contains("unknown TCP option"));
    assert!(parse_err("0 > . 1:1(0) <sack>").message.contains("one to four"));
    assert!(parse_err("0 > . 1:1(0) <TS 1 ecr 2>").message.contains("`val`"));
    assert!(parse_err("0 > . 1:1(0) <mss 1460").message.contains("`>`"));
}

#[test]
fn system_calls_and_every_expression_form() {
    let s = syscall("0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)");
    assert_eq!(s.name, "connect");
    assert_eq!(s.args, vec![Expr::Int(3), Expr::Ellipsis, Expr::Ellipsis]);
    assert_eq!(
        (s.ret, s.errno.as_deref(), s.note.as_deref()),
        (Expr::Int(-1), Some("EINPROGRESS"), Some("Operation now in progress"))
    );

    let s = syscall("0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0");
    assert_eq!(s.args[2], Expr::Or(vec![Expr::Sym("O_RDWR".into()), Expr::Sym("O_NONBLOCK".into())]));
    assert_eq!(syscall("0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)").ret, Expr::Int(0x802));

    let s = syscall("0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0");
    assert_eq!(
        s.args[3],
        Expr::Struct(vec![(Some("onoff".into()), Expr::Int(1)), (Some("linger".into()), Expr::Int(0))])
    );

    let s = syscall("0 poll([{fd=3, events=POLLIN|POLLOUT, revents=0}], 1, -1) = 0");
    let Expr::List(items) = &s.args[0] else { panic!() };
    assert!(matches!(&items[0], Expr::Struct(f) if f.len() == 3));
    assert_eq!(s.args[2], Expr::Int(-1));

    let s = syscall(r#"0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0"#);
    let Expr::Struct(f) = &s.args[1] else { panic!() };
    assert_eq!(f[1].1, Expr::Call("htons".into(), vec![Expr::Int(8080)]));
    assert_eq!(f[2].1, Expr::Call("inet_addr".into(), vec![Expr::Str("192.0.2.1".into())]));

    // Arguments may span lines; an empty argument list is allowed.
    let s = syscall("0 getsockopt(3,\n  SOL_SOCKET, SO_ERROR,\n  [0], [4]) = 0");
    assert_eq!(s.args.len(), 5);
    assert_eq!(syscall("0 foo() = 0").args, vec![]);
    assert!(parse_err("0 close(3 = 0").message.contains("`,` or `)`"));
    assert!(parse_err("0 close(3)").message.contains("`= result`"));
    assert!(parse_err(r#"0 bind(3, "open, 1) = 0"#).message.contains("unterminated string"));
}

#[test]
fn comments_line_numbers_and_option_lines() {
    let src = "--tolerance_usecs=10000\n--strict_segments\n// a comment\n/* a\n block */ 0 close(3) = 0 // trailing\n\n+1 close(4) = 0";
    let s = parse(src).unwrap();
    assert_eq!(s.options.len(), 2);
    assert_eq!((s.options[0].name.as_str(), s.options[0].value.as_deref()), ("tolerance_usecs", Some("10000")));
    assert_eq!((s.options[1].name.as_str(), s.options[1].value.as_deref()), ("strict_segments", None));
    assert_eq!(s.events.iter().map(|e| e.line).collect::<Vec<_>>(), vec![5, 7]);
    assert_eq!(parse_err("0 close(3) = 0\n\n/* never closed").line, 3);
    assert!(parse_err("0 close(3) = 0\n--late=1").message.contains("before the first event"));
    assert_eq!(parse_err("0 close(3) = 0\n+1 < ? 1:1(0) win 1").line, 2);
}

#[test]
fn icmp_lines_parse_as_packetdrill_writes_them() {
    use super::parse::IcmpPacket;
    let icmp = |src: &str| match one_event(src).action {
        Action::Icmp(i) => i,
        other => panic!("{other:?}"),
    };
    let i = icmp("0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]");
    let want = IcmpPacket {
        dir: Direction::Inbound,
        kind: "unreachable".into(),
        code: Some("frag_needed".into()),
        mtu: Some(1200),
        seq: 1,
        len: 1460,
    };
    assert_eq!(i, want);
    let i = icmp("+.1 <icmp time_exceeded");
    assert_eq!((i.kind.as_str(), i.code, i.mtu, i.seq, i.len), ("time_exceeded", None, None, 0, 0));
    assert_eq!(icmp("0 > icmp echo_reply").dir, Direction::Outbound);
    assert!(parse_err("0 < icmp unreachable [1:5(3)]").message.contains("inconsistent"));
    assert!(parse_err("0 < icmp unreachable port_unreachable extra").message.contains("extra"));
    use super::icmp::type_and_code;
    assert_eq!(type_and_code("unreachable", Some("port_unreachable"), false), Ok((3, 3)));
    assert_eq!(type_and_code("unreachable", Some("port_unreachable"), true), Ok((1, 4)));
    assert_eq!(type_and_code("unreachable", Some("packet_filtered"), false), Ok((3, 13)));
    assert_eq!(type_and_code("time_exceeded", None, false), Ok((11, 0)));
    assert_eq!(type_and_code("parameter_problem", Some("unknown_next_header"), true), Ok((4, 1)));
    assert_eq!(type_and_code("type_42", Some("code_7"), false), Ok((42, 7)));
    assert!(type_and_code("unreachable", Some("nonsense"), false).is_err());
    assert!(type_and_code("nonsense", None, true).is_err());
}

/// The ICMP error the interpreter sends parses as the stack parses it: the quoted header
/// names the connection and the sequence number, and the checksums hold.
#[test]
fn icmp_errors_are_built_as_the_stack_reads_them() {
    use super::icmp::{message, Quoted};
    use crate::wire::{Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, RxChecksum};
    let q = Quoted { ips: V4, local_port: 8080, remote_port: 40000, seq: 0xdead_beef, len: 100 };
    let m = message(3, 4, Some(1200), q);
    let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&m[..]).unwrap(), RxChecksum::Verify).unwrap();
    let Icmpv4Repr::DstUnreachable { next_hop_mtu, header, data, .. } = r else { panic!("{r:?}") };
    assert_eq!((next_hop_mtu, header.src, header.dst, header.payload_len), (1200, LOCAL_IP, REMOTE_IP, 120));
    assert_eq!(&data[..8], &[0x1f, 0x90, 0x9c, 0x40, 0xde, 0xad, 0xbe, 0xef]);
    let v6 = (core::net::IpAddr::V6(super::net::LOCAL_IP6), core::net::IpAddr::V6(super::net::REMOTE_IP6));
    let m = message(2, 0, Some(1300), Quoted { ips: v6, ..q });
    let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
    let r = Icmpv6Repr::parse(&p, super::net::REMOTE_IP6, super::net::LOCAL_IP6, RxChecksum::Verify).unwrap();
    let Icmpv6Repr::PacketTooBig { mtu, invoking } = r else { panic!("{r:?}") };
    let quoted = crate::wire::icmpv6::quoted_tcp(invoking).unwrap();
    assert_eq!((mtu, quoted.src, quoted.src_port, quoted.seq), (1300, super::net::LOCAL_IP6, 8080, 0xdead_beef));
}

#[test]
fn unsupported_forms_parse_for_a_clear_failure_later() {
    let what = |src: &str| match one_event(src).action {
        Action::Unsupported { what } => what,
        other => panic!("{other:?}"),
    };
    assert!(what("0 < udp (100)").contains("UDP"));
    assert!(what("0 < icmp unreachable port_unreachable [udp (10)]").contains("ICMP quoting a UDP"));
    assert!(what("0 < [tos 0x10] . 1:1(0) ack 1 win 1").contains("IP annotation"));
    assert!(what("0 < S 0:0(0) win 1 <mss 1460,FO abcd>").contains("Fast Open"));
    assert!(what("0 < S 0:0(0) win 1 <md5 1234>").contains("MD5"));
    assert!(what("0 > 3 1:1(0)").contains("AccECN"));
    assert_eq!(
        one_event("0 `sysctl -q net.ipv4.tcp_sack=0`").action,
        Action::Command("sysctl -q net.ipv4.tcp_sack=0".into())
    );
    assert!(matches!(one_event("0 %{ print(tcpi_rto) }%").action, Action::Code(c) if c.contains("tcpi_rto")));
    // The event after an unsupported packet line still parses.
    assert_eq!(parse("0 < udp (1)\n+0 close(3) = 0").unwrap().events.len(), 2);
    // The init and cleanup commands have no time (packetdrill's opt_init_command).
    let s = parse("`../common/defaults.sh`\n0 close(3) = 0\n`cleanup`").unwrap();
    assert_eq!(s.events[0].time, Time { kind: TimeKind::Absolute, start: 0, end: None });
    assert_eq!(s.events[2].time.kind, TimeKind::Any);
    assert_eq!(s.events[2].action, Action::Command("cleanup".into()));
    assert!(parse_err("0 `never closed").message.contains("backtick"));
    assert!(parse_err("0 %{ never closed").message.contains("code block"));
}

proptest! {
    /// Any bytes at all: the parser returns, it never panics.
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = parse(&src);
    }

    /// Scripts made of real tokens in random order: parsing and running never panic, and a
    /// run always ends with a verdict.
    #[test]
    fn interpreter_never_panics(words in proptest::collection::vec(proptest::sample::select(vec![
        "0", "+0", "+.1", "*", "0...1", "<", ">", "S", "S.", ".", "P.", "F.", "R", "1:1(0)", "0:0(0)",
        "1:11(10)", "ack", "1", "win", "0", "65535", "<mss 1460>", "<...>", "<nop,nop,TS val 1 ecr 1>",
        "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "bind(3, ..., ...) = 0", "listen(3, 1) = 0",
        "accept(3, ..., ...) = 4", "connect(3, ..., ...) = -1 EINPROGRESS", "read(4, ..., 10) = 10",
        "write(4, ..., 10) = 10", "close(4) = 0", "shutdown(4, SHUT_WR) = 0", "\n",
        "poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 100) = 1", "fcntl(3, F_SETFL, O_NONBLOCK) = 0",
        "setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0", "`true`",
    ]), 0..40)) {
        let src = words.join(" ");
        for cfg in [RunConfig::default(), RunConfig { lenient: true, verbose: true, ..RunConfig::default() }] {
            let report = run_script(&src, &cfg);
            if let Outcome::Fail(f) = &report.outcome {
                prop_assert!(!f.message.contains("panicked"), "{}\n{}", src, f);
            }
        }
    }
}

// ------------------------------------------------------------------------------ remapping

fn flow() -> Flow {
    Flow {
        local_port: 8080,
        remote_port: 40000,
        remote_isn: Some(0),
        local_isn: Some((0, LIVE_ISN)),
        ..Flow::default()
    }
}

#[test]
fn our_sequence_space_maps_both_ways_across_the_wrap() {
    let f = flow();
    assert_eq!(f.local_to_script(LIVE_ISN), 0);
    assert_eq!(f.local_to_script(LIVE_ISN.wrapping_add(5000)), 5000, "live numbers wrapped past 2^32");
    assert_eq!(f.local_to_live(5000), LIVE_ISN.wrapping_add(5000));
    for v in [0u32, 1, 1023, 1024, 1025, u32::MAX] {
        assert_eq!(f.local_to_script(f.local_to_live(v)), v);
    }
    // A script ISN other than 0 shifts every value.
    let f = Flow { local_isn: Some((1000, 7)), ..flow() };
    assert_eq!(f.local_to_script(8), 1001);
    // Before our ISN is known, values pass through unchanged.
    let f = Flow { local_isn: None, ..flow() };
    assert_eq!((f.local_to_script(42), f.local_to_live(42)), (42, 42));
}

/// The interpreter's IPv4 addresses: (the stack's, the peer's).
const V4: (core::net::IpAddr, core::net::IpAddr) = (core::net::IpAddr::V4(LOCAL_IP), core::net::IpAddr::V4(REMOTE_IP));

fn parsed(bytes: &[u8]) -> TcpRepr<'_> {
    let p = TcpPacket::new_checked(bytes).unwrap();
    TcpRepr::parse(&p, REMOTE_IP, LOCAL_IP, RxChecksum::Verify).expect("checksum and options are valid")
}

#[test]
fn inbound_segments_map_ack_sack_and_ecr_to_live_values() {
    let mut f = flow();
    f.ts_map.insert(700, 123_456);
    f.ts_first = Some((700, 123_456));
    let p = packet("0 < P. 11:21(10) ack 101 win 257 <nop,nop,TS val 9 ecr 700,nop,nop,sack 201:301>");
    let b = inbound_bytes(&f, &p, V4).unwrap();
    let r = parsed(&b);
    assert_eq!((r.src_port, r.dst_port), (40000, 8080));
    assert_eq!(r.seq, 11, "the peer's sequence numbers are used as written");
    assert_eq!(r.ack, LIVE_ISN.wrapping_add(101));
    assert_eq!(r.options.sack.as_slice(), &[(LIVE_ISN.wrapping_add(201), LIVE_ISN.wrapping_add(301))]);
    let ts = r.options.timestamp.unwrap();
    assert_eq!((ts.tsval, ts.tsecr), (9, 123_456));
    assert_eq!(r.flags, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(r.window, 257);
    // The payload is the pattern at stream offset 10 (seq 11 is the 11th byte after ISN 0).
    assert_eq!(r.payload, (10..20).map(super::net::pattern_byte).collect::<Vec<_>>());

    // Without the ACK flag the ack field and ecr are not ours to map (packetdrill's rule).
    let p = packet("0 < S 0:0(0) ack 77 win 1 <TS val 1 ecr 700,nop,nop>");
    let r2b = inbound_bytes(&f, &p, V4).unwrap();
    let r2 = parsed(&r2b);
    assert_eq!((r2.ack, r2.options.timestamp.unwrap().tsecr), (77, 700));
}

#[test]
fn inbound_segment_errors() {
    let f = flow();
    let e = inbound_bytes(&f, &packet("0 < . 1:1(0) ack 1 win 1 <nop,nop,TS val 1 ecr 555>"), V4).unwrap_err();
    assert!(e.contains("unable to infer the live TS ecr for script ecr 555"), "{e}");
    let e = inbound_bytes(&f, &packet("0 < S 0:0(0) win 1 <mss 1460,wscale 7>"), V4).unwrap_err();
    assert!(e.contains("not padded to a multiple of 4 bytes (7 bytes)"), "{e}");
    let e = inbound_bytes(
        &f,
        &packet("0 < . 1:1(0) win 1 <sack 1:2 3:4 5:6 7:8,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop>"),
        V4,
    )
    .unwrap_err();
    assert!(e.contains("at most 40"), "{e}");
}

fn out(seq: u32, ack: u32, flags: &str, payload: Vec<u8>, options: Vec<TcpOpt>) -> OutSeg {
    OutSeg {
        time: Instant::ZERO,
        local_port: 8080,
        remote_port: 40000,
        seq,
        ack,
        flags: Flags::parse(flags).unwrap(),
        window: 100,
        urgent: 0,
        options,
        payload,
        ect: false,
    }
}

#[test]
fn ecn_annotations_parse_and_are_checked_on_outbound_segments() {
    let p = packet("+0 > [ect0] P. 1:11(10) ack 1 win 100");
    assert_eq!(p.ecn, Some(IpEcn::Ect0));
    let p = packet("+0 < [ce] . 1:11(10) ack 1 win 100");
    assert_eq!(p.ecn, Some(IpEcn::Ce));
    assert_eq!(packet("+0 < . 1:1(0) ack 1 win 100").ecn, None);
    let f = flow();
    let e = packet("+0 > [ect0] . 1:11(10) ack 1 win 100 <...>");
    let data: Vec<u8> = (0..10).map(super::net::pattern_byte).collect();
    let mut seg = out(LIVE_ISN.wrapping_add(1), 1, ".", data, vec![]);
    assert!(compare(&f, &e, &seg, false, 0, 4000).is_some_and(|w| w.contains("ECN")));
    seg.ect = true;
    assert_eq!(compare(&f, &e, &seg, false, 0, 4000), None);
    let e = packet("+0 > [noecn] . 1:11(10) ack 1 win 100 <...>");
    assert!(compare(&f, &e, &seg, false, 0, 4000).is_some());
}

#[test]
fn outbound_segments_compare_in_script_space() {
    let f = flow();
    let data: Vec<u8> = (0..10).map(super::net::pattern_byte).collect();
    let seg = out(
        LIVE_ISN.wrapping_add(1),
        11,
        "P.",
        data.clone(),
        vec![TcpOpt::Nop, TcpOpt::Nop, TcpOpt::Sack(vec![(21, 31)])],
    );
    assert_eq!(script_line(&f, &seg), "> P. 1:11(10) ack 11 win 100 <nop,nop,sack 21:31>");
    let cmp = |src: &str, lenient| compare(&f, &packet(src), &seg, lenient, 0, 4000);
    assert_eq!(cmp("0 > P. 1:11(10) ack 11 win 100 <nop,nop,sack 21:31>", false), None);
    assert_eq!(cmp("0 > P. 1:11(10) ack 11 <...>", false), None, "window and options unchecked");
    assert_eq!(cmp("0 > P. 2:12(10) ack 11 <...>", false).unwrap(), "sequence number: expected 2, actual 1");
    assert_eq!(cmp("0 > P. 1:11(10) ack 12 <...>", false).unwrap(), "acknowledgment number: expected 12, actual 11");
    assert_eq!(cmp("0 > . 1:11(10) ack 11 <...>", false).unwrap(), "flags: PSH set (expected ., actual P.)");
    assert_eq!(cmp("0 > P. 1:11(10) ack 11 win 7 <...>", false).unwrap(), "window: expected 7, actual 100");
    assert_eq!(cmp("0 > P. 1:11(10) ack 11 win 7 <...>", true), None, "lenient ignores windows");
    assert_eq!(cmp("0 > P. 1:12(11) ack 11 <...>", false).unwrap(), "payload: expected 11 bytes, actual 10");
    // Options: order matters unless lenient; values always.
    assert!(cmp("0 > P. 1:11(10) ack 11 <sack 21:31,nop,nop>", false).unwrap().starts_with("options: expected"));
    assert_eq!(cmp("0 > P. 1:11(10) ack 11 <sack 21:31,nop,nop>", true), None);
    assert_eq!(
        cmp("0 > P. 1:11(10) ack 11 <nop,nop,sack 21:32>", true).unwrap(),
        "option value: expected sack 21:32, actual sack 21:31"
    );
    assert!(cmp("0 > P. 1:11(10) ack 11 <nop,nop>", true).is_some(), "lenient still wants the same options");
    // Lenient ignores the window scale shift (sized from the buffer, like the window).
    let syn = out(LIVE_ISN, 0, "S", vec![], vec![TcpOpt::Mss(1460), TcpOpt::Nop, TcpOpt::WScale(3)]);
    let want = packet("0 > S 0:0(0) <mss 1460,nop,wscale 8>");
    assert_eq!(compare(&f, &want, &syn, false, 0, 4000).unwrap(), "option value: expected wscale 8, actual wscale 3");
    assert_eq!(compare(&f, &want, &syn, true, 0, 4000), None);
    // The payload must be what the application wrote at that stream offset.
    let mut bad = seg.clone();
    bad.payload[3] ^= 1;
    assert_eq!(
        compare(&f, &packet("0 > P. 1:11(10) ack 11 <...>"), &bad, false, 0, 4000).unwrap(),
        "payload bytes: byte 3 is not what the application wrote at stream offset 3"
    );
}

#[test]
fn timestamps_map_from_the_first_one_the_script_showed() {
    let mut f = flow();
    f.ts_map.insert(100, 5000);
    f.ts_first = Some((100, 5000));
    let seg =
        out(LIVE_ISN.wrapping_add(1), 1, ".", vec![], vec![TcpOpt::Nop, TcpOpt::Nop, TcpOpt::Ts { val: 5040, ecr: 9 }]);
    assert_eq!(script_line(&f, &seg), "> . 1:1(0) ack 1 win 100 <nop,nop,TS val 140 ecr 9>");
    let p = packet("0 > . 1:1(0) ack 1 <nop,nop,TS val 999 ecr 9>");
    assert_eq!(compare(&f, &p, &seg, false, 0, 4000), None, "TS val unchecked by default, as packetdrill");
    assert_eq!(compare(&f, &p, &seg, false, 1000, 4000).unwrap(), "TS val: expected 999, actual 140");
    assert_eq!(compare(&f, &packet("0 > . 1:1(0) ack 1 <nop,nop,TS val 143 ecr 9>"), &seg, false, 1000, 4000), None);
    assert_eq!(
        compare(&f, &packet("0 > . 1:1(0) ack 1 <nop,nop,TS val 140 ecr 8>"), &seg, false, 0, 4000).unwrap(),
        "TS ecr: expected 8, actual 9"
    );
}

#[test]
fn scripts_see_their_own_sequence_numbers_whatever_the_live_isn() {
    // Our live ISN is 0xFFFFFC00; the script calls it 0, or 5000: both pass.
    assert_pass(PASSIVE);
    let shifted =
        PASSIVE.replace("> S. 0:0(0)", "> S. 5000:5000(0)").replace("< . 1:1(0) ack 1 ", "< . 1:1(0) ack 5001 ");
    assert_pass(&format!("{shifted}+0 write(4, ..., 10) = 10\n+0 > P. 5001:5011(10) ack 1 win 65535\n"));
}

// ------------------------------------------------------------------------------ tolerance

/// A delayed ACK goes out at 0.14 s (quick-ACK mode off); the script expects it at `when`
/// (relative to the data at 0.1 s).
fn delayed_ack_at(when: &str, header: &str) -> String {
    format!("{header}{PASSIVE}+0 setsockopt(4, IPPROTO_TCP, TCP_QUICKACK, [0], 4) = 0\n+0 < P. 1:11(10) ack 1 win 65535\n{when} > . 1:1(0) ack 11 win 65535\n")
}

#[test]
fn tolerance_is_4ms_or_12_5_percent_of_the_interval() {
    assert_pass(&delayed_ack_at("+.04", ""));
    // 45 ms after the previous event: 12.5 % is 5.625 ms, so 5 ms early is in time.
    assert_pass(&delayed_ack_at("+.045", ""));
    assert_pass(&delayed_ack_at("+.036", ""));
    // 47 ms: the tolerance is 5.875 ms, and 7 ms is too much.
    let m = failure(&delayed_ack_at("+.047", ""), 10);
    assert_eq!(
        m,
        "timing error: expected `> . 1:1(0) ack 11 win 65535` at 0.147000 s (tolerance 0.005875 s) but the stack sent it at 0.140000 s"
    );
    // Absolute times measure the interval from the previous event's time too.
    assert_pass(&delayed_ack_at("0.143", ""));
    // Ranges and `*`.
    assert_pass(&delayed_ack_at("0.13...0.15", ""));
    assert_pass(&delayed_ack_at("*", ""));
    assert!(failure(&delayed_ack_at("0.15...0.2", ""), 10).contains("timing error"));
}

#[test]
fn tolerance_options_in_the_script() {
    let exact = "--tolerance_usecs=0\n--tolerance_percent=0\n";
    assert_pass(&delayed_ack_at("+.04", exact));
    assert!(failure(&delayed_ack_at("+.0401", exact), 12).contains("tolerance 0.000000 s"));
    assert_pass(&delayed_ack_at("+.05", "--tolerance_usecs=10000\n"));
    // Absurd tolerances saturate instead of overflowing.
    assert_pass(&delayed_ack_at("+5000", "--tolerance_percent=1e300\n"));
    assert_eq!(
        run(&format!("--tolerance_usecs=x\n{PASSIVE}")).outcome,
        Outcome::Fail(Failure { line: 1, message: "--tolerance_usecs needs a non-negative number".into() })
    );
}

#[test]
fn segments_merge_unless_strict() {
    let src = |header: &str| {
        with_passive(
            "+0 setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0\n+0 write(4, ..., 2920) = 2920\n+0 > P. 1:2921(2920) ack 1 win 65535\n",
        )
        .replacen("0    socket", &format!("{header}0 socket"), 1)
    };
    assert_pass(&src(""));
    let m = failure(&src("--strict_segments\n"), 11);
    // Unmerged, the first segment is compared alone (its flags differ first: no PSH yet).
    assert!(m.contains("actual:   0.100000 s > . 1:1461(1460) ack 1 win 65535"), "{m}");
}

// ----------------------------------------------------------------------- failure messages

#[test]
fn mismatch_shows_expected_and_actual_with_times() {
    let m = failure(&with_passive("+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 2 win 65535\n"), 9);
    assert_eq!(
        m,
        "outbound segment mismatch (acknowledgment number: expected 2, actual 1)\n    expected: 0.100000 s > P. 1:11(10) ack 2 win 65535\n    actual:   0.100000 s > P. 1:11(10) ack 1 win 65535"
    );
}

#[test]
fn unexpected_and_missing_segments() {
    // The delayed ACK at 0.14 is not in the script before the write at 0.2.
    let m = failure(&with_passive("+0 setsockopt(4, IPPROTO_TCP, TCP_QUICKACK, [0], 4) = 0\n+0 < P. 1:11(10) ack 1 win 65535\n+.1 write(4, ..., 1) = 1\n"), 10);
    assert_eq!(
        m,
        "unexpected outbound segment: the stack sent `> . 1:1(0) ack 11 win 65535` at 0.140000 s, which the script does not expect before this line"
    );
    let m = failure(&with_passive("+1 > . 1:1(0) ack 1\n"), 8);
    assert_eq!(m, "expected outbound `> . 1:1(0) ack 1`, but the stack sent nothing by 1.225000 s");
    // Segments still queued at the end are ignored, as packetdrill does.
    assert_pass(&with_passive("+0 write(4, ..., 10) = 10\n"));
    let m = failure("0 > S 0:0(0)\n", 1);
    assert!(m.contains("no connection is under test"), "{m}");
}

#[test]
fn system_call_results_and_blocking() {
    let m = failure(&with_passive("+0 bind(3, ..., ...) = 0\n"), 8);
    assert_eq!(m, "`bind(3, ..., ...)` returned -1 EINVAL but the script expects 0");
    let m = failure(&with_passive("+0 close(4) = -1 EBADF\n"), 8);
    assert_eq!(m, "`close(4)` returned 0 but the script expects -1 EBADF");
    // A read with nothing to read blocks; without a time range that is a failure...
    let m = failure(&with_passive("+0 read(4, ..., 10) = 10\n"), 8);
    assert!(m.starts_with("`read` would block; a call that waits for later events needs a time range"), "{m}");
    // ...with one it waits for the data.
    assert_pass(&with_passive("0.1...0.3 read(4, ..., 10) = 10\n0.3 < P. 1:11(10) ack 1 win 65535\n"));
    let m = failure(&with_passive("0.1...0.3 read(4, ..., 10) = 10\n0.5 < P. 1:11(10) ack 1 win 65535\n"), 8);
    assert!(m.starts_with("timing error: `read` returned at 0.500000 s; expected it to return at 0.300000 s"), "{m}");
    let m = failure(&with_passive("0.1...0.3 read(4, ..., 10) = 10\n"), 8);
    assert_eq!(m, "the blocking `read` call had not returned when the script ended");
    let m = failure(&with_passive("0.1...0.3 read(4, ..., 10) = 10\n0.2 close(4) = 0\n"), 9);
    assert!(m.starts_with("system call while the blocking `read` of line 8 is still in progress"), "{m}");
    let m = failure(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ETIMEDOUT], [4]) = 0\n",
        2,
    );
    assert_eq!(m, "getsockopt SO_ERROR gave 0 but the script expects [ETIMEDOUT]");
    let m = failure("0 write(3, ..., 1) = 1\n", 1);
    assert_eq!(m, "`write(3, ..., 1)` returned -1 EBADF but the script expects 1");
    let m = failure("0 write(3, ...) = 1\n", 1);
    assert_eq!(m, "`write` takes (fd, buffer, count); the script gives 2 arguments");
    let m = failure(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 setsockopt(3, SOL_SOCKET, SO_RCVBUF, [1073741824], 4) = 0\n",
        2,
    );
    assert_eq!(m, "buffer size 1073741824 out of range (1 to 67108864 bytes)");
    let m = failure("0 close(NOPE) = 0\n", 1);
    assert_eq!(m, "the file descriptor: unknown symbol `NOPE`");
}

#[test]
fn script_structure_errors() {
    assert_eq!(failure("1 close(3) = -1 EBADF\n", 1), "the first event must be at time 0");
    assert_eq!(
        failure("0 close(3) = -1 EBADF\n2 close(3) = -1 EBADF\n1 close(3) = -1 EBADF\n", 3),
        "time goes backward in the script, from 2.000000 s to 1.000000 s"
    );
    assert_eq!(failure("0 close(3) = 0 bogus\n", 1), "parse error: expected a time, found `bogus`");
    assert_pass("0 close(3) = -1 EBADF\n+1 close(3) = -1 EBADF\n+0 close(3) = -1 EBADF\n1 close(3) = -1 EBADF\n");
}

/// A `sysctl` xtcp can honour sets up the sockets made after it: here SACK off, so the
/// SYN-ACK answers a SACK-permitted SYN without it; and FreeBSD's buffer sizes show through
/// SO_RCVBUF (rounded to the MSS once the SYN told it, under `--profile freebsd`).
#[test]
fn sysctl_lines_configure_new_sockets() {
    let src = "0 `sysctl -q net.ipv4.tcp_sack=0`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n";
    assert_pass(src);
    let bsd = "0 `sysctl -w net.inet.tcp.recvspace=65536`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65536], [4]) = 0\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n+0 < S 0:0(0) win 65535 <mss 1460,sackOK,eol,eol>\n+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,eol,eol>\n+.1 < . 1:1(0) ack 1 win 32767\n+0 accept(3, ..., ...) = 4\n+0 getsockopt(4, SOL_SOCKET, SO_RCVBUF, [65700], [4]) = 0\n";
    let r = run_script(bsd, &RunConfig { profile: Profile::FreeBsd, lenient: true, ..RunConfig::default() });
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary());
    // Under Linux's profile the buffer is reported as set.
    assert!(matches!(run_lenient(bsd).outcome, Outcome::Fail(f) if f.message.contains("gave 65536")));
}

#[test]
fn unsupported_features_fail_or_are_skipped_in_lenient_mode() {
    let src = "0 `sysctl -q net.ipv4.tcp_fastopen=1`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 ioctl(3, FIONREAD, [0]) = 0\n+0 close(3) = 0\n";
    let m = failure(src, 1);
    assert_eq!(
        m,
        "unsupported: sysctl net.ipv4.tcp_fastopen (no such setting in xtcp) (run with --lenient to skip it)"
    );
    let r = run_lenient(src);
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.skipped,
        vec![(1, "sysctl net.ipv4.tcp_fastopen (no such setting in xtcp)".into()), (3, "system call `ioctl`".into())]
    );
    assert_eq!(
        failure("0 `../common/defaults.sh`\n", 1),
        "unsupported: shell command `../common/defaults.sh` (run with --lenient to skip it)"
    );
    assert_eq!(r.summary(), "PASS (2 lines skipped)");
    // Things the rest of the script depends on skip the whole script in lenient mode.
    let v6 = "0 socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3\n";
    assert_eq!(failure(v6, 1), "unsupported: IPv6 sockets without --ip_version=ipv6");
    assert_eq!(
        run_lenient(v6).outcome,
        Outcome::Skipped("line 1: unsupported: IPv6 sockets without --ip_version=ipv6".into())
    );
    assert_eq!(
        run_lenient("--ip_version=ipv4-mapped-ipv6\n0 close(3) = 0\n").summary(),
        "SKIP line 1: unsupported: IPv4-mapped IPv6 (`--ip_version=ipv4-mapped-ipv6`)"
    );
    assert_eq!(
        failure("--ip_version=ipv6\n0 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 3\n", 2),
        "unsupported: IPv4 sockets in an IPv6 script"
    );
    assert_eq!(failure("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n", 1), "unsupported: UDP sockets");
    assert_eq!(failure("0 < udp (100)\n", 1), "unsupported: UDP packets (run with --lenient to skip it)");
    assert!(failure(&with_passive("+0 setsockopt(4, IPPROTO_TCP, TCP_CONGESTION, \"reno\", 4) = 0\n"), 8)
        .starts_with("unsupported: setsockopt TCP_CONGESTION"));
}

#[test]
fn ipv6_scripts_run_over_ipv6_with_its_mss_and_pseudo_header() {
    // `--ip_version=ipv6`: the stack at 2001:2::1, the peer at 2001:2::2; the MSS is 20
    // bytes smaller (1500 − 40 − 20) and every inbound checksum covers RFC 8200 §8.1's
    // pseudo-header (a segment with an IPv4 one is dropped, and the script would fail).
    let src = "--ip_version=ipv6
0    socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, {sa_family=AF_INET6, sin6_port=htons(8080), sin6_addr=...}, ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1440>
+0   > S. 0:0(0) ack 1 win 65535 <mss 1440>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
+0   setsockopt(4, IPPROTO_TCP, TCP_QUICKACK, [0], 4) = 0
+0   < P. 1:101(100) ack 1 win 65535
+0   write(4, ..., 2000) = 2000
+0   > . 1:1441(1440) ack 101 win 65535
+.1  < . 101:101(0) ack 1441 win 65535
+0   > P. 1441:2001(560) ack 101 win 65535
";
    let r = run(src);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary());
    // The same script without the option is an IPv4 script with IPv6 sockets: refused.
    assert!(failure(&src.replacen("--ip_version=ipv6\n", "", 1), 1).contains("IPv6 sockets without"));
    // Nagle held the runt until the full segment was acknowledged. With IPv4's MSS the
    // segments would be cut at 1460: the IPv6 MSS is in force.
    let wrong = src.replace("1:1441(1440)", "1:1461(1460)").replace("1441:2001(560)", "1461:2001(540)");
    assert!(run(&wrong).outcome != Outcome::Pass);
}

#[test]
fn verbose_trace_lists_events_and_segments() {
    let r = run_script(PASSIVE, &RunConfig { verbose: true, ..RunConfig::default() });
    assert_eq!(r.outcome, Outcome::Pass);
    assert!(r.trace.iter().any(|l| l == "line 5: > S. 0:0(0) ack 1 win 65535 <mss 1460>"), "{:#?}", r.trace);
    assert!(r.trace.iter().any(|l| l.contains("stack sent > S. 0:0(0) ack 1 win 65535 <mss 1460>")));
    assert!(r.trace.iter().any(|l| l.contains("`accept` returned 4")));
    assert!(run(PASSIVE).trace.is_empty());
}

#[test]
fn report_summaries() {
    let fail = Report {
        outcome: Outcome::Fail(Failure { line: 3, message: "boom".into() }),
        skipped: vec![(1, "x".into())],
        trace: vec![],
    };
    assert_eq!(fail.summary(), "FAIL line 3: boom (1 lines skipped)");
    assert_eq!(Failure { line: 0, message: "cannot read".into() }.to_string(), "cannot read");
    let r = run_file(std::path::Path::new("/nonexistent/x.pkt"), &RunConfig::default());
    assert!(matches!(r.outcome, Outcome::Fail(Failure { line: 0, ref message }) if message.starts_with("cannot read")));
}

// ------------------------------------------------------------- the gtests' dialect, more

#[test]
fn descriptors_are_the_ones_the_script_names() {
    // packetdrill maps script descriptors to live ones: a script may call its socket 7.
    let src = PASSIVE.replace("= 3\n", "= 7\n").replace("(3,", "(7,").replace("= 4\n", "= 9\n");
    assert_pass(&format!("{src}+0 write(9, ..., 10) = 10\n+0 > P. 1:11(10) ack 1 win 65535\n"));
    // One in use is not taken twice: the lowest free one comes instead.
    let m = failure(&PASSIVE.replace("= 4\n", "= 3\n"), 7);
    assert!(m.contains("returned 4 but the script expects 3"), "{m}");
}

#[test]
fn sendmsg_adds_up_its_buffers_and_takes_msg_more() {
    let src = with_passive(
        "+0 setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0
+0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 10}, {..., 20}], msg_flags=0}, MSG_MORE) = 30
+.01 sendmsg(4, {msg_name(...)=...,
                msg_iov(1)=[{..., 5}], msg_flags=0}, 0) = 5
+0 > P. 1:36(35) ack 1 win 65535
",
    );
    assert_pass(&src);
    // Without MSG_MORE the first write goes at once.
    let m = failure(&src.replacen("MSG_MORE) = 30", "0) = 30", 1), 10);
    assert!(m.contains("`> P. 1:31(30) ack 1 win 65535`"), "{m}");
}

#[test]
fn inline_code_leaves_segments_for_the_lines_after_it() {
    // packetdrill's `%{ assert tcpi_... }%` reads state; the segment sent before it is matched
    // by the line after it.
    let src = with_passive(
        "+0 write(4, ..., 10) = 10\n+0 %{ assert tcpi_snd_cwnd == 10 }%\n+0 > P. 1:11(10) ack 1 win 65535\n",
    );
    let r = run_lenient(&src);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary());
}
