//! RFC 8707 resource indicators: which audience a token is minted for. A client names the
//! resource servers it wants with repeated `resource` parameters; each must be an absolute
//! URI without a fragment, known to this server (`[oauth] resources`) and registered with
//! the client. No `resource` means the configured default audience.

use super::token::OAuthError;
use crate::store::ClientRecord;

/// Whether `uri` can be a resource indicator: an absolute URI without a fragment.
pub fn check_resource_uri(uri: &str) -> Result<(), &'static str> {
    match url::Url::parse(uri) {
        Ok(_) if uri.contains('#') => Err("must not have a fragment"),
        Ok(parsed) if parsed.cannot_be_a_base() && parsed.scheme() != "urn" => {
            Err("is not an absolute URI")
        }
        Ok(_) => Ok(()),
        Err(_) => Err("is not an absolute URI"),
    }
}

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
