//! Identity properties: reformatting or re-commenting a version never changes its hash; any
//! semantic change always does.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use promptgate::artifact;

/// A random but valid artifact, as JSON.
fn artifact_strategy() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,8}",
        0u32..=20,
        proptest::option::of(1u32..4000),
        proptest::collection::vec(("(system|user|assistant)", "[ -~&&[^{}%#]]{0,40}"), 1..4),
        proptest::collection::btree_map("[a-z]{1,6}", "(string|number|boolean)", 0..3),
        proptest::option::of("[ -~&&[^{}%]]{0,30}"),
    )
        .prop_map(|(model, temp, max_tokens, messages, vars, description)| {
            let mut msgs: Vec<Value> = messages
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect();
            let mut variables = Map::new();
            for (i, (name, ty)) in vars.into_iter().enumerate() {
                variables.insert(name.clone(), json!({"type": ty}));
                // Use every variable so validation has no reason to complain.
                let at = i % msgs.len();
                let old = msgs[at]["content"].as_str().unwrap().to_string();
                msgs[at]["content"] = Value::String(format!("{old} {{{{ {name} }}}}"));
            }
            let mut a = json!({
                "model": {"provider": "openai", "name": model, "temperature": temp as f64 / 10.0},
                "messages": msgs,
            });
            if let Some(m) = max_tokens {
                a["model"]["max_tokens"] = json!(m);
            }
            if !variables.is_empty() {
                a["variables"] = Value::Object(variables);
            }
            if let Some(d) = description {
                a["description"] = json!(d);
            }
            a
        })
}

fn hash_of(text: &str) -> String {
    let loaded = artifact::load(Path::new("v.yaml"), text).unwrap_or_else(|e| {
        panic!(
            "does not load:\n{text}\n{}",
            e.iter().map(|d| d.to_string()).collect::<String>()
        )
    });
    loaded.hash
}

/// JSON text with keys in a shuffled order and a chosen indentation (JSON is YAML too).
fn shuffled_json(v: &Value, seed: u64, indent: usize, depth: usize) -> String {
    let pad = " ".repeat(indent * (depth + 1));
    let close = " ".repeat(indent * depth);
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| {
                (k.len() as u64).wrapping_mul(seed | 1) ^ seed.rotate_left(k.len() as u32)
            });
            let items: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{pad}{}: {}",
                        serde_json::to_string(k).unwrap(),
                        shuffled_json(&m[*k], seed.rotate_left(7), indent, depth + 1)
                    )
                })
                .collect();
            format!("{{\n{}\n{close}}}", items.join(",\n"))
        }
        Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| format!("{pad}{}", shuffled_json(x, seed, indent, depth + 1)))
                .collect();
            if items.is_empty() {
                "[]".into()
            } else {
                format!("[\n{}\n{close}]", items.join(",\n"))
            }
        }
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reformatting_keeps_the_hash(a in artifact_strategy(), seed in any::<u64>(), indent in 1usize..5) {
        let block = serde_yaml_ng::to_string(&a).unwrap();
        let commented = format!("# version notes\n# more notes\n{block}# trailing comment\n");
        let flow = shuffled_json(&a, seed, indent, 0);
        let h = hash_of(&block);
        prop_assert_eq!(&h, &hash_of(&commented));
        prop_assert_eq!(&h, &hash_of(&flow));
    }

    #[test]
    fn semantic_changes_change_the_hash(a in artifact_strategy(), which in 0usize..5) {
        let mut b = a.clone();
        match which {
            0 => {
                let t = a["model"]["temperature"].as_f64().unwrap();
                b["model"]["temperature"] = json!(if t >= 1.0 { t - 0.05 } else { t + 0.05 });
            }
            1 => b["model"]["name"] = json!(format!("{}x", a["model"]["name"].as_str().unwrap())),
            2 => {
                let c = b["messages"][0]["content"].as_str().unwrap().to_string();
                b["messages"][0]["content"] = json!(format!("{c}!"));
            }
            3 => b["model"]["seed"] = json!(42),
            _ => b["description"] = json!(format!("{}.", a.get("description").and_then(Value::as_str).unwrap_or(""))),
        }
        let (ta, tb) = (serde_yaml_ng::to_string(&a).unwrap(), serde_yaml_ng::to_string(&b).unwrap());
        prop_assert_ne!(hash_of(&ta), hash_of(&tb));
    }
}

#[test]
fn explicit_defaults_and_number_spellings_are_the_same_identity() {
    let a = "model: { provider: openai, name: m, temperature: 1 }\nmessages: [{ role: user, content: \"{{ q }}\" }]\nvariables: { q: {} }\n";
    let b = "model:\n  temperature: 1.0\n  name: m\n  provider: openai\nmessages:\n- content: '{{ q }}'\n  role: user\nvariables:\n  q: { type: string }\n";
    assert_eq!(hash_of(a), hash_of(b));
}

/// The vectors every client checks (`clients/vectors/`: canonical JSON, rendering, routing):
/// the Rust implementation agrees with each entry, so a client that passes them agrees with
/// the registry.
#[test]
fn the_shared_client_vectors_hold() {
    use promptgate::artifact::canonical;
    use promptgate::registry::Target;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/vectors");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap()
    };
    let canon = read("canonical.json");
    let vectors = canon["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20);
    for v in vectors {
        let input: serde_json::Value = serde_json::from_str(v["json"].as_str().unwrap()).unwrap();
        assert_eq!(
            canonical::to_canonical_string(&input).unwrap(),
            v["canonical"].as_str().unwrap(),
            "{}",
            v["json"]
        );
        assert_eq!(
            canonical::content_hash(&input).unwrap(),
            v["sha256"].as_str().unwrap()
        );
    }
    let render = read("render.json");
    let vectors = render["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for v in vectors {
        let a: artifact::Artifact = serde_json::from_value(v["artifact"].clone()).unwrap();
        assert_eq!(a.content_hash().unwrap(), v["hash"].as_str().unwrap());
        let req = promptgate::render::render_variables(
            &a,
            v["prompt"].as_str().unwrap(),
            v["version_id"].as_str().unwrap(),
            v["variables"].as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&req).unwrap() + "\n",
            v["rendered"].as_str().unwrap(),
            "{}",
            v["prompt"]
        );
    }
    let routing = read("routing.json");
    let vectors = routing["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 50);
    for v in vectors {
        let target: Target = serde_json::from_value(v["weights"].clone()).unwrap();
        let label = v["label"].as_str().unwrap();
        assert_eq!(
            target.assign(label, v["key"].as_str()),
            v["version"].as_str().unwrap(),
            "{v}"
        );
    }
}
