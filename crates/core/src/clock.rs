//! Time and identifiers: the one clock every stage stamps with (RFC 3339 UTC, whole seconds),
//! nanoseconds for spans, and random hex ids for runs, traces and cache files.

/// The current UTC time, RFC 3339 with seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| jiff::Timestamp::now().to_string())
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Whole seconds since the Unix epoch (what signal windows and rollouts are stamped with).
pub fn now_unix_s() -> u64 {
    (now_nanos() / 1_000_000_000) as u64
}

/// `bytes` random bytes as lowercase hex (not for secrets: fastrand is not a CSPRNG).
pub fn random_id(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_rfc3339_seconds_and_ids_hex() {
        let t = super::now();
        assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
        let id = super::random_id(8);
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
