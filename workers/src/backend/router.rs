//! The service of one queue's worker: [`Router`] sends each task to the typed route of its
//! kind (decoding the payload; a bad payload or an unknown kind is a permanent failure),
//! and [`JobMeta`] is extracted from our [`Lease`] in the task's data.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use apalis_core::{
    error::BoxDynError,
    layers::Service,
    task::{data::MissingDataError, from_request::FromRequest, Task},
};
use futures::{future::BoxFuture, FutureExt};

use super::{Envelope, Lease};
use crate::runtime::{JobError, JobMeta};

impl<Args: Sync> FromRequest<Task<Args>> for JobMeta {
    type Error = MissingDataError;
    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        let l = task.data().get_checked::<Lease>()?;
        Ok(JobMeta {
            id: l.id,
            queue: l.queue,
            attempt: l.attempt,
            due_at_ms: l.ready_at_ms,
            previous_failure_at_ms: l.failed_at_ms,
        })
    }
}

pub type Route =
    Arc<dyn Fn(Task<Envelope>) -> BoxFuture<'static, Result<(), BoxDynError>> + Send + Sync>;

/// The service of one queue's worker: one typed route per job kind.
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<&'static str, Route>,
}

impl Router {
    pub fn insert(&mut self, kind: &'static str, route: Route) {
        self.routes.insert(kind, route);
    }

    /// A route calling `svc` (an apalis task function of `J`) with the payload decoded.
    pub fn route_for<J, S>(svc: S) -> Route
    where
        J: serde::de::DeserializeOwned + Send + 'static,
        S: Service<Task<J>, Response = (), Error = BoxDynError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Arc::new(move |task: Task<Envelope>| {
            let svc = svc.clone();
            async move {
                // Keeps the execution context (id, attempt, data: the lease, Data<T>).
                let task = task
                    .try_map_args(|env| serde_json::from_str::<J>(&env.payload))
                    .map_err(|e| {
                        JobError::permanent(anyhow::anyhow!("undecodable payload: {e}"))
                    })?;
                tower::ServiceExt::oneshot(svc, task).await
            }
            .boxed()
        })
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}

impl Service<Task<Envelope>> for Router {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Envelope>) -> Self::Future {
        match self.routes.get(task.args.kind.as_str()) {
            Some(route) => route(task),
            None => {
                let kind = task.args.kind.clone();
                async move {
                    Err(JobError::permanent(anyhow::anyhow!(
                        "no handler for kind {kind:?} on this worker"
                    ))
                    .into())
                }
                .boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apalis_core::task::{builder::TaskBuilder, task_id::TaskId};
    use uuid::Uuid;

    use super::*;
    use crate::backend::policy::tests::is_permanent;

    fn lease(kind: &str) -> Lease {
        Lease {
            id: Uuid::now_v7(),
            queue: "ops",
            kind: kind.into(),
            attempt: 3,
            durable: false,
            ready_at_ms: Some(1_000),
            failed_at_ms: Some(900),
        }
    }

    fn task(kind: &str, payload: &str) -> Task<Envelope> {
        let l = lease(kind);
        TaskBuilder::new(Envelope {
            kind: kind.into(),
            payload: payload.into(),
        })
        .task_id(TaskId::from_uuid(l.id))
        .attempt(2)
        .data(l)
        .build()
    }

    #[derive(serde::Deserialize)]
    struct Echo {
        n: u32,
    }

    /// The router decodes the payload into the handler's type and hands the handler our
    /// lease as `JobMeta`; an undecodable payload or an unknown kind is a permanent failure.
    #[tokio::test]
    async fn the_router_decodes_typed_jobs_and_refuses_bad_ones() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let svc = apalis_core::task::task_fn::task_fn(move |job: Echo, meta: JobMeta| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push((job.n, meta.attempt, meta.due_at_ms));
                Ok::<(), JobError>(())
            }
        });
        let mut router = Router::default();
        router.insert("echo", Router::route_for::<Echo, _>(svc));
        router.call(task("echo", r#"{"n": 7}"#)).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(7, 3, Some(1_000))]);
        let bad = router.call(task("echo", "{")).await.unwrap_err();
        assert!(is_permanent(&bad), "{bad}");
        let unknown = router.call(task("nope", "{}")).await.unwrap_err();
        assert!(is_permanent(&unknown), "{unknown}");
        assert!(unknown.to_string().contains("no handler"), "{unknown}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
