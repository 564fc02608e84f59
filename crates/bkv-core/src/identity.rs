//! Who is on the other end of a mutual-TLS connection: roles carried in certificates.
//!
//! The cluster CA issues node certificates with the URI SAN `bkv://node/<id>` and admin
//! certificates with `bkv://admin/<name>`. The node's listeners accept a connection by the
//! role its certificate names, so a stolen client certificate of one kind is no use on
//! another listener.

use std::fmt;

/// URI scheme and authority prefix of role SANs.
pub const ROLE_URI_PREFIX: &str = "bkv://";

/// The role a certificate grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A vault node, by node id.
    Node(u64),
    /// An operator, by name.
    Admin(String),
}

impl Role {
    /// The URI SAN that grants this role.
    pub fn uri(&self) -> String {
        match self {
            Self::Node(id) => format!("{ROLE_URI_PREFIX}node/{id}"),
            Self::Admin(name) => format!("{ROLE_URI_PREFIX}admin/{name}"),
        }
    }

    /// Parses a URI SAN; `None` if it names no bkv role.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(ROLE_URI_PREFIX)?;
        let (kind, name) = rest.split_once('/')?;
        match kind {
            "node" => name
                .parse::<u64>()
                .ok()
                .filter(|id| *id != 0)
                .map(Self::Node),
            "admin" if valid_name(name) => Some(Self::Admin(name.to_string())),
            _ => None,
        }
    }

    /// Whether this is a node certificate.
    pub fn is_node(&self) -> bool {
        matches!(self, Self::Node(_))
    }

    /// Whether this is an admin certificate.
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin(_))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node {id}"),
            Self::Admin(name) => write!(f, "admin {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_uri() {
        for role in [
            Role::Node(1),
            Role::Node(u64::MAX),
            Role::Admin("ops-1".into()),
        ] {
            assert_eq!(Role::from_uri(&role.uri()), Some(role));
        }
    }

    #[test]
    fn anything_else_names_no_role() {
        for uri in [
            "",
            "bkv://",
            "bkv://node/",
            "bkv://node/0",
            "bkv://node/-1",
            "bkv://node/1x",
            "bkv://admin/",
            "bkv://admin/a b",
            "bkv://client/1",
            "https://node/1",
            "spiffe://bkv/node/1",
        ] {
            assert_eq!(Role::from_uri(uri), None, "{uri}");
        }
    }
}
