//! Request paths, made safe to match: the query string is dropped, percent-decoding is done
//! exactly once, and anything that could make two spellings reach different routes (dot
//! segments, encoded slashes, NUL, invalid UTF-8) is refused.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Does not start with `/`.
    #[error("path must start with `/`")]
    NotAbsolute,
    /// `%2F` would turn one segment into two after decoding.
    #[error("path contains an encoded slash")]
    EncodedSlash,
    /// `%` not followed by two hex digits.
    #[error("path has malformed percent-encoding")]
    BadEncoding,
    /// Not UTF-8 once decoded.
    #[error("path is not valid UTF-8 after decoding")]
    InvalidUtf8,
    /// A NUL byte.
    #[error("path contains NUL")]
    Nul,
    /// `.` or `..` segment (also when percent-encoded).
    #[error("path contains a dot-segment")]
    DotSegment,
    /// A backslash (also `%5C`): URL parsers that follow WHATWG (and servers on Windows) read
    /// it as `/`, so `/public/a\..\..\admin` would be `/admin` upstream.
    #[error("path contains a backslash")]
    Backslash,
}

/// The path to match routes against.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    let decoded = if path.contains('%') {
        let bytes = path.as_bytes();
        for (i, _) in path.match_indices('%') {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(PathError::BadEncoding);
            }
            if hex.eq_ignore_ascii_case(b"2f") {
                return Err(PathError::EncodedSlash);
            }
            if hex.eq_ignore_ascii_case(b"5c") {
                return Err(PathError::Backslash);
            }
        }
        percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| PathError::InvalidUtf8)?
    } else {
        Cow::Borrowed(path)
    };
    if decoded.contains('\0') {
        return Err(PathError::Nul);
    }
    if decoded.split('/').any(|s| s == "." || s == "..") {
        return Err(PathError::DotSegment);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_decodes_once() {
        assert_eq!(normalize("/item/42?x=1").unwrap(), "/item/42");
        assert_eq!(normalize("/item/a%20b").unwrap(), "/item/a b");
        assert_eq!(normalize("/item/%252e%252e").unwrap(), "/item/%2e%2e");
        assert!(matches!(
            normalize("/fido/config").unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn refuses_ambiguous_paths() {
        use PathError::*;
        for (p, e) in [
            ("item", NotAbsolute),
            ("", NotAbsolute),
            ("/a/../b", DotSegment),
            ("/a/./b", DotSegment),
            ("/a/%2e%2e/b", DotSegment),
            ("/a/%2E%2e", DotSegment),
            ("/a%2Fb", EncodedSlash),
            ("/a%2fb", EncodedSlash),
            ("/a%00", Nul),
            ("/a\0", Nul),
            ("/a%ff", InvalidUtf8),
            ("/a%zz", BadEncoding),
            ("/a%2", BadEncoding),
            ("/public/a\\..\\..\\admin", Backslash),
            ("/a%5cb", Backslash),
            ("/a%5Cb", Backslash),
        ] {
            assert_eq!(normalize(p), Err(e), "{p:?}");
        }
    }
}
