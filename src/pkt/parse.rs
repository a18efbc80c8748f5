//! The packetdrill dialect: a hand-written recursive-descent parser into an AST with line
//! numbers.
//!
//! packetdrill's grammar is token-based, not line-based (newlines are whitespace), so this
//! parser is too: an event is a time followed by an action, and the next event starts where
//! the previous one's grammar ends. Packet flags (`S.`, `P.`, `.`) and the unsupported
//! extensions are read at the character level, which is why there is no separate lexer.
//!
//! Everything malformed is a [`ParseError`] with the line it was found on; nothing here
//! panics on any input (the parser only indexes through its cursor, which checks bounds).
//! Extensions xtcp does not run (UDP and ICMP packets, IPv6 addresses, ECN marks, TCP Fast
//! Open options, shell commands, inline Python) parse into [`Action::Unsupported`],
//! [`Action::Command`] or [`Action::Code`], so that the interpreter can fail with a clear
//! reason, or skip them in lenient mode.

use core::fmt;

/// A whole script: option lines (`--tolerance_usecs=10000`) then events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// The `--name[=value]` lines, in order.
    pub options: Vec<ScriptOption>,
    /// The events, in script order.
    pub events: Vec<Event>,
}

/// One `--name[=value]` line at the top of a script (packetdrill reads command-line options
/// there too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOption {
    /// Line of the script it is on (from 1).
    pub line: usize,
    /// The option's name, without the leading `--`.
    pub name: String,
    /// What follows `=`, if anything.
    pub value: Option<String>,
}

/// One event: when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Line of the script the event starts on (from 1).
    pub line: usize,
    /// When it happens.
    pub time: Time,
    /// What it does.
    pub action: Action,
}

/// How an event's time is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// `0.100`: seconds since the script's start.
    Absolute,
    /// `+0.100`: seconds after the previous event happened.
    Relative,
    /// `*`: whenever (outbound packets: not timed).
    Any,
}

/// An event time in microseconds. `end` is the range form `start...end` (blocking calls:
/// the call starts at `start` and returns at `end`; packets: any time in the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// How the time is written.
    pub kind: TimeKind,
    /// The time, or the start of the range, in microseconds.
    pub start: u64,
    /// The end of a `start...end` range, in microseconds.
    pub end: Option<u64>,
}

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A TCP packet line, inbound or outbound.
    Packet(Packet),
    /// A system call and the result it must return.
    Syscall(Syscall),
    /// A backtick shell command (`` `sysctl -q net.ipv4.tcp_sack=0` ``).
    Command(String),
    /// An inline `%{ python }%` block.
    Code(String),
    /// An ICMP packet line (`< icmp unreachable port_unreachable [0:0(0)]`).
    Icmp(IcmpPacket),
    /// A packet line in a form xtcp does not run; `what` says which.
    Unsupported {
        /// The form, for the error message.
        what: String,
    },
}

/// Packet direction, as seen from the stack under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the script's peer sends it to the stack.
    Inbound,
    /// `>`: the stack must send it.
    Outbound,
}

/// TCP control bits as written (`.` is ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `F`: FIN.
    pub fin: bool,
    /// `S`: SYN.
    pub syn: bool,
    /// `R`: RST.
    pub rst: bool,
    /// `P`: PSH.
    pub psh: bool,
    /// `.`: ACK.
    pub ack: bool,
    /// `U`: URG.
    pub urg: bool,
    /// `E`: ECE (ECN-Echo).
    pub ece: bool,
    /// `W`: CWR (Congestion Window Reduced).
    pub cwr: bool,
    /// `A`: AE, the bit that was NS (Accurate ECN).
    pub ae: bool,
}

impl Flags {
    /// Parse a flags word (`S.`, `FP.`, `R`, `.`); `None` if a character is not a flag.
    pub fn parse(word: &str) -> Option<Flags> {
        let mut f = Flags::default();
        for c in word.chars() {
            match c {
                'F' => f.fin = true,
                'S' => f.syn = true,
                'R' => f.rst = true,
                'P' => f.psh = true,
                '.' => f.ack = true,
                'U' => f.urg = true,
                'E' => f.ece = true,
                'W' => f.cwr = true,
                'A' => f.ae = true,
                _ => return None,
            }
        }
        Some(f)
    }
}

