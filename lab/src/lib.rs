//! The lab beside the forwarder: what proves it where it will run. Guests
//! on Debian's kernels with virtio-net NICs ([`vm`]), the kernels and a
//! recent libbpf they need ([`debian`], [`libbpf`], [`cache`]), and the
//! traffic helpers the guests run ([`traffic`]).

pub mod cache;
pub mod debian;
pub mod libbpf;
pub mod netns;
pub mod packet;
pub mod traffic;
pub mod vm;

pub use xdp_forwarder::demo::netns::run;
