//! A local stand-in for Binance's spot WebSocket (REFERENCE.md, "Price feeds").
//!
//! It accepts any path — raw streams (`/ws/btcusdt@trade`) and combined ones
//! (`/stream?streams=btcusdt@trade/ethusdt@trade`) — and records it, so a test can check what the
//! client asked for. What is sent is up to the test: [`BinanceStandIn::send_trade`] and friends
//! push real event JSON to every connected client. Live `SUBSCRIBE`/`UNSUBSCRIBE` requests get
//! Binance's answer `{"result":null,"id":N}`.
//!
//! The failure knobs are the ones a feed client must survive: [`BinanceStandIn::close_abruptly`]
//! drops every TCP connection without a close frame (a network cut or a server restart), and
//! [`BinanceStandIn::set_silent`] keeps the socket open but sends and answers nothing, not even
//! pongs (a silently dead connection that only a heartbeat watchdog can detect).
//!
//! Plain `ws://` on loopback: TLS is the real client's business and is not under test here.
//! Methods that push or inspect are synchronous so a test can call them from anywhere; the
//! server itself runs as tokio tasks on the test's runtime and stops when the struct is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

pub struct BinanceStandIn {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    accept_task: AbortHandle,
}

/// What the accept loop, the client tasks and the test's handle share.
struct Shared {
    state: Mutex<State>,
    /// Silence is a watch so that client tasks blocked on a read wake up when it changes.
    silent: watch::Sender<bool>,
    /// Connections whose task is still running (the TCP connection is open).
    open: AtomicUsize,
    /// Trade ids for generated events, increasing like Binance's.
    next_trade_id: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Connections that completed the WebSocket handshake, ever.
    accepted: usize,
    paths: Vec<String>,
    received: Vec<String>,
    pongs: Vec<Vec<u8>>,
    /// Where to send frames: one channel per live client, keyed by connection number.
    clients: HashMap<usize, mpsc::UnboundedSender<Command>>,
    /// Every client task ever spawned, aborted on drop.
    tasks: Vec<AbortHandle>,
    /// Set on drop, so a task spawned concurrently with the drop is aborted too.
    closed: bool,
}

enum Command {
    Send(Message),
    /// Drop the connection without a close frame. Sent through the same channel as frames so
    /// that everything queued before it still goes out first.
    Cut,
}

impl BinanceStandIn {
    /// Listen on `127.0.0.1` on a port the kernel picks. Must be called inside a tokio runtime.
    pub async fn start() -> BinanceStandIn {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Binance stand-in");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            silent: watch::Sender::new(false),
            open: AtomicUsize::new(0),
            next_trade_id: AtomicU64::new(1_000_000),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        BinanceStandIn {
            addr,
            shared,
            accept_task,
        }
    }

    /// `ws://127.0.0.1:P` — append the path as the real client would (`/ws/btcusdt@trade`).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Send a text frame to every connected client (nothing while silent).
    pub fn send_text(&self, text: &str) {
        self.broadcast(Message::text(text));
    }

    /// A `trade` event in the raw-stream shape, as `/ws/<symbol>@trade` delivers it. Prices and
    /// quantities are decimal strings with eight places, like Binance's.
    pub fn send_trade(&self, symbol: &str, price: f64, ts_ms: i64) {
        let event = self.trade_event(symbol, price, ts_ms);
        self.send_text(&event.to_string());
    }

    /// The same event wrapped as the combined stream delivers it:
    /// `{"stream":"btcusdt@trade","data":{...}}`.
    pub fn send_combined_trade(&self, symbol: &str, price: f64, ts_ms: i64) {
        let event = json!({
            "stream": format!("{}@trade", symbol.to_lowercase()),
            "data": self.trade_event(symbol, price, ts_ms),
        });
        self.send_text(&event.to_string());
    }

    /// A ping frame to every connected client (nothing while silent); answers land in
    /// [`Self::pongs`].
    pub fn send_ping(&self, payload: &[u8]) {
        self.broadcast(Message::Ping(payload.to_vec().into()));
    }

    /// Drop every client's TCP connection with no close frame, after whatever was queued for it.
    /// New connections are accepted as usual, so a client can reconnect.
    pub fn close_abruptly(&self) {
        let clients = std::mem::take(&mut self.shared.state.lock().clients);
        for sender in clients.into_values() {
            let _ = sender.send(Command::Cut);
        }
    }

