//! The suite catches a binding that breaks the contract: the Rust driver, made deliberately
//! wrong, fails the cases that check what it breaks, and the run fails.

use std::process::Command;

/// Runs the runner on the embedded target (no services needed) with the driver's fault on.
fn run_with_fault(fault: &str, cases: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["--bindings", "rust", "--targets", "embedded", "--cases", cases])
        .env("FLIPBOOK_CONFORMANCE_FAULT", fault)
        .output()
        .expect("run the runner");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_driver_that_ignores_expected_versions_is_caught() {
    let (passed, report) = run_with_fault("ignore-expected", "appending/");
    assert!(!passed, "{report}");
    for case in ["appending/no_state_succeeds_once", "appending/a_stale_expectation_conflicts_and_stores_nothing"] {
        assert!(report.contains(&format!("FAILED rust × embedded × {case}")), "{case} not caught:\n{report}");
    }
}

#[test]
fn a_driver_that_resends_with_new_event_ids_is_caught() {
    let (passed, report) = run_with_fault("new-ids", "idempotency/");
    assert!(!passed, "{report}");
    let case = "idempotency/a_resent_append_returns_the_original_result";
    assert!(report.contains(&format!("FAILED rust × embedded × {case}")), "{case} not caught:\n{report}");
}

#[test]
fn the_right_driver_passes_the_same_cases() {
    let (passed, report) = run_with_fault("", "appending/,idempotency/");
    assert!(passed, "{report}");
}
