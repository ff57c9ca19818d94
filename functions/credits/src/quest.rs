//! The Quest face of the credit routes (§8): a user's credits and spends under
//! `/api/users/{userId}/…?entityId=`. Quest's wire → the use case → Quest's wire.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use shared::domain::account::{AccountView, Entry};
use shared::http::api::{Api, Route};
use shared::http::body::Mutation;
use shared::http::quest::route::{QuestEntity, QuestUser};
use shared::http::quest::wire::{
    self, CREDITS_FIELDS, EntityRouteQuery, QuestCredits, QuestPoolCredits, UserRouteQuery,
};
use shared::http::{answer, ok};
use shared::usecases::AccountRef;
use shared::usecases::accounts::{self, HistoryQuery, MAX_PAGE};
use shared::usecases::credits::{self, Changed, Credits};
use shared::{AppState, Fallible};

pub fn api() -> Api {
    Api::new("credits")
        .route(
            Route::get("/api/users/{userId}/credits", "questUserCredits", "Quest getCreditInfoForUser")
                .quest()
                .query::<UserRouteQuery>()
                .ok::<QuestCredits>(StatusCode::OK),
            user_credits,
        )
        .route(
            Route::post(
                "/api/users/{userId}/decrement-credits",
                "questUserDecrementCredits",
                "Quest decrementCreditsForUser",
            )
            .quest()
            .query::<UserRouteQuery>()
            .body::<DecrementBody>()
            .ok::<Changed>(StatusCode::OK)
            .errors(&[402]),
            user_decrement,
        )
        .route(
            Route::get(
                "/api/entities/{entityId}/credits",
                "questPoolCredits",
                "Quest getCreditInfoForEntity: the pool",
            )
            .quest()
            .query::<EntityRouteQuery>()
            .ok::<QuestPoolCredits>(StatusCode::OK),
            pool_credits,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/decrement-credits",
                "questPoolDecrementCredits",
                "Quest decrementCreditsForEntity: spend from the pool",
            )
            .quest()
            .query::<EntityRouteQuery>()
            .body::<DecrementBody>()
            .ok::<Changed>(StatusCode::OK)
            .errors(&[402]),
            pool_decrement,
        )
}

/// `{creditsAmount, reason?}`: a Quest spend.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DecrementBody {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    credits_amount: u64,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
}

/// `getCreditInfoForUser`: the account and its latest history.
async fn user_credits(user: QuestUser) -> Fallible<Response> {
    user.caller.require_reader_of(&user.user_id)?;
    let (view, entries) = latest(&user.state, user.account()).await?;
    ok(StatusCode::OK, wire::credits(&view, &entries))
}

/// `decrementCreditsForUser`: that user or the server.
async fn user_decrement(user: QuestUser<Mutation>) -> Fallible<Response> {
    let account = user.account();
    user.caller.require_actor_for(&user.user_id)?;
    let body: DecrementBody = user.body.parse()?;
    let spend = Credits::spend(body.credits_amount, body.reason).map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    let key = user.body.key(account.entity_id)?;
    let changed = credits::apply(user.state.context(), account, spend, &key)
        .await
        .map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    answer(StatusCode::OK, changed, |c| c)
}

/// `getCreditInfoForEntity`: the pool and its latest history, each item naming `byUserId`.
async fn pool_credits(entity: QuestEntity) -> Fallible<Response> {
    entity.caller.require_pool_reader()?;
    let (view, entries) = latest(&entity.state, AccountRef::pool(&entity.entity_id)).await?;
    ok(StatusCode::OK, wire::pool_credits(&view, &entries))
}

/// `decrementCreditsForEntity`: a spend from the pool, recording the acting user.
async fn pool_decrement(entity: QuestEntity<Mutation>) -> Fallible<Response> {
    entity.caller.require_pool_spender()?;
    let by = entity.acting_user()?;
    let body: DecrementBody = entity.body.parse()?;
    let spend = Credits::spend(body.credits_amount, body.reason).map_err(|e| wire::renamed(e, CREDITS_FIELDS))?;
    let key = entity.body.key(&entity.entity_id)?;
    let account = AccountRef::pool(&entity.entity_id).by_maybe(by);
    let changed = credits::apply(entity.state.context(), account, spend, &key).await;
    answer(StatusCode::OK, changed.map_err(|e| wire::renamed(e, CREDITS_FIELDS))?, |c| c)
}

/// The account and its latest page of history, newest first.
async fn latest(state: &AppState, account: AccountRef<'_>) -> Fallible<(AccountView, Vec<Entry>)> {
    let page = HistoryQuery { limit: Some(MAX_PAGE), ..HistoryQuery::default() };
    let history = accounts::history(state.context(), account, page).await?;
    Ok((history.account, history.entries))
}
