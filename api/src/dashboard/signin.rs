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

pub(super) async fn login_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = cookie_token(&headers) {
        if let Ok(Some(_)) = accounts::session(&st.pools.primary, &t).await {
            return see_other("/app");
        }
    }
    page(StatusCode::OK, &LoginPage::new(String::new(), None))
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    email: String,
    password: String,
}

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

#[derive(Deserialize)]
pub(super) struct ModeForm {
    #[serde(default)]
    csrf: String,
    mode: String,
    #[serde(default)]
    back: String,
}

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

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

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

#[derive(Deserialize)]
pub(super) struct SetPasswordForm {
    token: String,
    password: String,
}

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
