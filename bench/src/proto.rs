//! What goes over the wire between `xtcp-bench client` and `xtcp-bench server`.
//!
//! **Framed** (the default): every request starts with an 8-byte header, two big-endian `u32`s:
//! the request's whole length (header included, at least 8) and the number of response bytes
//! wanted. The rest of the request is filler. The server reads the whole request, then answers
//! with exactly that many bytes (filler). A response length of 0 asks for no answer (the
//! `stream` workload's bulk messages). So the client alone chooses both sizes and the server
//! needs no flags.
//!
//! **Raw** (`--raw`): no header; the client sends `req_bytes` and waits for `resp_bytes` back
//! (an echo server: `xtcp serve --app echo`, `xtcp-bench server --mode echo`).
//!
//! **HTTP** (`--http`): `GET` requests; a response is a status line, headers with a
//! `Content-Length` (chunked bodies are not supported and counted as errors), and the body.

/// Bytes of the framed request header.
pub const HEADER_LEN: usize = 8;
/// The largest request or response the server accepts (a bound: anything larger closes the
/// connection, counted).
pub const MAX_MESSAGE: u32 = 64 << 20;

/// Write the header of a framed request of `req_len` bytes asking for `resp_len` bytes.
pub fn header(req_len: u32, resp_len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&req_len.to_be_bytes());
    h[4..].copy_from_slice(&resp_len.to_be_bytes());
    h
}

/// A framed request header that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHeader {
    /// The request length is below the header's own.
    TooShort(u32),
    /// A length over [`MAX_MESSAGE`].
    TooLong(u32),
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHeader::TooShort(n) => write!(f, "request length {n} is shorter than its header"),
            BadHeader::TooLong(n) => write!(f, "length {n} is over the limit of {MAX_MESSAGE}"),
        }
    }
}

/// The server's reading of a stream of framed requests: feed it bytes, it says how many
/// response bytes are owed. Holds no request data (filler is skipped, not stored).
#[derive(Debug, Default, Clone)]
pub struct RequestReader {
    hdr: [u8; HEADER_LEN],
    hdr_got: usize,
    /// Filler bytes of the current request still to skip.
    body_left: usize,
    /// Response bytes of the current request, owed once its last byte is in.
    resp_pending: u64,
    pub requests: u64,
}

impl RequestReader {
    /// Consume `data`; returns the response bytes now owed (for the requests completed in it).
    pub fn feed(&mut self, mut data: &[u8]) -> Result<u64, BadHeader> {
        let mut owed = 0;
        while !data.is_empty() {
            if self.hdr_got < HEADER_LEN {
                let k = (HEADER_LEN - self.hdr_got).min(data.len());
                self.hdr[self.hdr_got..self.hdr_got + k].copy_from_slice(&data[..k]);
                self.hdr_got += k;
                data = &data[k..];
                if self.hdr_got < HEADER_LEN {
                    break;
                }
                let req = u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
                let resp = u32::from_be_bytes([self.hdr[4], self.hdr[5], self.hdr[6], self.hdr[7]]);
                if (req as usize) < HEADER_LEN {
                    return Err(BadHeader::TooShort(req));
                }
                if req > MAX_MESSAGE {
                    return Err(BadHeader::TooLong(req));
                }
                if resp > MAX_MESSAGE {
                    return Err(BadHeader::TooLong(resp));
                }
                self.body_left = req as usize - HEADER_LEN;
                self.resp_pending = u64::from(resp);
            }
            let k = self.body_left.min(data.len());
            self.body_left -= k;
            data = &data[k..];
            if self.body_left == 0 {
                owed += self.resp_pending;
                self.resp_pending = 0;
                self.hdr_got = 0;
                self.requests += 1;
            }
        }
        Ok(owed)
    }
}

/// The client's reading of responses.
#[derive(Debug, Clone)]
pub enum ResponseReader {
    /// Framed or raw: each response is a known number of bytes.
    Count { per_response: usize, got: usize },
    /// HTTP/1.1 with `Content-Length`.
    Http { head: Vec<u8>, body_left: usize, in_body: bool },
}

/// What an HTTP response broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadResponse {
    /// No `Content-Length` (chunked, or none): not supported.
    NoLength,
    /// The head is over 16 KiB.
    HeadTooLong,
    /// Not an HTTP/1.x status line.
    NotHttp,
}

/// Most bytes of an HTTP response head.
const MAX_HEAD: usize = 16 * 1024;

impl ResponseReader {
    pub fn count(per_response: usize) -> ResponseReader {
        ResponseReader::Count { per_response, got: 0 }
    }

    pub fn http() -> ResponseReader {
        ResponseReader::Http { head: Vec::new(), body_left: 0, in_body: false }
    }

