//! The original net-vm hook with our exported objects, on a net-vm's first
//! boot: a fresh bpffs at /sys/fs/bpf in a private mount namespace, then
//! the hook's steps in its order (router: `xdp-loader load IFACE
//! prog_router.o -m skb -p /sys/fs/bpf`, then `set-router-iface`, promisc,
//! up; each NIC: `xdp-loader load ... prog_physical.o`, promisc, up), then
//! frames both ways with the original's VID = ifindex convention.
//!
//! Once with a libbpf ≥ 1.3 (1.6.2, what the original builds against,
//! under Debian 12's xdp-loader through LD_LIBRARY_PATH) and the default
//! objects; once with Debian 12's own libbpf 1.1 and the documented way for
//! it: `export-objects --libbpf-1.1`, which pins router_iface first.

use std::{path::Path, sync::Mutex, time::Duration};

use xdp_forwarder_lab::{
    bins_dir, libbpf,
    netns::Netns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, tagged},
};

fn require_root() {
    xdp_forwarder_lab::require_root("this test loads XDP programs and creates namespaces");
}

/// Debian's xdp-loader takes a lock file in /run (shared by every mount
/// namespace) and fails when another one starts at the same moment.
static ONE_LOADER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the hook's steps as root in `net_vm`, in the private mount
/// namespace `ip netns exec` makes (with a fresh /sys: /sys/fs/bpf is an
/// empty directory there, and the bpffs mounted on it vanishes afterwards).
fn original_hook(net_vm: &Netns, prologue: &str) -> String {
    let bins = bins_dir().unwrap();
    // `set-router-iface` is `xdp-forwarder` under that name, as installed.
    let links =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hook-bin-{}", std::process::id()));
    std::fs::create_dir_all(&links).unwrap();
    match std::os::unix::fs::symlink(bins.join("xdp-forwarder"), links.join("set-router-iface")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("cannot link set-router-iface: {e}"),
    }
    let script = format!(
        "set -ex\n\
         export PATH={links}:{bins}:$PATH\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         {prologue}\n\
         xdp-loader load rtr \"$OBJ/prog_router.o\" -m skb -p /sys/fs/bpf\n\
         set-router-iface rtr\n\
         ip link set rtr promisc on up\n\
         for nic in nicA nicB; do\n\
           xdp-loader load \"$nic\" \"$OBJ/prog_physical.o\" -m skb -p /sys/fs/bpf\n\
           ip link set \"$nic\" promisc on up\n\
         done\n",
        bins = bins.display(),
        links = links.display()
    );
    let _one = ONE_LOADER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    net_vm
        .exec("sh", &["-c", &script])
        .unwrap_or_else(|e| panic!("the original hook failed: {e:#}"))
}

fn first_boot(tag: &str, libbpf_dir: Option<&Path>, export_args: &str) {
    require_root();
    let pid = std::process::id();
    let net_vm = Netns::add(&format!("xhk{tag}-{pid}")).unwrap();
    let outside = Netns::add(&format!("xhk{tag}o-{pid}")).unwrap();
    for (name, mac) in [
        ("rtr", "02:01:00:00:0b:01"),
        ("nicA", "52:54:00:0b:00:0a"),
        ("nicB", "52:54:00:0b:00:0b"),
    ] {
        let peer = format!("{name}x");
        net_vm
            .ip(&[
                "link",
                "add",
                name,
                "address",
                mac,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                &outside.name,
            ])
            .unwrap();
        outside.ip(&["link", "set", &peer, "up"]).unwrap();
    }
    let objs = std::env::temp_dir().join(format!("xhk{tag}-objs-{pid}"));
    let lib = libbpf_dir.map_or_else(String::new, |d| {
        format!("export LD_LIBRARY_PATH={}", d.display())
    });
    let prologue = format!(
        "OBJ={objs}\nxdp-forwarder export-objects \"$OBJ\" {export_args}\n{lib}",
        objs = objs.display()
    );
    let out = original_hook(&net_vm, &prologue);
    let ifindex = |n: &str| -> u16 {
        net_vm
            .exec("cat", &[&format!("/sys/class/net/{n}/ifindex")])
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (a, b) = (ifindex("nicA"), ifindex("nicB"));
    let (ax, bx, rx) = outside
        .within(|| {
            Ok((
                RawSocket::bind("nicAx")?,
                RawSocket::bind("nicBx")?,
                RawSocket::bind("rtrx")?,
            ))
        })
        .unwrap();
    let f = frame(
        [0x02, 0, 0, 0, 0x0b, 0x99],
        [0x02, 0, 0, 0, 0x0b, 0xaa],
        &ETHERTYPE_TEST.to_be_bytes(),
        80,
    );
    let wait = Duration::from_millis(500);
    ax.send(&f).unwrap();
    assert_eq!(
        rx.drain_test_frames(wait),
        vec![tagged(&f, 0x8100, a)],
        "nicA → router, VID = ifindex\n{out}"
    );
    bx.send(&f).unwrap();
    assert_eq!(
        rx.drain_test_frames(wait),
        vec![tagged(&f, 0x8100, b)],
        "nicB → router\n{out}"
    );
    rx.send(&tagged(&f, 0x8100, b)).unwrap();
    assert_eq!(
        bx.drain_test_frames(wait),
        vec![f.clone()],
        "router → nicB, untagged\n{out}"
    );
    assert!(
        ax.drain_test_frames(wait).is_empty(),
        "nothing reached nicA"
    );
    let _ = std::fs::remove_dir_all(&objs);
}

#[test]
fn original_hook_on_a_fresh_bpffs_with_libbpf_1_6() {
    let dir = libbpf::ensure().unwrap_or_else(|e| panic!("libbpf {}: {e:#}", libbpf::VERSION));
    first_boot("new", Some(&dir), "");
}

#[test]
fn original_hook_with_debian_12s_libbpf_1_1_and_the_libbpf_1_1_export() {
    first_boot("old", None, "--libbpf-1.1");
}
