//! The rule files: parsing the YAML into [`RuleSpec`]s and compiling them.
//!
//! The format is Nosey Parker's rule-file format (a top-level `rules:` list whose entries
//! have `name`, `id`, `pattern`, `examples`, `negative_examples`; other upstream keys such
//! as `references`, `categories` and `description` are accepted and ignored), extended
//! with four optional keys of castellan's own, documented in `rules/castellan.yml`:
//! `kind`, `keywords`, `filter` and `decoded_only`.

use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

use super::filters::Filter;
use super::{FindingKind, RuleInfo};

/// The built-in rule files, embedded at build time: (file name, contents).
pub(super) const BUILTIN_SOURCES: &[(&str, &str)] = &[
    ("castellan.yml", include_str!("../../rules/castellan.yml")),
    (
        "providers/cloud.yml",
        include_str!("../../rules/providers/cloud.yml"),
    ),
    (
        "providers/scm.yml",
        include_str!("../../rules/providers/scm.yml"),
    ),
    (
        "providers/messaging.yml",
        include_str!("../../rules/providers/messaging.yml"),
    ),
];

/// Why a rule (or a whole rule file) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuleError {
    #[error("rule file {file} is not valid yaml: {message}")]
    Yaml { file: String, message: String },
    #[error("rule file {file} has no top-level `rules` list")]
    NoRules { file: String },
    #[error("rule #{index} in {file} has no string field `{field}`")]
    MissingField {
        file: String,
        index: usize,
        field: &'static str,
    },
    #[error("rule {id} in {file}: field `{field}` is not a list of strings")]
    BadList {
        file: String,
        id: String,
        field: &'static str,
    },
    #[error("rule {id} in {file}: unknown kind `{kind}`")]
    UnknownKind {
        file: String,
        id: String,
        kind: String,
    },
    #[error("rule {id} in {file}: unknown filter `{filter}`")]
    UnknownFilter {
        file: String,
        id: String,
        filter: String,
    },
    #[error("rule {id} in {file}: pattern does not compile: {message}")]
    Regex {
        file: String,
        id: String,
        message: String,
    },
    #[error("rule {id} in {file}: duplicate rule id")]
    DuplicateId { file: String, id: String },
}

/// One rule, compiled.
#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) info: RuleInfo,
    pub(super) kind: FindingKind,
    pub(super) regex: Regex,
    /// Capture-group indices named `secret*`, in pattern order; empty means "the first
    /// participating group, else the whole match".
    pub(super) secret_groups: Vec<usize>,
    pub(super) filter: Filter,
    pub(super) keywords: Vec<String>,
    pub(super) decoded_only: bool,
}

impl CompiledRule {
    /// The byte range of the secret in one match of this rule.
    pub(super) fn secret_range(
        &self,
        caps: &regex::Captures<'_>,
    ) -> Option<std::ops::Range<usize>> {
        if !self.secret_groups.is_empty() {
            return self
                .secret_groups
                .iter()
                .find_map(|&i| caps.get(i))
                .map(|m| m.range());
        }
        (1..caps.len())
            .find_map(|i| caps.get(i))
            .or_else(|| caps.get(0))
            .map(|m| m.range())
    }
}

