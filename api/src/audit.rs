//! The request side of the audit log: [`ReqMeta`] (request id and client IP) turns into the
//! [`shared::audit::Actor`] of a change made with a secret key or the ops token. Handlers
//! write the audit row with `shared::audit::record` inside the change's own transaction.

use std::net::IpAddr;

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::{
    audit::{Actor, ActorType},
    tenants::KeyIdentity,
};

use crate::{error::ApiError, middleware::REQUEST_ID};

/// The client address the overload layer decided on (after `TRUST_FORWARDED_FOR`); set as a
/// request extension by [`crate::overload::protect`].
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// The request id and client IP of a request, for its audit rows.
#[derive(Clone, Debug, Default)]
pub struct ReqMeta {
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

impl ReqMeta {
    fn actor(&self, kind: ActorType, id: Option<String>) -> Actor {
        Actor {
            kind,
            id,
            request_id: self.request_id.clone(),
            ip: self.ip.clone(),
        }
    }

    /// A change made with a tenant's secret key.
    pub fn key_actor(&self, key: &KeyIdentity) -> Actor {
        self.actor(ActorType::ApiKey, Some(key.key_id.to_string()))
    }

    /// A change made with the ops token.
    pub fn ops_actor(&self) -> Actor {
        self.actor(ActorType::Ops, None)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReqMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ReqMeta {
            request_id: parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0.to_string()),
        })
    }
}
