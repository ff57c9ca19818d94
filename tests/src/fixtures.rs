//! Ready-made entities, keys and sessions for tests.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, TestApp};

/// An entity created through the admin API, with its server credentials.
#[derive(Debug, Clone)]
pub struct EntityFixture {
    pub entity_id: String,
    pub apikey: String,
    pub apisecret: String,
}

pub type Headers = Vec<(String, String)>;

pub fn admin() -> Headers {
    vec![("authorization".into(), format!("Bearer {ADMIN_TOKEN}"))]
}

impl EntityFixture {
    pub fn server(&self) -> Headers {
        vec![("apikey".into(), self.apikey.clone()), ("apisecret".into(), self.apisecret.clone())]
    }

    pub fn session(&self, user_id: &str, token: &str) -> Headers {
        vec![
            ("apikey".into(), self.apikey.clone()),
            ("userid".into(), user_id.to_owned()),
            ("token".into(), token.to_owned()),
        ]
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/entities/{}{rest}", self.entity_id)
    }
}

impl TestApp {
    /// An entity owned by `owners`, currency usd.
    pub async fn entity(&self, owners: &[&str]) -> EntityFixture {
        let response = self
            .request(Method::POST, "/admin/entities")
            .headers(&admin())
            .json(json!({"name": "Acme", "ownerUserIds": owners, "currency": "usd"}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        let data = response.data();
        EntityFixture {
            entity_id: data["entityId"].as_str().expect("entityId").to_owned(),
            apikey: data["apikey"].as_str().expect("apikey").to_owned(),
            apisecret: data["apisecret"].as_str().expect("apisecret").to_owned(),
        }
    }

    /// A session token for `user_id`, minted by the entity's server.
    pub async fn token(&self, entity: &EntityFixture, user_id: &str) -> String {
        let response = self
            .request(Method::POST, &entity.path(&format!("/users/{user_id}/token")))
            .headers(&entity.server())
            .json(json!({}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.data()["token"].as_str().expect("token").to_owned()
    }

    /// Headers of a user session for `user_id`.
    pub async fn session(&self, entity: &EntityFixture, user_id: &str) -> Headers {
        let token = self.token(entity, user_id).await;
        entity.session(user_id, &token)
    }

    /// Creates a tier as the entity's server and returns it.
    pub async fn tier(&self, entity: &EntityFixture, body: Value) -> Value {
        let response =
            self.request(Method::POST, &entity.path("/credit-tiers")).headers(&entity.server()).json(body).send().await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.data().clone()
    }
}

impl TestApp {
    /// Grants `credits` to `user_id` as the entity's server.
    pub async fn grant(&self, entity: &EntityFixture, user_id: &str, credits: u64) {
        let response = self
            .request(Method::POST, &entity.path(&format!("/users/{user_id}/buy-credits")))
            .headers(&entity.server())
            .json(json!({"credits": credits, "idempotencyKey": format!("grant-{}", ulid::Ulid::new())}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }

    /// Every ledger entry of `user_id`'s account (up to 200), newest first, as the entity's
    /// server reads them.
    pub async fn history(&self, entity: &EntityFixture, user_id: &str) -> Vec<Value> {
        let path = entity.path(&format!("/users/{user_id}/credit-history?limit=200"));
        let response = self.request(Method::GET, &path).headers(&entity.server()).send().await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response.data()["entries"].as_array().cloned().unwrap_or_default()
    }

    /// An entity whose user `u-1` holds `credits`.
    pub async fn funded(&self, credits: u64) -> EntityFixture {
        let entity = self.entity(&[]).await;
        self.grant(&entity, "u-1", credits).await;
        entity
    }
}
