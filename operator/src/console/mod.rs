//! The admin console: where the operator of the hosting business manages clients.
//!
//! - [`db`]: SQLite (embedded default) or PostgreSQL through sqlx, migrations embedded.
//! - [`cluster`]: the Kubernetes side behind a trait (kube, unavailable; the in-memory one
//!   is in the `clawhost-testing` crate).
//! - [`service`]: every action, shared by the pages and the JSON API.
//! - [`auth`]: passwords, sessions, API tokens, CSRF, rate limiting.
//! - [`pages`] and [`api`]: thin HTTP handlers; [`routes`] is the one route table.

pub mod admins;
pub mod api;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod extract;
pub mod pages;
pub mod scopes;
pub mod service;
pub mod setup;
pub mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use http::{HeaderValue, Method, StatusCode, header};

use crate::config::OperatorConfig;
use cluster::Cluster;
use db::{Admin, Db};
use scopes::Scope;

/// Settings of one console process.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Namespace new Assistants (and their Secrets) are created in.
    pub namespace: String,
    /// Always mark cookies Secure (behind TLS without X-Forwarded-Proto).
    pub secure_cookies: bool,
    pub usage_interval: Duration,
    /// Peers whose `X-Forwarded-For` names the real client address (the ingress); from
    /// anyone else the header is ignored, so it cannot be spoofed to dodge the limiter.
    pub trusted_proxies: Vec<auth::IpCidr>,
    /// The console's external base URL (`https://console.example.com`): handoff links are
    /// built from it, never from the request's Host header.
    pub public_url: Option<String>,
    /// How long a handoff link stays open.
    pub handoff_lifetime: Duration,
    /// Whom a client with a dead handoff link should ask (else the issuing admin).
    pub support_contact: Option<String>,
    /// The access key shared with the operator: opens the sealed invite URL.
    pub access_key: Option<crate::sealing::SealingKey>,
    /// A client counts as "never connected" when its invite is not accepted this many
    /// days after it was created.
    pub never_connected_days: i64,
    /// The Stripe webhook signing secret (`whsec_...`), read from this file on each event
    /// (a renewed Secret applies without a restart); unset: the webhook answers 404 and
    /// invoices are marked paid in the console.
    pub stripe_webhook_secret_file: Option<std::path::PathBuf>,
    /// How far an event's signed timestamp may be from now (replays are refused beyond).
    pub stripe_tolerance: Duration,
    /// How often the billing engine applies due transitions.
    pub billing_interval: Duration,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: db::default_url(),
            namespace: "clawhost-clients".into(),
            secure_cookies: false,
            usage_interval: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            public_url: None,
            handoff_lifetime: service::handoff::DEFAULT_LIFETIME,
            support_contact: None,
            access_key: None,
            never_connected_days: 3,
            stripe_webhook_secret_file: None,
            stripe_tolerance: Duration::from_secs(300),
            billing_interval: Duration::from_secs(60),
        }
    }
}

/// Shared state of the console.
pub struct Console {
    pub db: Db,
    pub cluster: Arc<dyn Cluster>,
    pub config: OperatorConfig,
    pub opts: ConsoleOptions,
    pub login_limiter: auth::LoginLimiter,
    /// Requests to the handoff page per client address.
    pub welcome_limiter: auth::LoginLimiter,
}

impl Console {
    pub fn new(
        db: Db,
        cluster: Arc<dyn Cluster>,
        config: OperatorConfig,
        opts: ConsoleOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            cluster,
            config,
            opts,
            login_limiter: auth::LoginLimiter::default(),
            welcome_limiter: auth::LoginLimiter::per_address(
                pages::welcome::REQUESTS_PER_WINDOW,
                pages::welcome::WINDOW,
            ),
        })
    }
}

