//! packetdrill's inline code (`%{ ... }%`), the part the TCP suites use: Python statements
//! that read the connection's `tcp_info` (`tcpi_snd_cwnd`, `tcpi_ca_state`, ...) and assert
//! on it. Supported: `assert EXPR[, message]`, `NAME = EXPR`, `NAME += EXPR`, `NAME -= EXPR`,
//! `print(...)` (ignored), separated by `;` or new lines; expressions of integers (decimal
//! or hex), names, `+ - * // %`, parentheses, one comparison (`== != < <= > >=`), `and`,
//! `or`, `not`. Names are `tcpi_*` fields, Linux's `TCP_CA_*` states, and variables that the
//! script's own code assigned (they live for the whole script). Anything else is refused,
//! so the line is reported as unsupported rather than half run.

use crate::tcp::TcpInfo;
use std::collections::HashMap;

/// What running a block came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every statement ran and every assertion held.
    Ok,
    /// An assertion failed: the statement, and the values of the names it used.
    Failed(String),
    /// Something this subset does not have.
    Unsupported(String),
}

/// Run `src` against `info` (`None`: no connection yet), with `vars` kept across blocks.
pub fn run(src: &str, info: Option<&TcpInfo>, vars: &mut HashMap<String, i64>) -> Outcome {
    for stmt in src.split([';', '\n']).map(str::trim).filter(|s| !s.is_empty() && !s.starts_with('#')) {
        match statement(stmt, info, vars) {
            Ok(None) => {}
            Ok(Some(fail)) => return Outcome::Failed(fail),
            Err(why) => return Outcome::Unsupported(why),
        }
    }
    Outcome::Ok
}

fn statement(stmt: &str, info: Option<&TcpInfo>, vars: &mut HashMap<String, i64>) -> Result<Option<String>, String> {
    if stmt.starts_with("print(") || stmt.starts_with("print ") {
        return Ok(None);
    }
    if let Some(rest) = stmt.strip_prefix("assert ") {
        // The message after a top-level comma is Python's; it is not evaluated.
        let cond = top_level_comma(rest).map_or(rest, |i| &rest[..i]);
        let mut used = Vec::new();
        let v = eval(cond, info, vars, &mut used)?;
        if v != 0 {
            return Ok(None);
        }
        used.sort();
        used.dedup();
        let values: Vec<String> = used.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        return Ok(Some(format!("inline assertion `{}` failed ({})", cond.trim(), values.join(", "))));
    }
    for (op, f) in [("+=", 1i64), ("-=", -1)] {
        if let Some((name, e)) = stmt.split_once(op) {
            let name = ident(name.trim())?;
            let v = eval(e, info, vars, &mut Vec::new())?;
            let old = *vars.get(name).ok_or_else(|| format!("`{name}` used before it was set"))?;
            vars.insert(name.to_string(), old.wrapping_add(f.wrapping_mul(v)));
            return Ok(None);
        }
    }
    if let Some((name, e)) = stmt.split_once('=') {
        if !e.starts_with('=') && !name.ends_with(['!', '<', '>', '=']) {
            let name = ident(name.trim())?;
            let v = eval(e, info, vars, &mut Vec::new())?;
            vars.insert(name.to_string(), v);
            return Ok(None);
        }
    }
    Err(format!("inline code `{stmt}`"))
}

fn ident(s: &str) -> Result<&str, String> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(s)
    } else {
        Err(format!("inline code: `{s}` is not a name"))
    }
}

