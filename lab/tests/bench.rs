//! A smoke run of the benchmark's generator probe and of one tc cell (a
//! few seconds): the generator that needs no live-frame test run works on
//! this kernel, and the bench says which generator it uses.

use std::process::Command;

#[test]
fn the_generator_probe_finds_a_working_generator_without_live_frames() {
    xdp_forwarder_lab::require_root("the bench builds a namespace and loads eBPF programs");
    let out = Command::new(env!("CARGO_BIN_EXE_xdp-forwarder-lab"))
        .args(["bench", "--quick", "--runs", "1", "--only"])
        .arg("tc, NIC → router, 64 B, generator alone")
        .output()
        .expect("run xdp-forwarder-lab");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row {name:?} in:\n{stdout}"))
            .to_owned()
    };
    // The tc clone generator: a rate, not "does not work here".
    let clone = row("tc clone test run (bpf_clone_redirect × 64)");
    let mpps: f64 = clone
        .split('|')
        .nth(2)
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("the tc clone generator does not work: {clone}\n{stderr}"));
    assert!(mpps > 0.0, "{clone}");
    assert!(
        stderr.contains("tc part: generator "),
        "the bench does not say which generator it uses:\n{stderr}"
    );
    // Every frame the generator sent reached the sink.
    let alone = stdout
        .lines()
        .find(|l| l.contains("| generator alone |"))
        .unwrap_or_else(|| panic!("no generator-alone row in:\n{stdout}"));
    assert!(alone.contains("| 100% |"), "{alone}");
}
