//! `arbiter.v1.PolicyAdmin`: status of the live policy set, manual reload, and policy
//! queries for auditors.

use std::sync::Arc;
use std::time::SystemTime;

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::proto::{self, reload_outcome};
use crate::audit::counterexample::Counterexample;
use crate::audit::prover::AnalysisError;
use crate::policy::{
    reload_in_background, PolicyError, PolicyStore, ReloadOutcome, ReloadResult, Trigger,
};

/// Serves `Status`, `Reload`, `QueryPolicies`, `AnalyzePolicies` and `ComparePolicies`.
pub struct PolicyAdminService {
    store: Arc<PolicyStore>,
    /// One solver run at a time: a proof takes seconds of a core, never the decision path's.
    proofs: Arc<Semaphore>,
}

impl PolicyAdminService {
    /// A service over the live policy store.
    pub fn new(store: Arc<PolicyStore>) -> Self {
        Self {
            store,
            proofs: Arc::new(Semaphore::new(1)),
        }
    }

    /// Runs a proof on a thread of its own (the solver is a child process; compiling a large
    /// set takes a while), one at a time.
    async fn prove<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let permit = self.proofs.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(
                "an analysis or comparison is running; try again when it ends",
            )
        })?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit; // held until the proof ends, even if the caller goes away
            job()
        })
        .await
        .map_err(|_| Status::internal("the analysis failed"))?
    }
}

/// Most files a candidate directory may hold.
const MAX_CANDIDATE_FILES: usize = 10_000;

/// Runs an async proof to completion on the current (blocking) thread.
fn block_on<T>(
    proof: impl std::future::Future<Output = Result<T, AnalysisError>>,
) -> Result<T, Status> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Status::internal(format!("cannot start the analysis: {e}")))?
        .block_on(proof)
        .map_err(|e| match e {
            AnalysisError::Solver(_) => Status::failed_precondition(e.to_string()),
            _ => Status::internal(e.to_string()),
        })
}

/// Writes a candidate directory sent as files into a private temporary directory.
fn candidate_dir(files: &HashMap<String, String>) -> Result<tempfile::TempDir, Status> {
    if files.len() > MAX_CANDIDATE_FILES {
        return Err(Status::invalid_argument(format!(
            "a candidate holds at most {MAX_CANDIDATE_FILES} files"
        )));
    }
    let dir = tempfile::tempdir()
        .map_err(|e| Status::internal(format!("cannot make a candidate directory: {e}")))?;
    for (name, text) in files {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(Status::invalid_argument(format!(
                "`{name}`: a candidate's file names are relative paths inside it"
            )));
        }
        let path = dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Status::internal(format!("cannot write `{name}`: {e}")))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Status::internal(format!("cannot write `{name}`: {e}")))?;
    }
    Ok(dir)
}

#[tonic::async_trait]
impl proto::policy_admin_server::PolicyAdmin for PolicyAdminService {
    async fn status(
        &self,
        _: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let (snapshot, status) = self.store.snapshot_and_status();
        Ok(Response::new(proto::StatusResponse {
            policy_version: snapshot.version.clone(),
            policy_count: u32::try_from(snapshot.policy_count()).unwrap_or(u32::MAX),
            route_count: u32::try_from(snapshot.routes.endpoints().len()).unwrap_or(u32::MAX),
            loaded_at: Some(timestamp(snapshot.loaded_at)),
            source: snapshot.source.display().to_string(),
            last_reload: status.last.as_ref().map(outcome),
            last_errors: status.last_errors.iter().map(error).collect(),
            counters: Some(proto::ReloadCounters {
                applied: status.counters.applied,
                unchanged: status.counters.unchanged,
                failed: status.counters.failed,
            }),
            warnings: snapshot.warnings.iter().map(error).collect(),
        }))
    }

    async fn query_policies(
        &self,
        request: Request<proto::QueryPoliciesRequest>,
    ) -> Result<Response<proto::QueryPoliciesResponse>, Status> {
        let r = request.into_inner();
        let query = crate::policy::query::Query {
            annotations: r.annotations,
            attributes: r.attributes,
            values: r.values,
            entities: r.entities,
            actions: r.actions,
            endpoints: r.endpoints,
            scopes: r.scopes,
            effect: Some(r.effect).filter(|e| !e.is_empty()),
            files: r.files,
        };
        let snapshot = self.store.snapshot();
        let hits = tokio::task::spawn_blocking({
            let snapshot = snapshot.clone();
            move || crate::policy::query::query(&snapshot, &query)
        })
        .await
        .map_err(|_| Status::internal("the query failed"))?
        .map_err(Status::invalid_argument)?;
        Ok(Response::new(proto::QueryPoliciesResponse {
            policy_version: snapshot.version.clone(),
            policies: hits.into_iter().map(policy_match).collect(),
        }))
    }

