//! `arbiter bench`: a load generator for `Authorize` over gRPC (with the echo floor to compare
//! it with) and for the token endpoint over HTTP. Closed loop (as fast as the server answers, for peak throughput) or paced at a
//! fixed rate (for latency at a given load). Latency counts from the moment a request is
//! sent; how late sends were against their schedule is reported beside it, so a server that
//! cannot keep up shows as lag instead of hiding its queueing (tokio's timer has 1 ms
//! resolution, so measuring from the schedule itself would add that slop to every request).
//! Also measures how long a policy change takes to go live on a running server.

pub mod echo;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

use crate::wire::proto::{self, authorizer_client::AuthorizerClient};

/// How to drive the load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Server URL, e.g. `http://127.0.0.1:50051`.
    pub addr: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// HTTP/2 connections to spread them over.
    pub connections: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Stop after this many requests instead (if set).
    pub requests: Option<u64>,
    /// Requests per second in total; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// Unmeasured time before measuring.
    pub warmup: Duration,
    /// What to send.
    pub workload: Workload,
}

/// What a load run sends.
#[derive(Debug, Clone)]
pub enum Workload {
    /// `Authorize` calls over gRPC, round robin over these requests.
    Authorize(Vec<proto::AuthorizeRequest>),
    /// Token requests to the OAuth token endpoint at `addr` (HTTP/1.1; `connections` is
    /// unused: each request in flight holds a connection).
    Token(TokenLoad),
    /// `GET` requests to the URL `addr` with an optional bearer token: an API directly, or
    /// through `arbiter gateway`, to measure what the gateway adds.
    Http {
        /// Bearer token, if any.
        token: Option<String>,
    },
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The server URL.
    pub addr: String,
    /// Completed requests (measured part).
    pub requests: u64,
    /// Failed requests (transport or status errors, or a token request that was not granted;
    /// a deny is not an error).
    pub errors: u64,
    /// Answers that allowed (for tokens: tokens granted).
    pub allowed: u64,
    /// Measured time.
    pub elapsed: Duration,
    /// Latency histogram in microseconds.
    pub latency_us: Histogram<u64>,
    /// How late paced sends were against their schedule, in microseconds.
    pub lag_us: Histogram<u64>,
}

impl LoadReport {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} requests in {:.2}s = {:.0} req/s; latency p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs; errors {}; allowed {}{}",
            self.addr,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rps(),
            self.quantile_us(0.5),
            self.quantile_us(0.9),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.latency_us.max(),
            self.errors,
            self.allowed,
            if self.lag_us.is_empty() {
                String::new()
            } else {
                format!("; send lag p99 {} µs, max {} µs", self.lag_us.value_at_quantile(0.99), self.lag_us.max())
            },
        )
    }

    /// The report as JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "addr": self.addr,
            "requests": self.requests,
            "errors": self.errors,
            "allowed": self.allowed,
            "seconds": self.elapsed.as_secs_f64(),
            "rps": self.rps(),
            "p50_us": self.quantile_us(0.5),
            "p90_us": self.quantile_us(0.9),
            "p99_us": self.quantile_us(0.99),
            "p999_us": self.quantile_us(0.999),
            "max_us": self.latency_us.max(),
            "lag_p99_us": self.lag_us.value_at_quantile(0.99),
            "lag_max_us": self.lag_us.max(),
        })
    }
}

/// Errors setting up a load run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad address.
    #[error("invalid address `{0}`")]
    Address(String),
    /// Could not connect.
    #[error("cannot connect to `{addr}`: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// Nothing to send.
    #[error("the request mix is empty")]
    EmptyMix,
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
}

/// Runs one load and reports. The generator's own cost is part of the measurement, as it
/// would be for any client sharing the machine.
pub async fn run_load(plan: &LoadPlan) -> Result<LoadReport, BenchError> {
    match &plan.workload {
        Workload::Authorize(mix) => authorize_load(plan, mix).await,
        Workload::Token(token) => token_load(plan, token).await,
        Workload::Http { token } => http_load(plan, token.as_deref()).await,
    }
}

async fn http_load(plan: &LoadPlan, token: Option<&str>) -> Result<LoadReport, BenchError> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| BenchError::Http(e.to_string()))?;
    let url = plan.addr.clone();
    let auth = token.map(|t| format!("Bearer {t}"));
    Ok(drive(plan, |_| {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        move |_k: usize| {
            let mut request = client.get(&url);
            if let Some(a) = &auth {
                request = request.header("authorization", a);
            }
            async move {
                let response = request.send().await.map_err(drop)?;
                let ok = response.status().is_success();
                response.bytes().await.map_err(drop)?;
                if ok {
                    Ok(true)
                } else {
                    Err(())
                }
            }
        }
    })
    .await)
}

