//! `Path` and `Query` extractors whose failures answer like the rest of the console: the
//! HTML error page on pages, a JSON error on `/api/`. Axum's own rejections are plain text
//! ("Cannot parse `abc` to a `i64`"), which a browser shows as a bare line.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

fn is_api(parts: &Parts) -> bool {
    parts.uri.path().starts_with("/api/")
}

/// A request whose path or query cannot be read: 404 for a path (no such page), 400 for a
/// query. The parser's message is kept out of pages (it would echo request content).
fn refused(parts: &Parts, status: StatusCode, what: &str) -> Response {
    if is_api(parts) {
        super::api::error(status, what)
    } else if status == StatusCode::NOT_FOUND {
        (
            status,
            super::pages::message_page("Not found", "There is no page at this address."),
        )
            .into_response()
    } else {
        (
            status,
            super::pages::message_page(
                "Bad request",
                "The address has a parameter the console cannot read. Go back and use the page's own links and forms.",
            ),
        )
            .into_response()
    }
}

/// Like `axum::extract::Path`: a path parameter that does not parse is a 404.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(_) => Err(refused(
                parts,
                StatusCode::NOT_FOUND,
                "not found: a path parameter is not valid (ids are integers)",
            )),
        }
    }
}

/// Like `axum::extract::Query`: a query string that does not parse is a 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) if is_api(parts) => Err(super::api::error(
                StatusCode::BAD_REQUEST,
                &format!("invalid query string: {}", e.body_text()),
            )),
            Err(_) => Err(refused(parts, StatusCode::BAD_REQUEST, "invalid query")),
        }
    }
}

/// Like `axum::extract::Form` for pages: a form body that cannot be read (a field missing or
/// of the wrong kind, which the console's own forms never send) is a 422 console page.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for Form<T> {
    type Rejection = Response;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Form::<T>::from_request(req, state).await {
            Ok(axum::extract::Form(v)) => Ok(Form(v)),
            Err(_) => Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                super::pages::message_page(
                    "The form could not be read",
                    "A field was missing or not of the expected kind. Go back, reload the form and submit it again.",
                ),
            )
                .into_response()),
        }
    }
}