    async fn analyze_policies(
        &self,
        _: Request<proto::AnalyzePoliciesRequest>,
    ) -> Result<Response<proto::AnalyzePoliciesResponse>, Status> {
        let snapshot = self.store.snapshot();
        let version = snapshot.version.clone();
        let analysis = self
            .prove(move || block_on(crate::audit::analysis::analyze(&snapshot)))
            .await?;
        Ok(Response::new(proto::AnalyzePoliciesResponse {
            policy_version: version,
            routes: analysis
                .routes
                .into_iter()
                .map(|r| {
                    let (by, example) = r
                        .shadowed
                        .map(|s| (s.by, s.counterexample))
                        .unwrap_or_default();
                    proto::RouteReachability {
                        method: r.method,
                        route: r.route,
                        reachable: r.reachable,
                        permits: r.permits,
                        shadowed_by: by,
                        counterexample: example.map(counterexample),
                    }
                })
                .collect(),
            issue_scope_reachable: analysis.issue_scope_reachable,
            findings: analysis
                .policies
                .into_iter()
                .map(|f| proto::PolicyFinding {
                    policy: f.policy,
                    at: f.at,
                    finding: f.finding.to_owned(),
                    detail: f.detail,
                    counterexample: f.counterexample.map(counterexample),
                })
                .collect(),
            queries: u32::try_from(analysis.queries).unwrap_or(u32::MAX),
        }))
    }

    async fn compare_policies(
        &self,
        request: Request<proto::ComparePoliciesRequest>,
    ) -> Result<Response<proto::ComparePoliciesResponse>, Status> {
        let files = request.into_inner().files;
        let live = self.store.snapshot();
        let live_version = live.version.clone();
        let (candidate_version, (routes, queries)) = self
            .prove(move || {
                let dir = candidate_dir(&files)?;
                let candidate = crate::policy::PolicySnapshot::load(dir.path()).map_err(|e| {
                    Status::invalid_argument(format!("the candidate is invalid: {e}"))
                })?;
                let compared = block_on(crate::audit::compare::compare(&live, &candidate))?;
                Ok((candidate.version.clone(), compared))
            })
            .await?;
        Ok(Response::new(proto::ComparePoliciesResponse {
            live_version,
            candidate_version,
            routes: routes
                .into_iter()
                .map(|r| proto::RouteComparison {
                    method: r.method,
                    route: r.route,
                    relation: r.relation.to_owned(),
                    only_live_allows: r.only_old_allows.map(counterexample),
                    only_candidate_allows: r.only_new_allows.map(counterexample),
                })
                .collect(),
            queries: u32::try_from(queries).unwrap_or(u32::MAX),
        }))
    }

    async fn reload(
        &self,
        _: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadResponse>, Status> {
        let (result, errors) = reload_in_background(self.store.clone(), Trigger::Admin)
            .await
            .ok_or_else(|| Status::internal("the reload thread failed"))?;
        Ok(Response::new(proto::ReloadResponse {
            outcome: Some(outcome(&result)),
            errors: errors.iter().map(error).collect(),
            policy_version: self.store.load().version.clone(),
        }))
    }
}

/// A query hit as the wire message.
pub fn policy_match(hit: crate::policy::query::Hit) -> proto::PolicyMatch {
    let f = hit.facts;
    proto::PolicyMatch {
        id: f.id,
        effect: f.effect.to_owned(),
        file: f.file,
        line: f.line,
        annotations: f.annotations.into_iter().collect(),
        why: hit.why,
        text: f.text,
    }
}

fn counterexample(c: Counterexample) -> proto::Counterexample {
    proto::Counterexample {
        yaml: c.yaml,
        check: c.check.unwrap_or_default(),
        reproduced: c.reproduced,
        cedar: c.cedar,
    }
}

fn outcome(o: &ReloadOutcome) -> proto::ReloadOutcome {
    proto::ReloadOutcome {
        result: match o.result {
            ReloadResult::Applied => reload_outcome::Result::Applied,
            ReloadResult::Unchanged => reload_outcome::Result::Unchanged,
            ReloadResult::Failed => reload_outcome::Result::Failed,
        } as i32,
        trigger: match o.trigger {
            Trigger::Watch => reload_outcome::Trigger::Watch,
            Trigger::Signal => reload_outcome::Trigger::Signal,
            Trigger::Admin => reload_outcome::Trigger::Admin,
        } as i32,
        at: Some(timestamp(o.at)),
        version: o.version.clone(),
        duration_micros: o.duration.as_micros() as u64,
    }
}

fn error(e: &PolicyError) -> proto::PolicyError {
    proto::PolicyError {
        file: e.file.clone(),
        line: e.line.unwrap_or(0),
        message: e.message.clone(),
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}
