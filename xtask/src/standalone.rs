//! `cargo xtask standalone`: the repository stands on its own. No tracked file may link to,
//! or read from, a path outside the repository: a fresh clone must build, test and read
//! correctly with nothing beside it.
//!
//! What counts as leaving the repository:
//! - a Markdown link (`[text](target)`) whose relative target resolves above the root;
//! - in a Rust file, a `../` run that climbs above the crate's directory (paths in code are
//!   joined to `CARGO_MANIFEST_DIR`, or relative to a crate's source file);
//! - in Markdown outside a link (prose, code blocks), any `../`: commands in documentation
//!   run from the repository root;
//! - anywhere else (manifests, scripts, data), one that climbs above the file's directory.
//!
//! There is no exception: what lives outside the repository (the seed documents) is only
//! ever named by the environment (`CASTELLAN_SEED_DIR`), never by a path in a file.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// One reference that leaves the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    /// The file, relative to the root.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What was found.
    pub text: String,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} leaves the repository",
            self.file, self.line, self.text
        )
    }
}

/// Runs the check on the repository at `root`; an error lists every escape.
pub fn check(root: &Path) -> anyhow::Result<usize> {
    let files = tracked_files(root)?;
    let mut escapes = Vec::new();
    let mut checked = 0;
    for rel in &files {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            // Binary files and files gone from the work tree say nothing about paths.
            continue;
        };
        checked += 1;
        escapes.extend(scan(rel, &text, |dir| crate_depth(root, dir)));
    }
    if !escapes.is_empty() {
        let list: Vec<String> = escapes.iter().map(ToString::to_string).collect();
        bail!(
            "{} reference{} outside the repository:\n  {}",
            escapes.len(),
            if escapes.len() == 1 { "" } else { "s" },
            list.join("\n  ")
        );
    }
    Ok(checked)
}

