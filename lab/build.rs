//! Builds the XDP programs into OUT_DIR, from where `objects.rs` embeds
//! the benchmark's floor, generator and sink.
fn main() -> anyhow::Result<()> {
    xdp_forwarder_build::build_ebpf()
}
