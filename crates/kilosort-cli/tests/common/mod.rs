//! Running the `kilosort-rs` binary from integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

/// Runs the binary with `args`.
pub fn kilosort_rs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kilosort-rs")).args(args).output().expect("the binary runs")
}

/// Runs the binary, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = kilosort_rs(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary, asserts failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = kilosort_rs(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}
