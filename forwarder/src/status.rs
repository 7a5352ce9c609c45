//! What is attached where, for humans (`status`) and machines (`status --json`).

use serde::Serialize;
use xdp_forwarder_common::maps::ROUTER_IFACE_KEY;

use crate::{
    Mode, Result, Role,
    attach::Forwarder,
    pins::{self, MapSpec},
    ports::Ports,
};

/// `status --json` schema, version 1. Fields are only ever added.
#[derive(Debug, Serialize)]
pub struct Status {
    pub schema: u32,
    pub pin_dir: String,
    /// Where `router_iface` points, if anywhere.
    pub router_iface: Option<Iface>,
    pub ports: Vec<Port>,
}

#[derive(Debug, Serialize)]
pub struct Iface {
    pub ifindex: u32,
    /// `None` when no interface has that ifindex any more.
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Port {
    pub ifindex: u32,
    pub name: Option<String>,
    pub role: Role,
    pub mode: Mode,
    pub vid: Option<u16>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The pinned link exists and the interface runs an XDP program.
    pub attached: bool,
    pub warnings: Vec<String>,
}

impl Forwarder {
    pub async fn status(&self) -> Result<Status> {
        let pins = self.pins();
        let net = self.netdev();
        let router_iface = match pins::open_existing(&pins.router_iface(), MapSpec::ROUTER_IFACE)? {
            Some(map) => map.get(ROUTER_IFACE_KEY)?,
            None => None,
        };
        let router_link = match router_iface {
            Some(index) => net.by_index(index).await?,
            None => None,
        };
        let records = match Ports::open(pins)? {
            Some(ports) => ports.all()?,
            None => Vec::new(),
        };
        let mut ports = Vec::new();
        for (ifindex, rec) in records {
            let link = net.by_index(ifindex).await?;
            let mut warnings = Vec::new();
            match &link {
                None => warnings.push("interface is gone; `detach --all` forgets it".to_owned()),
                Some(l) if l.xdp.is_none() || !pins.link(ifindex).exists() => {
                    warnings.push("no XDP program attached any more; attach it again".to_owned())
                }
                Some(_) => {}
            }
            if let (Role::Physical, Some(nic_mtu), Some(router_mtu)) = (
                rec.role(),
                link.as_ref().and_then(|l| l.mtu),
                router_link.as_ref().and_then(|l| l.mtu),
            ) && router_mtu < nic_mtu
            {
                warnings.push(format!(
                    "router MTU {router_mtu} < this NIC's MTU {nic_mtu}: full-size frames will be dropped at the router"
                ));
            }
            ports.push(Port {
                ifindex,
                name: link.as_ref().map(|l| l.name.clone()),
                role: rec.role(),
                mode: rec.mode(),
                vid: (rec.role() == Role::Physical).then_some(rec.vid),
                mtu: link.as_ref().and_then(|l| l.mtu),
                up: link.as_ref().is_some_and(|l| l.up),
                attached: link.as_ref().is_some_and(|l| l.xdp.is_some())
                    && pins.link(ifindex).exists(),
                warnings,
            });
        }
        Ok(Status {
            schema: 1,
            pin_dir: pins.root().display().to_string(),
            router_iface: router_iface.map(|ifindex| Iface {
                ifindex,
                name: router_link.map(|l| l.name),
            }),
            ports,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pin dir:      {}", self.pin_dir)?;
        match &self.router_iface {
            Some(Iface { ifindex, name }) => writeln!(
                f,
                "router_iface: {} (ifindex {ifindex})",
                name.as_deref().unwrap_or("<gone>")
            )?,
            None => writeln!(f, "router_iface: not set (physical ports drop everything)")?,
        }
        if self.ports.is_empty() {
            return writeln!(f, "no port attached");
        }
        writeln!(
            f,
            "{:<16} {:>7}  {:<8}  {:<6}  {:>4}  {:>5}  {:<4}  ATTACHED",
            "IFACE", "IFINDEX", "ROLE", "MODE", "VID", "MTU", "LINK"
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "{:<16} {:>7}  {:<8}  {:<6}  {:>4}  {:>5}  {:<4}  {}",
                p.name.as_deref().unwrap_or("<gone>"),
                p.ifindex,
                p.role.to_string(),
                p.mode.to_string(),
                p.vid.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                p.mtu.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                if p.up { "up" } else { "down" },
                if p.attached { "yes" } else { "NO" },
            )?;
            for w in &p.warnings {
                writeln!(f, "  warning: {w}")?;
            }
        }
        Ok(())
    }
}
