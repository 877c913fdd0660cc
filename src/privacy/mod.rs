//! Data-release rules, as pure functions: which scopes exist, what they release,
//! and which claims a client may receive about a user. No I/O here.

mod policy;
mod release;
mod scopes;

pub use policy::{ClientPolicy, Link, ReleaseFacts, grantable, release, releasable};
pub use release::Claims;
pub use scopes::{Catalogue, CustomScope, SCOPES, ScopeInfo, ScopeSet};
