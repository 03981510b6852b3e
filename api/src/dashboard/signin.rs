//! Signing in and out of the dashboard: the sign-in page and form (with the per-address
//! throttle of failed sign-ins, [`LoginThrottle`]), sign-out (here and everywhere), the
//! test/live mode switch, and setting a password from an invitation or reset link.

use super::*;

// ---------------------------------------------------------------------------------------
// Sign-in throttle

/// Failed sign-ins per client address: after [`LoginThrottle::MAX`] in
/// [`LoginThrottle::WINDOW`] the address is refused (429) until the window ends. Per api
/// process (the account lockout in PostgreSQL is cluster-wide).
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    pub const MAX: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(300);

    /// `Some(seconds to wait)` when the address is throttled.
    pub(super) fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let map = self.failures.lock().expect("throttle lock");
        let (n, since) = map.get(&ip)?;
        let left = Self::WINDOW.checked_sub(since.elapsed())?;
        (*n >= Self::MAX).then(|| left.as_secs().max(1))
    }

    pub(super) fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= Self::WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    pub(super) fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().expect("throttle lock").remove(&ip);
    }
}

// ---------------------------------------------------------------------------------------
// Sign in, sign out, set password

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub(super) struct LoginPage {
    css: &'static str,
    email: String,
    error: Option<String>,
}

impl LoginPage {
    fn new(email: String, error: Option<String>) -> Self {
        LoginPage {
            css: CSS_PATH.as_str(),
            email,
            error,
        }
    }
}

#[utoipa::path(
    get,
    path = "/app/login",
    operation_id = "app_login_page",
    tag = "dashboard",
    summary = "Sign-in form (fields email, password)",
    responses(
        (status = 200, description = "The sign-in page", content_type = "text/html", body = String),
        (status = 303, description = "Already signed in: to /app", headers(("Location" = String))),
    )
)]
pub(super) async fn login_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = cookie_token(&headers) {
        if let Ok(Some(_)) = accounts::session(&st.pools.primary, &t).await {
            return see_other("/app");
        }
    }
    page(StatusCode::OK, &LoginPage::new(String::new(), None))
}

/// The sign-in form.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct LoginForm {
    /// The account's email.
    email: String,
    /// The account's password.
    #[schema(format = Password)]
    password: String,
}

#[utoipa::path(
    post,
    path = "/app/login",
    operation_id = "app_login",
    tag = "dashboard",
    summary = "Sign in",
    description = "Checks the password (argon2id). Sets the `rtos_session` cookie (HttpOnly; SameSite=Lax; Path=/app; Secure when PUBLIC_BASE_URL is https) and redirects to /app. 5 consecutive failures lock the account for 15 minutes; 10 failures from one address within 5 minutes are refused with 429 and Retry-After for the rest of the window. A cross-site POST is refused with 403.",
    request_body(content = inline(LoginForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to /app, with the session cookie", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 401, description = "The sign-in page again: the email or password is wrong, or the account is locked", content_type = "text/html", body = String),
        (status = 403, description = "A POST from another site (Origin not ours, or Sec-Fetch-Site cross-site/same-site): nothing changes", body = ErrorEnvelope),
        (status = 429, description = "The sign-in page: too many failed sign-ins from this address", content_type = "text/html", body = String, headers(("Retry-After" = u64, description = "Seconds left in the window"))),
    )
)]
pub(super) async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(f): Form<LoginForm>,
) -> Response {
    if !same_site(&headers) {
        return forbidden("cross-site request refused");
    }
    let ip = client_ip(ip.as_ref().map(|e| &e.0));
    if let Some(wait) = ip.and_then(|ip| st.login_throttle.blocked(ip)) {
        let mut res = page(
            StatusCode::TOO_MANY_REQUESTS,
            &LoginPage::new(
                f.email,
                Some(format!(
                    "Too many failed sign-ins from your address. Try again in {} minutes.",
                    wait.div_ceil(60)
                )),
            ),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return res;
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match accounts::login(
        &st.pools.primary,
        &f.email,
        &f.password,
        ip.map(|i| i.to_string()),
        ua,
    )
    .await
    {
        Ok((_, token)) => {
            if let Some(ip) = ip {
                st.login_throttle.succeeded(ip);
            }
            let mut res = see_other("/app");
            res.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&st.config, &token, Some(accounts::SESSION_MAX)),
            );
            res
        }
        Err(e @ (LoginError::Invalid | LoginError::Locked(_))) => {
            if let Some(ip) = ip {
                st.login_throttle.failed(ip);
            }
            let msg = match e {
                LoginError::Locked(until) => format!(
                    "Too many failed sign-ins: this account is locked until {} UTC. Reset your password or wait.",
                    until.format("%H:%M")
                ),
                _ => "The email or password is wrong.".to_string(),
            };
            page(
                StatusCode::UNAUTHORIZED,
                &LoginPage::new(f.email, Some(msg)),
            )
        }
        Err(LoginError::Account(e)) => {
            tracing::error!(error = %e, "sign-in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable; retry shortly",
            )
                .into_response()
        }
    }
}