pub type Ctx = Arc<Console>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Sign-in page, style sheet, health check.
    Public,
    /// Page read with a session cookie.
    Page,
    /// State-changing form post: session cookie plus the session's CSRF token.
    Form,
    /// Sign-in form post: CSRF token bound to a pre-session cookie.
    LoginForm,
    /// The client's handoff page (`/welcome/{token}`): no session, the link token in the
    /// path is the credential; rate-limited per client address, never cached or indexed.
    Handoff,
    /// The payment provider's webhook: no session, no CSRF, no API token; the request's
    /// signature (checked by the handler against the configured secret) is the credential.
    Webhook,
    /// JSON API with a bearer token holding this scope (cookies are not accepted, so CSRF
    /// cannot apply). GET routes need a read scope.
    Api(Scope),
}

#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// The signed-in admin and the session's CSRF token (pages).
#[derive(Debug, Clone)]
pub struct Session {
    pub admin: Admin,
    pub csrf: String,
    /// Whether cookies must be Secure (TLS).
    pub secure: bool,
}

/// The one route table: the router is built from it and the authorization test walks it,
/// so no route can exist without an access rule.
fn table() -> Vec<(RouteInfo, MethodRouter<Ctx>)> {
    use Access::*;
    let r = |method: Method, path: &'static str, access: Access, mr: MethodRouter<Ctx>| {
        (
            RouteInfo {
                method,
                path,
                access,
            },
            mr,
        )
    };
    let mut routes = vec![
        r(Method::GET, "/healthz", Public, get(|| async { "ok" })),
        r(Method::GET, "/static/console.css", Public, get(pages::css)),
        r(Method::GET, "/login", Public, get(pages::auth::login_page)),
        r(Method::POST, "/login", LoginForm, post(pages::auth::login)),
        // First run: refused (404/410) unless no administrator exists and the token is live.
        r(
            Method::GET,
            "/setup/{token}",
            Public,
            get(pages::setup::show),
        ),
        r(
            Method::POST,
            "/setup/{token}",
            LoginForm,
            post(pages::setup::create),
        ),
        r(
            Method::GET,
            "/welcome/{token}",
            Handoff,
            get(pages::welcome::show),
        ),
        r(
            Method::POST,
            "/welcome/{token}",
            Handoff,
            post(pages::welcome::reveal),
        ),
        r(
            Method::POST,
            "/billing/stripe/webhook",
            Webhook,
            post(billing::webhook::receive)
                .layer(DefaultBodyLimit::max(billing::webhook::BODY_LIMIT)),
        ),
        r(Method::POST, "/logout", Form, post(pages::auth::logout)),
        r(
            Method::GET,
            "/",
            Page,
            get(|| async { Redirect::to("/clients") }),
        ),
        r(Method::GET, "/clients", Page, get(pages::clients::list)),
        r(
            Method::GET,
            "/clients/new",
            Page,
            get(pages::clients::new_form),
        ),
        r(Method::POST, "/clients", Form, post(pages::clients::create)),
        r(Method::GET, "/clients/{id}", Page, get(pages::client::show)),
        r(
            Method::POST,
            "/clients/{id}/suspend",
            Form,
            post(pages::client::suspend),
        ),
        r(
            Method::GET,
            "/clients/{id}/suspend",
            Page,
            get(pages::confirm::suspend),
        ),
        r(
            Method::POST,
            "/clients/{id}/resume",
            Form,
            post(pages::client::resume),
        ),
        r(
            Method::POST,
            "/clients/{id}/restart",
            Form,
            post(pages::client::restart),
        ),
        r(
            Method::GET,
            "/clients/{id}/restart",
            Page,
            get(pages::confirm::restart),
        ),
        r(
            Method::POST,
            "/clients/{id}/version",
            Form,
            post(pages::client::version),
        ),
        r(
            Method::POST,
            "/clients/{id}/plan",
            Form,
            post(pages::client::plan),
        ),
        r(
            Method::POST,
            "/clients/{id}/rotate-token",
            Form,
            post(pages::client::rotate_token),
        ),
        r(
            Method::GET,
            "/clients/{id}/rotate-token",
            Page,
            get(pages::confirm::rotate_token),
        ),
        r(
            Method::GET,
            "/clients/{id}/access/{action}",
            Page,
            get(pages::access::confirm_action),
        ),
        r(
            Method::POST,
            "/clients/{id}/access/{action}",
            Form,
            post(pages::access::action),
        ),
        r(
            Method::GET,
            "/clients/{id}/handoff",
            Page,
            get(pages::access::confirm_handoff),
        ),
        r(
            Method::POST,
            "/clients/{id}/handoff",
            Form,
            post(pages::access::handoff),
        ),
        r(
            Method::POST,
            "/clients/{id}/record",
            Form,
            post(pages::client::record),
        ),
        r(
            Method::GET,
            "/clients/{id}/delete",
            Page,
            get(pages::client::delete_form),
        ),
        r(
            Method::POST,
            "/clients/{id}/delete",
            Form,
            post(pages::client::delete),
        ),
        r(Method::GET, "/fleet", Page, get(pages::fleet::show)),
        r(
            Method::GET,
            "/fleet/backups",
            Page,
            get(pages::backups::fleet),
        ),
        r(
            Method::GET,
            "/fleet/adopt",
            Page,
            get(pages::fleet::adopt_form),
        ),
        r(
            Method::POST,
            "/fleet/adopt",
            Form,
            post(pages::fleet::adopt),
        ),
        r(Method::GET, "/usage", Page, get(pages::usage::show)),
        r(Method::GET, "/usage.csv", Page, get(pages::usage::csv)),
        r(Method::GET, "/audit", Page, get(pages::audit::show)),
        r(Method::GET, "/tokens", Page, get(pages::tokens::show)),
        r(Method::POST, "/tokens", Form, post(pages::tokens::create)),
        r(
            Method::POST,
            "/tokens/{id}/revoke",
            Form,
            post(pages::tokens::revoke),
        ),
        r(
            Method::GET,
            "/tokens/{id}/revoke",
            Page,
            get(pages::confirm::revoke_token),
        ),
        r(
            Method::GET,
            "/api/v1/clients",
            Api(Scope::ClientsRead),
            get(api::list_clients),
        ),
        r(
            Method::POST,
            "/api/v1/clients",
            Api(Scope::ClientsWrite),
            post(api::create_client),
        ),
        r(
            Method::POST,
            "/api/v1/clients/adopt",
            Api(Scope::ClientsWrite),
            post(api::adopt),
        ),
        r(
            Method::GET,
            "/api/v1/clients/{id}",
            Api(Scope::ClientsRead),
            get(api::get_client),
        ),
        r(
            Method::DELETE,
            "/api/v1/clients/{id}",
            Api(Scope::ClientsDelete),
            axum::routing::delete(api::delete_client),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/suspend",
            Api(Scope::ClientsWrite),
            post(api::suspend),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/resume",
            Api(Scope::ClientsWrite),
            post(api::resume),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/restart",
            Api(Scope::ClientsWrite),
            post(api::restart),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/version",
            Api(Scope::ClientsWrite),
            post(api::version),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/plan",
            Api(Scope::ClientsWrite),
            post(api::plan),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/rotate-token",
            Api(Scope::ClientsRotateToken),
            post(api::rotate_token),
        ),
        r(
            Method::GET,
            "/api/v1/clients/{id}/access",
            Api(Scope::ClientsRead),
            get(api::access),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/access/{action}",
            Api(Scope::ClientsWrite),
            post(api::access_action),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/handoff",
            Api(Scope::ClientsRotateToken),
            post(api::handoff),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/record",
            Api(Scope::ClientsWrite),
            post(api::record),
        ),
        r(
            Method::GET,
            "/api/v1/fleet",
            Api(Scope::ClientsRead),
            get(api::fleet),
        ),
        r(
            Method::GET,
            "/api/v1/usage",
            Api(Scope::UsageRead),
            get(api::usage),
        ),
        r(
            Method::GET,
            "/api/v1/audit",
            Api(Scope::AuditRead),
            get(api::audit),
        ),
    ];
    routes.extend(billing_table());
    routes.extend(backup_table());
    routes
}

