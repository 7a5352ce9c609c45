//! Network interfaces over rtnetlink: look-ups, link up, promiscuous mode,
//! and which XDP program runs where.

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use rtnetlink::{
    Handle, LinkUnspec,
    constants::RTMGRP_LINK,
    packet_core::NetlinkPayload,
    packet_route::{
        RouteNetlinkMessage,
        link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
    },
    sys::{AsyncSocket as _, SocketAddr},
};

use crate::{Error, Mode, Result};

/// What we need to know about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The kernel's carrier (IFLA_CARRIER): whether frames can pass the
    /// link below (a cable, a veth peer that is up). Read apart from `up`,
    /// the administrative flag: `ip link` shows NO-CARRIER when up without
    /// it. `true` when the kernel does not say.
    pub carrier: bool,
    pub promisc: bool,
    pub loopback: bool,
    /// The rtnetlink link kind (`veth`, `bridge`, …); `None` for a device
    /// with a driver of its own (a NIC).
    pub kind: Option<String>,
    /// The XDP program attached, if any, and in which mode.
    pub xdp: Option<(u32, Option<Mode>)>,
}

impl Interface {
    fn from_message(msg: LinkMessage) -> Self {
        let flags = msg.header.flags;
        let mut link = Interface {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            up: flags.contains(LinkFlags::Up),
            carrier: true,
            promisc: flags.contains(LinkFlags::Promisc),
            loopback: flags.contains(LinkFlags::Loopback),
            kind: None,
            xdp: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Address(addr) => link.mac = addr.try_into().ok(),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
                LinkAttribute::Carrier(c) => link.carrier = c != 0,
                LinkAttribute::Xdp(xdp) => link.xdp = xdp_state(&xdp),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

fn xdp_state(attrs: &[LinkXdp]) -> Option<(u32, Option<Mode>)> {
    let mut mode = None;
    let mut prog = None;
    for attr in attrs {
        match attr {
            LinkXdp::Attached(XdpAttached::Driver) => mode = Some(Mode::of_xdp_attached(true)),
            LinkXdp::Attached(XdpAttached::SocketBuffer) => {
                mode = Some(Mode::of_xdp_attached(false))
            }
            LinkXdp::ProgId(id) if *id != 0 => prog = Some(*id),
            _ => {}
        }
    }
    prog.map(|id| (id, mode))
}

/// An rtnetlink session in the current network namespace.
pub struct Netdev {
    handle: Handle,
}

impl Netdev {
    /// Must be called inside a tokio runtime: the connection runs as a task.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::kernel("cannot open rtnetlink", e))?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The interface called `name`.
    pub async fn by_name(&self, name: &str) -> Result<Interface> {
        let unknown = || Error::UnknownInterface(name.to_owned());
        if name.len() >= libc::IFNAMSIZ {
            return Err(Error::InterfaceNameTooLong(name.to_owned()));
        }
        if name.is_empty() || name.contains('/') {
            return Err(unknown());
        }
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(Interface::from_message(msg)),
            Ok(None) => Err(unknown()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                Err(unknown())
            }
            Err(e) => Err(netlink(format!("cannot look up interface {name}"), e)),
        }
    }

    /// The interface with `index`, `None` when there is none.
    pub async fn by_index(&self, index: u32) -> Result<Option<Interface>> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.map(Interface::from_message)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(netlink(format!("cannot look up ifindex {index}"), e)),
        }
    }

    /// Every interface in the namespace.
    pub async fn all(&self) -> Result<Vec<Interface>> {
        self.handle
            .link()
            .get()
            .execute()
            .map_ok(Interface::from_message)
            .try_collect()
            .await
            .map_err(|e| netlink("cannot list interfaces", e))
    }

    pub async fn set_up(&self, link: &Interface) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).up().build())
            .execute()
            .await
            .map_err(|e| netlink(format!("cannot bring {} up", link.name), e))
    }

    pub async fn set_promisc(&self, link: &Interface, on: bool) -> Result<()> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(link.index)
                    .promiscuous(on)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| netlink(format!("cannot set promiscuous mode on {}", link.name), e))
    }
}

/// A failed rtnetlink request, with the kernel's errno (rtnetlink's own
/// message for it shows only the echoed header).
fn netlink(context: impl Into<String>, e: rtnetlink::Error) -> Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Error::kernel(context, msg.to_io()),
        other => Error::kernel(context, other),
    }
}

/// A change to an interface: its state as the event reported it, or the
/// ifindex of one that was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Changed(Interface),
    Removed(u32),
    /// The kernel dropped events (the socket buffer overran): resynchronise.
    Overrun,
}

/// Subscribes to link events in the current network namespace. The stream
/// ends if the subscription breaks; every other message is skipped.
pub fn link_events() -> Result<impl Stream<Item = LinkEvent> + Unpin> {
    let (mut connection, _, messages) =
        rtnetlink::new_connection().map_err(|e| Error::kernel("cannot open rtnetlink", e))?;
    let socket = connection.socket_mut().socket_mut();
    // Room for bursts (hot-plug storms): an overrun loses events (and costs
    // a rescan). FORCE: the plain option is capped by net.core.rmem_max.
    let size = 16 << 20;
    if nix::sys::socket::setsockopt(&*socket, nix::sys::socket::sockopt::RcvBufForce, &size)
        .is_err()
    {
        let _ = socket.set_rx_buf_sz(size);
    }
    socket
        .bind(&SocketAddr::new(0, RTMGRP_LINK))
        .map_err(|e| Error::kernel("cannot subscribe to link events", e))?;
    tokio::spawn(connection);
    Ok(messages.filter_map(|(msg, _)| {
        std::future::ready(match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                Some(LinkEvent::Changed(Interface::from_message(l)))
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                Some(LinkEvent::Removed(l.header.index))
            }
            NetlinkPayload::Overrun(_) => Some(LinkEvent::Overrun),
            _ => None,
        })
    }))
}
