//! RFC 8707 resource indicators: which audience a token is minted for. A client names the
//! resource servers it wants with repeated `resource` parameters; each must be an absolute
//! URI without a fragment, known to this server (`[oauth] resources`) and registered with
//! the client. No `resource` means the configured default audience.

use super::error::OAuthError;
use crate::store::ClientRecord;

pub use crate::config::check_resource_uri;

/// The audiences of the token to mint: the requested resources (deduplicated, in order),
/// or `default` when none was named. `invalid_target` when a resource is malformed, unknown
/// to the server, or not registered with the client.
pub fn audiences(
    requested: &[String],
    client: &ClientRecord,
    default: &str,
    known: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(vec![default.to_owned()]);
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for r in requested {
        if let Err(why) = check_resource_uri(r) {
            return Err(OAuthError::new(
                "invalid_target",
                format!("`resource` {why}: `{r}`"),
            ));
        }
        let allowed =
            r == default || (known.contains(r) && client.resources.iter().any(|mine| mine == r));
        if !allowed {
            return Err(OAuthError::new(
                "invalid_target",
                format!("this client may not obtain tokens for `{r}`"),
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_uris_are_absolute_without_fragment() {
        assert!(check_resource_uri("https://api.example.com/payments").is_ok());
        assert!(check_resource_uri("urn:example:payments").is_ok());
        assert!(check_resource_uri("/payments").is_err());
        assert!(check_resource_uri("payments").is_err());
        assert!(check_resource_uri("https://api.example.com/#x").is_err());
        assert!(check_resource_uri("").is_err());
    }
}
