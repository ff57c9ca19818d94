//! Credit routes: balances (Q3), history, spends and grants (Q10–Q13), holds; the same for
//! the entity's pool (`…/pool/…`), served by the same handlers.

mod balances;
mod holds;
mod quest;
mod requests;
mod spends;

use axum::Router;
use axum::http::StatusCode;

use shared::AppState;
use shared::domain::account::AccountView;
use shared::http::api::{Access, Api, Route};
use shared::usecases::credits::{Changed, Purchased};
use shared::usecases::holds::{Opened, Settled};

/// The routes one account kind (a user's under `…/users/{userId}`, the pool under `…/pool`)
/// serves; `kind` prefixes the operation ids (`user`, `pool`).
macro_rules! account_routes {
    ($api:expr, $base:literal, $kind:literal, $who:literal) => {
        $api.route(
            Route::get(
                concat!($base, "/credits"),
                concat!($kind, "Credits"),
                concat!("Q3: ", $who, "'s credit account"),
            )
            .ok::<AccountView>(StatusCode::OK),
            balances::account,
        )
        .route(
            Route::get(
                concat!($base, "/credit-history"),
                concat!($kind, "CreditHistory"),
                concat!($who, "'s ledger, newest first"),
            )
            .query::<balances::HistoryParams>()
            .ok::<balances::HistoryPage>(StatusCode::OK),
            balances::history,
        )
        .route(
            Route::post(
                concat!($base, "/decrement-credits"),
                concat!($kind, "DecrementCredits"),
                concat!("Q11: spend from ", $who),
            )
            .body::<requests::CreditsBody>()
            .ok::<Changed>(StatusCode::OK)
            .errors(&[402]),
            spends::decrement,
        )
        .route(
            Route::post(
                concat!($base, "/buy-credits"),
                concat!($kind, "GrantCredits"),
                concat!("Q12: grant credits to ", $who, " (server; Idempotency-Key required)"),
            )
            .access(Access::Server)
            .key_required()
            .body::<requests::CreditsBody>()
            .ok::<Changed>(StatusCode::OK),
            spends::grant,
        )
        .route(
            Route::post(concat!($base, "/holds"), concat!($kind, "OpenHold"), concat!("Reserve credits of ", $who))
                .body::<holds::OpenBody>()
                .ok::<Opened>(StatusCode::CREATED)
                .errors(&[402]),
            holds::open,
        )
        .route(
            Route::get(concat!($base, "/holds/{holdId}"), concat!($kind, "GetHold"), "A hold and its status")
                .ok::<holds::HoldView>(StatusCode::OK),
            holds::read,
        )
        .route(
            Route::post(
                concat!($base, "/holds/{holdId}/capture"),
                concat!($kind, "CaptureHold"),
                "Consume part or all of a hold, release the rest",
            )
            .body::<holds::SettleBody>()
            .ok::<Settled>(StatusCode::OK),
            holds::capture,
        )
        .route(
            Route::post(concat!($base, "/holds/{holdId}/release"), concat!($kind, "ReleaseHold"), "Release a hold")
                .body::<holds::SettleBody>()
                .ok::<Settled>(StatusCode::OK),
            holds::release,
        )
    };
}

pub fn api() -> Api {
    let api = account_routes!(Api::new("credits"), "/api/entities/{entityId}/users/{userId}", "user", "a user");
    let api = account_routes!(api, "/api/entities/{entityId}/pool", "pool", "the entity's pool");
    api.route(
        Route::post(
            "/api/entities/{entityId}/users/{userId}/purchase-credits",
            "userPurchaseCredits",
            "Q10: record a tier purchased elsewhere (server; Idempotency-Key required)",
        )
        .access(Access::Server)
        .key_required()
        .body::<spends::PurchaseBody>()
        .ok::<Purchased>(StatusCode::OK),
        spends::purchase,
    )
    .route(
        Route::post(
            "/api/entities/{entityId}/users/decrement-credits",
            "decrementCreditsForMany",
            "Q13: 1-25 spends, each on its own (server)",
        )
        .access(Access::Server)
        .body::<spends::BatchBody>()
        .ok::<spends::BatchAnswer>(StatusCode::OK),
        spends::decrement_many,
    )
    .merge(quest::api())
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}
