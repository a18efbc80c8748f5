//! `#ifdef`, `#ifndef`, `#else`, `#endif`: the conditionals of the FreeBSD suite's packetdrill.

use super::parse::ParseError;

type PResult<T> = Result<T, ParseError>;

/// The conditional lines of the packetdrill the FreeBSD suite is written for: `#ifdef NAME`,
/// `#ifndef NAME`, `#else` and `#endif` at the start of a line (after blanks), nested, with
/// the names given on the command line (`-D NAME`, as packetdrill's `--define`). Lines left
/// out become empty, so line numbers stay those of the file. Nothing is predefined: the
/// suite's `#ifdef FreeBSD` parts test FreeBSD's own behaviour and tools, `-D STANDARD`
/// selects what the RFCs say.
pub fn preprocess(src: &str, defines: &[String]) -> PResult<String> {
    // One entry per open #ifdef: (its current branch is taken, #else seen).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut out = String::with_capacity(src.len());
    for (i, raw) in src.split_inclusive('\n').enumerate() {
        let line = i + 1;
        let text = raw.trim();
        let err = |message: &str| ParseError { line, message: message.into() };
        let word = |rest: &str| -> PResult<String> {
            let name = rest.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err("#ifdef and #ifndef take one name"));
            }
            Ok(name.to_string())
        };
        let directive = if let Some(rest) = text.strip_prefix("#ifdef") {
            stack.push((defines.contains(&word(rest)?), false));
            true
        } else if let Some(rest) = text.strip_prefix("#ifndef") {
            stack.push((!defines.contains(&word(rest)?), false));
            true
        } else if text == "#else" {
            let Some(top) = stack.last_mut() else { return Err(err("#else without #ifdef")) };
            if top.1 {
                return Err(err("a second #else"));
            }
            *top = (!top.0, true);
            true
        } else if text == "#endif" {
            if stack.pop().is_none() {
                return Err(err("#endif without #ifdef"));
            }
            true
        } else {
            false
        };
        let keep = !directive && stack.iter().all(|&(on, _)| on);
        if keep {
            out.push_str(raw);
        } else if raw.ends_with('\n') {
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(ParseError { line: src.lines().count(), message: "#ifdef without #endif".into() });
    }
    Ok(out)
}
