//! `cargo xtask deb`: lintian finds nothing but the overrides the README
//! explains; the package depends on nothing (its binary is static); dpkg
//! installs it into an empty throw-away root, the installed binary runs,
//! and removing it leaves no file behind.

use std::{path::Path, process::Command};

use xdp_forwarder_lab::elf::{EM_X86_64, Elf};

fn run(cmd: &str, args: &[&str]) -> String {
    xdp_forwarder_lab::run(cmd, args).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn deb_installs_runs_and_removes_cleanly() {
    xdp_forwarder_lab::require_root("dpkg installs into a throw-away root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["xtask", "deb"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let built = String::from_utf8_lossy(&out.stdout);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo xtask deb failed: {progress}");
    // Only the package's path on stdout: `dpkg -i "$(cargo xtask deb)"`;
    // on stderr a progress line, not the output of the steps (cargo's,
    // aya-build's eBPF build passed through as cargo warnings: a hundred
    // lines from scratch; dpkg-deb's).
    assert_eq!(built.lines().count(), 1, "stdout: {built}");
    for step in [
        "Compiling",
        "Finished",
        "warning: xdp-forwarder",
        "dpkg-deb",
    ] {
        assert!(!progress.contains(step), "{step:?} on stderr: {progress}");
    }
    let deb = built.trim_end().to_owned();
    assert!(
        deb.ends_with("_amd64.deb") && Path::new(&deb).is_file(),
        "{deb}"
    );

    let info = run("dpkg-deb", &["--info", &deb]);
    for field in ["Package: xdp-forwarder", "Architecture: amd64"] {
        assert!(info.contains(field), "{field}: {info}");
    }
    // The binary is static: nothing to depend on, not even libc6.
    for field in ["Depends:", "Pre-Depends:", "Recommends:"] {
        assert!(!info.contains(field), "{field} in: {info}");
    }
    let lintian = Command::new("lintian")
        .args(["--tag-display-limit", "0", &deb])
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&lintian.stdout);
    assert!(
        lintian.status.success() && tags.lines().all(|l| l.trim().is_empty()),
        "lintian: {tags}{}",
        String::from_utf8_lossy(&lintian.stderr)
    );

    let fake =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpkg-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fake);
    for dir in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(fake.join("var/lib/dpkg").join(dir)).unwrap();
    }
    std::fs::write(fake.join("var/lib/dpkg/status"), "").unwrap();
    let r = fake.to_str().unwrap();
    // An empty root (no package at all, libc6 neither): dpkg would refuse
    // a package that depended on one.
    run("dpkg", &["--root", r, "-i", &deb]);
    let exe = fake.join("usr/bin/xdp-forwarder");
    assert_eq!(
        Elf::read(&exe).unwrap(),
        Elf::static_executable(EM_X86_64),
        "{} is not the static x86_64 binary",
        exe.display()
    );
    let version = run(exe.to_str().unwrap(), &["--version"]);
    assert!(version.starts_with("xdp-forwarder "), "{version}");
    let help = run(
        fake.join("usr/bin/set-router-iface").to_str().unwrap(),
        &["--help"],
    );
    assert!(help.starts_with("Point the pinned router_iface"), "{help}");
    assert!(fake.join("usr/share/man/man8/xdp-forwarder.8.gz").is_file());
    assert!(fake.join("usr/lib/xdp/prog_physical.o").is_file());
    // What the unit and the messages point at is there; the unit and the
    // mdev hook are installed where their systems look, and not enabled.
    for file in [
        "usr/share/doc/xdp-forwarder/net-vm.md",
        "usr/share/doc/xdp-forwarder/architecture.md",
        "usr/share/doc/xdp-forwarder/status.md",
        "usr/lib/systemd/system/xdp-forwarder.service",
        "usr/lib/xdp-forwarder/mdev/iface",
        "usr/lib/xdp-forwarder/mdev/coldplug",
    ] {
        assert!(fake.join(file).is_file(), "{file}");
    }
    assert!(
        !fake.join("etc").exists(),
        "nothing enabled (no link in /etc/systemd, no mdev.conf)"
    );

    run("dpkg", &["--root", r, "--purge", "xdp-forwarder"]);
    assert!(!fake.join("usr").exists(), "files left after removal");
    std::fs::remove_dir_all(&fake).unwrap();
}
