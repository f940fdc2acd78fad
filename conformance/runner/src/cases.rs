//! The cases, as `conformance/cases/<feature>/cases.json` holds them.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Feature {
    cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    checks: String,
    /// The targets the case applies to (none: every one); on the others it is skipped, saying so.
    #[serde(default)]
    targets: Vec<String>,
    steps: Vec<Step>,
}

/// One case: `feature/name`, what it checks, its steps.
#[derive(Debug)]
pub struct Case {
    pub id: String,
    pub checks: String,
    pub targets: Vec<String>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub op: String,
    #[serde(default)]
    pub args: Value,
    /// `{"ok": pattern}` or `{"error": pattern}`.
    pub expect: Value,
    /// The step runs this many times, each answer matched against `expect`.
    #[serde(default = "once")]
    pub times: u32,
    /// The step is sent again while it answers UNAVAILABLE (up to 30 s), as an application
    /// retries while a backend comes back.
    #[serde(default)]
    pub retry_unavailable: bool,
}

fn once() -> u32 {
    1
}

/// Every case under `dir`, by feature folder and then in file order.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut features: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("cases.json").is_file())
        .collect();
    features.sort();
    let mut cases = Vec::new();
    for folder in features {
        let feature = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let path = folder.join("cases.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let parsed: Feature = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for case in parsed.cases {
            anyhow::ensure!(!case.steps.is_empty(), "{feature}/{}: no steps", case.name);
            cases.push(Case {
                id: format!("{feature}/{}", case.name),
                checks: case.checks,
                targets: case.targets,
                steps: case.steps,
            });
        }
    }
    Ok(cases)
}
