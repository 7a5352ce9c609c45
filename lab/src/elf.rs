//! What an executable we ship is, read from its ELF headers: the CPU it is
//! for and whether it needs an interpreter (a dynamic loader, hence a C
//! library on the machine). The install, package and dist tests check
//! that the binaries are static.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use object::{
    Endianness, Object as _, ObjectSection as _,
    read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _},
};

/// `e_machine` of x86-64 executables.
pub const EM_X86_64: u16 = object::elf::EM_X86_64;
/// `e_machine` of AArch64 executables.
pub const EM_AARCH64: u16 = object::elf::EM_AARCH64;
/// `e_machine` of eBPF objects.
pub const EM_BPF: u16 = object::elf::EM_BPF;

/// What the headers of a 64-bit ELF file say.
#[derive(Debug, PartialEq, Eq)]
pub struct Elf {
    /// `e_machine` ([`EM_X86_64`], [`EM_AARCH64`], [`EM_BPF`], …).
    pub machine: u16,
    /// The path in `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`): `None`
    /// for a static executable, which the kernel runs with nothing else.
    pub interpreter: Option<PathBuf>,
}

impl Elf {
    /// What a static executable for `machine` reads as: no interpreter.
    pub const fn static_executable(machine: u16) -> Self {
        Self {
            machine,
            interpreter: None,
        }
    }

    /// Reads `path`'s ELF header and program headers. Errors name the file:
    /// not a 64-bit ELF file, headers out of its bounds.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Whether `bytes` start like an ELF file (scripts and data do not).
    pub fn is_elf(bytes: &[u8]) -> bool {
        bytes.starts_with(&object::elf::ELFMAG)
    }

    pub(crate) fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let file = ElfFile64::<Endianness>::parse(bytes).context("not a 64-bit ELF file")?;
        let endian = file.endian();
        let mut interpreter = None;
        for header in file.elf_program_headers() {
            if let Some(path) = header
                .interpreter(endian, bytes)
                .context("PT_INTERP points past the end of the file")?
            {
                let path = path.split(|&b| b == 0).next().unwrap_or_default();
                interpreter = Some(PathBuf::from(String::from_utf8_lossy(path).into_owned()));
            }
        }
        Ok(Self {
            machine: file.elf_header().e_machine(endian),
            interpreter,
        })
    }
}

/// The libraries the ELF file at `path` links (its `DT_NEEDED` entries,
/// sonames such as `libc.so.6`), in order; empty for a static one. The
/// Wi-Fi lab gathers its Debian programs' libraries with it.
pub fn needed(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ElfFile64::<Endianness>::parse(&*bytes)
        .with_context(|| format!("{}: not a 64-bit ELF file", path.display()))?;
    let endian = file.endian();
    let sections = file.elf_section_table();
    let bad = || format!("{}: a bad dynamic section", path.display());
    let Some((dynamic, link)) = sections.dynamic(endian, &*bytes).with_context(bad)? else {
        return Ok(Vec::new());
    };
    let strings = sections.strings(endian, &*bytes, link).with_context(bad)?;
    dynamic
        .iter()
        .filter(|d| d.d_tag(endian) == object::elf::DT_NEEDED)
        .map(|d| {
            let name = d.string(endian, strings).with_context(bad)?;
            Ok(String::from_utf8_lossy(name).into_owned())
        })
        .collect()
}

/// Each section of the ELF file at `path`: its name and contents (empty for
/// SHT_NOBITS), in header order. For comparing eBPF objects section by
/// section.
pub fn sections(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*bytes).with_context(|| format!("{}", path.display()))?;
    file.sections()
        .map(|s| Ok((s.name()?.to_owned(), s.data()?.to_vec())))
        .collect::<object::Result<_>>()
        .with_context(|| format!("{}: a section out of its bounds", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn a_dynamically_linked_executable_names_its_interpreter() {
        // This test binary is built for the host's C library (glibc).
        let me = Elf::read(&std::env::current_exe().unwrap()).unwrap();
        assert!(me.interpreter.is_some(), "{me:?}");
        assert_eq!(me.machine, EM_X86_64);
    }

    #[test]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn a_dynamic_executable_lists_the_libraries_it_needs() {
        let me = needed(&std::env::current_exe().unwrap()).unwrap();
        assert!(me.iter().any(|l| l == "libc.so.6"), "{me:?}");
        // glibc's loader needs nothing.
        let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
        if loader.exists() {
            assert_eq!(needed(loader).unwrap(), Vec::<String>::new());
        }
    }

    #[test]
    fn what_is_not_elf_is_refused() {
        assert!(Elf::parse(b"#!/bin/sh\n").is_err());
        let mut truncated = b"\x7fELF\x02\x01".to_vec();
        truncated.resize(64, 0);
        truncated[0x38] = 1; // one program header, past the end
        truncated[0x20] = 0xff;
        assert!(Elf::parse(&truncated).is_err());
    }
}
