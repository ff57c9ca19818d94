//! What an entity decides for itself: its settings (who may use its credit pool).

use crate::domain::entity::{EntitySettings, SettingsChange};
use crate::error::Error;
use crate::usecases::Context;

/// Writes that may meet a concurrent change to the entity (owners, keys) before giving up.
const MAX_ATTEMPTS: usize = 5;

fn entity_not_found() -> Error {
    Error::not_found("entity not found")
}

pub async fn get_settings(ctx: Context<'_>, entity_id: &str) -> Result<EntitySettings, Error> {
    Ok(ctx.store.get_entity(entity_id).await?.ok_or_else(entity_not_found)?.settings)
}

/// Replaces the settings. Processes cache entities for up to `AUTH_CACHE_SECONDS`, so a
/// change takes effect everywhere within that bound. The entity is written whole, on the
/// condition that nothing else changed it since it was read (then it is read again).
pub async fn set_settings(ctx: Context<'_>, entity_id: &str, change: SettingsChange) -> Result<EntitySettings, Error> {
    change.validate()?;
    for _ in 0..MAX_ATTEMPTS {
        let current = ctx.store.get_entity(entity_id).await?.ok_or_else(entity_not_found)?;
        let settings = change.applied_to(&current.settings);
        if current.settings == settings {
            return Ok(settings);
        }
        // Strictly later than the version read, so the next writer's condition tells them apart.
        let updated_at = ctx.now().max(current.updated_at + 1);
        let next = crate::domain::entity::Entity { settings: settings.clone(), updated_at, ..current.clone() };
        if ctx.store.replace_entity(&next, current.updated_at).await? {
            return Ok(settings);
        }
    }
    Err(Error::unavailable())
}
