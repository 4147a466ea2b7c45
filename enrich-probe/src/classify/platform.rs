//! Client OS and software agent: simple, documented heuristics.
//!
//! OS, in order of evidence:
//! 1. HTTP `User-Agent` tokens (`Android 14`, `iPhone OS 17_4`, `Windows NT 10.0`, `Mac OS X`,
//!    `CrOS`, `Linux`).
//! 2. The client's initial IP TTL (hop limit), rounded up to 32/64/128/255: 128 → Windows; 64 →
//!    a Unix-like system (Linux, Android, macOS, iOS cannot be told apart by TTL alone, so
//!    `Unix-like`, refined to `Android` when the SYN window is 65535 and the TLS hello is not a
//!    browser's); 255 → network equipment or Solaris (left unknown).
//!
//! Agent: the User-Agent's product (`Chrome 126`, `Firefox 127`, `Safari 17`, `Edge 125`, or its
//! first token for apps such as `WhatsApp/2.23`); else the TLS hello: GREASE values (RFC 8701)
//! with ALPN `h2` mean a Chromium-based browser, extension 0x001c (record_size_limit) without
//! GREASE means Firefox, anything else is reported as a native app (`app`).

use crate::dpi::tls::is_grease;
use crate::dpi::FlowDpi;

/// Client OS guess.
pub fn client_os(dpi: &FlowDpi) -> Option<String> {
    if let Some(os) = dpi.user_agent.as_deref().and_then(os_from_ua) {
        return Some(os);
    }
    let ttl = dpi.client_ttl?;
    match ttl {
        65..=128 => Some("Windows".into()),
        0..=64 => {
            let browser = browser_from_hello(dpi).is_some();
            if dpi.client_syn_window == Some(65535) && !browser && !dpi.tls_extensions.is_empty() {
                Some("Android".into())
            } else {
                Some("Unix-like".into())
            }
        }
        _ => None,
    }
}

fn os_from_ua(ua: &str) -> Option<String> {
    if let Some(i) = ua.find("Android") {
        let v: String = ua[i + 7..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        return Some(if v.is_empty() {
            "Android".into()
        } else {
            format!("Android {v}")
        });
    }
    if let Some(i) = ua.find("iPhone OS ").or_else(|| ua.find("CPU OS ")) {
        let start = ua[i..].find("OS ").map_or(i, |j| i + j + 3);
        let v: String = ua[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '_')
            .collect();
        return Some(format!("iOS {}", v.replace('_', ".")).trim().to_string());
    }
    if ua.contains("Windows NT 10.0") {
        return Some("Windows 10/11".into());
    }
    if ua.contains("Windows") {
        return Some("Windows".into());
    }
    if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        return Some("macOS".into());
    }
    if ua.contains("CrOS") {
        return Some("ChromeOS".into());
    }
    if ua.contains("Linux") {
        return Some("Linux".into());
    }
    None
}

fn browser_from_hello(dpi: &FlowDpi) -> Option<&'static str> {
    let grease = dpi.tls_extensions.iter().any(|e| is_grease(*e));
    if grease && dpi.alpn.iter().any(|a| a == "h2" || a == "h3") {
        Some("Chromium-based browser")
    } else if !grease && dpi.tls_extensions.contains(&0x001c) {
        Some("Firefox")
    } else {
        None
    }
}

/// Client software agent guess.
pub fn client_agent(dpi: &FlowDpi) -> Option<String> {
    if let Some(ua) = dpi.user_agent.as_deref() {
        for (token, name) in [
            ("Edg/", "Edge"),
            ("OPR/", "Opera"),
            ("Firefox/", "Firefox"),
            ("Chrome/", "Chrome"),
            ("Version/", "Safari"),
        ] {
            if let Some(i) = ua.find(token) {
                let major: String = ua[i + token.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                return Some(format!("{name} {major}").trim().to_string());
            }
        }
        return ua.split_whitespace().next().map(str::to_string);
    }
    if dpi.tls_extensions.is_empty() {
        return None;
    }
    Some(browser_from_hello(dpi).unwrap_or("app").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents() {
        let d = FlowDpi {
            user_agent: Some("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36".into()),
            ..FlowDpi::default()
        };
        assert_eq!(client_os(&d).as_deref(), Some("Android 14"));
        assert_eq!(client_agent(&d).as_deref(), Some("Chrome 126"));
        let d = FlowDpi {
            user_agent: Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1".into()),
            ..FlowDpi::default()
        };
        assert_eq!(client_os(&d).as_deref(), Some("iOS 17.4"));
        assert_eq!(client_agent(&d).as_deref(), Some("Safari 17"));
    }

    #[test]
    fn ttl_and_hello() {
        let d = FlowDpi {
            client_ttl: Some(127),
            tls_extensions: vec![0x2a2a, 0, 0x10],
            alpn: vec!["h2".into()],
            ..FlowDpi::default()
        };
        assert_eq!(client_os(&d).as_deref(), Some("Windows"));
        assert_eq!(client_agent(&d).as_deref(), Some("Chromium-based browser"));
        let d = FlowDpi {
            client_ttl: Some(60),
            ..FlowDpi::default()
        };
        assert_eq!(client_os(&d).as_deref(), Some("Unix-like"));
        assert_eq!(client_agent(&d), None);
    }
}