pub(super) fn signed_out(st: &AppState) -> Response {
    let mut res = see_other("/app/login");
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&st.config, "", None));
    res
}

#[utoipa::path(
    post,
    path = "/app/logout",
    operation_id = "app_logout",
    tag = "dashboard",
    summary = "Sign out (this session)",
    description = "Ends the session and clears the cookie. A POST from another site or without the session's `csrf` token is refused with 403 and changes nothing.",
    security(("dashboardSession" = [])),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To /app/login: signed out (the cookie cleared), or not signed in", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 403, description = "A POST from another site (Origin not ours, or Sec-Fetch-Site cross-site/same-site), or the session's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
    )
)]
pub(super) async fn logout(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    if let Err(e) = accounts::logout(&st.pools.primary, &s).await {
        tracing::error!(error = %e, "sign-out failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable; retry shortly",
        )
            .into_response();
    }
    signed_out(&st)
}

#[utoipa::path(
    post,
    path = "/app/logout-everywhere",
    operation_id = "app_logout_everywhere",
    tag = "dashboard",
    summary = "Sign out everywhere (every session of the user)",
    description = "Ends every session of the user and clears the cookie; audited as user.sign_out_everywhere. A POST from another site or without the session's `csrf` token is refused with 403 and changes nothing.",
    security(("dashboardSession" = [])),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To /app/login: signed out (the cookie cleared), or not signed in", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 403, description = "A POST from another site (Origin not ours, or Sec-Fetch-Site cross-site/same-site), or the session's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
    )
)]
pub(super) async fn logout_everywhere(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let ip = client_ip(ip.as_ref().map(|e| &e.0)).map(|i| i.to_string());
    if let Err(e) = accounts::logout_everywhere(&st.pools.primary, &s, ip).await {
        tracing::error!(error = %e, "sign-out everywhere failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable; retry shortly",
        )
            .into_response();
    }
    signed_out(&st)
}

/// The mode switch in every page's header.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ModeForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// `test` or `live`.
    #[schema(schema_with = modes)]
    mode: String,
    /// The page to go back to (a path under /app; anything else: /app).
    #[serde(default)]
    back: String,
}

fn modes() -> utoipa::openapi::Object {
    one_of("test or live (anything else: 400)", &["test", "live"])
}

