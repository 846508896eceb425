//! `arbiter.v1.PolicyAdmin`: status of the live policy set, manual reload, policy queries
//! and proofs, for administrators and auditors. Transport only: every call is admitted by
//! the control plane's [`AdminAuth`] first, and its work runs on the control plane's
//! [`Workers`], never on the threads that decide.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::{Request, Response, Status};

use super::proto::{self, reload_outcome};
use crate::audit::counterexample::Counterexample;
use crate::audit::prover::AnalysisError;
use crate::bundle::source::BundleSource;
use crate::control::proofs::{self, ProofError};
use crate::control::{Access, AdminAuth, Credentials, JobError, Refusal, Workers};
use crate::policy::{
    reload_in_background, LivePolicies, PolicyError, ReloadOutcome, ReloadResult, Trigger,
};

/// Serves `Status`, `Reload`, `QueryPolicies`, `AnalyzePolicies` and `ComparePolicies`.
pub struct PolicyAdminService {
    store: Arc<LivePolicies>,
    /// The bundle source, when the policies come from one.
    bundles: Option<Arc<BundleSource>>,
    /// The shared store of the fleet view, and after how many seconds a replica is silent.
    fleet: Option<(Arc<dyn crate::store::Store>, i64)>,
    /// The shadow candidate, when one is configured.
    shadow: Option<Arc<LivePolicies>>,
    auth: Arc<AdminAuth>,
    workers: Arc<Workers>,
    /// Longest a proof may run before its solver is killed.
    proof_budget: Duration,
}

impl PolicyAdminService {
    /// A service over the live policy store, admitting callers with `auth` and running
    /// their work on `workers`.
    pub(crate) fn new(
        store: Arc<LivePolicies>,
        bundles: Option<Arc<BundleSource>>,
        fleet: Option<(Arc<dyn crate::store::Store>, i64)>,
        shadow: Option<Arc<LivePolicies>>,
        auth: Arc<AdminAuth>,
        workers: Arc<Workers>,
        proof_budget: Duration,
    ) -> Self {
        Self {
            store,
            bundles,
            fleet,
            shadow,
            auth,
            workers,
            proof_budget,
        }
    }

    /// Admits the caller of `request` for `access`, or refuses with `UNAUTHENTICATED` /
    /// `PERMISSION_DENIED`.
    async fn admit<T>(&self, request: &Request<T>, access: Access) -> Result<(), Status> {
        let authorization: Vec<&str> = request
            .metadata()
            .get_all("authorization")
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        let chain = request.peer_certs();
        let credentials = Credentials {
            authorization: &authorization,
            chain: chain.as_deref().map(Vec::as_slice),
        };
        match self.auth.admit(access, credentials).await {
            Ok(admin) => {
                tracing::debug!(admin = %admin.0, ?access, "control plane call admitted");
                Ok(())
            }
            Err(Refusal::Unauthenticated(m)) => Err(Status::unauthenticated(m)),
            Err(Refusal::PermissionDenied(m)) => Err(Status::permission_denied(m)),
        }
    }
}

