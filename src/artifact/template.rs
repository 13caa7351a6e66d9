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
