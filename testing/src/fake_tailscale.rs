//! A stand-in for the Tailscale API's device-invite endpoints (v2) on loopback, with the
//! errors the client must handle: 401 for any bearer that is not the configured user-owned
//! token (an OAuth client's access token included), 404 for unknown devices and invites,
//! injectable 429 (with `Retry-After`) and 5xx answers, a hook to accept an invite as the
//! client would, and a log of every call.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The fake server; dropping it leaves the server running until the test's runtime ends.
#[derive(Clone)]
pub struct FakeTailscale {
    /// `http://127.0.0.1:<port>`, the `apiUrl` to configure.
    pub url: String,
    state: Arc<Mutex<World>>,
}

#[derive(Default)]
struct World {
    token: String,
    devices: BTreeMap<String, ()>,
    invites: BTreeMap<String, Value>,
    next_id: u64,
    /// Answers to give instead of the real ones, in order: (calls they apply to, status,
    /// Retry-After).
    injected: VecDeque<(String, u16, Option<u64>)>,
    /// Calls (by prefix) answered with a status until [`FakeTailscale::stop_failing`].
    failing: Vec<(String, u16)>,
    /// 200 answers with a given body instead of the real ones (a malformed answer).
    bodies: VecDeque<(String, Value)>,
    calls: Vec<String>,
}

impl FakeTailscale {
    /// Starts the server; only `Bearer <user_token>` is accepted.
    pub async fn start(user_token: &str) -> Self {
        let state = Arc::new(Mutex::new(World {
            token: user_token.to_string(),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .route(
                "/api/v2/device/{device}/device-invites",
                get(list_invites).post(create_invites),
            )
            .route(
                "/api/v2/device-invites/{invite}",
                get(get_invite).delete(delete_invite),
            )
            .route(
                "/api/v2/device-invites/{invite}/resend",
                post(resend_invite),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.state.lock().expect("fake tailscale lock")
    }

    /// A device joined the tailnet.
    pub fn add_device(&self, device_id: &str) {
        self.world().devices.insert(device_id.to_string(), ());
    }

    /// The next answer (whatever the call) is `status`, with `Retry-After` when given.
    pub fn fail_next(&self, status: u16, retry_after: Option<u64>) {
        self.fail_next_matching("", status, retry_after);
    }

    /// The next answer to a call whose `METHOD /path` starts with `prefix` is `status`.
    pub fn fail_next_matching(&self, prefix: &str, status: u16, retry_after: Option<u64>) {
        self.world()
            .injected
            .push_back((prefix.to_string(), status, retry_after));
    }

    /// Every call whose `METHOD /path` starts with `prefix` is answered with `status`
    /// until [`FakeTailscale::stop_failing`] (an outage).
    pub fn fail_matching(&self, prefix: &str, status: u16) {
        self.world().failing.push((prefix.to_string(), status));
    }

    /// The next call whose `METHOD /path` starts with `prefix` is answered 200 with
    /// `body` (e.g. an answer of an unexpected shape).
    pub fn answer_next_matching(&self, prefix: &str, body: Value) {
        self.world().bodies.push_back((prefix.to_string(), body));
    }

    /// Only `Bearer <token>` is accepted from now on (the old token expired, a new one
    /// was issued).
    pub fn set_token(&self, token: &str) {
        self.world().token = token.to_string();
    }

    pub fn stop_failing(&self) {
        self.world().failing.clear();
    }

    /// The client accepts an invite into their tailnet as `login`.
    pub fn accept(&self, invite_id: &str, login: &str) {
        let mut w = self.world();
        let invite = w.invites.get_mut(invite_id).expect("an existing invite");
        invite["accepted"] = json!(true);
        invite["acceptedBy"] = json!({"id": 42, "loginName": login});
    }

    /// Every invite the server holds (deleted ones are gone).
    pub fn invites(&self) -> Vec<Value> {
        self.world().invites.values().cloned().collect()
    }

    /// Calls received, as `METHOD /path -> status`.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    /// Calls whose `METHOD /path` starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.world()
            .calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

type Shared = State<Arc<Mutex<World>>>;

/// Authorises and logs the call, or answers with an injected failure.
fn admit(
    state: &Arc<Mutex<World>>,
    headers: &HeaderMap,
    what: String,
    answer: impl FnOnce(&mut World) -> Response,
) -> Response {
    let mut w = state.lock().expect("fake tailscale lock");
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let response = if bearer != Some(w.token.as_str()) {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "API token invalid or not a user-owned access token"})),
        )
            .into_response()
    } else if let Some((status, retry_after)) = w
        .injected
        .iter()
        .position(|(prefix, _, _)| what.starts_with(prefix.as_str()))
        .and_then(|i| w.injected.remove(i))
        .map(|(_, status, retry_after)| (status, retry_after))
        .or_else(|| {
            w.failing
                .iter()
                .find(|(prefix, _)| what.starts_with(prefix.as_str()))
                .map(|(_, status)| (*status, None))
        })
    {
        let mut r = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(json!({"message": "injected failure"})),
        )
            .into_response();
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().expect("a number"));
        }
        r
    } else if let Some(body) = w
        .bodies
        .iter()
        .position(|(prefix, _)| what.starts_with(prefix.as_str()))
        .and_then(|i| w.bodies.remove(i))
        .map(|(_, body)| body)
    {
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        answer(&mut w)
    };
    w.calls
        .push(format!("{what} -> {}", response.status().as_u16()));
    response
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": format!("{what} not found")})),
    )
        .into_response()
}

