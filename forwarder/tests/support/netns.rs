//! Named network namespaces (`ip netns`) that a test creates for the world
//! outside its net-vm: the testkit's, removed on drop (also when the test
//! fails), failing the test instead of returning errors.

use std::sync::atomic::{AtomicU32, Ordering};

use xdp_forwarder_testkit::netns::Netns;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NamedNetns {
    pub name: String,
    inner: Netns,
}

impl NamedNetns {
    /// A new namespace `xfwt-TAG-PID-N` holding only `lo` (up), IPv6 off.
    pub fn add(tag: &str) -> Self {
        super::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let inner = Netns::add(&format!("xfwt-{tag}-{}-{n}", std::process::id()))
            .unwrap_or_else(|e| panic!("{e:#}"));
        Self {
            name: inner.name.clone(),
            inner,
        }
    }

    /// The `ip` arguments that add a veth `name` (with `mac`) in the
    /// namespace `ip` runs in, its peer `peer` in this one.
    pub fn veth_args<'a>(
        &'a self,
        name: &'a str,
        peer: &'a str,
        mac: Option<&'a str>,
    ) -> Vec<&'a str> {
        self.inner.veth_args(name, peer, mac)
    }

    /// A veth `name` (with `mac`) in the calling thread's namespace, its
    /// peer `peer` in this one, both up.
    pub fn plug(&self, name: &str, peer: &str, mac: Option<&str>) {
        super::run("ip", &self.veth_args(name, peer, mac));
        super::run("ip", &["link", "set", name, "up"]);
        self.ip(&["link", "set", peer, "up"]);
    }

    /// A veth `name` (with `mac`) in this namespace, its peer `peer` in
    /// `other`, both up.
    pub fn link_to(&self, name: &str, mac: Option<&str>, other: &NamedNetns, peer: &str) {
        self.ip(&other.veth_args(name, peer, mac));
        self.ip(&["link", "set", name, "up"]);
        other.ip(&["link", "set", peer, "up"]);
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> String {
        self.inner.ip(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `ip netns exec NAME CMD ARGS`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> String {
        self.inner
            .exec(cmd, args)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs `f` on a thread inside this namespace; sockets it opens stay
    /// in this namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.inner
            .within(|| Ok(f()))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}
