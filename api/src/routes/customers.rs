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

/// One customer of a tenant's mode, by the tenant's own id for them: the customer record
/// (plan, MRR), their subscriptions, their 50 latest cancel sessions and the offers applied
/// to them. 404 `customer` when the mode has no such customer (nor any session of them).
pub async fn customer(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, shared::tenants::Mode),
    customer_id: &str,
) -> ApiResult<Value> {
    if customer_id.is_empty() || !shared::text::is_clean(customer_id, false) {
        return Err(ApiError::not_found("customer"));
    }
    let row = sqlx::query!(
        r#"WITH u AS (SELECT * FROM users WHERE tenant_id = $1 AND mode = $2 AND external_id = $3)
         SELECT (SELECT to_jsonb(u) - 'attributes' FROM u) AS "user?",
                (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.created_at DESC), '[]'::jsonb)
                   FROM subscriptions s WHERE s.tenant_id = $1 AND s.mode = $2 AND s.user_id IN (SELECT id FROM u)) AS "subscriptions!",
                (SELECT coalesce(jsonb_agg(x ORDER BY x->>'created_at' DESC), '[]'::jsonb) FROM (
                    SELECT jsonb_build_object('id', c.id, 'outcome', c.outcome, 'saved_offer_type', c.saved_offer_type,
                           'reason_code', c.reason_code, 'offer_state', c.offer_state, 'offer_error', c.offer_error,
                           'offer_applied_at', c.offer_applied_at, 'mrr_cents', c.mrr_cents, 'created_at', c.created_at) AS x
                      FROM cancel_sessions c
                     WHERE c.tenant_id = $1 AND c.mode = $2 AND c.customer_id = $3
                     ORDER BY c.created_at DESC LIMIT 50) l) AS "sessions!""#,
        tenant,
        mode.as_str(),
        customer_id,
    )
    .fetch_one(&st.pools.read)
    .await?;
    let (user, subscriptions, sessions) = (row.user, row.subscriptions, row.sessions);
    let empty = sessions.as_array().is_none_or(|a| a.is_empty());
    if user.is_none() && empty {
        return Err(ApiError::not_found("customer"));
    }
    let applied: Vec<Value> = sessions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["offer_state"] == "applied")
        .cloned()
        .collect();
    Ok(json!({
        "customer_id": customer_id,
        "customer": user,
        "subscriptions": subscriptions,
        "sessions": sessions,
        "applied_offers": applied,
    }))
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
