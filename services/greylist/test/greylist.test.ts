import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type GreylistCheckReply, GreylistCheckReplySchema } from '@secondary-mx/contracts';
import { LOCAL_REDIS_URL, uniqueName } from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { Greylist, type GreylistOptions } from '../src/greylist.ts';
import { InvalidAddressError } from '../src/network.ts';
import { type Triplet, tripletKey } from '../src/triplet.ts';

const PREFIX = `${uniqueName('smx_greylist')}:`;

const redis = new Redis(LOCAL_REDIS_URL);

after(async () => {
  const keys = await listKeys();
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
});

const OPTIONS: GreylistOptions = {
  keyPrefix: PREFIX,
  delayMs: 1_000,
  retryWindowMs: 3_000,
  maxAgeMs: 5_000,
};

function createGreylist(overrides: Partial<GreylistOptions> = {}): Greylist {
  return new Greylist(redis, { ...OPTIONS, ...overrides });
}

let tripletCount = 0;

/** Returns a triplet that no other test uses, so tests never see each other's records. */
function newTriplet(clientAddress = '192.0.2.10'): Triplet {
  tripletCount += 1;
  return {
    clientAddress,
    sender: 'sender@example.com',
    recipient: `rcpt${tripletCount}@example.org`,
  };
}

/** Runs one check and asserts that the verdict matches the reply contract. */
async function check(
  greylist: Greylist,
  triplet: Triplet,
  now?: number,
): Promise<GreylistCheckReply> {
  const verdict = await greylist.check(triplet, now);
  assert.ok(GreylistCheckReplySchema.safeParse(verdict).success, JSON.stringify(verdict));
  return verdict;
}

async function listKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

test('first attempt is deferred as new', async () => {
  const verdict = await check(createGreylist(), newTriplet(), Date.now());
  assert.deepEqual(verdict, { action: 'defer', reason: 'new', retryAfter: 1 });
});

test('early retry does not reset the clock', async () => {
  const greylist = createGreylist({ delayMs: 10_000, retryWindowMs: 30_000 });
  const triplet = newTriplet();
  const t0 = Date.now();

  assert.equal((await check(greylist, triplet, t0)).reason, 'new');
  assert.deepEqual(await check(greylist, triplet, t0 + 3_000), {
    action: 'defer',
    reason: 'too-early',
    retryAfter: 7,
  });
  // Measured from t0: a reset at t0 + 3 s would leave 5 s here.
  assert.deepEqual(await check(greylist, triplet, t0 + 8_000), {
    action: 'defer',
    reason: 'too-early',
    retryAfter: 2,
  });
  assert.equal(await redis.hget(tripletKey(PREFIX, triplet), 'first'), String(t0));
  assert.deepEqual(await check(greylist, triplet, t0 + 10_000), {
    action: 'pass',
    reason: 'retried',
    delayed: 10,
  });
});

test('concurrent first attempts record one triplet', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet();
  const t0 = Date.now();

  const verdicts = await Promise.all(
    Array.from({ length: 20 }, () => check(greylist, triplet, t0)),
  );
  const reasons = verdicts.map((verdict) => verdict.reason);
  assert.equal(reasons.filter((reason) => reason === 'new').length, 1, reasons.join(', '));
  assert.equal(reasons.filter((reason) => reason === 'too-early').length, 19, reasons.join(', '));
});

test('retry within the window passes', async () => {
  const greylist = createGreylist({ maxAgeMs: 60_000 });
  const triplet = newTriplet();
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const verdict = await check(greylist, triplet, t0 + 2_999);
  assert.deepEqual(verdict, { action: 'pass', reason: 'retried', delayed: 2 });

  const ttl = await redis.pttl(tripletKey(PREFIX, triplet));
  assert.ok(ttl > 59_000, `TTL ${ttl} ms is not the maximum age`);
});

test('retry after the window is new again', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet();
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  assert.deepEqual(await check(greylist, triplet, t0 + 3_000), {
    action: 'defer',
    reason: 'new',
    retryAfter: 1,
  });
  // The new first attempt at t0 + 3 s starts the delay again.
  assert.deepEqual(await check(greylist, triplet, t0 + 4_000), {
    action: 'pass',
    reason: 'retried',
    delayed: 1,
  });
});

