//! The cluster's Redis side: heartbeats and partition leases, each step one Lua script so
//! it is atomic (Redis' own `SET NX PX` and compare-and-set; no protocol of our own), and
//! judged by Redis' clock (`TIME`), so hosts whose clocks differ agree on ages.
//!
//! A lease value is a fencing token (`<host>/<random>`, new for every acquisition); it is
//! renewed or deleted only by whoever presents that token, and the market commit checks
//! it (`redis_lua/commit_market.lua`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{HOSTS_KEY, lease_key};

/// Heartbeat, forget hosts silent for ten leases, count the live ones, and renew the
/// leases whose token is still ours. Answers Redis' time, the live hosts and the indices
/// (1-based, in KEYS[2..]) of leases no longer ours.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * lease)
local out = {tostring(now), tostring(redis.call('ZCOUNT', KEYS[1], now - lease, '+inf'))}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], lease)
  else
    out[#out + 1] = tostring(i - 1)
  end
end
return out
";

/// Take free leases, at most ARGV[2] of them, in KEYS order: `SET NX PX` with the token
/// for each. Answers the indices (1-based) taken.
const ACQUIRE: &str = r"
local want = tonumber(ARGV[2])
local got = {}
for i = 1, #KEYS do
  if #got >= want then break end
  if redis.call('SET', KEYS[i], ARGV[i + 2], 'NX', 'PX', ARGV[1]) then
    got[#got + 1] = tostring(i)
  end
end
return got
";

/// A host restarting under its own name takes its leases back with new tokens (the old
/// process is gone; were it not, its commits are refused from now on). Answers the
/// indices taken.
const ADOPT: &str = r"
local prefix = ARGV[2]
local got = {}
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, #prefix) == prefix then
    redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ARGV[1])
    got[#got + 1] = tostring(i)
  end
end
return got
";

/// Compare-and-delete: give up each lease only while it holds our token.
const RELEASE: &str = r"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
";

/// Redis' time, the hosts with their last heartbeat, and per lease key its token (or
/// '') and remaining time in ms.
const STATUS: &str = r"
local t = redis.call('TIME')
local out = {tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))}
local hosts = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
out[#out + 1] = tostring(#hosts / 2)
for _, v in ipairs(hosts) do out[#out + 1] = v end
for i = 2, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
  out[#out + 1] = tostring(redis.call('PTTL', KEYS[i]))
end
return out
";

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Redis' clock (ms since the epoch).
    pub now_ms: i64,
    /// Hosts whose last heartbeat is younger than a lease.
    pub live_hosts: u32,
    /// Partitions whose lease is no longer ours.
    pub lost: Vec<u32>,
}

/// One host as [`Leases::status`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub id: String,
    pub heartbeat_age_ms: i64,
}

/// One partition's lease as [`Leases::status`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub partition: u32,
    /// The holder, `None` when free.
    pub host: Option<String>,
    /// Time until it expires unless renewed.
    pub expires_in_ms: i64,
}

/// The cluster's state in Redis at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub now_ms: i64,
    pub hosts: Vec<HostStatus>,
    pub leases: Vec<LeaseStatus>,
}

/// The lease scripts on their own Redis connection.
#[derive(Clone)]
pub struct Leases {
    conn: ConnectionManager,
    heartbeat: Script,
    acquire: Script,
    adopt: Script,
    release: Script,
    status: Script,
}

fn indices(reply: &[String], of: &[u32]) -> Vec<u32> {
    reply
        .iter()
        .filter_map(|i| i.parse::<usize>().ok())
        .filter_map(|i| of.get(i.checked_sub(1)?).copied())
        .collect()
}

