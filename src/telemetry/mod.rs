//! Logging and metrics: the tracing subscriber (text or JSON) and the metrics registry.
//! A leaf: imports only `config`. The decision log line is written by `decision::log`.

pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the background log writer alive; dropping it flushes every pending line.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level.
///
/// Lines go to stderr through a background writer, so a decision never waits on a write
/// system call; the writer applies back-pressure rather than dropping lines when it falls
/// behind (decision lines are an audit trail). It writes what has queued up in one system
/// call (a buffer it flushes whenever the queue is empty) instead of one per line: under
/// load that was a tenth of the server's CPU.
pub fn init(format: LogFormat) -> LogGuard {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(guard)
}
