//! The fast path's draft scanner: a draft read straight from the bytes, its members found
//! by hand, its known fields parsed by `serde_json` and every other member (chiefly
//! `owner_questions`, most of a draft's bytes) skipped by a byte scanner that checks them
//! without building anything.
//!
//! The scanner only ever *accepts*, and only what `serde_json` accepts: it gives up
//! (`None`) on anything it is not sure of — an escape other than the short ones, a
//! control character, bytes that are not UTF-8, nesting deeper than [`MAX_SKIP_DEPTH`], a
//! repeated or missing field, the end of the buffer — and the draft is then parsed by
//! `serde_json` as before, which accepts it, refuses it or asks for more input.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AcceptanceDraft;
#[cfg(test)]
use super::fast::FastDraft;
use super::fast::{one, shallow};

/// How deeply a skipped member may nest before the scanner leaves it to `serde_json`
/// (which allows well over a hundred levels here).
const MAX_SKIP_DEPTH: usize = 32;

/// The offset of the first byte of `s[i..]` that is not JSON whitespace.
fn ws(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i) {
            // Indentation, eight spaces at a time.
            Some(b' ') => {
                i += 1;
                while s.get(i..i + 8) == Some(b"        ") {
                    i += 8;
                }
            }
            Some(b'\n' | b'\t' | b'\r') => i += 1,
            _ => return i,
        }
    }
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Whether any byte of `w` is below `n` (`n` at most 0x80), or has its high bit set.
fn any_below_or_high(w: u64, n: u8) -> bool {
    (w.wrapping_sub(ONES * u64::from(n)) | w) & HIGHS != 0
}

