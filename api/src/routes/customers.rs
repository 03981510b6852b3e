//! `GET /v1/customers/{customer_id}`: one customer of the key's mode
//! ([`crate::services::customers::customer`]).
//!
//! `DELETE /v1/customers/{customer_id}`: erases one customer's personal data in the key's
//! mode (see `shared::privacy`), in one transaction with its audit row, and forgets the
//! customer's cached sessions in this process.

use axum::{
    extract::{Path, State},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use shared::audit::Change;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::TenantAuth,
    services::customers::customer,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/customers/{customer_id}",
        get(get_customer).delete(erase_customer),
    )
}

async fn get_customer(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<Value>> {
    customer(&st, (auth.tenant_id, auth.mode), &customer_id)
        .await
        .map(Json)
}

async fn erase_customer(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<Value>> {
    if customer_id.is_empty()
        || customer_id.len() > 255
        || !shared::text::is_clean(&customer_id, false)
    {
        return Err(ApiError::invalid_param(
            "customer_id",
            "customer_id must be 1 to 255 characters without control characters",
        ));
    }
    let mut tx = st.pools.primary.begin().await?;
    let erased =
        shared::privacy::erase_customer(&mut tx, auth.tenant_id, auth.mode, &customer_id).await?;
    // The audit row names the pseudonym, never the erased id.
    shared::audit::record(
        &mut tx,
        &meta.key_actor(&auth),
        Change {
            tenant_id: Some(auth.tenant_id),
            mode: Some(auth.mode),
            action: "customer.erase",
            target_type: "customer",
            target_id: Some(erased.pseudonym.clone()),
            before: None,
            after: Some(serde_json::to_value(&erased).map_err(ApiError::internal)?),
        },
    )
    .await?;
    tx.commit().await?;
    st.session_cache
        .forget_customer(auth.tenant_id, &customer_id);
    tracing::info!(tenant_id = %auth.tenant_id, pseudonym = %erased.pseudonym, "customer erased");
    Ok(Json(json!({
        "erased": !erased.is_empty(),
        "pseudonym": erased.pseudonym,
        "counts": {
            "users": erased.users,
            "sessions": erased.sessions,
            "sessions_ended": erased.sessions_ended,
            "feedback_texts": erased.feedback_texts,
            "stripe_payloads": erased.stripe_payloads,
        },
    })))
}