async fn list_invites(
    State(state): Shared,
    Path(device): Path<String>,
    headers: HeaderMap,
) -> Response {
    let what = format!("GET /api/v2/device/{device}/device-invites");
    admit(&state, &headers, what, |w| {
        if !w.devices.contains_key(&device) {
            return not_found("device");
        }
        let list: Vec<Value> = w
            .invites
            .values()
            .filter(|i| i["deviceId"] == device.as_str())
            .cloned()
            .collect();
        axum::Json(list).into_response()
    })
}

async fn create_invites(
    State(state): Shared,
    Path(device): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let what = format!("POST /api/v2/device/{device}/device-invites");
    admit(&state, &headers, what, |w| {
        if !w.devices.contains_key(&device) {
            return not_found("device");
        }
        let Some(requests) = body.as_array() else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"message": "expected a JSON array of invite requests"})),
            )
                .into_response();
        };
        let mut created = Vec::new();
        for r in requests {
            w.next_id += 1;
            let id = format!("inv-{}", w.next_id);
            let invite = json!({
                "id": id,
                "created": "2026-12-03T10:00:00Z",
                "deviceId": device,
                "email": r["email"],
                "multiUse": r["multiUse"].as_bool().unwrap_or(false),
                "allowExitNode": r["allowExitNode"].as_bool().unwrap_or(false),
                "inviteUrl": format!("https://login.tailscale.com/admin/invite/secret-{id}"),
                "lastEmailSentAt": "2026-12-03T10:00:00Z",
                "accepted": false,
            });
            w.invites.insert(id, invite.clone());
            created.push(invite);
        }
        axum::Json(created).into_response()
    })
}

async fn get_invite(
    State(state): Shared,
    Path(invite): Path<String>,
    headers: HeaderMap,
) -> Response {
    let what = format!("GET /api/v2/device-invites/{invite}");
    admit(&state, &headers, what, |w| match w.invites.get(&invite) {
        Some(i) => axum::Json(i.clone()).into_response(),
        None => not_found("invite"),
    })
}

async fn delete_invite(
    State(state): Shared,
    Path(invite): Path<String>,
    headers: HeaderMap,
) -> Response {
    let what = format!("DELETE /api/v2/device-invites/{invite}");
    admit(&state, &headers, what, |w| {
        match w.invites.remove(&invite) {
            Some(_) => StatusCode::OK.into_response(),
            None => not_found("invite"),
        }
    })
}

async fn resend_invite(
    State(state): Shared,
    Path(invite): Path<String>,
    headers: HeaderMap,
) -> Response {
    let what = format!("POST /api/v2/device-invites/{invite}/resend");
    admit(&state, &headers, what, |w| {
        match w.invites.get_mut(&invite) {
            Some(i) => {
                i["lastEmailSentAt"] = json!("2026-12-03T11:00:00Z");
                StatusCode::OK.into_response()
            }
            None => not_found("invite"),
        }
    })
}
