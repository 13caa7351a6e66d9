//! Canonical JSON and content hashes: the byte form that a version's identity is computed over.
//!
//! The rules, precise enough to reimplement (they follow RFC 8785's spirit with simpler number
//! rules):
//!
//! 1. Objects: keys sorted by their UTF-8 bytes, each key once; `{"a":1,"b":2}`.
//! 2. No whitespace anywhere outside strings.
//! 3. Strings: UTF-8, wrapped in `"`; `"` and `\` are escaped as `\"` and `\\`; the control
//!    characters U+0008, U+0009, U+000A, U+000C, U+000D as `\b \t \n \f \r`; every other
//!    character below U+0020 as `\u00XX` with lowercase hex; everything else is written as is
//!    (no `\u` escapes for non-ASCII, no escaping of `/`).
//! 4. Numbers: an integer (or a float with no fractional part and magnitude below 2^53) is
//!    written in plain decimal with a leading `-` when negative (`3`, `-1`, `0`; `-0.0` is `0`).
//!    Any other finite float is written in the shortest form that round-trips (Rust's `{}` /
//!    ryu: `0.3`, `1e-7`, `1.5e300`). NaN and infinities are rejected.
//! 5. `true`, `false`, `null` as themselves.
//!
//! The content hash is the lowercase hex SHA-256 of those bytes.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// 2^53: below it every integer is exactly representable as an f64.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Serialize `value` canonically. Fails only on non-finite numbers.
pub fn to_canonical_string(value: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The content hash of a JSON value: SHA-256 of its canonical form.
pub fn content_hash(value: &Value) -> Result<String, String> {
    Ok(sha256_hex(to_canonical_string(value)?.as_bytes()))
}

/// Append the canonical form of `value` to `out`.
fn write_value(out: &mut String, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, &map[key])?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(out: &mut String, n: &serde_json::Number) -> Result<(), String> {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        let f = n
            .as_f64()
            .ok_or_else(|| format!("unsupported number {n}"))?;
        if !f.is_finite() {
            return Err(format!("non-finite number {f} cannot be hashed"));
        }
        if f.fract() == 0.0 && f.abs() < EXACT_INT_LIMIT {
            let _ = write!(out, "{}", f as i64);
        } else {
            // Rust's Display for f64 is the shortest round-trip form, but never uses an
            // exponent; use `{:e}` when that is shorter so huge/tiny values stay compact.
            let plain = format!("{f}");
            let exp = format!("{f:e}");
            out.push_str(if exp.len() < plain.len() {
                &exp
            } else {
                &plain
            });
        }
    }
    Ok(())
}

/// Append `s` as a canonical JSON string.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let v = json!({"b": [1, 2.5, {"z": null, "a": true}], "a": "x"});
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            r#"{"a":"x","b":[1,2.5,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn numbers_have_one_spelling() {
        assert_eq!(to_canonical_string(&json!(1.0)).unwrap(), "1");
        assert_eq!(to_canonical_string(&json!(-0.0)).unwrap(), "0");
        assert_eq!(to_canonical_string(&json!(0.3)).unwrap(), "0.3");
        assert_eq!(to_canonical_string(&json!(1e-7)).unwrap(), "1e-7");
        assert_eq!(to_canonical_string(&json!(1.5e300)).unwrap(), "1.5e300");
        assert_eq!(
            to_canonical_string(&json!(u64::MAX)).unwrap(),
            "18446744073709551615"
        );
    }

    #[test]
    fn strings_escape_minimally() {
        let v = json!("a\"b\\c\n\u{1}é/");
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001é/\""
        );
    }

    #[test]
    fn hash_is_sha256_of_canonical_bytes() {
        // echo -n '{"a":1}' | sha256sum
        assert_eq!(
            content_hash(&json!({"a": 1})).unwrap(),
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
        );
    }
}