async fn authorize_load(
    plan: &LoadPlan,
    mix: &[proto::AuthorizeRequest],
) -> Result<LoadReport, BenchError> {
    if mix.is_empty() {
        return Err(BenchError::EmptyMix);
    }
    let endpoint = Endpoint::from_shared(plan.addr.clone())
        .map_err(|_| BenchError::Address(plan.addr.clone()))?
        .tcp_nodelay(true);
    let mut channels = Vec::new();
    for _ in 0..plan.connections.max(1) {
        channels.push(
            endpoint
                .connect()
                .await
                .map_err(|source| BenchError::Connect {
                    addr: plan.addr.clone(),
                    source,
                })?,
        );
    }
    let mix: Arc<[proto::AuthorizeRequest]> = mix.into();
    Ok(drive(plan, |worker| {
        let client = AuthorizerClient::new(channels[worker % channels.len()].clone());
        let mix = mix.clone();
        move |k: usize| {
            let mut client = client.clone();
            let req = mix[k % mix.len()].clone();
            async move {
                client
                    .authorize(req)
                    .await
                    .map(|r| r.get_ref().decision == proto::Decision::Allow as i32)
                    .map_err(drop)
            }
        }
    })
    .await)
}

/// The token endpoint under load: `client_credentials` with HTTP Basic, as a gateway or a
/// service fleet would ask for tokens.
#[derive(Debug, Clone)]
pub struct TokenLoad {
    /// The client id.
    pub client_id: String,
    /// The client secret (never printed).
    pub client_secret: String,
    /// The `scope` parameter, if any.
    pub scope: Option<String>,
    /// Reuse connections (HTTP/1.1 keep-alive) or open one per token.
    pub keep_alive: bool,
}

