//! `test_vlan_push` (ebpf/src/bin/test_vlan_push.rs) on a sender's tc
//! egress: every frame the interface sends leaves with a VLAN tag in skb
//! metadata, as a VLAN device or a NIC's VLAN offload would hand it over
//! (on veth it crosses as `skb->vlan_tci`, not in the frame's bytes).

use aya::{
    Ebpf, EbpfLoader, include_bytes_aligned,
    programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions},
};

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test_vlan_push"));

/// The program attached (a tcx egress link); detached when dropped.
pub struct VlanPush {
    _ebpf: Ebpf,
}

impl VlanPush {
    /// Pushes `tpid` + `tci` as metadata on everything `iface` (of the
    /// calling thread's namespace: call it inside `NamedNetns::enter`)
    /// sends.
    pub fn attach(iface: &str, tpid: u16, tci: u16) -> Self {
        let mut ebpf = EbpfLoader::new()
            .override_global("PUSH_TPID", &tpid, true)
            .override_global("PUSH_TCI", &tci, true)
            .load(OBJECT)
            .unwrap_or_else(|e| panic!("load test_vlan_push: {e}"));
        let prog: &mut SchedClassifier = ebpf
            .program_mut("test_vlan_push")
            .expect("test_vlan_push in its object")
            .try_into()
            .expect("a classifier");
        prog.load()
            .unwrap_or_else(|e| panic!("verify test_vlan_push: {e}"));
        prog.attach_with_options(
            iface,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .unwrap_or_else(|e| panic!("attach test_vlan_push to {iface} egress: {e}"));
        Self { _ebpf: ebpf }
    }
}
