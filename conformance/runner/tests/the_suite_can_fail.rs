//! The suite catches a binding that breaks the contract: the Rust driver, made deliberately
//! wrong, fails the cases that check what it breaks, and the run fails. (The driver and the
//! server are the binaries beside the runner: `scripts/test` builds every binary first, with
//! `cargo build --workspace --bins`, since `cargo test` links only the runner's.)

use std::process::Command;

/// Runs the runner on the embedded target (no services needed) with the driver's fault on.
fn run_with_fault(fault: &str, cases: &str) -> (bool, String) {
    run_on("embedded", fault, cases)
}

fn run_on(target: &str, fault: &str, cases: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["--bindings", "rust", "--targets", target, "--cases", cases])
        .env("FLIPBOOK_CONFORMANCE_FAULT", fault)
        .output()
        .expect("run the runner");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The run fails, and so does each of `caught`.
fn assert_caught(fault: &str, cases: &str, caught: &[&str]) {
    let (passed, report) = run_with_fault(fault, cases);
    assert!(!passed, "{fault}: the run passed:\n{report}");
    for case in caught {
        assert!(report.contains(&format!("FAILED rust × embedded × {case}")), "{fault}: {case} not caught:\n{report}");
    }
}

#[test]
fn a_driver_that_ignores_expected_versions_is_caught() {
    let caught = ["appending/no_state_succeeds_once", "appending/a_stale_expectation_conflicts_and_stores_nothing"];
    assert_caught("ignore-expected", "appending/", &caught);
}

#[test]
fn a_driver_that_resends_with_new_event_ids_is_caught() {
    assert_caught("new-ids", "idempotency/", &["idempotency/a_resent_append_returns_the_original_result"]);
}

/// Through the server on SQLite (no services needed either): the runner's proxy loses the
/// answer of an append, which the binding must re-send, with the same event ids.
#[test]
fn a_driver_that_does_not_resend_a_lost_answer_or_resends_it_with_new_ids_is_caught() {
    let case = "faults/an_answer_lost_in_the_network_is_recovered_by_resending";
    for fault in ["send-once", "new-ids"] {
        let (passed, report) = run_on("sqlite", fault, case);
        assert!(!passed, "{fault}: the run passed:\n{report}");
        assert!(report.contains(&format!("FAILED rust × sqlite × {case}")), "{fault}: not caught:\n{report}");
    }
    let (passed, report) = run_on("sqlite", "", case);
    assert!(passed, "{report}");
}

#[test]
fn a_driver_that_drops_a_delivered_event_is_caught() {
    let caught = [
        "subscriptions/a_subscription_from_the_beginning_delivers_stored_events_in_order",
        "subscriptions/an_open_subscription_delivers_events_as_they_are_appended",
    ];
    assert_caught("drop-delivered", "subscriptions/", &caught);
}

#[test]
fn the_right_driver_passes_the_same_cases() {
    let (passed, report) = run_with_fault("", "appending/,idempotency/,subscriptions/");
    assert!(passed, "{report}");
}

/// Without a Docker engine the testcontainers provisioner fails with one line, and does not run
/// the cases some other way.
#[test]
fn the_testcontainers_provisioner_without_docker_fails_in_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["--provisioner", "testcontainers", "--bindings", "rust", "--targets", "postgres"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run the runner");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs a running Docker engine"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("passed"), "no case ran");
}
