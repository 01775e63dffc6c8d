//! [`GuardedProxy`]: a forward proxy on a loopback port that connects only where the
//! [`Guard`] allows, for a client that would otherwise resolve and connect on its own
//! (Chromium rendering a `urls` page; docs/design/rag.md §22).
//!
//! Checking a URL and then letting Chromium connect leaves two gaps: Chromium resolves the
//! name again (a rebinding DNS answer can be `127.0.0.1` the second time), and some traffic
//! never passes the check at all (WebSocket handshakes are not paused by the Fetch domain).
//! Pointed at this proxy (with loopback taken off Chromium's implicit bypass list), every
//! connection of the context comes here, and for each the proxy resolves the name **once**
//! itself ([`Guard::vetted_addrs`]: the guard's own rules, no second copy), and connects to
//! one of exactly the addresses it vetted. Chromium never resolves the name, so there is
//! nothing to rebind.
//!
//! What it serves (HTTP/1.1, through hyper):
//! - `CONNECT host:port`: HTTPS, `wss://`, and `ws://` (Chromium tunnels every WebSocket
//!   through an HTTP proxy with CONNECT). A `200` and then the bytes both ways.
//! - absolute-form requests, `GET http://host/path`: forwarded on a connection of their
//!   own in origin form, hop-by-hop headers dropped; an `Upgrade` (a `ws://` handshake
//!   from a client that does not tunnel) is carried through and then spliced.
//!
//! A refused destination is answered `403` with the guard's reason (host and range, never
//! the path) and nothing is connected; a name that does not resolve or an address that
//! does not answer is `502`. Every failure is that connection's: logged, never the
//! caller's. Limits: connections at once (more wait in the listen queue), the time to
//! read a request head, to connect, to get a response head, and how long a tunnel may sit
//! idle. Dropping the proxy stops it and every connection it carries.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::guard::{Guard, GuardError};

/// How much the proxy takes on, and how long it waits.
#[derive(Debug, Clone)]
pub struct ProxyLimits {
    /// Client connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Reading a request's head.
    pub header_timeout: Duration,
    /// One connection attempt to a vetted address.
    pub connect_timeout: Duration,
    /// A forwarded request's response head.
    pub response_timeout: Duration,
    /// A tunnel with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            // Chromium opens at most 32 sockets per proxy; a few pages' worth.
            max_connections: 128,
            header_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What the proxy did, counted (tests, logs).
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Destinations refused by the guard (403).
    pub refused: AtomicU64,
    /// Tunnels opened (CONNECT and spliced upgrades).
    pub tunnels: AtomicU64,
    /// Absolute-form requests forwarded.
    pub forwarded: AtomicU64,
}

/// A running proxy (see the module docs). Dropping it stops it.
pub struct GuardedProxy {
    addr: SocketAddr,
    counts: Arc<ProxyCounts>,
    stop: CancellationToken,
}

/// What every connection's handler shares.
struct Shared {
    guard: Arc<Guard>,
    limits: ProxyLimits,
    counts: Arc<ProxyCounts>,
    stop: CancellationToken,
}

type Body = BoxBody<Bytes, hyper::Error>;

impl GuardedProxy {
    /// Listens on `127.0.0.1:0` and serves until dropped; `guard` decides every destination.
    pub async fn start(guard: Arc<Guard>, limits: ProxyLimits) -> std::io::Result<GuardedProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(ProxyCounts::default());
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            guard,
            limits,
            counts: counts.clone(),
            stop: stop.clone(),
        });
        tokio::spawn(accept_loop(listener, shared));
        Ok(GuardedProxy { addr, counts, stop })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, as a browser's proxy server setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it did so far.
    pub fn counts(&self) -> &ProxyCounts {
        &self.counts
    }
}

