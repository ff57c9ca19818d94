//! Reading accounts (Q3) and their history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::domain::account::Entry;
use shared::http::ok;
use shared::http::query::Query;
use shared::usecases::accounts::{self, HistoryQuery, limit_error};
use shared::{AppState, Fallible};

use crate::requests::Target;

/// Q3 (and the pool's balance): an account never written reads as zeros.
pub async fn account(caller: Caller, State(state): State<AppState>, target: Target) -> Fallible<Response> {
    let account = target.to_read(&caller)?;
    ok(StatusCode::OK, accounts::read(state.context(), account).await?)
}

/// Unknown parameters are refused, naming them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// 1-200, default 50.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// One entry type only.
    #[serde(rename = "type")]
    #[schema(value_type = Option<shared::domain::account::EntryType>)]
    kind: Option<String>,
}

/// A page of history, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    entries: Vec<Entry>,
    /// `null` on the last page.
    next_cursor: Option<String>,
}

impl HistoryParams {
    /// The cursor is the page's last sort key, base64url: one that does not decode reads as
    /// an empty key, which the use case refuses as not one of ours.
    fn query(self) -> Fallible<HistoryQuery> {
        let limit = self.limit.map(|raw| raw.parse::<usize>().map_err(|_| limit_error())).transpose()?;
        let after = self.cursor.map(|cursor| {
            URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|bytes| String::from_utf8(bytes).ok()).unwrap_or_default()
        });
        Ok(HistoryQuery { limit, after, kind: self.kind })
    }
}

/// History, newest first, `limit` per page, optionally one `type`.
pub async fn history(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    Query(params): Query<HistoryParams>,
) -> Fallible<Response> {
    let account = target.to_read(&caller)?;
    let history = accounts::history(state.context(), account, params.query()?).await?;
    let next_cursor = history.next_after.map(|sk| URL_SAFE_NO_PAD.encode(sk));
    ok(StatusCode::OK, HistoryPage { entries: history.entries, next_cursor })
}
