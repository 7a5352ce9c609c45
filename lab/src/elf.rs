//! What an executable we ship is, read from its ELF headers: the CPU it is
//! for and whether it needs an interpreter (a dynamic loader, hence a C
//! library on the machine). The install, package and dist tests check
//! that the binaries are static.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};

/// `e_machine` of x86-64 executables.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64 executables.
pub const EM_AARCH64: u16 = 183;
/// `e_machine` of eBPF objects.
pub const EM_BPF: u16 = 247;

/// `p_type` of the program header naming the interpreter.
const PT_INTERP: u32 = 3;

/// What the headers of a 64-bit little-endian ELF file say.
#[derive(Debug, PartialEq, Eq)]
pub struct Elf {
    /// `e_machine` ([`EM_X86_64`], [`EM_AARCH64`], [`EM_BPF`], …).
    pub machine: u16,
    /// The path in `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`): `None`
    /// for a static executable, which the kernel runs with nothing else.
    pub interpreter: Option<PathBuf>,
}

impl Elf {
    /// Reads `path`'s ELF header and program headers. Errors name the file:
    /// not ELF, not 64-bit little-endian, headers out of its bounds.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        ensure!(
            bytes.len() >= 64 && bytes.starts_with(b"\x7fELF"),
            "not an ELF file"
        );
        ensure!(
            bytes[4] == 2 && bytes[5] == 1,
            "not a 64-bit little-endian ELF file"
        );
        let at = |offset: usize, len: usize| {
            offset
                .checked_add(len)
                .and_then(|end| bytes.get(offset..end))
                .context("an ELF header points past the end of the file")
        };
        let u16_at = |o| at(o, 2).map(|b| u16::from_le_bytes(b.try_into().unwrap()));
        let u32_at = |o| at(o, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
        let u64_at = |o| at(o, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
        let machine = u16_at(18)?;
        let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
        let mut interpreter = None;
        for i in 0..usize::from(phnum) {
            let ph = phoff.saturating_add(i * usize::from(phentsize));
            if u32_at(ph)? == PT_INTERP {
                let path = at(
                    u64_at(ph.saturating_add(8))?,
                    u64_at(ph.saturating_add(32))?,
                )?;
                let path = path.split(|&b| b == 0).next().unwrap_or_default();
                interpreter = Some(PathBuf::from(String::from_utf8_lossy(path).into_owned()));
            }
        }
        Ok(Self {
            machine,
            interpreter,
        })
    }
}

/// Each section of the ELF file at `path`: its name and contents (empty for
/// SHT_NOBITS), in header order. For comparing eBPF objects section by
/// section.
pub fn sections(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_sections(&bytes).with_context(|| format!("{}", path.display()))
}

fn parse_sections(bytes: &[u8]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    ensure!(
        bytes.len() >= 64 && bytes.starts_with(b"\x7fELF") && bytes[4] == 2 && bytes[5] == 1,
        "not a 64-bit little-endian ELF file"
    );
    let at = |offset: usize, len: usize| {
        offset
            .checked_add(len)
            .and_then(|end| bytes.get(offset..end))
            .context("an ELF header points past the end of the file")
    };
    let u16_at = |o| at(o, 2).map(|b| usize::from(u16::from_le_bytes(b.try_into().unwrap())));
    let u32_at = |o| at(o, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |o| at(o, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: usize| shoff.saturating_add(i.saturating_mul(shentsize));
    let data = |h: usize| -> anyhow::Result<&[u8]> {
        const SHT_NOBITS: u32 = 8;
        if u32_at(h.saturating_add(4))? == SHT_NOBITS {
            return Ok(&[]);
        }
        at(u64_at(h.saturating_add(24))?, u64_at(h.saturating_add(32))?)
    };
    let names = data(header(shstrndx))?;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let start = u32_at(h)? as usize;
            let name = names
                .get(start..)
                .context("a section name past its table")?;
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            Ok((
                String::from_utf8_lossy(name).into_owned(),
                data(h)?.to_vec(),
            ))
        })
        .collect()
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
    fn what_is_not_elf_is_refused() {
        assert!(Elf::parse(b"#!/bin/sh\n").is_err());
        let mut truncated = b"\x7fELF\x02\x01".to_vec();
        truncated.resize(64, 0);
        truncated[0x38] = 1; // one program header, past the end
        truncated[0x20] = 0xff;
        assert!(Elf::parse(&truncated).is_err());
    }
}
