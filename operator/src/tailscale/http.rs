//! Tailscale API client (OAuth client credentials): mints per-client auth keys and removes
//! devices. Credentials are read from files (mounted from a Secret) and never logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::TailnetApi;
use crate::config::{OperatorConfig, TailscaleOAuth};
use crate::metrics::ApiCallLabel;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Tailscale API calls by operation and result (`clawhost_tailscale_api_calls`).
pub type ApiCalls = Family<ApiCallLabel, Counter>;

/// The HTTP plumbing every Tailscale API client shares: one HTTPS client, a timeout, the
/// answer as JSON, and a count of each call by operation and result.
pub(crate) struct Transport {
    http: HttpClient<Https, Full<Bytes>>,
    calls: ApiCalls,
}

/// An HTTP answer: status, `Retry-After` (seconds) when given, and the body as JSON
/// (`Null` when it is not JSON).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

/// A JSON request with a bearer token (an empty body without `body`).
pub(crate) fn json_request(
    method: Method,
    url: &str,
    bearer: &str,
    body: Option<Value>,
) -> Result<Request<Full<Bytes>>, http::Error> {
    Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
}

impl Transport {
    pub(crate) fn new(calls: ApiCalls) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            http: HttpClient::builder(TokioExecutor::new()).build(https),
            calls,
        }
    }

    /// Sends one request. Errors name what failed, never the request (it may carry a
    /// credential).
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        req: Request<Full<Bytes>>,
    ) -> Result<Answer, String> {
        let answer = self.send_uncounted(req).await;
        let result = match &answer {
            Ok(a) if a.status.is_success() => "ok".to_string(),
            Ok(a) if a.status.is_server_error() => "5xx".to_string(),
            Ok(a) => a.status.as_u16().to_string(),
            Err(_) => "transport".to_string(),
        };
        self.calls
            .get_or_create(&ApiCallLabel {
                operation: operation.to_string(),
                result,
            })
            .inc();
        answer
    }

    async fn send_uncounted(&self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let resp = tokio::time::timeout(Duration::from_secs(30), self.http.request(req))
            .await
            .map_err(|_| "request timed out".to_string())?
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading response: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    }
}

pub struct TailscaleApi {
    base: String,
    tailnet: String,
    client_id: String,
    client_secret: String,
    transport: Transport,
    token: Mutex<Option<(String, Instant)>>,
}

/// The OAuth credentials named by the operator config cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the Tailscale credential file {path} ({setting} in the operator config): {source}"
)]
pub struct CredentialFileError {
    path: String,
    setting: &'static str,
    source: std::io::Error,
}

/// The API client when the config has OAuth credentials; its calls are counted in `calls`.
pub fn from_config(
    config: &OperatorConfig,
    calls: ApiCalls,
) -> Result<Option<Arc<dyn TailnetApi>>, CredentialFileError> {
    let Some(oauth) = &config.tailscale.oauth else {
        return Ok(None);
    };
    Ok(Some(Arc::new(TailscaleApi::new(oauth, calls)?)))
}

/// A credential file's content, trimmed; `setting` names the config key that points at it.
pub(crate) fn read_secret_file(
    path: &std::path::Path,
    setting: &'static str,
) -> Result<String, CredentialFileError> {
    let s = std::fs::read_to_string(path).map_err(|source| CredentialFileError {
        path: path.display().to_string(),
        setting,
        source,
    })?;
    Ok(s.trim().to_string())
}

impl TailscaleApi {
    pub fn new(oauth: &TailscaleOAuth, calls: ApiCalls) -> Result<Self, CredentialFileError> {
        Ok(Self {
            base: oauth.api_url.trim_end_matches('/').to_string(),
            tailnet: oauth.tailnet.clone(),
            client_id: read_secret_file(&oauth.client_id_file, "tailscale.oauth.clientIdFile")?,
            client_secret: read_secret_file(
                &oauth.client_secret_file,
                "tailscale.oauth.clientSecretFile",
            )?,
            transport: Transport::new(calls),
            token: Mutex::new(None),
        })
    }

