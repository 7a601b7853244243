//! The readers' fast path: the input is read in large chunks and each value is parsed
//! from a slice (`serde_json`'s slice reader is several times faster than its byte-by-byte
//! reader), one top-level member, one element of a top-level array or one draft at a
//! time, so memory stays bounded by the chunk size and the largest single value.
//!
//! The fast path only ever *accepts*: at the first thing it does not take as is (a syntax
//! or type error, a missing or repeated field, a value nested deeper than the visitors
//! allow, an I/O error, a single value over [`MAX_VALUE`]) it stops at its last
//! checkpoint, and the visitors of the parent module read the rest of the document from
//! there, as they would have read it from the start. They are given a short synthetic
//! prefix that puts them in the same state (inside the top-level object, inside the
//! `request_drafts` array after a draft, ...) at the same line and column, so what they
//! accept, refuse and report — messages, field paths, draft indexes, positions — is what
//! reading the whole document with them gives.

use std::borrow::Cow;
use std::io::{self, Cursor, Read};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use serde_json::error::Category;

use super::{AcceptanceDraft, DraftsStart, Head};

/// Bytes read from the input at a time.
pub(super) const CHUNK: usize = 1 << 20;

/// The largest value (or run of whitespace) the fast path buffers whole; the visitors
/// stream anything larger.
const MAX_VALUE: usize = 16 << 20;

/// How deeply a value may nest where the visitors read it as a `Value`: serde_json
/// refuses a 128th level, and the visitors are one level (the top-level object) deeper
/// than the fast path for the top-level fields, and two (the `request_drafts` array and the
/// draft object) deeper again for draft fields. The fast path parses a draft from its own
/// `{`, one level below a top-level value.
const MAX_TOP_DEPTH: usize = 126;
const MAX_DRAFT_FIELD_DEPTH: usize = 124;

/// Where the visitors pick up when the fast path stops.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// At the start of the document.
    Start,
    /// Just after the top-level `{`.
    TopOpen,
    /// Just after a top-level member's value.
    TopValue { drafts_seen: bool },
    /// Just after the `[` of an ignored top-level array, or after one of its elements.
    Ignored {
        drafts_seen: bool,
        after_element: bool,
    },
    /// Just after the `[` of `request_drafts` (`next` 0), or after draft `next - 1`.
    Drafts { next: usize },
    /// After the top-level object.
    End,
}

/// Why the fast path stopped.
pub(super) enum Stop {
    /// The visitors take over at the last checkpoint.
    Bail,
    /// The consumer of the drafts failed.
    Consumer(io::Error),
}

/// A draft as the fast path reads it. Anything the visitors would refuse fails here
/// too (a wrong type, a missing or repeated field) and hands over to them; unknown
/// fields are skipped without being kept.
#[derive(Debug, Deserialize)]
pub(super) struct FastDraft {
    pub(super) request_id: String,
    pub(super) surface_id: String,
    pub(super) repo_sha256: String,
    pub(super) write_capable_surface: bool,
    pub(super) requires_live_evidence: bool,
    pub(super) required_owner_fields: Vec<Value>,
    pub(super) label: Value,
    pub(super) expected_host_scope: Value,
    pub(super) config_kind: Value,
    pub(super) service_scope: Value,
    pub(super) control_tier: Value,
    pub(super) repo_source_path: Value,
    pub(super) source_line_count: Value,
}

impl FastDraft {
    /// The draft, unless a field nests deeper than the visitors would accept.
    pub(super) fn into_draft(self) -> Option<AcceptanceDraft> {
        shallow(AcceptanceDraft {
            request_id: self.request_id,
            surface_id: self.surface_id,
            repo_sha256: self.repo_sha256,
            write_capable_surface: self.write_capable_surface,
            requires_live_evidence: self.requires_live_evidence,
            required_owner_fields: self.required_owner_fields.into(),
            pass_through: [
                self.label,
                self.expected_host_scope,
                self.config_kind,
                self.service_scope,
                self.control_tier,
                self.repo_source_path,
                self.source_line_count,
            ],
        })
    }
}

