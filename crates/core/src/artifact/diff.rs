//! Semantic diff of two versions: messages as text, parameters, variables, tools and schemas
//! as structured changes, naming the **breaking** ones (a required field added, a property
//! removed, a type narrowed, an enum value removed, a tool removed, a constraint tightened).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::Artifact;

/// What part of a version a change touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Description,
    Metadata,
    Model,
    Variables,
    FewShot,
    Tools,
    OutputSchema,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::Description => "description",
            Area::Metadata => "metadata",
            Area::Model => "model",
            Area::Variables => "variables",
            Area::FewShot => "few_shot",
            Area::Tools => "tools",
            Area::OutputSchema => "output_schema",
        }
    }
}

/// One structured change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub area: Area,
    /// Where, e.g. `properties.answer` or `search_kb.parameters.properties.query`.
    pub path: String,
    /// What happened, in words.
    pub detail: String,
    /// Whether data valid for the old version can be invalid for the new one, or a consumer
    /// of the old contract breaks.
    pub breaking: bool,
}

/// The difference between two versions.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDiff {
    /// Unified diff of the messages (empty when they are identical).
    pub messages: String,
    pub changes: Vec<Change>,
}

impl VersionDiff {
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.breaking)
    }

    /// Breaking changes to the output schema or a tool schema (what the gate refuses).
    pub fn breaking_schema_changes(&self) -> impl Iterator<Item = &Change> {
        self.breaking()
            .filter(|c| matches!(c.area, Area::OutputSchema | Area::Tools))
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.changes.is_empty()
    }

    /// Human-readable rendering, `old_name`/`new_name` label the sides.
    pub fn render(&self, old_name: &str, new_name: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- {old_name}\n+++ {new_name}");
        if self.is_empty() {
            s.push_str("\nno semantic differences\n");
            return s;
        }
        if !self.messages.is_empty() {
            s.push_str("\nmessages\n");
            s.push_str(&self.messages);
        }
        let mut areas: Vec<Area> = Vec::new();
        for c in &self.changes {
            if !areas.contains(&c.area) {
                areas.push(c.area);
            }
        }
        for area in areas {
            let _ = writeln!(s, "\n{}", area.title());
            for c in self.changes.iter().filter(|c| c.area == area) {
                let mark = if c.breaking { "BREAKING" } else { "  change" };
                if c.path.is_empty() {
                    let _ = writeln!(s, "  {mark}  {}", c.detail);
                } else {
                    let _ = writeln!(s, "  {mark}  {}: {}", c.path, c.detail);
                }
            }
        }
        let n = self.breaking().count();
        let _ = writeln!(
            s,
            "\n{} change(s), {} breaking",
            self.changes.len() + usize::from(!self.messages.is_empty()),
            n
        );
        s
    }
}

