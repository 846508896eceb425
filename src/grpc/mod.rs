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

/// The gRPC router with the decision services (Authorizer, ext_authz), health and
/// reflection, plus `PolicyAdmin` when `admin` is given (no separate admin listener); and the
/// health reporter that flips to NOT_SERVING at shutdown.
pub fn routes(
    pdp: Arc<crate::decision::Pdp>,
    admin: Option<PolicyAdminService>,
) -> Result<
    (tonic::service::Routes, tonic_health::server::HealthReporter),
    tonic_reflection::server::Error,
> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let pdp_for_envoy = pdp.clone();
    let authorizer = AuthorizerServer::new(AuthorizerService::new(pdp))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let ext_authz = envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
        ext_authz::ExtAuthzService::new(pdp_for_envoy),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let mut routes = tonic::service::Routes::new(authorizer)
        .add_service(ext_authz)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    if let Some(admin) = admin {
        routes = routes.add_service(PolicyAdminServer::new(admin));
    }
    Ok((routes, reporter))
}

/// The router of the admin listener (`admin_addr`): `PolicyAdmin`, health and reflection.
pub fn admin_routes(
    admin: PolicyAdminService,
) -> Result<tonic::service::Routes, tonic_reflection::server::Error> {
    let (_, health) = tonic_health::server::health_reporter();
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    Ok(tonic::service::Routes::new(PolicyAdminServer::new(admin))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// Reflection v1 and v1alpha from the same descriptors: grpcurl before 1.9, grpc_cli and
/// many GUI clients speak only v1alpha.
type Reflection<V1, V1Alpha> = (V1, V1Alpha);

fn reflection() -> Result<
    Reflection<
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    >,
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// The health-check name of the Authorizer service.
pub const AUTHORIZER_SERVICE: &str = "arbiter.v1.Authorizer";