    /// Consume `data`; returns how many responses completed and how many of them were not
    /// successes (HTTP status other than 2xx).
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(u64, u64), BadResponse> {
        let (mut done, mut failed) = (0, 0);
        match self {
            ResponseReader::Count { per_response, got } => {
                if *per_response == 0 {
                    return Ok((0, 0));
                }
                let total = *got + data.len();
                done = (total / *per_response) as u64;
                *got = total % *per_response;
            }
            ResponseReader::Http { head, body_left, in_body } => {
                while !data.is_empty() {
                    if *in_body {
                        let k = (*body_left).min(data.len());
                        *body_left -= k;
                        data = &data[k..];
                        if *body_left == 0 {
                            *in_body = false;
                            done += 1;
                        }
                        continue;
                    }
                    // Look for the end of the head across what we have and what came.
                    let before = head.len();
                    let k = data.len().min(MAX_HEAD + 4 - before);
                    head.extend_from_slice(&data[..k]);
                    let from = before.saturating_sub(3);
                    let Some(pos) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") else {
                        if head.len() > MAX_HEAD {
                            return Err(BadResponse::HeadTooLong);
                        }
                        data = &data[k..];
                        continue;
                    };
                    let end = from + pos + 4;
                    let used = end - before;
                    data = &data[used..];
                    let (status, length) = parse_head(&head[..end])?;
                    head.clear();
                    if !(200..300).contains(&status) {
                        failed += 1;
                    }
                    if length == 0 {
                        done += 1;
                    } else {
                        *body_left = length;
                        *in_body = true;
                    }
                }
            }
        }
        Ok((done, failed))
    }
}

fn parse_head(head: &[u8]) -> Result<(u16, usize), BadResponse> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(BadResponse::NotHttp);
    }
    let code: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or(BadResponse::NotHttp)?;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                return v.trim().parse().map(|n| (code, n)).map_err(|_| BadResponse::NoLength);
            }
        }
    }
    // 1xx, 204 and 304 have no body.
    if code < 200 || code == 204 || code == 304 {
        return Ok((code, 0));
    }
    Err(BadResponse::NoLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_split_anywhere_owe_their_responses() {
        let mut wire = Vec::new();
        for (req, resp) in [(8u32, 1u32), (100, 0), (20, 300)] {
            wire.extend_from_slice(&header(req, resp));
            wire.extend(std::iter::repeat_n(0x5a, req as usize - HEADER_LEN));
        }
        for split in 0..wire.len() {
            let mut r = RequestReader::default();
            let owed = r.feed(&wire[..split]).unwrap() + r.feed(&wire[split..]).unwrap();
            assert_eq!(owed, 301, "split at {split}");
            assert_eq!(r.requests, 3);
        }
        // One byte at a time.
        let mut r = RequestReader::default();
        let owed: u64 = wire.iter().map(|b| r.feed(std::slice::from_ref(b)).unwrap()).sum();
        assert_eq!(owed, 301);
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        assert_eq!(RequestReader::default().feed(&header(3, 1)), Err(BadHeader::TooShort(3)));
        assert_eq!(
            RequestReader::default().feed(&header(MAX_MESSAGE + 1, 1)),
            Err(BadHeader::TooLong(MAX_MESSAGE + 1))
        );
        assert_eq!(RequestReader::default().feed(&header(8, u32::MAX)), Err(BadHeader::TooLong(u32::MAX)));
    }

    #[test]
    fn counted_responses() {
        let mut r = ResponseReader::count(64);
        assert_eq!(r.feed(&[0; 100]), Ok((1, 0)));
        assert_eq!(r.feed(&[0; 28]), Ok((1, 0)));
        assert_eq!(r.feed(&[0; 640]), Ok((10, 0)));
    }

    #[test]
    fn http_responses_with_bodies_split_anywhere() {
        let one = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello";
        let two = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let wire: Vec<u8> = [&one[..], &two[..], &one[..]].concat();
        for split in 0..wire.len() {
            let mut r = ResponseReader::http();
            let (a, fa) = r.feed(&wire[..split]).unwrap();
            let (b, fb) = r.feed(&wire[split..]).unwrap();
            assert_eq!((a + b, fa + fb), (3, 1), "split at {split}");
        }
    }

    #[test]
    fn http_without_length_is_an_error() {
        let mut r = ResponseReader::http();
        assert_eq!(r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(BadResponse::NoLength));
        let mut r = ResponseReader::http();
        assert_eq!(r.feed(b"SSH-2.0-x\r\n\r\n"), Err(BadResponse::NotHttp));
        let mut r = ResponseReader::http();
        assert_eq!(r.feed(&vec![b'a'; MAX_HEAD + 10]), Err(BadResponse::HeadTooLong));
    }
}