/// The repository's tracked files (`git ls-files`), or, outside a git checkout, every file
/// but build output and hidden directories.
fn tracked_files(root: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        return Ok(String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let ty = entry
            .file_type()
            .with_context(|| format!("cannot examine {}", path.display()))?;
        if ty.is_dir() {
            if name == "target" || (name.starts_with('.') && name != ".ci" && name != ".cargo") {
                continue;
            }
            walk(root, &path, out)?;
        } else if ty.is_file()
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The depth below the root of the nearest directory at or above `dir` (relative) holding a
/// `Cargo.toml`; 0 when none does.
fn crate_depth(root: &Path, dir: &Path) -> usize {
    let mut d = Some(dir);
    while let Some(cur) = d {
        if root.join(cur).join("Cargo.toml").is_file() {
            return cur.components().count();
        }
        d = cur.parent();
    }
    0
}

/// Every escape in one file. `crate_depth` gives, for a directory relative to the root, the
/// depth of the crate it belongs to.
pub fn scan(rel: &str, text: &str, crate_depth: impl Fn(&Path) -> usize) -> Vec<Escape> {
    let path = Path::new(rel);
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir_depth = dir.components().count();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let is_md = name.ends_with(".md");
    // How many `../` a path outside a Markdown link may climb.
    let allowed = if name.ends_with(".rs") {
        crate_depth(dir)
    } else if is_md {
        0
    } else {
        dir_depth
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut link_spans = Vec::new();
        if is_md {
            for (start, end, target) in md_links(line) {
                link_spans.push((start, end));
                if leaves(dir, target) {
                    out.push(Escape {
                        file: rel.to_owned(),
                        line: i + 1,
                        text: format!("link {target:?}"),
                    });
                }
            }
        }
        for (at, ups) in up_runs(line) {
            if link_spans.iter().any(|&(s, e)| at >= s && at < e) {
                continue;
            }
            if ups > allowed {
                let end = line[at..]
                    .find(|c: char| c.is_whitespace() || "\"'`)]>,;\\".contains(c))
                    .map_or(line.len(), |n| at + n);
                out.push(Escape {
                    file: rel.to_owned(),
                    line: i + 1,
                    text: format!("path {:?}", &line[at..end]),
                });
            }
        }
    }
    out
}

/// Markdown inline links on a line: (start, end) byte span of the target, and the target.
fn md_links(line: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = line[from..].find("](") {
        let start = from + n + 2;
        let Some(len) = line[start..].find(')') else {
            break;
        };
        let target = line[start..start + len]
            .split_whitespace()
            .next()
            .unwrap_or("");
        out.push((start, start + len, target));
        from = start + len;
    }
    out
}

/// Whether a link target, relative to the linking file's directory `dir`, leaves the root.
fn leaves(dir: &Path, target: &str) -> bool {
    if target.is_empty() || target.starts_with('#') || target.contains("://") {
        return false;
    }
    if target.starts_with("mailto:") {
        return false;
    }
    if target.starts_with('/') {
        return true;
    }
    let target = target.split('#').next().unwrap_or(target);
    let mut depth: isize = dir.components().count() as isize;
    for c in PathBuf::from(target).components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Each maximal run of `../` on a line that starts a path (not preceded by a path
/// character): its byte offset and length in steps.
fn up_runs(line: &str) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if &b[i..i + 3] == b"../" {
            let starts_path =
                i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b"._-".contains(&b[i - 1]));
            let start = i;
            let mut n = 0;
            while i + 3 <= b.len() && &b[i..i + 3] == b"../" {
                n += 1;
                i += 3;
            }
            if starts_path {
                out.push((start, n));
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `n` steps up, built at run time: this file is checked like any other, and its
    /// examples must not climb out of the repository themselves.
    fn up(n: usize) -> String {
        "../".repeat(n)
    }

    fn escapes(rel: &str, text: &str) -> Vec<String> {
        scan(rel, text, |dir| dir.components().take(2).count())
            .into_iter()
            .map(|e| e.text)
            .collect()
    }

    #[test]
    fn markdown_links_resolve_against_their_file() {
        assert!(escapes("README.md", "see [design](docs/design.md)").is_empty());
        assert!(escapes("docs/a.md", "see [arch](../ARCHITECTURE.md#x)").is_empty());
        assert!(escapes("README.md", "[web](https://example.com/../x) [top](#top)").is_empty());
        assert_eq!(
            escapes("README.md", "see [`DESIGN`](../outside/DESIGN.md) for"),
            vec!["link \"../outside/DESIGN.md\""]
        );
        let two = up(2);
        assert_eq!(
            escapes("docs/a.md", &format!("[x]({two}y.md)")),
            vec![format!("link \"{two}y.md\"")]
        );
        assert_eq!(
            escapes("README.md", "[x](/etc/passwd)"),
            vec!["link \"/etc/passwd\""]
        );
    }

    #[test]
    fn paths_in_code_may_not_climb_out_of_their_crate() {
        let three = up(3);
        let rs = format!(".join(\"{three}outside/pve/api-schema-subset.json\")");
        assert_eq!(
            escapes("crates/pvesim/tests/common/mod.rs", &rs),
            vec![format!(
                "path \"{three}outside/pve/api-schema-subset.json\""
            )]
        );
        let inside = r#".join("../pve-schema/data/api-schema-subset.json")"#;
        assert!(escapes("crates/pvesim/tests/common/mod.rs", inside).is_empty());
        assert!(escapes("fuzz/Cargo.toml", "path = \"../crates/castellan-core\"").is_empty());
        assert_eq!(
            escapes("fuzz/Cargo.toml", &format!("path = \"{}elsewhere\"", up(2))).len(),
            1
        );
    }

    #[test]
    fn prose_and_commands_run_from_the_root() {
        assert_eq!(
            escapes(
                "crates/pvesim/README.md",
                "pvesim --schema ../outside/pve/x.json"
            )
            .len(),
            1
        );
        assert!(
            escapes(
                "README.md",
                "cargo run -p pvesim -- --seed crates/pvesim/seed.toml"
            )
            .is_empty()
        );
        // `x../` is not a path climbing anywhere.
        assert!(escapes("README.md", "a range 1../ b").is_empty());
        // Outside Markdown, relative to the file itself.
        assert!(escapes("crates/x/rules/p/a.yml", "# see ../NOTICE").is_empty());
        assert_eq!(
            escapes("crates/x/rules/a.yml", &format!("# {}NOTICE", up(4))).len(),
            1
        );
    }
}