impl fmt::Display for Flags {
    /// tcpdump's order, which is how scripts write them: `S.`, `FP.`, `R.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.fin, 'F'),
            (self.syn, 'S'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, '.'),
            (self.urg, 'U'),
            (self.ece, 'E'),
            (self.cwr, 'W'),
            (self.ae, 'A'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One TCP option as a script writes it (and as the interpreter lists what the stack sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOpt {
    /// `eol`: End of Option List.
    Eol,
    /// `nop`: No-Operation.
    Nop,
    /// `mss N`: Maximum Segment Size, in bytes.
    Mss(u16),
    /// `wscale N`: Window Scale shift count.
    WScale(u8),
    /// `sackOK`: SACK-Permitted.
    SackOk,
    /// `sack L:R ...`: SACK blocks, `(left, right)` each, in the script's relative sequence
    /// numbers.
    Sack(Vec<(u32, u32)>),
    /// `TS val V ecr E`: Timestamps.
    Ts {
        /// TSval.
        val: u32,
        /// TSecr.
        ecr: u32,
    },
    /// An option kind the interpreter has no name for (only ever in what the stack sent).
    Unknown(u8),
}

impl TcpOpt {
    /// Bytes the option takes on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            TcpOpt::Eol | TcpOpt::Nop => 1,
            TcpOpt::Mss(_) => 4,
            TcpOpt::WScale(_) => 3,
            TcpOpt::SackOk => 2,
            TcpOpt::Sack(b) => 2 + 8 * b.len(),
            TcpOpt::Ts { .. } => 10,
            TcpOpt::Unknown(_) => 2,
        }
    }
}

impl fmt::Display for TcpOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpOpt::Eol => f.write_str("eol"),
            TcpOpt::Nop => f.write_str("nop"),
            TcpOpt::Mss(v) => write!(f, "mss {v}"),
            TcpOpt::WScale(v) => write!(f, "wscale {v}"),
            TcpOpt::SackOk => f.write_str("sackOK"),
            TcpOpt::Sack(blocks) => {
                f.write_str("sack")?;
                for (l, r) in blocks {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            TcpOpt::Ts { val, ecr } => write!(f, "TS val {val} ecr {ecr}"),
            TcpOpt::Unknown(k) => write!(f, "kind-{k}"),
        }
    }
}

/// The ECN codepoint written on a packet line (`[noecn]`, `[ect0]`, `[ect1]`, `[ect01]`,
/// `[ce]`, as packetdrill writes them): of an inbound packet, what its IP header carries; of
/// an outbound one, what the stack must have set (`Ect01`: either ECT codepoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpEcn {
    /// `[noecn]`: Not-ECT.
    NotEct,
    /// `[ect0]`: ECT(0).
    Ect0,
    /// `[ect1]`: ECT(1).
    Ect1,
    /// `[ect01]`: ECT(0) or ECT(1), either accepted.
    Ect01,
    /// `[ce]`: Congestion Experienced.
    Ce,
}

/// A TCP packet line: `< P. 1:1001(1000) ack 1 win 257 <nop,nop,TS val 2 ecr 1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// `<` or `>`.
    pub dir: Direction,
    /// `None`: not written (outbound: not checked; inbound: Not-ECT).
    pub ecn: Option<IpEcn>,
    /// The control bits.
    pub flags: Flags,
    /// Relative sequence number of the first byte (SYN and FIN count as bytes).
    pub seq: u32,
    /// Payload bytes (`(len)`; `end` = `seq + len` is checked while parsing).
    pub len: u32,
    /// `ack N`: the relative acknowledgment number; `None` when not written.
    pub ack: Option<u32>,
    /// `None`: not written, so not checked on an outbound packet (packetdrill's rule);
    /// inbound packets must give it.
    pub win: Option<u16>,
    /// `urg N`: the urgent pointer; `None` when not written.
    pub urg: Option<u16>,
    /// `None` is `<...>`: options not checked. `Some(vec![])`: no options at all.
    pub options: Option<Vec<TcpOpt>>,
}

