//! Find the line of a key path (`messages[1].content`) in block-style YAML text, so errors
//! found after parsing (a template error, an undeclared variable, a bad schema) still point at
//! a line. Best effort: flow-style YAML (`{a: 1}`) stops the descent at the enclosing key.

use std::fmt;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `messages[1].content`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn key(mut self, k: impl Into<String>) -> KeyPath {
        self.0.push(Seg::Key(k.into()));
        self
    }
    pub fn index(mut self, i: usize) -> KeyPath {
        self.0.push(Seg::Index(i));
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#') && t != "---"
}

fn key_matches(rest: &str, key: &str) -> bool {
    for quoted in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
        if let Some(after) = rest.strip_prefix(quoted.as_str())
            && after.trim_start().starts_with(':')
        {
            return true;
        }
    }
    false
}

/// The 1-based (line, column) of the deepest segment of `path` found in `text`.
pub fn locate(text: &str, path: &KeyPath) -> Option<(usize, usize)> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut parent_indent: Option<usize> = None;
    let mut found: Option<(usize, usize)> = None;
    for seg in &path.0 {
        // The indentation of this level is that of its first content line.
        let Some(first) = (lo..hi).find(|&i| is_content(&lines[i])) else {
            return found;
        };
        let ci = indent_of(&lines[first]);
        if parent_indent.is_some_and(|p| ci <= p) {
            return found;
        }
        let at_level = |l: &str| is_content(l) && indent_of(l) == ci;
        let hit = match seg {
            Seg::Key(k) => {
                (lo..hi).find(|&i| at_level(&lines[i]) && key_matches(&lines[i][ci..], k))
            }
            Seg::Index(n) => (lo..hi)
                .filter(|&i| at_level(&lines[i]) && lines[i][ci..].starts_with('-'))
                .nth(*n),
        };
        let Some(j) = hit else { return found };
        found = Some((j + 1, ci + 1));
        let end = (j + 1..hi)
            .find(|&i| is_content(&lines[i]) && indent_of(&lines[i]) <= ci)
            .unwrap_or(hi);
        match seg {
            Seg::Key(_) => {
                lo = j + 1;
                parent_indent = Some(ci);
            }
            Seg::Index(_) => {
                // Inside an item, "- key: v" opens the item's first key: treat the dash as space.
                lines[j].replace_range(ci..ci + 1, " ");
                lo = j;
                parent_indent = Some(ci);
            }
        }
        hi = end;
    }
    found
}

/// Whether the value of the key on 1-based `line` is a block scalar (`|` or `>`), whose content
/// starts on the next line.
pub fn is_block_scalar(text: &str, line: usize) -> bool {
    text.lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| {
            let v = v.trim_start();
            v.starts_with('|') || v.starts_with('>')
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
model:
  provider: openai
  name: m
messages:
  - role: system
    content: |
      hello
  - role: user
    content: \"{{ q }}\"
tools:
  - name: a
    parameters: { type: object }
";

    fn p(s: &[Seg]) -> KeyPath {
        KeyPath(s.to_vec())
    }

    #[test]
    fn finds_nested_keys_and_items() {
        use Seg::*;
        assert_eq!(
            locate(DOC, &p(&[Key("model".into()), Key("name".into())])),
            Some((3, 3))
        );
        assert_eq!(
            locate(
                DOC,
                &p(&[Key("messages".into()), Index(1), Key("content".into())])
            ),
            Some((9, 5))
        );
        assert_eq!(
            locate(DOC, &p(&[Key("messages".into()), Index(1)])),
            Some((8, 3))
        );
        assert_eq!(
            locate(
                DOC,
                &p(&[Key("tools".into()), Index(0), Key("name".into())])
            ),
            Some((11, 5))
        );
        // Flow style stops at the enclosing key.
        assert_eq!(
            locate(
                DOC,
                &p(&[
                    Key("tools".into()),
                    Index(0),
                    Key("parameters".into()),
                    Key("type".into())
                ])
            ),
            Some((12, 5))
        );
        assert!(is_block_scalar(DOC, 6));
        assert_eq!(
            KeyPath(vec![
                Key("messages".into()),
                Index(1),
                Key("content".into())
            ])
            .to_string(),
            "messages[1].content"
        );
    }
}
