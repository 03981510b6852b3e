//! Team and password reset: invitations and reset links are one-time links
//! (`shared::accounts`) sent by mail (`shared::mail`, over `SMTP_URL`; logged when unset).
//! Owners invite any role, admins invite admins and analysts; analysts see the team only.
//! A reset request answers the same whether or not the email has an account.
//! Team administration (change a role, remove a teammate, hand over ownership) follows
//! [`accounts::may_manage`]: owners anything, admins admins and analysts, nobody themselves,
//! and a team always keeps an owner.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    Extension, Form,
};
use serde::Deserialize;
use shared::{
    accounts::{self, LinkPurpose, Role},
    mail::Mail,
};
use uuid::Uuid;

use super::{chrome, csrf_ok, forbidden, link_url, page, same_site, Chrome, Signed, CSS_PATH};
use crate::{audit::ClientIp, error::ErrorEnvelope, AppState};

#[derive(Template)]
#[template(path = "dashboard/team.html")]
struct TeamPage {
    css: &'static str,
    chrome: Chrome,
    users: Vec<Member>,
    can_invite: bool,
    /// Teammates the signed-in owner may hand ownership to (empty for others).
    successors: Vec<(String, String)>,
    roles: Vec<&'static str>,
    notice: Option<String>,
    error: Option<String>,
    field_error: Option<String>,
}

/// A row of the team table.
struct Member {
    id: String,
    email: String,
    role: &'static str,
    state: &'static str,
    you: bool,
    /// Roles the signed-in user may give this teammate (empty: no change allowed).
    roles: Vec<&'static str>,
    removable: bool,
    /// Invited, no password yet, and manageable by the signed-in user.
    resendable: bool,
}

/// Roles `inviter` may give.
fn grantable(inviter: Role) -> Vec<Role> {
    match inviter {
        Role::Owner => Role::ALL.to_vec(),
        Role::Admin => vec![Role::Admin, Role::Analyst],
        Role::Analyst => Vec::new(),
    }
}