/// Backups' pages and API (issue 16), one block of the route table.
fn backup_table() -> Vec<(RouteInfo, MethodRouter<Ctx>)> {
    use Access::*;
    use pages::backups as pb;
    let r = |method: Method, path: &'static str, access: Access, mr: MethodRouter<Ctx>| {
        (
            RouteInfo {
                method,
                path,
                access,
            },
            mr,
        )
    };
    vec![
        r(
            Method::POST,
            "/clients/{id}/backups",
            Form,
            post(pb::request),
        ),
        r(
            Method::GET,
            "/clients/{id}/backups/{snapshot}/restore",
            Page,
            get(pb::restore_confirm),
        ),
        r(
            Method::POST,
            "/clients/{id}/backups/{snapshot}/restore",
            Form,
            post(pb::restore),
        ),
        r(
            Method::GET,
            "/api/v1/clients/{id}/backups",
            Api(Scope::ClientsRead),
            get(api::backups::list),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/backups",
            Api(Scope::ClientsWrite),
            post(api::backups::request),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/backups/{snapshot}/restore",
            Api(Scope::ClientsWrite),
            post(api::backups::restore),
        ),
        r(
            Method::GET,
            "/api/v1/fleet/backups",
            Api(Scope::ClientsRead),
            get(api::backups::fleet),
        ),
    ]
}

