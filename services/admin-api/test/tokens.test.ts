import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AUTH,
  assertAccess,
  type Callers,
  createCallers,
  type Harness,
  registerDomain,
  startHarness,
  storeMessage,
  testDomain,
} from './support.ts';

let harness: Harness;
let domain: string;
let otherDomain: string;
let callers: Callers;

before(async () => {
  harness = await startHarness();
  domain = await registerDomain(harness.app, testDomain('tokens'));
  otherDomain = await registerDomain(harness.app, testDomain('tokens-other'));
  callers = await createCallers(harness.app, domain, otherDomain);
});

after(async () => {
  await harness.close();
});

describe('stored tokens', () => {
  test('a new token is returned once and only its hash is stored', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: AUTH,
      payload: { role: 'member', domain, note: 'mail admin of the member' },
    });
    assert.equal(response.statusCode, 201);
    const created = response.json();
    assert.match(created.token, /^smx_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.role, 'member');
    assert.equal(created.domain, domain);
    assert.equal(created.createdBy, 'admin');

    const secret = created.token.split('_').slice(2).join('_');
    const stored = await harness.pool.query(
      `SELECT count(*)::int AS n FROM api_tokens
       WHERE position(convert_to($1, 'UTF8') in secret_sha256) > 0
          OR encode(secret_sha256, 'escape') LIKE '%' || $1 || '%'`,
      [secret],
    );
    assert.equal(stored.rows[0].n, 0);

    const listed = await harness.app.inject({ method: 'GET', url: '/api/tokens', headers: AUTH });
    const entry = listed.json().tokens.find((token: { id: string }) => token.id === created.id);
    assert.ok(entry);
    assert.equal(entry.token, undefined);
  });

  test('a revoked token gets 401 at once', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: AUTH,
      payload: { role: 'member', domain },
    });
    const { id, token } = response.json();
    const headers = { authorization: `Bearer ${token}` };
    const before = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}`,
      headers,
    });
    assert.equal(before.statusCode, 200);

    const revoked = await harness.app.inject({
      method: 'DELETE',
      url: `/api/tokens/${id}`,
      headers: AUTH,
    });
    assert.equal(revoked.statusCode, 200);
    assert.ok(revoked.json().revokedAt);

    const afterRevoke = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}`,
      headers,
    });
    assert.equal(afterRevoke.statusCode, 401);
    assert.equal(afterRevoke.json().message, 'invalid or revoked bearer token');
  });

  test('a token with a changed secret or an unknown id gets 401', async () => {
    const token = callers.member.authorization;
    const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    const unknownId = token.replace(/smx_[0-9a-f]{4}/, 'smx_0000');
    for (const authorization of [flipped, unknownId]) {
      const response = await harness.app.inject({
        method: 'GET',
        url: '/api/domains',
        headers: { authorization },
      });
      assert.equal(response.statusCode, 401, authorization);
    }
  });

  test('a member creates and revokes tokens of its own domain only', async () => {
    const own = await harness.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: callers.member,
      payload: { role: 'member', domain },
    });
    assert.equal(own.statusCode, 201);
    assert.match(own.json().createdBy, /^token:/);

    const other = await harness.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: callers.member,
      payload: { role: 'member', domain: otherDomain },
    });
    assert.equal(other.statusCode, 404);

    const admin = await harness.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: callers.member,
      payload: { role: 'admin' },
    });
    assert.equal(admin.statusCode, 403);

    const listed = await harness.app.inject({
      method: 'GET',
      url: '/api/tokens',
      headers: callers.member,
    });
    assert.ok(listed.json().tokens.length > 0);
    assert.ok(listed.json().tokens.every((token: { domain: string }) => token.domain === domain));

    const otherTokens = await harness.app.inject({
      method: 'GET',
      url: '/api/tokens',
      headers: callers.otherMember,
    });
    const otherId = otherTokens.json().tokens[0].id;
    const revokeOther = await harness.app.inject({
      method: 'DELETE',
      url: `/api/tokens/${otherId}`,
      headers: callers.member,
    });
    assert.equal(revokeOther.statusCode, 404);

    const revokeOwn = await harness.app.inject({
      method: 'DELETE',
      url: `/api/tokens/${own.json().id}`,
      headers: callers.member,
    });
    assert.equal(revokeOwn.statusCode, 200);
  });

  test('token requests with bad input get 400 naming the field', async () => {
    const cases: [object, RegExp][] = [
      [{ role: 'owner' }, /role/],
      [{ role: 'member' }, /domain/],
      [{ role: 'member', domain: 'not a domain' }, /not a valid domain/],
      [{ role: 'admin', domain }, /domain/],
      [{ role: 'admin', colour: 'red' }, /^body\/colour is not a known field$/],
    ];
    for (const [payload, message] of cases) {
      const response = await harness.app.inject({
        method: 'POST',
        url: '/api/tokens',
        headers: AUTH,
        payload,
      });
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.match(response.json().message, message);
    }
    const badId = await harness.app.inject({
      method: 'DELETE',
      url: '/api/tokens/xyz',
      headers: AUTH,
    });
    assert.equal(badId.statusCode, 400);
  });
});

describe('access by token', () => {
  test('domain routes', async () => {
    await assertAccess(
      harness.app,
      { method: 'GET', url: `/api/domains/${domain}` },
      { admin: 200, member: 200, otherMember: 404 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'PATCH', url: `/api/domains/${domain}`, payload: { greylist: false } },
      { admin: 200, member: 200, otherMember: 404 },
      callers,
    );
    await assertAccess(
      harness.app,
      {
        method: 'PATCH',
        url: `/api/domains/${domain}`,
        payload: { primaryHosts: ['127.0.0.1:25'] },
      },
      { admin: 200, member: 403, otherMember: 404 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'POST', url: `/api/domains/${domain}/flush` },
      { admin: 200, member: 200, otherMember: 404 },
      callers,
    );
    await assertAccess(
      harness.app,
      () => ({
        method: 'POST',
        url: '/api/domains',
        payload: { domain: testDomain('new'), memberNumber: 'M-7' },
      }),
      { admin: 201, member: 403, otherMember: 403 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'POST', url: `/api/domains/${domain}/approve` },
      { admin: 200, member: 403, otherMember: 403 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'GET', url: `/api/domains/${domain}/recipients` },
      { admin: 200, member: 403, otherMember: 403 },
      callers,
    );
  });

  test('a member lists only its own domain and its own messages', async () => {
    await storeMessage(harness.pool, [`alice@${domain}`]);
    await storeMessage(harness.pool, [`bob@${otherDomain}`]);

    const domains = await harness.app.inject({
      method: 'GET',
      url: '/api/domains',
      headers: callers.member,
    });
    assert.deepEqual(
      domains.json().domains.map((row: { domain: string }) => row.domain),
      [domain],
    );

    const messages = await harness.app.inject({
      method: 'GET',
      url: '/api/messages',
      headers: callers.member,
    });
    const recipients = messages
      .json()
      .messages.flatMap((message: { recipients: { address: string }[] }) => message.recipients);
    assert.deepEqual(
      recipients.map((recipient: { address: string }) => recipient.address),
      [`alice@${domain}`],
    );

    const foreign = await harness.app.inject({
      method: 'GET',
      url: `/api/messages?domain=${otherDomain}`,
      headers: callers.member,
    });
    assert.deepEqual(foreign.json().messages, []);
  });
});
