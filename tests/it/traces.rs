//! OpenTelemetry traces end to end: `arbiter serve` and `arbiter gateway` as users run them
//! (child processes with `[telemetry]` in their config files) export over OTLP/gRPC to a
//! receiver built from the official `opentelemetry-proto` definitions (the Collector itself
//! is not packaged where this machine can install from). One request through the gateway,
//! sent with a caller's `traceparent`, must come back as one trace under the caller's trace
//! id: gateway → PDP call → Arbiter's RPC → decision → token, route, evaluation, log line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::support::upstream::upstream;
use crate::support::*;

/// One received span, with the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Received {
    fn attr(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(match value.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    kept.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (receiver, format!("http://{addr}"))
    }

    fn trace(&self, trace_id: &[u8]) -> Vec<Received> {
        let kept = self.0.lock().unwrap();
        kept.iter()
            .filter(|r| r.span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// The spans of one trace once `done` says they are all there (the exporters batch).
    async fn wait_for(&self, trace_id: &[u8], done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let found = eventually(Duration::from_secs(20), || {
            let spans = self.trace(trace_id);
            let ready = done(&spans);
            async move { ready.then_some(spans) }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "the trace never arrived whole; received: {:#?}",
                self.trace(trace_id)
                    .iter()
                    .map(|r| (&r.service, &r.span.name))
                    .collect::<Vec<_>>()
            )
        })
    }
}

/// Exports batched after 100 ms instead of the SDK's 5 s, so the test waits little.
const FAST_EXPORT: &[(&str, &str)] = &[("OTEL_BSP_SCHEDULE_DELAY", "100")];

fn named<'a>(spans: &'a [Received], service: &str, name: &str) -> &'a Received {
    spans
        .iter()
        .find(|r| r.service == service && r.span.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no `{name}` span from `{service}` in {:#?}",
                spans
                    .iter()
                    .map(|r| (&r.service, &r.span.name))
                    .collect::<Vec<_>>()
            )
        })
}

