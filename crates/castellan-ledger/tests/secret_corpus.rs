//! Recall and precision of the intake's quarantine decision over a labelled corpus
//! (`tests/data/secret_corpus.tsv`): secrets must be quarantined, and references to
//! secrets (pointers into a secret manager) and ordinary evidence must not be.
//!
//! Each string is put in the `notes` of an otherwise clean owner response and run through
//! `intake::analyze`, so what is measured is the real lane, not one rule in isolation.
//! The figures are printed (`--nocapture`) and reported in BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

mod common;

use castellan_ledger::intake::analyze;
use castellan_ledger::schema::Lane;
use common::*;
use serde_json::json;

/// Recall below this fails the test.
const MIN_RECALL: f64 = 0.98;
/// Precision below this fails the test.
const MIN_PRECISION: f64 = 0.95;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Secret,
    Reference,
    Benign,
}

fn corpus() -> Vec<(usize, Label, String)> {
    let text = include_str!("data/secret_corpus.tsv");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, line)| {
            let (label, s) = line.split_once('\t').unwrap();
            let label = match label {
                "secret" => Label::Secret,
                "reference" => Label::Reference,
                "benign" => Label::Benign,
                other => panic!("line {}: unknown label {other:?}", i + 1),
            };
            (i + 1, label, s.replace("\\n", "\n"))
        })
        .collect()
}

fn quarantined(s: &str) -> bool {
    let mut v = good_response(EXPORTER);
    v["notes"] = json!(s);
    let rec = analyze(&bytes(&v), &requests(), &key(), 2).unwrap();
    rec.lane() == Some(Lane::Quarantine)
}

#[test]
fn secret_corpus_recall_and_precision() {
    let corpus = corpus();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    let mut false_alarms = Vec::new();
    let mut counts = [0usize; 3];
    for (line, label, s) in &corpus {
        counts[*label as usize] += 1;
        let q = quarantined(s);
        match (label, q) {
            (Label::Secret, true) => tp += 1,
            (Label::Secret, false) => {
                fn_ += 1;
                misses.push(*line);
            }
            (_, true) => {
                fp += 1;
                false_alarms.push(*line);
            }
            (_, false) => {}
        }
    }
    assert!(
        counts.iter().all(|&c| c >= 50) && corpus.len() >= 300,
        "the corpus is too small: {counts:?}"
    );
    let recall = tp as f64 / (tp + fn_) as f64;
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    println!(
        "secret corpus: {} strings ({} secret, {} reference, {} benign); recall {:.1}% ({tp}/{}), precision {:.1}% ({tp}/{})",
        corpus.len(),
        counts[0],
        counts[1],
        counts[2],
        recall * 100.0,
        tp + fn_,
        precision * 100.0,
        tp + fp
    );
    // Line numbers only: the strings are generated secrets, but the habit holds.
    println!("missed secrets at lines {misses:?}; false alarms at lines {false_alarms:?}");
    assert!(
        recall >= MIN_RECALL,
        "recall {recall:.3} < {MIN_RECALL}: missed lines {misses:?}"
    );
    assert!(
        precision >= MIN_PRECISION,
        "precision {precision:.3} < {MIN_PRECISION}: false alarms at lines {false_alarms:?}"
    );
}

#[test]
fn every_reference_alone_is_clean() {
    // Stricter than the precision figure: no reference to a secret is quarantined.
    let flagged: Vec<usize> = corpus()
        .into_iter()
        .filter(|(_, label, s)| *label == Label::Reference && quarantined(s))
        .map(|(line, _, _)| line)
        .collect();
    assert!(
        flagged.is_empty(),
        "references quarantined at lines {flagged:?}"
    );
}