#[utoipa::path(
    post,
    path = "/app/mode",
    operation_id = "app_switch_mode",
    tag = "dashboard",
    summary = "Switch the dashboard between test and live mode",
    description = "`mode` is test or live (any other value: 400); redirects to `back` when it is a dashboard path (under /app), else to /app. A POST from another site or without the session's `csrf` token is refused with 403 and changes nothing.",
    security(("dashboardSession" = [])),
    request_body(content = inline(ModeForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Switched: to `back` or /app; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "mode is not test or live", body = ErrorEnvelope),
        (status = 403, description = "A POST from another site (Origin not ours, or Sec-Fetch-Site cross-site/same-site), or the session's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
    )
)]
pub(super) async fn switch_mode(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<ModeForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let Some(mode) = Mode::parse(&f.mode) else {
        return (StatusCode::BAD_REQUEST, "mode must be test or live").into_response();
    };
    if let Err(e) = accounts::set_mode(&st.pools.primary, &s, mode).await {
        tracing::error!(error = %e, "mode switch failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable; retry shortly",
        )
            .into_response();
    }
    // Only our own pages: a path under /app, nothing that could leave the site.
    let back = if f.back.starts_with("/app") && !f.back.starts_with("//") && !f.back.contains('\\')
    {
        f.back.as_str()
    } else {
        "/app"
    };
    see_other(back)
}

#[derive(Template)]
#[template(path = "dashboard/set_password.html")]
pub(super) struct SetPasswordPage {
    css: &'static str,
    valid: bool,
    email: String,
    token: String,
    error: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TokenQuery {
    /// The one-time link's token (missing or not a live link: 404).
    #[serde(default)]
    #[param(required = true)]
    token: String,
}

#[utoipa::path(
    get,
    path = "/app/set-password",
    operation_id = "app_set_password_page",
    tag = "dashboard",
    summary = "Set-password form of a one-time link (invitation or password reset)",
    params(TokenQuery),
    responses(
        (status = 200, description = "The form, for the link's account", content_type = "text/html", body = String),
        (status = 404, description = "The page saying the link is unknown, used or expired", content_type = "text/html", body = String),
    )
)]
pub(super) async fn set_password_page(
    State(st): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let user = match accounts::peek_link(&st.pools.primary, &q.token).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "link lookup failed");
            None
        }
    };
    let status = if user.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    page(
        status,
        &SetPasswordPage {
            css: CSS_PATH.as_str(),
            valid: user.is_some(),
            email: user.map(|u| u.email).unwrap_or_default(),
            token: q.token,
            error: None,
        },
    )
}

/// The set-password form.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct SetPasswordForm {
    /// The one-time link's token.
    token: String,
    /// The new password: 10 to 256 characters.
    #[schema(format = Password)]
    password: String,
}

#[utoipa::path(
    post,
    path = "/app/set-password",
    operation_id = "app_set_password",
    tag = "dashboard",
    summary = "Set a password through a one-time link",
    description = "Redeems the link once (invitation links live 72 h, reset links 1 h), sets the password (10 to 256 characters), unlocks the account and ends the user's sessions. A cross-site POST is refused with 403.",
    request_body(content = inline(SetPasswordForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Password set: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The form again: the password is refused (its length); the link stays usable", content_type = "text/html", body = String),
        (status = 403, description = "A POST from another site (Origin not ours, or Sec-Fetch-Site cross-site/same-site): nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The page saying the link is unknown, used or expired", content_type = "text/html", body = String),
    )
)]
pub(super) async fn set_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(f): Form<SetPasswordForm>,
) -> Response {
    if !same_site(&headers) {
        return forbidden("cross-site request refused");
    }
    let ip = client_ip(ip.as_ref().map(|e| &e.0)).map(|i| i.to_string());
    match accounts::redeem_link(&st.pools.primary, &f.token, &f.password, ip).await {
        Ok(_) => see_other("/app/login"),
        Err(e) => {
            let (status, valid) = match &e {
                accounts::AccountError::Invalid(..) => (StatusCode::BAD_REQUEST, true),
                accounts::AccountError::BadLink => (StatusCode::NOT_FOUND, false),
                other => {
                    tracing::error!(error = %other, "set password failed");
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable; retry shortly",
                    )
                        .into_response();
                }
            };
            let email = accounts::peek_link(&st.pools.primary, &f.token)
                .await
                .ok()
                .flatten()
                .map(|u| u.email)
                .unwrap_or_default();
            page(
                status,
                &SetPasswordPage {
                    css: CSS_PATH.as_str(),
                    valid,
                    email,
                    token: f.token,
                    error: valid.then(|| e.to_string()),
                },
            )
        }
    }
}
