//! Named network namespaces (`ip netns`) that a test creates for the world
//! outside its net-vm, removed on drop, also when the test fails.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicU32, Ordering},
};

use super::run;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    /// A new namespace `xfwt-TAG-PID-N` holding only `lo` (up), IPv6 off.
    pub fn add(tag: &str) -> Self {
        super::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("xfwt-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// The `ip` arguments that add a veth `name` (with `mac`) in the
    /// namespace `ip` runs in, its peer `peer` in this one.
    pub fn veth_args<'a>(
        &'a self,
        name: &'a str,
        peer: &'a str,
        mac: Option<&'a str>,
    ) -> Vec<&'a str> {
        let mut args = vec!["link", "add", name];
        if let Some(mac) = mac {
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", peer, "netns", &self.name]);
        args
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip netns exec NAME CMD ARGS`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `f` with the calling thread inside this namespace, then moves the
    /// thread back. Sockets opened by `f` stay in this namespace.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let home = File::open("/proc/thread-self/ns/net").expect("own netns");
        let there = File::open(format!("/run/netns/{}", self.name)).expect("named netns");
        // SAFETY: setns on the calling thread with a valid namespace fd.
        let ret = unsafe { libc::setns(there.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
        struct Back(File);
        impl Drop for Back {
            fn drop(&mut self) {
                // SAFETY: as above, back to the namespace we came from.
                let ret = unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(ret, 0, "setns back: {}", std::io::Error::last_os_error());
            }
        }
        let _back = Back(home);
        f()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
