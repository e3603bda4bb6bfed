//! `shipshape health`: one `GET /health` to the running service, for a
//! container's HEALTHCHECK. The image has no curl or shell, so the binary asks
//! itself; a blocking socket and a hand-written HTTP/1.1 request keep this
//! path free of the async runtime and of any client library.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::HealthArgs;

/// The status line fits in far less; a longer first line is not HTTP.
const MAX_STATUS_LINE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("listen address {0} has port 0: there is no fixed port to ask")]
    NoPort(SocketAddr),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("no answer from {addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("{addr} answered {answer:?}, not 200")]
    Unhealthy { addr: SocketAddr, answer: String },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Asks `/health` within `args.timeout`; Ok only for a 200 answer.
pub fn run(args: &HealthArgs) -> Result<(), HealthError> {
    let addr = probe_address(args.listen)?;
    let deadline = Instant::now() + args.timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HealthError::Timeout { addr, timeout: args.timeout })
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, remaining()?).map_err(|source| HealthError::Connect { addr, source })?;
    let io = |source| HealthError::Io { addr, source };
    stream.set_write_timeout(Some(remaining()?)).map_err(io)?;
    // The edge accepts an IP address as Host, whatever SHIPSHAPE_PUBLIC_URL says.
    let request =
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: shipshape-health\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_STATUS_LINE {
        stream.set_read_timeout(Some(remaining()?)).map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(HealthError::Timeout { addr, timeout: args.timeout })
            }
            Err(e) => return Err(io(e)),
        }
    }
    let first_line = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string();
    match status_of(&first_line) {
        Some(200) => Ok(()),
        _ => Err(HealthError::Unhealthy { addr, answer: first_line }),
    }
}

/// Where the service can be reached from its own host (or container): a
/// wildcard listen address is asked on the loopback of its family.
pub fn probe_address(listen: SocketAddr) -> Result<SocketAddr, HealthError> {
    if listen.port() == 0 {
        return Err(HealthError::NoPort(listen));
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, listen.port()))
}

/// The status code of an HTTP/1.x status line.
pub fn status_of(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_asked_on_loopback() {
        let cases = [
            ("0.0.0.0:8099", Some("127.0.0.1:8099")),
            ("[::]:8099", Some("[::1]:8099")),
            ("127.0.0.1:1234", Some("127.0.0.1:1234")),
            ("192.0.2.7:8099", Some("192.0.2.7:8099")),
            ("127.0.0.1:0", None),
        ];
        for (listen, expected) in cases {
            let listen: SocketAddr = listen.parse().expect("address");
            let got = probe_address(listen).ok().map(|a| a.to_string());
            assert_eq!(got.as_deref(), expected, "{listen}");
        }
    }

    #[test]
    fn status_lines() {
        let cases = [
            ("HTTP/1.1 200 OK", Some(200)),
            ("HTTP/1.0 503 Service Unavailable", Some(503)),
            ("HTTP/1.1 421 Misdirected Request", Some(421)),
            ("HTTP/2 200", None),
            ("SSH-2.0-OpenSSH_9.2", None),
            ("HTTP/1.1 20 OK", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(status_of(line), expected, "{line}");
        }
    }
}