impl Drop for GuardedProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => Arc::new(p),
                Err(_) => return,
            },
            _ = shared.stop.cancelled() => return,
        };
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "the rendering proxy could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shared.stop.cancelled() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service_shared = shared.clone();
            let service_permit = permit.clone();
            let service = hyper::service::service_fn(move |req| {
                handle(service_shared.clone(), service_permit.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(shared.limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                res = conn => if let Err(e) = res {
                    tracing::debug!(error = %e, "a rendering proxy connection ended with an error");
                },
                _ = shared.stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// One request of a client connection. Never fails: every problem is an HTTP answer.
async fn handle(
    shared: Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(if req.method() == Method::CONNECT {
        connect(shared, permit, req).await
    } else {
        forward(shared, permit, req).await
    })
}

/// `CONNECT host:port`: dial the vetted address, answer 200, then splice.
async fn connect(
    shared: Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return reply(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let Some(port) = authority.port_u16() else {
        return reply(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let upstream = match dial(&shared, authority.host(), port).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    shared.counts.tunnels.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _permit = permit;
        match hyper::upgrade::on(req).await {
            Ok(client) => splice(&shared, TokioIo::new(client), upstream).await,
            Err(e) => tracing::debug!(error = %e, "a CONNECT was not upgraded"),
        }
    });
    Response::new(empty())
}

/// An absolute-form request (`GET http://host/path`): sent on a new connection to the
/// vetted address in origin form; a `101` answer is spliced both ways.
async fn forward(
    shared: Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let uri = req.uri().clone();
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("`{other}` is not forwarded; https goes through CONNECT"),
            );
        }
        None => return reply(StatusCode::BAD_REQUEST, "not a proxy request"),
    }
    let Some(host) = uri.host() else {
        return reply(StatusCode::BAD_REQUEST, "the URL has no host");
    };
    let port = uri.port_u16().unwrap_or(80);
    let upstream = match dial(&shared, host, port).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(upstream)).await {
            Ok(x) => x,
            Err(e) => return reply(StatusCode::BAD_GATEWAY, &format!("{host}: {e}")),
        };
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            res = conn.with_upgrades() => if let Err(e) = res {
                tracing::debug!(error = %e, "a forwarded connection ended with an error");
            },
            _ = stop.cancelled() => {}
        }
    });

    let upgrading = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let origin_form = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    *req.uri_mut() = origin_form;
    strip_hop_by_hop(req.headers_mut(), upgrading);
    if !req.headers().contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(v) = authority.as_str().parse()
    {
        req.headers_mut().insert(header::HOST, v);
    }
    shared.counts.forwarded.fetch_add(1, Ordering::Relaxed);
    let mut resp = match tokio::time::timeout(
        shared.limits.response_timeout,
        sender.send_request(req),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return reply(StatusCode::BAD_GATEWAY, &format!("{host}: {e}")),
        Err(_) => return reply(StatusCode::GATEWAY_TIMEOUT, &format!("{host}: no answer")),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        shared.counts.tunnels.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    splice(&shared, TokioIo::new(client), TokioIo::new(upstream)).await
                }
                Err(e) => tracing::debug!(error = %e, "an upgrade was not completed"),
            }
        });
        return resp.map(|_| empty());
    }
    strip_hop_by_hop(resp.headers_mut(), false);
    resp.map(|b| b.boxed())
}

/// Resolves `host` once through the guard and connects to the first vetted address that
/// answers; the error is the client's answer.
async fn dial(shared: &Shared, host: &str, port: u16) -> Result<TcpStream, Response<Body>> {
    let host = host.trim_matches(['[', ']']);
    let ips: Vec<IpAddr> = match shared.guard.vetted_addrs(host).await {
        Ok(ips) => ips,
        Err(GuardError::Refused(why)) => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%host, port, reason = %why, "the rendering proxy refused a destination");
            return Err(reply(StatusCode::FORBIDDEN, &format!("refused: {why}")));
        }
        Err(e @ GuardError::Lookup { .. }) => {
            return Err(reply(StatusCode::BAD_GATEWAY, &e.to_string()));
        }
    };
    let mut last = String::from("no address");
    for ip in ips {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    Err(reply(
        StatusCode::BAD_GATEWAY,
        &format!("cannot connect to {host}:{port}: {last}"),
    ))
}

