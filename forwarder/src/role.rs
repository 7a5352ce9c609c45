//! What a port does: the two roles of the original.

/// What a port does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    /// A NIC: frames get its VID and go to the router interface.
    Physical = 0,
    /// The router-facing interface: frames lose their tag and go to the NIC
    /// the VID names.
    Router = 1,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Physical => "physical",
            Role::Router => "router",
        })
    }
}
