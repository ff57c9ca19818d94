// Shared by tests/quest/*.test.mjs: the env, Quest's SDK pointed at us, native reads, Stripe.
//
// Env (set by tests/tests/quest_sdk.rs, which serves every function on one local port):
//   QUEST_BASE_URL            the service's API base, ending in /api (the SDK's baseUrl)
//   QUEST_APIKEY, QUEST_APISECRET, QUEST_ENTITY_ID   the entity under test (server role)
//   QUEST_OWNER_USER_ID, QUEST_OWNER_TOKEN           an owner of that entity and its session
//   QUEST_USER_ID, QUEST_USER_TOKEN                  a plain user and its session
//   QUEST_EXPIRED_USER_TOKEN  a session token of QUEST_USER_ID that has expired
//   QUEST_ENTITY_TOKEN        an entity authentication token of the entity
//                             (POST /api/entities/{e}/entity-tokens); empty if minting failed
//   QUEST_OTHER_APIKEY, QUEST_OTHER_ENTITY_ID        a second entity
//   STRIPE_BASE               the Stripe stand-in's origin (tests/stripe_standin)
// Tests mint sessions for fresh users themselves (server role), so files do not share users;
// they share the entity's pool, so the runner runs files one at a time and pool checks are
// deltas.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

// The entity pool's native reads (server role).
export const POOL = {
  credits: (e) => `/entities/${e}/pool/credits`,
  history: (e) => `/entities/${e}/pool/credit-history`,
};

const require = createRequire(import.meta.url);
const questCore = require('@questlabs/core');
export const QuestSdk = questCore.default;
export const { EntiyCreditTier } = questCore.Core;

function env(name) {
  const value = process.env[name];
  assert.ok(value !== undefined, `${name} is not set (tests/tests/quest_sdk.rs sets it)`);
  return value;
}

export const BASE = env('QUEST_BASE_URL');
export const APIKEY = env('QUEST_APIKEY');
export const APISECRET = env('QUEST_APISECRET');
export const ENTITY = env('QUEST_ENTITY_ID');
export const OWNER = env('QUEST_OWNER_USER_ID');
export const OWNER_TOKEN = env('QUEST_OWNER_TOKEN');
export const USER = env('QUEST_USER_ID');
export const USER_TOKEN = env('QUEST_USER_TOKEN');
export const EXPIRED_USER_TOKEN = env('QUEST_EXPIRED_USER_TOKEN');
export const ENTITY_TOKEN = env('QUEST_ENTITY_TOKEN');
export const OTHER_APIKEY = env('QUEST_OTHER_APIKEY');
export const OTHER_ENTITY = env('QUEST_OTHER_ENTITY_ID');
export const STRIPE = env('STRIPE_BASE');

export const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Quest's SDK, unchanged but for its base URL; a user session if `userId` is given. */
export function sdk({ userId, token, entityToken, apiKey = APIKEY, entityId = ENTITY } = {}) {
  const quest = new QuestSdk({ apiKey, entityId, entityAuthenticationToken: entityToken });
  quest.baseUrl = BASE;
  if (userId !== undefined) quest.setUser({ userId, token });
  return new EntiyCreditTier(quest);
}

/** A plain fetch to our API (path under /api); answers `{status, body}`. */
export async function call(method, path, { headers = {}, body, query } = {}) {
  const url = new URL(BASE + path);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
  const init = { method, headers: { 'content-type': 'application/json', ...headers } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await fetch(url, init);
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text for the assertion message
  }
  return { status: response.status, body: parsed };
}

export const server = { apikey: APIKEY, apisecret: APISECRET };

/** The headers Quest's SDK sends for a user session (lib/index.js makeRequest). */
export const questSession = (userId, token, { apiKey = APIKEY, entityId = ENTITY } = {}) => ({
  apiKey, userId, token, entityId, 'User-Agent': 'BROWSER',
});

/** Native read as the entity's server, asserting 200; answers `data`. */
export async function native(path, query) {
  const { status, body } = await call('GET', path, { headers: server, query });
  assert.equal(status, 200, `GET ${path}: ${JSON.stringify(body)}`);
  assert.equal(body.success, true);
  return body.data;
}

export const account = (userId) => native(`/entities/${ENTITY}/users/${userId}/credits`);
export const history = async (userId) =>
  (await native(`/entities/${ENTITY}/users/${userId}/credit-history`, { limit: '200' })).entries;