fn messages_text(a: &Artifact) -> String {
    let mut s = String::new();
    for (i, m) in a.messages.iter().enumerate() {
        let _ = writeln!(s, "[{i}] {}:", m.role.as_str());
        s.push_str(&m.content);
        if !m.content.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// Compare two versions.
pub fn diff(old: &Artifact, new: &Artifact) -> VersionDiff {
    let (a, b) = (messages_text(old), messages_text(new));
    let messages = if a == b {
        String::new()
    } else {
        similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .missing_newline_hint(false)
            .to_string()
    };
    let mut out = Vec::new();
    let change = |area, path: &str, detail: String, breaking| Change {
        area,
        path: path.to_string(),
        detail,
        breaking,
    };

    if old.description != new.description {
        out.push(change(
            Area::Description,
            "",
            "description changed".into(),
            false,
        ));
    }
    map_changes(Area::Metadata, &old.metadata, &new.metadata, &mut out);
    let (om, nm) = (
        serde_json::to_value(&old.model).unwrap_or(Value::Null),
        serde_json::to_value(&new.model).unwrap_or(Value::Null),
    );
    if let (Value::Object(om), Value::Object(nm)) = (om, nm) {
        map_changes(
            Area::Model,
            &om.into_iter().collect(),
            &nm.into_iter().collect(),
            &mut out,
        );
    }

    // Variables: a new required variable breaks every caller that does not pass it.
    for (name, v) in &new.variables {
        match old.variables.get(name) {
            None => out.push(change(
                Area::Variables,
                name,
                if v.default.is_none() {
                    format!("new required variable ({})", v.kind.name())
                } else {
                    format!("new optional variable ({})", v.kind.name())
                },
                v.default.is_none(),
            )),
            Some(o) if o != v => {
                if o.kind != v.kind {
                    out.push(change(
                        Area::Variables,
                        name,
                        format!("type {} → {}", o.kind.name(), v.kind.name()),
                        true,
                    ));
                }
                if o.default.is_some() && v.default.is_none() {
                    out.push(change(
                        Area::Variables,
                        name,
                        "default removed: now required".into(),
                        true,
                    ));
                } else if o.default != v.default {
                    out.push(change(
                        Area::Variables,
                        name,
                        "default changed".into(),
                        false,
                    ));
                }
                if o.description != v.description {
                    out.push(change(
                        Area::Variables,
                        name,
                        "description changed".into(),
                        false,
                    ));
                }
            }
            _ => {}
        }
    }
    for name in old.variables.keys() {
        if !new.variables.contains_key(name) {
            out.push(change(
                Area::Variables,
                name,
                "variable removed".into(),
                false,
            ));
        }
    }

    for i in 0..old.few_shot.len().max(new.few_shot.len()) {
        let detail = match (old.few_shot.get(i), new.few_shot.get(i)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => "example changed",
            (None, Some(_)) => "example added",
            (Some(_), None) => "example removed",
            (None, None) => continue,
        };
        out.push(change(
            Area::FewShot,
            &format!("[{i}]"),
            detail.into(),
            false,
        ));
    }

    // Tools by name.
    for t in &new.tools {
        match old.tools.iter().find(|o| o.name == t.name) {
            None => out.push(change(Area::Tools, &t.name, "tool added".into(), false)),
            Some(o) => {
                if o.description != t.description {
                    out.push(change(
                        Area::Tools,
                        &t.name,
                        "description changed".into(),
                        false,
                    ));
                }
                schema_changes(Area::Tools, &o.parameters, &t.parameters, &t.name, &mut out);
            }
        }
    }
    for o in &old.tools {
        if !new.tools.iter().any(|t| t.name == o.name) {
            out.push(change(Area::Tools, &o.name, "tool removed".into(), true));
        }
    }

    match (&old.output_schema, &new.output_schema) {
        (None, None) => {}
        (None, Some(_)) => out.push(change(
            Area::OutputSchema,
            "",
            "output schema added: outputs are now constrained".into(),
            true,
        )),
        (Some(_), None) => out.push(change(
            Area::OutputSchema,
            "",
            "output schema removed: outputs are no longer structured".into(),
            true,
        )),
        (Some(o), Some(n)) => schema_changes(Area::OutputSchema, o, n, "", &mut out),
    }
    VersionDiff {
        messages,
        changes: out,
    }
}

fn map_changes(
    area: Area,
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
    out: &mut Vec<Change>,
) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        let detail = match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => format!("{} → {}", short(a), short(b)),
            (None, Some(b)) => format!("set to {}", short(b)),
            (Some(a), None) => format!("{} removed", short(a)),
            (None, None) => continue,
        };
        out.push(Change {
            area,
            path: k.clone(),
            detail,
            breaking: false,
        });
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

/// The set of JSON types a schema allows (`None` = any type).
fn type_set(schema: &Value) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(t) => Some([t.clone()].into()),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn covers(types: &Option<BTreeSet<String>>, t: &str) -> bool {
    match types {
        None => true,
        Some(set) => set.contains(t) || (t == "integer" && set.contains("number")),
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn names(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Structured comparison of two JSON Schemas, recursing into `properties` and `items`.
pub fn schema_changes(area: Area, old: &Value, new: &Value, at: &str, out: &mut Vec<Change>) {
    if old == new {
        return;
    }
    let push = |out: &mut Vec<Change>, path: String, detail: String, breaking: bool| {
        out.push(Change {
            area,
            path,
            detail,
            breaking,
        });
    };
    let here = if at.is_empty() {
        String::new()
    } else {
        at.to_string()
    };

    // Types.
    let (ot, nt) = (type_set(old), type_set(new));
    if ot != nt {
        let show = |t: &Option<BTreeSet<String>>| match t {
            None => "any".to_string(),
            Some(s) => s.iter().cloned().collect::<Vec<_>>().join(" | "),
        };
        let narrowed = match &ot {
            None => nt.is_some(),
            Some(set) => set.iter().any(|t| !covers(&nt, t)),
        };
        let what = if narrowed {
            "type narrowed"
        } else {
            "type widened"
        };
        push(
            out,
            here.clone(),
            format!("{what}: {} → {}", show(&ot), show(&nt)),
            narrowed,
        );
    }

    // Enums.
    match (
        old.get("enum").and_then(Value::as_array),
        new.get("enum").and_then(Value::as_array),
    ) {
        (Some(o), Some(n)) => {
            let removed: Vec<String> = o
                .iter()
                .filter(|v| !n.contains(v))
                .map(|v| v.to_string())
                .collect();
            let added: Vec<String> = n
                .iter()
                .filter(|v| !o.contains(v))
                .map(|v| v.to_string())
                .collect();
            if !removed.is_empty() {
                push(
                    out,
                    here.clone(),
                    format!("enum value(s) removed: {}", removed.join(", ")),
                    true,
                );
            }
            if !added.is_empty() {
                push(
                    out,
                    here.clone(),
                    format!("enum value(s) added: {}", added.join(", ")),
                    false,
                );
            }
        }
        (None, Some(_)) => push(out, here.clone(), "enum restriction added".into(), true),
        (Some(_), None) => push(out, here.clone(), "enum restriction removed".into(), false),
        (None, None) => {}
    }
    if old.get("const") != new.get("const") {
        push(
            out,
            here.clone(),
            "const changed".into(),
            new.get("const").is_some(),
        );
    }

    // Required fields.
    let (or, nr) = (names(old.get("required")), names(new.get("required")));
    for f in nr.difference(&or) {
        push(out, join(at, f), "field became required".into(), true);
    }
    for f in or.difference(&nr) {
        push(out, join(at, f), "field no longer required".into(), false);
    }

    // Properties.
    let empty = serde_json::Map::new();
    let op = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let np = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, ov) in op {
        let path = join(at, k);
        match np.get(k) {
            None => push(out, path, "property removed".into(), true),
            Some(nv) => schema_changes(area, ov, nv, &path, out),
        }
    }
    for k in np.keys() {
        if !op.contains_key(k) {
            push(out, join(at, k), "property added".into(), false);
        }
    }

    // Additional properties.
    let closed = |s: &Value| s.get("additionalProperties") == Some(&Value::Bool(false));
    if !closed(old) && closed(new) {
        push(
            out,
            here.clone(),
            "additional properties no longer allowed".into(),
            true,
        );
    } else if closed(old) && !closed(new) {
        push(
            out,
            here.clone(),
            "additional properties now allowed".into(),
            false,
        );
    }

    // Array items.
    if let (Some(oi), Some(ni)) = (old.get("items"), new.get("items")) {
        schema_changes(area, oi, ni, &format!("{at}[]"), out);
    } else if old.get("items") != new.get("items") {
        push(
            out,
            format!("{at}[]"),
            "items schema changed".into(),
            old.get("items").is_none(),
        );
    }

    // Numeric and size bounds: tightening is breaking.
    const LOWER: [&str; 5] = [
        "minimum",
        "exclusiveMinimum",
        "minLength",
        "minItems",
        "minProperties",
    ];
    const UPPER: [&str; 5] = [
        "maximum",
        "exclusiveMaximum",
        "maxLength",
        "maxItems",
        "maxProperties",
    ];
    for (keys, tighter_is_bigger) in [(LOWER, true), (UPPER, false)] {
        for key in keys {
            let (o, n) = (
                old.get(key).and_then(Value::as_f64),
                new.get(key).and_then(Value::as_f64),
            );
            if o == n {
                continue;
            }
            let tightened = match (o, n) {
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => {
                    if tighter_is_bigger {
                        b > a
                    } else {
                        b < a
                    }
                }
                (None, None) => false,
            };
            let show = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
            push(
                out,
                here.clone(),
                format!("`{key}` {} → {}", show(o), show(n)),
                tightened,
            );
        }
    }
    if old.get("pattern") != new.get("pattern") {
        push(
            out,
            here.clone(),
            "`pattern` changed".into(),
            new.get("pattern").is_some(),
        );
    }
}
