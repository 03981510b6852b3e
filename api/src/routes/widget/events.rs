//! `POST /v1/widget/sessions/{id}/events`: validate an event against the session's flow
//! version and what it rendered, decide what an acceptance or a cancellation changes (outcome,
//! offer or cancel state, outbox job), write it through the batched writer and map its status
//! to the answer (202, or 404/409). One handler: the rules are one sequence of checks.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use jobs::{ApplyOffer, CancelSubscription, JobClient, OutboxEntry};
use serde::{Deserialize, Serialize};
use shared::{
    db::sessions::{EventJob, EventOffer, EventPayload, EventRow, EventWrite},
    flows::{OfferType, Step},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, WidgetAuth},
    AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBody {
    /// The client's id of this event (1 to 100 characters): a repeat is acknowledged again
    /// and changes nothing.
    #[schema(min_length = 1, max_length = 100)]
    client_event_id: String,
    #[serde(rename = "type")]
    kind: EventType,
    /// The churn reason (`reason_selected`; one of the flow's reason codes).
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false)]
    reason_code: Option<String>,
    /// The offer (`offer_shown`, `offer_accepted`, `offer_declined`; one the session rendered).
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false)]
    offer_id: Option<String>,
    /// Free-text feedback (`feedback`; at most 5000 characters).
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false, max_length = 5000)]
    text: Option<String>,
}

/// `POST /v1/widget/sessions/{id}/events`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventAccepted {
    #[schema(pattern = "^accepted$")]
    status: &'static str,
    /// The `client_event_id` was recorded before: nothing changed.
    duplicate: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
enum EventType {
    ReasonSelected,
    Feedback,
    OfferShown,
    OfferAccepted,
    OfferDeclined,
    CancelConfirmed,
    Abandoned,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::ReasonSelected => "reason_selected",
            EventType::Feedback => "feedback",
            EventType::OfferShown => "offer_shown",
            EventType::OfferAccepted => "offer_accepted",
            EventType::OfferDeclined => "offer_declined",
            EventType::CancelConfirmed => "cancel_confirmed",
            EventType::Abandoned => "abandoned",
        }
    }
}