/// Copies both ways until either side closes, the tunnel idles out, or the proxy stops.
async fn splice<A, B>(shared: &Shared, client: A, mut upstream: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Activity {
        inner: client,
        start,
        last: last.clone(),
    };
    let idle = shared.limits.idle_timeout;
    let idled_out = async {
        loop {
            let quiet_ms =
                (start.elapsed().as_millis() as u64).saturating_sub(last.load(Ordering::Relaxed));
            let quiet = Duration::from_millis(quiet_ms);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "a tunnel ended with an error");
            }
        }
        _ = idled_out => tracing::debug!("a tunnel was idle and is closed"),
        _ = shared.stop.cancelled() => {}
    }
}

/// A stream that notes when bytes last went through it (either way).
struct Activity<S> {
    inner: S,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Drops the headers that belong to one hop (RFC 9110 §7.6.1) and those the
/// `Connection` header names; `Connection: upgrade` and `Upgrade` stay for a handshake.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| name.trim().parse::<HeaderName>().ok())
        .filter(|name| !(upgrading && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "keep-alive",
        "te",
        "trailer",
    ] {
        headers.remove(name);
    }
    if !upgrading {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn reply(status: StatusCode, text: &str) -> Response<Body> {
    let body = format!("impressox rendering proxy: {text}\n");
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    //! The proxy against real sockets on loopback. 127.0.0.1 stands for an internal
    //! address the guard refuses; 127.0.0.2 (also loopback) is made acceptable with
    //! `trusted_addresses`, standing for a public site.

    use std::future::Future;
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::net::guard::Lookup;
    use crate::net::{Outbound, OutboundPolicy};

    const SITE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const INTERNAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A resolver standing in for a rebinding DNS server: the site's address for the
    /// first question, the internal one for every question after it.
    struct Rebinding {
        calls: AtomicUsize,
    }

    impl Lookup for Rebinding {
        fn lookup(
            &self,
            _host: &str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let ip = if n == 0 { SITE } else { INTERNAL };
            Box::pin(async move { Ok(vec![ip]) })
        }
    }

    fn guard_with(lookup: Arc<dyn Lookup>) -> Arc<Guard> {
        let policy = OutboundPolicy {
            trusted_addresses: vec![SITE],
            ..OutboundPolicy::default()
        };
        Outbound::with_lookup(&policy, lookup)
            .unwrap()
            .shared_guard()
    }

    fn guard() -> Arc<Guard> {
        guard_with(Arc::new(crate::net::guard::SystemLookup))
    }

    /// A TCP server on `ip:port` that greets each connection with `name` and echoes what
    /// it is sent; counts connections.
    async fn greeter(ip: IpAddr, port: u16, name: &'static str) -> (u16, Arc<AtomicU64>) {
        let listener = TcpListener::bind((ip, port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    /// Sends `CONNECT target` and returns the stream and the response head.
    async fn send_connect(proxy: &GuardedProxy, target: &str) -> (TcpStream, String) {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
                .await
                .expect("the proxy answers")
                .unwrap();
            assert!(
                n > 0,
                "closed before the head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
        (s, String::from_utf8(head).unwrap())
    }

    async fn read_some(s: &mut TcpStream, n: usize) -> String {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("bytes arrive")
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[tokio::test]
    async fn connect_to_a_refused_address_is_403_and_connects_nothing() {
        let (port, accepted) = greeter(INTERNAL, 0, "internal").await;
        let proxy = GuardedProxy::start(guard(), ProxyLimits::default())
            .await
            .unwrap();
        for target in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::ffff:127.0.0.1]:{port}"),
        ] {
            let (mut s, head) = send_connect(&proxy, &target).await;
            assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
            // The connection stays open (keep-alive): read up to the reply's newline.
            let mut body = Vec::new();
            let mut chunk = [0u8; 256];
            while !body.ends_with(b"\n") {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                    .await
                    .expect("the reason arrives")
                    .unwrap();
                assert!(n > 0, "{target}: closed in the body");
                body.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(body).unwrap();
            assert!(
                body.contains("refused") && body.contains("internal address"),
                "{target}: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
        assert_eq!(proxy.counts().refused.load(Ordering::SeqCst), 3);
        assert_eq!(proxy.counts().tunnels.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn connect_to_an_allowed_address_tunnels_bytes_both_ways() {
        let (port, accepted) = greeter(SITE, 0, "site").await;
        let proxy = GuardedProxy::start(guard(), ProxyLimits::default())
            .await
            .unwrap();
        let (mut s, head) = send_connect(&proxy, &format!("127.0.0.2:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(read_some(&mut s, 4).await, "site");
        s.write_all(b"ping").await.unwrap();
        assert_eq!(read_some(&mut s, 4).await, "ping");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.counts().tunnels.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_proxy_connects_to_the_address_it_vetted_and_never_resolves_again() {
        // The same port on both addresses: only the resolved address tells them apart.
        let (port, site) = greeter(SITE, 0, "site").await;
        let (_, internal) = greeter(INTERNAL, port, "internal").await;
        let lookup = Arc::new(Rebinding {
            calls: AtomicUsize::new(0),
        });
        let proxy = GuardedProxy::start(guard_with(lookup.clone()), ProxyLimits::default())
            .await
            .unwrap();
        let (mut s, head) = send_connect(&proxy, &format!("rebind.example:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(read_some(&mut s, 4).await, "site");
        assert_eq!(lookup.calls.load(Ordering::SeqCst), 1, "resolved once");
        assert_eq!(site.load(Ordering::SeqCst), 1);
        // The name now answers the internal address: refused, nothing connected.
        let (_, head) = send_connect(&proxy, &format!("rebind.example:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert_eq!(lookup.calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(internal.load(Ordering::SeqCst), 0);
    }

    /// An HTTP server on `ip` answering every request with its method, path and Host.
    async fn http_site(ip: IpAddr) -> (u16, Arc<AtomicU64>) {
        let hits = Arc::new(AtomicU64::new(0));
        let count = hits.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let proxy_header = req.headers().contains_key("proxy-connection");
                format!(
                    "{} {} host={host} proxy-connection={proxy_header}",
                    req.method(),
                    req.uri()
                )
            }
        });
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (port, hits)
    }

    #[tokio::test]
    async fn absolute_form_requests_are_forwarded_in_origin_form_or_refused() {
        let (site_port, site_hits) = http_site(SITE).await;
        let (internal_port, internal_hits) = http_site(INTERNAL).await;
        let proxy = GuardedProxy::start(guard(), ProxyLimits::default())
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
            .build()
            .unwrap();
        let resp = client
            .get(format!("http://127.0.0.2:{site_port}/a/b?c=1"))
            .header("Proxy-Connection", "keep-alive")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert_eq!(
            text,
            format!("GET /a/b?c=1 host=127.0.0.2:{site_port} proxy-connection=false")
        );
        assert_eq!(site_hits.load(Ordering::SeqCst), 1);
        // A second request on the same client connection, to another host: vetted anew.
        let resp = client
            .get(format!("http://127.0.0.1:{internal_port}/secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("loopback") && !text.contains("secret"),
            "{text}"
        );
        assert_eq!(internal_hits.load(Ordering::SeqCst), 0);
        assert_eq!(proxy.counts().forwarded.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_idle_tunnel_is_closed_and_a_dropped_proxy_stops_listening() {
        let (port, _) = greeter(SITE, 0, "site").await;
        let proxy = GuardedProxy::start(
            guard(),
            ProxyLimits {
                idle_timeout: Duration::from_millis(300),
                ..ProxyLimits::default()
            },
        )
        .await
        .unwrap();
        let (mut s, head) = send_connect(&proxy, &format!("127.0.0.2:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(read_some(&mut s, 4).await, "site");
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
            .await
            .expect("the idle tunnel is closed")
            .unwrap();
        assert_eq!(n, 0);
        let addr = proxy.addr();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