    async fn send(
        &self,
        operation: &'static str,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Value), String> {
        let a = self.transport.send(operation, req).await?;
        Ok((a.status, a.body))
    }

    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let form = format!(
            "client_id={}&client_secret={}",
            urlencoding::encode(&self.client_id),
            urlencoding::encode(&self.client_secret)
        );
        let req = Request::post(format!("{}/api/v2/oauth/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| e.to_string())?;
        let (status, body) = self.send("oauth_token", req).await?;
        if !status.is_success() {
            // The response never echoes the secret; the status is enough to act on.
            return Err(format!(
                "OAuth token request refused: HTTP {status} (check the OAuth client id/secret)"
            ));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or("OAuth response without access_token")?
            .to_string();
        let ttl = body["expires_in"]
            .as_u64()
            .unwrap_or(3600)
            .saturating_sub(60);
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
        Ok(token)
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let token = self.access_token().await?;
        let req = json_request(method, &format!("{}{path}", self.base), &token, body)
            .map_err(|e| e.to_string())?;
        self.send(operation, req).await
    }
}

#[async_trait]
impl TailnetApi for TailscaleApi {
    async fn mint_auth_key(&self, tags: &[String], description: &str) -> Result<String, String> {
        let body = json!({
            "capabilities": {"devices": {"create": {
                "reusable": false, "ephemeral": false, "preauthorized": true, "tags": tags,
            }}},
            "expirySeconds": 86400,
            "description": description.chars().filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '-').take(50).collect::<String>(),
        });
        let (status, resp) = self
            .call(
                "mint_auth_key",
                Method::POST,
                &format!("/api/v2/tailnet/{}/keys", self.tailnet),
                Some(body),
            )
            .await?;
        if !status.is_success() {
            return Err(format!(
                "creating an auth key failed: HTTP {status}: {}",
                resp["message"].as_str().unwrap_or("no message")
            ));
        }
        resp["key"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "auth key response without key".into())
    }

    async fn delete_device(&self, device_id: &str) -> Result<(), String> {
        let (status, resp) = self
            .call(
                "delete_device",
                Method::DELETE,
                &format!("/api/v2/device/{}", urlencoding::encode(device_id)),
                None,
            )
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(format!(
                "deleting device {device_id} failed: HTTP {s}: {}",
                resp["message"].as_str().unwrap_or("no message")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{delete, post};
    use std::sync::Mutex as StdMutex;

    async fn fake_tailscale() -> (String, Arc<StdMutex<Vec<String>>>) {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let s1 = seen.clone();
        let s2 = seen.clone();
        let s3 = seen.clone();
        let app = axum::Router::new()
            .route(
                "/api/v2/oauth/token",
                post(move |body: String| async move {
                    s1.lock().unwrap().push("token".into());
                    if body.contains("client_secret=right") {
                        axum::Json(json!({"access_token": "at-1", "expires_in": 3600}))
                            .into_response()
                    } else {
                        (StatusCode::UNAUTHORIZED, "no").into_response()
                    }
                }),
            )
            .route(
                "/api/v2/tailnet/{tailnet}/keys",
                post(
                    move |axum::extract::Path(t): axum::extract::Path<String>,
                          headers: http::HeaderMap,
                          axum::Json(b): axum::Json<Value>| async move {
                        assert_eq!(headers["authorization"], "Bearer at-1");
                        s2.lock().unwrap().push(format!(
                            "keys {t} {}",
                            b["capabilities"]["devices"]["create"]["tags"]
                        ));
                        axum::Json(json!({"key": "tskey-auth-minted"}))
                    },
                ),
            )
            .route(
                "/api/v2/device/{id}",
                delete(
                    move |axum::extract::Path(id): axum::extract::Path<String>| async move {
                        s3.lock().unwrap().push(format!("delete {id}"));
                        if id == "gone" {
                            StatusCode::NOT_FOUND
                        } else {
                            StatusCode::OK
                        }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }
    use axum::response::IntoResponse;

    fn api(base: &str, secret: &str) -> TailscaleApi {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id");
        let sec = dir.path().join("secret");
        std::fs::write(&id, "cid\n").unwrap();
        std::fs::write(&sec, format!("{secret}\n")).unwrap();
        TailscaleApi::new(
            &TailscaleOAuth {
                client_id_file: id,
                client_secret_file: sec,
                tailnet: "-".into(),
                api_url: base.into(),
            },
            ApiCalls::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn mints_keys_and_deletes_devices_with_one_token() {
        let (base, seen) = fake_tailscale().await;
        let t = api(&base, "right");
        let key = t
            .mint_auth_key(&["tag:clawhost".into()], "clawhost clients/alice")
            .await
            .unwrap();
        assert_eq!(key, "tskey-auth-minted");
        t.delete_device("nDEV1").await.unwrap();
        t.delete_device("gone").await.unwrap(); // 404 counts as done
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                "token",
                "keys - [\"tag:clawhost\"]",
                "delete nDEV1",
                "delete gone"
            ]
        );
    }

    #[tokio::test]
    async fn refused_credentials_give_an_actionable_error_without_the_secret() {
        let (base, _) = fake_tailscale().await;
        let t = api(&base, "wrong-secret-value");
        let e = t.mint_auth_key(&[], "x").await.unwrap_err();
        assert!(e.contains("OAuth token request refused: HTTP 401"), "{e}");
        assert!(!e.contains("wrong-secret-value"));
    }
}
