//! The acceptance report's inputs, read the way the seed ledger reads them.
//!
//! `castellan ledger acceptance` must accept every inventory and owner request report the
//! seed's generator accepts, including ones written by other tools. So these readers
//! require only what the seed reads, and nothing of castellan's own vocabulary:
//!
//! - the **inventory report** must be a JSON object; its `schema_version` and `status` are
//!   copied into the report as they are (`null` when absent). Nothing else is read.
//! - the **owner request report** must be a JSON object; `schema_version` and `status` are
//!   copied as they are, and `request_drafts` (absent: none) must be an array of objects.
//!   Each draft must carry
//!   - `request_id`, `surface_id`, `repo_sha256`: strings (castellan keys the ledger by
//!     them);
//!   - `write_capable_surface`, `requires_live_evidence`: booleans (they are counted);
//!   - `required_owner_fields`: an array (its items are copied);
//!   - the pass-through fields [`PASS_THROUGH_FIELDS`] (`label`, `expected_host_scope`,
//!     `config_kind`, `service_scope`, `control_tier`, `repo_source_path`,
//!     `source_line_count`): any JSON value, copied unchanged, so a `config_kind` or
//!     `control_tier` castellan does not know is carried through.
//!
//! Any other field is ignored. A missing field or a wrong type is an [`InputError`]
//! naming the document, the field's path and the JSON types involved — never a value,
//! which could be a secret.
//!
//! Both readers stream: the inventory's surfaces are skipped without being kept, and the
//! drafts are handed over one at a time ([`read_requests`]), so memory does not grow with
//! the number of surfaces.

use std::cell::RefCell;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::model::{InventoryReport, RequestDraft, RequestReport};

mod fast;
mod scan;

/// Draft fields the report copies without interpreting them, in the order
/// [`AcceptanceDraft::pass_through`] holds them.
pub const PASS_THROUGH_FIELDS: [&str; 7] = [
    "label",
    "expected_host_scope",
    "config_kind",
    "service_scope",
    "control_tier",
    "repo_source_path",
    "source_line_count",
];

/// The top-level fields the report copies from one input report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportHead {
    /// `schema_version`, or `null` when absent.
    pub schema_version: Value,
    /// `status`, or `null` when absent.
    pub status: Value,
}

impl From<&InventoryReport> for ReportHead {
    fn from(r: &InventoryReport) -> Self {
        Self {
            schema_version: Value::String(r.schema_version.clone()),
            status: Value::String(r.status.clone()),
        }
    }
}

impl From<&RequestReport> for ReportHead {
    fn from(r: &RequestReport) -> Self {
        Self {
            schema_version: Value::String(r.schema_version.clone()),
            status: Value::String(r.status.clone()),
        }
    }
}

/// One owner request draft as the acceptance report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptanceDraft {
    /// `request_id`.
    pub request_id: String,
    /// `surface_id`.
    pub surface_id: String,
    /// `repo_sha256`: the surface version reviewer records are bound to.
    pub repo_sha256: String,
    /// `write_capable_surface`.
    pub write_capable_surface: bool,
    /// `requires_live_evidence`.
    pub requires_live_evidence: bool,
    /// `required_owner_fields`, copied (shared between drafts that list the same ones).
    pub required_owner_fields: Arc<[Value]>,
    /// The values of [`PASS_THROUGH_FIELDS`], in that order, copied.
    pub pass_through: [Value; 7],
}

impl From<&RequestDraft> for AcceptanceDraft {
    fn from(d: &RequestDraft) -> Self {
        let s = |x: &str| Value::String(x.to_owned());
        Self {
            request_id: d.request_id.clone(),
            surface_id: d.surface_id.clone(),
            repo_sha256: d.repo_sha256.clone(),
            write_capable_surface: d.write_capable_surface,
            requires_live_evidence: d.requires_live_evidence,
            required_owner_fields: d.required_owner_fields.iter().map(|f| s(f)).collect(),
            pass_through: [
                s(&d.label),
                s(&d.expected_host_scope),
                s(d.config_kind.as_str()),
                s(&d.service_scope),
                s(d.control_tier.as_str()),
                s(&d.repo_source_path),
                Value::from(d.source_line_count),
            ],
        }
    }
}