/// Whether any byte of `w` is `b`.
fn any_is(w: u64, b: u8) -> bool {
    let x = w ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// `s[i]` is just after a string's opening quote: the offset just past its closing quote.
fn skip_string(s: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    let mut ascii = true;
    loop {
        // Eight bytes at a time while none of them is a quote, a backslash, a control
        // character or part of a multi-byte character.
        while let Some(word) = s.get(i..i + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let w = u64::from_le_bytes(bytes);
            if any_below_or_high(w, 0x20) || any_is(w, b'"') || any_is(w, b'\\') {
                break;
            }
            i += 8;
        }
        match *s.get(i)? {
            b'"' => {
                if !ascii {
                    // Escapes are ASCII, so the raw bytes are UTF-8 exactly when the
                    // string is.
                    std::str::from_utf8(&s[start..i]).ok()?;
                }
                return Some(i + 1);
            }
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                // `\u` escapes (and their surrogate pairs) are left to serde_json.
                _ => return None,
            },
            0..=0x1f => return None,
            0x80.. => {
                ascii = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The offset just past the digits starting at `s[i]`, if there is at least one.
fn digits(s: &[u8], i: usize) -> Option<usize> {
    let n = s
        .get(i..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (n > 0).then_some(i + n)
}

/// A number starting at `s[i]`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn skip_number(s: &[u8], mut i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *s.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(s, i)?,
        _ => return None,
    };
    if s.get(i) == Some(&b'.') {
        i = digits(s, i + 1)?;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        i = digits(s, i)?;
    }
    // The number must end here; a digit or anything else that could continue it is
    // left to serde_json (and the end of the buffer: the number may go on).
    match *s.get(i)? {
        b' ' | b'\n' | b'\t' | b'\r' | b',' | b']' | b'}' => Some(i),
        _ => None,
    }
}

/// A value starting at `s[i]` (no whitespace before it): the offset just past it.
fn skip_value(s: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *s.get(i)? {
        b'"' => skip_string(s, i + 1),
        b'{' => {
            let depth = depth.checked_sub(1)?;
            let mut i = ws(s, i + 1);
            if *s.get(i)? == b'}' {
                return Some(i + 1);
            }
            loop {
                if *s.get(i)? != b'"' {
                    return None;
                }
                i = ws(s, skip_string(s, i + 1)?);
                if *s.get(i)? != b':' {
                    return None;
                }
                i = ws(s, skip_value(s, ws(s, i + 1), depth)?);
                match *s.get(i)? {
                    b',' => i = ws(s, i + 1),
                    b'}' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'[' => {
            let depth = depth.checked_sub(1)?;
            let mut i = ws(s, i + 1);
            if *s.get(i)? == b']' {
                return Some(i + 1);
            }
            loop {
                i = ws(s, skip_value(s, i, depth)?);
                match *s.get(i)? {
                    b',' => i = ws(s, i + 1),
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b't' => literal(s, i, b"true"),
        b'f' => literal(s, i, b"false"),
        b'n' => literal(s, i, b"null"),
        b'-' | b'0'..=b'9' => skip_number(s, i),
        _ => None,
    }
}

/// `word` at `s[i]`, followed by something that ends a value.
fn literal(s: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (s.get(i..end)? == word).then_some(())?;
    match *s.get(end)? {
        b' ' | b'\n' | b'\t' | b'\r' | b',' | b']' | b'}' => Some(end),
        _ => None,
    }
}

/// A known field's value starting at `s[i]`, parsed by serde_json, and the offset just
/// past it.
fn field<T: DeserializeOwned>(s: &[u8], i: usize) -> Option<(T, usize)> {
    let (v, used) = one::<T>(s.get(i..)?).ok()??;
    Some((v, i + used))
}

/// Sets `slot` to the value at `s[i]`; `None` when the field was already seen.
fn once<T: DeserializeOwned>(slot: &mut Option<T>, s: &[u8], i: usize) -> Option<usize> {
    if slot.is_some() {
        return None;
    }
    let (v, end) = field(s, i)?;
    *slot = Some(v);
    Some(end)
}

/// How many skipped values the scanner remembers (drafts of different kinds ask
/// different `owner_questions`; a report usually holds a handful of kinds).
const REMEMBERED: usize = 8;

/// The shortest skipped value worth remembering: below it, skipping is about as cheap as
/// comparing.
const REMEMBER_FROM: usize = 64;

/// The scanner's memory between drafts: the last `required_owner_fields` it parsed, as
/// they were written, so that the next draft listing the same ones, byte for byte,
/// shares them instead of parsing and allocating them again; and the last few arrays
/// and objects it skipped, so that the same bytes again (the same `owner_questions`) are
/// compared rather than scanned.
#[derive(Debug, Default)]
pub(super) struct Scanner {
    required: Option<(Vec<u8>, Arc<[Value]>)>,
    skipped: Vec<Vec<u8>>,
}

impl Scanner {
    /// Skips the member value at `s[i]`. An array or object is judged by its own bytes
    /// alone (its end is its closing bracket; nothing after it is looked at), so bytes
    /// identical to ones already skipped from the same depth are skipped again by
    /// comparison.
    fn skip(&mut self, s: &[u8], i: usize) -> Option<usize> {
        let container = matches!(s.get(i), Some(b'[' | b'{'));
        if container && let Some(raw) = self.skipped.iter().find(|raw| s[i..].starts_with(raw)) {
            return Some(i + raw.len());
        }
        let end = skip_value(s, i, MAX_SKIP_DEPTH)?;
        if container && end - i >= REMEMBER_FROM {
            if self.skipped.len() == REMEMBERED {
                self.skipped.remove(0);
            }
            self.skipped.push(s[i..end].to_vec());
        }
        Some(end)
    }

    /// `required_owner_fields` at `s[i]` and the offset just past them.
    fn required(&mut self, s: &[u8], i: usize) -> Option<(Arc<[Value]>, usize)> {
        if let (Some(end), Some((raw, fields))) = (skip_value(s, i, MAX_SKIP_DEPTH), &self.required)
            && s[i..end] == raw[..]
        {
            return Some((fields.clone(), end));
        }
        let (fields, end) = field::<Vec<Value>>(s, i)?;
        let fields: Arc<[Value]> = fields.into();
        self.required = Some((s[i..end].to_vec(), fields.clone()));
        Some((fields, end))
    }

    /// The draft whose `{` is the first non-whitespace byte of `s`, and the offset just
    /// past its `}`, when the scanner is sure of it (and the visitors would take its
    /// nesting: [`shallow`]).
    pub(super) fn draft(&mut self, s: &[u8]) -> Option<(AcceptanceDraft, usize)> {
        let mut request_id: Option<String> = None;
        let mut surface_id: Option<String> = None;
        let mut repo_sha256: Option<String> = None;
        let mut write_capable_surface: Option<bool> = None;
        let mut requires_live_evidence: Option<bool> = None;
        let mut required_owner_fields: Option<Arc<[Value]>> = None;
        let mut pass: [Option<Value>; 7] = Default::default();

        let mut i = ws(s, 0);
        if *s.get(i)? != b'{' {
            return None;
        }
        i = ws(s, i + 1);
        loop {
            if *s.get(i)? != b'"' {
                return None;
            }
            let key_start = i + 1;
            let key_end = skip_string(s, key_start)? - 1;
            let key = &s[key_start..key_end];
            // A key with an escape may spell a known field: serde_json's.
            if key.contains(&b'\\') {
                return None;
            }
            i = ws(s, key_end + 1);
            if *s.get(i)? != b':' {
                return None;
            }
            i = ws(s, i + 1);
            i = match key {
                b"request_id" => once(&mut request_id, s, i)?,
                b"surface_id" => once(&mut surface_id, s, i)?,
                b"repo_sha256" => once(&mut repo_sha256, s, i)?,
                b"write_capable_surface" => once(&mut write_capable_surface, s, i)?,
                b"requires_live_evidence" => once(&mut requires_live_evidence, s, i)?,
                b"required_owner_fields" => {
                    if required_owner_fields.is_some() {
                        return None;
                    }
                    let (fields, end) = self.required(s, i)?;
                    required_owner_fields = Some(fields);
                    end
                }
                b"label" => once(&mut pass[0], s, i)?,
                b"expected_host_scope" => once(&mut pass[1], s, i)?,
                b"config_kind" => once(&mut pass[2], s, i)?,
                b"service_scope" => once(&mut pass[3], s, i)?,
                b"control_tier" => once(&mut pass[4], s, i)?,
                b"repo_source_path" => once(&mut pass[5], s, i)?,
                b"source_line_count" => once(&mut pass[6], s, i)?,
                _ => self.skip(s, i)?,
            };
            i = ws(s, i);
            match *s.get(i)? {
                b',' => i = ws(s, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        let [a, b, c, d, e, f, g] = pass;
        let draft = AcceptanceDraft {
            request_id: request_id?,
            surface_id: surface_id?,
            repo_sha256: repo_sha256?,
            write_capable_surface: write_capable_surface?,
            requires_live_evidence: requires_live_evidence?,
            required_owner_fields: required_owner_fields?,
            pass_through: [a?, b?, c?, d?, e?, f?, g?],
        };
        Some((shallow(draft)?, i))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    use super::*;

    /// What serde_json makes of the draft at the start of `s`, as the fast path asks it.
    fn serde_draft(s: &[u8]) -> Option<(AcceptanceDraft, usize)> {
        let mut values = serde_json::Deserializer::from_slice(s).into_iter::<FastDraft>();
        let d = values.next()?.ok()?;
        Some((d.into_draft()?, values.byte_offset()))
    }

    const DRAFT: &str = r#"{
      "config_kind": "docker_compose",
      "control_tier": "service_runtime",
      "expected_host_scope": ["h1", {"a": [1, -2.5e+3, true, null]}],
      "label": "docker \"compose\" svc0 \u00e9 é ✓",
      "owner_questions": [
        {"field": "owner_role_or_team", "question": "Who \"owns\" it? ✓ \t\\/"},
        {"n": -0.5E-2, "x": [[], {}, [{}], false, null, 0, 12]}
      ],
      "repo_sha256": "00ff",
      "repo_source_path": "a/b.yml",
      "request_id": "owner-request:x",
      "required_owner_fields": ["owner_role_or_team", "decision"],
      "requires_live_evidence": true,
      "service_scope": "svc0",
      "source_line_count": 20,
      "surface_id": "docker_compose:a/b.yml",
      "write_capable_surface": false,
      "other": {"deep": [[[["x"]]]]}
    } "#;

    #[test]
    fn a_draft_is_read_as_serde_json_reads_it() {
        let ours = Scanner::default().draft(DRAFT.as_bytes()).unwrap();
        assert_eq!(Some(ours), serde_draft(DRAFT.as_bytes()));
    }

    /// Every way of cutting, dropping, doubling or changing one byte of a draft: whatever
    /// the scanner accepts, serde_json accepts with the same result.
    #[test]
    fn the_scanner_never_accepts_what_serde_json_refuses() {
        let base = DRAFT.as_bytes();
        let mut accepted = 0;
        // One scanner throughout: what it remembers of one draft never changes how it
        // reads the next.
        let mut scanner = Scanner::default();
        let mut check = |doc: &[u8]| {
            if let Some(ours) = scanner.draft(doc) {
                accepted += 1;
                assert_eq!(
                    Some(ours),
                    serde_draft(doc),
                    "{}",
                    String::from_utf8_lossy(doc)
                );
            }
        };
        for at in 0..base.len() {
            check(&base[..at]);
            let mut dropped = base.to_vec();
            dropped.remove(at);
            check(&dropped);
            let mut doubled = base.to_vec();
            doubled.insert(at, base[at]);
            check(&doubled);
            for b in [
                b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'e', b'.', b'x',
                0x01, 0x80, 0xff, b' ',
            ] {
                let mut changed = base.to_vec();
                changed[at] = b;
                check(&changed);
            }
        }
        // The scanner does take most of them: it is not merely refusing everything.
        assert!(accepted > base.len(), "only {accepted} edits accepted");
    }

    /// A remembered `owner_questions` is taken again only byte for byte: the same bytes
    /// are compared, not scanned; one changed byte anywhere in them is scanned (and a bad
    /// one refused) as if nothing were remembered; a longer or shorter value is not cut
    /// to the remembered length.
    #[test]
    fn remembered_skips_are_taken_only_for_the_same_bytes() {
        let mut scanner = Scanner::default();
        assert!(scanner.draft(DRAFT.as_bytes()).is_some());
        assert_eq!(scanner.skipped.len(), 1, "owner_questions is remembered");
        let questions = DRAFT.find("\"owner_questions\"").unwrap();
        let end = questions + DRAFT[questions..].find("\n      ],").unwrap();
        for at in questions + 20..end {
            for b in [0x01u8, b'"', b']', b'}', 0xff] {
                let mut changed = DRAFT.as_bytes().to_vec();
                changed[at] = b;
                assert_eq!(
                    scanner
                        .draft(&changed)
                        .is_some_and(|ours| Some(ours) == serde_draft(&changed)),
                    serde_draft(&changed).is_some() && Scanner::default().draft(&changed).is_some(),
                    "{}",
                    String::from_utf8_lossy(&changed)
                );
            }
        }
        // A control character inside a remembered question: refused, though everything
        // before it matches.
        let bad = DRAFT.replacen("Who", "W\x01o", 1);
        assert_eq!(scanner.draft(bad.as_bytes()), None);
        // The same value followed by more array members is read whole.
        let longer = DRAFT.replacen("\n      ],", ",\n        {\"extra\": true}\n      ],", 1);
        let ours = scanner.draft(longer.as_bytes()).unwrap();
        assert_eq!(Some(ours), serde_draft(longer.as_bytes()));
    }

    #[test]
    fn deep_or_escaped_members_are_left_to_serde_json() {
        let deep = format!(
            r#"{{"x": {}1{} }}"#,
            "[".repeat(MAX_SKIP_DEPTH + 1),
            "]".repeat(MAX_SKIP_DEPTH + 1)
        );
        assert!(skip_value(deep.as_bytes(), 6, MAX_SKIP_DEPTH).is_none());
        assert!(skip_string(br#"a\u0041""#, 0).is_none());
        assert!(skip_string(b"a\x01\"", 0).is_none());
        assert!(skip_string(b"a\xff\"", 0).is_none());
        assert_eq!(skip_string("aé\"".as_bytes(), 0), Some(4));
    }

    /// JSON text made of the pieces the skipper handles, and some it gives up on.
    fn text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            "\"([a-z é✓]|\\\\[\"\\\\/bfnrtu]|\\\\u00e9){0,6}\"",
            "[0-9a-z\"\\\\\\-\\.]{1,4}",
        ];
        leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec(("[a-z]{0,3}", inner), 0..5).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" :{v}"))
                        .collect();
                    format!("{{ {} }}", members.join(",\n"))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn skipped_values_are_values_serde_json_takes_whole(t in text()) {
            let doc = format!("{t} ");
            if let Some(end) = skip_value(doc.as_bytes(), 0, MAX_SKIP_DEPTH) {
                let mut values =
                    serde_json::Deserializer::from_slice(doc.as_bytes()).into_iter::<IgnoredAny>();
                prop_assert!(matches!(values.next(), Some(Ok(_))), "{doc}");
                prop_assert_eq!(values.byte_offset(), end);
            }
        }
    }
}
