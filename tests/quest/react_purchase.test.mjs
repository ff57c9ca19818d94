// The React SDK's purchase (@questlabs/react-sdk 2.3.0) replicated with fetch, request for
// request. Its backend URL is hard-coded (`it.BACKEND_URL = "https://api.questera.ai/"`), so
// the component itself cannot be pointed at us; these are its calls, from dist/index.umd.js:
// - N2e, on mount:  Ke.get(`${it.BACKEND_URL}api/entities/${w}/credits-tiers?userId=${e}`,
//                   {headers:{apiKey:B,apisecret:y,userId:e,token:t}})
// - U2e, on submit: K={cardData:{name:N,email:te,address:G},intentData:{amount:Number(h.creditsAmount)||0,
//                   currency:"usd",name:h.creditsTierName,paymentMethodId:j.id},forEntityId:u}
//                   Ke.post(`${it.BACKEND_URL}api/entities/${P}/users/${a}/create-payment-intent`,K,
//                   {headers:{apiKey:S,apiSecret:x,entityId:P,userId:a,token:l}})
//                   if(J.success===!1)throw new Error(J.error)   … J.data.clientSecret, J.data.intentId
// - H:              I.confirmCardPayment(D,{payment_method:{card:{token:Q}}})   (Stripe.js)
// - then:           Ke.post(`${it.BACKEND_URL}api/entities/${P}/approve-payment`,{intentId:J.data.intentId},
//                   {headers:{apiKey:S,apiSecret:x,entityId:P,userId:a,token:l}})
//                   if(z.success===!1)throw new Error(z.error)
// `apiSecret`/`apisecret` come from QuestProvider's props; a browser app has none, and axios
// drops undefined headers, so they are not sent here. `Ke` is axios: any non-2xx throws, so
// every answer below must be 2xx with `success` not false. Env: see helpers.mjs.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  APIKEY, ENTITY, account, call, confirmAtStripe, freshUser, history, nativeTier, newEntries, poolAccount,
  poolHistory, sdk, stripeIntent,
} from './helpers.mjs';

const reactHeaders = (userId, token) => ({ apiKey: APIKEY, entityId: ENTITY, userId, token });

/** N2e's tier list, then U2e's create-payment-intent for the tier named `tierName`. */
async function startPurchase({ userId, token }, tierName, forEntityId) {
  const list = await call('GET', `/entities/${ENTITY}/credits-tiers?userId=${userId}`, {
    headers: { apiKey: APIKEY, userId, token },
  });
  assert.equal(list.status, 200, JSON.stringify(list.body));
  assert.equal(list.body.success, true);
  const h = list.body.data.find((t) => t.creditsTierName === tierName);
  assert.ok(h, `${tierName} in ${JSON.stringify(list.body.data)}`);
  const K = {
    cardData: { name: 'Buyer', email: 'buyer@example.com', address: { city: 'SF', country: 'US', postal_code: '94107', state: 'CA' } },
    intentData: { amount: Number(h.creditsAmount) || 0, currency: 'usd', name: h.creditsTierName, paymentMethodId: 'pm_card_visa' },
    forEntityId, // undefined → left out of the JSON, as axios/JSON.stringify do
  };
  const J = await call('POST', `/entities/${ENTITY}/users/${userId}/create-payment-intent`, {
    headers: reactHeaders(userId, token),
    body: K,
  });
  assert.ok(J.status >= 200 && J.status < 300, `${J.status} ${JSON.stringify(J.body)}`);
  assert.notEqual(J.body.success, false, J.body.error);
  assert.equal(typeof J.body.data.clientSecret, 'string');
  assert.equal(typeof J.body.data.intentId, 'string');
  assert.equal((await stripeIntent(J.body.data.intentId)).amount, 2500, "the tier's price, not intentData.amount");
  return J.body.data;
}

const approve = ({ userId, token }, intentId) =>
  call('POST', `/entities/${ENTITY}/approve-payment`, { headers: reactHeaders(userId, token), body: { intentId } });

describe('the React payment component', () => {
  it('buys for the user once, even under 10 parallel approves and a buy-credits', async () => {
    const tier = await nativeTier({ credits: 300, bonusCredits: 45, price: 2500 });
    const buyer = await freshUser('react');
    const [before, beforeHistory, poolBefore] = [await account(buyer.userId), await history(buyer.userId), await poolAccount()];

    const { clientSecret, intentId } = await startPurchase(buyer, tier.name, undefined);
    await confirmAtStripe(intentId, clientSecret);
    const answers = await Promise.all([
      ...Array.from({ length: 10 }, () => approve(buyer, intentId)),
      sdk(buyer).buyCreditsForUser({ creditsTierId: tier.creditTierId, intentId }).then((body) => ({ status: 'sdk', body })),
    ]);
    for (const { status, body } of answers) {
      assert.ok(status === 'sdk' || (status >= 200 && status < 300), `${status} ${JSON.stringify(body)}`);
      assert.equal(body.success, true, JSON.stringify(body));
    }

    const after = await account(buyer.userId);
    assert.equal(after.balance, before.balance + 345, 'credited exactly once');
    const added = newEntries(beforeHistory, await history(buyer.userId));
    assert.deepEqual(
      added.map((e) => [e.type, e.credits, e.paymentIntentId, e.creditTierId]),
      [['purchase', 345, intentId, tier.creditTierId]],
    );
    assert.equal((await poolAccount()).balance, poolBefore.balance, 'no forEntityId: not for the pool');
  });

  it('buys for the pool when the component is given forEntityId', async () => {
    const tier = await nativeTier({ credits: 300, bonusCredits: 45, price: 2500 });
    const buyer = await freshUser('react-pool');
    const [userBefore, poolBefore, poolHistoryBefore] = [await account(buyer.userId), await poolAccount(), await poolHistory()];

    const { clientSecret, intentId } = await startPurchase(buyer, tier.name, ENTITY);
    await confirmAtStripe(intentId, clientSecret);
    const answer = await approve(buyer, intentId);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.success, true);

    assert.equal((await poolAccount()).balance, poolBefore.balance + 345);
    const added = newEntries(poolHistoryBefore, await poolHistory());
    assert.deepEqual(added.map((e) => [e.type, e.credits, e.paymentIntentId, e.byUserId]), [['purchase', 345, intentId, buyer.userId]]);
    assert.equal((await account(buyer.userId)).balance, userBefore.balance, 'the user is not the beneficiary');
  });
});
