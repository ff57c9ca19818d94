//! The checked routes of the Quest face: the caller, the path's entity or user and the
//! query, read and refused as the handlers read them (caller, path, query, then any body),
//! then checked, so the same error wins.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::wire::{EntityRouteQuery, UserRouteQuery};
use crate::AppState;
use crate::accounts::AccountRef;
use crate::auth::Caller;
use crate::error::Error;
use crate::http::query::Query;

/// `/api/entities/{entityId}/…`: the path's entity, checked (`EntityRouteQuery::check`);
/// `body` is the request's body, read before the check.
pub struct QuestEntity<B = ()> {
    pub caller: Caller,
    pub state: AppState,
    pub entity_id: String,
    pub body: B,
    headers: HeaderMap,
    query: EntityRouteQuery,
}

impl<B> QuestEntity<B> {
    /// The user the request acts as (`wire::acting_user`, with the query's `userId`).
    pub fn acting_user(&self) -> Result<Option<&str>, Error> {
        self.query.acting_user(&self.caller, &self.headers)
    }
}

/// `/api/users/{userId}/…?entityId=`: the account, checked (`UserRouteQuery::account`);
/// `body` is the request's body, read before the check.
pub struct QuestUser<B = ()> {
    pub caller: Caller,
    pub state: AppState,
    pub user_id: String,
    pub body: B,
    entity_id: String,
}

impl<B> QuestUser<B> {
    pub fn account(&self) -> AccountRef<'_> {
        AccountRef::user(&self.entity_id, &self.user_id)
    }
}

/// The caller, the path's one parameter and the query, each refused as its own extractor.
async fn route<Q: serde::de::DeserializeOwned>(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(Caller, String, Q), Response> {
    let caller = Caller::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
    let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
    let Query(query) = Query::<Q>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
    Ok((caller, id, query))
}

/// The route's parts and its body, read in that order.
async fn route_and_body<Q, B>(request: Request, state: &AppState) -> Result<(Caller, String, Q, HeaderMap, B), Response>
where
    Q: serde::de::DeserializeOwned,
    B: FromRequest<AppState, Rejection = Error>,
{
    let (mut parts, body) = request.into_parts();
    let (caller, id, query) = route(&mut parts, state).await?;
    let headers = parts.headers.clone();
    let body = B::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
    Ok((caller, id, query, headers, body))
}

impl QuestEntity<()> {
    fn checked(
        caller: Caller,
        state: &AppState,
        entity_id: String,
        query: EntityRouteQuery,
        headers: HeaderMap,
    ) -> Result<Self, Error> {
        query.check(&caller, &headers, &entity_id)?;
        Ok(Self { caller, state: state.clone(), entity_id, body: (), headers, query })
    }
}

impl FromRequestParts<AppState> for QuestEntity {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (caller, entity_id, query) = route(parts, state).await?;
        Self::checked(caller, state, entity_id, query, parts.headers.clone()).map_err(IntoResponse::into_response)
    }
}

impl<B: FromRequest<AppState, Rejection = Error>> FromRequest<AppState> for QuestEntity<B> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (caller, entity_id, query, headers, body) = route_and_body(request, state).await?;
        let QuestEntity { caller, state, entity_id, headers, query, .. } =
            QuestEntity::checked(caller, state, entity_id, query, headers).map_err(IntoResponse::into_response)?;
        Ok(Self { caller, state, entity_id, body, headers, query })
    }
}

impl QuestUser<()> {
    fn checked(
        caller: Caller,
        state: &AppState,
        user_id: String,
        query: UserRouteQuery,
        headers: &HeaderMap,
    ) -> Result<Self, Error> {
        let entity_id = query.account(&caller, headers, &user_id)?.entity_id.to_owned();
        Ok(Self { caller, state: state.clone(), user_id, body: (), entity_id })
    }
}

impl FromRequestParts<AppState> for QuestUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (caller, user_id, query) = route(parts, state).await?;
        Self::checked(caller, state, user_id, query, &parts.headers).map_err(IntoResponse::into_response)
    }
}

impl<B: FromRequest<AppState, Rejection = Error>> FromRequest<AppState> for QuestUser<B> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (caller, user_id, query, headers, body) = route_and_body(request, state).await?;
        let QuestUser { caller, state, user_id, entity_id, .. } =
            QuestUser::checked(caller, state, user_id, query, &headers).map_err(IntoResponse::into_response)?;
        Ok(Self { caller, state, user_id, body, entity_id })
    }
}