    /// While silent, nothing is sent (frames pushed by the test are discarded) and nothing from
    /// clients is read, so their pings and SUBSCRIBEs go unanswered; connections stay open and new
    /// ones are still accepted. When silence ends, what the clients sent meanwhile is read and
    /// answered late, as on a socket that was stalled.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.send_replace(silent);
    }

    /// Connections accepted (WebSocket handshake completed) so far.
    pub fn connections(&self) -> usize {
        self.shared.state.lock().accepted
    }

    /// Connections currently open.
    pub fn connected(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Request path and query of every accepted connection, in order, e.g. `/ws/btcusdt@trade`
    /// or `/stream?streams=btcusdt@trade/ethusdt@trade`.
    pub fn paths(&self) -> Vec<String> {
        self.shared.state.lock().paths.clone()
    }

    /// Text frames received from clients (SUBSCRIBE requests and the like), in order.
    pub fn received(&self) -> Vec<String> {
        self.shared.state.lock().received.clone()
    }

    /// Payloads of the pongs received from clients, in order.
    pub fn pongs(&self) -> Vec<Vec<u8>> {
        self.shared.state.lock().pongs.clone()
    }

    /// Wait until at least `n` connections have been accepted; false on timeout.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.connections() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn trade_event(&self, symbol: &str, price: f64, ts_ms: i64) -> Value {
        let trade_id = self.shared.next_trade_id.fetch_add(1, Ordering::SeqCst);
        json!({
            "e": "trade",
            "E": ts_ms,
            "s": symbol.to_uppercase(),
            "t": trade_id,
            "p": format!("{price:.8}"),
            "q": "0.01000000",
            "T": ts_ms,
            "m": false,
            "M": true,
        })
    }

    fn broadcast(&self, message: Message) {
        if *self.shared.silent.borrow() {
            return;
        }
        for sender in self.shared.state.lock().clients.values() {
            let _ = sender.send(Command::Send(message.clone()));
        }
    }
}

impl Drop for BinanceStandIn {
    fn drop(&mut self) {
        self.accept_task.abort();
        let mut state = self.shared.state.lock();
        state.closed = true;
        state.clients.clear();
        for task in state.tasks.drain(..) {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        next_id += 1;
        // The handshake runs in the client's own task so a slow client cannot stall the others.
        let task = tokio::spawn(serve_client(next_id, stream, shared.clone()));
        let mut state = shared.state.lock();
        if state.closed {
            task.abort();
        } else {
            state.tasks.push(task.abort_handle());
        }
    }
}

/// Counts a connection as open for as long as its task runs, aborted or not.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_client(id: usize, stream: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    // The error type is tungstenite's `Callback` signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let capture_path = |request: &Request, response: Response| {
        path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        Ok::<_, ErrorResponse>(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, capture_path).await else {
        return; // Not a WebSocket handshake: nothing to record.
    };

    shared.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(shared.clone());
    let (sender, mut commands) = mpsc::unbounded_channel();
    {
        let mut state = shared.state.lock();
        state.accepted += 1;
        state.paths.push(path);
        state.clients.insert(id, sender);
    }
    let mut silent = shared.silent.subscribe();

    loop {
        if *silent.borrow_and_update() {
            // Stalled: read nothing (tungstenite answers pings while reading, so not reading is
            // what keeps pongs back) and discard frames, but still obey a cut.
            tokio::select! {
                changed = silent.changed() => if changed.is_err() { break },
                command = commands.recv() => match command {
                    Some(Command::Send(_)) => {}
                    Some(Command::Cut) | None => break,
                },
            }
            continue;
        }
        tokio::select! {
            changed = silent.changed() => if changed.is_err() { break },
            command = commands.recv() => match command {
                Some(Command::Send(message)) => {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                // Returning drops the socket: the peer sees EOF/reset, never a close frame.
                Some(Command::Cut) | None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    shared.state.lock().received.push(text.as_str().to_owned());
                    if let Some(answer) = answer_request(text.as_str())
                        && ws.send(Message::text(answer)).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Pong(payload))) => shared.state.lock().pongs.push(payload.to_vec()),
                // Pings are answered by tungstenite itself; a close is echoed by it too.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    shared.state.lock().clients.remove(&id);
}

/// Binance's answer to a live subscription request, `None` for anything else.
fn answer_request(text: &str) -> Option<String> {
    let request: Value = serde_json::from_str(text).ok()?;
    match request.get("method")?.as_str()? {
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            Some(json!({ "result": null, "id": id }).to_string())
        }
        _ => None,
    }
}