test('retry passes on the Redis clock', async () => {
  const greylist = createGreylist({ delayMs: 500 });
  const triplet = newTriplet();

  assert.deepEqual(await check(greylist, triplet), {
    action: 'defer',
    reason: 'new',
    retryAfter: 1,
  });
  assert.equal((await check(greylist, triplet)).reason, 'too-early');
  await sleep(600);
  assert.deepEqual(await check(greylist, triplet), {
    action: 'pass',
    reason: 'retried',
    delayed: 0,
  });
});

test('first attempt expires after the window', async () => {
  const greylist = createGreylist({ delayMs: 500, retryWindowMs: 1_000 });
  const triplet = newTriplet();
  const key = tripletKey(PREFIX, triplet);

  await check(greylist, triplet);
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0, `TTL ${ttl} ms is not positive`);
  assert.ok(ttl <= 1_000, `TTL ${ttl} ms is longer than the retry window`);

  await sleep(1_100);
  assert.equal(await redis.exists(key), 0);
  assert.equal((await check(greylist, triplet)).reason, 'new');
});

test('whitelisted triplet passes and renews its age', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet();
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  assert.equal((await check(greylist, triplet, t0 + 1_000)).reason, 'retried');
  assert.deepEqual(await check(greylist, triplet, t0 + 5_000), {
    action: 'pass',
    reason: 'whitelisted',
  });
  // 8.5 s after the first pass, but 4.5 s after the latest one.
  assert.deepEqual(await check(greylist, triplet, t0 + 9_500), {
    action: 'pass',
    reason: 'whitelisted',
  });
  assert.deepEqual(await check(greylist, triplet, t0 + 15_000), {
    action: 'defer',
    reason: 'new',
    retryAfter: 1,
  });
});

test('whitelisted pass refreshes the TTL', async () => {
  const greylist = createGreylist({ delayMs: 0, maxAgeMs: 60_000 });
  const triplet = newTriplet();
  const key = tripletKey(PREFIX, triplet);

  await check(greylist, triplet);
  await sleep(300);
  const before = await redis.pttl(key);
  assert.ok(before < 59_750, `TTL ${before} ms did not run down`);

  assert.equal((await check(greylist, triplet)).reason, 'whitelisted');
  const after = await redis.pttl(key);
  assert.ok(after > 59_900, `TTL ${after} ms was not refreshed`);
});

test('delay 0 passes the first attempt', async () => {
  const greylist = createGreylist({ delayMs: 0 });
  const triplet = newTriplet();

  assert.deepEqual(await check(greylist, triplet), {
    action: 'pass',
    reason: 'no-delay',
    delayed: 0,
  });
  assert.deepEqual(await check(greylist, triplet), { action: 'pass', reason: 'whitelisted' });
});

test('IPv4 clients share a triplet per /24', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet('1.2.3.4');
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const sameNetwork = await check(greylist, { ...triplet, clientAddress: '1.2.3.200' }, t0 + 1_000);
  assert.equal(sameNetwork.reason, 'retried');
  const otherNetwork = await check(greylist, { ...triplet, clientAddress: '1.2.4.1' }, t0 + 1_000);
  assert.equal(otherNetwork.reason, 'new');
  const mapped = await check(greylist, { ...triplet, clientAddress: '::ffff:1.2.3.9' }, t0 + 1_000);
  assert.equal(mapped.reason, 'whitelisted');
});

test('IPv6 clients share a triplet per /64', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet('2001:db8:1:2::1');
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const sameNetwork = await check(
    greylist,
    { ...triplet, clientAddress: '2001:db8:1:2:ffff:ffff:ffff:ffff' },
    t0 + 1_000,
  );
  assert.equal(sameNetwork.reason, 'retried');
  const otherNetwork = await check(
    greylist,
    { ...triplet, clientAddress: '2001:db8:1:3::1' },
    t0 + 1_000,
  );
  assert.equal(otherNetwork.reason, 'new');
});

test('addresses are compared without case', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet();
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const shouted = {
    ...triplet,
    sender: triplet.sender.toUpperCase(),
    recipient: triplet.recipient.toUpperCase(),
  };
  assert.equal((await check(greylist, shouted, t0 + 1_000)).reason, 'retried');
});

