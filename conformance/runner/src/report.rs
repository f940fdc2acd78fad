//! The matrix (binding × target), printed, as JUnit XML and as `RESULTS.md`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::cases::Case;
use crate::servers::TARGETS;

#[derive(Debug)]
pub enum Verdict {
    Passed,
    /// Not run here, and why (the case applies to other targets only).
    Skipped(String),
    Failed(String),
    /// Failed as its binding's known-failing list says, for that reason.
    KnownFailing {
        failure: String,
        reason: String,
    },
}

/// One binding on one target: each case's verdict.
#[derive(Debug, Default)]
pub struct Cell {
    verdicts: BTreeMap<String, Verdict>,
}

impl Cell {
    /// A later verdict of the same case (the bindings disagreed) replaces the first.
    pub fn record(&mut self, case: &str, verdict: Verdict) {
        self.verdicts.insert(case.to_owned(), verdict);
    }

    /// Passed, failed, known-failing, skipped.
    fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |f: fn(&Verdict) -> bool| self.verdicts.values().filter(|v| f(v)).count();
        (
            count(|v| matches!(v, Verdict::Passed)),
            count(|v| matches!(v, Verdict::Failed(_))),
            count(|v| matches!(v, Verdict::KnownFailing { .. })),
            count(|v| matches!(v, Verdict::Skipped(_))),
        )
    }
}

pub struct Report {
    /// The matrix's rows, in this order.
    pub bindings: Vec<String>,
    pub cells: BTreeMap<(String, String), Cell>,
    pub cases: usize,
    pub provisioner: String,
}

impl Report {
    pub fn green(&self) -> bool {
        self.cells.values().all(|cell| cell.counts().1 == 0)
    }

    fn bindings(&self) -> Vec<&str> {
        self.bindings.iter().map(String::as_str).collect()
    }

    fn targets(&self) -> Vec<&'static str> {
        TARGETS.iter().copied().filter(|t| self.cells.keys().any(|(_, target)| target == t)).collect()
    }

    /// The matrix as a Markdown table: passed / failed / known-failing a cell.
    fn table(&self) -> String {
        let targets = self.targets();
        let mut out = format!("| binding | {} |\n|---|{}\n", targets.join(" | "), "---|".repeat(targets.len()));
        for binding in self.bindings() {
            let cells: Vec<String> = targets
                .iter()
                .map(|target| match self.cells.get(&(binding.to_owned(), (*target).to_owned())) {
                    Some(cell) => {
                        let (passed, failed, known, skipped) = cell.counts();
                        format!("{passed} passed, {failed} failed, {known} known-failing, {skipped} skipped")
                    }
                    None => "not run".to_owned(),
                })
                .collect();
            let _ = writeln!(out, "| {binding} | {} |", cells.join(" | "));
        }
        out
    }

    pub fn print(&self) {
        println!("\n{} cases, provisioner {}\n\n{}", self.cases, self.provisioner, self.table());
        for ((binding, target), cell) in &self.cells {
            for (case, verdict) in &cell.verdicts {
                match verdict {
                    Verdict::Failed(why) => println!("FAILED {binding} × {target} × {case}: {why}"),
                    Verdict::KnownFailing { reason, failure } => {
                        println!("known-failing {binding} × {target} × {case}: {reason} ({failure})");
                    }
                    Verdict::Passed | Verdict::Skipped(_) => {}
                }
            }
        }
    }

    pub fn junit(&self) -> String {
        let escape =
            |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let mut out =
            String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flipbook-conformance\">\n");
        for ((binding, target), cell) in &self.cells {
            let (_, failed, known, skipped) = cell.counts();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{binding}.{target}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{}\">",
                cell.verdicts.len(),
                known + skipped
            );
            for (case, verdict) in &cell.verdicts {
                let name = escape(case);
                match verdict {
                    Verdict::Passed => {
                        let _ = writeln!(out, "    <testcase classname=\"{binding}.{target}\" name=\"{name}\"/>");
                    }
                    Verdict::Failed(why) => {
                        let _ = writeln!(
                            out,
                            "    <testcase classname=\"{binding}.{target}\" name=\"{name}\"><failure message=\"{}\"/></testcase>",
                            escape(why)
                        );
                    }
                    Verdict::KnownFailing { reason, .. } => {
                        let _ = writeln!(
                            out,
                            "    <testcase classname=\"{binding}.{target}\" name=\"{name}\"><skipped message=\"known-failing: {}\"/></testcase>",
                            escape(reason)
                        );
                    }
                    Verdict::Skipped(why) => {
                        let _ = writeln!(
                            out,
                            "    <testcase classname=\"{binding}.{target}\" name=\"{name}\"><skipped message=\"{}\"/></testcase>",
                            escape(why)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// `RESULTS.md`: the matrix and every case that did not simply pass.
    pub fn markdown(&self, cases: &[Case]) -> String {
        let mut out = String::from(
            "# Conformance results\n\nWritten by the runner (`cargo run -p flipbook-conformance -- --results conformance/RESULTS.md`), never by hand.\n",
        );
        let _ = write!(
            out,
            "\n{} cases ({} features), provisioner `{}`.\n\n{}",
            cases.len(),
            features(cases),
            self.provisioner,
            self.table()
        );
        let mut others = String::new();
        for ((binding, target), cell) in &self.cells {
            for (case, verdict) in &cell.verdicts {
                match verdict {
                    Verdict::Failed(why) => {
                        let _ = writeln!(others, "- failed: {binding} × {target} × `{case}`: {why}");
                    }
                    Verdict::KnownFailing { reason, .. } => {
                        let _ = writeln!(others, "- known-failing: {binding} × {target} × `{case}`: {reason}");
                    }
                    Verdict::Passed | Verdict::Skipped(_) => {}
                }
            }
        }
        if !others.is_empty() {
            let _ = write!(out, "\n{others}");
        }
        out
    }
}

fn features(cases: &[Case]) -> usize {
    let mut features: Vec<&str> = cases.iter().filter_map(|c| c.id.split('/').next()).collect();
    features.dedup();
    features.len()
}
