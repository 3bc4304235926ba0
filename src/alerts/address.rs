//! Where webhooks may point: `http(s)` URLs whose host resolves only to public addresses
//! (loopback and private ones too when allowed; link-local never). Checked when a webhook is
//! saved and again on every connection, after DNS resolution: the deliverer's HTTP client
//! resolves names through [`GuardedResolver`], so a name that later resolves elsewhere (DNS
//! rebinding) is refused at delivery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::error::{AppError, AppResult};

/// Longest webhook URL.
pub const MAX_URL: usize = 2048;

/// How long resolving a webhook's host may take when it is saved.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `ip` may not receive webhooks, if it may not.
pub fn refused(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_private),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => refused_v4(v4, allow_private),
            None => refused_v6(v6, allow_private),
        },
    }
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated but routable by some stacks) and NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(tail)
}

/// Cloud metadata services outside the link-local range (Alibaba's; AWS's IPv6 one below).
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

fn refused_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() || METADATA_V4.contains(&ip) {
        return Some("a link-local or cloud metadata address is never allowed");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
        return Some("not a unicast address");
    }
    let shared = a == 100 && (64..128).contains(&b);
    let private = ip.is_loopback() || ip.is_private() || shared;
    (private && !allow_private).then_some("a loopback or private address (see --webhook-allow-private)")
}

fn refused_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if first & 0xffc0 == 0xfe80 || METADATA_V6.contains(&ip) {
        return Some("a link-local or cloud metadata address is never allowed");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    let private = ip.is_loopback() || first & 0xfe00 == 0xfc00;
    (private && !allow_private).then_some("a loopback or private address (see --webhook-allow-private)")
}

/// Checks that every one of `addrs` may receive webhooks.
fn check_all(host: &str, addrs: &[SocketAddr], allow_private: bool) -> Result<(), String> {
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for addr in addrs {
        if let Some(why) = refused(addr.ip(), allow_private) {
            return Err(format!("{host} resolves to {}: {why}", addr.ip()));
        }
    }
    Ok(())
}

/// Checks a webhook URL as given by a user: its form, and where its host resolves now.
pub async fn check_url(field: &str, url: &str, allow_private: bool) -> AppResult<reqwest::Url> {
    let url = url.trim();
    if url.len() > MAX_URL {
        return Err(AppError::invalid(field, format!("at most {MAX_URL} characters")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| AppError::invalid(field, format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(AppError::invalid(field, "only http and https URLs are allowed"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(AppError::invalid(field, "must not carry credentials; put a token in the path instead"));
    }
    let Some(host) = parsed.host() else { return Err(AppError::invalid(field, "has no host")) };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host {
        url::Host::Ipv4(ip) => vec![SocketAddr::new(ip.into(), port)],
        url::Host::Ipv6(ip) => vec![SocketAddr::new(ip.into(), port)],
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(AppError::invalid(field, format!("{name} does not resolve ({e})"))),
                Err(_) => return Err(AppError::invalid(field, format!("{name} did not resolve in time"))),
            }
        }
    };
    check_all(&host.to_string(), &addrs, allow_private).map_err(|why| AppError::invalid(field, why))?;
    Ok(parsed)
}

/// Checks a URL's host when it is an IP address (names are checked by [`GuardedResolver`]).
pub fn check_literal_host(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    let ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    match refused(ip, allow_private) {
        Some(why) => Err(format!("{ip}: {why}")),
        None => Ok(()),
    }
}

/// The deliverer's DNS resolver: resolves as the system does, and refuses a name any of whose
/// addresses may not receive webhooks.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            check_all(&host, &addrs, allow_private)?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_addresses_need_the_setting_and_link_local_ones_are_never_allowed() {
        for public in ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"] {
            assert_eq!(refused(ip(public), false), None, "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(refused(ip(private), false).is_some(), "{private}");
            assert_eq!(refused(ip(private), true), None, "{private} with private allowed");
        }
        for never in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
        ] {
            assert!(refused(ip(never), true).is_some(), "{never}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_form_and_for_where_they_resolve() {
        let bad = |url: &'static str| async move { check_url("url", url, false).await.unwrap_err().to_string() };
        assert!(bad("ftp://example.com/x").await.contains("only http and https"));
        assert!(bad("not a url").await.contains("not a URL"));
        assert!(bad("http://user:pw@93.184.216.34/").await.contains("credentials"));
        assert!(bad("http://169.254.169.254/latest/meta-data").await.contains("link-local"));
        assert!(bad("http://127.0.0.1:9/hook").await.contains("private"));
        // A name is judged by what it resolves to.
        assert!(bad("http://localhost:9/hook").await.contains("private"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(check_url("url", &long, false).await.unwrap_err().to_string().contains("at most 2048"));
        assert!(check_url("url", "http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("url", "http://[fe80::1]:9/", true).await.is_err());
    }
}