test('null sender is a triplet of its own', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet();
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const bounce = await check(greylist, { ...triplet, sender: '' }, t0 + 1_000);
  assert.equal(bounce.reason, 'new');
  assert.equal((await check(greylist, { ...triplet, sender: '' }, t0 + 2_000)).reason, 'retried');
});

test('client address that is not an IP is rejected', async () => {
  const greylist = createGreylist();
  await assert.rejects(
    greylist.check({ ...newTriplet(), clientAddress: 'unknown' }),
    InvalidAddressError,
  );
});

test('delay as long as the window is rejected', () => {
  assert.throws(() => createGreylist({ delayMs: 3_000, retryWindowMs: 3_000 }), RangeError);
});

test('BATV sender passes on its second attempt', async () => {
  const greylist = createGreylist();
  const triplet = { ...newTriplet(), sender: 'prvs=1234567890=bob@example.net' };
  const t0 = Date.now();

  assert.equal((await check(greylist, triplet, t0)).reason, 'new');
  const retry = { ...triplet, sender: 'prvs=0987654321=bob@example.net' };
  assert.deepEqual(await check(greylist, retry, t0 + 1_000), {
    action: 'pass',
    reason: 'retried',
    delayed: 1,
  });
});

test('SRS and VERP senders pass on their second attempt', async () => {
  const greylist = createGreylist();
  const t0 = Date.now();
  const pairs: [string, string][] = [
    [
      'SRS0=abcd=TT=orig.example=alice@forwarder.example',
      'SRS0=wxyz=UU=orig.example=alice@forwarder.example',
    ],
    ['bounce-12345-abcdef0123@lists.example', 'bounce-67890-0123456789@lists.example'],
    ['list-bounces+carol=example.com@lists.example', 'list-bounces+dave=example.org@lists.example'],
    ['Alice+one@Example.com', 'alice+two@example.com'],
  ];
  for (const [first, retry] of pairs) {
    const triplet = { ...newTriplet(), sender: first };
    assert.equal((await check(greylist, triplet, t0)).reason, 'new', first);
    const verdict = await check(greylist, { ...triplet, sender: retry }, t0 + 1_000);
    assert.equal(verdict.reason, 'retried', `${first} then ${retry}`);
  }
});

test('plus is a separator but hyphen is not', async () => {
  const greylist = createGreylist();
  const triplet = { ...newTriplet(), sender: 'first-last@example.com' };
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const other = await check(
    greylist,
    { ...triplet, sender: 'first-other@example.com' },
    t0 + 1_000,
  );
  assert.equal(other.reason, 'new');
});

test('forward-confirmed pool shares a triplet', async () => {
  const greylist = createGreylist();
  const triplet = {
    ...newTriplet('40.107.0.89'),
    clientName: 'mail-a.outbound.protection.example',
  };
  const t0 = Date.now();

  assert.equal((await check(greylist, triplet, t0)).reason, 'new');
  const retry = {
    ...triplet,
    clientAddress: '40.107.20.64',
    clientName: 'mail-b.outbound.protection.example',
  };
  assert.deepEqual(await check(greylist, retry, t0 + 1_000), {
    action: 'pass',
    reason: 'retried',
    delayed: 1,
  });
});

test('clients without names group by network only', async () => {
  const greylist = createGreylist();
  const triplet = newTriplet('40.107.0.89');
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const otherNetwork = await check(
    greylist,
    { ...triplet, clientAddress: '40.107.20.64' },
    t0 + 1_000,
  );
  assert.equal(otherNetwork.reason, 'new');
});

test('names that embed the address group by network', async () => {
  const greylist = createGreylist();
  const triplet = {
    ...newTriplet('198.51.100.7'),
    clientName: '198-51-100-7.dynamic.isp.example',
  };
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const neighbour = {
    ...triplet,
    clientAddress: '203.0.113.9',
    clientName: '9.113.0.203.dynamic.isp.example',
  };
  assert.equal((await check(greylist, neighbour, t0 + 1_000)).reason, 'new');
});

