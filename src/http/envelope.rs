//! Renders every error response as `{"error":{"code","message","request_id"}}`: one place, for errors from
//! handlers (`ApiError`), from axum (404, 405) and from tower-http layers (408, 413).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::REQUEST_ID;
use crate::error::ErrorBody;

pub async fn envelope(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut response = next.run(request).await;
    let status = response.status();
    let body = match response.extensions_mut().remove::<ErrorBody>() {
        Some(body) => body,
        None if (status.is_client_error() || status.is_server_error()) && !is_json(&response) => {
            let mut body = ErrorBody::for_status(status);
            if status == StatusCode::NOT_FOUND {
                body.message = format!("No route matches {method} {path}.");
            } else if status == StatusCode::METHOD_NOT_ALLOWED {
                body.message = format!("{path} does not accept {method}.");
            }
            body
        }
        None => return response,
    };

    let mut error = serde_json::json!({
        "code": body.code,
        "message": body.message,
        "request_id": request_id,
    });
    if let Some(details) = body.details {
        error["details"] = details;
    }
    let json = serde_json::json!({ "error": error });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(json.to_string());
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
