//! Classification from the built-in signature file.

use super::signatures::{Prefix, Signatures};
use super::*;
use std::net::Ipv4Addr;

fn sigs() -> Signatures {
    Signatures::builtin().unwrap()
}

fn server(protocol: u8, addr: [u8; 4], port: u16) -> Server {
    Server {
        protocol,
        addr: IpAddr::V4(Ipv4Addr::from(addr)),
        port,
        client_port: 50000,
    }
}

fn provider(s: &Signatures, c: &Classification) -> Option<String> {
    c.provider.map(|i| s.providers[i].id.clone())
}

#[test]
fn every_required_provider_is_in_the_file() {
    let s = sigs();
    for id in [
        "netflix",
        "youtube",
        "twitch",
        "amazonvideo",
        "disneyplus",
        "zoom",
        "teams",
        "googlemeet",
        "webex",
        "whatsapp",
        "discord",
        "activision",
        "epicgames",
        "steam",
        "riotgames",
        "roblox",
        "geforcenow",
        "xbox",
        "luna",
        "playstation",
        "spotify",
        "tiktok",
        "instagram",
        "facebook",
        "oculus",
    ] {
        assert!(s.providers.iter().any(|p| p.id == id), "{id} missing");
    }
}

#[test]
fn names_beat_rules_and_longest_suffix_wins() {
    let s = sigs();
    let dpi = FlowDpi {
        sni: Some("rr3---sn-4g5e6nsz.googlevideo.com".into()),
        ..FlowDpi::default()
    };
    let c = classify(&s, &dpi, server(6, [142, 250, 1, 1], 443), None);
    assert_eq!(provider(&s, &c).as_deref(), Some("youtube"));
    assert_eq!(c.method, DetectionMethod::Sni);
    assert_eq!(c.app_type, AppType::VideoStreaming);
    // "notnetflix.com" must not match "netflix.com".
    let dpi = FlowDpi {
        sni: Some("notnetflix.com".into()),
        ..FlowDpi::default()
    };
    assert_eq!(
        classify(&s, &dpi, server(6, [1, 1, 1, 1], 443), None).provider,
        None
    );
    // Glob: Instagram's names under Facebook's CDN domain.
    assert_eq!(
        s.by_domain("instagram.faae1-1.fna.fbcdn.net")
            .map(|i| s.providers[i].id.as_str()),
        Some("instagram")
    );
    assert_eq!(
        s.by_domain("scontent.xx.fbcdn.net")
            .map(|i| s.providers[i].id.as_str()),
        Some("facebook")
    );
}

#[test]
fn dns_cache_name_and_rules() {
    let s = sigs();
    let c = classify(
        &s,
        &FlowDpi::default(),
        server(6, [1, 2, 3, 4], 443),
        Some("api.zoom.us"),
    );
    assert_eq!(provider(&s, &c).as_deref(), Some("zoom"));
    assert_eq!(c.method, DetectionMethod::Dns);
    // Zoom's SFU port in Zoom's range.
    let c = classify(
        &s,
        &FlowDpi::default(),
        server(17, [162, 255, 37, 14], 8801),
        None,
    );
    assert_eq!(provider(&s, &c).as_deref(), Some("zoom"));
    assert_eq!(c.method, DetectionMethod::Address);
    // WhatsApp's chat handshake.
    let dpi = FlowDpi {
        client_prefix: b"WA\x01\x05".to_vec(),
        ..FlowDpi::default()
    };
    let c = classify(&s, &dpi, server(6, [9, 9, 9, 9], 443), None);
    assert_eq!(provider(&s, &c).as_deref(), Some("whatsapp"));
    assert_eq!(c.method, DetectionMethod::Payload);
    // Unnamed RTP: voip, no provider.
    let dpi = FlowDpi {
        rtp_packets: 3,
        ..FlowDpi::default()
    };
    let c = classify(&s, &dpi, server(17, [9, 9, 9, 9], 40000), None);
    assert_eq!((c.provider, c.app_type), (None, AppType::Voip));
    assert_eq!(
        classify(
            &s,
            &FlowDpi::default(),
            server(17, [9, 9, 9, 9], 40000),
            None
        ),
        Classification::default()
    );
}

#[test]
fn bad_signature_files_are_errors() {
    assert!(Signatures::parse("provider = []\nbogus = 1", "t").is_err());
    let rule_for_nobody =
        "[[provider]]\nid = \"x\"\nname = \"X\"\napp_type = \"web\"\n[[rule]]\nprovider = \"y\"\n";
    assert!(Signatures::parse(rule_for_nobody, "t").is_err());
    let upper = "[[provider]]\nid = \"X\"\nname = \"X\"\napp_type = \"web\"\n";
    assert!(Signatures::parse(upper, "t").is_err());
}

#[test]
fn prefixes() {
    let p = Prefix::parse("10.0.0.0/8").unwrap();
    assert!(p.contains(IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1))));
    assert!(!p.contains(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1))));
    assert!(!p.contains("::a00:1".parse().unwrap()));
    let p6 = Prefix::parse("2a03:2880::/32").unwrap();
    assert!(p6.contains("2a03:2880:f003::1".parse().unwrap()));
    assert!(Prefix::parse("10.0.0.0/33").is_none());
    assert!(Prefix::parse("0.0.0.0/0")
        .unwrap()
        .contains(IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1))));
}