/// Billing's pages and API (issue 15), one block of the route table.
fn billing_table() -> Vec<(RouteInfo, MethodRouter<Ctx>)> {
    use Access::*;
    use api::billing as ab;
    use axum::routing::put;
    use pages::billing as pb;
    let r = |method: Method, path: &'static str, access: Access, mr: MethodRouter<Ctx>| {
        (
            RouteInfo {
                method,
                path,
                access,
            },
            mr,
        )
    };
    let read = Api(Scope::BillingRead);
    let write = Api(Scope::BillingWrite);
    vec![
        r(Method::GET, "/billing", Page, get(pb::attention)),
        r(Method::GET, "/billing/prices", Page, get(pb::prices)),
        r(Method::POST, "/billing/prices", Form, post(pb::add_price)),
        r(Method::GET, "/billing/settings", Page, get(pb::settings)),
        r(
            Method::POST,
            "/billing/settings",
            Form,
            post(pb::save_settings),
        ),
        r(
            Method::GET,
            "/billing/invoices",
            Page,
            get(pb::invoices::list),
        ),
        r(
            Method::GET,
            "/billing/invoices.csv",
            Page,
            get(pb::invoices::csv),
        ),
        r(
            Method::GET,
            "/billing/invoices.json",
            Page,
            get(pb::invoices::json),
        ),
        r(
            Method::GET,
            "/billing/invoices/run",
            Page,
            get(pb::invoices::run_confirm),
        ),
        r(
            Method::POST,
            "/billing/invoices/run",
            Form,
            post(pb::invoices::run),
        ),
        r(
            Method::GET,
            "/billing/invoices/{number}",
            Page,
            get(pb::invoices::show),
        ),
        r(
            Method::POST,
            "/billing/invoices/{number}/paid",
            Form,
            post(pb::invoices::mark_paid),
        ),
        r(
            Method::POST,
            "/billing/invoices/{number}/credit-notes",
            Form,
            post(pb::invoices::credit),
        ),
        r(
            Method::POST,
            "/clients/{id}/subscription/customer",
            Form,
            post(pb::subscription::set_customer),
        ),
        r(
            Method::GET,
            "/clients/{id}/subscription/{action}",
            Page,
            get(pb::subscription::confirm),
        ),
        r(
            Method::POST,
            "/clients/{id}/subscription/{action}",
            Form,
            post(pb::subscription::act),
        ),
        r(Method::GET, "/api/v1/billing/prices", read, get(ab::prices)),
        r(
            Method::POST,
            "/api/v1/billing/prices",
            write,
            post(ab::add_price),
        ),
        r(
            Method::GET,
            "/api/v1/billing/settings",
            read,
            get(ab::settings),
        ),
        r(
            Method::PUT,
            "/api/v1/billing/settings",
            write,
            put(ab::put_settings),
        ),
        r(
            Method::GET,
            "/api/v1/billing/attention",
            read,
            get(ab::attention),
        ),
        r(
            Method::POST,
            "/api/v1/billing/invoice-runs",
            write,
            post(ab::run_invoices),
        ),
        r(
            Method::GET,
            "/api/v1/billing/invoices",
            read,
            get(ab::invoices),
        ),
        r(
            Method::GET,
            "/api/v1/billing/invoices.csv",
            read,
            get(ab::export_csv),
        ),
        r(
            Method::GET,
            "/api/v1/billing/invoices.json",
            read,
            get(ab::export_json),
        ),
        r(
            Method::GET,
            "/api/v1/billing/invoices/{number}",
            read,
            get(ab::invoice),
        ),
        r(
            Method::POST,
            "/api/v1/billing/invoices/{number}/paid",
            write,
            post(ab::mark_paid),
        ),
        r(
            Method::POST,
            "/api/v1/billing/invoices/{number}/credit-notes",
            write,
            post(ab::credit_note),
        ),
        r(
            Method::GET,
            "/api/v1/clients/{id}/subscription",
            read,
            get(ab::subscription),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/subscription",
            write,
            post(ab::start),
        ),
        r(
            Method::PUT,
            "/api/v1/clients/{id}/subscription/customer",
            write,
            put(ab::set_customer),
        ),
        r(
            Method::POST,
            "/api/v1/clients/{id}/subscription/{action}",
            write,
            post(ab::act),
        ),
    ]
}

