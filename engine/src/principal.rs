//! Who is asking: carried on every request so that policy, audit and limits
//! can be applied in one place.

use std::collections::BTreeMap;

/// The identity a query runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
    /// Free attributes used by policies (e.g. `district`).
    pub attributes: BTreeMap<String, String>,
}

impl Principal {
    /// The local administrator the command-line tools run as.
    pub fn local_admin() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "local".to_string());
        Self {
            user,
            roles: vec!["admin".into()],
            department: None,
            attributes: BTreeMap::new(),
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