async fn token_load(plan: &LoadPlan, load: &TokenLoad) -> Result<LoadReport, BenchError> {
    let url = format!("{}/token", plan.addr.trim_end_matches('/'));
    let mut builder = reqwest::Client::builder().tcp_nodelay(true);
    if !load.keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    let client = builder
        .build()
        .map_err(|e| BenchError::Http(e.to_string()))?;
    let mut body = String::from("grant_type=client_credentials");
    if let Some(scope) = &load.scope {
        body.push_str("&scope=");
        body.extend(form_urlencoded::byte_serialize(scope.as_bytes()));
    }
    let id = load.client_id.clone();
    let secret = load.client_secret.clone();
    Ok(drive(plan, |_| {
        let (client, url, body, id, secret) = (
            client.clone(),
            url.clone(),
            body.clone(),
            id.clone(),
            secret.clone(),
        );
        move |_k: usize| {
            let request = client
                .post(&url)
                .basic_auth(&id, Some(&secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
            async move {
                let response = request.send().await.map_err(drop)?;
                let granted = response.status().is_success();
                // Read the whole answer, as a client would, so the connection can be reused.
                response.bytes().await.map_err(drop)?;
                if granted {
                    Ok(true)
                } else {
                    Err(())
                }
            }
        }
    })
    .await)
}

/// Runs `plan.concurrency` workers, each sending with its own sender (made by
/// `make_sender(worker)`) closed loop or on its paced schedule, and merges what they measured.
/// A sender's `Ok(true)` counts as allowed, `Err` as an error.
async fn drive<S, Fut>(plan: &LoadPlan, mut make_sender: impl FnMut(usize) -> S) -> LoadReport
where
    S: FnMut(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, ()>> + Send,
{
    let concurrency = plan.concurrency.max(1);
    let budget = plan.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let started = Instant::now();
    let measure_from = started + plan.warmup;
    let stop_at = measure_from + plan.duration;
    // Each worker sends at `rate / concurrency`; its sends are scheduled, not reactive.
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(concurrency as f64 / r.max(1e-3)));

    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut send = make_sender(i);
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut lag = new_histogram();
            let (mut done, mut errors, mut allowed) = (0u64, 0u64, 0u64);
            let mut k = i;
            // stagger paced workers so their sends spread over the interval
            let mut next = interval.map(|iv| started + iv.mul_f64(i as f64 / concurrency as f64));
            loop {
                if let Some(b) = &budget {
                    if b.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_err()
                    {
                        break;
                    }
                }
                let scheduled = match (next, interval) {
                    (Some(at), Some(iv)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + iv);
                        at
                    }
                    _ => Instant::now(),
                };
                if budget.is_none() && scheduled >= stop_at {
                    break;
                }
                let request = send(k);
                k += concurrency;
                let sent = Instant::now();
                let result = request.await;
                let finished = Instant::now();
                if scheduled < measure_from && budget.is_none() {
                    continue;
                }
                done += 1;
                match result {
                    Ok(a) => allowed += u64::from(a),
                    Err(()) => errors += 1,
                }
                let us = finished.saturating_duration_since(sent).as_micros() as u64;
                let _ = hist.record(us.max(1));
                if interval.is_some() {
                    let late = sent.saturating_duration_since(scheduled).as_micros() as u64;
                    let _ = lag.record(late.max(1));
                }
            }
            (hist, lag, done, errors, allowed)
        }));
    }
    let mut latency_us = new_histogram();
    let mut lag_us = new_histogram();
    let (mut requests, mut errors, mut allowed) = (0, 0, 0);
    for t in tasks {
        if let Ok((h, l, d, e, a)) = t.await {
            let _ = latency_us.add(&h);
            let _ = lag_us.add(&l);
            requests += d;
            errors += e;
            allowed += a;
        }
    }
    let elapsed = if budget.is_some() {
        started.elapsed()
    } else {
        Instant::now()
            .min(stop_at)
            .saturating_duration_since(measure_from)
    };
    LoadReport {
        addr: plan.addr.clone(),
        requests,
        errors,
        allowed,
        elapsed,
        latency_us,
        lag_us,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// The bundled demo policies' traffic: allowed and denied requests of every kind, with
/// development tokens (`read_fido`: `read fido`; `read`: `read`).
pub fn bundled_mix(read_fido: &str, read: &str) -> Vec<proto::AuthorizeRequest> {
    let req = |token: &str, method: &str, path: &str, context: Option<prost_types::Struct>| {
        proto::AuthorizeRequest {
            token: token.into(),
            method: method.into(),
            path: path.into(),
            context,
            explain: false,
            client_cert_sha256: String::new(),
        }
    };
    let fraud = prost_types::Struct {
        fields: [(
            "fraud_score".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(95.0)),
            },
        )]
        .into_iter()
        .collect(),
    };
    vec![
        req(read_fido, "POST", "/items", None),      // allow
        req(read, "GET", "/item/42", None),          // allow
        req(read_fido, "GET", "/fido/config", None), // insufficient scope
        req("", "GET", "/health", None),             // anonymous allow
        req(read, "GET", "/item/7", Some(fraud)),    // forbid
        req(read, "GET", "/no/such/route", None),    // no route
    ]
}

/// Rewrites `file` and measures how long until the server's live policy version changes.
/// With `every_policy`, every policy's text changes (a space before each `;` that ends a
/// line), so nothing can be reused from the previous load; otherwise a trailing comment
/// changes only the file's content hash. Returns one duration per round.
pub async fn measure_reload(
    addr: &str,
    file: &std::path::Path,
    rounds: usize,
    every_policy: bool,
) -> Result<Vec<Duration>, String> {
    let mut admin = proto::policy_admin_client::PolicyAdminClient::connect(addr.to_owned())
        .await
        .map_err(|e| format!("cannot connect to `{addr}`: {e}"))?;
    let original = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let before = version(&mut admin).await?;
        let written = Instant::now();
        let text = if every_policy {
            original.replace(";\n", &format!("{};\n", " ".repeat(round % 2 + 1)))
        } else {
            format!("{original}\n// arbiter bench reload round {round} at {written:?}\n")
        };
        std::fs::write(file, text)
            .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
        loop {
            if version(&mut admin).await? != before {
                out.push(written.elapsed());
                break;
            }
            if written.elapsed() > Duration::from_secs(30) {
                return Err("the new version did not go live within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    std::fs::write(file, original)
        .map_err(|e| format!("cannot restore `{}`: {e}", file.display()))?;
    Ok(out)
}

async fn version(
    admin: &mut proto::policy_admin_client::PolicyAdminClient<Channel>,
) -> Result<String, String> {
    admin
        .status(proto::StatusRequest {})
        .await
        .map(|r| r.into_inner().policy_version)
        .map_err(|e| format!("status failed: {e}"))
}
