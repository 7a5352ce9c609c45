//! Rebuild the programs when bpf-linker changes (it is not a cargo input),
//! and tell it how to generate code (bpf-linker runs LLVM's codegen).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // Word-sized loads and stores on packet data of unknown alignment instead
    // of byte-by-byte ones: x86 and arm64 kernels accept them (the verifier
    // only insists on alignment where the CPU does), and moving the MACs
    // becomes 3 loads + 3 stores instead of 12 + 12.
    println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
}