async fn team_view(
    st: &AppState,
    s: &accounts::Session,
    notice: Option<String>,
    error: Option<String>,
    field_error: Option<String>,
    status: StatusCode,
) -> Response {
    let all = accounts::list_users(&st.pools.primary, s.user.tenant_id)
        .await
        .unwrap_or_default();
    let successors = if s.user.role == Role::Owner {
        all.iter()
            .filter(|(u, has_pw)| u.id != s.user.id && *has_pw)
            .map(|(u, _)| (u.id.to_string(), u.email.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let users = all
        .into_iter()
        .map(|(u, has_pw)| {
            let roles = Role::ALL
                .into_iter()
                .filter(|r| *r != u.role && accounts::may_manage(&s.user, &u, Some(*r)).is_ok())
                .map(Role::as_str)
                .collect();
            Member {
                id: u.id.to_string(),
                removable: accounts::may_manage(&s.user, &u, None).is_ok(),
                you: u.id == s.user.id,
                state: if has_pw { "active" } else { "invited" },
                resendable: !has_pw && accounts::may_manage(&s.user, &u, None).is_ok(),
                role: u.role.as_str(),
                email: u.email,
                roles,
            }
        })
        .collect();
    let roles: Vec<&'static str> = grantable(s.user.role).iter().map(|r| r.as_str()).collect();
    page(
        status,
        &TeamPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(st, s, "team", "/app/team".into()).await,
            users,
            successors,
            can_invite: !roles.is_empty(),
            roles,
            notice,
            error,
            field_error,
        },
    )
}

#[utoipa::path(
    get,
    path = "/app/team",
    operation_id = "app_team_page",
    tag = "dashboard",
    summary = "Dashboard: the tenant's users (email, role, active or invited) and the invitation form",
    security(("dashboardSession" = [])),
    responses(
        (status = 200, description = "The team page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn team_page(State(st): State<AppState>, Signed(s): Signed) -> Response {
    team_view(&st, &s, None, None, None, StatusCode::OK).await
}

/// The invitation form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct InviteForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The teammate's email.
    #[serde(default)]
    #[schema(required = true)]
    email: String,
    /// `owner`, `admin` or `analyst` (one the inviter may give, else 403).
    #[serde(default)]
    #[schema(required = true, schema_with = roles)]
    role: String,
}

fn roles() -> utoipa::openapi::Object {
    super::one_of(
        "A role, one the signed-in user may give (else 403)",
        &Role::ALL.map(Role::as_str),
    )
}

fn link_mail(to: &str, subject: &str, intro: &str, link: &str, hours: u64) -> Mail {
    Mail {
        to: to.to_string(),
        subject: subject.to_string(),
        text: format!(
            "{intro}\n\nSet your password here (the link works once, for {hours} hours):\n{link}\n\nIf you did not expect this mail, ignore it.\n"
        ),
    }
}

#[utoipa::path(
    post,
    path = "/app/team/invite",
    operation_id = "app_invite_teammate",
    tag = "dashboard",
    summary = "Dashboard: invite a teammate by email (owners: any role; admins: admin, analyst)",
    description = "Creates the user (audited user.create) with a one-time invitation link (72 h) and mails it over SMTP_URL (logged when unset). A bad or taken email: 400 on the field. A role the inviter may not give (analysts none), or a CSRF failure: 403. Mail failure: 502 (the user exists; \"Resend invitation\" on their row, POST /app/team/{id}/resend).",
    security(("dashboardSession" = [])),
    request_body(content = inline(InviteForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The team page with the notice \"Invitation sent to …\"", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The team page with the error on the email field: not an email, or already a user", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or a role the inviter may not give: nothing changes", body = ErrorEnvelope),
        (status = 502, description = "The team page: the teammate was created but the mail could not be sent", content_type = "text/html", body = String),
        (status = 503, description = "The team page with the error: the change could not be made; retry shortly", content_type = "text/html", body = String),
    )
)]
pub async fn invite(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<InviteForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let Some(role) = Role::parse(&f.role).filter(|r| grantable(s.user.role).contains(r)) else {
        return forbidden("your role cannot invite with that role");
    };
    let actor = super::actor(&s, ip);
    let created = async {
        let mut tx = st.pools.primary.begin().await?;
        let user =
            accounts::create_user(&mut tx, s.user.tenant_id, &f.email, role, None, &actor).await?;
        let token = accounts::issue_link(&mut tx, user.id, LinkPurpose::Invitation).await?;
        tx.commit().await?;
        Ok::<_, accounts::AccountError>((user, token))
    }
    .await;
    let (user, token) = match created {
        Ok(x) => x,
        Err(e @ (accounts::AccountError::Invalid(..) | accounts::AccountError::EmailTaken)) => {
            return team_view(
                &st,
                &s,
                None,
                None,
                Some(e.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "invitation failed");
            let msg = Some("The invitation could not be created; retry shortly.".to_string());
            return team_view(&st, &s, None, msg, None, StatusCode::SERVICE_UNAVAILABLE).await;
        }
    };
    send_invitation(&st, &s, &user, token, "Invitation sent to").await
}

/// Mails `user` their invitation link (`token`); the team page with `{sent} {email}.`, or
/// with why the mail did not go out (the account exists either way: resend from its row).
async fn send_invitation(
    st: &AppState,
    s: &accounts::Session,
    user: &accounts::User,
    token: String,
    sent: &str,
) -> Response {
    let link = link_url(&st.config, "set-password", &token);
    let mail = link_mail(
        &user.email,
        "You are invited to RetentionOS",
        &format!(
            "{} invited you to their team on RetentionOS as {}.",
            s.user.email,
            user.role.as_str()
        ),
        &link,
        LinkPurpose::Invitation.ttl().as_secs() / 3600,
    );
    match st.mailer.send(&mail).await {
        Ok(_) => {
            let notice = Some(format!("{sent} {}.", user.email));
            team_view(st, s, notice, None, None, StatusCode::OK).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "invitation mail failed");
            let msg = Some(format!(
                "{} is on the team but the mail could not be sent ({e}); use \"Resend invitation\" on their row later.",
                user.email
            ));
            team_view(st, s, None, msg, None, StatusCode::BAD_GATEWAY).await
        }
    }
}

