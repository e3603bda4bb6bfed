//! The little HTTP/1.1 the test fixtures (token server, flaky proxy) speak:
//! reading a request's head and body, and status reasons.

use std::io::BufRead;

/// A request line and its headers.
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn invalid(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(invalid("closed before a request"));
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or_else(|| invalid("no method"))?.to_string();
    let target = parts.next().ok_or_else(|| invalid("no target"))?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(invalid("eof in headers"));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or_else(|| invalid("bad header line"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
        if headers.len() > 500 {
            return Err(invalid("too many headers"));
        }
    }
    Ok(Head { method, target, version, headers })
}

/// The request body exactly as sent (chunked framing kept as is).
pub fn read_body(reader: &mut impl BufRead, head: &Head) -> std::io::Result<Vec<u8>> {
    let chunked = head.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line)? == 0 {
                return Err(invalid("eof in chunked body"));
            }
            body.extend_from_slice(size_line.as_bytes());
            let size_hex = size_line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t)? == 0 {
                        return Ok(body);
                    }
                    body.extend_from_slice(t.as_bytes());
                    if t.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size + 2, 0); // data + CRLF
            reader.read_exact(&mut body[start..])?;
        }
    }
    if let Some(len) = head.header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| invalid("bad content-length"))?;
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(body)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
