//! Input hygiene for text: which characters an input may carry, a fast scan of raw JSON for
//! any that it may not, and the one walk that names the offending field.
//!
//! PostgreSQL refuses NUL in `text` and `jsonb`, and no identifier, name, code, origin or
//! time zone has a reason to carry a control character. So every text input (JSON bodies,
//! query strings, customer-token claims) is refused when it carries one of:
//! C0 controls (U+0000–U+001F), DEL (U+007F) or C1 controls (U+0080–U+009F). Free text (what
//! a person writes or reads: feedback, a flow's copy and UI strings) may also carry tab, line
//! feed and carriage return. The api checks this once, at the edge (its `ApiJson` and
//! `ApiQuery` extractors); the customer-token verifier checks claims the same way.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A control character no text input may carry (tab, LF and CR are handled by
/// [`allowed`]).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Whether `c` may appear in a text input (`free_text`: tab, LF and CR are allowed too).
pub fn allowed(c: char, free_text: bool) -> bool {
    !is_control(c) || (free_text && matches!(c, '\t' | '\n' | '\r'))
}

/// Whether `s` is clean text (see [`allowed`]).
pub fn is_clean(s: &str, free_text: bool) -> bool {
    s.chars().all(|c| allowed(c, free_text))
}

/// A cheap scan of a raw JSON document: `false` means it certainly carries no control
/// character in any string (so the parsed value need not be walked). `true` means it may:
/// a `\b \f \n \r \t` or `\u00XX` escape of a C0/DEL/C1 character, or a raw DEL or C1
/// character (raw C0 characters are not valid JSON inside strings and fail parsing). A false
/// positive (`"\\u0000"`, an escaped backslash) only costs the walk.
pub fn json_may_have_control(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' => {
                match raw.get(i + 1) {
                    Some(b'b' | b'f' | b'n' | b'r' | b't') => return true,
                    Some(b'u') => {
                        if let (Some(b'0'), Some(b'0'), Some(h), Some(l)) = (
                            raw.get(i + 2),
                            raw.get(i + 3),
                            raw.get(i + 4),
                            raw.get(i + 5),
                        ) {
                            let control = match h {
                                b'0' | b'1' | b'8' | b'9' => l.is_ascii_hexdigit(),
                                b'7' => matches!(l, b'f' | b'F'),
                                _ => false,
                            };
                            if control {
                                return true;
                            }
                        }
                    }
                    _ => {}
                }
                // Skip the escaped character (an escaped backslash must not start another).
                i += 2;
                continue;
            }
            0x7f => return true,
            // U+0080–U+009F in UTF-8: C2 80 … C2 9F.
            0xc2 if matches!(raw.get(i + 1), Some(0x80..=0x9f)) => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Object keys whose string values are free text (tab, LF and CR allowed): feedback, a
/// flow's copy. `strings` (a flow's UI-string overrides) and `custom` (a custom offer's
/// payload, rendered by the tenant) are free text all the way down.
pub const FREE_TEXT_FIELDS: &[&str] = &[
    "text",
    "title",
    "body",
    "description",
    "label",
    "placeholder",
    "follow_up",
    "cta",
    "message",
];
pub const FREE_TEXT_CONTAINERS: &[&str] = &["strings", "custom"];

/// The path (`steps[2].title`, `attributes.plan`) of the first string or object key in `v`
/// that carries a character it may not (see [`allowed`]); free text is decided by the name
/// of the field holding the string. `None` when `v` is clean.
pub fn find_control(v: &Value) -> Option<String> {
    let mut path = String::new();
    walk(v, &mut path, false, false).then_some(path)
}

fn walk(v: &Value, path: &mut String, free_field: bool, free_tree: bool) -> bool {
    match v {
        Value::String(s) => !is_clean(s, free_field || free_tree),
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                if walk(item, path, free_field, free_tree) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        Value::Object(map) => {
            let len = path.len();
            for (k, item) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                if !is_clean(k, false) {
                    return true;
                }
                let free_field = FREE_TEXT_FIELDS.contains(&k.as_str());
                let free_tree = free_tree || FREE_TEXT_CONTAINERS.contains(&k.as_str());
                if walk(item, path, free_field, free_tree) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        _ => false,
    }
}

/// Replaces every NUL (which PostgreSQL cannot store) in the strings and keys of `v` with
/// U+FFFD, the replacement character. Returns whether anything was replaced.
pub fn replace_nul(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{fffd}");
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |acc, i| replace_nul(i) | acc),
        Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, item) in old {
                    map.insert(k.replace('\0', "\u{fffd}"), item);
                }
                changed = true;
            }
            map.values_mut()
                .fold(changed, |acc, i| replace_nul(i) | acc)
        }
        _ => false,
    }
}

