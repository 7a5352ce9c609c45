//! The build scripts of the crates that embed eBPF objects (the forwarder
//! its two programs, the lab its benchmark helpers): build the XDP programs
//! (nightly, bpfel-unknown-none, bpf-linker) into OUT_DIR.
use anyhow::{Context as _, anyhow};

/// Builds every program of the `xdp-forwarder-ebpf` crate into OUT_DIR.
pub fn build_ebpf() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "xdp-forwarder-ebpf")
        .ok_or_else(|| anyhow!("xdp-forwarder-ebpf is not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    if which_bpf_linker().is_none() {
        println!(
            "cargo:warning=bpf-linker is not on PATH: run `cargo xtask setup` first (it installs bpf-linker and nightly rust-src)"
        );
    }
    share_ebpf_target_dir(metadata.target_directory.as_std_path(), ebpf.name.as_str())?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the XDP programs failed; `cargo xtask setup` installs what that needs")?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("no OUT_DIR"))?;
    for bin in &ebpf.targets {
        if bin.is_bin() {
            strip_dwarf(&std::path::Path::new(&out_dir).join(bin.name.as_str()))?;
        }
    }
    Ok(())
}

/// Points aya-build's target dir for `package` (it builds into
/// `OUT_DIR/aya-build/target/PACKAGE`) at one shared per CPU architecture:
/// `TARGET_DIR/ebpf/ARCH`. Every crate that embeds the programs, in every
/// profile, then builds them once per architecture instead of once per
/// OUT_DIR (six nightly build-std builds in `cargo xtask test` became two).
/// The architecture stays in the key because aya-build passes it to the
/// programs as `bpf_target_arch`. Cargo's lock on that directory serialises
/// two build scripts that reach it at once; the second finds it fresh.
fn share_ebpf_target_dir(target_dir: &std::path::Path, package: &str) -> anyhow::Result<()> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").context("no CARGO_CFG_TARGET_ARCH")?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("no OUT_DIR"))?;
    let shared = target_dir.join("ebpf").join(arch);
    let parent = std::path::Path::new(&out_dir).join("aya-build/target");
    let link = parent.join(package);
    std::fs::create_dir_all(&shared)
        .and_then(|()| std::fs::create_dir_all(&parent))
        .with_context(|| format!("cannot create {} or {}", shared.display(), parent.display()))?;
    if std::fs::read_link(&link).is_ok_and(|to| to == shared) {
        return Ok(());
    }
    // A directory of its own from an earlier build of this OUT_DIR.
    if link.is_dir() && !link.is_symlink() {
        std::fs::remove_dir_all(&link)
    } else {
        std::fs::remove_file(&link).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
    }
    .with_context(|| format!("cannot replace {}", link.display()))?;
    std::os::unix::fs::symlink(&shared, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), shared.display()))
}

/// Drops the DWARF sections of an eBPF object, in place. bpf-linker needs
/// the DWARF to write the BTF, but no loader reads it afterwards (libbpf and
/// aya read `.BTF` and `.BTF.ext`, which stay): about 60 KB of each object
/// the product embeds (docs/size.md).
fn strip_dwarf(path: &std::path::Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut elf = object::build::elf::Builder::read(&*data)
        .with_context(|| format!("parsing {}", path.display()))?;
    for section in elf.sections.iter_mut() {
        let name = section.name.as_slice();
        if [&b".debug_"[..], b".rel.debug_", b".rela.debug_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            section.delete = true;
        }
    }
    // bpf-linker keeps section names in the symbol string table; the
    // writer wants a section name table of its own.
    if !elf
        .sections
        .iter()
        .any(|s| matches!(s.data, object::build::elf::SectionData::SectionString))
    {
        let names = elf.sections.add();
        names.name = b".shstrtab".to_vec().into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = object::build::elf::SectionData::SectionString;
    }
    let mut out = Vec::new();
    elf.write(&mut out)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bpf-linker"))
        .find(|p| p.is_file())
}