fn top_level_comma(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (_, Some(_)) => {}
            ('(', None) => depth += 1,
            (')', None) => depth -= 1,
            (',', None) if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn field(name: &str, info: &TcpInfo) -> Option<i64> {
    let v = match name {
        "tcpi_ca_state" => info.ca_state as u32,
        "tcpi_snd_cwnd" => info.snd_cwnd,
        "tcpi_snd_ssthresh" => info.snd_ssthresh,
        "tcpi_unacked" => info.unacked,
        "tcpi_sacked" => info.sacked,
        "tcpi_lost" => info.lost,
        "tcpi_retrans" => info.retrans,
        "tcpi_total_retrans" => info.total_retrans,
        "tcpi_reordering" => info.reordering,
        "tcpi_reord_seen" => info.reord_seen,
        "tcpi_rtt" => info.rtt_us,
        "tcpi_min_rtt" => info.min_rtt_us,
        "tcpi_rto" => info.rto_us,
        "tcpi_snd_mss" => info.snd_mss,
        "tcpi_advmss" => info.advmss,
        _ => return None,
    };
    Some(i64::from(v))
}

fn constant(name: &str) -> Option<i64> {
    Some(match name {
        "TCP_CA_Open" => 0,
        "TCP_CA_Disorder" => 1,
        "TCP_CA_CWR" => 2,
        "TCP_CA_Recovery" => 3,
        "TCP_CA_Loss" => 4,
        "True" => 1,
        "False" => 0,
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(i64),
    Name(String),
    Op(&'static str),
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    const OPS: [&str; 13] = ["==", "!=", "<=", ">=", "//", "<", ">", "+", "-", "*", "%", "(", ")"];
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    'outer: while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i] as char).is_ascii_alphanumeric() {
                i += 1;
            }
            let t = &s[start..i];
            let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => i64::from_str_radix(h, 16),
                None => t.parse(),
            };
            out.push(Tok::Num(v.map_err(|_| format!("inline code: number `{t}`"))?));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(s[start..i].to_string()));
            continue;
        }
        for op in OPS {
            if s[i..].starts_with(op) {
                out.push(Tok::Op(op));
                i += op.len();
                continue 'outer;
            }
        }
        return Err(format!("inline code: `{}`", &s[i..]));
    }
    Ok(out)
}

