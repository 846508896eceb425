//! Logs, traces and metrics: the tracing subscriber (text or JSON lines, plus OpenTelemetry
//! spans over OTLP when `[telemetry]` names an endpoint), trace-context propagation, the
//! server span of every request, and the metrics registry. A leaf: imports only `config`.
//! The decision log line is written by `decision::log`.

pub mod edge;
pub mod metrics;
pub mod propagation;
pub mod recent;
mod traces;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetryConfig};
pub use edge::TraceRequests;

use std::borrow::Cow;
pub use traces::TracesError;

/// Keeps the background log writer and the trace exporter alive; dropping it flushes every
/// pending line and exports the spans still batched.
#[must_use = "dropping the guard stops the log writer and the trace exporter"]
pub struct Telemetry {
    // Field order is drop order: spans are exported while the log can still say why not.
    _traces: Option<traces::Traces>,
    _log: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level of the log
/// lines. With `[telemetry] endpoint` set, Arbiter's spans (and only spans: log lines stay
/// log lines) also go to that OTLP receiver; without it no span is ever built, so traces
/// cost a decision nothing.
///
/// Lines go to stderr through a background writer, so a decision never waits on a write
/// system call; the writer applies back-pressure rather than dropping lines when it falls
/// behind (decision lines are an audit trail). It writes what has queued up in one system
/// call (a buffer it flushes whenever the queue is empty) instead of one per line: under
/// load that was a tenth of the server's CPU.
/// `program` is the `service.name` when `[telemetry]` gives none.
///
/// With `recent_decisions` above zero and JSON lines, the last that many decision lines are
/// also kept in memory ([`recent::recent_decisions`], for the workbench), taken on the
/// writer's thread from the lines it writes: nothing more is done on a request's thread.
/// Text lines keep none (they would have to be formatted twice).
pub fn init(
    format: LogFormat,
    telemetry: &TelemetryConfig,
    program: &str,
    recent_decisions: usize,
) -> Result<Telemetry, TracesError> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let window = (recent_decisions > 0 && format == LogFormat::Json).then(|| {
        let w = std::sync::Arc::new(recent::RecentDecisions::new(recent_decisions));
        w.install();
        w
    });
    let (writer, log) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(recent::Tee {
            inner: std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()),
            window,
        });
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let lines = match format {
        LogFormat::Json => lines.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => lines.with_filter(filter).boxed(),
    };
    let service_name = telemetry.service_name.as_deref().unwrap_or(program);
    let (traces, spans) = match &telemetry.endpoint {
        Some(endpoint) => {
            let (traces, tracer) = traces::Traces::start(telemetry, endpoint, service_name)?;
            let spans = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.is_span() && m.target().starts_with("arbiter")
                }));
            (Some(traces), Some(spans))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .try_init();
    if let Some(endpoint) = &telemetry.endpoint {
        tracing::info!(
            endpoint = %crate::config::redacted_url(endpoint),
            sampling_ratio = telemetry.sampling_ratio,
            service_name,
            "exporting traces over OTLP"
        );
    }
    Ok(Telemetry {
        _traces: traces,
        _log: log,
    })
}

/// A caller's text made safe for a log line (the one escape every caller-chosen field of a
/// text log line goes through): control characters (a newline that would
/// start a forged line in the text format) written as `\u{…}` escapes.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}