/// `POST /app/team/{id}/resend`: a new invitation link for a teammate who has not set a
/// password yet (their earlier links stop working).
#[utoipa::path(
    post,
    path = "/app/team/{id}/resend",
    operation_id = "app_resend_invitation",
    tag = "dashboard",
    summary = "Dashboard: send a teammate's invitation again (they have not set a password yet)",
    description = "A new one-time invitation link (72 h) mailed over SMTP_URL; the teammate's earlier unused invitation links stop working. Same rules as removal (owners anyone, admins admins and analysts, never yourself); audited as user.reinvite. A teammate who already set a password, an analyst, or a CSRF failure: 403. Mail failure: 502 (resend later).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The teammate's user id (not a UUID, or another tenant's: 404)")),
    request_body(content = inline(super::CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The team page with the notice \"Invitation sent again to …\"", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "The team page saying which rule refuses the change (analysts manage nobody, admins no owner and make none, nobody themselves); or, as the error envelope, a cross-site POST or the csrf token missing or wrong. Nothing changes", content((String = "text/html"), (ErrorEnvelope = "application/json"))),
        (status = 404, description = "The team page with the error: no such teammate", content_type = "text/html", body = String),
        (status = 502, description = "The team page: the new link exists but the mail could not be sent", content_type = "text/html", body = String),
        (status = 503, description = "The team page with the error: the change could not be made; retry shortly", content_type = "text/html", body = String),
    )
)]
pub async fn resend(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(id): Path<String>,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let actor = super::actor(&s, ip);
    let done = match member_id(&id) {
        Ok(target) => accounts::reinvite(&st.pools.primary, &s.user, target, &actor).await,
        Err(e) => Err(e),
    };
    match done {
        Ok((user, token)) => {
            send_invitation(&st, &s, &user, token, "Invitation sent again to").await
        }
        Err(e) => team_result(&st, &s, Err(e)).await,
    }
}

/// A teammate's role form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The new role: `owner`, `admin` or `analyst` (anything else: 403).
    #[serde(default)]
    #[schema(required = true, schema_with = roles)]
    role: String,
}

/// The ownership transfer form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TransferForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The new owner's user id (a teammate who has set a password).
    #[serde(default)]
    #[schema(required = true, format = Uuid)]
    to: String,
    /// The new owner's email, typed again.
    #[serde(default)]
    #[schema(required = true)]
    confirm: String,
}

