//! Input rules of the registration RPCs: idempotency keys, candidate
//! references (never a citizen service number), reservation ids and page
//! tokens. Pure functions, so the rules are unit-tested on their own.

/// Longest idempotency key and candidate reference.
pub const MAX_TOKEN_LEN: usize = 128;
/// Shortest candidate reference: long enough to be a token, not a name.
pub const MIN_CANDIDATE_REF_LEN: usize = 8;

/// Why an idempotency key or candidate reference is refused.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    // Characters, as the message says (only ASCII passes the next check).
    let len = key.chars().count();
    if len == 0 || len > MAX_TOKEN_LEN {
        return Err(format!(
            "must be 1 to {MAX_TOKEN_LEN} characters, got {len}"
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err("may contain only A-Z, a-z, 0-9, '_', '.', ':' and '-'".into());
    }
    // Keys are stored and listed too: a BSN must not get in through them.
    if looks_like_bsn(key) {
        return Err(BSN_REFUSED.into());
    }
    Ok(())
}

const BSN_REFUSED: &str = "looks like a citizen service number (8 or 9 digits passing the \
     11-check, also with separators or a BSN prefix); send an opaque token, examcap stores no \
     personal identifiers";

/// A candidate reference is an opaque token of the registration system:
/// 8–128 characters of `[A-Za-z0-9_-]`. A value that looks like a Dutch
/// citizen service number (BSN) is refused, because examcap stores no
/// personal identifiers.
pub fn check_candidate_ref(r: &str) -> Result<(), String> {
    let len = r.chars().count();
    if !(MIN_CANDIDATE_REF_LEN..=MAX_TOKEN_LEN).contains(&len) {
        return Err(format!(
            "must be {MIN_CANDIDATE_REF_LEN} to {MAX_TOKEN_LEN} characters, got {len}"
        ));
    }
    if !r
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("may contain only A-Z, a-z, 0-9, '_' and '-'".into());
    }
    if looks_like_bsn(r) {
        return Err(BSN_REFUSED.into());
    }
    Ok(())
}

/// Whether `s` is a citizen service number as systems write one: 9 digits
/// d1..d9 with 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11), the 11-check
/// every BSN passes; or 8 digits, a BSN whose leading zero an integer
/// column dropped; either with separators (`-`, `_`, `.`, `:`, as in
/// 111-22-2333) or behind a "BSN" prefix. A token with other letters in it
/// (a UUID, say) is not one.
pub fn looks_like_bsn(s: &str) -> bool {
    let rest = match s.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("bsn") => &s[3..],
        _ => s,
    };
    let digits: Vec<u8> = rest.bytes().filter(|b| !b"-_.:".contains(b)).collect();
    if !(8..=9).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut b = [b'0'; 9];
    b[9 - digits.len()..].copy_from_slice(&digits);
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
    fn bsn_forms_with_separators_prefixes_and_a_dropped_zero() {
        // 012345672: 0+8+14+18+20+20+18+14−2 = 110 = 10·11.
        for bsn in [
            "012345672",
            "12345672",
            "111-22-2333",
            "1112-22-333",
            "111.222.333",
            "BSN111222333",
            "bsn-111222333",
            "Bsn:12345672",
        ] {
            assert!(looks_like_bsn(bsn), "{bsn}");
            // '.' and ':' are outside a reference's characters anyway.
            let e = check_candidate_ref(bsn).unwrap_err();
            assert!(
                e.contains("citizen service number") || e.contains("may contain only"),
                "{bsn}: {e}"
            );
            let e = check_idempotency_key(bsn).unwrap_err();
            assert!(e.contains("citizen service number"), "{bsn}: {e}");
        }
        for token in [
            "12345678",
            "111-22-2334",
            "123e4567-e89b-12d3-a456-426614174000",
            "cand-111222333x",
            "bsn",
            "BSN-",
            "1234567",
        ] {
            assert!(!looks_like_bsn(token), "{token}");
        }
        assert!(check_idempotency_key("req-000001").is_ok());
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
        // Lengths count characters, not bytes: 100 é's are 100 characters,
        // refused for what they are.
        let e = check_candidate_ref(&"é".repeat(100)).unwrap_err();
        assert!(e.contains("only"), "{e}");
        let e = check_candidate_ref(&"é".repeat(200)).unwrap_err();
        assert!(e.contains("got 200"), "{e}");
        let e = check_idempotency_key(&"é".repeat(100)).unwrap_err();
        assert!(e.contains("only"), "{e}");
        let e = check_idempotency_key(&"é".repeat(129)).unwrap_err();
        assert!(e.contains("got 129"), "{e}");
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
