//! The bearer token check: `Authorization: Bearer <token>` (RFC 6750), compared in constant
//! time.

/// Whether a request with this `Authorization` header value (`None`: no such header) may
/// proceed. With no token configured every request may.
pub(crate) fn allowed(token: Option<&str>, authorization: Option<&[u8]>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(given) = authorization.and_then(bearer) else {
        return false;
    };
    constant_time_eq(token.as_bytes(), given)
}

/// The credentials of a `Bearer` authorization value: the scheme is case-insensitive, followed
/// by one or more spaces; surrounding whitespace is ignored.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    Some(rest.trim_ascii_start())
}

/// Whether `given` equals `expected`, in a time that depends only on `expected.len()` (the
/// configured token's length, not its content, nor how much of it `given` matches).
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = expected.len() ^ given.len();
    for (i, &e) in expected.iter().enumerate() {
        // Out of range reads as 0; the length difference above already decides the result.
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(e ^ g);
    }
    // Keeps the compiler from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_allows_everything() {
        assert!(allowed(None, None));
        assert!(allowed(None, Some(b"Bearer nonsense")));
    }

    #[test]
    fn bearer_tokens() {
        let t = Some("s3cret");
        assert!(allowed(t, Some(b"Bearer s3cret")));
        assert!(allowed(t, Some(b"bearer   s3cret ")));
        assert!(allowed(t, Some(b"BEARER s3cret")));
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer S3cret",
            b"Bearer",
            b"Bearer ",
            b"Bearers3cret",
            b"Basic s3cret",
            b"s3cret",
            b"",
        ] {
            assert!(!allowed(t, Some(bad)), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(!allowed(t, None));
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
