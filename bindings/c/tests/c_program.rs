//! `tests/smoke.c`, a C program on the C ABI, compiled against the committed header and the
//! static library, run in memory and on an embedded file.

use std::path::PathBuf;
use std::process::Command;

/// What a program linking the static library needs besides it (`--print native-static-libs`).
const SYSTEM_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// The static library cargo built with the rlib this test links: `<target>/<profile>/deps`
/// holds it (`libflipbook-<hash>.a`; `cargo build` also copies one up a level). The newest,
/// when features made several.
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("<target>/<profile>/deps");
    let newest = std::fs::read_dir(deps)
        .expect("the deps dir")
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libflipbook-") && name.ends_with(".a")
        })
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok());
    newest.map(|entry| entry.path()).expect("cargo built libflipbook-<hash>.a beside the test")
}

#[test]
fn a_c_program_appends_reads_and_closes() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let library = static_library();
    let work = std::env::temp_dir().join(format!("flipbook-c-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a work dir");
    let program = work.join("smoke");
    let compiled = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&program)
        .arg(format!("{dir}/tests/smoke.c"))
        .arg(format!("-I{dir}/include"))
        .arg(&library)
        .args(SYSTEM_LIBS)
        .status()
        .expect("cc runs");
    assert!(compiled.success(), "cc failed");
    for args in [vec![], vec![work.join("embedded.db").display().to_string()]] {
        let run = Command::new(&program).args(&args).output().expect("the program runs");
        assert!(
            run.status.success() && run.stdout == b"ok\n",
            "smoke {args:?}: {}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    std::fs::remove_dir_all(&work).ok();
}
