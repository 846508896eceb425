//! RFC 8705 mutual-TLS client authentication at the token endpoint: which certificate a
//! client registered and whether the one on the connection is it. `tls_client_auth` (§2.1):
//! the certificate chains to the configured client CA and its subject is the registered one
//! (a distinguished name compared attribute by attribute, or one subject alternative
//! name). `self_signed_tls_client_auth` (§2.2): the certificate is one the client
//! registered, as `x5c` of a key in its JWKS. Tokens issued on either are bound to the
//! certificate (`cnf.x5t#S256`, §3).

use std::net::IpAddr;

use base64::Engine as _;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The registration parameters naming a `tls_client_auth` certificate's subject (§2.1.2);
/// a client registers exactly one.
pub const SUBJECT_PARAMETERS: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

/// Checks a registered subject: a known parameter and a value of its kind.
pub fn check_subject(parameter: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{parameter}` is empty"));
    }
    match parameter {
        "tls_client_auth_subject_dn" => parse_dn(value).map(drop),
        "tls_client_auth_san_ip" => value
            .parse::<IpAddr>()
            .map(drop)
            .map_err(|_| format!("`{value}` is not an IP address")),
        "tls_client_auth_san_dns" | "tls_client_auth_san_uri" | "tls_client_auth_san_email" => {
            Ok(())
        }
        other => Err(format!(
            "unknown certificate subject parameter `{other}` (one of {})",
            SUBJECT_PARAMETERS.join(", ")
        )),
    }
}

/// Whether the certificate's subject is the registered one.
pub fn subject_matches(leaf_der: &[u8], parameter: &str, value: &str) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(leaf_der) else {
        return false;
    };
    if parameter == "tls_client_auth_subject_dn" {
        let Ok(mut registered) = parse_dn(value) else {
            return false;
        };
        let Some(mut presented) = certificate_dn(&cert) else {
            return false;
        };
        registered.sort();
        presented.sort();
        return registered == presented;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value
        .general_names
        .iter()
        .any(|name| match (parameter, name) {
            ("tls_client_auth_san_dns", GeneralName::DNSName(d)) => d.eq_ignore_ascii_case(value),
            ("tls_client_auth_san_uri", GeneralName::URI(u)) => *u == value,
            ("tls_client_auth_san_email", GeneralName::RFC822Name(e)) => same_email(e, value),
            ("tls_client_auth_san_ip", GeneralName::IPAddress(bytes)) => {
                let presented = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                    _ => None,
                };
                presented.is_some() && presented == value.parse().ok()
            }
            _ => false,
        })
}

/// The local part as written, the domain in any case.
fn same_email(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// The DER of every certificate a JWKS registers: the first `x5c` entry of each key
/// (standard base64, RFC 7517 §4.7).
pub fn registered_certificates(jwks: &serde_json::Value) -> impl Iterator<Item = Vec<u8>> + '_ {
    jwks.get("keys")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|key| key.get("x5c")?.as_array()?.first()?.as_str())
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
}

/// Whether the leaf certificate is one the client registered.
pub fn is_registered(jwks: &serde_json::Value, leaf_der: &[u8]) -> bool {
    registered_certificates(jwks).any(|der| der == leaf_der)
}

/// A distinguished name as `(attribute OID, value in lower case)` pairs, in any order.
type Dn = Vec<(String, String)>;

/// The subject of a certificate; `None` when an attribute is not a string.
fn certificate_dn(cert: &X509Certificate<'_>) -> Option<Dn> {
    let mut out = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        for attr in rdn.iter() {
            let value = attr.as_str().ok()?;
            out.push((attr.attr_type().to_id_string(), value.to_lowercase()));
        }
    }
    Some(out)
}

/// Parses an RFC 4514 distinguished name (`CN=client,O=Example\, Inc.,C=SE`); attribute
/// types by their usual short names or as dotted OIDs.
fn parse_dn(text: &str) -> Result<Dn, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        let oid = attribute_oid(name.trim())
            .ok_or_else(|| format!("`{}`: unknown attribute type in `{text}`", name.trim()))?;
        if chars.peek() == Some(&'#') {
            return Err(format!(
                "`{text}`: hex-encoded (#) values are not supported"
            ));
        }
        let mut value = String::new();
        let mut end = None;
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' | ';' => {
                    end = Some(c);
                    break;
                }
                '\\' => match chars.next() {
                    Some(h) if h.is_ascii_hexdigit() => {
                        let l = chars
                            .next()
                            .filter(char::is_ascii_hexdigit)
                            .ok_or_else(|| format!("`{text}`: bad hex escape"))?;
                        let byte = u8::from_str_radix(&format!("{h}{l}"), 16)
                            .map_err(|_| format!("`{text}`: bad hex escape"))?;
                        value.push(char::from(byte));
                    }
                    Some(e) => value.push(e),
                    None => return Err(format!("`{text}`: ends with `\\`")),
                },
                c => value.push(c),
            }
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("`{text}`: `{}` has no value", name.trim()));
        }
        out.push((oid, value.to_lowercase()));
        if end.is_none() {
            return Ok(out);
        }
    }
}

fn attribute_oid(name: &str) -> Option<String> {
    let known = match name.to_ascii_uppercase().as_str() {
        "CN" => "2.5.4.3",
        "SN" | "SURNAME" => "2.5.4.4",
        "SERIALNUMBER" => "2.5.4.5",
        "C" => "2.5.4.6",
        "L" => "2.5.4.7",
        "ST" => "2.5.4.8",
        "STREET" => "2.5.4.9",
        "O" => "2.5.4.10",
        "OU" => "2.5.4.11",
        "TITLE" => "2.5.4.12",
        "GN" | "GIVENNAME" => "2.5.4.42",
        "DC" => "0.9.2342.19200300.100.1.25",
        "UID" => "0.9.2342.19200300.100.1.1",
        "EMAILADDRESS" | "E" => "1.2.840.113549.1.9.1",
        _ if !name.is_empty()
            && name.split('.').count() > 1
            && name
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            return Some(name.to_owned())
        }
        _ => return None,
    };
    Some(known.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: &str, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc.");
        p.distinguished_name.push(rcgen::DnType::CountryName, "SE");
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn distinguished_names_compare_attribute_by_attribute() {
        let der = certificate("payments", vec![]);
        let dn = "tls_client_auth_subject_dn";
        assert!(subject_matches(
            &der,
            dn,
            r"CN=payments,O=Example\, Inc.,C=SE"
        ));
        assert!(subject_matches(
            &der,
            dn,
            r"c=se, o=Example\2C Inc., cn=PAYMENTS"
        ));
        assert!(subject_matches(
            &der,
            dn,
            r"2.5.4.3=payments,O=Example\, Inc.,C=SE"
        ));
        assert!(
            !subject_matches(&der, dn, "CN=payments,C=SE"),
            "an attribute missing"
        );
        assert!(!subject_matches(
            &der,
            dn,
            r"CN=payment,O=Example\, Inc.,C=SE"
        ));
        assert!(!subject_matches(
            &der,
            dn,
            r"CN=payments,O=Example\, Inc.,C=SE,OU=x"
        ));
    }

    #[test]
    fn alternative_names_match_by_kind() {
        let der = certificate(
            "x",
            vec![
                rcgen::SanType::DnsName("client.example.com".try_into().unwrap()),
                rcgen::SanType::URI("spiffe://example/payments".try_into().unwrap()),
                rcgen::SanType::IpAddress("10.1.2.3".parse().unwrap()),
                rcgen::SanType::Rfc822Name("ops@Example.com".try_into().unwrap()),
            ],
        );
        assert!(subject_matches(
            &der,
            "tls_client_auth_san_dns",
            "Client.Example.com"
        ));
        assert!(subject_matches(
            &der,
            "tls_client_auth_san_uri",
            "spiffe://example/payments"
        ));
        assert!(!subject_matches(
            &der,
            "tls_client_auth_san_uri",
            "spiffe://example/other"
        ));
        assert!(subject_matches(&der, "tls_client_auth_san_ip", "10.1.2.3"));
        assert!(!subject_matches(&der, "tls_client_auth_san_ip", "10.1.2.4"));
        assert!(subject_matches(
            &der,
            "tls_client_auth_san_email",
            "ops@example.com"
        ));
        assert!(!subject_matches(
            &der,
            "tls_client_auth_san_email",
            "OPS@example.com"
        ));
        assert!(
            !subject_matches(&der, "tls_client_auth_san_dns", "spiffe://example/payments"),
            "a name of another kind does not count"
        );
    }

    #[test]
    fn registered_subjects_are_checked() {
        assert!(check_subject("tls_client_auth_subject_dn", "CN=a,O=b").is_ok());
        assert!(check_subject("tls_client_auth_subject_dn", "XX=a").is_err());
        assert!(check_subject("tls_client_auth_subject_dn", "CN=#0403").is_err());
        assert!(check_subject("tls_client_auth_san_ip", "not-an-ip").is_err());
        assert!(check_subject("tls_client_auth_san_dns", " ").is_err());
        assert!(check_subject("tls_client_auth_anything", "x").is_err());
    }

    #[test]
    fn self_signed_certificates_are_found_in_x5c() {
        let der = certificate("self", vec![]);
        let other = certificate("other", vec![]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let jwks =
            serde_json::json!({ "keys": [ { "kty": "EC", "x5c": [b64] }, { "kty": "EC" } ] });
        assert!(is_registered(&jwks, &der));
        assert!(!is_registered(&jwks, &other));
        assert_eq!(registered_certificates(&jwks).count(), 1);
    }
}
