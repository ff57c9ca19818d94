//! Credit routes: balances (Q3), history, spends and grants (Q10–Q13), holds; the same for
//! the entity's pool (`…/pool/…`), served by the same handlers.

mod balances;
mod holds;
mod quest;
mod requests;
mod spends;

use axum::Router;
use axum::routing::{get, post};

use shared::AppState;

pub fn router(state: AppState) -> Router {
    let user = "/api/entities/{entity_id}/users/{user_id}";
    let pool = "/api/entities/{entity_id}/pool";
    let routes = Router::new()
        .route(&format!("{user}/credits"), get(balances::account))
        .route(&format!("{user}/credit-history"), get(balances::history))
        .route(&format!("{user}/decrement-credits"), post(spends::decrement))
        .route(&format!("{user}/buy-credits"), post(spends::grant))
        .route(&format!("{user}/purchase-credits"), post(spends::purchase))
        .route("/api/entities/{entity_id}/users/decrement-credits", post(spends::decrement_many))
        .route(&format!("{user}/holds"), post(holds::open))
        .route(&format!("{user}/holds/{{hold_id}}"), get(holds::read))
        .route(&format!("{user}/holds/{{hold_id}}/capture"), post(holds::capture))
        .route(&format!("{user}/holds/{{hold_id}}/release"), post(holds::release))
        .route(&format!("{pool}/credits"), get(balances::account))
        .route(&format!("{pool}/credit-history"), get(balances::history))
        .route(&format!("{pool}/decrement-credits"), post(spends::decrement))
        .route(&format!("{pool}/buy-credits"), post(spends::grant))
        .route(&format!("{pool}/holds"), post(holds::open))
        .route(&format!("{pool}/holds/{{hold_id}}"), get(holds::read))
        .route(&format!("{pool}/holds/{{hold_id}}/capture"), post(holds::capture))
        .route(&format!("{pool}/holds/{{hold_id}}/release"), post(holds::release))
        .merge(quest::routes());
    shared::http::finish(routes, state)
}
