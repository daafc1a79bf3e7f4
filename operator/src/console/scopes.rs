//! What an API token may do. Every API route declares the one scope it needs (in the route
//! table, `Access::Api`); a token holds scopes and presets (`read`, `full`) that expand to
//! scopes when checked, so a scope added later reaches existing `full`/`read` tokens.

/// One permission of the JSON API. Adding a scope is one line in [`Scope::ALL`] (and its
/// name in [`Scope::name`]); a name ending in `:read` joins the `read` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    ClientsRead,
    /// Create, suspend/resume, restart, version, plan, record.
    ClientsWrite,
    ClientsDelete,
    /// Returns a working gateway token for the client: as strong as a password.
    ClientsRotateToken,
    UsageRead,
    AuditRead,
    /// Prices, settings, subscriptions, invoices, exports.
    BillingRead,
    /// Prices, settings, subscription actions, invoice runs, payments, credit notes.
    BillingWrite,
}

impl Scope {
    pub const ALL: &'static [Scope] = &[
        Scope::ClientsRead,
        Scope::ClientsWrite,
        Scope::ClientsDelete,
        Scope::ClientsRotateToken,
        Scope::UsageRead,
        Scope::AuditRead,
        Scope::BillingRead,
        Scope::BillingWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::ClientsRead => "clients:read",
            Scope::ClientsWrite => "clients:write",
            Scope::ClientsDelete => "clients:delete",
            Scope::ClientsRotateToken => "clients:rotate-token",
            Scope::UsageRead => "usage:read",
            Scope::AuditRead => "audit:read",
            Scope::BillingRead => "billing:read",
            Scope::BillingWrite => "billing:write",
        }
    }

    /// Read scopes never change state: the `read` preset and GET routes use only these.
    pub fn is_read(self) -> bool {
        self.name().ends_with(":read")
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.iter().copied().find(|x| x.name() == s)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every read scope (`read`) or every scope (`full`).
pub const PRESETS: [&str; 2] = ["read", "full"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScopeError {
    #[error("unknown scope {0:?} (scopes: read, full, {list})", list = Scope::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("choose at least one scope")]
    Empty,
}

/// A token's scopes as stored: space-separated presets and scope names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses (and normalises) a list of presets and scope names.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Scopes, ScopeError> {
        let mut out: Vec<String> = Vec::new();
        for item in items.into_iter().flat_map(|s| s.split([' ', ','])) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if !PRESETS.contains(&item) && Scope::parse(item).is_none() {
                return Err(ScopeError::Unknown(item.to_string()));
            }
            if !out.iter().any(|o| o == item) {
                out.push(item.to_string());
            }
        }
        if out.is_empty() {
            return Err(ScopeError::Empty);
        }
        // `full` covers everything: store just that.
        if out.iter().any(|o| o == "full") {
            out = vec!["full".into()];
        }
        Ok(Scopes(out))
    }

    /// A stored value; unknown words (a scope of a newer version) grant nothing.
    pub fn from_stored(s: &str) -> Scopes {
        Scopes(s.split_whitespace().map(str::to_string).collect())
    }

    pub fn stored(&self) -> String {
        self.0.join(" ")
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.0.iter().any(|s| match s.as_str() {
            "full" => true,
            "read" => scope.is_read(),
            other => other == scope.name(),
        })
    }

    pub fn items(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand() {
        let read = Scopes::parse(["read"]).unwrap();
        assert!(read.allows(Scope::ClientsRead) && read.allows(Scope::AuditRead));
        assert!(!read.allows(Scope::ClientsDelete) && !read.allows(Scope::ClientsRotateToken));
        let full = Scopes::parse(["clients:read", "full"]).unwrap();
        assert_eq!(full.stored(), "full");
        assert!(Scope::ALL.iter().all(|s| full.allows(*s)));
        let one = Scopes::parse(["usage:read clients:write"]).unwrap();
        assert!(one.allows(Scope::UsageRead) && one.allows(Scope::ClientsWrite));
        assert!(!one.allows(Scope::ClientsRead));
        assert_eq!(
            Scopes::parse(["admin"]),
            Err(ScopeError::Unknown("admin".into()))
        );
        assert_eq!(Scopes::parse([""]), Err(ScopeError::Empty));
        assert!(!Scopes::from_stored("billing:write").allows(Scope::ClientsWrite));
    }
}
