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
use serde::Serialize;
use serde_json::Value;
use shared::audit::Change;
use utoipa::ToSchema;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::TenantAuth,
    services::customers::{customer, CustomerView},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/customers/{customer_id}",
        get(get_customer).delete(erase_customer),
    )
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_customer, erase_customer))]
pub(crate) struct Doc;

#[utoipa::path(
    get,
    path = "/v1/customers/{customer_id}",
    operation_id = "get_customer",
    tag = "customers",
    summary = "One customer: record, subscriptions, latest cancel sessions and applied offers",
    description = "By the tenant's own customer id, in the key's mode: the customer record (or null when only sessions exist), their subscriptions, their 50 latest cancel sessions and the applied offers among them.",
    security(("secretKey" = [])),
    params((
        "customer_id" = String,
        Path,
        description = "The tenant's id of the customer (the id in its customer tokens)",
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 404, description = "customer_not_found: the key's mode has neither a record nor a session of that customer", body = ErrorEnvelope),
    )
)]
async fn get_customer(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<Value>> {
    customer(&st, (auth.tenant_id, auth.mode), &customer_id)
        .await
        .map(Json)
}

/// `DELETE /v1/customers/{customer_id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct Erasure {
    /// Whether anything was stored of the customer (false: nothing to erase).
    erased: bool,
    /// The random `erased_…` id the customer's rows carry now (nothing links it to the
    /// erased id); also the audit row's target.
    pseudonym: String,
    counts: ErasureCounts,
}

/// What an erasure changed, table by table.
#[derive(Debug, Serialize, ToSchema)]
struct ErasureCounts {
    /// Customer records pseudonymised.
    users: u64,
    /// Cancel sessions pseudonymised.
    sessions: u64,
    /// Open sessions ended (abandoned).
    sessions_ended: u64,
    /// Free-text feedback answers removed.
    feedback_texts: u64,
    /// Stripe payload copies redacted.
    stripe_payloads: u64,
}

#[utoipa::path(
    delete,
    path = "/v1/customers/{customer_id}",
    operation_id = "erase_customer",
    tag = "customers",
    summary = "Erase one customer's personal data in the key's mode",
    description = "Pseudonymises every row of the customer (users, cancel sessions) with one random erased_… id, removes the email, custom attributes, token attributes and free-text feedback, redacts processed Stripe payload copies naming the customer, ends open sessions (abandoned), forgets cached sessions; counts and analytics stay. One transaction with its audit row (customer.erase, target = the pseudonym, never the erased id). Idempotent: a customer with nothing stored answers erased: false. Does not erase anything at Stripe: delete the customer there too, or later webhooks sync it again.",
    security(("secretKey" = [])),
    params((
        "customer_id" = String,
        Path,
        description = "The tenant's id of the customer: 1 to 255 characters, no control characters",
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$",
        max_length = 255
    )),
    responses(
        (status = 200, description = "What was erased", body = Erasure),
        (status = 400, description = "parameter_invalid (param customer_id): longer than 255 characters, or a control character", body = ErrorEnvelope),
    )
)]
async fn erase_customer(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<Erasure>> {
    if customer_id.is_empty()
        || customer_id.chars().count() > 255
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
    Ok(Json(Erasure {
        erased: !erased.is_empty(),
        counts: ErasureCounts {
            users: erased.users,
            sessions: erased.sessions,
            sessions_ended: erased.sessions_ended,
            feedback_texts: erased.feedback_texts,
            stripe_payloads: erased.stripe_payloads,
        },
        pseudonym: erased.pseudonym,
    }))
}
