//! The Quest face of the credit routes (§8): a user's credits and spends under
//! `/api/users/{userId}/…?entityId=`. Quest's wire → the use case → Quest's wire.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use shared::auth::Caller;
use shared::http::body::Mutation;
use shared::http::query::Query;
use shared::http::quest::error_envelope;
use shared::http::quest::wire::{self, CREDITS_FIELDS, EntityRouteQuery, UserRouteQuery};
use shared::http::{answer, ok};
use shared::usecases::AccountRef;
use shared::usecases::accounts::{self, HistoryQuery, MAX_PAGE};
use shared::usecases::credits::{self, Credits};
use shared::{AppState, Fallible};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users/{user_id}/credits", get(user_credits))
        .route("/api/users/{user_id}/decrement-credits", post(user_decrement))
        .route("/api/entities/{entity_id}/credits", get(pool_credits))
        .route("/api/entities/{entity_id}/decrement-credits", post(pool_decrement))
        .route_layer(axum::middleware::from_fn(error_envelope))
}

/// `{creditsAmount, reason?}`: a Quest spend.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DecrementBody {
    credits_amount: u64,
    reason: Option<String>,
}

/// `getCreditInfoForUser`: the account and its latest history.
async fn user_credits(
    caller: Caller,
    headers: HeaderMap,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<UserRouteQuery>,
) -> Fallible<Response> {
    let account = query.account(&caller, &headers, &user_id)?;
    caller.require_reader_of(&user_id)?;
    let view = accounts::read(state.context(), account).await?;
    let page = HistoryQuery { limit: Some(MAX_PAGE), ..HistoryQuery::default() };
    let history = accounts::history(state.context(), account, page).await?;
    ok(StatusCode::OK, wire::credits(&view, &history.entries))
}

/// `decrementCreditsForUser`: that user or the server.
async fn user_decrement(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<UserRouteQuery>,
    request: Mutation,
) -> Fallible<Response> {
    let account = query.account(&caller, &request.headers, &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: DecrementBody = request.parse()?;
    let spend = Credits::spend(body.credits_amount, body.reason).map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    let key = request.key(account.entity_id)?;
    let changed =
        credits::apply(state.context(), account, spend, &key).await.map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    answer(StatusCode::OK, changed, |c| c)
}

/// `getCreditInfoForEntity`: the pool and its latest history, each item naming `byUserId`.
async fn pool_credits(
    caller: Caller,
    headers: HeaderMap,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    Query(query): Query<EntityRouteQuery>,
) -> Fallible<Response> {
    query.check(&caller, &headers, &entity_id)?;
    caller.require_pool_reader()?;
    let account = AccountRef::pool(&entity_id);
    let view = accounts::read(state.context(), account).await?;
    let page = HistoryQuery { limit: Some(MAX_PAGE), ..HistoryQuery::default() };
    let history = accounts::history(state.context(), account, page).await?;
    ok(StatusCode::OK, wire::pool_credits(&view, &history.entries))
}

/// `decrementCreditsForEntity`: a spend from the pool, recording the acting user.
async fn pool_decrement(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    Query(query): Query<EntityRouteQuery>,
    request: Mutation,
) -> Fallible<Response> {
    query.check(&caller, &request.headers, &entity_id)?;
    caller.require_pool_spender()?;
    let by = query.acting_user(&caller, &request.headers)?;
    let body: DecrementBody = request.parse()?;
    let spend = Credits::spend(body.credits_amount, body.reason).map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    let key = request.key(&entity_id)?;
    let account = AccountRef::pool(&entity_id).by_maybe(by);
    let changed = credits::apply(state.context(), account, spend, &key).await;
    answer(StatusCode::OK, changed.map_err(|e| wire::renamed(e, CREDITS_FIELDS))?, |c| c)
}
