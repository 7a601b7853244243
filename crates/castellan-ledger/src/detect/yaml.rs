//! YAML: a small tree over yaml-rust2's event parser, with depth and expansion budgets.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Deeper documents are refused (no configuration nests this deep).
const MAX_DEPTH: usize = 64;

/// A YAML (or JSON, or TOML) node. Scalars keep their text; `plain` is false for quoted
/// or tagged scalars, so `"0"` and `0` can be told apart where it matters.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Scalar { text: String, plain: bool },
}

impl Node {
    pub(super) fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, plain } => {
                if *plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                    None
                } else {
                    Some(text)
                }
            }
            _ => None,
        }
    }

    pub(super) fn is_true(&self) -> bool {
        matches!(self.scalar(), Some("true" | "True" | "TRUE"))
    }

    pub(super) fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Node::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub(super) fn is_map(&self) -> bool {
        matches!(self, Node::Map(_))
    }

    /// A mapping's entries with string keys, merge keys (`<<`) followed; a key given
    /// directly shadows a merged one. Empty for a non-mapping.
    pub(super) fn entries(&self) -> Vec<(&str, &Node)> {
        let mut out = Vec::new();
        self.collect_entries(&mut out, 0);
        out
    }

    fn collect_entries<'a>(&'a self, out: &mut Vec<(&'a str, &'a Node)>, depth: usize) {
        let Node::Map(entries) = self else { return };
        let mut merges = Vec::new();
        for (key, value) in entries {
            match key.scalar() {
                Some("<<") if key_is_plain(key) => merges.push(value),
                Some(k) if !out.iter().any(|(seen, _)| *seen == k) => out.push((k, value)),
                _ => {}
            }
        }
        if depth >= 8 {
            return;
        }
        for merged in merges {
            match merged {
                Node::Map(_) => merged.collect_entries(out, depth + 1),
                Node::Seq(items) => {
                    for item in items {
                        item.collect_entries(out, depth + 1);
                    }
                }
                Node::Scalar { .. } => {}
            }
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The keys of a mapping (merges followed).
    pub(super) fn keys(&self) -> Vec<&str> {
        self.entries().into_iter().map(|(k, _)| k).collect()
    }

    /// A scalar or a sequence of scalars, as strings.
    pub(super) fn strings(&self) -> Vec<&str> {
        match self {
            Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
            other => other.scalar().into_iter().collect(),
        }
    }
}

fn key_is_plain(key: &Node) -> bool {
    matches!(key, Node::Scalar { plain: true, .. })
}

enum Frame {
    Seq {
        items: Vec<Node>,
        anchor: usize,
        weight: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        anchor: usize,
        weight: usize,
    },
}

/// Every document of `text`, or `None` when it is not well-formed YAML, repeats a key,
/// nests deeper than [`MAX_DEPTH`] or expands its aliases beyond a budget proportional
/// to its size.
pub(super) fn load(text: &str) -> Option<Vec<Node>> {
    let mut parser = Parser::new_from_str(text);
    // Aliases are expanded by copying; this bounds the copies (alias bombs).
    let mut budget = text.len().saturating_mul(4).saturating_add(64 * 1024);
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut docs = Vec::new();
    loop {
        let (event, _) = parser.next_token().ok()?;
        let (node, anchor, weight) = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
            Event::DocumentEnd => {
                if !stack.is_empty() {
                    return None;
                }
                docs.push(root.take().unwrap_or(Node::Scalar {
                    text: String::new(),
                    plain: true,
                }));
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    weight: 1,
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    anchor,
                    weight: 1,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop()? {
                Frame::Seq {
                    items,
                    anchor,
                    weight,
                } => (Node::Seq(items), anchor, weight),
                Frame::Map { .. } => return None,
            },
            Event::MappingEnd => match stack.pop()? {
                Frame::Map {
                    entries,
                    key: None,
                    anchor,
                    weight,
                } => {
                    let mut seen = HashSet::new();
                    for (k, _) in &entries {
                        if let Node::Scalar { text, .. } = k
                            && !seen.insert(text.as_str())
                        {
                            return None;
                        }
                    }
                    (Node::Map(entries), anchor, weight)
                }
                _ => return None,
            },
            Event::Scalar(text, style, anchor, tag) => {
                let weight = 1 + text.len();
                let plain = style == TScalarStyle::Plain && tag.is_none();
                (Node::Scalar { text, plain }, anchor, weight)
            }
            Event::Alias(id) => {
                let (node, weight) = anchors.get(&id)?;
                budget = budget.checked_sub(*weight)?;
                (node.clone(), 0, *weight)
            }
        };
        if anchor > 0 {
            budget = budget.checked_sub(weight)?;
            anchors.insert(anchor, (node.clone(), weight));
        }
        match stack.last_mut() {
            None => {
                if root.is_some() {
                    return None;
                }
                root = Some(node);
            }
            Some(Frame::Seq {
                items, weight: w, ..
            }) => {
                *w = w.saturating_add(weight);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                key,
                weight: w,
                ..
            }) => {
                *w = w.saturating_add(weight);
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                }
            }
        }
    }
    Some(docs)
}

/// A TOML value as a [`Node`]; `None` past [`MAX_DEPTH`].
pub(super) fn from_toml(value: &toml::Value, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        toml::Value::String(s) => Node::Scalar {
            text: s.clone(),
            plain: false,
        },
        toml::Value::Integer(i) => Node::Scalar {
            text: i.to_string(),
            plain: true,
        },
        toml::Value::Float(f) => Node::Scalar {
            text: f.to_string(),
            plain: true,
        },
        toml::Value::Boolean(b) => Node::Scalar {
            text: b.to_string(),
            plain: true,
        },
        toml::Value::Datetime(d) => Node::Scalar {
            text: d.to_string(),
            plain: false,
        },
        toml::Value::Array(items) => Node::Seq(
            items
                .iter()
                .map(|v| from_toml(v, depth + 1))
                .collect::<Option<_>>()?,
        ),
        toml::Value::Table(table) => Node::Map(
            table
                .iter()
                .map(|(k, v)| {
                    let key = Node::Scalar {
                        text: k.clone(),
                        plain: false,
                    };
                    from_toml(v, depth + 1).map(|v| (key, v))
                })
                .collect::<Option<_>>()?,
        ),
    })
}