/// A proof's failure as a gRPC status.
fn proof_status(e: ProofError) -> Status {
    match e {
        ProofError::BadCandidate(m) => Status::invalid_argument(m),
        ProofError::InvalidCandidate(_) => Status::invalid_argument(e.to_string()),
        ProofError::Analysis(AnalysisError::Solver(_)) => {
            Status::failed_precondition(e.to_string())
        }
        ProofError::Analysis(_) => Status::internal(e.to_string()),
        ProofError::Job(JobError::Busy(m)) => Status::resource_exhausted(m),
        ProofError::Job(JobError::OverBudget(_)) => Status::deadline_exceeded(format!(
            "the proof was {e}; `[admin] proof_timeout_seconds` sets the budget"
        )),
        ProofError::Job(JobError::Failed) | ProofError::Io(_) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl proto::policy_admin_server::PolicyAdmin for PolicyAdminService {
    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        self.admit(&request, Access::Read).await?;
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
            policy_revision: snapshot.revision.clone(),
            bundle_source: self.bundles.as_ref().map(|b| source_status(&b.status())),
            shadow_revision: self
                .shadow
                .as_ref()
                .map(|s| s.load().revision.clone())
                .unwrap_or_default(),
        }))
    }

    async fn query_policies(
        &self,
        request: Request<proto::QueryPoliciesRequest>,
    ) -> Result<Response<proto::QueryPoliciesResponse>, Status> {
        self.admit(&request, Access::Read).await?;
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
        let hits = self
            .workers
            .blocking({
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
        request: Request<proto::AnalyzePoliciesRequest>,
    ) -> Result<Response<proto::AnalyzePoliciesResponse>, Status> {
        self.admit(&request, Access::Read).await?;
        let snapshot = self.store.snapshot();
        let version = snapshot.version.clone();
        let analysis = proofs::analyze(&self.workers, self.proof_budget, snapshot)
            .await
            .map_err(proof_status)?;
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
        self.admit(&request, Access::Read).await?;
        let files = request.into_inner().files;
        let live = self.store.snapshot();
        let live_version = live.version.clone();
        let (candidate_version, routes, queries) =
            proofs::compare(&self.workers, self.proof_budget, live, files)
                .await
                .map_err(proof_status)?;
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

    async fn fleet_status(
        &self,
        request: Request<proto::FleetStatusRequest>,
    ) -> Result<Response<proto::FleetStatusResponse>, Status> {
        self.admit(&request, Access::Read).await?;
        let Some((store, silent_after)) = &self.fleet else {
            return Err(Status::failed_precondition(
                "no shared store: the fleet view needs the store (the paired authorization server's, or [store] url)",
            ));
        };
        let view = crate::fleet::status(store.as_ref(), *silent_after)
            .await
            .map_err(|e| Status::unavailable(format!("the store: {e}")))?;
        Ok(Response::new(proto::FleetStatusResponse {
            revision: view.revision.unwrap_or_default(),
            consistent: view.consistent,
            replicas: view
                .replicas
                .into_iter()
                .map(|r| proto::ReplicaStatus {
                    replica_id: r.record.replica_id,
                    address: r.record.address,
                    revision: r.record.revision,
                    version: r.record.version,
                    loaded_at: Some(timestamp(epoch(r.record.loaded_at))),
                    last_reload: r.record.last_reload,
                    last_error: r.record.last_error,
                    source: r.record.source,
                    heartbeat_at: Some(timestamp(epoch(r.record.heartbeat_at))),
                    silent_seconds: r.silent_seconds,
                    flags: r.flags.into_iter().map(str::to_owned).collect(),
                })
                .collect(),
        }))
    }

    async fn reload(
        &self,
        request: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadResponse>, Status> {
        self.admit(&request, Access::Change).await?;
        if let Some(source) = &self.bundles {
            // A bundle replica reloads by asking its source now, rather than at the next poll.
            source.poll_once(&self.store).await;
            let fetch = source.status();
            let status = self.store.status();
            let errors = match fetch.last_result {
                "failed" => vec![proto::PolicyError {
                    file: fetch.location.clone(),
                    line: 0,
                    message: fetch.last_error,
                }],
                _ => Vec::new(),
            };
            return Ok(Response::new(proto::ReloadResponse {
                outcome: status.last.as_ref().map(outcome),
                errors,
                policy_version: self.store.load().version.clone(),
            }));
        }
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

/// Seconds since the epoch as a time.
fn epoch(seconds: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// A bundle source's fetch status as the wire message.
fn source_status(s: &crate::bundle::source::FetchStatus) -> proto::BundleSourceStatus {
    proto::BundleSourceStatus {
        location: s.location.clone(),
        last_fetch_at: s.last_fetch_at.map(timestamp),
        last_fetch_result: s.last_result.to_owned(),
        last_fetch_error: s.last_error.clone(),
        serving_persisted: s.serving_persisted,
        signed_by: s.signed_by.clone().unwrap_or_default(),
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
            Trigger::Bundle => reload_outcome::Trigger::Bundle,
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
