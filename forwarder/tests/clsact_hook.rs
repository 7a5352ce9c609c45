//! Mode tc on kernels without tcx (Linux 6.1 to 6.5): the program runs as
//! a direct-action `cls_bpf` filter on the interface's clsact ingress, which
//! has no link to pin. `XDP_FORWARDER_TC_HOOK=clsact` makes this 6.18
//! kernel take that path (the VM lab runs it on a real 6.1). What must hold
//! there as with a link: `status` reads the filter from the kernel, `attach`
//! repairs it, `--replace` swaps its program in place, `detach` removes it,
//! and TCP with every offload on crosses it.

mod support;

use support::{
    in_fresh_netns,
    mirror::{Mirror, Vm},
    run,
    world::World,
    xdp_running,
};

const CLSACT: &[(&str, &str)] = &[("XDP_FORWARDER_TC_HOOK", "clsact")];
/// Our filter's priority (`tc … pref`).
const PREF: &str = "30790";

/// Our filter on `iface`'s ingress: the id of its program, if it is there.
fn our_filter(iface: &str) -> Option<u64> {
    let out = run("tc", &["filter", "show", "dev", iface, "ingress"]);
    let line = out
        .lines()
        .find(|l| l.contains(&format!("pref {PREF}")) && l.contains("handle 0x1"))?;
    assert!(line.contains("direct-action"), "{line}");
    let id = line.split_whitespace().skip_while(|w| *w != "id").nth(1)?;
    Some(id.parse().unwrap())
}

#[test]
fn a_clsact_port_is_what_its_filter_runs_repaired_swapped_and_removed() {
    in_fresh_netns(|| {
        let w = World::new("clsact")
            .with_env(CLSACT)
            .nic("nic1")
            .router("rtr", "02:01:00:00:00:0c")
            .attached("rtr", "router", &["--mode", "tc"])
            .attached("nic1", "physical", &["--mode", "tc"]);
        let nic = w.port("nic1");
        assert_eq!(nic["hook"], "clsact", "{nic:#}");
        assert_eq!(nic["attached"], true, "{nic:#}");
        let first = our_filter("nic1").expect("our filter on nic1");
        assert_eq!(nic["prog_id"], first, "status names the filter's program");
        assert!(xdp_running().is_empty(), "no XDP program in tc mode");

        // Deleted by hand: status says so from the kernel, attach repairs.
        run(
            "tc",
            &["filter", "del", "dev", "nic1", "ingress", "pref", PREF],
        );
        let nic = w.port("nic1");
        assert_eq!(nic["attached"], false, "{nic:#}");
        assert!(
            nic["warnings"]
                .to_string()
                .contains("tc filter was deleted"),
            "{nic:#}"
        );
        w.attach("nic1", "physical", &["--mode", "tc"]);
        let repaired = our_filter("nic1").expect("the filter is back");
        assert_eq!(w.port("nic1")["attached"], true);

        // An upgrade swaps the program in place: one filter, a new program.
        w.attach("nic1", "physical", &["--vid", "7", "--replace"]);
        let swapped = our_filter("nic1").expect("still our filter");
        assert_ne!(swapped, repaired, "a new program runs");
        let nic = w.port("nic1");
        assert_eq!(
            (nic["prog_id"].as_u64(), nic["vid"].as_u64()),
            (Some(swapped), Some(7))
        );
        let filters = run("tc", &["filter", "show", "dev", "nic1", "ingress"]);
        assert_eq!(filters.matches("handle 0x1").count(), 1, "{filters}");

        // To XDP and back: the filter goes, then comes back.
        w.attach("nic1", "physical", &["--mode", "skb", "--replace"]);
        assert_eq!(our_filter("nic1"), None);
        assert!(xdp_running().contains_key("nic1"));
        w.attach("nic1", "physical", &["--mode", "tc", "--replace"]);
        assert!(our_filter("nic1").is_some());
        assert!(xdp_running().is_empty());

        w.cli_ok(&["detach", "--all"]);
        assert_eq!(our_filter("nic1"), None);
        assert_eq!(our_filter("rtr"), None);
    });
}

/// TCP from hosts with TSO/GSO, checksum offload and GRO on crosses both
/// forwarders in tc mode on the clsact hook, both ways, at full speed.
#[test]
fn tcp_bulk_crosses_tc_mode_on_the_clsact_hook_both_ways() {
    let m = Mirror::with_env("tcl", "tc", 2, CLSACT);
    for (vm, name) in [
        (Vm::Net, "nic1"),
        (Vm::Net, "router0"),
        (Vm::Router, "uplink"),
    ] {
        assert_eq!(m.port(vm, name)["hook"], "clsact", "{name}");
    }
    m.assert_tcp_both_ways("tc on clsact");
}

/// Another tool's filter at our priority (a classic-BPF `bpf` filter at
/// pref 30790 handle 1): tc mode on clsact cannot add ours, and says what
/// holds the place and the command that removes it; auto falls back to
/// XDP and says why, once; the command works, and tc attaches then.
#[test]
fn a_foreign_filter_in_our_place_is_named_with_the_command_that_removes_it() {
    in_fresh_netns(|| {
        let w = World::new("clsact-foreign").with_env(CLSACT).nic("cfor0");
        run("tc", &["qdisc", "add", "dev", "cfor0", "clsact"]);
        let foreign = [
            "filter",
            "add",
            "dev",
            "cfor0",
            "ingress",
            "pref",
            PREF,
            "handle",
            "1",
            "bpf",
            "bytecode",
            "1,6 0 0 4294967295,",
        ];
        run("tc", &foreign);
        let attach = |mode: &str| w.cli(&["attach", "cfor0", "--role", "physical", "--mode", mode]);
        let out = attach("tc");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{out:?}");
        assert!(
            err.contains("File exists (os error 17)")
                && err.contains("a bpf filter (handle 0x1)")
                && err.contains("did not add"),
            "{err}"
        );
        assert!(xdp_running().is_empty(), "nothing attached");

        // auto: tc refused, native taken; the reason says why, once.
        let out = attach("auto");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("(native mode")
                && stdout.contains("--mode auto: native")
                && stdout.matches("File exists").count() == 1,
            "{stdout}"
        );
        w.cli_ok(&["detach", "cfor0"]);

        // Native refused too (a veth's native XDP takes no 9000-byte MTU):
        // skb, each refusal said once, the mode's name once.
        w.set_mtu("cfor0", 9000);
        let out = attach("auto");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("(skb mode")
                && stdout.contains("--mode auto: skb (generic XDP")
                && stdout.matches("File exists").count() == 1
                && stdout.matches("native mode:").count() == 1
                && stdout.matches("skb").count() == 2
                && stdout.lines().count() == 1,
            "{stdout}"
        );
        w.cli_ok(&["detach", "cfor0"]);
        w.set_mtu("cfor0", 1500);

        support::run_fix(&err, "remove it first (");
        let filters = run("tc", &["filter", "show", "dev", "cfor0", "ingress"]);
        assert!(!filters.contains(&format!("pref {PREF}")), "{filters}");
        assert!(attach("tc").status.success(), "free once the fix ran");
        assert!(our_filter("cfor0").is_some());
        w.cli_ok(&["detach", "cfor0"]);
        assert_eq!(our_filter("cfor0"), None);
    });
}
