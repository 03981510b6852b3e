//! The RetentionOS HTTP API (axum). Handlers parse → authorize → one short write or cache
//! read → enqueue → respond; anything slow is a job for the workers.

pub mod audit;
pub mod auth_cache;
pub mod batch;
pub mod cli;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod flow_cache;
pub mod middleware;
pub mod overload;
pub mod routes;
pub mod services;
pub mod session_cache;
pub mod settings_cache;
pub mod state;
pub mod strings;

/// The OpenAPI document as JSON (`GET /openapi.json`, `retentionos-api openapi`).
pub use routes::openapi::document_json as openapi_document;
pub use state::{AppInner, AppState};

use std::{future::IntoFuture, net::SocketAddr};

use axum::{extract::DefaultBodyLimit, Router};
use shared::Config;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

/// Which listener a router serves (see `OPS_ADDR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `API_ADDR` with no `OPS_ADDR`: every route.
    All,
    /// `API_ADDR` when `OPS_ADDR` is set: everything but the ops routes.
    Public,
    /// `OPS_ADDR`: the ops routes and the probes only.
    Ops,
}

/// Routes only the ops listener serves when there is one: metrics, the ops API and the
/// ops-token tenant routes.
pub fn is_ops_route(path: &str) -> bool {
    path == "/metrics"
        || path == "/v1/tenants"
        || path.starts_with("/v1/ops/")
        || path.starts_with("/v1/tenants/")
        || path == "/app/ops"
        || path.starts_with("/app/ops/")
}

/// Answers 404 (the envelope) for a route this listener does not serve.
async fn listener_filter(
    axum::extract::State(which): axum::extract::State<Listener>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    // Probes and the dashboard's stylesheet are served on both listeners.
    let probe = matches!(path, "/healthz" | "/readyz") || path.starts_with("/app/assets/");
    let served = match which {
        Listener::All => true,
        Listener::Public => !is_ops_route(path),
        Listener::Ops => probe || is_ops_route(path),
    };
    if served {
        next.run(req).await
    } else {
        error::ApiError::not_found("route").into_response()
    }
}

/// The full application with every layer.
pub fn app(state: AppState) -> Router {
    app_for(state, Listener::All)
}

/// The application as served on one listener.
pub fn app_for(state: AppState, listener: Listener) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let rid = req
                .headers()
                .get(middleware::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                request_id = %rid,
                method = %req.method(),
                path = %req.uri().path(),
                tenant_id = tracing::field::Empty,
                mode = tracing::field::Empty,
                user_id = tracing::field::Empty,
            )
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
        // on_response already logs every status; a second line per 5xx would double the
        // log volume exactly when the service sheds load.
        .on_failure(());
    routes::router()
        .fallback(middleware::fallback_404)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            overload::protect,
        ))
        .layer(axum::middleware::from_fn(middleware::envelope_fallback))
        .layer(axum::middleware::from_fn(middleware::metrics))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(CompressionLayer::new().gzip(true).br(true))
        .layer(trace)
        .layer(axum::middleware::from_fn(middleware::request_id))
        .layer(axum::middleware::from_fn_with_state(
            listener,
            listener_filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_split(listener, None, state, shutdown).await
}

/// Serves the public listener, and the internal ops listener when given (then the public
/// one no longer serves the ops routes); both drain on `shutdown`.
pub async fn serve_split(
    listener: tokio::net::TcpListener,
    ops: Option<tokio::net::TcpListener>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    overload::spawn_db_watch(state.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let which = if ops.is_some() {
        Listener::Public
    } else {
        Listener::All
    };
    let ops_task = ops.map(|l| {
        let app = app_for(state.clone(), Listener::Ops)
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(
            axum::serve(l, app)
                .with_graceful_shutdown(stopped())
                .into_future(),
        )
    });
    let app = app_for(state, which).into_make_service_with_connect_info::<SocketAddr>();
    let public = axum::serve(listener, app).with_graceful_shutdown(stopped());
    let signal = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let (res, ()) = tokio::join!(public.into_future(), signal);
    if let Some(t) = ops_task {
        t.await.map_err(std::io::Error::other)??;
    }
    res
}

/// The `serve` command: bind, serve, stop gracefully on SIGTERM or Ctrl-C.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    tracing::info!(config = %config.describe(), "configuration");
    let _ = shared::telemetry::prometheus();
    let listener = tokio::net::TcpListener::bind(config.api_addr).await?;
    // The bound address (port 0 becomes the kernel's choice): the dashboard's mailed links
    // are built from it when PUBLIC_BASE_URL is unset.
    config.api_addr = listener.local_addr()?;
    tracing::info!(addr = %config.api_addr, "api listening");
    let ops = match config.ops_addr {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a).await?;
            tracing::info!(addr = %l.local_addr()?, "ops listener (metrics, probes, ops API)");
            Some(l)
        }
        None => None,
    };
    let state = AppState::new(config)?;
    serve_split(listener, ops, state, async {
        shutdown_signal().await;
        tracing::info!("shutdown signal received: draining requests");
    })
    .await?;
    Ok(())
}

pub use shared::process::shutdown_signal;