fn child_of(child: &Received, parent: &Received) {
    assert_eq!(
        child.span.parent_span_id, parent.span.span_id,
        "`{}` ({}) is a child of `{}` ({})",
        child.span.name, child.service, parent.span.name, parent.service
    );
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_through_the_gateway_is_one_trace_from_gateway_to_evaluation() {
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let telemetry = format!("[telemetry]\nendpoint = \"{endpoint}\"\n");
    let server = tokio::task::block_in_place(|| {
        ServeProcess::start_with_env(dir.path(), &telemetry, "127.0.0.1:0", FAST_EXPORT)
    });
    let (up, _up_stop) = upstream().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway_config = dir.path().join("gateway.toml");
    std::fs::write(
        &gateway_config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{up}\"\npdp = \"{}\"\n{telemetry}",
            server.addr
        ),
    )
    .unwrap();
    let _gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["gateway", "--config"])
        .arg(&gateway_config)
        .envs(FAST_EXPORT.iter().copied())
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let token = dev_token(dir.path(), "demo", "read");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // The gateway is up once it answers; that first request is a trace of its own.
    eventually(Duration::from_secs(10), || {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/health")).send().await.ok() }
    })
    .await
    .expect("the gateway came up");

    // The caller's trace: its id, and the span the gateway's must hang under.
    let trace_hex = random_hex(16);
    let caller_span = random_hex(8);
    let resp = http
        .get(format!("{base}/item/7"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_hex}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    let decision_id = seen["headers"][arbiter::gateway::DECISION_HEADER]
        .as_str()
        .unwrap()
        .to_owned();
    let forwarded = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
    assert!(
        seen["headers"].get("tracestate").is_none(),
        "no empty tracestate (W3C: not sent when empty)"
    );

    let trace_id = hex::decode(&trace_hex).unwrap();
    let spans = receiver
        .wait_for(&trace_id, |spans| {
            let has = |service: &str, name: &str| {
                spans
                    .iter()
                    .any(|r| r.service == service && r.span.name == name)
            };
            has("arbiter-gateway", "GET")
                && has("arbiter-gateway", "GET upstream")
                && has("arbiter-gateway", "arbiter.v1.Authorizer/Authorize")
                && [
                    "arbiter.v1.Authorizer/Authorize",
                    "decision",
                    "decision.log",
                ]
                .iter()
                .all(|n| has("arbiter", n))
        })
        .await;

    // The gateway's server span continues the caller's trace.
    let gateway = named(&spans, "arbiter-gateway", "GET");
    assert_eq!(hex::encode(&gateway.span.parent_span_id), caller_span);
    assert_eq!(gateway.span.kind, SpanKind::Server as i32);
    assert_eq!(
        gateway.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    // Its call to the PDP, and Arbiter's side of that call.
    let call = named(&spans, "arbiter-gateway", "arbiter.v1.Authorizer/Authorize");
    assert_eq!(call.span.kind, SpanKind::Client as i32);
    child_of(call, gateway);
    let rpc = named(&spans, "arbiter", "arbiter.v1.Authorizer/Authorize");
    assert_eq!(rpc.span.kind, SpanKind::Server as i32);
    child_of(rpc, call);
    // The decision and its parts.
    let decision = named(&spans, "arbiter", "decision");
    child_of(decision, rpc);
    assert_eq!(decision.attr("decision.id"), Some(decision_id));
    assert_eq!(decision.attr("decision.allowed").as_deref(), Some("true"));
    assert_eq!(
        decision.attr("decision.route").as_deref(),
        Some("/item/{id}")
    );
    let verify = named(&spans, "arbiter", "token.verify");
    child_of(verify, decision);
    assert_eq!(verify.attr("token.cache").as_deref(), Some("miss"));
    for part in ["route.match", "evaluate", "decision.log"] {
        child_of(named(&spans, "arbiter", part), decision);
    }
    // The upstream continues the trace from the gateway's forwarding span.
    let forward = named(&spans, "arbiter-gateway", "GET upstream");
    child_of(forward, gateway);
    assert_eq!(
        forwarded,
        format!("00-{trace_hex}-{}-01", hex::encode(&forward.span.span_id)),
        "the caller's traceparent is replaced by the gateway's"
    );
    // No span carries the token.
    for r in &spans {
        for kv in &r.span.attributes {
            let value = attribute(std::slice::from_ref(kv), &kv.key).unwrap_or_default();
            assert!(!value.contains(&token), "`{}` holds the token", kv.key);
        }
    }

    // The token endpoint: client authentication, the store, each scope's decision, signing.
    let (client_id, secret) = create_client(dir.path(), "traced", "read");
    let trace_hex = random_hex(16);
    let resp = http
        .post(format!("{}/token", server.http))
        .basic_auth(&client_id, Some(&secret))
        .header(
            "traceparent",
            format!("00-{trace_hex}-{}-01", random_hex(8)),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace_id = hex::decode(&trace_hex).unwrap();
    let spans = receiver
        .wait_for(&trace_id, |spans| {
            [
                "POST /token",
                "client.authenticate",
                "store.client",
                "decision",
                "token.sign",
            ]
            .iter()
            .all(|n| spans.iter().any(|r| r.span.name == *n))
        })
        .await;
    let endpoint = named(&spans, "arbiter", "POST /token");
    let authenticate = named(&spans, "arbiter", "client.authenticate");
    child_of(authenticate, endpoint);
    assert_eq!(authenticate.attr("client.id"), Some(client_id));
    child_of(named(&spans, "arbiter", "store.client"), authenticate);
    let scope = named(&spans, "arbiter", "decision");
    child_of(scope, endpoint);
    assert_eq!(scope.attr("decision.allowed").as_deref(), Some("true"));
    child_of(named(&spans, "arbiter", "token.sign"), endpoint);
    assert!(
        !format!("{spans:?}").contains(&secret),
        "no span holds the client secret"
    );

    // A reload the watcher starts is a trace of its own: parse, validate, index.
    let policy = dir.path().join("policies/items.cedar");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str("\n// traced reload\n");
    std::fs::write(&policy, text).unwrap();
    let reload = eventually(Duration::from_secs(20), || {
        let kept = receiver.0.lock().unwrap().clone();
        let found = kept
            .iter()
            .find(|r| {
                r.span.name == "policy.reload" && r.attr("result").as_deref() == Some("Applied")
            })
            .cloned()
            .map(|reload| {
                let parts: Vec<Received> = kept
                    .iter()
                    .filter(|r| r.span.trace_id == reload.span.trace_id)
                    .cloned()
                    .collect();
                (reload, parts)
            });
        async move { found.filter(|(_, parts)| parts.len() >= 4) }
    })
    .await
    .expect("the reload's trace arrived");
    let (root, parts) = reload;
    assert!(root.span.parent_span_id.is_empty(), "a root span");
    for part in ["policy.parse", "policy.validate", "policy.index"] {
        let span = parts
            .iter()
            .find(|r| r.span.name == part)
            .unwrap_or_else(|| panic!("no `{part}` in the reload's trace"));
        assert_eq!(
            span.span.parent_span_id, root.span.span_id,
            "`{part}` is the reload's"
        );
    }
}

/// A real Envoy with its OpenTelemetry tracer on continues the caller's trace and passes it
/// to Arbiter in the ext_authz call's gRPC metadata: Arbiter's `Check` span hangs under a
/// span Envoy itself exported, in the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_passes_its_trace_to_arbiter_through_ext_authz() {
    let (receiver, endpoint) = Receiver::start().await;
    let receiver_port = endpoint.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let telemetry = format!("[telemetry]\nendpoint = \"{endpoint}\"\n");
    let server = tokio::task::block_in_place(|| {
        ServeProcess::start_with_env(dir.path(), &telemetry, "127.0.0.1:0", FAST_EXPORT)
    });
    let (up, _up_stop) = upstream().await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let listen_port = free();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/envoy/envoy.yaml"),
    )
    .unwrap();
    let grpc_port = server.addr.rsplit(':').next().unwrap();
    let config = example
        .replace("port_value: 10000", &format!("port_value: {listen_port}"))
        .replace("port_value: 9000", &format!("port_value: {}", up.port()))
        .replace("port_value: 50051", &format!("port_value: {grpc_port}"));
    // Envoy's own tracer, exporting to the same receiver.
    let tracing = r#"                stat_prefix: ingress
                tracing:
                  provider:
                    name: envoy.tracers.opentelemetry
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                      service_name: envoy
                      grpc_service:
                        envoy_grpc: { cluster_name: otlp }
                        timeout: 1s"#;
    let config = config.replacen("                stat_prefix: ingress", tracing, 1);
    let otlp_cluster = format!(
        r#"  clusters:
    - name: otlp
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      load_assignment:
        cluster_name: otlp
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: 127.0.0.1, port_value: {receiver_port} }}"#
    );
    let config = config.replacen("  clusters:", &otlp_cluster, 1);
    // Envoy exports every 100 ms instead of every 5 s.
    let config = format!(
        "{config}\nlayered_runtime:\n  layers:\n    - name: static\n      static_layer:\n        tracing.opentelemetry.flush_interval_ms: 100\n"
    );
    let config_path = dir.path().join("envoy.yaml");
    std::fs::write(&config_path, config).unwrap();
    let envoy = spawn_envoy(&config_path, listen_port);
    let token = dev_token(dir.path(), "demo", "read");
    let base = format!("http://127.0.0.1:{listen_port}");
    let http = reqwest::Client::new();
    let trace_hex = random_hex(16);
    let traceparent = format!("00-{trace_hex}-{}-01", random_hex(8));
    let answered = eventually(Duration::from_secs(20), || {
        let (http, base, token, traceparent) = (
            http.clone(),
            base.clone(),
            token.clone(),
            traceparent.clone(),
        );
        async move {
            http.get(format!("{base}/item/7"))
                .bearer_auth(&token)
                .header("traceparent", traceparent)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        }
    })
    .await;
    if answered.is_none() {
        envoy_failed(envoy, "did not answer").await;
    }

    let trace_id = hex::decode(&trace_hex).unwrap();
    let check = "envoy.service.auth.v3.Authorization/Check";
    let spans = receiver
        .wait_for(&trace_id, |spans| {
            let arbiter = spans
                .iter()
                .find(|r| r.service == "arbiter" && r.span.name == check);
            arbiter.is_some_and(|a| {
                spans
                    .iter()
                    .any(|r| r.service == "envoy" && r.span.span_id == a.span.parent_span_id)
            }) && spans
                .iter()
                .any(|r| r.service == "arbiter" && r.span.name == "decision")
        })
        .await;
    let rpc = named(&spans, "arbiter", check);
    let decision = named(&spans, "arbiter", "decision");
    child_of(decision, rpc);
    assert_eq!(decision.attr("decision.allowed").as_deref(), Some("true"));
    let parent = spans
        .iter()
        .find(|r| r.span.span_id == rpc.span.parent_span_id)
        .unwrap();
    assert_eq!(
        parent.service, "envoy",
        "Arbiter's span is a child of Envoy's: {parent:?}"
    );
}
