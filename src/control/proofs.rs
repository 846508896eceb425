//! Proof jobs for `PolicyAdmin`: `analyze` of the live set and `compare` of the live set with
//! a candidate sent as its files. Each runs on the control plane's workers, one at a time,
//! within the configured budget, and its solver is killed when the caller goes away.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::workers::{JobError, Workers};
use crate::audit::analysis::Analysis;
use crate::audit::compare::RouteComparison;
use crate::audit::prover::AnalysisError;
use crate::policy::PolicySnapshot;

/// Most files a candidate directory may hold.
pub(crate) const MAX_CANDIDATE_FILES: usize = 10_000;

/// Why a proof gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProofError {
    /// The candidate's files are not a policy directory we can write.
    #[error("{0}")]
    BadCandidate(String),
    /// The candidate does not load (with every `file:line`).
    #[error("the candidate is invalid: {0}")]
    InvalidCandidate(crate::policy::LoadError),
    /// No solver, or it failed.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// The job did not finish (over budget, busy, failed).
    #[error(transparent)]
    Job(#[from] JobError),
    /// The temporary directory could not be written.
    #[error("cannot write the candidate: {0}")]
    Io(std::io::Error),
}

/// Proves which routes and policies of `snapshot` are unreachable, shadowed or redundant.
pub(crate) async fn analyze(
    workers: &Workers,
    budget: Duration,
    snapshot: Arc<PolicySnapshot>,
) -> Result<Analysis, ProofError> {
    let analysis = workers
        .prove(budget, async move {
            crate::audit::analysis::analyze(&snapshot).await
        })
        .await??;
    Ok(analysis)
}

/// Loads a candidate (its files written to a private directory) and proves per route how it
/// decides against `live`: the candidate's version, the routes and the number of queries.
pub(crate) async fn compare(
    workers: &Workers,
    budget: Duration,
    live: Arc<PolicySnapshot>,
    files: HashMap<String, String>,
) -> Result<(String, Vec<RouteComparison>, usize), ProofError> {
    workers
        .prove(budget, async move {
            let dir = candidate_dir(&files)?;
            let path = dir.path().to_path_buf();
            // The load blocks (parsing, validating): on a thread of the load's own, which
            // `PolicySnapshot::load` starts.
            let candidate = tokio::task::spawn_blocking(move || PolicySnapshot::load(&path))
                .await
                .map_err(|_| ProofError::Job(JobError::Failed))?
                .map_err(ProofError::InvalidCandidate)?;
            let (routes, queries) = crate::audit::compare::compare(&live, &candidate).await?;
            drop(dir);
            Ok((candidate.version.clone(), routes, queries))
        })
        .await?
}

/// Writes a candidate directory sent as files into a private temporary directory.
fn candidate_dir(files: &HashMap<String, String>) -> Result<tempfile::TempDir, ProofError> {
    if files.len() > MAX_CANDIDATE_FILES {
        return Err(ProofError::BadCandidate(format!(
            "a candidate holds at most {MAX_CANDIDATE_FILES} files"
        )));
    }
    let dir = tempfile::tempdir().map_err(ProofError::Io)?;
    for (name, text) in files {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(ProofError::BadCandidate(format!(
                "`{name}`: a candidate's file names are relative paths inside it"
            )));
        }
        let path = dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(ProofError::Io)?;
        }
        std::fs::write(&path, text).map_err(ProofError::Io)?;
    }
    Ok(dir)
}