/// Every route with its access rule.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(i, _)| i).collect()
}

/// The console's HTTP application.
pub fn app(ctx: Ctx) -> Router {
    let mut router: Router<Ctx> = Router::new();
    for (info, mr) in table() {
        let guarded = match info.access {
            Access::Public => mr,
            Access::Page => mr.layer(middleware::from_fn_with_state(ctx.clone(), require_session)),
            Access::Form => mr.layer(middleware::from_fn_with_state(
                ctx.clone(),
                require_session_csrf,
            )),
            Access::LoginForm => mr.layer(middleware::from_fn(require_login_csrf)),
            Access::Handoff => mr.layer(middleware::from_fn_with_state(
                ctx.clone(),
                pages::welcome::guard,
            )),
            Access::Webhook => mr,
            Access::Api(scope) => mr.layer(middleware::from_fn_with_state(
                (ctx.clone(), scope),
                require_api_token,
            )),
        };
        router = router.route(info.path, guarded);
    }
    router
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(security_headers))
        .with_state(ctx)
}

fn is_secure(ctx: &Console, headers: &http::HeaderMap) -> bool {
    ctx.opts.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

async fn session_of(ctx: &Console, headers: &http::HeaderMap) -> Option<Session> {
    let id = auth::cookie(headers, auth::SESSION_COOKIE)?;
    let (admin, csrf) = ctx
        .db
        .session(&auth::token_hash(id), service::now())
        .await
        .ok()??;
    Some(Session {
        admin,
        csrf,
        secure: is_secure(ctx, headers),
    })
}

async fn require_session(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    match session_of(&ctx, req.headers()).await {
        Some(s) => {
            req.extensions_mut().insert(s.admin.clone());
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        None => Redirect::to("/login").into_response(),
    }
}

const FORM_LIMIT: usize = 256 * 1024;

/// Reads the `_csrf` field of a url-encoded body, then hands the body on unchanged.
async fn take_form_csrf(req: Request) -> Result<(Request, Option<String>), Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
    let token = form_urlencoded_field(&bytes, auth::CSRF_FIELD);
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| {
            urlencoding::decode(&v.replace('+', " "))
                .ok()
                .map(|v| v.into_owned())
        })
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message_page(
            "Request refused",
            "The form was missing a valid CSRF token. Reload the page and try again.",
        ),
    )
        .into_response()
}