impl Leases {
    /// Connect to the store's Redis (`[storage] redis_url`).
    pub async fn connect(url: &str) -> Result<Leases> {
        let client =
            redis::Client::open(url).with_context(|| format!("invalid redis_url `{url}`"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .with_context(|| format!("cannot connect to Redis at {url} for the market leases"))?;
        Ok(Leases {
            conn,
            heartbeat: Script::new(HEARTBEAT),
            acquire: Script::new(ACQUIRE),
            adopt: Script::new(ADOPT),
            release: Script::new(RELEASE),
            status: Script::new(STATUS),
        })
    }

    /// Heartbeat as `host` and renew `held` (partition → token) for `lease_ms`.
    pub async fn heartbeat(
        &self,
        host: &str,
        lease_ms: u64,
        held: &[(u32, String)],
    ) -> Result<Heartbeat> {
        let mut s = self.heartbeat.prepare_invoke();
        s.key(HOSTS_KEY).arg(host).arg(lease_ms.max(1));
        for (p, token) in held {
            s.key(lease_key(*p)).arg(token);
        }
        let reply: Vec<String> = s.invoke_async(&mut self.conn.clone()).await?;
        let number = |i: usize| reply.get(i).and_then(|v| v.parse::<i64>().ok());
        let (Some(now_ms), Some(live)) = (number(0), number(1)) else {
            return Err(anyhow!(
                "unexpected answer from the heartbeat script: {reply:?}"
            ));
        };
        let parts: Vec<u32> = held.iter().map(|(p, _)| *p).collect();
        Ok(Heartbeat {
            now_ms,
            live_hosts: live.max(1) as u32,
            lost: indices(&reply[2..], &parts),
        })
    }

    /// Take up to `want` of the free `candidates` for `lease_ms`, each with a new token of
    /// `host`. Returns what was taken.
    pub async fn acquire(
        &self,
        host: &str,
        lease_ms: u64,
        candidates: &[u32],
        want: usize,
    ) -> Result<Vec<(u32, String)>> {
        if candidates.is_empty() || want == 0 {
            return Ok(Vec::new());
        }
        let tokens: Vec<String> = candidates.iter().map(|_| super::new_token(host)).collect();
        let mut s = self.acquire.prepare_invoke();
        s.arg(lease_ms.max(1)).arg(want);
        for (p, t) in candidates.iter().zip(&tokens) {
            s.key(lease_key(*p)).arg(t);
        }
        let reply: Vec<String> = s.invoke_async(&mut self.conn.clone()).await?;
        Ok(self.taken(&reply, candidates, &tokens))
    }

    /// Take back the leases `host` held before a restart (all `partitions`), with new
    /// tokens.
    pub async fn adopt(
        &self,
        host: &str,
        lease_ms: u64,
        partitions: u32,
    ) -> Result<Vec<(u32, String)>> {
        let all: Vec<u32> = (0..partitions).collect();
        let tokens: Vec<String> = all.iter().map(|_| super::new_token(host)).collect();
        let mut s = self.adopt.prepare_invoke();
        s.arg(lease_ms.max(1)).arg(format!("{host}/"));
        for (p, t) in all.iter().zip(&tokens) {
            s.key(lease_key(*p)).arg(t);
        }
        let reply: Vec<String> = s.invoke_async(&mut self.conn.clone()).await?;
        Ok(self.taken(&reply, &all, &tokens))
    }

    fn taken(&self, reply: &[String], of: &[u32], tokens: &[String]) -> Vec<(u32, String)> {
        reply
            .iter()
            .filter_map(|i| i.parse::<usize>().ok())
            .filter_map(|i| {
                let i = i.checked_sub(1)?;
                Some((*of.get(i)?, tokens.get(i)?.clone()))
            })
            .collect()
    }

    /// Give up `held` leases that still hold our tokens; how many were ours.
    pub async fn release(&self, held: &[(u32, String)]) -> Result<u64> {
        if held.is_empty() {
            return Ok(0);
        }
        let mut s = self.release.prepare_invoke();
        for (p, t) in held {
            s.key(lease_key(*p)).arg(t);
        }
        Ok(s.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Every host and every lease of `partitions`, at one moment.
    pub async fn status(&self, partitions: u32) -> Result<Status> {
        let mut s = self.status.prepare_invoke();
        s.key(HOSTS_KEY);
        for p in 0..partitions {
            s.key(lease_key(p));
        }
        let reply: Vec<String> = s.invoke_async(&mut self.conn.clone()).await?;
        let bad = || anyhow!("unexpected answer from the status script");
        let now_ms: i64 = reply.first().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let n: usize = reply.get(1).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let mut at = 2;
        let mut hosts = Vec::with_capacity(n);
        for _ in 0..n {
            let id = reply.get(at).ok_or_else(bad)?.clone();
            let beat: f64 = reply
                .get(at + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?;
            hosts.push(HostStatus {
                id,
                heartbeat_age_ms: now_ms - beat as i64,
            });
            at += 2;
        }
        let mut leases = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let token = reply.get(at).ok_or_else(bad)?;
            let ttl: i64 = reply
                .get(at + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?;
            leases.push(LeaseStatus {
                partition: p,
                host: (!token.is_empty()).then(|| super::token_host(token).to_string()),
                expires_in_ms: ttl.max(0),
            });
            at += 2;
        }
        Ok(Status {
            now_ms,
            hosts,
            leases,
        })
    }
}