test('hex pool names group by network', async () => {
  const greylist = createGreylist();
  const triplet = {
    ...newTriplet('127.7.0.1'),
    clientName: 'p7f070001.dip0.t-ipconnect.example',
  };
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  assert.equal((await check(greylist, triplet, t0 + 1_000)).reason, 'retried');
  const otherNetwork = {
    ...triplet,
    clientAddress: '127.8.5.9',
    clientName: 'p7f080509.dip0.t-ipconnect.example',
  };
  assert.equal((await check(greylist, otherNetwork, t0 + 2_000)).reason, 'new');
});

test('SPF domain groups its clients', async () => {
  const greylist = createGreylist();
  const triplet = {
    ...newTriplet('192.0.2.10'),
    sender: 'news@spf.example',
    spfDomain: 'spf.example',
  };
  const t0 = Date.now();

  await check(greylist, triplet, t0);
  const elsewhere = { ...triplet, clientAddress: '2001:db8:aa::5' };
  assert.equal((await check(greylist, elsewhere, t0 + 1_000)).reason, 'retried');
});

test('auto-whitelist after counted passes', async () => {
  const greylist = createGreylist({ autoWhitelistPasses: 2, maxAgeMs: 60_000 });
  const client = { clientAddress: '203.0.113.50', clientName: 'out-1.relay.awl.example' };
  const recipient = () => ({ ...newTriplet(), ...client });
  const hour = 3_600_000;
  const t0 = Date.now();

  // First counted pass.
  const a = recipient();
  await check(greylist, a, t0);
  assert.equal((await check(greylist, a, t0 + 1_000)).reason, 'retried');
  // A second pass within the hour is not counted.
  const b = recipient();
  await check(greylist, b, t0 + 2_000);
  assert.equal((await check(greylist, b, t0 + 3_000)).reason, 'retried');
  assert.equal((await check(greylist, recipient(), t0 + 4_000)).reason, 'new');

  // Second counted pass, an hour after the first.
  const c = recipient();
  await check(greylist, c, t0 + hour);
  assert.equal((await check(greylist, c, t0 + hour + 1_000)).reason, 'retried');

  const fresh = { ...recipient(), clientName: 'out-2.relay.awl.example' };
  assert.deepEqual(await check(greylist, fresh, t0 + hour + 2_000), {
    action: 'pass',
    reason: 'auto-whitelisted',
  });
  const otherGroup = { ...recipient(), clientAddress: '198.51.100.50', clientName: undefined };
  assert.equal((await check(greylist, otherGroup, t0 + hour + 2_000)).reason, 'new');
});

test('auto-whitelist of NAT64 client stays in its /24', async () => {
  const greylist = createGreylist({ autoWhitelistPasses: 1, maxAgeMs: 60_000 });
  const t0 = Date.now();

  const counted = newTriplet('64:ff9b::127.42.0.1');
  await check(greylist, counted, t0);
  assert.equal((await check(greylist, counted, t0 + 1_000)).reason, 'retried');

  const sameNetwork = newTriplet('64:ff9b::127.42.0.2');
  assert.equal((await check(greylist, sameNetwork, t0 + 2_000)).reason, 'auto-whitelisted');
  const otherNetwork = newTriplet('64:ff9b::127.43.0.1');
  assert.equal((await check(greylist, otherNetwork, t0 + 2_000)).reason, 'new');
});

test('auto-whitelist 0 never whitelists a group', async () => {
  const greylist = createGreylist({ autoWhitelistPasses: 0 });
  const hour = 3_600_000;
  const t0 = Date.now();
  for (let i = 0; i < 5; i += 1) {
    const triplet = newTriplet('203.0.113.60');
    await check(greylist, triplet, t0 + i * hour);
    assert.equal((await check(greylist, triplet, t0 + i * hour + 1_000)).reason, 'retried');
  }
  assert.equal((await check(greylist, newTriplet('203.0.113.60'), t0 + 5 * hour)).reason, 'new');
});

test('lookup of an unseen triplet writes nothing', async () => {
  const greylist = createGreylist();
  const triplet = { ...newTriplet('198.18.77.1'), sender: 'Bob+Tag@Example.COM' };
  const found = await greylist.lookup(triplet);

  assert.equal(found.state, 'unknown');
  assert.equal(found.clientGroup, 'net:198.18.77.0/24');
  assert.equal(found.sender, 'bob@example.com');
  assert.equal(found.recipient, triplet.recipient);
  assert.equal(found.key, tripletKey(PREFIX, triplet));
  assert.match(found.groupKey, new RegExp(`^${PREFIX}awl:[0-9a-f]{64}$`));
  assert.equal(found.firstSeen, undefined);
  assert.equal(found.groupPasses, 0);
  assert.equal(await redis.exists(found.key, found.groupKey), 0);
});

