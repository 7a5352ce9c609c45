//! `cargo xtask install` into a throw-away DESTDIR: the tree a distribution
//! expects, every manual page rendered by `man -l` without a warning, and
//! the installed binary, static, run under both its names.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use xdp_forwarder_lab::elf::{EM_X86_64, Elf};

#[test]
fn install_lays_out_the_product() {
    let dest =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dest);
    let listed = xdp_forwarder_lab::xtask(&[
        "install",
        "--prefix",
        "/usr",
        "--destdir",
        dest.to_str().unwrap(),
    ])
    .unwrap_or_else(|e| panic!("{e:#}"));
    let usr = dest.join("usr");

    let exe = usr.join("bin/xdp-forwarder");
    assert_ne!(
        std::fs::metadata(&exe).unwrap().permissions().mode() & 0o111,
        0
    );
    // Static: no interpreter, so no C library needed where it runs.
    assert_eq!(
        Elf::read(&exe).unwrap(),
        Elf::static_executable(EM_X86_64),
        "{} is not the static x86_64 binary",
        exe.display()
    );
    assert_eq!(
        std::fs::read_link(usr.join("bin/set-router-iface")).unwrap(),
        Path::new("xdp-forwarder")
    );
    for obj in ["prog_physical.o", "prog_router.o"] {
        let bytes = std::fs::read(usr.join("lib/xdp").join(obj)).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF", "{obj}");
        assert_eq!(
            u16::from_le_bytes([bytes[18], bytes[19]]),
            247,
            "{obj}: EM_BPF"
        );
    }
    let man = usr.join("share/man/man8");
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "set-router-iface.8",
            "xdp-forwarder-attach.8",
            "xdp-forwarder-detach.8",
            "xdp-forwarder-export-objects.8",
            "xdp-forwarder-inspect.8",
            "xdp-forwarder-run.8",
            "xdp-forwarder-set-router-iface.8",
            "xdp-forwarder-status.8",
            "xdp-forwarder.8",
        ]
    );
    for page in &pages {
        let out = Command::new("man")
            .args(["-l", "--warnings"])
            .arg(man.join(page))
            .env("LC_ALL", "C")
            .env("MANWIDTH", "80")
            .output()
            .expect("man (man-db) is installed by `cargo xtask setup`");
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXAMPLES",
            "FILES",
            "EXIT STATUS",
        ] {
            assert!(text.contains(section), "{page}: no {section}:\n{text}");
        }
    }
    // Option values in the synopsis; the daemon's signals; no page listed
    // that is not shipped.
    let man_text = |page: &str| {
        let out = Command::new("man")
            .args(["-l"])
            .arg(man.join(page))
            .env("LC_ALL", "C")
            .env("MANWIDTH", "200")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let attach = man_text("xdp-forwarder-attach.8");
    assert!(
        attach.contains("--role physical|router") && attach.contains("promiscuous"),
        "{attach}"
    );
    let run = man_text("xdp-forwarder-run.8");
    assert!(
        run.contains("SIGNALS") && run.contains("SIGHUP") && run.contains("bpffs"),
        "{run}"
    );
    let main = man_text("xdp-forwarder.8");
    assert!(!main.contains("xdp-forwarder-help"), "{main}");
    for (path, says) in [
        (
            "share/bash-completion/completions/xdp-forwarder",
            "complete -F _xdp__forwarder",
        ),
        (
            "share/zsh/vendor-completions/_xdp-forwarder",
            "#compdef xdp-forwarder",
        ),
        (
            "share/fish/vendor_completions.d/xdp-forwarder.fish",
            "complete -c xdp-forwarder",
        ),
    ] {
        let text = std::fs::read_to_string(usr.join(path)).unwrap();
        assert!(text.contains(says) && text.contains("attach"), "{path}");
    }
    // Bash completes every subcommand's options and values: its completion
    // function driven as bash drives it (COMP_WORDS, COMP_CWORD).
    let bash = usr.join("share/bash-completion/completions/xdp-forwarder");
    for (line, want) in [
        ("xdp-forwarder st", "status"),
        ("xdp-forwarder attach nic1 --role ", "physical router"),
        ("xdp-forwarder attach nic1 --mode ", "auto native skb tc"),
        ("xdp-forwarder detach --a", "--all"),
        (
            "xdp-forwarder status --format ",
            "text json openmetrics prometheus",
        ),
        ("xdp-forwarder run --router-policy ", "first latest"),
        ("xdp-forwarder run --log-format ", "text json"),
        ("xdp-forwarder set-router-iface --c", "--clear"),
        ("xdp-forwarder export-objects --lib", "--libbpf-1.1"),
        ("xdp-forwarder --pin-dir /p inspect --j", "--json"),
    ] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"source "$1"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=("")
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                _xdp__forwarder xdp-forwarder "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                echo "${COMPREPLY[*]}""#,
            )
            .args(["-", bash.to_str().unwrap(), line])
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            got.trim(),
            want,
            "{line:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let hook = usr.join("share/xdp-forwarder/contrib/mdev/iface");
    assert_ne!(
        std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
        0
    );
    for file in [
        "share/xdp-forwarder/contrib/systemd/xdp-forwarder.service",
        "share/xdp-forwarder/contrib/fstab",
    ] {
        assert!(usr.join(file).is_file(), "{file}");
    }
    assert!(listed.contains("bin/xdp-forwarder") && listed.contains("man8/xdp-forwarder.8"));

    // The pages the unit, the manual pages and the messages point at.
    for page in ["net-vm.md", "architecture.md", "status.md"] {
        let text = std::fs::read_to_string(usr.join("share/doc/xdp-forwarder").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with("# "), "{page}");
    }
    // The unit where systemd looks for /usr's units, naming what exists.
    let unit =
        std::fs::read_to_string(usr.join("lib/systemd/system/xdp-forwarder.service")).unwrap();
    for line in unit.lines() {
        for word in line.split_whitespace() {
            let path = word
                .trim_start_matches("Documentation=")
                .trim_start_matches("ExecStart=")
                .trim_start_matches("file://");
            if path.starts_with("/usr/") {
                assert!(dest.join(&path[1..]).exists(), "{path}, named by the unit");
            }
        }
    }
    assert!(unit.contains("file:///usr/share/doc/xdp-forwarder/net-vm.md"));
    // The mdev hook and its coldplug, where an mdev.conf rule names them.
    for script in ["iface", "coldplug"] {
        let path = usr.join("lib/xdp-forwarder/mdev").join(script);
        assert_ne!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o111,
            0,
            "{script}"
        );
    }

    // The installed binary, under both names.
    let out = Command::new(&exe).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("xdp-forwarder "));
    let out = Command::new(usr.join("bin/set-router-iface"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && help.contains("router_iface") && help.contains("<IFACE>"),
        "{help}"
    );
    std::fs::remove_dir_all(&dest).unwrap();
}
