//! Builds the XDP programs into OUT_DIR, from where `objects.rs` embeds
//! its two programs.
fn main() -> anyhow::Result<()> {
    xdp_forwarder_build::build_ebpf()
}
