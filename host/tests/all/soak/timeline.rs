//! What happened when during a soak run: the disruptions as they were made, and a sample
//! of both hosts' metrics and of the independent counters every few seconds (a host that
//! is down is simply missing from its samples).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::audit::Seen;
use crate::servers::webhook_receiver::WebhookReceiver;

/// The market monitor's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarketSample {
    /// Requests the engine enqueued (`impressox_market_alerts_total`).
    pub alerts: f64,
    /// Firings whose key was already enqueued (a commit retried after Redis died).
    pub duplicates: f64,
    pub ticks: f64,
    pub store_errors: f64,
    pub stream_len: f64,
    /// Enqueues refused at the stream's bound (each retry counts).
    pub refused: f64,
}

/// The notify worker's delivery records by state at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotifySample {
    pub sent: f64,
    pub queued: f64,
    pub sending: f64,
    pub dead: f64,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Duration,
    pub market: Option<MarketSample>,
    pub notify: Option<NotifySample>,
    /// Entries the audit group took from `notify:requests`.
    pub audited: usize,
    /// Deliveries that reached the webhook receiver.
    pub received: usize,
}

pub struct Timeline {
    started: Instant,
    events: Mutex<Vec<(Duration, String)>>,
    samples: Mutex<Vec<Sample>>,
}

/// Where the sampler looks.
pub struct Sources {
    pub http: reqwest::Client,
    pub market_api: String,
    pub notify_api: String,
    pub receiver: Arc<WebhookReceiver>,
    pub audit: Arc<Mutex<Seen>>,
}

impl Timeline {
    pub fn new() -> Arc<Timeline> {
        Arc::new(Timeline {
            started: Instant::now(),
            events: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Note an event (and print it at once).
    pub fn note(&self, what: impl Into<String>) {
        let at = self.started.elapsed();
        let what = what.into();
        eprintln!("soak [{}] {what}", clock(at));
        self.events.lock().push((at, what));
    }

    pub fn events(&self) -> Vec<(Duration, String)> {
        self.events.lock().clone()
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().clone()
    }

    /// Sample every `every` until the returned task is aborted.
    pub fn start_sampling(
        self: &Arc<Self>,
        sources: Sources,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let timeline = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let sample = sources.sample(timeline.started.elapsed()).await;
                eprintln!("soak {}", sample.line());
                timeline.samples.lock().push(sample);
            }
        })
    }
}

impl Sources {
    pub async fn sample(&self, at: Duration) -> Sample {
        let market = self.metrics(&self.market_api).await.map(|m| MarketSample {
            alerts: value(&m, "impressox_market_alerts_total"),
            duplicates: value(&m, "impressox_market_alerts_duplicate_total"),
            ticks: value(&m, "impressox_market_ticks_evaluated_total"),
            store_errors: value(&m, "impressox_market_store_errors_total"),
            stream_len: value(&m, "impressox_stream_length{stream=\"notify:requests\"}"),
            refused: value(
                &m,
                "impressox_stream_enqueue_refused_total{stream=\"notify:requests\"}",
            ),
        });
        let notify = self.metrics(&self.notify_api).await.map(|m| NotifySample {
            sent: value(&m, "impressox_notify_records{state=\"sent\"}"),
            queued: value(&m, "impressox_notify_records{state=\"queued\"}"),
            sending: value(&m, "impressox_notify_records{state=\"sending\"}"),
            dead: value(&m, "impressox_notify_records{state=\"dead\"}"),
        });
        Sample {
            at,
            market,
            notify,
            audited: self.audit.lock().entries.len(),
            received: self.receiver.received_count(),
        }
    }

    async fn metrics(&self, api: &str) -> Option<String> {
        let response = self
            .http
            .get(format!("{api}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }
}

impl Sample {
    /// One line for the console.
    pub fn line(&self) -> String {
        let market = match &self.market {
            Some(m) => format!(
                "market: ticks {:.0}, enqueued {:.0}, dup {:.0}, stream {:.0}, refused {:.0}, store errors {:.0}",
                m.ticks, m.alerts, m.duplicates, m.stream_len, m.refused, m.store_errors
            ),
            None => "market: down".into(),
        };
        let notify = match &self.notify {
            Some(n) => format!(
                "notify: sent {:.0}, queued {:.0}, sending {:.0}, dead {:.0}",
                n.sent, n.queued, n.sending, n.dead
            ),
            None => "notify: down".into(),
        };
        format!(
            "[{}] {market} | audit {} | {notify} | received {}",
            clock(self.at),
            self.audited,
            self.received
        )
    }
}

/// The value of the sample whose name and labels are exactly `series`, 0 if absent.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// `mm:ss` since the start.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}
