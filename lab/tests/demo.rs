//! The sandbox demo, run as a user would (with its own name prefix, so that
//! it never meets a demo of yours): it passes, reports, and leaves nothing.

use std::process::{Command, Output};

fn require_root() {
    xdp_forwarder_lab::require_root("the demo builds namespaces and loads XDP programs");
}

/// `xdp-forwarder-lab ARGS` (the demo runs the `xdp-forwarder` beside it).
fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdp-forwarder-lab"))
        .args(args)
        .output()
        .expect("run xdp-forwarder-lab")
}

fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn cli_err(args: &[&str]) -> String {
    let out = cli(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(cmd: &str, args: &[&str]) -> String {
    xdp_forwarder_lab::run(cmd, args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A name prefix of this test run (the demo allows 8 characters).
fn prefix(tag: char) -> String {
    format!("{tag}{}", std::process::id() % 10_000_000)
}

fn namespaces_of(prefix: &str) -> Vec<String> {
    run("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

fn state_dir(prefix: &str) -> std::path::PathBuf {
    format!("/run/xdp-forwarder-demo-{prefix}").into()
}

/// Removes whatever a failed test left (the demo's own clean-up is under test).
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = cli(&["demo", "--clean", "--name-prefix", &self.0]);
        for ns in namespaces_of(&self.0) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .status();
        }
    }
}

#[test]
fn demo_passes_and_removes_everything() {
    require_root();
    let p = prefix('a');
    let _guard = Leftovers(p.clone());
    let out = cli_ok(&["demo", "--nics", "3", "--name-prefix", &p]);
    for expected in [
        "VID",
        "ping ext1 → lan1",
        "ping lan3 → ext3",
        "isolation ext → lan",
        "tcp ext1 → lan1",
        "tcp lan3 → ext3",
        "forwarded",
        "result: PASS",
        "removed: 8 namespaces",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(namespaces_of(&p).is_empty(), "namespaces left behind");
    assert!(!state_dir(&p).exists(), "state dir left behind");
}

#[test]
fn demo_refuses_leftovers_and_cleans_only_its_own() {
    require_root();
    let p = prefix('b');
    let _guard = Leftovers(p.clone());
    let out = cli_ok(&[
        "demo",
        "--nics",
        "1",
        "--keep",
        "--mode",
        "tc",
        "--name-prefix",
        &p,
    ]);
    assert!(out.contains("tc mode"), "{out}");
    assert!(
        out.contains("demo --clean"),
        "--keep says how to tear down: {out}"
    );
    assert_eq!(
        namespaces_of(&p).len(),
        4,
        "kept: net-vm, router, ext1, lan1"
    );

    let err = cli_err(&["demo", "--name-prefix", &p]);
    assert!(err.contains("demo --clean"), "{err}");
    assert_eq!(
        namespaces_of(&p).len(),
        4,
        "a refused start touches nothing"
    );

    let out = cli_ok(&["demo", "--clean", "--name-prefix", &p]);
    assert!(
        out.contains(&format!("removed namespace {p}-net-vm")),
        "{out}"
    );
    assert!(namespaces_of(&p).is_empty());
    assert!(!state_dir(&p).exists());

    // A namespace with a demo name that no demo created is never touched.
    let foreign = format!("{p}-ext2");
    run("ip", &["netns", "add", &foreign]);
    let err = cli_err(&["demo", "--nics", "2", "--name-prefix", &p]);
    assert!(err.contains("no demo recorded creating them"), "{err}");
    assert!(cli_ok(&["demo", "--clean", "--name-prefix", &p]).contains("nothing to clean"));
    assert_eq!(namespaces_of(&p), [foreign.as_str()]);
    run("ip", &["netns", "del", &foreign]);
}

/// skb mode on veth cannot carry the end hosts' TCP (their GSO aggregates
/// exceed the MTU generic XDP accepts): the demo says so, row by row, with
/// the warning `attach` gave, and exits non-zero; the rest still passes.
#[test]
fn demo_reports_what_a_mode_cannot_carry() {
    require_root();
    let p = prefix('c');
    let _guard = Leftovers(p.clone());
    let out = cli(&["demo", "--nics", "1", "--mode", "skb", "--name-prefix", &p]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for expected in [
        "warning: generic XDP on veth",
        "PASS  ping ext1 → lan1",
        "PASS  udp ext → lan net 1",
        "FAIL  tcp ext1 → lan1",
        "FAIL  tcp lan1 → ext1",
        "TCP stalled",
        "result: FAIL",
        "removed: 4 namespaces",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(namespaces_of(&p).is_empty(), "namespaces left behind");
}
