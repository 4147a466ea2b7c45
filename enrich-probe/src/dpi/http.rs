//! HTTP/1 requests: `Host` and `User-Agent` (RFC 9112 §3, RFC 9110 §7.2, §10.1.5), with
//! `httparse`. A request cut short by the snap length still yields the headers that were whole.

/// What an HTTP request tells the tap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// `Host` without the port, lower case.
    pub host: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];

/// Does this payload start like an HTTP/1 request?
pub fn looks_like_request(payload: &[u8]) -> bool {
    METHODS.iter().any(|m| payload.starts_with(m))
}

/// Parses the start of a client's HTTP/1 stream; `None` when it is not a request.
pub fn parse_request(payload: &[u8]) -> Option<HttpRequest> {
    if !looks_like_request(payload) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let mut out = HttpRequest::default();
    match req.parse(payload) {
        Ok(httparse::Status::Complete(_)) => {
            for h in req.headers.iter() {
                take(&mut out, h.name, h.value);
            }
        }
        // Cut short (or too many headers): read the complete header lines by hand.
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            for line in payload.split(|&b| b == b'\n').skip(1) {
                let Some(line) = line.strip_suffix(b"\r") else {
                    break; // the last, cut line
                };
                if line.is_empty() {
                    break;
                }
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    let name = std::str::from_utf8(&line[..colon]).unwrap_or("");
                    take(&mut out, name, &line[colon + 1..]);
                }
            }
        }
        Err(_) => return None,
    }
    Some(out)
}

fn take(out: &mut HttpRequest, name: &str, value: &[u8]) {
    let v = String::from_utf8_lossy(value).trim().to_string();
    if name.eq_ignore_ascii_case("host") {
        // Strip a port; keep IPv6 literals in brackets whole.
        let host = if v.starts_with('[') {
            v.split(']')
                .next()
                .map(|s| format!("{s}]"))
                .unwrap_or_default()
        } else {
            v.split(':').next().unwrap_or("").to_string()
        };
        out.host = Some(host.to_ascii_lowercase());
    } else if name.eq_ignore_ascii_case("user-agent") {
        out.user_agent = Some(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_agent() {
        let r = parse_request(
            b"GET /x HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nUser-Agent: curl/8.0\r\n\r\n",
        );
        assert_eq!(
            r,
            Some(HttpRequest {
                host: Some("www.example.com".into()),
                user_agent: Some("curl/8.0".into())
            })
        );
    }

    #[test]
    fn cut_request_keeps_whole_lines() {
        let r = parse_request(b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Mozi");
        assert_eq!(r.and_then(|r| r.host), Some("a.example".into()));
        assert_eq!(parse_request(b"\x16\x03\x01"), None);
    }
}
