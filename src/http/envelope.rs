//! Renders every error response as `{"error":{"code","message","request_id"}}`: one place, for errors from
//! handlers (`ApiError`), from axum (404, 405) and from tower-http layers (408, 413). Called by `observe`,
//! which knows the request id.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::error::ErrorBody;

/// Rewrites `response` in place when it is an error: an `ErrorBody` attached by `ApiError`, or any other 4xx/5xx
/// that is not already JSON. `method` and `uri` name the request in 404/405 messages.
pub fn render(response: &mut Response, request_id: &str, method: &Method, uri: &Uri) {
    let status = response.status();
    if response
        .extensions()
        .get::<crate::web::unavailable::RenderedPage>()
        .is_some()
    {
        return;
    }
    let body = match response.extensions_mut().remove::<ErrorBody>() {
        Some(body) => body,
        None if (status.is_client_error() || status.is_server_error()) && !is_json(response) => {
            let mut body = ErrorBody::for_status(status);
            if status == StatusCode::NOT_FOUND {
                body.message = format!("No route matches {method} {}.", uri.path());
            } else if status == StatusCode::METHOD_NOT_ALLOWED {
                body.message = format!("{} does not accept {method}.", uri.path());
            }
            body
        }
        None => return,
    };

    let mut error = serde_json::json!({
        "code": body.code,
        "message": body.message,
        "request_id": request_id,
    });
    if let Some(details) = body.details {
        error["details"] = details;
    }
    let mut json = serde_json::json!({ "error": error });
    if let Some(provisioning) = body.provisioning {
        json["provisioning"] = provisioning;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    *response.body_mut() = Body::from(json.to_string());
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
