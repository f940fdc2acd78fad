//! The conformance runner (`conformance/README.md`): every case through every binding's driver
//! on every target, each answer matched with the case and with the other bindings' answers.

mod cases;
mod containers;
mod driver;
mod proxy;
mod report;
mod run;
mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::report::{Cell, Verdict};

/// The bindings and how their drivers start (each beside the runner or on its interpreter).
const BINDINGS: [&str; 4] = ["rust", "python", "node", "go"];

fn driver_command(binding: &str, root: &Path) -> anyhow::Result<Command> {
    match binding {
        "rust" => {
            let path = std::env::current_exe()?.with_file_name("flipbook-conformance-driver");
            anyhow::ensure!(
                path.is_file(),
                "no Rust driver at {} (cargo build -p flipbook-conformance-driver)",
                path.display()
            );
            Ok(Command::new(path))
        }
        "python" => {
            let mut command = Command::new(python()?);
            command.arg(root.join("drivers/python/driver.py"));
            Ok(command)
        }
        "node" => {
            let mut command = Command::new("node");
            command.arg(installed_driver("node", "conformance-node/driver.js")?);
            Ok(command)
        }
        "go" => Ok(Command::new(installed_driver("go", "conformance-go/driver")?)),
        other => bail!("no binding {other}"),
    }
}

/// The Python with the `flipbook` package installed: `FLIPBOOK_PYTHON`, else the virtualenv
/// `scripts/test` installs it in (`FLIPBOOK_VENV`, default `~/.cache/flipbook/venv`).
fn python() -> anyhow::Result<PathBuf> {
    if let Ok(python) = std::env::var("FLIPBOOK_PYTHON") {
        return Ok(python.into());
    }
    let python = env_or_home("FLIPBOOK_VENV", ".cache/flipbook/venv")?.join("bin/python");
    anyhow::ensure!(
        python.is_file(),
        "no Python at {} (pip install ./bindings/python into it, or set FLIPBOOK_PYTHON)",
        python.display()
    );
    Ok(python)
}

/// A driver built on its binding's packages as a user installs them (`drivers/<binding>/install.sh
/// DIR`, which `scripts/test` runs): `FLIPBOOK_<BINDING>_DRIVER`, else `$CARGO_TARGET_DIR/<path>`
/// (the target dir defaulting to `~/.cache/flipbook/target`, as `scripts/test` has it).
fn installed_driver(binding: &str, path: &str) -> anyhow::Result<PathBuf> {
    let var = format!("FLIPBOOK_{}_DRIVER", binding.to_uppercase());
    if let Ok(driver) = std::env::var(&var) {
        return Ok(driver.into());
    }
    let driver = env_or_home("CARGO_TARGET_DIR", ".cache/flipbook/target")?.join(path);
    anyhow::ensure!(
        driver.is_file(),
        "no {binding} driver at {} (conformance/drivers/{binding}/install.sh {}, or set {var})",
        driver.display(),
        driver.parent().map_or_else(String::new, |p| p.display().to_string()),
    );
    Ok(driver)
}

/// The directory `var` names, else `default` under the home directory.
fn env_or_home(var: &str, default: &str) -> anyhow::Result<PathBuf> {
    match std::env::var(var) {
        Ok(dir) => Ok(dir.into()),
        Err(_) => Ok(PathBuf::from(std::env::var("HOME").context("HOME")?).join(default)),
    }
}

struct Options {
    provisioner: String,
    bindings: Vec<String>,
    targets: Vec<String>,
    cases: Vec<String>,
    junit: Option<PathBuf>,
    results: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        provisioner: "local".into(),
        bindings: BINDINGS.map(String::from).into(),
        targets: servers::TARGETS.map(String::from).into(),
        cases: Vec::new(),
        junit: None,
        results: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        let list = |text: String| text.split(',').filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
        match flag.as_str() {
            "--provisioner" => options.provisioner = value()?,
            "--bindings" => options.bindings = list(value()?),
            "--targets" => options.targets = list(value()?),
            "--cases" => options.cases = list(value()?),
            "--junit" => options.junit = Some(value()?.into()),
            "--results" => options.results = Some(value()?.into()),
            "--help" | "-h" => {
                println!(
                    "conformance [--provisioner local|testcontainers|env] [--bindings rust,…] [--targets sqlite,postgres,redis,dynamodb,embedded]\n            [--cases feature/ or feature/name,…] [--junit FILE] [--results conformance/RESULTS.md]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other} (--help)"),
        }
    }
    anyhow::ensure!(
        ["local", "testcontainers", "env"].contains(&options.provisioner.as_str()),
        "no provisioner {}",
        options.provisioner
    );
    Ok(options)
}

/// A binding's known-failing list (`known-failing/<binding>.json`).
#[derive(Debug, Default, Deserialize)]
struct KnownFailing {
    entries: Vec<KnownEntry>,
}

#[derive(Debug, Deserialize)]
struct KnownEntry {
    case: String,
    /// The targets it fails on; none: every one.
    #[serde(default)]
    targets: Vec<String>,
    reason: String,
}