/// Evaluate `s`; `used` collects the names read (for a failure's message).
fn eval(
    s: &str,
    info: Option<&TcpInfo>,
    vars: &HashMap<String, i64>,
    used: &mut Vec<(String, i64)>,
) -> Result<i64, String> {
    let toks = tokens(s)?;
    let mut p = Parser { toks: &toks, at: 0, info, vars, used };
    let v = p.or()?;
    if p.at != toks.len() {
        return Err(format!("inline code: `{}`", s.trim()));
    }
    Ok(v)
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    info: Option<&'a TcpInfo>,
    vars: &'a HashMap<String, i64>,
    used: &'a mut Vec<(String, i64)>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn eat_op(&mut self, op: &'static str) -> bool {
        if self.peek() == Some(&Tok::Op(op)) {
            self.at += 1;
            return true;
        }
        false
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == w) {
            self.at += 1;
            return true;
        }
        false
    }
    fn or(&mut self) -> Result<i64, String> {
        let mut v = self.and()?;
        while self.eat_word("or") {
            let r = self.and()?;
            v = i64::from(v != 0 || r != 0);
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<i64, String> {
        let mut v = self.not()?;
        while self.eat_word("and") {
            let r = self.not()?;
            v = i64::from(v != 0 && r != 0);
        }
        Ok(v)
    }
    fn not(&mut self) -> Result<i64, String> {
        if self.eat_word("not") {
            return Ok(i64::from(self.not()? == 0));
        }
        self.comparison()
    }
    fn comparison(&mut self) -> Result<i64, String> {
        let l = self.sum()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat_op(op) {
                let r = self.sum()?;
                let t = match op {
                    "==" => l == r,
                    "!=" => l != r,
                    "<=" => l <= r,
                    ">=" => l >= r,
                    "<" => l < r,
                    _ => l > r,
                };
                return Ok(i64::from(t));
            }
        }
        Ok(l)
    }
    fn sum(&mut self) -> Result<i64, String> {
        let mut v = self.product()?;
        loop {
            if self.eat_op("+") {
                v = v.wrapping_add(self.product()?);
            } else if self.eat_op("-") {
                v = v.wrapping_sub(self.product()?);
            } else {
                return Ok(v);
            }
        }
    }
    fn product(&mut self) -> Result<i64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat_op("*") {
                v = v.wrapping_mul(self.unary()?);
            } else if self.eat_op("//") {
                let d = self.unary()?;
                v = v.checked_div_euclid(d).ok_or("inline code: division by zero")?;
            } else if self.eat_op("%") {
                let d = self.unary()?;
                v = v.checked_rem_euclid(d).ok_or("inline code: division by zero")?;
            } else {
                return Ok(v);
            }
        }
    }
    fn unary(&mut self) -> Result<i64, String> {
        if self.eat_op("-") {
            return Ok(self.unary()?.wrapping_neg());
        }
        if self.eat_op("(") {
            let v = self.or()?;
            if !self.eat_op(")") {
                return Err("inline code: `(` without `)`".into());
            }
            return Ok(v);
        }
        match self.toks.get(self.at).cloned() {
            Some(Tok::Num(v)) => {
                self.at += 1;
                Ok(v)
            }
            Some(Tok::Name(n)) => {
                self.at += 1;
                let v = if let Some(v) = self.vars.get(&n) {
                    *v
                } else if let Some(v) = constant(&n) {
                    v
                } else if n.starts_with("tcpi_") {
                    let info =
                        self.info.ok_or_else(|| format!("inline code reads `{n}` before there is a connection"))?;
                    field(&n, info)
                        .ok_or_else(|| format!("inline code: `{n}` (a tcp_info field xtcp does not report)"))?
                } else {
                    return Err(format!("inline code: unknown name `{n}`"));
                };
                self.used.push((n, v));
                Ok(v)
            }
            other => Err(format!("inline code: unexpected {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::CaState;

    fn info() -> TcpInfo {
        TcpInfo {
            ca_state: CaState::Recovery,
            snd_cwnd: 10,
            snd_ssthresh: 0x7fff_ffff,
            unacked: 4,
            sacked: 2,
            lost: 1,
            retrans: 1,
            total_retrans: 3,
            reordering: 3,
            reord_seen: 0,
            rtt_us: 100_000,
            min_rtt_us: 90_000,
            rto_us: 300_000,
            snd_mss: 1000,
            advmss: 1460,
        }
    }

    #[test]
    fn the_suites_forms_run() {
        let mut vars = HashMap::new();
        let i = info();
        assert_eq!(run("assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd", Some(&i), &mut vars), Outcome::Ok);
        assert_eq!(run("TCP_INFINITE_SSTHRESH = 0x7fffffff", Some(&i), &mut vars), Outcome::Ok);
        assert_eq!(
            run("assert tcpi_snd_ssthresh == TCP_INFINITE_SSTHRESH, tcpi_snd_ssthresh", Some(&i), &mut vars),
            Outcome::Ok
        );
        assert_eq!(
            run(
                "print(tcpi_snd_cwnd); cwnd = 8; cwnd += 2; assert tcpi_snd_cwnd == cwnd, tcpi_snd_cwnd",
                Some(&i),
                &mut vars
            ),
            Outcome::Ok
        );
        assert_eq!(
            run(
                "assert tcpi_ca_state == TCP_CA_Recovery, 'ca_state: %d rtt: %d' % (tcpi_ca_state, tcpi_rtt)",
                Some(&i),
                &mut vars
            ),
            Outcome::Ok
        );
        assert_eq!(
            run("assert tcpi_lost == 1 and tcpi_sacked  == 2 and not tcpi_reord_seen", Some(&i), &mut vars),
            Outcome::Ok
        );
        assert_eq!(
            run("assert tcpi_snd_cwnd == cwnd + 1, tcpi_snd_cwnd", Some(&i), &mut vars),
            Outcome::Failed(
                "inline assertion `tcpi_snd_cwnd == cwnd + 1` failed (cwnd = 10, tcpi_snd_cwnd = 10)".into()
            )
        );
    }

    #[test]
    fn what_it_does_not_have_is_refused() {
        let mut vars = HashMap::new();
        let i = info();
        for src in ["import os", "assert tcpi_busy_time > 0", "x = [1, 2]", "assert y == 1", "cwnd += 1"] {
            assert!(matches!(run(src, Some(&i), &mut vars), Outcome::Unsupported(_)), "{src}");
        }
        assert!(matches!(run("assert tcpi_snd_cwnd == 10", None, &mut vars), Outcome::Unsupported(_)));
    }
}
