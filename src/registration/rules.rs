//! Input rules of the registration RPCs: idempotency keys, candidate
//! references (never a citizen service number), reservation ids and page
//! tokens. Pure functions, so the rules are unit-tested on their own.

/// Longest idempotency key and candidate reference.
pub const MAX_TOKEN_LEN: usize = 128;
/// Shortest candidate reference: long enough to be a token, not a name.
pub const MIN_CANDIDATE_REF_LEN: usize = 8;

/// Why an idempotency key or candidate reference is refused.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "must be 1 to {MAX_TOKEN_LEN} characters, got {}",
            key.len()
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err("may contain only A-Z, a-z, 0-9, '_', '.', ':' and '-'".into());
    }
    Ok(())
}

/// A candidate reference is an opaque token of the registration system:
/// 8–128 characters of `[A-Za-z0-9_-]`. A value that looks like a Dutch
/// citizen service number (BSN) is refused, because examcap stores no
/// personal identifiers.
pub fn check_candidate_ref(r: &str) -> Result<(), String> {
    if r.len() < MIN_CANDIDATE_REF_LEN || r.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "must be {MIN_CANDIDATE_REF_LEN} to {MAX_TOKEN_LEN} characters, got {}",
            r.len()
        ));
    }
    if !r
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("may contain only A-Z, a-z, 0-9, '_' and '-'".into());
    }
    if looks_like_bsn(r) {
        return Err(
            "looks like a citizen service number (9 digits passing the 11-check); \
             send an opaque token, examcap stores no personal identifiers"
                .into(),
        );
    }
    Ok(())
}

/// Whether `s` is 9 digits d1..d9 with 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0
/// (mod 11): the 11-check every BSN passes.
pub fn looks_like_bsn(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d = |i: usize| i64::from(b[i] - b'0');
    let sum: i64 = (0..8).map(|i| (9 - i as i64) * d(i)).sum::<i64>() - d(8);
    sum.rem_euclid(11) == 0
}

/// The id of reservation `seq`: fixed width, so string order is id order.
pub fn reservation_id(seq: u64) -> String {
    format!("r{seq:016x}")
}

/// The `seq` of a reservation id; `None` if it is not one.
pub fn parse_reservation_id(id: &str) -> Option<u64> {
    let hex = id.strip_prefix('r')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The page token that continues a listing after reservation `seq`.
/// Opaque to callers; it only encodes where to resume.
pub fn page_token(after_seq: u64) -> String {
    format!("after.{}", reservation_id(after_seq))
}

/// The `seq` a page token resumes after; `None` if it is not one.
pub fn parse_page_token(t: &str) -> Option<u64> {
    parse_reservation_id(t.strip_prefix("after.")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleven_check() {
        // 111222333: 9+8+7+12+10+8+9+6−3 = 66 = 6·11.
        assert!(looks_like_bsn("111222333"));
        // 123456782: 9+16+21+24+25+24+21+16−2 = 154 = 14·11.
        assert!(looks_like_bsn("123456782"));
        assert!(!looks_like_bsn("123456789"));
        assert!(!looks_like_bsn("111222334"));
        assert!(!looks_like_bsn("11122233"));
        assert!(!looks_like_bsn("1112223330"));
        assert!(!looks_like_bsn("11122233a"));
    }

    #[test]
    fn candidate_refs() {
        assert!(check_candidate_ref("cand-0001_abc").is_ok());
        assert!(
            check_candidate_ref("123456789").is_ok(),
            "fails the 11-check"
        );
        let bsn = check_candidate_ref("111222333").unwrap_err();
        assert!(bsn.contains("citizen service number"), "{bsn}");
        assert!(check_candidate_ref("short")
            .unwrap_err()
            .contains("8 to 128"));
        assert!(check_candidate_ref(&"a".repeat(129)).is_err());
        assert!(check_candidate_ref(&"a".repeat(128)).is_ok());
        assert!(check_candidate_ref("Jan Jansen")
            .unwrap_err()
            .contains("only"));
        assert!(check_candidate_ref("cand.0001").is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert!(check_idempotency_key("k").is_ok());
        assert!(check_idempotency_key("order:42.1_a-b").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key(&"k".repeat(129)).is_err());
        assert!(check_idempotency_key("a b").is_err());
        assert!(check_idempotency_key("é").is_err());
    }

    #[test]
    fn ids_and_page_tokens_round_trip_and_sort() {
        for seq in [0, 1, 255, u64::MAX] {
            assert_eq!(parse_reservation_id(&reservation_id(seq)), Some(seq));
            assert_eq!(parse_page_token(&page_token(seq)), Some(seq));
        }
        assert!(reservation_id(9) < reservation_id(10));
        assert!(reservation_id(255) < reservation_id(256));
        for bad in ["", "r", "r12", "x0000000000000001", "r000000000000000g"] {
            assert_eq!(parse_reservation_id(bad), None, "{bad}");
        }
        for bad in ["", "after.", "r0000000000000001", "after.r1"] {
            assert_eq!(parse_page_token(bad), None, "{bad}");
        }
    }
}
