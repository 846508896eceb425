//! `arbiter.v1.PolicyAdmin`: status of the live policy set, manual reload, and policy
//! queries for auditors.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};

use super::proto::{self, reload_outcome};
use crate::policy::{
    reload_in_background, PolicyError, PolicyStore, ReloadOutcome, ReloadResult, Trigger,
};

/// Serves `Status` and `Reload`.
pub struct PolicyAdminService {
    store: Arc<PolicyStore>,
}

impl PolicyAdminService {
    /// A service over the live policy store.
    pub fn new(store: Arc<PolicyStore>) -> Self {
        Self { store }
    }
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
