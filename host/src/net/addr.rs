//! Which IP addresses are public: the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! as one function, [`non_public`], that names the range an address falls in.
//!
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are unwrapped and their IPv4 is
//! judged like any other, because a connection to them ends at that IPv4 address: NAT64
//! to `127.0.0.1` is loopback. Forms whose translation is local or deprecated
//! (IPv4-compatible `::a.b.c.d`, local-use NAT64 `64:ff9b:1::/48`) are refused whatever
//! they carry. Outside global unicast (`2000::/3`) nothing is public.
//!
//! Ranges marked "globally reachable" by IANA (AS112, AMT, PCP anycast, ORCHIDv2, the
//! drone prefix) stay public; everything else special is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is not a public address (the range's name), or `None` when it is public.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// IPv4 ranges that are not public, most specific first where they nest.
const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" 0.0.0.0/8"),
    ([10, 0, 0, 0], 8, "private 10.0.0.0/8"),
    ([100, 64, 0, 0], 10, "shared (CGNAT) 100.64.0.0/10"),
    ([127, 0, 0, 0], 8, "loopback 127.0.0.0/8"),
    ([169, 254, 0, 0], 16, "link-local 169.254.0.0/16"),
    ([172, 16, 0, 0], 12, "private 172.16.0.0/12"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments 192.0.0.0/24"),
    ([192, 0, 2, 0], 24, "documentation 192.0.2.0/24"),
    (
        [192, 88, 99, 0],
        24,
        "deprecated 6to4 relay anycast 192.88.99.0/24",
    ),
    ([192, 168, 0, 0], 16, "private 192.168.0.0/16"),
    ([198, 18, 0, 0], 15, "benchmarking 198.18.0.0/15"),
    ([198, 51, 100, 0], 24, "documentation 198.51.100.0/24"),
    ([203, 0, 113, 0], 24, "documentation 203.0.113.0/24"),
    ([224, 0, 0, 0], 4, "multicast 224.0.0.0/4"),
    ([255, 255, 255, 255], 32, "broadcast 255.255.255.255"),
    ([240, 0, 0, 0], 4, "reserved 240.0.0.0/4"),
];

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| prefix_matches32(bits, u32::from_be_bytes(*net), *len))
        .map(|(_, _, name)| *name)
}

fn prefix_matches32(bits: u32, net: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    bits & mask == net & mask
}

fn prefix_matches128(bits: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    bits & mask == net & mask
}

/// IPv6 ranges refused outright (no IPv4 inside that could make them public).
const V6_RANGES: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::"),
    (1, 128, "loopback ::1"),
    (0x0064_ff9b_0001 << 80, 48, "local-use NAT64 64:ff9b:1::/48"),
    (0x0100 << 112, 64, "discard-only 100::/64"),
    (
        0x0100_0000_0000_0001 << 64,
        64,
        "dummy prefix 100:0:0:1::/64",
    ),
    (0x2001_0002 << 96, 48, "benchmarking 2001:2::/48"),
    (0x2001_0010 << 96, 28, "deprecated ORCHID 2001:10::/28"),
    (0x2001_0db8 << 96, 32, "documentation 2001:db8::/32"),
    (0x3fff << 112, 20, "documentation 3fff::/20"),
    (0x5f00 << 112, 16, "SRv6 SIDs 5f00::/16"),
    (0xfc00 << 112, 7, "unique local fc00::/7"),
    (0xfe80 << 112, 10, "link-local fe80::/10"),
    (0xfec0 << 112, 10, "deprecated site-local fec0::/10"),
    (0xff00 << 112, 8, "multicast ff00::/8"),
];

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    if let Some((_, _, name)) = V6_RANGES
        .iter()
        .find(|(net, len, _)| prefix_matches128(bits, *net, *len))
    {
        return Some(name);
    }
    let low32 = Ipv4Addr::from(bits as u32);
    // ::ffff:a.b.c.d: the IPv4 address itself, as dual-stack sockets send it.
    if prefix_matches128(bits, 0xffff << 32, 96) {
        return non_public_v4(low32).map(|_| "IPv4-mapped address of a non-public IPv4");
    }
    // ::a.b.c.d, deprecated by RFC 4291: no public use, whatever it carries.
    if prefix_matches128(bits, 0, 96) {
        return Some("deprecated IPv4-compatible ::/96");
    }
    // NAT64's well-known prefix: the translator connects to the embedded IPv4.
    if prefix_matches128(bits, 0x0064_ff9b << 96, 96) {
        return non_public_v4(low32).map(|_| "NAT64 64:ff9b::/96 of a non-public IPv4");
    }
    // 6to4: the IPv4 of the tunnel end in bits 16..48.
    if prefix_matches128(bits, 0x2002 << 112, 16) {
        let v4 = Ipv4Addr::from((bits >> 80) as u32);
        return non_public_v4(v4).map(|_| "6to4 2002::/16 of a non-public IPv4");
    }
    // Teredo: the server's IPv4 in bits 32..64, the client's (inverted) in the last 32.
    if prefix_matches128(bits, 0x2001 << 112, 32) {
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!(bits as u32));
        if non_public_v4(server).is_some() || non_public_v4(client).is_some() {
            return Some("Teredo 2001::/32 of a non-public IPv4");
        }
        return None;
    }
    // Everything outside global unicast is reserved by the IETF.
    if !prefix_matches128(bits, 0x2000 << 112, 3) {
        return Some("reserved (outside global unicast 2000::/3)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<&'static str> {
        non_public(s.parse().unwrap())
    }

    #[test]
    fn every_non_public_ipv4_range_is_refused() {
        for (ip, range) in [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("10.0.0.1", "10.0.0.0/8"),
            ("10.255.255.255", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.8.9.10", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.2.10", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("233.252.0.1", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("254.1.2.3", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255"),
        ] {
            let why = refused(ip).unwrap_or_else(|| panic!("{ip} was taken for public"));
            assert!(why.contains(range), "{ip}: {why}");
        }
    }

    #[test]
    fn public_ipv4_next_to_the_ranges_is_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_non_public_ipv6_range_is_refused() {
        for (ip, range) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:10.1.2.3", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("64:ff9b::10.0.0.1", "NAT64"),
            ("64:ff9b::169.254.169.254", "NAT64"),
            ("64:ff9b:1::8.8.8.8", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("100:0:0:1::1", "100:0:0:1::/64"),
            ("2001:2::1", "2001:2::/48"),
            ("2001:10::1", "ORCHID"),
            ("2001:db8::1", "2001:db8::/32"),
            ("3fff::1", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:a00:1::1", "6to4"),
            ("2002:c0a8:101::1", "6to4"),
            // Teredo with server 65.54.227.120 and client 127.0.0.1 (inverted: 80ff:fffe).
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
            // Teredo whose server is private.
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("febf::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("feff::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("ff0e::1", "ff00::/8"),
            ("4000::1", "2000::/3"),
            ("::ffff:0:7f00:1", "2000::/3"),
        ] {
            let why = refused(ip).unwrap_or_else(|| panic!("{ip} was taken for public"));
            assert!(why.contains(range), "{ip}: {why}");
        }
    }

    #[test]
    fn public_ipv6_and_wrapped_public_ipv4_are_allowed() {
        for ip in [
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            // Teredo: server 65.54.227.120, client 8.8.8.8 (inverted f7f7:f7f7).
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:1::1",
            "2001:20::1",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }
}
