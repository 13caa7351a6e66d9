//! The one template environment: Jinja via minijinja with strict undefined, so a missing
//! variable is an error that names it, never an empty string.

use minijinja::{Environment, UndefinedBehavior};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// A new environment with promptgate's settings: strict undefined, no auto-escaping (prompts
/// are not HTML), trailing newlines kept.
pub fn new_environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// The shared environment, for one-off templates.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(new_environment)
}

/// The variables a template reads from its context (not the ones it sets itself, nor the
/// environment's global functions such as `range`). Fails if the template does not compile.
pub fn variables_used(source: &str) -> Result<BTreeSet<String>, minijinja::Error> {
    let env = environment();
    let tmpl = env.template_from_str(source)?;
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    Ok(tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !globals.contains(v.as_str()))
        .collect())
}

/// Filters and tests the environment knows, for "did you mean" (existence itself is asked of
/// the environment).
const KNOWN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "chain",
    "zip",
];
const KNOWN_TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// A filter or test a template uses that the environment does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// `filter` or `test`.
    pub what: &'static str,
    pub name: String,
    /// The closest known name.
    pub suggestion: Option<&'static str>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} `{}`", self.what, self.name)
    }
}

/// Whether the environment has a filter (or test) of this name: asked by rendering a probe,
/// since minijinja resolves them only when a template runs.
fn known(what: &'static str, name: &str) -> bool {
    static SEEN: std::sync::Mutex<BTreeSet<(&'static str, String)>> =
        std::sync::Mutex::new(BTreeSet::new());
    if let Ok(seen) = SEEN.lock()
        && seen.contains(&(what, name.to_string()))
    {
        return true;
    }
    let probe = if what == "filter" {
        format!("{{{{ none | {name} }}}}")
    } else {
        format!("{{{{ none is {name} }}}}")
    };
    let missing = match environment().render_str(&probe, ()) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            minijinja::ErrorKind::UnknownFilter | minijinja::ErrorKind::UnknownTest
        ),
    };
    if !missing && let Ok(mut seen) = SEEN.lock() {
        seen.insert((what, name.to_string()));
    }
    !missing
}

/// The filters and tests a template uses that do not exist, found from its tokens: an
/// identifier after `|` or `{% filter` is a filter, one after `is` (or `is not`) a test. Empty
/// when the template does not tokenize (compiling it reports that).
pub fn unknown_filters_and_tests(source: &str) -> Vec<Unknown> {
    use minijinja::machinery::{Token, tokenize};
    let tokens: Vec<Token<'_>> = tokenize(source, false, Default::default(), Default::default())
        .map_while(|t| t.ok().map(|(tok, _)| tok))
        .collect();
    let mut out: Vec<Unknown> = Vec::new();
    let mut push = |what: &'static str, name: &str| {
        if out.iter().any(|u| u.what == what && u.name == name) || known(what, name) {
            return;
        }
        let list = if what == "filter" {
            KNOWN_FILTERS
        } else {
            KNOWN_TESTS
        };
        out.push(Unknown {
            what,
            name: name.to_string(),
            suggestion: crate::error::did_you_mean(name, list.iter().copied()),
        });
    };
    for (i, tok) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        match (tok, next) {
            (Token::Pipe, Some(Token::Ident(name))) => push("filter", name),
            (Token::BlockStart, Some(Token::Ident("filter"))) => {
                if let Some(Token::Ident(name)) = tokens.get(i + 2) {
                    push("filter", name);
                }
            }
            (Token::Ident("is"), Some(Token::Ident("not"))) => {
                if let Some(Token::Ident(name)) = tokens.get(i + 2) {
                    push("test", name);
                }
            }
            (Token::Ident("is"), Some(Token::Ident(name))) => push("test", name),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_filters_and_tests_are_found_with_a_suggestion() {
        let u = unknown_filters_and_tests(
            "{{ a | uper }} {{ b | upper }} {% if c is defind %}{% endif %} {% if d is not none %}{% endif %} {% filter lowr %}x{% endfilter %}",
        );
        let names: Vec<(&str, &str, Option<&str>)> = u
            .iter()
            .map(|u| (u.what, u.name.as_str(), u.suggestion))
            .collect();
        assert_eq!(
            names,
            vec![
                ("filter", "uper", Some("upper")),
                ("test", "defind", Some("defined")),
                ("filter", "lowr", Some("lower")),
            ]
        );
        assert!(unknown_filters_and_tests("{{ a | default('x') | trim }}").is_empty());
        assert!(unknown_filters_and_tests("{{ unclosed").is_empty());
    }
}
