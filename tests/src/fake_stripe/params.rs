//! Parameter decoding: `application/x-www-form-urlencoded` bodies and query strings,
//! percent-encoded path segments, Stripe's bracket notation, and typed values (integers,
//! booleans) with Stripe's error for each.

use super::server::ApiError;

/// `discounts[0][coupon]` → `("discounts", ["0", "coupon"])`; `expand[]` →
/// `("expand", [""])`; `metadata[a]` → `("metadata", ["a"])`. A name that is not bracket
/// notation comes back whole with no indices (and is then an unknown parameter).
pub(super) fn split_brackets(name: &str) -> (&str, Vec<&str>) {
    let Some(open) = name.find('[') else {
        return (name, Vec::new());
    };
    let base = &name[..open];
    let mut rest = &name[open..];
    let mut parts = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            return (name, Vec::new());
        };
        parts.push(&stripped[..close]);
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return (name, Vec::new());
    }
    (base, parts)
}

pub(super) fn parse_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse().map_err(|_| {
        ApiError::invalid(format!("Invalid integer: {v}"), Some(name))
            .with_code("parameter_invalid_integer")
    })
}

pub(super) fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(
            format!("Invalid boolean: {v}"),
            Some(name),
        )),
    }
}

pub(super) fn decode_segment(s: &str) -> String {
    percent_decode(s.as_bytes(), false).unwrap_or_else(|| s.to_string())
}

/// `application/x-www-form-urlencoded` (or a query string) into ordered pairs; `None` if a
/// percent escape or the UTF-8 is invalid.
pub(super) fn decode_form(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Some(out)
}

pub(super) fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn brackets() {
        assert_eq!(
            split_brackets("discounts[0][coupon]"),
            ("discounts", vec!["0", "coupon"])
        );
        assert_eq!(split_brackets("expand[]"), ("expand", vec![""]));
        assert_eq!(split_brackets("trial_end"), ("trial_end", vec![]));
        assert_eq!(split_brackets("a[b]c"), ("a[b]c", vec![]));
        assert_eq!(split_brackets("a[b"), ("a[b", vec![]));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            decode_form(b"discounts%5B0%5D%5Bcoupon%5D=SAVE+20%25&pause_collection=").unwrap(),
            vec![
                ("discounts[0][coupon]".to_string(), "SAVE 20%".to_string()),
                ("pause_collection".to_string(), String::new()),
            ]
        );
        assert!(decode_form(b"a=%zz").is_none());
        assert!(decode_form(b"a=%2").is_none());
    }
}
