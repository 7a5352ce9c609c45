//! `cargo xtask dist --out DIR`: what a distribution's package recipe
//! fetches. Both binaries static and for the right CPU, the x86_64 one run
//! here and the aarch64 one under user-mode emulation (qemu-aarch64-static),
//! the objects eBPF and the same as the aarch64 binary's, and SHA256SUMS
//! covering every file, matching.

use std::{collections::BTreeSet, path::Path, process::Command};

use xdp_forwarder_lab::elf::{EM_AARCH64, EM_BPF, EM_X86_64, Elf, sections};

fn run(cmd: &str, args: &[&str]) -> String {
    xdp_forwarder_lab::run(cmd, args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every file under `dir`, relative to `root`.
fn files_under(root: &Path, dir: &Path, into: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, into);
        } else {
            into.insert(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

#[test]
fn dist_holds_both_static_binaries_the_objects_and_their_sums() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let listed = xdp_forwarder_lab::xtask(&["dist", "--out", out.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e:#}"));

    let x86 = out.join("x86_64-unknown-linux-musl/xdp-forwarder");
    let arm = out.join("aarch64-unknown-linux-musl/xdp-forwarder");
    for (exe, machine) in [(&x86, EM_X86_64), (&arm, EM_AARCH64)] {
        assert_eq!(
            Elf::read(exe).unwrap(),
            Elf::static_executable(machine),
            "{} is not a static binary for machine {machine}",
            exe.display()
        );
        let file = run("file", &["-b", exe.to_str().unwrap()]);
        assert!(file.contains("static"), "{}: {file}", exe.display());
    }

    // Both run, and say the same.
    let version = run(x86.to_str().unwrap(), &["--version"]);
    assert!(version.starts_with("xdp-forwarder "), "{version}");
    let emulated = Command::new("qemu-aarch64-static")
        .arg(&arm)
        .arg("--version")
        .output()
        .expect("qemu-aarch64-static (qemu-user-static) is installed by `cargo xtask setup`");
    assert!(
        emulated.status.success(),
        "{}",
        String::from_utf8_lossy(&emulated.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&emulated.stdout), version);

    // The objects are eBPF, and the aarch64 binary embeds the same
    // programs: every section the same but the BTF, whose line info names
    // aya-ebpf-bindings' helpers.rs under src/x86_64/ or src/aarch64/
    // (aya-build passes the target's arch to the eBPF build).
    let from_arm = out.with_extension("arm-objects");
    let _ = std::fs::remove_dir_all(&from_arm);
    run(
        "qemu-aarch64-static",
        &[
            arm.to_str().unwrap(),
            "export-objects",
            from_arm.to_str().unwrap(),
        ],
    );
    for obj in [
        "objects/prog_physical.o",
        "objects/prog_router.o",
        "objects/libbpf-1.1/prog_physical.o",
        "objects/libbpf-1.1/prog_router.o",
    ] {
        assert_eq!(Elf::read(&out.join(obj)).unwrap().machine, EM_BPF, "{obj}");
    }
    for obj in ["prog_physical.o", "prog_router.o"] {
        let x86 = sections(&out.join("objects").join(obj)).unwrap();
        let arm = sections(&from_arm.join(obj)).unwrap();
        let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&x86), names(&arm), "{obj}");
        assert!(names(&x86).iter().any(|n| n == "xdp"), "{obj}");
        for ((name, x), (_, a)) in x86.iter().zip(&arm) {
            if !name.contains(".BTF") {
                assert!(
                    x == a,
                    "{obj}: section {name} differs in the aarch64 binary"
                );
            }
        }
    }
    std::fs::remove_dir_all(&from_arm).unwrap();

    // SHA256SUMS names every other file, and each sum matches.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let summed: BTreeSet<String> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("sha256sum's format").1.to_owned())
        .collect();
    let mut present = BTreeSet::new();
    files_under(&out, &out, &mut present);
    present.remove("SHA256SUMS");
    assert_eq!(summed, present);
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(listed.lines().count(), present.len() + 1, "{listed}");
    std::fs::remove_dir_all(&out).unwrap();
}