/// Why an input report was refused. Names the document and a field path, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Not JSON (syntax), or the input ended early.
    #[error("{doc} is not valid JSON: {detail}")]
    Syntax {
        /// `inventory report` or `owner request report`.
        doc: &'static str,
        /// What and where (line and column), without the text.
        detail: String,
    },
    /// A field (or the document) has the wrong JSON type.
    #[error("{doc}: {path} must be {expected}, found {found} (line {line}, column {column})")]
    WrongType {
        /// The document.
        doc: &'static str,
        /// The field's path (`request_drafts[3].write_capable_surface`), or `the document`.
        path: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// A required draft field is absent.
    #[error("{doc}: {path} is missing (the draft ends at line {line}, column {column})")]
    Missing {
        /// The document.
        doc: &'static str,
        /// The field's path.
        path: String,
        /// Where the draft ends.
        line: usize,
        /// Where the draft ends.
        column: usize,
    },
    /// The document could not be read.
    #[error("cannot read the {doc}: {reason}")]
    Read {
        /// The document.
        doc: &'static str,
        /// The I/O error.
        reason: String,
    },
    /// The consumer of the drafts failed (writing the report).
    #[error("{0}")]
    Consumer(#[source] std::io::Error),
}

/// What went wrong inside a visitor, kept aside: serde's own messages can quote values.
enum Problem {
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    Missing(String),
    Consumer(std::io::Error),
}

/// The name of `found`'s JSON type, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shared state of one read: where problems are put aside.
struct Ctx<'f> {
    problem: RefCell<Option<Problem>>,
    on_draft: RefCell<&'f mut dyn FnMut(AcceptanceDraft) -> std::io::Result<()>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, p: Problem) -> E {
        *self.problem.borrow_mut() = Some(p);
        E::custom("refused")
    }

    fn wrong<E: de::Error>(&self, path: String, expected: &'static str, found: &'static str) -> E {
        self.fail(Problem::WrongType {
            path,
            expected,
            found,
        })
    }
}

