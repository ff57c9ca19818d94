//! Payments through Stripe: pay (Q5), create a payment intent (Q6), approve it (Q7), and
//! cancel a subscription to a recurring tier. What they do is `shared::usecases::payments`
//! and `::subscriptions`; this is their native wire.

mod pay;
mod quest;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};

use shared::AppState;
use shared::http::api::{Api, Components, Route, schema_of};

pub fn api() -> Api {
    Api::new("payments")
        .route(
            Route::post("/api/payment/pay", "pay", "Q5: pay for a tier with a payment method (that user, server)")
                .body::<pay::PayBody>()
                .ok::<pay::PaidView>(StatusCode::OK)
                .errors(&[402, 502]),
            pay::pay,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/users/{userId}/create-payment-intent",
                "createPaymentIntent",
                "Q6: a PaymentIntent for the client to confirm; this API's body (creditTierId) or Quest's (intentData), answered in that face's envelope",
            )
            .both_faces()
            .body_schema(intent_body)
            .answers(StatusCode::CREATED, intent_answer)
            .errors(&[502]),
            quest::create_intent,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/users/{userId}/approve-payment",
                "approvePayment",
                "Q7: credit a succeeded payment, once",
            )
            .body::<pay::ApproveBody>()
            .ok::<pay::Approved>(StatusCode::OK)
            .errors(&[502]),
            pay::approve,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/users/{userId}/credit-tiers/{creditTierId}/cancel",
                "cancelSubscription",
                "Stop renewing a subscription to a recurring tier",
            )
            .body_schema(|_| json!({"type": "object"}))
            .ok::<pay::CancelView>(StatusCode::OK)
            .errors(&[502]),
            pay::cancel,
        )
        .merge(quest::api())
}

fn intent_body(components: &mut Components) -> Value {
    json!({"oneOf": [schema_of::<pay::IntentBody>(components), schema_of::<quest::QuestIntentBody>(components)]})
}

fn intent_answer(components: &mut Components) -> Value {
    json!({"oneOf": [schema_of::<pay::IntentView>(components), schema_of::<quest::QuestIntentView>(components)]})
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}
