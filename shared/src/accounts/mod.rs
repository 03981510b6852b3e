//! Dashboard accounts: users, their server-side sessions and one-time links. The only reader
//! and writer of `dashboard_users`, `dashboard_sessions` and `dashboard_tokens`.
//!
//! - Passwords are argon2id PHC strings (the `argon2` crate's defaults: m = 19 MiB, t = 2),
//!   hashed and verified on the blocking pool. An unknown email costs the same verification
//!   as a wrong password (no account enumeration by timing).
//! - Lockout: [`MAX_FAILED_LOGINS`] consecutive failures lock the account for
//!   [`LOCKOUT`] (in PostgreSQL, so every api process sees it); a success resets the count.
//! - Sessions: the cookie carries a random token; only its SHA-256 is stored. A session ends
//!   after [`SESSION_IDLE`] without use or [`SESSION_MAX`] after sign-in, whichever is first.
//!   "Sign out everywhere" and a password change delete every session of the user.
//! - One-time links (set password, reset, invitation) store only the token's SHA-256, expire,
//!   and are redeemed once.
//!
//! Every change is audited in its own transaction (actor: the dashboard user, the CLI or
//! ops); a password or token never reaches the audit log.
//!
//! By concern: `users` (roles, the user record, lookups), `password` (hashing and
//! verification), `sessions` (sign-in, lockout, sessions), `links` (one-time links) and
//! `team` (team administration); everything is re-exported here as `shared::accounts::X`.

use std::time::Duration;

mod links;
mod password;
mod sessions;
mod team;
mod users;

pub use links::{issue_link, peek_link, redeem_link, LinkPurpose};
pub use password::hash_password;
pub use sessions::{
    delete_expired, login, logout, logout_everywhere, session, set_mode, LoginError, Session,
};
pub use team::{change_role, may_manage, reinvite, remove_user, transfer_ownership, TeamError};
pub use users::{
    create_user, list_users, normalize_email, user_actor, user_by_email, user_by_id, AccountError,
    Role, User,
};

pub const MAX_FAILED_LOGINS: i32 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
pub const SESSION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;
