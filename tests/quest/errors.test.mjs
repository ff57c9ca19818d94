// Errors through the Quest face, each checked to write nothing (the user's and the pool's
// native balances and ledgers, and the tier list, are the same after the request):
// - every required field missing or of the wrong type → 400, `error` a string naming it;
// - an expired user token → 401 with `userTokenExpired: true`;
// - another entity's key or ids → 401/403/404; intents of another user or beneficiary refused.
// Requests carry the headers Quest's SDK sends (lib/index.js makeRequest). Env: helpers.mjs.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  APIKEY, ENTITY, ENTITY_TOKEN, EXPIRED_USER_TOKEN, OTHER_APIKEY, OTHER_ENTITY, OWNER, OWNER_TOKEN, USER,
  assertQuestError, call, confirmAtStripe, freshUser, native, nativeTier, questSession, sdk, server, snapshot,
  unique,
} from './helpers.mjs';

let user; // a fresh user with some credits
let tier; // a native tier on sale

async function fund(userId, credits) {
  const { status, body } = await call('POST', `/entities/${ENTITY}/users/${userId}/buy-credits`, {
    headers: server,
    body: { credits, idempotencyKey: unique('fund') },
  });
  assert.equal(status, 200, JSON.stringify(body));
}

const tierIds = async () => (await native(`/entities/${ENTITY}/credit-tiers`, { includeArchived: 'true' })).map((t) => t.creditTierId).sort();

/** Runs `request`, asserts its status is one of `statuses`, and that nothing was written. */
async function refused(request, statuses, { userId = user.userId, check } = {}) {
  const [before, tiersBefore] = [await snapshot(userId), await tierIds()];
  const answer = await request();
  assert.ok(statuses.includes(answer.status), `status ${answer.status} not in ${statuses}: ${JSON.stringify(answer.body)}`);
  if (check) check(answer.body);
  assert.deepEqual(await snapshot(userId), before, 'nothing written');
  assert.deepEqual(await tierIds(), tiersBefore, 'no tier written');
  return answer;
}

before(async () => {
  user = await freshUser('err');
  await fund(user.userId, 50);
  tier = await nativeTier({ credits: 10, bonusCredits: 0, price: 500 });
});