test('lookup follows a triplet from waiting to passed', async () => {
  const greylist = createGreylist({ delayMs: 500, retryWindowMs: 3_000, maxAgeMs: 5_000 });
  const triplet = newTriplet();

  await check(greylist, triplet);
  const waiting = await greylist.lookup(triplet);
  assert.equal(waiting.state, 'waiting');
  const firstSeen = waiting.firstSeen as number;
  assert.ok(Math.abs(firstSeen - Date.now()) < 2_000, `first seen ${firstSeen}`);
  assert.equal(waiting.passAfter, firstSeen + 500);
  assert.equal(waiting.expiresAt, firstSeen + 3_000);
  assert.equal(waiting.lastPassed, undefined);

  await sleep(600);
  assert.equal((await check(greylist, triplet)).reason, 'retried');
  const passed = await greylist.lookup(triplet);
  assert.equal(passed.state, 'passed');
  assert.equal(passed.firstSeen, firstSeen);
  const lastPassed = passed.lastPassed as number;
  assert.ok(lastPassed >= firstSeen + 500, `last passed ${lastPassed}`);
  assert.equal(passed.expiresAt, lastPassed + 5_000);
  assert.equal(passed.passAfter, undefined);
});

test('lookup reports an auto-whitelisted group', async () => {
  const greylist = createGreylist({ delayMs: 300, autoWhitelistPasses: 1, maxAgeMs: 60_000 });
  const counted = newTriplet('203.0.113.90');
  await check(greylist, counted);
  await sleep(400);
  assert.equal((await check(greylist, counted)).reason, 'retried');

  const found = await greylist.lookup(newTriplet('203.0.113.91'));
  assert.equal(found.state, 'auto-whitelisted');
  assert.equal(found.groupPasses, 1);
  assert.equal(found.autoWhitelistAfter, 1);
  const remaining = (found.expiresAt as number) - Date.now();
  assert.ok(remaining > 55_000, `expires in ${remaining} ms`);
  assert.ok(remaining <= 61_000, `expires in ${remaining} ms`);
});

test('lookup rejects a client that is not an IP', async () => {
  await assert.rejects(
    createGreylist().lookup({ ...newTriplet(), clientAddress: 'unknown' }),
    InvalidAddressError,
  );
});

test('Redis holds no address in the clear', async () => {
  const greylist = createGreylist({ autoWhitelistPasses: 5 });
  const triplet: Triplet = {
    clientAddress: '198.51.100.77',
    clientName: 'cleartext-host.cleartext.example',
    sender: 'alice.cleartext@example.net',
    recipient: 'bob.cleartext@example.org',
  };
  const t0 = Date.now();
  await check(greylist, triplet, t0);
  await check(greylist, triplet, t0 + 1_000);
  await check(greylist, { ...triplet, clientAddress: '2001:db8:77::1', clientName: undefined }, t0);
  const spfTriplet = { ...triplet, spfDomain: 'example.net' };
  await check(greylist, spfTriplet, t0);
  await check(greylist, spfTriplet, t0 + 1_000);

  const keys = await listKeys();
  assert.ok(keys.length > 0, 'no keys under the test prefix');
  assert.ok(keys.some((key) => key.startsWith(`${PREFIX}awl:`), 'no auto-whitelist keys'));
  const pattern = new RegExp(`^${PREFIX}(gl|awl):[0-9a-f]{64}$`);
  for (const key of keys) {
    assert.match(key, pattern);
    for (const [field, value] of Object.entries(await redis.hgetall(key))) {
      assert.match(field, /^(first|passed|count|counted)$/, key);
      assert.match(value, /^\d+$/, `${key} ${field}`);
    }
  }
});

test('every key has a TTL', async () => {
  const keys = await listKeys();
  assert.ok(keys.length > 0, 'no keys under the test prefix');
  for (const key of keys) {
    const ttl = await redis.pttl(key);
    assert.ok(ttl > 0, `${key} has TTL ${ttl}`);
  }
});
