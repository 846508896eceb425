//! gRPC transport: `arbiter.v1.Authorizer`, standard health checking and server reflection.
//! An adapter over [`crate::decision::Pdp`]; nothing else imports it.

pub mod admin;
mod authorizer;
pub mod ext_authz;

use std::sync::Arc;

pub use admin::PolicyAdminService;
pub use authorizer::AuthorizerService;

pub use crate::wire::proto;

use proto::authorizer_server::AuthorizerServer;
use proto::policy_admin_server::PolicyAdminServer;

/// Largest gRPC message accepted: a batch of 100 requests with generous contexts.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The gRPC router with every Arbiter service, health and reflection, and the health
/// reporter that flips to NOT_SERVING at shutdown.
pub fn routes(
    pdp: Arc<crate::decision::Pdp>,
) -> Result<
    (tonic::service::Routes, tonic_health::server::HealthReporter),
    tonic_reflection::server::Error,
> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Reflection v1 and v1alpha from the same descriptors: grpcurl before 1.9, grpc_cli and
    // many GUI clients speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let admin = PolicyAdminServer::new(PolicyAdminService::new(pdp.policies().clone()));
    let pdp_for_envoy = pdp.clone();
    let authorizer = AuthorizerServer::new(AuthorizerService::new(pdp))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let ext_authz = envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
        ext_authz::ExtAuthzService::new(pdp_for_envoy),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let routes = tonic::service::Routes::new(authorizer)
        .add_service(ext_authz)
        .add_service(admin)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((routes, reporter))
}

/// The health-check name of the Authorizer service.
pub const AUTHORIZER_SERVICE: &str = "arbiter.v1.Authorizer";
