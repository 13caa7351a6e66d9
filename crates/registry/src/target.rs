//! Where a label points: one version, or a weighted split between versions (a canary), and
//! the sticky assignment of a routing key to one side of a split.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Buckets a routing key is hashed into: weights are percentages, so one bucket is 0.01 %.
pub const BUCKETS: u64 = 10_000;

/// A label's target. In `registry.yaml` and the audit log a single version is a string and a
/// split a mapping from version id to its weight in percent (`{v3-…: 90, v4-…: 10}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    One(String),
    /// Two or more distinct versions with weights in percent (each > 0, summing to 100),
    /// ordered newest first: the order in which buckets are handed out.
    Split(Vec<(String, u32)>),
}

/// The version number in a version id (`v12-…` → 12).
fn number(id: &str) -> u32 {
    id.strip_prefix('v')
        .and_then(|s| s.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Target {
    /// A split, validated and put in its canonical order (newest version first). A split with
    /// one version of weight 100 is that version.
    pub fn split(mut parts: Vec<(String, u32)>) -> Result<Target, String> {
        parts.sort_by(|a, b| number(&b.0).cmp(&number(&a.0)).then(b.0.cmp(&a.0)));
        if parts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("a split names the same version twice".into());
        }
        if let Some((id, _)) = parts.iter().find(|(_, w)| *w == 0) {
            return Err(format!(
                "`{id}` has weight 0 in the split; leave it out instead"
            ));
        }
        let total: u32 = parts.iter().map(|(_, w)| *w).sum();
        if total != 100 {
            return Err(format!(
                "the weights of a split must add up to 100 (percent), not {total}"
            ));
        }
        if parts.len() == 1 {
            return Ok(Target::One(parts.remove(0).0));
        }
        Ok(Target::Split(parts))
    }

    /// Every version this target serves.
    pub fn versions(&self) -> Vec<&str> {
        match self {
            Target::One(v) => vec![v.as_str()],
            Target::Split(parts) => parts.iter().map(|(v, _)| v.as_str()).collect(),
        }
    }

    /// Whether this target serves `id` at all.
    pub fn serves(&self, id: &str) -> bool {
        self.versions().contains(&id)
    }

    /// The single version, if this is not a split.
    pub fn single(&self) -> Option<&str> {
        match self {
            Target::One(v) => Some(v),
            Target::Split(_) => None,
        }
    }

    /// The version a caller without a routing key gets, and the baseline a gate compares
    /// against: the one with the largest weight, the older one on a tie (the stable side).
    pub fn primary(&self) -> &str {
        match self {
            Target::One(v) => v,
            // Newest first, and `max_by_key` keeps the last of equal maxima: the oldest.
            Target::Split(parts) => parts
                .iter()
                .max_by_key(|(_, w)| *w)
                .map(|(v, _)| v.as_str())
                .unwrap_or(""),
        }
    }

    /// The version `routing_key` is assigned to. Sticky: the key hashes (with the label) to a
    /// bucket in 0..10,000 and the versions take consecutive ranges of buckets, newest first.
    /// Growing the newest version's weight therefore only moves keys onto it, never back.
    pub fn assign(&self, label: &str, routing_key: Option<&str>) -> &str {
        match (self, routing_key) {
            (Target::One(v), _) => v,
            (Target::Split(_), None) => self.primary(),
            (Target::Split(parts), Some(key)) => {
                let b = bucket(label, key);
                let mut upper = 0u64;
                for (v, w) in parts {
                    upper += *w as u64 * (BUCKETS / 100);
                    if b < upper {
                        return v;
                    }
                }
                parts.last().map(|(v, _)| v.as_str()).unwrap_or("")
            }
        }
    }

    /// The weight of `id` in percent (100 for a single target that is `id`, 0 if not served).
    pub fn weight_of(&self, id: &str) -> u32 {
        match self {
            Target::One(v) => u32::from(v == id) * 100,
            Target::Split(parts) => parts
                .iter()
                .find(|(v, _)| v == id)
                .map(|(_, w)| *w)
                .unwrap_or(0),
        }
    }

    /// Parse the text form: `v3-70f096f`, or `v4-1a2b3c4:10,v3-70f096f:90` for a split.
    pub fn parse(text: &str) -> Result<Target, String> {
        if !text.contains(':') {
            return Ok(Target::One(text.trim().to_string()));
        }
        let mut parts = Vec::new();
        for part in text.split(',') {
            let (id, w) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not `VERSION:WEIGHT`"))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("`{w}` is not a whole percentage"))?;
            parts.push((id.trim().to_string(), w));
        }
        Target::split(parts)
    }
}

/// A target for people: its text form, or `none` when there is none.
pub fn show(t: Option<&Target>, none: &str) -> String {
    t.map(Target::to_string).unwrap_or_else(|| none.to_string())
}

/// The bucket of a routing key under a label: the first 8 bytes of SHA-256(label, NUL, key),
/// big-endian, modulo 10,000.
pub fn bucket(label: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&d[..8]);
    u64::from_be_bytes(eight) % BUCKETS
}

/// The text form (see [`Target::parse`]); a single version is its id.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::One(v) => f.write_str(v),
            Target::Split(parts) => {
                for (i, (v, w)) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}:{w}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<String> for Target {
    fn from(v: String) -> Target {
        Target::One(v)
    }
}

impl From<&str> for Target {
    fn from(v: &str) -> Target {
        Target::One(v.to_string())
    }
}

impl PartialEq<str> for Target {
    fn eq(&self, other: &str) -> bool {
        self.single() == Some(other)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::One(v) => s.serialize_str(v),
            Target::Split(parts) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(parts.len()))?;
                for (v, w) in parts {
                    m.serialize_entry(v, w)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Split(std::collections::BTreeMap<String, u32>),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a label points at a version id (`v3-70f096f`) or a split (`{v3-70f096f: 90, v4-1a2b3c4: 10}`)",
            )
        })? {
            Raw::One(v) => Ok(Target::One(v)),
            Raw::Split(m) => Target::split(m.into_iter().collect()).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_yaml_forms_round_trip() {
        let t = Target::parse("v3-aaaaaaa:90, v4-bbbbbbb:10").unwrap();
        assert_eq!(t.to_string(), "v4-bbbbbbb:10,v3-aaaaaaa:90");
        assert_eq!(Target::parse(&t.to_string()).unwrap(), t);
        let yaml = serde_yaml_ng::to_string(&t).unwrap();
        assert_eq!(serde_yaml_ng::from_str::<Target>(&yaml).unwrap(), t);
        let one: Target = serde_json::from_str("\"v2-ccccccc\"").unwrap();
        assert_eq!(one, Target::One("v2-ccccccc".into()));
        assert_eq!(t.primary(), "v3-aaaaaaa");
        assert_eq!(
            Target::parse("v3-a:50,v4-b:50").unwrap().primary(),
            "v3-a",
            "a tie goes to the older version"
        );
    }

    #[test]
    fn bad_splits_are_refused() {
        assert!(
            Target::parse("v3-a:90,v4-b:20")
                .unwrap_err()
                .contains("100")
        );
        assert!(
            Target::parse("v3-a:100,v4-b:0")
                .unwrap_err()
                .contains("weight 0")
        );
        assert!(
            Target::parse("v3-a:50,v3-a:50")
                .unwrap_err()
                .contains("twice")
        );
        assert!(Target::parse("v3-a:x").is_err());
        assert_eq!(
            Target::parse("v3-a:100").unwrap(),
            Target::One("v3-a".into())
        );
    }
}
