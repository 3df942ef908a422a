//! Extractors whose rejections are `ApiError`s, so malformed input gets the same JSON error as everything else.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{
    BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::text;
use crate::error::ApiError;

/// JSON body. Bad syntax → 400 `malformed_json`, wrong shape → 422 `invalid_body`, text that cannot be stored
/// → 422 `invalid_text` (see `super::text`), missing or wrong content type → 415, too large → 413.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "Expected a body with `Content-Type: application/json`.".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        // Before the shape: a refused character in an enum field is named as such, not as a wrong value.
        text::check_json(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes).map_err(json_rejection)?;
        Ok(Self(value))
    }
}

/// `application/json` or `application/*+json`, as axum's own `Json` decides.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("The request body is larger than allowed.".into())
    } else {
        ApiError::bad_request("unreadable_body", rejection.body_text())
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("The body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::unprocessable("invalid_body", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "Expected a body with `Content-Type: application/json`.".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("The request body is larger than allowed.".into())
        }
        other => ApiError::bad_request("unreadable_body", other.body_text()),
    }
}

/// A URL-encoded form body (the merchant app's forms; the query string for GET). Wrong shape → 422
/// `invalid_body`, text that cannot be stored → 422 `invalid_text`, wrong content type → 415, too large → 413.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request = if matches!(*request.method(), Method::GET | Method::HEAD) {
            text::check_urlencoded(request.uri().query().unwrap_or_default().as_bytes())?;
            request
        } else {
            // The body is read here, checked, and handed to axum's `Form` again (a cheap `Bytes` clone).
            let (method, uri, headers, extensions) = (
                request.method().clone(),
                request.uri().clone(),
                request.headers().clone(),
                request.extensions().clone(),
            );
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(body_rejection)?;
            text::check_urlencoded(&bytes)?;
            let mut again = Request::new(Body::from(bytes));
            *again.method_mut() = method;
            *again.uri_mut() = uri;
            *again.headers_mut() = headers;
            *again.extensions_mut() = extensions;
            again
        };
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "Expected a body with `Content-Type: application/x-www-form-urlencoded`.".into(),
            )),
            Err(FormRejection::FailedToDeserializeForm(e)) => {
                Err(ApiError::unprocessable("invalid_body", e.body_text()))
            }
            Err(other) if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::PayloadTooLarge("The request body is larger than allowed.".into()),
            ),
            Err(other) => Err(ApiError::bad_request("unreadable_body", other.body_text())),
        }
    }
}

/// Query string. Invalid → 400 `invalid_query`; text that cannot be stored → 422 `invalid_text` naming the
/// parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        text::check_urlencoded(parts.uri.query().unwrap_or_default().as_bytes())?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Path parameters. Text that cannot be stored → 422 `invalid_text` naming the parameter; otherwise invalid
/// (e.g. a non-numeric id) → 400 `invalid_path`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if text::urlencoded_suspect(parts.uri.path().as_bytes())
            && let Ok(params) = RawPathParams::from_request_parts(parts, state).await
        {
            text::check_params(params.iter())?;
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e: PathRejection| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// The request id set by the middleware (the client's when it is acceptable, see `super::request_id`), for
/// audit records.
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(super::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}