export const poolAccount = () => native(POOL.credits(ENTITY));
export const poolHistory = async () => (await native(POOL.history(ENTITY), { limit: '200' })).entries;

/** Everything a "nothing was written" check compares: user and pool, balances and ledgers. */
export async function snapshot(userId) {
  const [a, h, p, ph] = await Promise.all([account(userId), history(userId), poolAccount(), poolHistory()]);
  return { account: a, history: h, pool: p, poolHistory: ph };
}

/** A session for a fresh user of the entity, minted by its server. */
export async function freshUser(prefix = 'u') {
  const userId = unique(prefix);
  const { status, body } = await call('POST', `/entities/${ENTITY}/users/${userId}/token`, {
    headers: server,
    body: {},
  });
  assert.equal(status, 201, JSON.stringify(body));
  return { userId, token: body.data.token };
}

/** A tier made natively by the server; answers the native tier. */
export async function nativeTier({ credits = 100, bonusCredits = 20, price = 999, name } = {}) {
  const { status, body } = await call('POST', `/entities/${ENTITY}/credit-tiers`, {
    headers: server,
    body: { name: name ?? unique('Tier'), credits, bonusCredits, price },
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body.data;
}

/**
 * What Stripe.js's `confirmCardPayment(clientSecret, …)` does in the browser: confirm the
 * intent with the publishable key and its client secret (the stand-in checks only the key's
 * format). `pm_card_visa` stands in for the card the buyer typed.
 */
export async function confirmAtStripe(intentId, clientSecret, paymentMethod = 'pm_card_visa') {
  assert.ok(clientSecret.startsWith(`${intentId}_secret_`), `client secret ${clientSecret} of ${intentId}`);
  const form = new URLSearchParams({
    payment_method: paymentMethod,
    client_secret: clientSecret,
    expected_payment_method_type: 'card',
    use_stripe_sdk: 'true',
  });
  const response = await fetch(`${STRIPE}/v1/payment_intents/${intentId}/confirm`, {
    method: 'POST',
    headers: {
      authorization: 'Bearer pk_test_questsuite',
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: form,
  });
  const intent = await response.json();
  assert.equal(response.status, 200, JSON.stringify(intent));
  assert.equal(intent.status, 'succeeded');
  return intent;
}

/** The intent as Stripe has it (secret key), to check what the service asked for. */
export async function stripeIntent(intentId) {
  const response = await fetch(`${STRIPE}/v1/payment_intents/${intentId}`, {
    headers: { authorization: 'Bearer sk_test_questsuite' },
  });
  assert.equal(response.status, 200);
  return response.json();
}

/**
 * The Quest form of a user's or the pool's credits must agree with the native account and
 * ledger (our accounts here see only purchases and spends, one Quest item per entry; how our
 * entry types map onto BOUGHT/GIFTED/EARNED is the Quest face's choice, signs too).
 */
export function assertQuestCredits(quest, native, nativeHistory) {
  assert.equal(quest.creditsAmount, native.balance, 'creditsAmount is the balance');
  assert.equal(quest.totalCreditsBought ?? 0, native.lifetimePurchased, 'totalCreditsBought');
  assert.ok(Array.isArray(quest.history), 'history is an array');
  const amounts = (list, key) => list.map((item) => Math.abs(item[key])).sort((a, b) => a - b);
  assert.deepEqual(amounts(quest.history, 'creditsAmount'), amounts(nativeHistory, 'credits'), 'one item per entry');
  for (const item of quest.history) {
    assert.equal(typeof item.type, 'string');
    assert.ok(!Number.isNaN(Date.parse(item.createdAt)), `createdAt ${item.createdAt}`);
  }
}

/** The newest entries (newest first) created after `before` (an earlier `history` answer). */
export function newEntries(before, after) {
  const seen = new Set(before.map((e) => e.entryId));
  return after.filter((e) => !seen.has(e.entryId));
}

/** A Quest-face error: `success: false`, `error` a string naming `field` (if given). */
export function assertQuestError(body, field) {
  assert.equal(body?.success, false, JSON.stringify(body));
  assert.equal(typeof body.error, 'string', `error is a string: ${JSON.stringify(body)}`);
  if (field) assert.match(body.error, new RegExp(`\\b${field.replace(/\./g, '\\.')}\\b`), body.error);
}
