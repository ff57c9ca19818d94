// Mode (a), user sessions: Quest's SDK configured with apiKey + entityId and setUser({userId,
// token}) exactly as a browser app does. Tier management by an owner of the entity (the SDK
// never sends apiSecret, so an owner session is how a user-mode client manages tiers);
// everything else by a fresh plain user. Env: see helpers.mjs.

import { OWNER, OWNER_TOKEN, freshUser, sdk } from './helpers.mjs';
import { allMethods } from './flows.mjs';

allMethods('user session', async () => {
  const { userId, token } = await freshUser('sdk-user');
  const buyer = sdk({ userId, token });
  return {
    tierAdmin: sdk({ userId: OWNER, token: OWNER_TOKEN }),
    buyer,
    buyerId: userId,
    poolActor: buyer,
    poolActorId: userId,
    spender: buyer,
    spenderFor: undefined,
  };
});