impl KnownFailing {
    fn load(dir: &Path, binding: &str) -> anyhow::Result<Self> {
        let path = dir.join("known-failing").join(format!("{binding}.json"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn reason(&self, case: &str, target: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.case == case && (e.targets.is_empty() || e.targets.iter().any(|t| t == target)))
            .map(|e| e.reason.as_str())
    }
}

/// The `conformance` folder: `FLIPBOOK_CONFORMANCE_DIR`, else the one in the current directory
/// or above it (the checkout being tested: one target dir serves several checkouts, so the
/// folder this binary was built from may be another's), else that one.
fn conformance_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("FLIPBOOK_CONFORMANCE_DIR") {
        return Ok(dir.into());
    }
    let here = std::env::current_dir()?;
    let found = here.ancestors().map(|dir| dir.join("conformance")).find(|dir| dir.join("cases").is_dir());
    match found {
        Some(dir) => Ok(dir),
        None => Ok(Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the conformance folder")?.to_owned()),
    }
}

fn main() -> ExitCode {
    match run_all() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run_all() -> anyhow::Result<bool> {
    let options = options()?;
    let root = conformance_dir()?;
    let all = cases::load(&root.join("cases"))?;
    let selected: Vec<_> = all
        .iter()
        .filter(|case| options.cases.is_empty() || options.cases.iter().any(|c| case.id.starts_with(c.as_str())))
        .collect();
    anyhow::ensure!(!selected.is_empty(), "no case matches {:?}", options.cases);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let work = std::env::temp_dir().join(format!("flipbook-conformance-{run}"));
    println!(
        "conformance: {} cases, bindings {}, targets {}, provisioner {} (work: {})",
        selected.len(),
        options.bindings.join(","),
        options.targets.join(","),
        options.provisioner,
        work.display()
    );

    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    for target_name in &options.targets {
        let name = servers::TARGETS
            .iter()
            .find(|t| *t == target_name)
            .with_context(|| format!("no target {target_name} (one of {})", servers::TARGETS.join(", ")))?;
        let target = match options.provisioner.as_str() {
            "env" => servers::external(name)?,
            "testcontainers" => containers::start(name, &run, &work)?,
            _ => servers::local(name, &run, &work)?,
        };
        // The answers each binding gave for each case on this target, to compare them.
        let mut answers: BTreeMap<&str, Vec<(String, Vec<serde_json::Value>)>> = BTreeMap::new();
        for binding in &options.bindings {
            let known = KnownFailing::load(&root, binding)?;
            let mut driver = driver::Driver::start(driver_command(binding, &root)?, &target.connect(binding, 0))?;
            let place = run::Place { target: &target, binding };
            let cell = cells.entry((binding.clone(), target.name.to_owned())).or_default();
            for (index, case) in selected.iter().enumerate() {
                if !case.targets.is_empty() && !case.targets.iter().any(|t| t == target.name) {
                    let why = format!("applies to {} only", case.targets.join(", "));
                    cell.record(&case.id, Verdict::Skipped(why));
                    continue;
                }
                let prefix = format!("cf-{run}-{binding}-{index}-");
                let outcome = run::run(&mut driver, &place, case, prefix);
                answers.entry(case.id.as_str()).or_default().push((binding.clone(), outcome.answers));
                let verdict = match (outcome.failure, known.reason(&case.id, target.name)) {
                    (None, None) => Verdict::Passed,
                    (Some(failure), Some(reason)) => Verdict::KnownFailing { failure, reason: reason.to_owned() },
                    (Some(failure), None) => Verdict::Failed(format!("{failure} [checks {}]", case.checks)),
                    (None, Some(reason)) => Verdict::Failed(format!(
                        "listed as known-failing ({reason}) but passes: remove it from the list"
                    )),
                };
                cell.record(&case.id, verdict);
            }
        }
        // Every binding must answer every case alike (they already matched the case; an
        // expectation may leave things open that bindings must still agree on).
        for (case, by_binding) in &answers {
            let Some((first, first_answers)) = by_binding.first() else { continue };
            for (binding, answers) in &by_binding[1..] {
                let differs =
                    (0..answers.len().max(first_answers.len())).find(|&i| answers.get(i) != first_answers.get(i));
                if let Some(step) = differs {
                    let show =
                        |a: &[serde_json::Value]| a.get(step).map_or_else(|| "nothing".to_owned(), ToString::to_string);
                    let why = format!(
                        "answer {} differs from {first}'s: {binding} said {}, {first} said {}",
                        step + 1,
                        show(answers),
                        show(first_answers)
                    );
                    cells
                        .entry((binding.clone(), target.name.to_owned()))
                        .or_default()
                        .record(case, Verdict::Failed(why));
                }
            }
        }
        println!("conformance: {} done", target.name);
    }
    let report = report::Report {
        bindings: options.bindings.clone(),
        cells,
        cases: selected.len(),
        provisioner: options.provisioner.clone(),
    };
    report.print();
    if let Some(path) = &options.junit {
        std::fs::write(path, report.junit()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &options.results {
        anyhow::ensure!(options.cases.is_empty(), "--results is written from the whole matrix only");
        std::fs::write(path, report.markdown(&all)).with_context(|| format!("writing {}", path.display()))?;
    }
    if report.green() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("conformance: the servers' logs are kept in {}", work.display());
    }
    Ok(report.green())
}