/// An ICMP packet line, as packetdrill writes it: `icmp TYPE [CODE] [mtu N] [SEQ:END(LEN)]`
/// (`< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]`). The bracket names the TCP
/// segment of ours the message quotes, in our (script) sequence numbers; without it, `0:0(0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket {
    /// `<` or `>`.
    pub dir: Direction,
    /// The type, as written (`unreachable`, `time_exceeded`, `type_3`...).
    pub kind: String,
    /// The code, as written, if any (`port_unreachable`, `code_3`...).
    pub code: Option<String>,
    /// `mtu N` (fragmentation needed, packet too big).
    pub mtu: Option<u32>,
    /// The quoted segment's first sequence number.
    pub seq: u32,
    /// The quoted segment's payload length.
    pub len: u32,
}

/// A system call line: `accept(3, ..., ...) = 4` or `connect(3, ..., ...) = -1 EINPROGRESS
/// (Operation now in progress)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// The call's name (`socket`, `accept`, `write`…).
    pub name: String,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// The result it must return.
    pub ret: Expr,
    /// The errno it must set (`EINPROGRESS`), when the result is an error.
    pub errno: Option<String>,
    /// The parenthesised text after the result; a comment for the reader.
    pub note: Option<String>,
}

/// A system-call argument or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `...`: whatever the interpreter chooses (buffers, addresses).
    Ellipsis,
    /// An integer literal.
    Int(i64),
    /// A named constant: `SOCK_STREAM`, `O_NONBLOCK`, `ECONNREFUSED`.
    Sym(String),
    /// A string literal, without its quotes.
    Str(String),
    /// `A|B|C`.
    Or(Vec<Expr>),
    /// `[1]`, `[{fd=3, events=POLLIN}]`.
    List(Vec<Expr>),
    /// `{fd=3, events=POLLIN}`: fields, named or not.
    Struct(Vec<(Option<String>, Expr)>),
    /// `htons(8080)`, `inet_addr("192.0.2.1")`.
    Call(String, Vec<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        }
        match self {
            Expr::Ellipsis => f.write_str("..."),
            Expr::Int(v) => write!(f, "{v}"),
            Expr::Sym(s) => f.write_str(s),
            Expr::Str(s) => write!(f, "\"{s}\""),
            Expr::Or(items) => {
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Expr::List(items) => {
                f.write_str("[")?;
                list(f, items)?;
                f.write_str("]")
            }
            Expr::Struct(fields) => {
                f.write_str("{")?;
                for (i, (name, e)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match name {
                        Some(n) => write!(f, "{n}={e}")?,
                        None => write!(f, "{e}")?,
                    }
                }
                f.write_str("}")
            }
            Expr::Call(name, args) => {
                write!(f, "{name}(")?;
                list(f, args)?;
                f.write_str(")")
            }
        }
    }
}

/// A malformed script: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Line of the script the error was found on (from 1).
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: parse error: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

type PResult<T> = Result<T, ParseError>;

/// Parse a whole script, with no names defined for `#ifdef`.
pub fn parse(src: &str) -> PResult<Script> {
    parse_with(src, &[])
}

/// Parse a whole script after its `#ifdef` conditionals are resolved with `defines`.
pub fn parse_with(src: &str, defines: &[String]) -> PResult<Script> {
    let src = super::preprocess::preprocess(src, defines)?;
    let mut c = Cursor { src: src.as_bytes(), pos: 0, line: 1 };
    let mut script = Script::default();
    loop {
        c.skip_ws()?;
        if c.at_end() {
            break;
        }
        if c.starts_with("--") {
            if !script.events.is_empty() {
                return Err(c.error("option lines (`--name=value`) must come before the first event"));
            }
            script.options.push(c.option_line()?);
            continue;
        }
        let line = c.line;
        // packetdrill's grammar allows one shell command without a time before the first
        // event (the init command) and one after the last (the cleanup command).
        if c.peek() == Some(b'`') {
            let action = c.action()?;
            let kind = if script.events.is_empty() { TimeKind::Absolute } else { TimeKind::Any };
            script.events.push(Event { line, time: Time { kind, start: 0, end: None }, action });
            continue;
        }
        let time = c.time()?;
        c.skip_ws()?;
        let action = c.action()?;
        script.events.push(Event { line, time, action });
    }
    Ok(script)
}

/// A position in the source. Every read goes through `peek`/`peek_at`, which check bounds.
struct Cursor<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

/// Longest number literal we accept; guards the accumulators against overflow.
const MAX_DIGITS: usize = 20;