/// Visitor methods for every JSON type but the expected one: each refuses, naming the
/// type found (serde's default messages would quote the value).
macro_rules! refuse_other_types {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.refuse("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.refuse("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.refuse("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.refuse("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.refuse("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.refuse("null"))
        }
    };
}

/// A JSON object at the top of a report: its `schema_version` and `status`, and for the
/// request report its drafts, handed on one at a time.
struct Top<'c, 'f> {
    ctx: &'c Ctx<'f>,
    with_drafts: bool,
    /// Where the first `request_drafts` array picks up (see [`Resume`]).
    drafts: DraftsStart,
}

/// Where a `request_drafts` array read by the visitors picks up: the index of its next
/// draft, and whether a placeholder element comes first (a replay of the rest of an array
/// whose first drafts were read by the fast path).
#[derive(Debug, Clone, Copy, Default)]
struct DraftsStart {
    index: usize,
    skip_placeholder: bool,
}

/// `schema_version` and `status` as read: `None` when absent.
#[derive(Debug, Default)]
struct Head {
    schema_version: Option<Value>,
    status: Option<Value>,
}

impl Top<'_, '_> {
    fn refuse<E: de::Error>(&self, found: &'static str) -> E {
        self.ctx
            .wrong("the document".into(), "a JSON object", found)
    }
}

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = Head;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Head, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    refuse_other_types!();

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Head, A::Error> {
        Err(self.refuse("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        let mut drafts_seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "schema_version" => head.schema_version = Some(map.next_value()?),
                "status" => head.status = Some(map.next_value()?),
                "request_drafts" if self.with_drafts => {
                    if drafts_seen {
                        return Err(self.ctx.wrong(
                            "request_drafts".into(),
                            "given once",
                            "a second request_drafts",
                        ));
                    }
                    drafts_seen = true;
                    map.next_value_seed(Drafts {
                        ctx: self.ctx,
                        start: self.drafts,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// `request_drafts`: an array of draft objects.
struct Drafts<'c, 'f> {
    ctx: &'c Ctx<'f>,
    start: DraftsStart,
}

impl Drafts<'_, '_> {
    fn refuse<E: de::Error>(&self, found: &'static str) -> E {
        self.ctx.wrong("request_drafts".into(), "an array", found)
    }
}

impl<'de> DeserializeSeed<'de> for Drafts<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Drafts<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of request drafts")
    }

    refuse_other_types!();

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.refuse("an object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.start.skip_placeholder {
            seq.next_element::<IgnoredAny>()?;
        }
        let mut index = self.start.index;
        while let Some(draft) = seq.next_element_seed(Draft {
            ctx: self.ctx,
            index,
        })? {
            let mut on_draft = self.ctx.on_draft.borrow_mut();
            if let Err(e) = (*on_draft)(draft) {
                return Err(self.ctx.fail(Problem::Consumer(e)));
            }
            index += 1;
        }
        Ok(())
    }
}

/// One draft object.
struct Draft<'c, 'f> {
    ctx: &'c Ctx<'f>,
    index: usize,
}

impl Draft<'_, '_> {
    fn refuse<E: de::Error>(&self, found: &'static str) -> E {
        self.ctx.wrong(
            format!("request_drafts[{}]", self.index),
            "an object",
            found,
        )
    }
}

impl<'de> DeserializeSeed<'de> for Draft<'_, '_> {
    type Value = AcceptanceDraft;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AcceptanceDraft, D::Error> {
        d.deserialize_any(self)
    }
}

/// The draft fields read, besides the pass-through ones.
const TYPED_FIELDS: [&str; 6] = [
    "request_id",
    "surface_id",
    "repo_sha256",
    "write_capable_surface",
    "requires_live_evidence",
    "required_owner_fields",
];

impl<'de> Visitor<'de> for Draft<'_, '_> {
    type Value = AcceptanceDraft;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request draft object")
    }

    refuse_other_types!();

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<AcceptanceDraft, A::Error> {
        Err(self.refuse("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AcceptanceDraft, A::Error> {
        // As in the seed (a Python dict), a repeated key keeps its last value.
        let mut typed: [Option<Value>; 6] = Default::default();
        let mut pass: [Option<Value>; 7] = Default::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if let Some(i) = TYPED_FIELDS.iter().position(|f| *f == key) {
                typed[i] = Some(map.next_value()?);
            } else if let Some(i) = PASS_THROUGH_FIELDS.iter().position(|f| *f == key) {
                pass[i] = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let path = |field: &str| format!("request_drafts[{}].{field}", self.index);
        let mut take = |i: usize| {
            typed[i]
                .take()
                .ok_or_else(|| self.ctx.fail(Problem::Missing(path(TYPED_FIELDS[i]))))
        };
        let string = |i: usize, v: Value| match v {
            Value::String(s) => Ok(s),
            other => Err(self
                .ctx
                .wrong(path(TYPED_FIELDS[i]), "a string", type_name(&other))),
        };
        let boolean = |i: usize, v: Value| match v {
            Value::Bool(b) => Ok(b),
            other => Err(self
                .ctx
                .wrong(path(TYPED_FIELDS[i]), "true or false", type_name(&other))),
        };
        let request_id = string(0, take(0)?)?;
        let surface_id = string(1, take(1)?)?;
        let repo_sha256 = string(2, take(2)?)?;
        let write_capable_surface = boolean(3, take(3)?)?;
        let requires_live_evidence = boolean(4, take(4)?)?;
        let required_owner_fields = match take(5)? {
            Value::Array(a) => Arc::from(a),
            other => {
                return Err(self
                    .ctx
                    .wrong(path(TYPED_FIELDS[5]), "an array", type_name(&other)));
            }
        };
        let mut pass_through: [Value; 7] = Default::default();
        for (i, slot) in pass.iter_mut().enumerate() {
            pass_through[i] = slot.take().ok_or_else(|| {
                self.ctx
                    .fail(Problem::Missing(path(PASS_THROUGH_FIELDS[i])))
            })?;
        }
        Ok(AcceptanceDraft {
            request_id,
            surface_id,
            repo_sha256,
            write_capable_surface,
            requires_live_evidence,
            required_owner_fields,
            pass_through,
        })
    }
}

fn read_top<R: Read>(
    doc: &'static str,
    reader: R,
    with_drafts: bool,
    chunk: usize,
    on_draft: &mut dyn FnMut(AcceptanceDraft) -> std::io::Result<()>,
) -> Result<ReportHead, InputError> {
    let mut window = fast::Window::new(reader, chunk);
    let mut head = Head::default();
    let rest = match window.run(with_drafts, on_draft, &mut head) {
        Ok(()) => Head::default(),
        Err(fast::Stop::Consumer(e)) => return Err(InputError::Consumer(e)),
        Err(fast::Stop::Bail) => {
            let (replay, start) = window.into_replay();
            let replay = std::io::BufReader::with_capacity(1 << 16, replay);
            read_visiting(doc, replay, with_drafts, start, on_draft)?
        }
    };
    // The visitors read what follows the fast path's: a field repeated there wins.
    Ok(ReportHead {
        schema_version: rest
            .schema_version
            .or(head.schema_version)
            .unwrap_or(Value::Null),
        status: rest.status.or(head.status).unwrap_or(Value::Null),
    })
}

/// Reads a report (or, after the fast path stopped, the rest of one) with the visitors.
fn read_visiting<R: Read>(
    doc: &'static str,
    reader: R,
    with_drafts: bool,
    drafts: DraftsStart,
    on_draft: &mut dyn FnMut(AcceptanceDraft) -> std::io::Result<()>,
) -> Result<Head, InputError> {
    let ctx = Ctx {
        problem: RefCell::new(None),
        on_draft: RefCell::new(on_draft),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = Top {
        ctx: &ctx,
        with_drafts,
        drafts,
    }
    .deserialize(&mut de)
    .and_then(|head| de.end().map(|()| head));
    let e = match result {
        Ok(head) => return Ok(head),
        Err(e) => e,
    };
    let (line, column) = (e.line(), e.column());
    Err(match ctx.problem.into_inner() {
        Some(Problem::WrongType {
            path,
            expected,
            found,
        }) => InputError::WrongType {
            doc,
            path,
            expected,
            found,
            line,
            column,
        },
        Some(Problem::Missing(path)) => InputError::Missing {
            doc,
            path,
            line,
            column,
        },
        Some(Problem::Consumer(e)) => InputError::Consumer(e),
        None if e.is_io() => InputError::Read {
            doc,
            reason: e.to_string(),
        },
        None => InputError::Syntax {
            doc,
            detail: syntax_detail(&e),
        },
    })
}

/// serde_json's syntax and end-of-input messages, which name positions, never values.
fn syntax_detail(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        _ => e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("syntax error")
            .to_owned(),
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// Reads an inventory report's `schema_version` and `status`, skipping everything else.
pub fn read_inventory<R: Read>(reader: R) -> Result<ReportHead, InputError> {
    read_top("inventory report", reader, false, fast::CHUNK, &mut |_| {
        Ok(())
    })
}

/// Reads an owner request report, handing each draft to `on_draft` as it is read (in
/// document order), and returns its `schema_version` and `status`. An error from
/// `on_draft` stops the read and is returned as [`InputError::Consumer`].
pub fn read_requests<R: Read>(
    reader: R,
    on_draft: &mut dyn FnMut(AcceptanceDraft) -> std::io::Result<()>,
) -> Result<ReportHead, InputError> {
    read_top("owner request report", reader, true, fast::CHUNK, on_draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a read gives: the head and the drafts, or the error's text.
    fn outcome(result: Result<ReportHead, InputError>, drafts: Vec<AcceptanceDraft>) -> String {
        match result {
            Ok(head) => format!("{head:?} {drafts:?}"),
            Err(e) => format!("error: {e} (drafts before it: {})", drafts.len()),
        }
    }

    fn fast(doc: &[u8], with_drafts: bool, chunk: usize) -> String {
        let mut drafts = Vec::new();
        let r = read_top("doc", doc, with_drafts, chunk, &mut |d| {
            drafts.push(d);
            Ok(())
        });
        outcome(r, drafts)
    }

    fn visiting(doc: &[u8], with_drafts: bool) -> String {
        let mut drafts = Vec::new();
        let r = read_visiting("doc", doc, with_drafts, DraftsStart::default(), &mut |d| {
            drafts.push(d);
            Ok(())
        })
        .map(|h| ReportHead {
            schema_version: h.schema_version.unwrap_or(Value::Null),
            status: h.status.unwrap_or(Value::Null),
        });
        outcome(r, drafts)
    }

    const DRAFT: &str = r#"{"request_id": "r\u0031", "surface_id": "s:1", "repo_sha256": "ab",
      "write_capable_surface": true, "requires_live_evidence": false,
      "required_owner_fields": ["a", ["b", {"c": 1}]], "owner_questions": [{"q": "x\"y", "n": [1, 2.5e3, null]}],
      "label": "L", "expected_host_scope": "h", "config_kind": "k", "service_scope": 7,
      "control_tier": null, "repo_source_path": "p", "source_line_count": 12}"#;

    fn doc() -> String {
        format!(
            "{{\"a\": [1, {{\"b\": 2}}, \"x\"], \"request_drafts\": [{DRAFT},\n  {DRAFT}],\n\"schema_version\": \"v1\", \"status\": 5, \"z\": {{\"y\": []}}}}\n"
        )
    }

    /// Every edit of a document reads the same through the fast path (at several chunk
    /// sizes) as through the visitors alone: the same drafts and head, or the same error.
    fn check_edits(doc: &[u8], with_drafts: bool) {
        let mut variants: Vec<Vec<u8>> = vec![doc.to_vec()];
        for i in 0..doc.len() {
            variants.push(doc[..i].to_vec());
            let mut deleted = doc.to_vec();
            deleted.remove(i);
            variants.push(deleted);
            for b in [b'}', b']', b',', b'"', b'1', b'{'] {
                let mut changed = doc.to_vec();
                changed[i] = b;
                variants.push(changed);
            }
        }
        for v in &variants {
            let want = visiting(v, with_drafts);
            for chunk in [1, 64, 4096] {
                assert_eq!(
                    fast(v, with_drafts, chunk),
                    want,
                    "chunk {chunk}, document {}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }

    #[test]
    fn the_fast_path_reads_every_edit_of_a_request_report_as_the_visitors_do() {
        check_edits(doc().as_bytes(), true);
    }

    #[test]
    fn the_fast_path_reads_every_edit_of_an_inventory_as_the_visitors_do() {
        check_edits(doc().as_bytes(), false);
    }

    #[test]
    fn the_fast_path_agrees_on_odd_documents() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let docs = [
            String::new(),
            "   ".into(),
            "{}".into(),
            "{} x".into(),
            "[]".into(),
            "{\"request_drafts\": []}".into(),
            "{\"request_drafts\": [], \"request_drafts\": []}".into(),
            format!("{{\"request_drafts\": [{DRAFT}], \"request_drafts\": [{DRAFT}]}}"),
            format!("{{\"request_drafts\": [{DRAFT},]}}"),
            format!("{{\"request_drafts\": [{DRAFT}]}}5"),
            format!("{{\"request_drafts\": [{DRAFT}, {DRAFT}], \"status\": 1, \"status\": 2}}"),
            format!(
                "{{\"status\": 1, \"request_drafts\": [{}], \"status\": 2}}",
                DRAFT.replace("\"ab\"", "\"ab\", \"repo_sha256\": \"cd\"")
            ),
            "{\"s\":5}".to_owned(),
            "{\"s\":[5]}".to_owned(),
            "{\"s\":[5,6x]}".to_owned(),
            format!("{{\"status\": {}}}", deep(126)),
            format!("{{\"status\": {}}}", deep(127)),
            format!("{{\"status\": {}}}", deep(128)),
            format!("{{\"ignored\": {}}}", deep(300)),
        ];
        for n in [123, 124, 125, 126] {
            let draft = DRAFT.replace("\"label\": \"L\"", &format!("\"label\": {}", deep(n)));
            let doc = format!("{{\"request_drafts\": [{DRAFT}, {draft}]}}");
            for chunk in [64, 4096] {
                assert_eq!(
                    fast(doc.as_bytes(), true, chunk),
                    visiting(doc.as_bytes(), true),
                    "depth {n}"
                );
            }
        }
        for d in &docs {
            for with_drafts in [true, false] {
                let want = visiting(d.as_bytes(), with_drafts);
                for chunk in [1, 3, 64, 4096] {
                    assert_eq!(fast(d.as_bytes(), with_drafts, chunk), want, "{d}");
                }
            }
        }
    }
}