/// The answer to a team change: the page with a notice, or with the refusal (403 for a rule,
/// 404 for another tenant's user, 409 for the last owner, 400 for a missing confirmation).
async fn team_result(
    st: &AppState,
    s: &accounts::Session,
    done: Result<String, accounts::TeamError>,
) -> Response {
    use accounts::TeamError as E;
    let (status, notice, error) = match done {
        Ok(n) => (StatusCode::OK, Some(n), None),
        Err(e) => {
            let status = match &e {
                E::NotFound => StatusCode::NOT_FOUND,
                E::Forbidden(_) => StatusCode::FORBIDDEN,
                E::LastOwner => StatusCode::CONFLICT,
                E::NotConfirmed => StatusCode::BAD_REQUEST,
                E::Db(err) => {
                    tracing::error!(error = %err, "team change failed");
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            (status, None, Some(e.to_string()))
        }
    };
    team_view(st, s, notice, error, None, status).await
}

fn member_id(id: &str) -> Result<Uuid, accounts::TeamError> {
    Uuid::parse_str(id).map_err(|_| accounts::TeamError::NotFound)
}

/// `POST /app/team/{id}/role`.
#[utoipa::path(
    post,
    path = "/app/team/{id}/role",
    operation_id = "app_change_role",
    tag = "dashboard",
    summary = "Dashboard: change a teammate's role (owners: anyone but themselves; admins: admins and analysts, never to owner)",
    description = "Audited as user.role_change. An unknown role: 403. The last owner keeps the role: 409.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The teammate's user id (not a UUID, or another tenant's: 404)")),
    request_body(content = inline(RoleForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The team page with the notice \"… is now <role>\"", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "The team page saying which rule refuses the change (analysts manage nobody, admins no owner and make none, nobody themselves); or, as the error envelope, a cross-site POST or the csrf token missing or wrong. Nothing changes", content((String = "text/html"), (ErrorEnvelope = "application/json"))),
        (status = 404, description = "The team page with the error: no such teammate", content_type = "text/html", body = String),
        (status = 409, description = "The team page with the error: the last owner keeps the role", content_type = "text/html", body = String),
        (status = 503, description = "The team page with the error: the change could not be made; retry shortly", content_type = "text/html", body = String),
    )
)]
pub async fn change_role(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(id): Path<String>,
    Form(f): Form<RoleForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let actor = super::actor(&s, ip);
    let done = async {
        let role = Role::parse(&f.role).ok_or(accounts::TeamError::Forbidden("unknown role"))?;
        let u = accounts::change_role(&st.pools.primary, &s.user, member_id(&id)?, role, &actor)
            .await?;
        Ok(format!("{} is now {}.", u.email, u.role.as_str()))
    }
    .await;
    team_result(&st, &s, done).await
}

/// `POST /app/team/{id}/remove`: the teammate's sessions end at once.
#[utoipa::path(
    post,
    path = "/app/team/{id}/remove",
    operation_id = "app_remove_teammate",
    tag = "dashboard",
    summary = "Dashboard: remove a teammate (their sessions end at once)",
    description = "Same rules as a role change; audited as user.remove; never the last owner (409).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The teammate's user id (not a UUID, or another tenant's: 404)")),
    request_body(content = inline(super::CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The team page with the notice \"… was removed from the team\"", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "The team page saying which rule refuses the change (analysts manage nobody, admins no owner and make none, nobody themselves); or, as the error envelope, a cross-site POST or the csrf token missing or wrong. Nothing changes", content((String = "text/html"), (ErrorEnvelope = "application/json"))),
        (status = 404, description = "The team page with the error: no such teammate", content_type = "text/html", body = String),
        (status = 409, description = "The team page with the error: the last owner cannot be removed", content_type = "text/html", body = String),
        (status = 503, description = "The team page with the error: the change could not be made; retry shortly", content_type = "text/html", body = String),
    )
)]
pub async fn remove(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(id): Path<String>,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let actor = super::actor(&s, ip);
    let done = async {
        let u = accounts::remove_user(&st.pools.primary, &s.user, member_id(&id)?, &actor).await?;
        Ok(format!("{} was removed from the team.", u.email))
    }
    .await;
    team_result(&st, &s, done).await
}

/// `POST /app/team/transfer`: the owner hands ownership to a teammate and becomes admin.
#[utoipa::path(
    post,
    path = "/app/team/transfer",
    operation_id = "app_transfer_ownership",
    tag = "dashboard",
    summary = "Dashboard: hand over ownership to a teammate (owner only); the owner becomes admin",
    description = "One transaction, audited as user.owner_transfer. Not an owner, or `to` is yourself: 403; `to` not a teammate: 404; a confirmation that is not the new owner's email: 400.",
    security(("dashboardSession" = [])),
    request_body(content = inline(TransferForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The team page with the notice \"… is now the owner; you are an admin\"", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The team page with the error: the confirmation is not the new owner's email", content_type = "text/html", body = String),
        (status = 403, description = "The team page saying which rule refuses the change (analysts manage nobody, admins no owner and make none, nobody themselves); or, as the error envelope, a cross-site POST or the csrf token missing or wrong. Nothing changes", content((String = "text/html"), (ErrorEnvelope = "application/json"))),
        (status = 404, description = "The team page with the error: no such teammate", content_type = "text/html", body = String),
        (status = 503, description = "The team page with the error: the change could not be made; retry shortly", content_type = "text/html", body = String),
    )
)]
pub async fn transfer(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<TransferForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let actor = super::actor(&s, ip);
    let done = async {
        let u = accounts::transfer_ownership(
            &st.pools.primary,
            &s.user,
            member_id(&f.to)?,
            &f.confirm,
            &actor,
        )
        .await?;
        Ok(format!("{} is now the owner; you are an admin.", u.email))
    }
    .await;
    // The session's user is read again: the role just changed.
    let mut s = s;
    if let Ok(Some(u)) = accounts::user_by_id(&st.pools.primary, s.user.id).await {
        s.user = u;
    }
    team_result(&st, &s, done).await
}

