//! Tenants, their API keys and their customer-token signing secrets. Keys and secrets are
//! shown once; keys are stored as SHA-256 hashes only, signing secrets encrypted under the
//! master key (HMAC verification needs them). Both rotate with an optional grace period
//! for the old one; keys can be revoked.
//!
//! By concern: `tenant` (the tenant record, creation with its keys, secrets and settings),
//! `keys` (key kinds and shapes, issuing, listing, authenticating), `rotation` (rotating
//! and revoking with a grace period, shared with the signing secrets) and `settings` (the
//! per-mode settings). [`Mode`] lives here; everything is re-exported as `shared::tenants::X`.

use serde::{Deserialize, Serialize};

mod keys;
mod rotation;
mod settings;
mod tenant;

pub use keys::{
    authenticate, list_keys, parse_key_shape, ApiKeyInfo, IssuedKey, KeyIdentity, KeyKind,
};
pub(crate) use rotation::{retire, retired_summary, Retiring};
pub use rotation::{revoke_key, rotate_key};
pub use settings::{lock_settings, settings, store_settings, TenantSettings};
pub use tenant::{
    create_tenant, create_tenant_as, get_tenant, list_tenants, Tenant, TenantWithKeys,
};

/// Test or live: every key, flow, setting and session belongs to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}
