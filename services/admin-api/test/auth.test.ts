import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AUTH, type Harness, registerDomain, startHarness, testDomain } from './support.ts';

let harness: Harness;
let domain: string;

before(async () => {
  harness = await startHarness();
  domain = await registerDomain(harness.app, testDomain('auth'));
});

after(async () => {
  await harness.close();
});

type Method = 'GET' | 'POST' | 'PATCH';

function apiRoutes(): [Method, string, object | undefined][] {
  return [
    ['POST', '/api/domains', { domain: testDomain('auth-new'), memberNumber: 'M-1' }],
    ['GET', '/api/domains', undefined],
    ['GET', `/api/domains/${domain}`, undefined],
    ['POST', `/api/domains/${domain}/approve`, undefined],
    ['PATCH', `/api/domains/${domain}`, { primaryHosts: ['127.0.0.1:2525'] }],
    ['POST', `/api/domains/${domain}/flush`, undefined],
    ['GET', '/api/messages', undefined],
    ['GET', '/api/tokens', undefined],
    ['POST', '/api/tokens', { role: 'admin' }],
  ];
}

describe('bearer token', () => {
  test('missing token is 401 on every api route', async () => {
    for (const [method, url, payload] of apiRoutes()) {
      const response = await harness.app.inject({ method, url, payload });
      assert.equal(response.statusCode, 401, `${method} ${url}`);
      assert.match(String(response.headers['www-authenticate']), /^Bearer /, `${method} ${url}`);
      assert.equal(response.json().error, 'Unauthorized', `${method} ${url}`);
      assert.match(response.json().message, /missing bearer token/, `${method} ${url}`);
    }
  });

  test('wrong token is 401 on every api route', async () => {
    const wrong = [
      'Bearer wrong-token',
      `Bearer ${AUTH.authorization.slice('Bearer '.length)}x`,
      `Basic ${Buffer.from('admin:secret').toString('base64')}`,
      'Bearer',
    ];
    for (const [method, url, payload] of apiRoutes()) {
      for (const authorization of wrong) {
        const response = await harness.app.inject({
          method,
          url,
          payload,
          headers: { authorization },
        });
        assert.equal(response.statusCode, 401, `${method} ${url} with ${authorization}`);
        assert.match(String(response.headers['www-authenticate']), /error="invalid_token"/);
        assert.equal(response.json().message, 'invalid or revoked bearer token');
      }
    }
  });

  test('wrong token leaves the domain unchanged', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${domain}/approve`,
      headers: { authorization: 'Bearer wrong-token' },
    });
    assert.equal(response.statusCode, 401);

    const fetched = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}`,
      headers: AUTH,
    });
    assert.equal(fetched.json().state, 'pending');
  });

  test('scheme name is case-insensitive', async () => {
    const token = AUTH.authorization.slice('Bearer '.length);
    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/domains',
      headers: { authorization: `bearer ${token}` },
    });
    assert.equal(response.statusCode, 200);
  });
});

describe('routes without token', () => {
  test('health is served without token', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/health' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok', checks: { database: 'ok', rabbitmq: 'ok' } });
  });

  test('docs json declares the bearer scheme', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/docs/json' });
    assert.equal(response.statusCode, 200);
    const document = response.json();
    assert.deepEqual(document.components.securitySchemes.bearerAuth, {
      type: 'http',
      scheme: 'bearer',
      description: 'MX_ADMIN_TOKEN, or a token created with POST /api/tokens',
    });
    assert.deepEqual(document.security, [{ bearerAuth: [] }]);
    assert.ok(document.paths['/api/domains'].post);
    assert.ok(document.paths['/api/domains/{domain}/flush'].post);
    assert.ok(document.paths['/api/messages'].get);
    assert.deepEqual(document.paths['/health'].get.security, []);
  });

  test('docs ui is served without token', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/html/);
  });

  test('metrics are served without token', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(response.body, /^secondary_mx_database_up 1$/m);
    assert.match(response.body, /^secondary_mx_rabbitmq_up 1$/m);
    assert.match(response.body, /^secondary_mx_recipients\{state="queued"\} 0$/m);
    assert.match(response.body, /^secondary_mx_domains\{state="pending"\} [1-9]\d*$/m);
  });
});
