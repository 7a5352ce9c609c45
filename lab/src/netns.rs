//! Named network namespaces the lab creates, removed when dropped (also
//! when a test fails). Nothing here touches a namespace it did not create.

use crate::netns as ns;
use anyhow::bail;

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace holding only `lo` (up), with IPv6 off (no
    /// autoconfiguration chatter in the counters). Refuses an existing name.
    pub fn add(name: &str) -> anyhow::Result<Self> {
        if ns::list()?.iter().any(|n| n == name) {
            bail!(
                "network namespace {name} exists already: a previous lab run left it? \
                 (`ip netns del {name}` if it is the lab's)"
            );
        }
        ns::ip(&["netns", "add", name])?;
        let me = Self {
            name: name.to_owned(),
        };
        me.ip(&["link", "set", "lo", "up"])?;
        for knob in ["all", "default"] {
            me.exec(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{knob}.disable_ipv6=1")],
            )?;
        }
        Ok(me)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ns::ip(&all)
    }

    /// `ip netns exec NAME CMD ARGS`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
        ns::exec(&self.name, cmd, args)
    }

    /// Runs `f` on a thread inside this namespace (sockets it opens stay here).
    pub fn within<T: Send>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        ns::within(&self.name, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ns::ip(&["netns", "del", &self.name]);
    }
}
