//! Text from untrusted places — reasons and actors in the audit log, model outputs, dataset ids
//! — made safe to print on a terminal: control characters (escape sequences that clear the
//! screen, retitle the window or fake a line) and bidirectional overrides are shown escaped, as
//! `\u{1b}`, never interpreted. The raw text stays in every `--json` output.

use std::borrow::Cow;

/// Whether a character must not reach a terminal as itself.
fn unsafe_char(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_newlines,
        // Bidirectional embeddings, overrides and isolates reorder what a reader sees.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c, keep_newlines) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line of untrusted text: every control character escaped, newlines and tabs included.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Untrusted text of several lines (a model's output): control characters escaped, newlines
/// and tabs kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// The first `n` characters of `s` (a digest shortened for display): never splits a character,
/// whatever a hand-edited file holds.
pub fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_run() {
        assert_eq!(line("fine"), "fine");
        assert!(matches!(line("fine"), Cow::Borrowed(_)));
        assert_eq!(line("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(line("x\u{1b}]0;pwned\u{7}"), "x\\u{1b}]0;pwned\\u{7}");
        assert_eq!(line("two\nlines"), "two\\u{a}lines");
        assert_eq!(text("two\nlines\tok\r"), "two\nlines\tok\\u{d}");
        assert_eq!(line("abc\u{202E}fed"), "abc\\u{202e}fed");
        assert_eq!(line("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(text("héllo → ✓"), "héllo → ✓");
    }

    #[test]
    fn a_prefix_never_splits_a_character() {
        assert_eq!(prefix("abcdef", 3), "abc");
        assert_eq!(prefix("ab", 3), "ab");
        assert_eq!(prefix("aaaaaaaaaaaé€x", 12), "aaaaaaaaaaaé");
    }
}
