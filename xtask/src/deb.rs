//! `cargo xtask deb`: a Debian package with the `install` layout under
//! /usr, built with dpkg-deb from a generated control file. Prints its path.
//! The binary is the static one (`install` ships it): the package depends
//! on nothing, not even libc6.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{install, run_cli::target_dir, status_to_stderr};

const PACKAGE: &str = "xdp-forwarder";
/// Debian revision of this packaging.
const REVISION: &str = "1";

pub fn run() -> anyhow::Result<PathBuf> {
    let target = target_dir();
    let stage = target.join("deb").join(PACKAGE);
    let _ = fs::remove_dir_all(&stage);
    let files = install::run(Some(&stage), Path::new("/usr"))?;

    // Debian wants manual pages compressed, and a copyright and changelog.
    for page in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "8"))
    {
        gzip(page)?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let doc = stage.join("usr/share/doc").join(PACKAGE);
    fs::create_dir_all(&doc)?;
    fs::write(doc.join("copyright"), COPYRIGHT)?;
    let changelog = doc.join("changelog.Debian");
    fs::write(
        &changelog,
        format!(
            "{PACKAGE} ({version}-{REVISION}) unstable; urgency=medium\n\n  \
             * Built by `cargo xtask deb`.\n\n -- {MAINTAINER}  Thu, 26 Nov 2026 00:00:00 +0000\n"
        ),
    )?;
    gzip(&changelog)?;

    // What lintian rightly flags but is right for this package (README:
    // "Install" lists each with its reason).
    let overrides = stage.join("usr/share/lintian/overrides");
    fs::create_dir_all(&overrides)?;
    fs::write(overrides.join(PACKAGE), LINTIAN_OVERRIDES)?;

    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    let installed_kb = du_kb(&stage.join("usr"))?;
    fs::write(
        debian.join("control"),
        format!(
            "Package: {PACKAGE}\n\
             Version: {version}-{REVISION}\n\
             Section: net\n\
             Priority: optional\n\
             Architecture: amd64\n\
             Maintainer: {MAINTAINER}\n\
             Installed-Size: {installed_kb}\n\
             Homepage: https://github.com/spectrum-os/xdp-forwarder\n\
             Description: XDP data plane between physical NICs and one router interface\n \
             A net-vm owns the physical NICs; xdp-forwarder tags every frame from\n \
             NIC K with an 802.1Q VLAN whose VID names K and hands it to the router\n \
             interface, and sends every frame from the router, untagged, out of the\n \
             NIC its VID names, at XDP speed. It attaches, detaches and reports\n \
             the programs, and follows hot-plugged interfaces as a daemon.\n"
        ),
    )?;
    let md5 = Command::new("sh")
        .arg("-c")
        .arg("find usr -type f -print0 | sort -z | xargs -0 md5sum")
        .current_dir(&stage)
        .output()?;
    fs::write(debian.join("md5sums"), md5.stdout)?;

    let deb = target
        .join("deb")
        .join(format!("{PACKAGE}_{version}-{REVISION}_amd64.deb"));
    status_to_stderr(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&stage)
            .arg(&deb),
    )
    .context("dpkg-deb failed")?;
    Ok(deb)
}

/// The eBPF objects are for the kernel's BPF machine, not the CPU; the
/// binary is a static-pie executable, which lintian takes for a shared
/// library that lacks its NEEDED entries (it has none by design: nothing
/// to load); the changelog is ours, not an upload to Debian that could
/// close bugs.
const LINTIAN_OVERRIDES: &str = "\
xdp-forwarder: shared-library-lacks-prerequisites [usr/bin/xdp-forwarder]
xdp-forwarder: binary-from-other-architecture [usr/lib/xdp/prog_physical.o]
xdp-forwarder: binary-from-other-architecture [usr/lib/xdp/prog_router.o]
xdp-forwarder: initial-upload-closes-no-bugs [usr/share/doc/xdp-forwarder/changelog.Debian.gz:1]
";

const MAINTAINER: &str = "xdp-forwarder developers <xdp-forwarder@spectrum-os.org>";

const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: xdp-forwarder

Files: *
Copyright: 2026 the xdp-forwarder developers
License: MIT or Apache-2.0
 The programs are dual-licensed under the MIT license or the Apache License,
 Version 2.0, at your option. On Debian systems the Apache License is in
 /usr/share/common-licenses/Apache-2.0. The MIT license:
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
";

/// `gzip -9n FILE` (no name or timestamp: reproducible).
fn gzip(path: &Path) -> anyhow::Result<()> {
    status_to_stderr(Command::new("gzip").args(["-9nf"]).arg(path))
}

fn du_kb(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("du").args(["-sk"]).arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du")
}
