//! A tenant's API keys (rotate, revoke) and customer-token signing secrets (rotate), per
//! mode; every change is audited (by `shared::tenants` and `shared::signing_secrets`) and
//! forgets this process's cached keys and settings of the tenant. The key routes
//! (`/v1/keys/...`, `/v1/token_signing_secrets/...`) and the dashboard's keys page call these
//! functions.

use shared::{
    signing_secrets::IssuedSigningSecret,
    tenants::{IssuedKey, KeyKind, Mode},
};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// At most 7 days of grace for the old key or secret.
const MAX_GRACE_SECONDS: i64 = 7 * 86_400;

fn check_grace(grace_seconds: i64) -> Result<(), ApiError> {
    if (0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        Ok(())
    } else {
        Err(ApiError::invalid_param(
            "grace_seconds",
            "grace_seconds must be between 0 and 604800",
        ))
    }
}

/// Issues a new key of `kind` in `mode` and retires the current ones (after the grace
/// period); audited. `POST /v1/keys/rotate` and the dashboard's keys page call it.
pub async fn rotate(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    actor: &shared::audit::Actor,
    kind: KeyKind,
    grace_seconds: i64,
) -> ApiResult<IssuedKey> {
    check_grace(grace_seconds)?;
    let key =
        shared::tenants::rotate_key(&st.pools.primary, actor, tenant, kind, mode, grace_seconds)
            .await?;
    st.auth_cache.forget_tenant(tenant);
    st.settings_cache.forget(tenant);
    Ok(key)
}

/// Revokes one key of `mode` at once (404 `key` when the mode has no such key); audited.
pub async fn revoke(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    actor: &shared::audit::Actor,
    key_id: Uuid,
) -> ApiResult<()> {
    let revoked =
        shared::tenants::revoke_key(&st.pools.primary, actor, tenant, Some(mode), key_id).await?;
    if !revoked {
        return Err(ApiError::not_found("key"));
    }
    st.auth_cache.forget_tenant(tenant);
    st.settings_cache.forget(tenant);
    Ok(())
}

/// Issues a new customer-token signing secret for `mode` (shown once) and retires the
/// current one after `grace_seconds`; audited.
pub async fn rotate_signing_secret(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    actor: &shared::audit::Actor,
    grace_seconds: i64,
) -> ApiResult<IssuedSigningSecret> {
    check_grace(grace_seconds)?;
    let secret = shared::signing_secrets::rotate(
        &st.pools.primary,
        &st.master,
        actor,
        tenant,
        mode,
        grace_seconds,
    )
    .await?;
    st.settings_cache.forget(tenant);
    Ok(secret)
}