describe('400: required fields missing or of the wrong type, named in `error`', () => {
  const owner = () => questSession(OWNER, OWNER_TOKEN);
  const session = () => questSession(user.userId, user.token);
  // Without the entityId header too: no query, no header, no entity.
  const noEntity = () => without(session(), 'entityId');
  const newTier = () => ({
    creditsAmount: 100, extraCreditsAmount: 0, price: 999, creditsTierId: unique('qt'), creditsTierName: unique('Err Tier'), recurringTimePeriod: 'ONETIME',
  });
  const without = (object, key) => Object.fromEntries(Object.entries(object).filter(([k]) => k !== key));
  const intentBody = () => ({
    cardData: { email: 'a@example.com', name: 'A', address: { country: 'US', postal_code: '94107', city: 'SF', state: 'CA' } },
    intentData: { paymentMethodId: 'pm_card_visa', amount: 100, currency: 'usd', name: tier.name },
  });
  // [what, method, path (a function: ids are known only after `before`), headers, body, field]
  const cases = [
    ...['creditsAmount', 'price', 'creditsTierId', 'creditsTierName'].map((f) => [`add tier without ${f}`, 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => without(newTier(), f), f]),
    ['add tier, creditsAmount a string', 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ ...newTier(), creditsAmount: '100' }), 'creditsAmount'],
    ['add tier, price a fraction', 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ ...newTier(), price: 9.99 }), 'price'],
    ['add tier, extraCreditsAmount a string', 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ ...newTier(), extraCreditsAmount: '20' }), 'extraCreditsAmount'],
    ['add tier, creditsTierName a number', 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ ...newTier(), creditsTierName: 5 }), 'creditsTierName'],
    ['add tier, recurringTimePeriod unknown', 'POST', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ ...newTier(), recurringTimePeriod: 'HOURLY' }), 'recurringTimePeriod'],
    ['update tier without creditsTierId', 'PATCH', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ price: 1000 }), 'creditsTierId'],
    ['update tier, price a string', 'PATCH', () => `/entities/${ENTITY}/credits-tiers`, owner, () => ({ creditsTierId: tier.creditTierId, price: '1000' }), 'price'],
    ['user decrement without creditsAmount', 'POST', () => `/users/${user.userId}/decrement-credits?entityId=${ENTITY}`, session, () => ({}), 'creditsAmount'],
    ['user decrement, creditsAmount a string', 'POST', () => `/users/${user.userId}/decrement-credits?entityId=${ENTITY}`, session, () => ({ creditsAmount: '5' }), 'creditsAmount'],
    ['user decrement, creditsAmount a fraction', 'POST', () => `/users/${user.userId}/decrement-credits?entityId=${ENTITY}`, session, () => ({ creditsAmount: 1.5 }), 'creditsAmount'],
    ['user decrement without entityId', 'POST', () => `/users/${user.userId}/decrement-credits`, noEntity, () => ({ creditsAmount: 5 }), 'entityId'],
    ['pool decrement without creditsAmount', 'POST', () => `/entities/${ENTITY}/decrement-credits?userId=${user.userId}`, session, () => ({}), 'creditsAmount'],
    ['pool decrement, creditsAmount a string', 'POST', () => `/entities/${ENTITY}/decrement-credits?userId=${user.userId}`, session, () => ({ creditsAmount: '3' }), 'creditsAmount'],
    ['user buy-credits without creditsTierId', 'POST', () => `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, session, () => ({ intentId: 'pi_x' }), 'creditsTierId'],
    ['user buy-credits without intentId', 'POST', () => `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, session, () => ({ creditsTierId: tier.creditTierId }), 'intentId'],
    ['user buy-credits, intentId a number', 'POST', () => `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, session, () => ({ creditsTierId: tier.creditTierId, intentId: 123 }), 'intentId'],
    ['pool buy-credits without intentId', 'POST', () => `/entities/${ENTITY}/buy-credits?userId=${user.userId}`, session, () => ({ creditsTierId: tier.creditTierId }), 'intentId'],
    ['pool buy-credits, creditsTierId a number', 'POST', () => `/entities/${ENTITY}/buy-credits?userId=${user.userId}`, session, () => ({ creditsTierId: 7, intentId: 'pi_x' }), 'creditsTierId'],
    ['create-payment-intent without intentData.name', 'POST', () => `/entities/${ENTITY}/users/${user.userId}/create-payment-intent`, session, () => ({ ...intentBody(), intentData: without(intentBody().intentData, 'name') }), 'name'],
    ['create-payment-intent, intentData.name a number', 'POST', () => `/entities/${ENTITY}/users/${user.userId}/create-payment-intent`, session, () => ({ ...intentBody(), intentData: { ...intentBody().intentData, name: 123 } }), 'name'],
    ['approve-payment without intentId', 'POST', () => `/entities/${ENTITY}/approve-payment`, session, () => ({}), 'intentId'],
    ['approve-payment, intentId a number', 'POST', () => `/entities/${ENTITY}/approve-payment`, session, () => ({ intentId: 42 }), 'intentId'],
    ['user credits without entityId', 'GET', () => `/users/${user.userId}/credits`, noEntity, () => undefined, 'entityId'],
  ];
  for (const [what, method, path, headers, body, field] of cases) {
    it(what, () =>
      refused(() => call(method, path(), { headers: headers(), body: body() }), [400], { check: (b) => assertQuestError(b, field) }));
  }
  // The one path both faces share (native Q6 = Quest's create-payment-intent): a body without
  // intentData may be a native request missing creditTierId, so either answer names a field.
  it('create-payment-intent without intentData', () =>
    refused(
      () => call('POST', `/entities/${ENTITY}/users/${user.userId}/create-payment-intent`, { headers: session(), body: without(intentBody(), 'intentData') }),
      [400],
      { check: (b) => assert.match(typeof b.error === 'string' ? b.error : b.error?.message, /\b(intentData|creditTierId)\b/, JSON.stringify(b)) },
    ));
});

describe('401: an expired user token', () => {
  it('through the SDK: the body says userTokenExpired', async () => {
    const res = await sdk({ userId: USER, token: EXPIRED_USER_TOKEN }).getCreditInfoForUser();
    assertQuestError(res);
    assert.equal(res.userTokenExpired, true, JSON.stringify(res));
  });
  for (const [what, method, path, body] of [
    ['reading credits', 'GET', () => `/users/${USER}/credits?entityId=${ENTITY}`, undefined],
    ['spending', 'POST', () => `/users/${USER}/decrement-credits?entityId=${ENTITY}`, { creditsAmount: 1 }],
    ['spending from the pool', 'POST', () => `/entities/${ENTITY}/decrement-credits?userId=${USER}`, { creditsAmount: 1 }],
    ['creating an intent', 'POST', () => `/entities/${ENTITY}/users/${USER}/create-payment-intent`, { intentData: { paymentMethodId: 'pm_card_visa', amount: 1, currency: 'usd', name: 'x' } }],
  ]) {
    it(what, () =>
      refused(() => call(method, path(), { headers: questSession(USER, EXPIRED_USER_TOKEN), body }), [401], {
        userId: USER,
        check: (b) => {
          assertQuestError(b);
          assert.equal(b.userTokenExpired, true, JSON.stringify(b));
        },
      }));
  }
});

describe("401/403/404: another entity's key or ids", () => {
  const denied = [401, 403, 404];
  const spend = { creditsAmount: 1 };
  const quest = { check: (b) => assertQuestError(b) }; // in Quest's envelope, not a bare 404
  it("another entity's apikey with our user's session", () =>
    refused(() => call('POST', `/users/${user.userId}/decrement-credits?entityId=${ENTITY}`, { headers: questSession(user.userId, user.token, { apiKey: OTHER_APIKEY, entityId: ENTITY }), body: spend }), denied, quest));
  it("another entity's apikey with our entity token", () =>
    refused(() => call('POST', `/users/${user.userId}/decrement-credits?entityId=${ENTITY}`, { headers: { apiKey: OTHER_APIKEY, entityId: ENTITY, 'entity-authentication-token': ENTITY_TOKEN }, body: spend }), denied, quest));
  it("our key and session on another entity's pool", () =>
    refused(() => call('POST', `/entities/${OTHER_ENTITY}/decrement-credits?userId=${user.userId}`, { headers: questSession(user.userId, user.token, { entityId: OTHER_ENTITY }), body: spend }), denied, quest));
  it("our key and session, another entity's id in the query", () =>
    refused(() => call('POST', `/users/${user.userId}/decrement-credits?entityId=${OTHER_ENTITY}`, { headers: questSession(user.userId, user.token, { entityId: OTHER_ENTITY }), body: spend }), denied, quest));
  it('an entityId header naming another entity than the path → 403', () =>
    refused(() => call('POST', `/entities/${ENTITY}/decrement-credits?userId=${user.userId}`, { headers: questSession(user.userId, user.token, { entityId: OTHER_ENTITY }), body: spend }), [403], quest));
  it("another user's id in the path", async () => {
    const other = await freshUser('err-other');
    await refused(() => call('POST', `/users/${other.userId}/decrement-credits?entityId=${ENTITY}`, { headers: questSession(user.userId, user.token), body: spend }), [403, 404], { ...quest, userId: other.userId });
  });
  it('a forged entity authentication token', () =>
    refused(() => call('POST', `/entities/${ENTITY}/credits-tiers`, { headers: { apiKey: APIKEY, entityId: ENTITY, 'entity-authentication-token': `${ENTITY_TOKEN}x` }, body: { creditsAmount: 1, extraCreditsAmount: 0, price: 1, creditsTierId: unique('qt'), creditsTierName: unique('Forged'), recurringTimePeriod: 'ONETIME' } }), [401], quest));
  it('tier management as a plain user', () =>
    refused(() => call('POST', `/entities/${ENTITY}/credits-tiers`, { headers: questSession(user.userId, user.token), body: { creditsAmount: 1, extraCreditsAmount: 0, price: 1, creditsTierId: unique('qt'), creditsTierName: unique('Nope'), recurringTimePeriod: 'ONETIME' } }), [403], quest));
});

describe("intents: another user's or the other beneficiary's", () => {
  /** A succeeded intent created by `buyer` through the SDK; `forPool` keeps forEntityId. */
  async function paidIntent(buyer, forPool) {
    const res = await sdk(buyer).createPaymentIntentForEntity(
      { cardData: { email: 'a@example.com', name: 'A', address: { country: 'US', postal_code: 94107, city: 'SF', state: 'CA', line1: 'x', line2: '' } }, intentData: { paymentMethodId: 'pm_card_visa', amount: 1, currency: 'usd', name: tier.name } },
      forPool ? undefined : { _body: { forEntityId: undefined } },
    );
    assert.equal(res.success, true, JSON.stringify(res));
    await confirmAtStripe(res.data.intentId, res.data.clientSecret);
    return res.data.intentId;
  }

  it("another user's intent → 404, nobody credited", async () => {
    const payer = await freshUser('err-payer');
    const intentId = await paidIntent(payer, false);
    const payerBefore = await snapshot(payer.userId);
    await refused(() => call('POST', `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, { headers: questSession(user.userId, user.token), body: { creditsTierId: tier.creditTierId, intentId } }), [404]);
    await refused(() => call('POST', `/entities/${ENTITY}/approve-payment`, { headers: questSession(user.userId, user.token), body: { intentId } }), [404]);
    assert.deepEqual(await snapshot(payer.userId), payerBefore, "the payer's intent is not credited by another's call");
  });

  it('a pool intent on the user route → 409 naming the beneficiary; a user intent on the pool route → 409', async () => {
    const poolIntent = await paidIntent(user, true);
    await refused(() => call('POST', `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, { headers: questSession(user.userId, user.token), body: { creditsTierId: tier.creditTierId, intentId: poolIntent } }), [409], { check: (b) => assertQuestError(b) });
    const userIntent = await paidIntent(user, false);
    await refused(() => call('POST', `/entities/${ENTITY}/buy-credits?userId=${user.userId}`, { headers: questSession(user.userId, user.token), body: { creditsTierId: tier.creditTierId, intentId: userIntent } }), [409], { check: (b) => assertQuestError(b) });
  });

  it("a tier other than the intent's → 400", async () => {
    const intentId = await paidIntent(user, false);
    const otherTier = await nativeTier({ credits: 1, bonusCredits: 0, price: 100 });
    await refused(() => call('POST', `/users/${user.userId}/buy-credits?entityId=${ENTITY}`, { headers: questSession(user.userId, user.token), body: { creditsTierId: otherTier.creditTierId, intentId } }), [400], { check: (b) => assertQuestError(b, 'creditsTierId') });
  });
});

it('the SDK gets error bodies back rather than exceptions (what Quest clients rely on)', async () => {
  const res = await sdk({ userId: user.userId, token: user.token }).decrementCreditsForUser({ creditsAmount: 1_000_000 });
  assertQuestError(res);
  assert.match(res.error, /credits/i);
  assert.equal((await snapshot(user.userId)).account.balance, 50);
});
