// Mode (b), the entity authentication token: Quest's SDK configured with
// `entityAuthenticationToken` (env QUEST_ENTITY_TOKEN). The SDK itself demands what it
// demands (lib/modules/core/entityCreditTier.js, validateParams before any request):
// - add/update tier, decrementCreditsForUser({forUserId}): the entity token alone, no user;
// - buyCreditsForEntity, decrementCreditsForEntity: the token + a userId, no user token;
// - the six others still require a user session, so they send the token and a session.
// Env: see helpers.mjs.

import assert from 'node:assert/strict';
import { it } from 'node:test';

import { ENTITY_TOKEN, freshUser, sdk } from './helpers.mjs';
import { allMethods } from './flows.mjs';

it('QUEST_ENTITY_TOKEN was minted (POST /api/entities/{e}/entity-tokens)', () => {
  assert.ok(ENTITY_TOKEN, 'the runner could not mint an entity token; see its output');
});

it('the SDK refuses six methods without a user session, before any request', async () => {
  const alone = sdk({ entityToken: ENTITY_TOKEN || 'unset' });
  const refused = [
    () => alone.getCreditTiersForEntity(),
    () => alone.getCreditInfoForUser(),
    () => alone.getCreditInfoForEntity(),
    () => alone.buyCreditsForUser({ creditsTierId: 't', intentId: 'pi_x' }),
    () => alone.createPaymentIntentForEntity({ cardData: {}, intentData: {} }),
    () => alone.approvePaymentForEntity({ intentId: 'pi_x' }),
  ];
  for (const call of refused) {
    await assert.rejects(call, /Please set user or login again/);
  }
});

allMethods('entity authentication token', async () => {
  const { userId, token } = await freshUser('sdk-ent');
  return {
    tierAdmin: sdk({ entityToken: ENTITY_TOKEN }),
    buyer: sdk({ entityToken: ENTITY_TOKEN, userId, token }),
    buyerId: userId,
    poolActor: sdk({ entityToken: ENTITY_TOKEN, userId }),
    poolActorId: userId,
    spender: sdk({ entityToken: ENTITY_TOKEN }),
    spenderFor: userId,
  };
});