/// Parses and compiles every rule in `sources`. Rules that fail are left out and their
/// errors returned; a file that fails to parse loses all its rules.
pub(super) fn compile_all(sources: &[(&str, &str)]) -> (Vec<CompiledRule>, Vec<RuleError>) {
    let mut rules: Vec<CompiledRule> = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in sources {
        let docs = match YamlLoader::load_from_str(text) {
            Ok(docs) => docs,
            Err(e) => {
                errors.push(RuleError::Yaml {
                    file: (*file).to_owned(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let Some(list) = docs.first().and_then(|d| d["rules"].as_vec()) else {
            errors.push(RuleError::NoRules {
                file: (*file).to_owned(),
            });
            continue;
        };
        for (index, entry) in list.iter().enumerate() {
            match compile_one(file, index, entry) {
                Ok(rule) => {
                    if rules.iter().any(|r| r.info.id == rule.info.id) {
                        errors.push(RuleError::DuplicateId {
                            file: (*file).to_owned(),
                            id: rule.info.id,
                        });
                    } else {
                        rules.push(rule);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (rules, errors)
}

fn compile_one(file: &str, index: usize, entry: &Yaml) -> Result<CompiledRule, RuleError> {
    let field = |name: &'static str| {
        entry[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RuleError::MissingField {
                file: file.to_owned(),
                index,
                field: name,
            })
    };
    let id = field("id")?;
    let name = field("name")?;
    let pattern = field("pattern")?;
    let list = |name: &'static str| -> Result<Vec<String>, RuleError> {
        match &entry[name] {
            Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
            Yaml::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| RuleError::BadList {
                    file: file.to_owned(),
                    id: id.clone(),
                    field: name,
                }),
            _ => Err(RuleError::BadList {
                file: file.to_owned(),
                id: id.clone(),
                field: name,
            }),
        }
    };
    let examples = list("examples")?;
    let negative_examples = list("negative_examples")?;
    let keywords = list("keywords")?;
    let kind = match entry["kind"].as_str() {
        None => FindingKind::Token,
        Some(k) => FindingKind::from_snake_case(k).ok_or_else(|| RuleError::UnknownKind {
            file: file.to_owned(),
            id: id.clone(),
            kind: k.to_owned(),
        })?,
    };
    let filter = match entry["filter"].as_str() {
        None => Filter::None,
        Some(f) => Filter::from_name(f).ok_or_else(|| RuleError::UnknownFilter {
            file: file.to_owned(),
            id: id.clone(),
            filter: f.to_owned(),
        })?,
    };
    let decoded_only = entry["decoded_only"].as_bool().unwrap_or(false);
    let regex = Regex::new(&strip_inline_comments(&pattern)).map_err(|e| RuleError::Regex {
        file: file.to_owned(),
        id: id.clone(),
        message: e.to_string(),
    })?;
    let secret_groups = regex
        .capture_names()
        .enumerate()
        .filter(|(_, n)| n.is_some_and(|n| n.starts_with("secret")))
        .map(|(i, _)| i)
        .collect();
    Ok(CompiledRule {
        info: RuleInfo {
            id,
            name,
            examples,
            negative_examples,
        },
        kind,
        regex,
        secret_groups,
        filter,
        keywords: keywords.into_iter().filter(|k| !k.is_empty()).collect(),
        decoded_only,
    })
}

/// Removes `(?# ... )` inline comments, which Nosey Parker's rules use (its Hyperscan
/// engine reads them) and the `regex` crate does not. A `(?#` escaped as `\(` or inside a
/// character class is left alone.
pub(super) fn strip_inline_comments(pattern: &str) -> std::borrow::Cow<'_, str> {
    if !pattern.contains("(?#") {
        return std::borrow::Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.char_indices().peekable();
    let mut in_class = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !in_class && pattern[i..].starts_with("(?#") => {
                // Skip to the closing parenthesis (comments cannot nest).
                for (_, d) in chars.by_ref() {
                    if d == ')' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod comment_tests {
    use super::strip_inline_comments;

    #[test]
    fn inline_comments_are_removed_and_nothing_else() {
        assert_eq!(
            strip_inline_comments(r"(?x) \b ([a-z]{20}) (?# the id ) \b"),
            r"(?x) \b ([a-z]{20})  \b"
        );
        assert_eq!(strip_inline_comments(r"a\(?#b)"), r"a\(?#b)");
        assert_eq!(strip_inline_comments(r"[(?#]x"), r"[(?#]x");
        assert_eq!(strip_inline_comments("plain"), "plain");
    }
}