async fn require_session_csrf(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let Some(s) = session_of(&ctx, req.headers()).await else {
        return Redirect::to("/login").into_response();
    };
    let (mut req, token) = match take_form_csrf(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match token {
        Some(t) if auth::constant_time_eq(&t, &s.csrf) => {
            req.extensions_mut().insert(s.admin.clone());
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        _ => csrf_refused(),
    }
}

/// Sign-in has no session yet: its CSRF token is a double-submit cookie set by the form.
async fn require_login_csrf(req: Request, next: Next) -> Response {
    let cookie = auth::cookie(req.headers(), auth::LOGIN_CSRF_COOKIE).map(str::to_string);
    let (req, token) = match take_form_csrf(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match (cookie, token) {
        (Some(c), Some(t)) if !c.is_empty() && auth::constant_time_eq(&c, &t) => {
            next.run(req).await
        }
        _ => csrf_refused(),
    }
}

/// A bearer token that is live (unrevoked, unexpired, admin enabled) and holds `scope`.
/// Unknown tokens get one answer; a known token is told why it fails (expired, disabled,
/// missing scope) so its owner can fix it: knowing the token already proves possession.
async fn require_api_token(
    State((ctx, scope)): State<(Ctx, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let now = service::now();
    let found = match token {
        Some(t) if t.starts_with(auth::API_TOKEN_PREFIX) => {
            match ctx.db.api_token_auth(&auth::token_hash(&t), now).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "API token lookup failed");
                    return api::error(StatusCode::SERVICE_UNAVAILABLE, "database error");
                }
            }
        }
        _ => None,
    };
    let Some(found) = found else {
        return api::error(
            StatusCode::UNAUTHORIZED,
            "a valid API token is required (Authorization: Bearer chk_...)",
        );
    };
    if let Some(exp) = found.expires_at.filter(|e| *e <= now) {
        return api::error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "this API token expired on {}; create a new one on the API tokens page",
                pages::fmt_time(exp)
            ),
        );
    }
    if found.admin_disabled {
        return api::error(
            StatusCode::UNAUTHORIZED,
            "the administrator this API token belongs to is disabled",
        );
    }
    if !scopes::Scopes::from_stored(&found.scopes).allows(scope) {
        return api::error(
            StatusCode::FORBIDDEN,
            &format!("this API token lacks the scope {scope} that this request needs"),
        );
    }
    req.extensions_mut().insert(found.admin);
    next.run(req).await
}

/// No scripts, no external assets, no framing: the CSP allows only our own style sheet.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Builds the cluster side: kube (with a watch cache) or unavailable with the reason.
pub async fn connect_cluster() -> Arc<dyn Cluster> {
    match kube::Client::try_default().await {
        Ok(client) => Arc::new(cluster::KubeCluster::with_watch(client)),
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes configuration; serving database features only");
            Arc::new(cluster::UnavailableCluster {
                reason: format!("no Kubernetes configuration could be loaded ({e})"),
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Db(#[from] db::DbError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("console server: {0}")]
    Serve(std::io::Error),
}

/// Runs the console until `shutdown` completes.
pub async fn serve(
    opts: ConsoleOptions,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let db = Db::connect(&opts.database_url).await?;
    let cluster = connect_cluster().await;
    serve_console(Console::new(db, cluster, config, opts), shutdown).await
}

/// Runs a console over the cluster side it was built with until `shutdown` completes.
pub async fn serve_console(
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let opts = ctx.opts.clone();
    let sampler = tokio::spawn(usage::run_sampler(ctx.clone(), opts.usage_interval));
    let billing_engine = tokio::spawn(billing::engine::run(ctx.clone(), opts.billing_interval));
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServeError::Bind(opts.listen, e))?;
    tracing::info!(listen = %opts.listen, "console serving");
    setup::announce(&ctx).await;
    let r = axum::serve(
        listener,
        app(ctx).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(ServeError::Serve);
    sampler.abort();
    billing_engine.abort();
    r
}
