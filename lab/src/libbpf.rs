//! A recent libbpf (what the original builds against) for running Debian
//! 12's `xdp-loader` with it through `LD_LIBRARY_PATH`: Debian 13's package
//! needs a newer glibc than Debian 12's, so it is built from the source the
//! `libbpf-sys` crate bundles (fetched by cargo from crates.io).

use std::{fs, path::PathBuf};

use anyhow::Context as _;

use crate::{cache, debian::path_str, run};

/// libbpf 1.6.2; 1.3 is the first that reuses a pinned DEVMAP declared
/// without `BPF_F_RDONLY_PROG`.
pub const VERSION: &str = "1.6.2";
const CRATE: &str = "libbpf-sys";
const CRATE_VERSION: &str = "=1.6.2";

/// The directory holding `libbpf.so.1` (built first if needed).
pub fn ensure() -> anyhow::Result<PathBuf> {
    let dir = cache::root().join(format!("libbpf-{VERSION}"));
    let done = |d: &PathBuf| d.join("libbpf.so.1").exists();
    if done(&dir) {
        return Ok(dir);
    }
    let _lock = cache::lock()?;
    if done(&dir) {
        return Ok(dir);
    }
    eprintln!("lab: building libbpf {VERSION} from the {CRATE} crate's source (once)");
    let work = cache::scratch(&format!("libbpf-{VERSION}"))?;
    // A throw-away package depending on the crate: cargo fetches it, and
    // `cargo metadata` says where its source is.
    let project = work.join("fetch");
    fs::create_dir_all(&project)?;
    fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-libbpf\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [lib]\npath = \"lib.rs\"\n[dependencies]\n{CRATE} = {{ version = \"{CRATE_VERSION}\", \
             default-features = false }}\n[workspace]\n"
        ),
    )?;
    fs::write(project.join("lib.rs"), "")?;
    let manifest = project.join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(&cargo, &["fetch", "--manifest-path", path_str(&manifest)?])?;
    let meta = run(
        &cargo,
        &[
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            path_str(&manifest)?,
        ],
    )?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("cargo metadata")?;
    let src = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == CRATE))
        .and_then(|p| p["manifest_path"].as_str())
        .map(|m| PathBuf::from(m).with_file_name("libbpf").join("src"))
        .with_context(|| format!("cargo did not fetch {CRATE}"))?;
    let obj = work.join("obj");
    run(
        "make",
        &[
            "-s",
            "-j2",
            "-C",
            path_str(&src)?,
            &format!("OBJDIR={}", obj.display()),
            "BUILD_STATIC_ONLY=",
        ],
    )
    .context("building libbpf needs make, gcc, pkg-config, libelf-dev and zlib1g-dev (`cargo xtask setup` installs them)")?;
    let out = work.join("out");
    fs::create_dir_all(&out)?;
    fs::copy(
        obj.join(format!("libbpf.so.{VERSION}")),
        out.join("libbpf.so.1"),
    )?;
    cache::commit(&out, &dir)?;
    fs::remove_dir_all(&work)?;
    Ok(dir)
}