/// Records one widget event; 202 once it is committed (in a batch, see [`crate::batch`]).
/// A repeated `client_event_id` is acknowledged again and changes nothing. 409 and nothing
/// stored for an offer the session did not render, an acceptance not for the selected reason
/// or in cooldown (`offer_not_available`), an ended (`session_ended`) or expired
/// (`session_expired`) session.
#[tracing::instrument(name = "widget.event", skip_all, fields(session_id = %id))]
#[utoipa::path(
    post,
    path = "/v1/widget/sessions/{id}/events",
    operation_id = "create_event",
    tag = "widget",
    summary = "Record a session event (202 once durable; client_event_id de-duplicates)",
    description = "Acceptance = what was rendered: every refusal below is a 409 in the error envelope and stores nothing. offer_not_available (param offer_id): an offer_shown/offer_accepted/offer_declined for an offer the session did not render (holdout, another A/B variant, hidden by a guardrail), an offer_accepted for an offer limited to reason_codes when the session's selected reason is not one of them, or an offer_accepted inside the cooldown of its offer type (another session of the customer saved with one). session_ended: the session already has an outcome (saved, canceled, deflected, abandoned; the message names it), e.g. cancel_confirmed after a save. session_expired: past the session's expires_at (SESSION_TTL_SECS after its start). A repeated client_event_id of a recorded event is still 202 with duplicate: true. An offer_id or reason_code the flow does not have is a 400 parameter_invalid.",
    security(("publishableKey" = [], "customerToken" = [])),
    params(("id" = uuid::Uuid, Path)),
    request_body = EventBody,
    responses((status = 202, description = "Recorded (durable)", body = EventAccepted), (status = 404, description = "session_not_found: no such session for this key's tenant and mode", body = ErrorEnvelope), (status = 409, description = "offer_not_available, session_ended or session_expired (nothing stored)", body = ErrorEnvelope))
)]
pub(super) async fn create_event(
    auth: WidgetAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(ev): ApiJson<EventBody>,
) -> ApiResult<(StatusCode, Json<EventAccepted>)> {
    let session_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("session"))?;
    if ev.client_event_id.is_empty() || ev.client_event_id.chars().count() > 100 {
        return Err(ApiError::invalid_param(
            "client_event_id",
            "client_event_id must be 1 to 100 characters",
        ));
    }
    if ev.text.as_ref().is_some_and(|t| t.chars().count() > 5000) {
        return Err(ApiError::invalid_param(
            "text",
            "text must be at most 5000 characters",
        ));
    }
    let tenant = auth.key.tenant_id;
    let mode = auth.key.mode.as_str();
    let session = st
        .session_cache
        .get(&st.pools.primary, tenant, mode, session_id)
        .await?
        .filter(|s| s.customer_id == auth.claims.cus)
        .ok_or_else(|| ApiError::not_found("session"))?;
    let def = match (session.flow_id, session.flow_version) {
        (Some(f), Some(v)) => {
            st.flow_cache
                .version(&st.pools.primary, tenant, auth.key.mode, f, v)
                .await?
        }
        _ => None,
    };
    // Validate references against the session's flow version.
    let offer = match (ev.kind, &ev.offer_id) {
        (EventType::OfferShown | EventType::OfferAccepted | EventType::OfferDeclined, None) => {
            return Err(ApiError::invalid_param(
                "offer_id",
                "offer events need offer_id",
            ));
        }
        (
            EventType::OfferShown | EventType::OfferAccepted | EventType::OfferDeclined,
            Some(oid),
        ) => Some(
            def.as_ref()
                .and_then(|d| d.offer(oid).cloned())
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "offer_id",
                        format!("the session's flow has no offer {oid:?}"),
                    )
                })?,
        ),
        _ => None,
    };
    // Only what the session rendered (after holdout, variant and guardrails) can be shown,
    // accepted or declined; the batched write checks it again with reason routing and the
    // cooldowns, under the session and customer locks.
    if let Some(o) = &offer {
        if !session.rendered_offers.contains(&o.id) {
            return Err(not_available(&EventWrite::OfferNotRendered, &o.id));
        }
    }
    if ev.kind == EventType::ReasonSelected {
        let code = ev.reason_code.as_deref().ok_or_else(|| {
            ApiError::invalid_param("reason_code", "reason_selected needs reason_code")
        })?;
        let known = def.as_ref().is_some_and(|d| {
            d.steps.iter().any(|s| matches!(s, Step::Survey(survey) if survey.reasons.iter().any(|r| r.code == code)))
        });
        if !known {
            return Err(ApiError::invalid_param(
                "reason_code",
                format!("the session's flow has no reason {code:?}"),
            ));
        }
    }
    let settings = st
        .settings_cache
        .get(&st.pools.primary, tenant, auth.key.mode)
        .await?;

    // What an accepted offer or a confirmed cancellation changes, decided here; the batched
    // write applies it only if the session has no outcome yet (checked under its row lock).
    let mut outcome = None;
    let mut offer_state = None;
    let mut cancel_state = None;
    let mut job: Option<OutboxEntry> = None;
    let encode = |e: serde_json::Error| ApiError::internal(e);
    match ev.kind {
        EventType::OfferAccepted => {
            let o = offer.as_ref().expect("validated above");
            let (o_outcome, state) = match o.kind {
                OfferType::Redirect => ("deflected", None),
                OfferType::Custom => ("saved", None),
                _ => ("saved", Some("pending")),
            };
            outcome = Some(o_outcome);
            if let Some(state) = state {
                offer_state = Some(state);
                job = Some(JobClient::outbox_entry(&ApplyOffer { session_id }).map_err(encode)?);
            }
        }
        EventType::CancelConfirmed => {
            let performs = settings.cancel_mode == "cancel_at_period_end";
            cancel_state = Some(if performs { "pending" } else { "recorded" });
            if performs {
                job = Some(
                    JobClient::outbox_entry(&CancelSubscription { session_id }).map_err(encode)?,
                );
            }
        }
        _ => {}
    }
    let job_row = match &job {
        Some(j) => Some(EventJob {
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            payload: serde_json::from_str(&j.payload).map_err(encode)?,
        }),
        None => None,
    };
    let accepted = ev.kind == EventType::OfferAccepted;
    let offer_id = ev.offer_id.clone();
    let cooldown_days = offer
        .as_ref()
        .filter(|_| accepted)
        .and_then(|o| match o.kind {
            OfferType::Discount => Some(settings.discount_cooldown_days),
            OfferType::Pause => Some(settings.pause_cooldown_days),
            OfferType::TrialExtension => Some(settings.trial_extension_cooldown_days),
            OfferType::PlanChange => Some(settings.plan_change_cooldown_days),
            OfferType::Redirect | OfferType::Custom => None,
        });
    let row = EventRow {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        mode,
        session_id,
        customer_id: session.customer_id,
        client_event_id: ev.client_event_id,
        kind: ev.kind.as_str(),
        payload: EventPayload {
            reason_code: ev.reason_code.clone(),
            offer_id: ev.offer_id,
            text: ev.text,
        },
        reason_code: ev.reason_code,
        user_id: session.user_id,
        flow_id: session.flow_id,
        variant: session.variant,
        mrr_cents: session.mrr_cents,
        // The definition and the reasons it is limited to matter to an acceptance only.
        offer: offer.map(|o| EventOffer {
            kind: o.kind.as_str(),
            reason_codes: if accepted {
                o.reason_codes.clone()
            } else {
                Vec::new()
            },
            id: o.id.clone(),
            definition: accepted.then_some(o),
        }),
        cooldown_days,
        outcome,
        offer_state,
        cancel_state,
        job: job_row,
    };
    match st.event_writes.submit(row).await? {
        EventWrite::Duplicate => Ok((
            StatusCode::ACCEPTED,
            Json(EventAccepted {
                status: "accepted",
                duplicate: true,
            }),
        )),
        EventWrite::NoSession => Err(ApiError::not_found("session")),
        EventWrite::SessionExpired => Err(ApiError::conflict(
            "session_expired",
            "This session has expired; start a new one.",
        )),
        why @ (EventWrite::OfferNotRendered
        | EventWrite::OfferNotForReason
        | EventWrite::OfferInCooldown) => {
            Err(not_available(&why, offer_id.as_deref().unwrap_or_default()))
        }
        EventWrite::SessionEnded(outcome) => Err(ApiError::conflict(
            "session_ended",
            format!("This session already ended with outcome {outcome:?}; nothing was recorded."),
        )),
        written @ (EventWrite::Ok | EventWrite::OkJob) => {
            if let (Some(entry), EventWrite::OkJob) = (job, written) {
                if let Err(e) = st.jobs.push_outbox(&entry).await {
                    // Committed: the reconciler enqueues it if Redis is unavailable now.
                    tracing::warn!(job_id = %entry.id, error = %e, "enqueue deferred to the reconciler");
                }
            }
            Ok((
                StatusCode::ACCEPTED,
                Json(EventAccepted {
                    status: "accepted",
                    duplicate: false,
                }),
            ))
        }
    }
}

/// 409 `offer_not_available`: the offer exists in the flow but this session may not use it.
fn not_available(why: &EventWrite, offer_id: &str) -> ApiError {
    let message = match why {
        EventWrite::OfferNotForReason => format!(
            "Offer {offer_id:?} is not offered for the reason this session selected."
        ),
        EventWrite::OfferInCooldown => format!(
            "Offer {offer_id:?} is in its cooldown: this customer recently accepted an offer of that type."
        ),
        _ => format!("Offer {offer_id:?} was not shown in this session."),
    };
    ApiError::conflict("offer_not_available", message).with_param("offer_id")
}
