//! Reading accounts (Q3) and their history.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use shared::http::query::Query;

use shared::auth::Caller;
use shared::domain::account::EntryType;
use shared::http::{envelope, respond};
use shared::store::EntryPage;
use shared::store::keys::is_entry_sort_key;
use shared::{ApiError, ApiResult, AppState, accounts};

use crate::requests::check_path;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;

/// Q3: a user never seen reads as zeros.
pub async fn account(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_reader_of(&user_id)?;
    let account = accounts::read(&state, &entity_id, &user_id).await?;
    Ok(respond(StatusCode::OK, envelope(account.view(state.clock.now_millis()))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    limit: Option<String>,
    cursor: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl HistoryQuery {
    fn page(self) -> ApiResult<EntryPage> {
        let limit = match self.limit {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .ok_or_else(|| ApiError::validation(format!("limit must be an integer from 1 to {MAX_PAGE}")))?,
        };
        let kind = match self.kind {
            None => None,
            Some(raw) => Some(EntryType::parse(&raw).ok_or_else(|| {
                let names: Vec<_> = EntryType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::validation(format!("type must be one of {}", names.join(", ")))
            })?),
        };
        let after = match self.cursor {
            None => None,
            Some(cursor) => Some(decode_cursor(&cursor)?),
        };
        Ok(EntryPage { after, limit, kind })
    }
}

fn decode_cursor(cursor: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|sk| is_entry_sort_key(sk))
        .ok_or_else(|| ApiError::validation("cursor is not one this API returned"))
}

/// History, newest first, `limit` per page, optionally one `type`.
pub async fn history(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_reader_of(&user_id)?;
    let page = query.page()?;
    // Expired holds are recorded before the history is shown.
    accounts::read(&state, &entity_id, &user_id).await?;
    let (entries, next) = state.store.entries(&entity_id, &user_id, &page).await?;
    let next_cursor = next.map(|sk| URL_SAFE_NO_PAD.encode(sk));
    Ok(respond(StatusCode::OK, envelope(json!({"entries": entries, "nextCursor": next_cursor}))?))
}