impl Cursor<'_> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, message: message.into() }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        self.src.get(self.pos..).is_some_and(|rest| rest.starts_with(s.as_bytes()))
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            for _ in 0..s.len() {
                self.bump();
            }
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> PResult<()> {
        self.skip_ws()?;
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.describe_next())))
        }
    }

    /// What comes next, for error messages.
    fn describe_next(&self) -> String {
        match self.peek() {
            None => "the end of the script".to_string(),
            Some(b'\n') => "the end of the line".to_string(),
            Some(_) => {
                let rest = &self.src[self.pos..];
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len()).min(24);
                format!("`{}`", String::from_utf8_lossy(&rest[..end]).trim_end())
            }
        }
    }

    /// Whitespace (newlines included) and comments: `// ...` and `/* ... */`.
    fn skip_ws(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'/') if self.peek_at(1) == Some(b'/') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                }
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let line = self.line;
                    self.bump();
                    self.bump();
                    loop {
                        if self.at_end() {
                            return Err(ParseError { line, message: "unterminated `/*` comment".into() });
                        }
                        if self.eat_str("*/") {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Spaces and tabs only: what may separate the parts of a packet line.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    /// Skip the rest of the physical line (for a packet form we do not run).
    fn skip_line(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n')) {
            self.bump();
        }
    }

    fn option_line(&mut self) -> PResult<ScriptOption> {
        let line = self.line;
        self.eat_str("--");
        let start = self.pos;
        self.skip_line();
        let text = String::from_utf8_lossy(&self.src[start..self.pos]).trim().to_string();
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
            None => (text.clone(), None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ParseError { line, message: format!("malformed option line `--{text}`") });
        }
        Ok(ScriptOption { line, name, value })
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        if !matches!(self.peek(), Some(b) if b.is_ascii_alphabetic() || b == b'_') {
            return None;
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.bump();
        }
        Some(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    fn expect_ident(&mut self, what: &str) -> PResult<String> {
        self.skip_blanks();
        match self.ident() {
            Some(s) => Ok(s),
            None => Err(self.error(format!("expected {what}, found {}", self.describe_next()))),
        }
    }

    /// An unsigned decimal or `0x` hexadecimal integer.
    fn unsigned(&mut self) -> PResult<u64> {
        let hex = self.starts_with("0x") || self.starts_with("0X");
        if hex {
            self.bump();
            self.bump();
        }
        let radix = if hex { 16 } else { 10 };
        let start = self.pos;
        while matches!(self.peek(), Some(b) if (b as char).is_digit(radix)) {
            self.bump();
        }
        let digits = &self.src[start..self.pos];
        if digits.is_empty() {
            return Err(self.error(format!("expected a number, found {}", self.describe_next())));
        }
        if digits.len() > MAX_DIGITS {
            return Err(self.error("number too long"));
        }
        let text = String::from_utf8_lossy(digits);
        u64::from_str_radix(&text, radix).map_err(|_| self.error(format!("number out of range: {text}")))
    }

    fn number_u32(&mut self, what: &str) -> PResult<u32> {
        self.skip_blanks();
        if !matches!(self.peek(), Some(b) if b.is_ascii_digit()) {
            return Err(self.error(format!("expected {what}, found {}", self.describe_next())));
        }
        let v = self.unsigned()?;
        u32::try_from(v).map_err(|_| self.error(format!("{what} {v} does not fit in 32 bits")))
    }

    fn number_u16(&mut self, what: &str) -> PResult<u16> {
        let v = self.number_u32(what)?;
        u16::try_from(v).map_err(|_| self.error(format!("{what} {v} does not fit in 16 bits")))
    }

    /// Seconds with up to six decimals (`0`, `1.5`, `.100`), as microseconds. No floating
    /// point: `0.1` is exactly 100000 µs.
    fn seconds(&mut self) -> PResult<u64> {
        let mut whole: u64 = 0;
        let mut any = false;
        let mut n = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            self.bump();
            any = true;
            n += 1;
            if n > 12 {
                return Err(self.error("time too large"));
            }
            whole = whole * 10 + u64::from(b - b'0');
        }
        let mut micros: u64 = 0;
        // A fraction: `.` followed by a digit (`0...1` is a range, not a fraction).
        if self.peek() == Some(b'.') && matches!(self.peek_at(1), Some(b) if b.is_ascii_digit()) {
            self.bump();
            let mut scale = 100_000;
            while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
                self.bump();
                any = true;
                let d = u64::from(b - b'0');
                if scale == 0 {
                    if d != 0 {
                        return Err(self.error("times have microsecond resolution (at most 6 decimals)"));
                    }
                } else {
                    micros += d * scale;
                    scale /= 10;
                }
            }
        }
        if !any {
            return Err(self.error(format!("expected a time, found {}", self.describe_next())));
        }
        Ok(whole * 1_000_000 + micros)
    }

    /// `*`, `T`, `+T`, `T...T`, `+T...T` (the end of a relative range is relative with or
    /// without its own `+`).
    fn time(&mut self) -> PResult<Time> {
        if self.eat(b'*') {
            return Ok(Time { kind: TimeKind::Any, start: 0, end: None });
        }
        let relative = self.eat(b'+');
        if relative {
            // packetdrill's lexer takes `+` as a token of its own: `+ 0.00` is `+0.00`.
            self.skip_blanks();
        }
        if self.peek() == Some(b'-') {
            return Err(self.error("negative times are not allowed"));
        }
        let start = self.seconds()?;
        let mut end = None;
        // packetdrill's `T1~T2` (`+T1~+T2`): an outbound packet may go any time in the range,
        // as with `...`.
        if self.eat(b'~') {
            if relative != self.eat(b'+') {
                return Err(self.error("a `~` range is absolute at both ends or relative (`+`) at both"));
            }
            let e = self.seconds()?;
            if e < start {
                return Err(self.error("a time range must not end before it starts"));
            }
            let kind = if relative { TimeKind::Relative } else { TimeKind::Absolute };
            return Ok(Time { kind, start, end: Some(e) });
        }
        if self.eat_str("...") {
            let plus = self.eat(b'+');
            if plus && !relative {
                return Err(self.error("a range with an absolute start cannot have a relative end"));
            }
            let e = self.seconds()?;
            if e < start {
                return Err(self.error("a time range must not end before it starts"));
            }
            end = Some(e);
        }
        let kind = if relative { TimeKind::Relative } else { TimeKind::Absolute };
        Ok(Time { kind, start, end })
    }

    fn action(&mut self) -> PResult<Action> {
        match self.peek() {
            Some(b'<') => self.packet(Direction::Inbound),
            Some(b'>') => self.packet(Direction::Outbound),
            Some(b'`') => {
                let line = self.line;
                self.bump();
                let start = self.pos;
                while !matches!(self.peek(), None | Some(b'`')) {
                    self.bump();
                }
                if self.at_end() {
                    return Err(ParseError { line, message: "unterminated backtick command".into() });
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                self.bump();
                Ok(Action::Command(text))
            }
            Some(b'%') if self.peek_at(1) == Some(b'{') => {
                let line = self.line;
                self.bump();
                self.bump();
                let start = self.pos;
                loop {
                    if self.at_end() {
                        return Err(ParseError { line, message: "unterminated `%{` code block".into() });
                    }
                    if self.starts_with("}%") {
                        break;
                    }
                    self.bump();
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                self.eat_str("}%");
                Ok(Action::Code(text))
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.syscall().map(Action::Syscall),
            _ => Err(self.error(format!(
                "expected a packet (`<` or `>`), a system call or a command after the time, found {}",
                self.describe_next()
            ))),
        }
    }

    /// Skip what is left of an unsupported packet line and say why.
    fn unsupported(&mut self, what: String) -> PResult<Action> {
        self.skip_line();
        Ok(Action::Unsupported { what })
    }

    fn packet(&mut self, dir: Direction) -> PResult<Action> {
        self.bump(); // `<` or `>`
        self.skip_blanks();
        let mut ecn = None;
        if self.peek() == Some(b'[') {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != b']' && b != b'\n') {
                self.bump();
            }
            let word = String::from_utf8_lossy(&self.src[start + 1..self.pos]).trim().to_string();
            if self.peek() != Some(b']') {
                return Err(self.error("`]` to close the IP annotation"));
            }
            self.bump();
            ecn = Some(match word.as_str() {
                "noecn" => IpEcn::NotEct,
                "ect0" => IpEcn::Ect0,
                "ect1" => IpEcn::Ect1,
                "ect01" => IpEcn::Ect01,
                "ce" => IpEcn::Ce,
                _ => return self.unsupported(format!("the IP annotation `[{word}]` (ECN codepoints are supported)")),
            });
            self.skip_blanks();
        }
        if self.peek() == Some(b'(') {
            return self.unsupported("IP header fields on a packet".into());
        }
        let start = self.pos;
        while matches!(self.peek(), Some(b) if !b.is_ascii_whitespace()) {
            self.bump();
        }
        let word = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        if word.is_empty() {
            return Err(self.error("expected TCP flags after the packet direction"));
        }
        match word.as_str() {
            "udp" => return self.unsupported("UDP packets".into()),
            "icmp" if ecn.is_none() => return self.icmp(dir),
            "icmp" => return self.unsupported("ECN codepoints on an ICMP packet".into()),
            "gre" | "mpls" | "ip" | "ipv4" | "ipv6" => return self.unsupported(format!("`{word}` packets")),
            _ => {}
        }
        if word.contains(':') && word.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            return self.unsupported("explicit addresses on a packet line".into());
        }
        if word.bytes().any(|b| b.is_ascii_digit()) && word.bytes().all(|b| b"FSRPEWAU.01234567".contains(&b)) {
            return self.unsupported("AccECN ACE counters in TCP flags".into());
        }
        let flags = Flags::parse(&word).ok_or_else(|| {
            self.error(format!("invalid TCP flags `{word}` (flags are F S R P . U E W A, `.` for ACK)"))
        })?;
        let seq = self.number_u32("a sequence number (`start:end(len)`)")?;
        self.expect(b':', "`:` in `start:end(len)`")?;
        let end = self.number_u32("the end sequence number")?;
        self.expect(b'(', "`(` in `start:end(len)`")?;
        let len = self.number_u32("the payload length")?;
        self.expect(b')', "`)` in `start:end(len)`")?;
        if seq.wrapping_add(len) != end {
            return Err(
                self.error(format!("inconsistent sequence numbers {seq}:{end}({len}): end must be start + len"))
            );
        }
        if len > 65535 {
            return Err(self.error(format!("payload length {len} is larger than any segment")));
        }
        let mut p = Packet { dir, ecn, flags, seq, len, ack: None, win: None, urg: None, options: Some(Vec::new()) };
        loop {
            self.skip_blanks();
            if self.starts_with("ack") && !self.word_continues(3) {
                self.eat_str("ack");
                p.ack = Some(self.number_u32("an acknowledgment number")?);
            } else if self.starts_with("win") && !self.word_continues(3) {
                self.eat_str("win");
                p.win = Some(self.number_u16("a window")?);
            } else if self.starts_with("urg") && !self.word_continues(3) {
                self.eat_str("urg");
                p.urg = Some(self.number_u16("an urgent pointer")?);
            } else if self.peek() == Some(b'<') {
                self.bump();
                match self.options()? {
                    Ok(opts) => p.options = opts,
                    Err(what) => return self.unsupported(what),
                }
            } else {
                break;
            }
        }
        if dir == Direction::Inbound && p.win.is_none() {
            return Err(self.error("inbound packets must give `win` (the window the peer advertises)"));
        }
        Ok(Action::Packet(p))
    }

    /// The rest of an ICMP line, after `icmp`.
    fn icmp(&mut self, dir: Direction) -> PResult<Action> {
        let mut words = Vec::new();
        let (mut mtu, mut seq, mut len) = (None, 0, 0);
        loop {
            self.skip_blanks();
            match self.peek() {
                None | Some(b'\n') => break,
                Some(b'[') => {
                    self.bump();
                    self.skip_blanks();
                    if self.starts_with("udp") || self.starts_with("raw") {
                        return self.unsupported("ICMP quoting a UDP or raw packet".into());
                    }
                    seq = self.number_u32("the quoted segment's `start:end(len)`")?;
                    self.expect(b':', "`:` in `start:end(len)`")?;
                    let end = self.number_u32("the end sequence number")?;
                    self.expect(b'(', "`(` in `start:end(len)`")?;
                    len = self.number_u32("the payload length")?;
                    self.expect(b')', "`)` in `start:end(len)`")?;
                    self.skip_blanks();
                    self.expect(b']', "`]` after the quoted segment")?;
                    if seq.wrapping_add(len) != end {
                        return Err(self.error(format!("inconsistent sequence numbers {seq}:{end}({len})")));
                    }
                }
                Some(_) if self.starts_with("mtu") && !self.word_continues(3) => {
                    self.eat_str("mtu");
                    mtu = Some(self.number_u32("an MTU")?);
                }
                Some(_) => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(b) if !b.is_ascii_whitespace() && b != b'[') {
                        self.bump();
                    }
                    words.push(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned());
                }
            }
        }
        let mut words = words.into_iter();
        let Some(kind) = words.next() else { return Err(self.error("expected the ICMP type after `icmp`")) };
        let code = words.next();
        if let Some(extra) = words.next() {
            return Err(self.error(format!("unexpected `{extra}` on an ICMP line")));
        }
        Ok(Action::Icmp(IcmpPacket { dir, kind, code, mtu, seq, len }))
    }

    /// True if the byte `n` ahead continues an identifier (so `ack` is not `acknowledge`).
    fn word_continues(&self, n: usize) -> bool {
        matches!(self.peek_at(n), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
    }

    /// The option list after `<`: `Ok(Ok(None))` for `<...>`, `Ok(Err(what))` for an option
    /// xtcp does not know (the caller skips the line).
    fn options(&mut self) -> PResult<Result<Option<Vec<TcpOpt>>, String>> {
        self.skip_blanks();
        if self.eat_str("...") {
            self.expect(b'>', "`>` after `<...`")?;
            return Ok(Ok(None));
        }
        let mut opts = Vec::new();
        loop {
            let name = self.expect_ident("a TCP option (nop, eol, mss, wscale, sackOK, sack, TS)")?;
            let opt = match name.as_str() {
                "nop" => TcpOpt::Nop,
                "eol" => TcpOpt::Eol,
                "mss" => TcpOpt::Mss(self.number_u16("the MSS")?),
                "wscale" => {
                    let v = self.number_u32("the window scale shift")?;
                    TcpOpt::WScale(
                        u8::try_from(v).map_err(|_| self.error(format!("wscale {v} does not fit in 8 bits")))?,
                    )
                }
                "sackOK" => TcpOpt::SackOk,
                "sack" => {
                    let mut blocks = Vec::new();
                    loop {
                        self.skip_blanks();
                        if !matches!(self.peek(), Some(b) if b.is_ascii_digit()) {
                            break;
                        }
                        let l = self.number_u32("a SACK block's left edge")?;
                        self.expect(b':', "`:` in a SACK block `left:right`")?;
                        let r = self.number_u32("a SACK block's right edge")?;
                        blocks.push((l, r));
                    }
                    if blocks.is_empty() || blocks.len() > 4 {
                        return Err(self.error("`sack` takes one to four blocks `left:right`"));
                    }
                    TcpOpt::Sack(blocks)
                }
                "TS" => {
                    let v = self.expect_ident("`val`")?;
                    if v != "val" {
                        return Err(self.error(format!("expected `val` after `TS`, found `{v}`")));
                    }
                    let val = self.number_u32("the TS value")?;
                    let e = self.expect_ident("`ecr`")?;
                    if e != "ecr" {
                        return Err(self.error(format!("expected `ecr` after the TS value, found `{e}`")));
                    }
                    let ecr = self.number_u32("the TS echo reply")?;
                    TcpOpt::Ts { val, ecr }
                }
                "FO" | "tfo" => return Ok(Err("TCP Fast Open options".into())),
                "md5" => return Ok(Err("the TCP MD5 signature option".into())),
                "mptcp" | "dss" | "mp_capable" => return Ok(Err("Multipath TCP options".into())),
                "exp" | "experimental" => return Ok(Err("experimental TCP options".into())),
                "unknown" | "opt" => return Ok(Err("raw TCP options".into())),
                other => return Err(self.error(format!("unknown TCP option `{other}`"))),
            };
            opts.push(opt);
            self.skip_blanks();
            if self.eat(b',') {
                continue;
            }
            self.expect(b'>', "`,` or `>` in the option list")?;
            return Ok(Ok(Some(opts)));
        }
    }

    fn syscall(&mut self) -> PResult<Syscall> {
        let name = self.ident().unwrap_or_default();
        self.expect(b'(', &format!("`(` after the system call name `{name}`"))?;
        let args = self.expr_list(b')')?;
        self.expect(b'=', "`= result` after the system call")?;
        self.skip_ws()?;
        let ret = self.expr()?;
        self.skip_blanks();
        let mut errno = None;
        if matches!(self.peek(), Some(b) if b.is_ascii_uppercase()) {
            errno = self.ident();
            self.skip_blanks();
        }
        let mut note = None;
        if self.peek() == Some(b'(') {
            let line = self.line;
            self.bump();
            let start = self.pos;
            let mut depth = 1;
            while depth > 0 {
                match self.bump() {
                    None => return Err(ParseError { line, message: "unterminated `(` note after the result".into() }),
                    Some(b'(') => depth += 1,
                    Some(b')') => depth -= 1,
                    Some(_) => {}
                }
            }
            note = Some(String::from_utf8_lossy(&self.src[start..self.pos - 1]).into_owned());
        }
        Ok(Syscall { name, args, ret, errno, note })
    }

    /// Comma-separated expressions up to `close` (consumed).
    fn expr_list(&mut self, close: u8) -> PResult<Vec<Expr>> {
        let mut items = Vec::new();
        self.skip_ws()?;
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            self.skip_ws()?;
            if self.eat(b',') {
                self.skip_ws()?;
                continue;
            }
            if self.eat(close) {
                return Ok(items);
            }
            return Err(self.error(format!("expected `,` or `{}`, found {}", close as char, self.describe_next())));
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        let first = self.term()?;
        let mut items = vec![first];
        loop {
            self.skip_blanks();
            if self.eat(b'|') {
                self.skip_ws()?;
                items.push(self.term()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn term(&mut self) -> PResult<Expr> {
        self.skip_ws()?;
        match self.peek() {
            Some(b'.') if self.starts_with("...") => {
                self.eat_str("...");
                Ok(Expr::Ellipsis)
            }
            Some(b'-') => {
                self.bump();
                let v = self.unsigned()?;
                let v = i64::try_from(v).map_err(|_| self.error("number out of range"))?;
                Ok(Expr::Int(-v))
            }
            Some(b) if b.is_ascii_digit() => {
                let v = self.unsigned()?;
                Ok(Expr::Int(i64::try_from(v).map_err(|_| self.error("number out of range"))?))
            }
            Some(b'"') => {
                let line = self.line;
                self.bump();
                let start = self.pos;
                while !matches!(self.peek(), None | Some(b'"') | Some(b'\n')) {
                    self.bump();
                }
                if self.peek() != Some(b'"') {
                    return Err(ParseError { line, message: "unterminated string".into() });
                }
                let s = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                self.bump();
                Ok(Expr::Str(s))
            }
            Some(b'[') => {
                self.bump();
                Ok(Expr::List(self.expr_list(b']')?))
            }
            Some(b'{') => {
                self.bump();
                let mut fields = Vec::new();
                self.skip_ws()?;
                if self.eat(b'}') {
                    return Ok(Expr::Struct(fields));
                }
                loop {
                    self.skip_ws()?;
                    // `name=value`, `name(N)=value` (packetdrill's element count, as in
                    // `msg_iov(1)=[...]`, checked by the value itself), or a bare value.
                    let save = (self.pos, self.line);
                    let mut name = None;
                    if let Some(id) = self.ident() {
                        self.skip_blanks();
                        if self.peek() == Some(b'(') {
                            self.bump();
                            self.expr_list(b')')?;
                            self.skip_blanks();
                        }
                        if self.eat(b'=') {
                            name = Some(id);
                        } else {
                            (self.pos, self.line) = save;
                        }
                    }
                    let value = self.expr()?;
                    fields.push((name, value));
                    self.skip_ws()?;
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b'}') {
                        return Ok(Expr::Struct(fields));
                    }
                    return Err(self.error(format!("expected `,` or `}}`, found {}", self.describe_next())));
                }
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let name = self.ident().unwrap_or_default();
                if self.peek() == Some(b'(') {
                    self.bump();
                    let args = self.expr_list(b')')?;
                    Ok(Expr::Call(name, args))
                } else {
                    Ok(Expr::Sym(name))
                }
            }
            _ => Err(self.error(format!("expected a value, found {}", self.describe_next()))),
        }
    }
}
