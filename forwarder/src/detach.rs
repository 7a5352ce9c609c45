//! Detaching ports: one, all, or those whose interface is gone. Each port
//! is released in an order a killed command can resume (the registry
//! record goes last), so running the same command again completes it.

use tracing::{debug, warn};

use crate::{
    Error, Result, Role,
    forwarder::Forwarder,
    lock::DaemonLock,
    pins::{self},
    ports::{PortRecord, Ports},
};

/// One port of `detach --all` / `--gone`: done, or why not.
#[derive(Debug)]
pub struct Outcome {
    pub port: Detached,
    pub error: Option<Error>,
}

/// What a detached port was.
#[derive(Clone, Debug)]
pub struct Detached {
    pub iface: String,
    pub ifindex: u32,
    pub role: Role,
    /// A NIC's VID.
    pub vid: Option<u16>,
    /// What else was done (an orphaned link removed).
    pub note: Option<String>,
}

impl Detached {
    fn from_record(name: &str, ifindex: u32, rec: &PortRecord) -> Self {
        Detached {
            iface: name.to_owned(),
            ifindex,
            role: rec.role(),
            vid: (rec.role() == Role::Physical).then_some(rec.vid),
            note: None,
        }
    }
}

impl Forwarder {
    /// Detaches `iface`, returning what it was. Our own orphaned link (pinned
    /// but unregistered) on it is removed too.
    pub async fn detach(&self, iface: &str) -> Result<Detached> {
        let (_lock, link) = self.lock_for(iface).await?;
        let not_attached = || Error::NotAttached {
            iface: iface.to_owned(),
        };
        let mut ports = Ports::open(self.pins())?;
        if let Some(ports) = &mut ports {
            self.claim_netns(ports)?;
        }
        let rec = match &ports {
            Some(p) => p.get(link.index)?,
            None => None,
        };
        let Some(rec) = rec else {
            return match self.remove_orphan(&link)? {
                Some(orphan) => Ok(Detached {
                    iface: link.name.clone(),
                    ifindex: link.index,
                    role: program_role(orphan.prog_id),
                    vid: None,
                    note: Some("its orphaned link (pinned, not registered) was removed".into()),
                }),
                // Pointed at by `set-router-iface` alone: that is what
                // there is to undo.
                None => match self.clear_router_iface_locked(Some(link.index)).await? {
                    Some(_) => Ok(Detached {
                        iface: link.name.clone(),
                        ifindex: link.index,
                        role: Role::Router,
                        vid: None,
                        note: Some(
                            "it was router_iface only (set-router-iface); router_iface is now empty"
                                .into(),
                        ),
                    }),
                    None => Err(not_attached()),
                },
            };
        };
        let mut ports = ports.expect("a record came from it");
        self.release(&mut ports, link.index, &rec, Some(&link))
            .await?;
        self.drop_state_if_empty(&ports)?;
        debug!(iface, role = %rec.role(), "detached");
        Ok(Detached::from_record(&link.name, link.index, &rec))
    }

    /// Detaches every port of this pin dir and namespace, including those
    /// whose interface is gone; goes on past a failure and reports each.
    pub async fn detach_all(&self) -> Result<Vec<Outcome>> {
        self.release_each(false).await
    }

    /// Forgets the ports whose interface is gone (`detach --gone`, and the
    /// daemon when an interface is removed): map entries, VID and pins.
    pub async fn forget_gone(&self) -> Result<Vec<Outcome>> {
        self.release_each(true).await
    }

    async fn release_each(&self, only_gone: bool) -> Result<Vec<Outcome>> {
        let _lock = self.lock()?;
        let Some(mut ports) = Ports::open(self.pins())? else {
            return Ok(Vec::new());
        };
        self.claim_netns(&mut ports)?;
        let mut done = Vec::new();
        for (ifindex, rec) in ports.all()? {
            let link = self.netdev().by_index(ifindex).await?;
            if only_gone && link.is_some() {
                continue;
            }
            let error = self
                .release(&mut ports, ifindex, &rec, link.as_ref())
                .await
                .err();
            if let Some(e) = &error {
                warn!(ifindex, error = %e, "cannot release the port");
            }
            let name = link.map_or_else(|| format!("(gone, ifindex {ifindex})"), |l| l.name);
            done.push(Outcome {
                port: Detached::from_record(&name, ifindex, &rec),
                error,
            });
        }
        self.drop_state_if_empty(&ports)?;
        Ok(done)
    }

    /// With no port left, our private pins go, and the state dir unless a
    /// daemon holds it; `router_iface` stays, as the original's did (foreign
    /// programs may share it).
    pub(crate) fn drop_state_if_empty(&self, ports: &Ports) -> Result<()> {
        let state_dir = self.pins().state_dir();
        if !ports.all()?.is_empty() || DaemonLock::is_held(&state_dir)? {
            return Ok(());
        }
        crate::redirect_errors::remove(self.pins())?;
        pins::remove_pin(&self.pins().vlan_ports())?;
        pins::remove_pin(&self.pins().tc_targets())?;
        for spec in pins::MapSpec::STATION_MAPS {
            pins::remove_pin(&self.pins().station_map(spec))?;
        }
        pins::remove_pin(&self.pins().ports())?;
        match std::fs::remove_dir(&state_dir) {
            Ok(()) => Ok(()),
            // Orphaned links are left for `detach IFACE`; `status` lists them.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::kernel(
                format!("cannot remove {}", state_dir.display()),
                e,
            )),
        }
    }
}

/// The role of our loaded program `id`, from its name.
fn program_role(id: u32) -> crate::Role {
    let router = aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
        .is_some_and(|p| {
            p.name_as_str() == Some(crate::objects::program_name(crate::Role::Router))
        });
    if router {
        crate::Role::Router
    } else {
        crate::Role::Physical
    }
}