/// `draft`, unless a field nests deeper than the visitors would accept.
pub(super) fn shallow(draft: AcceptanceDraft) -> Option<AcceptanceDraft> {
    let required_depth = 1 + draft
        .required_owner_fields
        .iter()
        .map(depth)
        .max()
        .unwrap_or(0);
    if required_depth > MAX_DRAFT_FIELD_DEPTH
        || draft
            .pass_through
            .iter()
            .any(|v| depth(v) > MAX_DRAFT_FIELD_DEPTH)
    {
        return None;
    }
    Some(draft)
}

/// How many arrays and objects nest in `v` (0 for a scalar).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The next value of `s` (after whitespace) and the offset just past it; `None` when `s`
/// holds only whitespace.
pub(super) fn one<'a, T: Deserialize<'a>>(
    s: &'a [u8],
) -> Result<Option<(T, usize)>, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(s).into_iter::<T>();
    match values.next() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some((v, values.byte_offset()))),
        Some(Err(e)) => Err(e),
    }
}

/// [`one`] for a type that borrows nothing.
fn owned<T: DeserializeOwned>(s: &[u8]) -> Result<Option<(T, usize)>, serde_json::Error> {
    one(s)
}

/// How many newlines `bytes` holds.
fn newlines(bytes: &[u8]) -> usize {
    // Summed in bytes, 255 at a time, so that it vectorises.
    bytes
        .chunks(255)
        .map(|c| usize::from(c.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
        .sum()
}

/// A top-level key, as far as the readers care.
enum TopKey {
    SchemaVersion,
    Status,
    RequestDrafts,
    Other,
}

/// The input, read in chunks; `buf[mark..]` is kept until the next checkpoint.
pub(super) struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    /// Where parsing is.
    pos: usize,
    /// The last checkpoint.
    mark: usize,
    resume: Resume,
    /// The end of what has been read into `buf`.
    end: usize,
    eof: bool,
    chunk: usize,
    /// Line (from 1) and column (bytes since the last newline) of `buf[0]`, as
    /// serde_json counts them.
    line: usize,
    column: usize,
    scanner: super::scan::Scanner,
}

impl<R: Read> Window<R> {
    pub(super) fn new(reader: R, chunk: usize) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            pos: 0,
            mark: 0,
            resume: Resume::Start,
            end: 0,
            eof: false,
            chunk: chunk.max(1),
            line: 1,
            column: 0,
            scanner: super::scan::Scanner::default(),
        }
    }

    fn checkpoint(&mut self, resume: Resume) {
        self.mark = self.pos;
        self.resume = resume;
    }

    /// Line and column of `buf[at]`.
    fn position(&self, at: usize) -> (usize, usize) {
        let bytes = &self.buf[..at];
        match bytes.iter().rposition(|&b| b == b'\n') {
            None => (self.line, self.column + at),
            Some(last) => (self.line + newlines(bytes), at - last - 1),
        }
    }

    /// Reads the next chunk, dropping what lies before the checkpoint. At the end of the
    /// input it sets `eof`.
    fn fill(&mut self) -> Result<(), Stop> {
        if self.end - self.mark > MAX_VALUE {
            return Err(Stop::Bail);
        }
        if self.mark > 0 {
            (self.line, self.column) = self.position(self.mark);
            self.buf.copy_within(self.mark..self.end, 0);
            self.end -= self.mark;
            self.pos -= self.mark;
            self.mark = 0;
        }
        // `buf` stays initialised up to its length; only growth zeroes anything.
        if self.buf.len() < self.end + self.chunk {
            self.buf.resize(self.end + self.chunk, 0);
        }
        let target = self.end + self.chunk;
        while self.end < target {
            match self.reader.read(&mut self.buf[self.end..target]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // What was read before stays; the visitors read on from here and report it.
                Err(_) => return Err(Stop::Bail),
            }
        }
        Ok(())
    }

    /// The next byte that is not JSON whitespace, left unconsumed; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Stop> {
        loop {
            while let Some(&b) = self.buf[..self.end].get(self.pos) {
                if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                    self.pos += 1;
                } else {
                    return Ok(Some(b));
                }
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Parses the next value with `parse` (see [`one`]), reading more input while the value
    /// may continue past what is buffered.
    fn parse_with<O>(
        &mut self,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(O, usize)>, serde_json::Error>,
    ) -> Result<O, Stop> {
        loop {
            let rest = &self.buf[self.pos..self.end];
            let len = rest.len();
            match parse(rest) {
                // A value that ends where the buffer does (a number) may go on.
                Ok(Some((v, used))) if used < len || self.eof => {
                    self.pos += used;
                    return Ok(v);
                }
                Ok(_) => {}
                Err(e) if e.classify() == Category::Eof => {}
                Err(_) => return Err(Stop::Bail),
            }
            if self.eof {
                return Err(Stop::Bail);
            }
            self.fill()?;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek()? == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop::Bail)
        }
    }

    /// Reads the document: the top-level fields into `head`, the drafts (with
    /// `with_drafts`) to `on_draft`.
    pub(super) fn run(
        &mut self,
        with_drafts: bool,
        on_draft: &mut dyn FnMut(AcceptanceDraft) -> io::Result<()>,
        head: &mut Head,
    ) -> Result<(), Stop> {
        self.expect(b'{')?;
        self.checkpoint(Resume::TopOpen);
        let mut drafts_seen = false;
        let mut first = true;
        loop {
            match self.peek()? {
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(b',') if !first => {
                    self.pos += 1;
                    if self.peek()? != Some(b'"') {
                        return Err(Stop::Bail);
                    }
                }
                Some(b'"') if first => {}
                _ => return Err(Stop::Bail),
            }
            first = false;
            let key = self.parse_with(|s| {
                one::<Cow<'_, str>>(s).map(|o| {
                    o.map(|(k, used)| {
                        let key = match k.as_ref() {
                            "schema_version" => TopKey::SchemaVersion,
                            "status" => TopKey::Status,
                            "request_drafts" => TopKey::RequestDrafts,
                            _ => TopKey::Other,
                        };
                        (key, used)
                    })
                })
            })?;
            self.expect(b':')?;
            match key {
                TopKey::SchemaVersion => head.schema_version = Some(self.top_value()?),
                TopKey::Status => head.status = Some(self.top_value()?),
                TopKey::RequestDrafts if with_drafts => {
                    if drafts_seen {
                        return Err(Stop::Bail);
                    }
                    drafts_seen = true;
                    self.drafts(on_draft)?;
                }
                _ => self.skip(drafts_seen)?,
            }
            self.checkpoint(Resume::TopValue { drafts_seen });
        }
        self.checkpoint(Resume::End);
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(Stop::Bail),
        }
    }

    fn top_value(&mut self) -> Result<Value, Stop> {
        let v = self.parse_with(owned::<Value>)?;
        if depth(&v) > MAX_TOP_DEPTH {
            return Err(Stop::Bail);
        }
        Ok(v)
    }

    /// A top-level value nothing is read from; an array element by element.
    fn skip(&mut self, drafts_seen: bool) -> Result<(), Stop> {
        if self.peek()? != Some(b'[') {
            return self.parse_with(owned::<IgnoredAny>).map(drop);
        }
        self.pos += 1;
        self.checkpoint(Resume::Ignored {
            drafts_seen,
            after_element: false,
        });
        let mut first = true;
        loop {
            match self.peek()? {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b',') if !first => {
                    self.pos += 1;
                    if matches!(self.peek()?, None | Some(b']')) {
                        return Err(Stop::Bail);
                    }
                }
                Some(_) if first => {}
                _ => return Err(Stop::Bail),
            }
            first = false;
            self.parse_with(owned::<IgnoredAny>)?;
            self.checkpoint(Resume::Ignored {
                drafts_seen,
                after_element: true,
            });
        }
    }

    /// `request_drafts`: each draft to `on_draft` as it is parsed.
    fn drafts(
        &mut self,
        on_draft: &mut dyn FnMut(AcceptanceDraft) -> io::Result<()>,
    ) -> Result<(), Stop> {
        self.expect(b'[')?;
        self.checkpoint(Resume::Drafts { next: 0 });
        let mut next = 0;
        loop {
            match self.peek()? {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b',') if next > 0 => self.pos += 1,
                _ if next == 0 => {}
                _ => return Err(Stop::Bail),
            }
            // A draft must be an object (serde would also take an array, by position).
            if self.peek()? != Some(b'{') {
                return Err(Stop::Bail);
            }
            // The scanner reads most drafts; what it is unsure of, serde_json reads.
            let mut scanner = std::mem::take(&mut self.scanner);
            let draft = self.parse_with(|s| match scanner.draft(s) {
                Some((d, used)) => Ok(Some((Some(d), used))),
                None => one::<FastDraft>(s).map(|o| o.map(|(d, used)| (d.into_draft(), used))),
            });
            self.scanner = scanner;
            let draft = draft?;
            let Some(draft) = draft else {
                return Err(Stop::Bail);
            };
            on_draft(draft).map_err(Stop::Consumer)?;
            next += 1;
            self.checkpoint(Resume::Drafts { next });
        }
    }

    /// What the visitors read instead of the rest of the document: a prefix that puts
    /// them where the fast path's last checkpoint is, at the same line and column, then
    /// the input from that checkpoint on.
    pub(super) fn into_replay(self) -> (impl Read, DraftsStart) {
        let (line, column) = self.position(self.mark);
        let (text, start): (&[u8], DraftsStart) = match self.resume {
            Resume::Start => (b"", DraftsStart::default()),
            Resume::TopOpen => (b"{", DraftsStart::default()),
            Resume::TopValue { drafts_seen: false } => (b"{\"\":{}", DraftsStart::default()),
            Resume::TopValue { drafts_seen: true } => {
                (b"{\"request_drafts\":[]", DraftsStart::default())
            }
            Resume::Ignored {
                drafts_seen,
                after_element,
            } => {
                let text: &[u8] = match (drafts_seen, after_element) {
                    (false, false) => b"{\"\":[",
                    (false, true) => b"{\"\":[{}",
                    (true, false) => b"{\"request_drafts\":[],\"\":[",
                    (true, true) => b"{\"request_drafts\":[],\"\":[{}",
                };
                (text, DraftsStart::default())
            }
            Resume::Drafts { next: 0 } => (b"{\"request_drafts\":[", DraftsStart::default()),
            Resume::Drafts { next } => (
                b"{\"request_drafts\":[{}",
                DraftsStart {
                    index: next,
                    skip_placeholder: true,
                },
            ),
            Resume::End => (b"{}", DraftsStart::default()),
        };
        let mut prefix = text.to_vec();
        // A checkpoint on the first line is at least as far in as its prefix, except
        // after a one-digit value (`{"":5`), whose `{}` placeholder is then a `0`.
        if line == 1
            && column < prefix.len()
            && matches!(
                self.resume,
                Resume::TopValue { .. } | Resume::Ignored { .. }
            )
            && prefix.ends_with(b"{}")
        {
            prefix.truncate(prefix.len() - 2);
            prefix.push(b'0');
        }
        let (newlines, spaces) = if line == 1 {
            (0, column.saturating_sub(prefix.len()))
        } else {
            (line - 1, column)
        };
        let mut rest = self.buf;
        rest.truncate(self.end);
        rest.drain(..self.mark);
        let replay = Cursor::new(prefix)
            .chain(io::repeat(b'\n').take(newlines as u64))
            .chain(io::repeat(b' ').take(spaces as u64))
            .chain(Cursor::new(rest))
            .chain(self.reader);
        (replay, start)
    }
}
