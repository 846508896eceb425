//! The control plane's own threads. Proofs, searches and candidate loads run here, on a
//! small runtime of their own, never on the workers that answer decisions; each job has a
//! time budget and ends when its caller goes away (its future is dropped, and with it any
//! solver process it started, which is killed on drop).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Why a job gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JobError {
    /// It ran past its budget and was stopped.
    #[error("stopped after its budget of {0} s")]
    OverBudget(u64),
    /// As many jobs of its kind as allowed are running.
    #[error("{0}")]
    Busy(&'static str),
    /// It panicked or its runtime is gone.
    #[error("the job failed")]
    Failed,
}

/// A runtime of its own for control-plane jobs, and the bounds on how many of each kind run.
pub(crate) struct Workers {
    /// Owned so that dropping the workers never blocks (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    proofs: Arc<Semaphore>,
    searches: Arc<Semaphore>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("proofs_free", &self.proofs.available_permits())
            .field("searches_free", &self.searches.available_permits())
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// `threads` control-plane threads (with the stack policy loads need); one proof at a
    /// time and at most `searches` searches.
    pub(crate) fn new(threads: usize, searches: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(threads.max(1) * 2)
            .thread_name("arbiter-control")
            .thread_stack_size(crate::policy::bounds::LOAD_STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            proofs: Arc::new(Semaphore::new(1)),
            searches: Arc::new(Semaphore::new(searches.max(1))),
        })
    }

    /// Runs a proof (one at a time; `Busy` while another runs) within `budget`.
    pub(crate) async fn prove<T: Send + 'static>(
        &self,
        budget: Duration,
        job: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JobError> {
        let permit = self.proofs.clone().try_acquire_owned().map_err(|_| {
            JobError::Busy("an analysis or comparison is running; try again when it ends")
        })?;
        self.run(budget, permit, job).await
    }

    /// Runs a search within `budget`, waiting for a free place among the searches.
    pub(crate) async fn search<T: Send + 'static>(
        &self,
        budget: Duration,
        job: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JobError> {
        let permit = self
            .searches
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::Failed)?;
        self.run(budget, permit, job).await
    }

    /// Runs blocking work (a candidate load, a query) on the control plane's threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        self.handle
            .spawn_blocking(work)
            .await
            .map_err(|_| JobError::Failed)
    }

    /// Spawns `job` on the control runtime, holding `place` until it ends; the job is
    /// aborted when the returned future is dropped (the caller went away) or when `budget`
    /// runs out.
    async fn run<T: Send + 'static>(
        &self,
        budget: Duration,
        place: tokio::sync::OwnedSemaphorePermit,
        job: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JobError> {
        let mut task = AbortOnDrop(self.handle.spawn(async move {
            let _place = place;
            job.await
        }));
        match tokio::time::timeout(budget, &mut task).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(JobError::Failed),
            Err(_) => {
                // Wait until the job is gone (its solver killed, its place free) before saying so.
                task.0.abort();
                let _ = (&mut task.0).await;
                Err(JobError::OverBudget(budget.as_secs()))
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block (and panic); let it go instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A spawned job that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_past_its_budget_is_stopped() {
        let workers = Workers::new(1, 1).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let out = workers
            .prove(Duration::from_millis(50), async move {
                let _tx = tx;
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
            .await;
        assert_eq!(out, Err(JobError::OverBudget(0)));
        // The job's future was dropped (its sender with it).
        assert!(rx.await.is_err());
        // And the proof place is free again.
        assert_eq!(
            workers.prove(Duration::from_secs(5), async { 7 }).await,
            Ok(7)
        );
        drop(workers);
    }

    #[tokio::test]
    async fn a_job_whose_caller_leaves_is_dropped() {
        let workers = Workers::new(1, 1).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let call = workers.search(Duration::from_secs(60), async move {
            let _tx = tx;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        // The caller waits a little, then goes away.
        let _ = tokio::time::timeout(Duration::from_millis(50), call).await;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the job ended")
            .unwrap_err();
    }
}
