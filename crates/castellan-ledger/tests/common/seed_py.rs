//! The seed ledger's own Python generator, run as an oracle by the seed-compatibility
//! tests and the `acceptance_vs_seed` bench.
//!
//! None of its code is kept in this repository, and the repository never looks outside
//! itself for it: the seed documents are wherever `CASTELLAN_SEED_DIR` names (for example
//! `CASTELLAN_SEED_DIR=/path/to/seeds cargo xtask test`), and without it every caller skips,
//! saying so. The script is extracted at run time from the seed document (`000_*.txt`) into
//! a temporary directory. The document is a web page's text and lost the script's indentation, so it
//! is re-indented here from the block structure, which this script keeps simple:
//! top-level `def`s, constants and imports; blocks opened by a line ending in `:`;
//! `except` / `elif` / `else` / `finally` closing the block before them; an `else` or
//! `except` block, and the `if __name__` block, of one statement. The result is checked by
//! compiling it, and its output is compared with castellan's by the callers.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the seed documents are: `CASTELLAN_SEED_DIR`, or `None` when it is not set.
pub fn seed_dir() -> Option<PathBuf> {
    std::env::var_os("CASTELLAN_SEED_DIR").map(PathBuf::from)
}

/// For a test that needs the seed: `Some(path)` to `file` in [`seed_dir`]; `None` after
/// printing a skip when `CASTELLAN_SEED_DIR` is not set. Set but without the file, the
/// test fails: the seed was asked for and is not there.
pub fn require(file: &Path) -> Option<PathBuf> {
    let Some(dir) = seed_dir() else {
        eprintln!(
            "note: skipped: CASTELLAN_SEED_DIR is not set (the seed is not in the repository)"
        );
        return None;
    };
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "CASTELLAN_SEED_DIR is set but {} is not there",
        path.display()
    );
    Some(path)
}

/// The seed document, if `CASTELLAN_SEED_DIR` names one.
pub fn seed_document() -> Option<PathBuf> {
    let dir = seed_dir()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("000_") && n.ends_with(".txt"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Whether `python3` runs.
pub fn have_python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The seed's generator written to `dir/seed_acceptance.py`, re-indented and compiled;
/// `Err` says why it could not be (no seed, no python3, or it does not compile).
pub fn write_script(dir: &Path) -> Result<PathBuf, String> {
    let doc = seed_document()
        .ok_or("no seed document: CASTELLAN_SEED_DIR is not set or holds no 000_*.txt")?;
    if !have_python3() {
        return Err("python3 is not available".into());
    }
    let text = std::fs::read_to_string(&doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let script = extract(&text)?;
    let path = dir.join("seed_acceptance.py");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let out = Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the re-indented seed does not compile: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(path)
}

/// The script: from its `#!` line to `raise SystemExit(main())`, re-indented.
pub fn extract(doc: &str) -> Result<String, String> {
    let lines: Vec<&str> = doc.lines().map(str::trim).collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("#!/usr/bin/env python3"))
        .ok_or("no #! line in the seed")?;
    let end = lines
        .iter()
        .rposition(|l| *l == "raise SystemExit(main())")
        .ok_or("no `raise SystemExit(main())` in the seed")?;
    Ok(reindent(&lines[start..=end]))
}

/// An open block: its keyword and whether it holds a single statement.
struct Block {
    keyword: String,
    single: bool,
}

fn reindent(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut scan = Scanner::default();
    // The first line of the statement being read.
    let mut statement = String::new();
    for line in lines {
        if scan.continues() {
            // Inside brackets or a triple-quoted string: indentation does not matter,
            // but a continuation line must not start at column 0 inside a block.
            if scan.triple.is_none() {
                out.push_str(&"    ".repeat(blocks.len() + 1));
            }
            out.push_str(line);
            out.push('\n');
            scan.feed(line);
            if !scan.continues() {
                end_statement(&mut blocks, &scan, &statement);
            }
            continue;
        }
        if line.is_empty() {
            out.push('\n');
            continue;
        }
        let keyword = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        let top_level = ["def", "class", "import", "from"].contains(&keyword)
            || line.starts_with('@')
            || line.starts_with("#!")
            || line.starts_with("\"\"\"")
            || line.starts_with("if __name__")
            || is_constant(line);
        if top_level {
            blocks.clear();
        } else if matches!(keyword, "except" | "elif" | "else" | "finally") {
            let opener: &[&str] = match keyword {
                "elif" | "else" => &["if", "elif", "try", "except", "for", "while"],
                _ => &["try", "except"],
            };
            while let Some(b) = blocks.pop() {
                if opener.contains(&b.keyword.as_str()) {
                    break;
                }
            }
        }
        out.push_str(&"    ".repeat(blocks.len()));
        out.push_str(line);
        out.push('\n');
        scan.feed(line);
        statement = (*line).to_owned();
        if !scan.continues() {
            end_statement(&mut blocks, &scan, &statement);
        }
    }
    out
}

/// After a statement's last line (`first` is its first line): a line ending in `:` opens
/// a block; any other statement ends a one-statement block.
fn end_statement(blocks: &mut Vec<Block>, scan: &Scanner, first: &str) {
    let keyword = first
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    if scan.code.trim_end().ends_with(':') {
        blocks.push(Block {
            keyword: keyword.to_owned(),
            single: matches!(keyword, "else" | "except" | "finally")
                || first.starts_with("if __name__"),
        });
    } else if blocks.last().is_some_and(|b| b.single) {
        blocks.pop();
    }
}

/// `NAME = ...` with an upper-case name: a module constant.
fn is_constant(line: &str) -> bool {
    let Some((name, _)) = line.split_once(" = ") else {
        return false;
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Bracket depth and string state across lines.
#[derive(Default)]
struct Scanner {
    depth: i32,
    triple: Option<char>,
    /// The last line's code, without its comment and string contents' brackets.
    code: String,
}

impl Scanner {
    fn continues(&self) -> bool {
        self.depth > 0 || self.triple.is_some()
    }

    fn feed(&mut self, line: &str) {
        self.code.clear();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            let triple_at = |q: char| {
                chars
                    .get(i..i + 3)
                    .is_some_and(|s| s.iter().all(|&x| x == q))
            };
            if let Some(q) = self.triple {
                if triple_at(q) {
                    self.triple = None;
                    i += 3;
                } else {
                    i += 1;
                }
                continue;
            }
            if let Some(q) = quote {
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            match c {
                '#' => break,
                '"' | '\'' if triple_at(c) => {
                    self.triple = Some(c);
                    i += 3;
                    continue;
                }
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => self.depth += 1,
                ')' | ']' | '}' => self.depth -= 1,
                _ => {}
            }
            self.code.push(c);
            i += 1;
        }
    }
}
