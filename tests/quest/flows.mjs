// All 11 EntiyCreditTier methods, in the order a real integration uses them, each followed by
// a check of its effect through our native API. The two auth modes differ only in which SDK
// object (credentials) makes each call: see sdk_user.test.mjs and sdk_entity_token.test.mjs.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  ENTITY, account, assertQuestCredits, confirmAtStripe, history, native, newEntries, poolAccount,
  poolHistory, stripeIntent, unique,
} from './helpers.mjs';

/**
 * `setup()` answers `{ tierAdmin, buyer, poolActor, spender, buyerId, poolActorId, spenderFor }`:
 * - tierAdmin: add/update a tier; buyer: list tiers, read credits, create/approve intents,
 *   buyCreditsForUser (its user is `buyerId`); poolActor: the pool's buy and decrement (acting
 *   user `poolActorId`); spender: decrementCreditsForUser, with `spenderFor` as `forUserId`
 *   (undefined: the SDK's own user).
 */
export function allMethods(mode, setup) {
  describe(`EntiyCreditTier, ${mode}`, () => {
    let c;
    const tierId = unique('qt');
    const tierName = unique('Quest Tier');
    let tier; // the Quest form, as the tier list answers it

    before(async () => {
      c = await setup();
    });

    it('addCreditTierForEntity creates the tier natively', async () => {
      const res = await c.tierAdmin.addCreditTierForEntity({
        creditsTierId: tierId, creditsTierName: tierName, creditsAmount: 100, extraCreditsAmount: 20, price: 999,
      });
      assert.equal(res.success, true, JSON.stringify(res));
      assert.deepEqual(
        pick(res.data, ['entityId', 'creditsTierId', 'creditsTierName', 'creditsAmount', 'extraCreditsAmount', 'price', 'recurringTimePeriod']),
        { entityId: ENTITY, creditsTierId: tierId, creditsTierName: tierName, creditsAmount: 100, extraCreditsAmount: 20, price: 999, recurringTimePeriod: 'ONETIME' },
      );
      const t = await native(`/entities/${ENTITY}/credit-tiers/${tierId}`);
      assert.deepEqual(
        pick(t, ['creditTierId', 'name', 'credits', 'bonusCredits', 'price', 'recurring', 'status', 'version']),
        { creditTierId: tierId, name: tierName, credits: 100, bonusCredits: 20, price: 999, recurring: 'none', status: 'active', version: 1 },
      );
    });

    it('updateCreditTierForEntity changes it natively (tier named in the body)', async () => {
      const res = await c.tierAdmin.updateCreditTierForEntity({ creditsTierId: tierId, price: 1299, creditsAmount: 150 });
      assert.equal(res.success, true, JSON.stringify(res));
      assert.equal(res.data.creditsTierId, tierId);
      assert.equal(res.data.price, 1299);
      assert.equal(res.data.creditsAmount, 150);
      const t = await native(`/entities/${ENTITY}/credit-tiers/${tierId}`);
      assert.deepEqual(pick(t, ['price', 'credits', 'bonusCredits', 'version']), { price: 1299, credits: 150, bonusCredits: 20, version: 2 });
    });

    it('getCreditTiersForEntity lists the active tiers, as natively', async () => {
      const res = await c.buyer.getCreditTiersForEntity();
      assert.equal(res.success, true, JSON.stringify(res));
      assert.ok(Array.isArray(res.data));
      const nativeIds = (await native(`/entities/${ENTITY}/credit-tiers`)).map((t) => t.creditTierId).sort();
      assert.deepEqual(res.data.map((t) => t.creditsTierId).sort(), nativeIds);
      tier = res.data.find((t) => t.creditsTierId === tierId);
      assert.deepEqual(
        pick(tier, ['entityId', 'creditsTierName', 'creditsAmount', 'extraCreditsAmount', 'price', 'recurringTimePeriod']),
        { entityId: ENTITY, creditsTierName: tierName, creditsAmount: 150, extraCreditsAmount: 20, price: 1299, recurringTimePeriod: 'ONETIME' },
      );
    });

    /** createPaymentIntentForEntity as the SDK sends it; `forUser` drops `forEntityId`. */
    async function intent({ forUser }) {
      const res = await c.buyer.createPaymentIntentForEntity(
        {
          cardData: { email: 'buyer@example.com', name: 'Buyer', address: { country: 'US', postal_code: 94107, city: 'SF', state: 'CA', line1: '1 Main St', line2: '' } },
          // `amount` is deliberately not the price: the price comes from the tier.
          intentData: { paymentMethodId: 'pm_card_visa', amount: 1, currency: 'usd', name: tierName },
        },
        forUser ? { _body: { forEntityId: undefined } } : undefined,
      );
      assert.equal(res.success, true, JSON.stringify(res));
      assert.match(res.data.intentId, /^pi_/);
      const atStripe = await stripeIntent(res.data.intentId);
      assert.equal(atStripe.amount, 1299, "the tier's price, not intentData.amount");
      assert.equal(atStripe.currency, 'usd');
      assert.notEqual(atStripe.status, 'succeeded', 'the browser confirms, not the service');
      return res.data;
    }

    it('createPaymentIntentForEntity (user) → Stripe → buyCreditsForUser credits the user once', async () => {
      const [before, beforeHistory, poolBefore] = [await account(c.buyerId), await history(c.buyerId), await poolAccount()];
      const { intentId, clientSecret } = await intent({ forUser: true });
      assert.equal((await account(c.buyerId)).balance, before.balance, 'nothing before the money moves');
      await confirmAtStripe(intentId, clientSecret);
      const res = await c.buyer.buyCreditsForUser({ creditsTierId: tierId, intentId });
      assert.equal(res.success, true, JSON.stringify(res));
      const again = await c.buyer.buyCreditsForUser({ creditsTierId: tierId, intentId });
      assert.equal(again.success, true, `a repeat reports success: ${JSON.stringify(again)}`);
      const after = await account(c.buyerId);
      assert.equal(after.balance, before.balance + 170, 'credits + bonus, once');
      assert.equal(after.lifetimePurchased, before.lifetimePurchased + 170);
      const added = newEntries(beforeHistory, await history(c.buyerId));
      assert.deepEqual(added.map((e) => pick(e, ['type', 'credits', 'paymentIntentId'])), [{ type: 'purchase', credits: 170, paymentIntentId: intentId }]);
      assert.equal((await poolAccount()).balance, poolBefore.balance, 'the pool is not the beneficiary');
    });

    it('createPaymentIntentForEntity (forEntityId) → Stripe → buyCreditsForEntity credits the pool once', async () => {
      const [poolBefore, poolHistoryBefore, userBefore] = [await poolAccount(), await poolHistory(), await account(c.poolActorId)];
      const { intentId, clientSecret } = await intent({ forUser: false });
      await confirmAtStripe(intentId, clientSecret);
      const res = await c.poolActor.buyCreditsForEntity({ creditsTierId: tierId, intentId });
      assert.equal(res.success, true, JSON.stringify(res));
      await c.poolActor.buyCreditsForEntity({ creditsTierId: tierId, intentId });
      assert.equal((await poolAccount()).balance, poolBefore.balance + 170, 'credits + bonus, once');
      const added = newEntries(poolHistoryBefore, await poolHistory());
      assert.deepEqual(added.map((e) => pick(e, ['type', 'credits', 'paymentIntentId'])), [{ type: 'purchase', credits: 170, paymentIntentId: intentId }]);
      assert.equal(added[0].byUserId, c.poolActorId, 'a pool entry records who acted');
      assert.equal((await account(c.poolActorId)).balance, userBefore.balance, 'the user is not the beneficiary');
    });

    it('createPaymentIntentForEntity (user) → Stripe → approvePaymentForEntity credits once', async () => {
      const [before, beforeHistory] = [await account(c.buyerId), await history(c.buyerId)];
      const { intentId, clientSecret } = await intent({ forUser: true });
      await confirmAtStripe(intentId, clientSecret);
      const res = await c.buyer.approvePaymentForEntity({ intentId });
      assert.equal(res.success, true, JSON.stringify(res));
      const again = await c.buyer.approvePaymentForEntity({ intentId });
      assert.equal(again.success, true, JSON.stringify(again));
      assert.equal((await account(c.buyerId)).balance, before.balance + 170);
      const added = newEntries(beforeHistory, await history(c.buyerId));
      assert.deepEqual(added.map((e) => pick(e, ['type', 'credits', 'paymentIntentId'])), [{ type: 'purchase', credits: 170, paymentIntentId: intentId }]);
    });

    it("getCreditInfoForUser answers the user's native balance and ledger", async () => {
      const res = await c.buyer.getCreditInfoForUser();
      assert.equal(res.success, true, JSON.stringify(res));
      assert.equal(res.data.userId, c.buyerId);
      assert.equal(res.data.entityId, ENTITY);
      assertQuestCredits(res.data, await account(c.buyerId), await history(c.buyerId));
      assert.equal(res.data.history.filter((h) => h.type === 'BOUGHT' && h.creditsAmount === 170).length, 2);
    });

    it("getCreditInfoForEntity answers the pool's native balance and ledger", async () => {
      const res = await c.buyer.getCreditInfoForEntity();
      assert.equal(res.success, true, JSON.stringify(res));
      assert.equal(res.data.entityId, ENTITY);
      const ledger = await poolHistory();
      assertQuestCredits(res.data, await poolAccount(), ledger);
      for (const item of res.data.history) assert.equal(typeof item.byUserId, 'string');
      assert.deepEqual(res.data.history.map((h) => h.byUserId).sort(), ledger.map((e) => e.byUserId).sort());
    });

    it("decrementCreditsForUser spends the user's credits", async () => {
      const spenderId = c.spenderFor ?? c.buyerId;
      const [before, beforeHistory] = [await account(spenderId), await history(spenderId)];
      const res = await c.spender.decrementCreditsForUser({ creditsAmount: 7, forUserId: c.spenderFor });
      assert.equal(res.success, true, JSON.stringify(res));
      assert.equal((await account(spenderId)).balance, before.balance - 7);
      const added = newEntries(beforeHistory, await history(spenderId));
      assert.deepEqual(added.map((e) => pick(e, ['type', 'credits', 'balanceAfter'])), [{ type: 'decrement', credits: -7, balanceAfter: before.balance - 7 }]);
    });

    it("decrementCreditsForEntity spends the pool's credits, recording the acting user", async () => {
      const [poolBefore, poolHistoryBefore, userBefore] = [await poolAccount(), await poolHistory(), await account(c.poolActorId)];
      const res = await c.poolActor.decrementCreditsForEntity({ creditsAmount: 3 });
      assert.equal(res.success, true, JSON.stringify(res));
      assert.equal((await poolAccount()).balance, poolBefore.balance - 3);
      const added = newEntries(poolHistoryBefore, await poolHistory());
      assert.deepEqual(added.map((e) => pick(e, ['type', 'credits', 'byUserId'])), [{ type: 'decrement', credits: -3, byUserId: c.poolActorId }]);
      assert.equal((await account(c.poolActorId)).balance, userBefore.balance, "the user's own account is untouched");
    });
  });
}

export function pick(object, keys) {
  assert.ok(object && typeof object === 'object', `expected an object, got ${JSON.stringify(object)}`);
  return Object.fromEntries(keys.map((k) => [k, object[k]]));
}
