//! Data-release rules, as pure functions: which scopes exist, what they release,
//! and which claims a client may receive about a user. No I/O here.

mod release;
mod scopes;

pub use release::{Claims, release};
pub use scopes::{SCOPES, ScopeInfo, ScopeSet, scope_info};