#[derive(Template)]
#[template(path = "dashboard/reset.html")]
struct ResetPage {
    css: &'static str,
    sent: bool,
    error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/app/reset-password",
    operation_id = "app_reset_password_page",
    tag = "dashboard",
    summary = "Password reset form (field email)",
    responses((status = 200, description = "The reset form", content_type = "text/html", body = String))
)]
pub async fn reset_page() -> Response {
    page(
        StatusCode::OK,
        &ResetPage {
            css: CSS_PATH.as_str(),
            sent: false,
            error: None,
        },
    )
}

/// The password reset form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetForm {
    /// The account's email.
    #[serde(default)]
    #[schema(required = true)]
    email: String,
}

/// Sends a reset link when the email has an account; the answer is the same either way.
/// Each request counts toward the address's sign-in throttle (no mail bombing).
#[utoipa::path(
    post,
    path = "/app/reset-password",
    operation_id = "app_request_password_reset",
    tag = "dashboard",
    summary = "Mail a one-time password reset link (1 h) when the email has an account",
    description = "The same answer whether or not the account exists (and when the mail fails: it is logged). Each request counts toward the address's sign-in throttle: over it, 429. Cross-site: 403.",
    request_body(content = inline(ResetForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The page saying a link was sent if the account exists", content_type = "text/html", body = String),
        (status = 403, description = "A POST from another site: nothing is sent", body = ErrorEnvelope),
        (status = 429, description = "The reset page: too many requests from this address", content_type = "text/html", body = String),
    )
)]
pub async fn reset(
    State(st): State<AppState>,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<ResetForm>,
) -> Response {
    if !same_site(&headers) {
        return forbidden("cross-site request refused");
    }
    let ip = ip.map(|e| e.0 .0);
    if ip.is_some_and(|ip| st.login_throttle.blocked(ip).is_some()) {
        let e = Some("Too many requests from your address; try again later.".to_string());
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            &ResetPage {
                css: CSS_PATH.as_str(),
                sent: false,
                error: e,
            },
        );
    }
    if let Some(ip) = ip {
        st.login_throttle.failed(ip);
    }
    match accounts::user_by_email(&st.pools.primary, &f.email).await {
        Ok(Some(user)) => {
            let token = async {
                let mut conn = st.pools.primary.acquire().await?;
                accounts::issue_link(&mut conn, user.id, LinkPurpose::ResetPassword).await
            }
            .await;
            match token {
                Ok(token) => {
                    let link = link_url(&st.config, "set-password", &token);
                    let mail = link_mail(
                        &user.email,
                        "Reset your RetentionOS password",
                        "Someone (hopefully you) asked to reset the password of this account.",
                        &link,
                        1,
                    );
                    if let Err(e) = st.mailer.send(&mail).await {
                        tracing::warn!(error = %e, "password reset mail failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "reset link failed"),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "reset lookup failed"),
    }
    page(
        StatusCode::OK,
        &ResetPage {
            css: CSS_PATH.as_str(),
            sent: true,
            error: None,
        },
    )
}
