//! What Stripe-facing handlers share: the client, the per-account rate limiter, and the
//! tenant's decrypted settings for a mode.

use std::time::Duration;

use shared::{
    crypto::{Aad, Column, MasterKey},
    stripe::{
        client::{StripeClient, StripeError},
        ratelimit::{AccountRateLimiter, RateLimits},
    },
    tenants::Mode,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::runtime::JobError;

pub struct StripeCtx {
    pub client: StripeClient,
    pub limiter: AccountRateLimiter,
    pub limits: RateLimits,
    pub master: MasterKey,
}

/// A tenant's Stripe credentials for one mode.
pub struct TenantStripe {
    pub api_key: String,
    /// Rate-limit bucket: one per tenant and mode (one Stripe account each).
    pub account: String,
}

impl StripeCtx {
    pub fn new(base_url: &str, redis: &shared::redis_conn::Redis, master: MasterKey) -> Self {
        Self {
            client: StripeClient::new(base_url, Duration::from_secs(20)),
            limiter: AccountRateLimiter::new(redis.conn.clone(), redis.prefix.clone()),
            limits: RateLimits::default(),
            master,
        }
    }

    pub async fn settings(
        &self,
        pool: &PgPool,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<TenantStripe, JobError> {
        let enc = sqlx::query_scalar!(
            "SELECT api_key_enc FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
            tenant,
            mode.as_str(),
        )
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| {
            JobError::permanent(anyhow::anyhow!(
                "tenant has no Stripe settings for {} mode (PUT /v1/settings/stripe)",
                mode.as_str()
            ))
        })?;
        let api_key = self
            .master
            .decrypt(&enc, &Aad::new(Column::StripeApiKey, tenant, mode))
            .map_err(|e| {
                JobError::permanent(anyhow::anyhow!("stored Stripe key unreadable: {e}"))
            })?;
        Ok(TenantStripe {
            api_key,
            account: format!("{tenant}:{}", mode.as_str()),
        })
    }

    /// Waits for a slot under the account's rate limit.
    pub async fn throttle(&self, t: &TenantStripe) -> Result<(), JobError> {
        self.limiter
            .acquire(&t.account, self.limits.for_key(&t.api_key))
            .await
            .map_err(JobError::transient)
    }

    /// Re-fetches a subscription (rate-limited), with errors mapped for the job runtime.
    pub async fn fetch_subscription(
        &self,
        t: &TenantStripe,
        id: &str,
    ) -> Result<serde_json::Value, JobError> {
        self.throttle(t).await?;
        match self.client.get_subscription(&t.api_key, id).await {
            Ok(s) => Ok(s),
            Err(e) => Err(self.classify(t, e).await),
        }
    }

    /// Maps a Stripe error: retryable ones are transient (a 429 also holds every process
    /// back for Retry-After), the rest permanent.
    pub async fn classify(&self, t: &TenantStripe, e: StripeError) -> JobError {
        if let StripeError::RateLimited { retry_after } = &e {
            let _ = self
                .limiter
                .penalize(&t.account, retry_after.unwrap_or(Duration::from_secs(1)))
                .await;
        }
        metrics::counter!("stripe_errors_total", "kind" => e.label()).increment(1);
        if e.is_retryable() || e.outcome_unknown() {
            JobError::transient(e)
        } else {
            JobError::permanent(e)
        }
    }
}