/// `deserialize_with` for an optional string field that, when present, must be a string:
/// `null` is refused ("invalid type: null, expected a string") instead of read as absent.
/// Use with `#[serde(default, deserialize_with = "shared::text::some_string")]`.
pub fn some_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn control_characters_are_refused_and_free_text_keeps_its_lines() {
        for c in [
            '\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}', '\u{8}',
        ] {
            assert!(!allowed(c, false), "{c:?}");
            assert!(!allowed(c, true), "{c:?}");
        }
        for c in ['\t', '\n', '\r'] {
            assert!(!allowed(c, false), "{c:?}");
            assert!(allowed(c, true), "{c:?}");
        }
        for c in [' ', 'a', 'é', '\u{a0}', '\u{fffd}', '😀'] {
            assert!(allowed(c, false), "{c:?}");
        }
    }

    #[test]
    fn the_fast_scan_finds_every_control_escape_and_raw_c1() {
        for raw in [
            r#"{"a":"x\u0000"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\u007f"}"#,
            r#"{"a":"\u0085"}"#,
            r#"{"a":"\u009f"}"#,
            r#"{"a":"\n"}"#,
            r#"{"a":"\t"}"#,
            r#"{"a":"\b"}"#,
            "{\"a\":\"\u{7f}\"}",
            "{\"a\":\"\u{85}\"}",
        ] {
            assert!(json_may_have_control(raw.as_bytes()), "{raw}");
        }
        for raw in [
            r#"{"a":"plain","b":[1,2,{"c":"é\u00e9\u00a0\"\\"}]}"#,
            r#"{"a":"\\u0000 is escaped text"}"#,
            r#"{"a":"\\n"}"#,
            "{\"a\":\"\u{a0}\u{c2}\"}",
        ] {
            assert!(!json_may_have_control(raw.as_bytes()), "{raw}");
        }
    }

    #[test]
    fn the_walk_names_the_field() {
        let v = json!({"name": "ok", "steps": [{"title": "a\nb"}, {"id": "x\u{0}"}]});
        assert_eq!(find_control(&v).as_deref(), Some("steps[1].id"));
        let v =
            json!({"text": "line\r\n\tindent", "strings": {"k": "a\nb"}, "custom": {"x": ["\n"]}});
        assert_eq!(find_control(&v), None);
        let v = json!({"text": "nul\u{0}"});
        assert_eq!(find_control(&v).as_deref(), Some("text"));
        let v = json!({"attributes": {"plan\u{7f}": "pro"}});
        assert_eq!(find_control(&v).as_deref(), Some("attributes.plan\u{7f}"));
        let v = json!({"name": "a\nb"});
        assert_eq!(find_control(&v).as_deref(), Some("name"));
        let v = json!(["ok", "\u{85}"]);
        assert_eq!(find_control(&v).as_deref(), Some("[1]"));
    }

    #[test]
    fn nul_is_replaced_in_values_and_keys() {
        let mut v = json!({"id": "evt_\u{0}", "m": {"k\u{0}": ["\u{0}x", 1]}, "n": "clean"});
        assert!(replace_nul(&mut v));
        assert_eq!(
            v,
            json!({"id": "evt_\u{fffd}", "m": {"k\u{fffd}": ["\u{fffd}x", 1]}, "n": "clean"})
        );
        assert!(!replace_nul(&mut v));
    }

    #[test]
    fn some_string_refuses_null() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[serde(default, deserialize_with = "some_string")]
            language: Option<String>,
        }
        let b: B = serde_json::from_str("{}").unwrap();
        assert_eq!(b.language, None);
        let b: B = serde_json::from_str(r#"{"language":"fr"}"#).unwrap();
        assert_eq!(b.language.as_deref(), Some("fr"));
        let e = serde_json::from_str::<B>(r#"{"language":null}"#).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }
}
