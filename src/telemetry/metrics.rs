//! Prometheus metrics (OpenMetrics text at `GET /metrics` on the HTTP listener): decisions by
//! decision and reason, decision latency, token cache hits and misses, policy reloads by
//! outcome, the live policy version (an info metric), tokens issued by client and grant,
//! token endpoint errors by code, store failures by operation, introspection calls by issuer
//! and outcome and their latency. Label values on the decision path are `&'static str`, so
//! counting a decision does not allocate.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DisagreementLabels {
    route: String,
    live: String,
    candidate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuedLabels {
    client_id: String,
    grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntrospectionLabels {
    issuer: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// Most clients with a `tokens_issued` series of their own; tokens of any further client
/// count under [`OTHER_CLIENTS`].
pub const MAX_CLIENT_SERIES: usize = 1000;
/// The `client_id` label of clients past [`MAX_CLIENT_SERIES`].
pub const OTHER_CLIENTS: &str = "_other";

/// Every metric Arbiter exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: Histogram,
    token_cache_hits: Counter,
    token_cache_misses: Counter,
    reloads: Family<OutcomeLabels, Counter>,
    policy_info: Family<VersionLabels, Gauge>,
    revision_info: Family<RevisionLabels, Gauge>,
    bundle_fetches: Family<OutcomeLabels, Counter>,
    shadow_decisions: Family<OutcomeLabels, Counter>,
    shadow_disagreements: Family<DisagreementLabels, Counter>,
    tokens_issued: Family<IssuedLabels, Counter>,
    token_errors: Family<CodeLabels, Counter>,
    store_errors: Family<OperationLabels, Counter>,
    introspections: Family<IntrospectionLabels, Counter>,
    introspection_seconds: Histogram,
    introspections_in_flight: Gauge,
    /// Clients that have a `tokens_issued` series.
    issued_clients: dashmap::DashMap<String, ()>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("arbiter");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions by decision and reason",
            decisions.clone(),
        );
        // 10 µs … ~0.16 s
        let decision_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 15));
        registry.register(
            "decision_duration_seconds",
            "Time to decide one request, token verification included",
            decision_seconds.clone(),
        );
        let token_cache_hits = Counter::default();
        registry.register(
            "token_cache_hits",
            "Tokens found verified in the cache",
            token_cache_hits.clone(),
        );
        let token_cache_misses = Counter::default();
        registry.register(
            "token_cache_misses",
            "Tokens that had to be verified",
            token_cache_misses.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads by outcome (applied, unchanged, failed)",
            reloads.clone(),
        );
        let policy_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "policy_info",
            "The live policy set (its version as a label)",
            policy_info.clone(),
        );
        let revision_info = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "policy_revision_info",
            "The live policy set's revision (a bundle's, or its version) as a label",
            revision_info.clone(),
        );
        let bundle_fetches = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "bundle_fetches",
            "Fetches of the policy bundle source by outcome (applied, unchanged, not_modified, failed)",
            bundle_fetches.clone(),
        );
        let shadow_decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "shadow_decisions",
            "Live decisions decided again by the shadow candidate (agree, disagree), or dropped because its queue was full",
            shadow_decisions.clone(),
        );
        let shadow_disagreements = Family::<DisagreementLabels, Counter>::default();
        registry.register(
            "shadow_disagreements",
            "Decisions the shadow candidate answers otherwise, by route and both answers",
            shadow_disagreements.clone(),
        );
        let tokens_issued = Family::<IssuedLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued by client and grant type",
            tokens_issued.clone(),
        );
        let token_errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "token_endpoint_errors",
            "Token endpoint errors by OAuth error code",
            token_errors.clone(),
        );
        let store_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Store operations that failed, by operation (client_lookup, disabled_clients, revoked_tokens, signing_keys); decisions go on from memory meanwhile",
            store_errors.clone(),
        );
        let introspections = Family::<IntrospectionLabels, Counter>::default();
        registry.register(
            "introspection_requests",
            "Calls to issuers' RFC 7662 introspection endpoints by issuer and outcome (active, inactive, refused, timeout, unreachable, http_error, bad_response, bad_signature, error)",
            introspections.clone(),
        );
        // 1 ms … ~16 s
        let introspection_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "introspection_duration_seconds",
            "Time of one introspection call, from request to answer or failure",
            introspection_seconds.clone(),
        );
        let introspections_in_flight = Gauge::default();
        registry.register(
            "introspections_in_flight",
            "Tokens whose introspection call is in flight (each shared by every request with that token)",
            introspections_in_flight.clone(),
        );
        Self {
            issued_clients: dashmap::DashMap::new(),
            introspections_in_flight,
            registry,
            decisions,
            decision_seconds,
            token_cache_hits,
            token_cache_misses,
            reloads,
            policy_info,
            revision_info,
            bundle_fetches,
            shadow_decisions,
            shadow_disagreements,
            tokens_issued,
            token_errors,
            store_errors,
            introspections,
            introspection_seconds,
        }
    }

    /// Counts one decision.
    pub fn decision(&self, allowed: bool, reason: &'static str, took: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: if allowed { "allow" } else { "deny" },
                reason,
            })
            .inc();
        self.decision_seconds.observe(took.as_secs_f64());
    }

    /// Decisions counted so far with this outcome and reason (for the workbench's activity
    /// chart, which samples it off the decision path).
    pub fn decision_count(&self, allowed: bool, reason: &'static str) -> u64 {
        self.decisions
            .get(&DecisionLabels {
                decision: if allowed { "allow" } else { "deny" },
                reason,
            })
            .map_or(0, |c| c.get())
    }

    /// Counts a token cache lookup.
    pub fn token_cache(&self, hit: bool) {
        if hit {
            self.token_cache_hits.inc();
        } else {
            self.token_cache_misses.inc();
        }
    }

    /// Counts a policy reload.
    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a fetch of the bundle source.
    pub fn bundle_fetch(&self, outcome: &'static str) {
        self.bundle_fetches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The counter of one shadow outcome (`agree`, `disagree`, `dropped`), to keep: counting
    /// on it is one atomic step, with no lock a lower-priority thread could hold.
    pub fn shadow_counter(&self, outcome: &'static str) -> Counter {
        self.shadow_decisions
            .get_or_create(&OutcomeLabels { outcome })
            .clone()
    }

    /// Counts a disagreement of the shadow candidate on a route (a template of one of the two
    /// sets, or `(none)`: the label values are bounded by the policies, never by callers).
    pub fn shadow_disagreement(&self, route: &str, live: &str, candidate: &str) {
        self.shadow_disagreements
            .get_or_create(&DisagreementLabels {
                route: route.to_owned(),
                live: live.to_owned(),
                candidate: candidate.to_owned(),
            })
            .inc();
    }

    /// Counts an issued token.
    pub fn token_issued(&self, client_id: &str, grant_type: &'static str) {
        // Client ids are chosen at registration: past a bound, new ones share one series.
        let known = self.issued_clients.contains_key(client_id)
            || (self.issued_clients.len() < MAX_CLIENT_SERIES
                && self
                    .issued_clients
                    .insert(client_id.to_owned(), ())
                    .is_none());
        self.tokens_issued
            .get_or_create(&IssuedLabels {
                client_id: if known {
                    client_id.to_owned()
                } else {
                    OTHER_CLIENTS.to_owned()
                },
                grant_type,
            })
            .inc();
    }

    /// Counts a token endpoint error.
    pub fn token_error(&self, code: &'static str) {
        self.token_errors.get_or_create(&CodeLabels { code }).inc();
    }

    /// Counts a failed store operation.
    pub fn store_error(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Counts one introspection call and its time.
    pub fn introspection(&self, issuer: &str, outcome: &'static str, took: Duration) {
        self.introspections
            .get_or_create(&IntrospectionLabels {
                issuer: issuer.to_owned(),
                outcome,
            })
            .inc();
        self.introspection_seconds.observe(took.as_secs_f64());
    }

    /// How many tokens' introspection calls are in flight.
    pub fn introspections_in_flight(&self, n: usize) {
        self.introspections_in_flight
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text, with the live policy version and revision as labels.
    pub fn encode(&self, version: &str, revision: &str) -> String {
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        self.revision_info.clear();
        self.revision_info
            .get_or_create(&RevisionLabels {
                revision: revision.to_owned(),
                version: version.to_owned(),
            })
            .set(1);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_series_are_bounded() {
        let metrics = Metrics::new();
        for i in 0..MAX_CLIENT_SERIES + 50 {
            metrics.token_issued(&format!("client-{i}"), "client_credentials");
        }
        // A known client keeps its own series.
        metrics.token_issued("client-0", "client_credentials");
        let text = metrics.encode("v", "r");
        let series = text
            .lines()
            .filter(|l| l.starts_with("arbiter_tokens_issued_total{"))
            .count();
        assert_eq!(
            series,
            MAX_CLIENT_SERIES + 1,
            "one more for `{OTHER_CLIENTS}`"
        );
        assert!(text.contains(&format!("client_id=\"{OTHER_CLIENTS}\"")));
    }
}
