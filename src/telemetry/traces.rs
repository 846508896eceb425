//! The OpenTelemetry pipeline: a tracer provider that batches spans and sends them over
//! OTLP/gRPC, sampled per `[telemetry]`, plus the W3C trace-context propagator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter, Tracer};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;

/// Why the trace pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// The runtime that drives the exporter's connection could not start.
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    Runtime(std::io::Error),
    /// The CA bundle of an `https://` endpoint could not be read.
    #[error("[telemetry] cannot read `ca_file` `{path}`: {source}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The settings are not usable.
    #[error("{0}")]
    Invalid(String),
    /// The exporter refused its settings.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// A running trace pipeline; dropping it exports what is still batched and stops.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Traces {
    /// Builds the pipeline for `config.endpoint` (which must be set) and installs the W3C
    /// `traceparent` propagator as the process's text-map propagator.
    pub(crate) fn start(
        config: &TelemetryConfig,
        endpoint: &str,
        service_name: &str,
    ) -> Result<(Self, Tracer), TracesError> {
        if let Some(why) = config.invalid() {
            return Err(TracesError::Invalid(why));
        }
        // The SDK's batch processor exports from a thread of its own that has no Tokio
        // reactor, which tonic's connection needs: the exporter gets a one-thread runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("arbiter-otlp")
            .enable_all()
            .build()
            .map_err(TracesError::Runtime)?;
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(10));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| TracesError::CaFile {
                path: path.clone(),
                source,
            })?;
            builder = builder.with_tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            );
        }
        let exporter = {
            let _entered = runtime.enter();
            builder
                .build()
                .map_err(|e| TracesError::Exporter(e.to_string()))?
        };
        let exporter = OnRuntime {
            inner: exporter,
            runtime: runtime.handle().clone(),
            failing: AtomicBool::new(false),
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_owned())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let tracer = provider.tracer("arbiter");
        Ok((
            Self {
                provider,
                runtime: Some(runtime),
            },
            tracer,
        ))
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "could not export the last spans");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The OTLP exporter, run on the pipeline's own runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: tokio::runtime::Handle,
    /// Whether the last export failed: a receiver that stays down is logged once, not
    /// every batch.
    failing: AtomicBool,
}

impl SpanExporter for OnRuntime {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Called only on the batch processor's thread, which is not a runtime's.
        let result = self.runtime.block_on(self.inner.export(batch));
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(error = %e, "cannot export spans to the OTLP endpoint");
            }
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("exporting spans to the OTLP endpoint again");
            }
            _ => {}
        }
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
