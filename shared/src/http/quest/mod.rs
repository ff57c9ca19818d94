//! Quest's wire format (§8) for errors: `{"success": false, "error": "<message>"}`, the
//! error a string as Quest's clients read it. Routes of the Quest face answer errors through
//! this layer, so every refusal (extractors, body limits, 404/405 included) is rendered
//! from the one `ApiError` envelope, never written twice.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub mod route;
pub mod wire;

/// Error bodies are a few hundred bytes; anything larger is not ours to rewrite.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Rewrites the native error envelope of a Quest-face answer into Quest's.
pub async fn error_envelope(request: Request, next: Next) -> Response {
    in_quest_envelope(next.run(request).await).await
}

/// A response of the Quest face: an error answer in Quest's envelope, success left alone.
/// For the one path both faces share, where the body decides which face answers.
pub async fn in_quest_envelope(response: Response) -> Response {
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        return (parts.status, "").into_response();
    };
    let Some(quest) = serde_json::from_slice::<Value>(&bytes).ok().and_then(quest_error) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, axum::Json(quest)).into_response()
}

/// `{"success": false, "error": {"code", "message", …details}}` →
/// `{"success": false, "error": message, "code", …details}`; an expired user session adds
/// `loginAgain` beside `userTokenExpired`, both flags of Quest's `ICommonResponse`.
fn quest_error(native: Value) -> Option<Value> {
    let Value::Object(mut error) = native.get("error")?.clone() else {
        return None;
    };
    let message = error.remove("message")?;
    let mut quest = Map::new();
    quest.insert("success".into(), Value::Bool(false));
    quest.insert("error".into(), message);
    if error.get("userTokenExpired") == Some(&Value::Bool(true)) {
        quest.insert("loginAgain".into(), Value::Bool(true));
    }
    quest.extend(error);
    Some(Value::Object(quest))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::quest_error;

    #[test]
    fn the_message_becomes_the_error_and_details_stay_beside_it() {
        let native =
            json!({"success": false, "error": {"code": "PAYMENT_FAILED", "message": "declined", "declineCode": "x"}});
        let quest = quest_error(native).unwrap();
        assert_eq!(quest, json!({"success": false, "error": "declined", "code": "PAYMENT_FAILED", "declineCode": "x"}));
    }

    #[test]
    fn an_expired_session_asks_to_log_in_again() {
        let native = json!({"success": false, "error": {"code": "UNAUTHENTICATED", "message": "token has expired", "userTokenExpired": true}});
        let quest = quest_error(native).unwrap();
        assert_eq!(quest["userTokenExpired"], true);
        assert_eq!(quest["loginAgain"], true);
        assert_eq!(quest["error"], "token has expired");
    }

    #[test]
    fn other_bodies_are_left_alone() {
        assert_eq!(quest_error(json!({"success": false, "error": "already quest"})), None);
        assert_eq!(quest_error(json!("text")), None);
    }
}
