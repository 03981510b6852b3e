//! `POST /v1/widget_tokens` (secret key): signs a customer token server-side with the
//! tenant's current signing secret of the key's mode.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::widget_token::Claims;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, TenantAuth},
    AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWidgetToken {
    /// The tenant's id of the customer (1 to 255 characters).
    #[schema(min_length = 1, max_length = 255)]
    customer_id: String,
    /// The customer's Stripe subscription (`sub_...`), when the flow should act on one.
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false)]
    subscription_id: Option<String>,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    expires_in: Option<i64>,
    /// Targeting attributes (`plan`, `mrr_cents`, `region`, ... and custom ones): each a
    /// string, number or boolean, a list of those, or null (not set).
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, Attribute>>)]
    attributes: Option<Map<String, Value>>,
}

/// A targeting attribute's value (what rules compare: `eq`, `in`, `gt`, ...).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the schema of what `attribute_shape` lets through
enum Attribute {
    Scalar(Scalar),
    List(Vec<Scalar>),
    /// Not set.
    Null(Null),
}

/// JSON's `null` (`{"type": "null"}`), which the schema derive cannot spell.
#[derive(Serialize)]
struct Null;

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Null)
            .into()
    }
}

impl ToSchema for Null {}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Scalar {
    String(String),
    Number(f64),
    Bool(bool),
}

/// Attributes are what targeting rules compare: scalars (or null, not set), or lists of
/// scalars for `in`.
fn attribute_shape(attrs: &Map<String, Value>) -> ApiResult<()> {
    let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
    for (k, v) in attrs {
        let ok = match v {
            Value::Array(items) => items.iter().all(scalar),
            v => v.is_null() || scalar(v),
        };
        if !ok {
            return Err(ApiError::invalid_param(
                &format!("attributes.{k}"),
                "an attribute is a string, number or boolean, a list of those, or null",
            ));
        }
    }
    Ok(())
}

/// `POST /v1/widget_tokens`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WidgetToken {
    /// The customer token, for the widget's `X-Customer-Token`.
    token: String,
    /// Unix seconds.
    expires_at: i64,
}

/// Server-side helper: signs a customer token with the tenant's current signing secret of
/// the presented key's mode.
#[utoipa::path(
    post,
    path = "/v1/widget_tokens",
    operation_id = "create_widget_token",
    tag = "widget",
    summary = "Sign a customer token server-side with the tenant's current signing secret of the key's mode",
    description = "409 token_signing_secret_missing when the tenant has no signing secret for this mode yet (tenants created before signing secrets: POST /v1/token_signing_secrets/rotate, or ops run `retentionos-api secrets issue-signing-secrets`).",
    security(("secretKey" = [])),
    request_body = CreateWidgetToken,
    responses((status = 201, description = "The signed token", body = WidgetToken), (status = 409, description = "token_signing_secret_missing", body = ErrorEnvelope))
)]
pub(super) async fn create_widget_token(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateWidgetToken>,
) -> ApiResult<(StatusCode, Json<WidgetToken>)> {
    if body.customer_id.is_empty() || body.customer_id.chars().count() > 255 {
        return Err(ApiError::invalid_param(
            "customer_id",
            "customer_id must be 1 to 255 characters",
        ));
    }
    if let Some(attrs) = &body.attributes {
        attribute_shape(attrs)?;
    }
    let ttl = body.expires_in.unwrap_or(900);
    if !(1..=shared::widget_token::MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid_param(
            "expires_in",
            "expires_in must be between 1 and 86400 seconds",
        ));
    }
    // Read from the database, not the settings cache: right after a rotation without
    // grace, a cached old secret would sign tokens that no longer verify.
    let secrets =
        shared::signing_secrets::usable(&st.pools.primary, &st.master, auth.tenant_id, auth.mode)
            .await?;
    let key = secrets.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            "token_signing_secret_missing",
            "This tenant has no customer-token signing secret for this mode yet: create one with POST /v1/token_signing_secrets/rotate.",
        )
    })?;
    let exp = chrono::Utc::now().timestamp() + ttl;
    let claims = Claims {
        tid: auth.tenant_id,
        cus: body.customer_id,
        sub: body.subscription_id,
        exp,
        attrs: body.attributes,
    };
    let token = shared::widget_token::sign(&claims, key);
    Ok((
        StatusCode::CREATED,
        Json(WidgetToken {
            token,
            expires_at: exp,
        }),
    ))
}
