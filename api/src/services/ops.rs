//! Ops actions' audit rows: the dead-letter actions of the ops API (`/v1/ops/queues/...`) and
//! of the dashboard's ops console are recorded by [`audit`].

use serde_json::json;
use shared::audit::Change;
use uuid::Uuid;

use crate::{error::ApiResult, AppState};

/// The audit row of a dead-letter action. The change itself is in Redis (and the outbox),
/// which no PostgreSQL transaction spans, so the row is written right after it succeeded:
/// an action that failed leaves none.
pub async fn audit(
    st: &AppState,
    actor: &shared::audit::Actor,
    action: &str,
    queue: &str,
    ids: &[Uuid],
    kind: Option<&str>,
) -> ApiResult<()> {
    let mut conn = st.pools.primary.acquire().await?;
    shared::audit::record(
        &mut conn,
        actor,
        Change {
            tenant_id: None,
            mode: None,
            action,
            target_type: "queue",
            target_id: Some(queue.to_string()),
            before: None,
            after: Some(json!({ "ids": ids, "count": ids.len(), "kind": kind })),
        },
    )
    .await?;
    Ok(())
}
