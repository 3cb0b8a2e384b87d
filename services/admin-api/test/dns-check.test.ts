import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type FakePrimary,
  freePort,
  startDnsServer,
  startFakePrimary,
  type TestDnsServer,
} from '@secondary-mx/testkit';
import {
  AUTH,
  assertAccess,
  createCallers,
  type Harness,
  HOSTNAME,
  registerDomain,
  startHarness,
  testDomain,
} from './support.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route returns.
type Json = any;

let harness: Harness;
let dns: TestDnsServer;
let primary: FakePrimary;
const servers: Server[] = [];

before(async () => {
  dns = await startDnsServer();
  primary = await startFakePrimary();
  harness = await startHarness({
    env: {
      DNS_SERVERS: dns.server,
      // MX hosts found in DNS are checked on this port, where the fake primary listens.
      MX_DELIVERY_PORT: String(primary.port),
      MX_SELF_NAMES: `${HOSTNAME},mx2-alias.example.net`,
      MX_DNS_TIMEOUT: '500ms',
      MX_SMTP_CHECK_TIMEOUT: '1s',
    },
  });
});

after(async () => {
  await harness.close();
  await primary.stop();
  await dns.close();
  for (const server of servers) {
    server.close();
  }
});

/** Starts a TCP server on a free loopback port that passes each connection to `talk`. */
async function startRawServer(talk: (socket: import('node:net').Socket) => void): Promise<number> {
  const port = await freePort();
  const server = createServer(talk);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return port;
}

/** Registers a domain with the given MX records (undefined: no DNS entry) and checks it. */
async function check(
  label: string,
  mx?: [number, string][],
  primaryHosts?: string[],
): Promise<Json> {
  const domain = await registerDomain(harness.app, testDomain(label));
  if (mx !== undefined) {
    dns.setRecords(domain, {
      MX: mx.map(([preference, exchange]) => ({ preference, exchange })),
    });
  }
  if (primaryHosts !== undefined) {
    const patched = await harness.app.inject({
      method: 'PATCH',
      url: `/api/domains/${domain}`,
      headers: AUTH,
      payload: { primaryHosts },
    });
    assert.equal(patched.statusCode, 200, patched.body);
  }
  const response = await harness.app.inject({
    method: 'GET',
    url: `/api/domains/${domain}/dns-check`,
    headers: AUTH,
  });
  assert.equal(response.statusCode, 200, response.body);
  return { domain, ...response.json() };
}

describe('GET /api/domains/:domain/dns-check', () => {
  before(() => {
    dns.setRecords('primary.check.example', { A: ['127.0.0.1'] });
    // Nothing listens on 127.0.0.2, so connections there are refused.
    dns.setRecords('down.check.example', { A: ['127.0.0.2'] });
    dns.setRecords('no-address.check.example', {});
    dns.setRecords(HOSTNAME, { A: ['192.0.2.200'] });
  });

  test('correct records and a primary that answers', async () => {
    const report = await check('good', [
      [200, `${HOSTNAME}.`],
      [10, 'Primary.Check.Example.'],
    ]);

    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.mxLookup, 'ok');
    assert.equal(report.listed, true);
    assert.equal(report.ourPreference, 200);
    assert.equal(report.preferenceOk, true);
    assert.deepEqual(report.records, [
      { host: 'primary.check.example', preference: 10 },
      { host: HOSTNAME, preference: 200 },
    ]);
    assert.equal(report.primary.host, 'primary.check.example');
    assert.equal(report.primary.preference, 10);
    assert.equal(report.primary.port, primary.port);
    assert.equal(report.primary.source, 'mx');
    assert.equal(report.primary.smtp, 'answers');
    assert.equal(report.primary.address, '127.0.0.1');
    assert.match(report.primary.reply, /^220 /);
    assert.deepEqual(report.problems, []);
    assert.equal(
      report.summary,
      `${report.domain} is set up correctly: we are listed with preference 200 behind every other MX host, and the primary primary.check.example (preference 10) answers SMTP.`,
    );
  });

  test('an alias from MX_SELF_NAMES counts as us', async () => {
    const report = await check('alias', [
      [10, 'primary.check.example'],
      [50, 'mx2-alias.example.net'],
    ]);
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.ourPreference, 50);
  });

  test('we are not listed', async () => {
    const report = await check('unlisted', [[10, 'primary.check.example']]);
    assert.equal(report.ok, false);
    assert.equal(report.listed, false);
    assert.equal(report.ourPreference, null);
    assert.equal(report.preferenceOk, false);
    assert.equal(report.primary.smtp, 'answers');
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0], /^We are not among the MX hosts of /);
    assert.ok(report.problems[0].includes(`add \`@ MX 200 ${HOSTNAME}.\``), report.problems[0]);
    assert.equal(report.summary, `${report.domain} is not set up correctly: we are not listed.`);
  });

  test('our preference is lower than the primary', async () => {
    const report = await check('lower', [
      [5, HOSTNAME],
      [10, 'primary.check.example'],
    ]);
    assert.equal(report.ok, false);
    assert.equal(report.listed, true);
    assert.equal(report.preferenceOk, false);
    assert.equal(report.primary.host, 'primary.check.example');
    assert.match(
      report.problems[0],
      /^Our preference 5 is not larger than 10 of primary\.check\.example/,
    );
    assert.ok(report.problems[0].includes(`\`@ MX 200 ${HOSTNAME}.\``), report.problems[0]);
  });

  test('our preference equals the primary', async () => {
    const report = await check('equal', [
      [10, HOSTNAME],
      [10, 'primary.check.example'],
    ]);
    assert.equal(report.preferenceOk, false);
    assert.equal(report.ok, false);
    assert.match(
      report.summary,
      /our preference 10 is not larger than 10 of primary\.check\.example/,
    );
  });

  test('a third host above our preference is reported', async () => {
    const report = await check('third', [
      [10, 'primary.check.example'],
      [200, HOSTNAME],
      [300, 'backup.check.example'],
    ]);
    assert.equal(report.preferenceOk, false);
    assert.match(report.problems[0], /not larger than 300 of backup\.check\.example/);
    assert.ok(report.problems[0].includes(`\`@ MX 310 ${HOSTNAME}.\``), report.problems[0]);
  });

  test('only we are listed', async () => {
    const report = await check('only-us', [[200, HOSTNAME]]);
    assert.equal(report.ok, false);
    assert.equal(report.listed, true);
    assert.equal(report.preferenceOk, false);
    assert.equal(report.primary, null);
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0], /^Only we are listed as MX host of .* no primary/);
    assert.match(report.summary, /only we are listed\.$/);
  });

  test('null MX', async () => {
    const report = await check('null-mx', [[0, '.']]);
    assert.equal(report.ok, false);
    assert.equal(report.mxLookup, 'null-mx');
    assert.deepEqual(report.records, [{ host: '.', preference: 0 }]);
    assert.equal(report.listed, false);
    assert.equal(report.primary, null);
    assert.match(report.problems[0], /publishes a null MX \(`MX 0 \.`\)/);
  });

  test('domain that does not exist', async () => {
    const report = await check('nxdomain');
    assert.equal(report.ok, false);
    assert.equal(report.mxLookup, 'nxdomain');
    assert.deepEqual(report.records, []);
    assert.equal(report.primary, null);
    assert.match(report.problems[0], /does not exist in DNS/);
    assert.match(report.summary, /the domain does not exist in DNS\.$/);
  });

  test('domain without MX records', async () => {
    const label = testDomain('no-mx');
    dns.setRecords(label, { A: ['192.0.2.10'] });
    const domain = await registerDomain(harness.app, label);
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}/dns-check`,
      headers: AUTH,
    });
    const report = response.json();
    assert.equal(report.mxLookup, 'nodata');
    assert.equal(report.ok, false);
    assert.match(report.problems[0], /has no MX records/);
  });

  test('primary that refuses connections', async () => {
    const report = await check('refused', [
      [10, 'down.check.example'],
      [200, HOSTNAME],
    ]);
    assert.equal(report.ok, false);
    assert.equal(report.preferenceOk, true);
    assert.equal(report.primary.smtp, 'no answer');
    assert.equal(report.primary.address, '127.0.0.2');
    assert.match(report.primary.reply, /ECONNREFUSED/);
    assert.match(
      report.problems[0],
      /^The primary down\.check\.example \(preference 10\) does not answer SMTP/,
    );
    assert.equal(
      report.summary,
      `${report.domain} is not set up correctly: the primary down.check.example does not answer SMTP.`,
    );
  });

  test('primary that never sends a greeting', async () => {
    const port = await startRawServer(() => undefined);
    const started = Date.now();
    const report = await check(
      'silent',
      [
        [10, 'primary.check.example'],
        [200, HOSTNAME],
      ],
      [`127.0.0.1:${port}`],
    );
    assert.equal(report.primary.smtp, 'no answer');
    assert.equal(report.primary.source, 'primaryHosts');
    assert.equal(report.primary.port, port);
    assert.equal(report.primary.preference, null);
    assert.match(
      report.primary.reply,
      /no greeting: timed out after 1000 ms waiting for a complete reply/,
    );
    assert.ok(Date.now() - started < 5000, 'the SMTP check gives up after MX_SMTP_CHECK_TIMEOUT');
    assert.match(
      report.problems[0],
      /^The primaryHosts entry 127\.0\.0\.1:\d+ does not answer SMTP/,
    );
  });

  test('primary that rejects the session', async () => {
    const port = await startRawServer((socket) => {
      socket.end('554 5.3.2 not taking mail\r\n');
    });
    const report = await check(
      'rejects',
      [
        [10, 'primary.check.example'],
        [200, HOSTNAME],
      ],
      [`127.0.0.1:${port}`],
    );
    assert.equal(report.primary.smtp, 'rejects');
    assert.equal(report.primary.reply, 'greeting: 554 5.3.2 not taking mail');
    assert.equal(report.ok, false);
  });

  test('primary that is this server', async () => {
    const port = await startRawServer((socket) => {
      socket.write(`220 ${HOSTNAME} ESMTP secondary-mx\r\n`);
      socket.on('data', (chunk) => {
        if (/^EHLO /i.test(chunk.toString())) {
          socket.write(`250-${HOSTNAME}\r\n250 8BITMIME\r\n`);
        } else {
          socket.end('221 bye\r\n');
        }
      });
    });
    const report = await check(
      'loop',
      [
        [10, 'primary.check.example'],
        [200, HOSTNAME],
      ],
      [`127.0.0.1:${port}`],
    );
    assert.equal(report.primary.smtp, 'loops back');
    assert.match(report.problems[0], /greets with our own name/);
  });

  test('primaryHosts override that answers', async () => {
    const report = await check(
      'override',
      [
        [10, 'down.check.example'],
        [200, HOSTNAME],
      ],
      [primary.address],
    );
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.primary.source, 'primaryHosts');
    assert.equal(report.primary.host, '127.0.0.1');
    assert.equal(report.primary.smtp, 'answers');
    assert.match(report.summary, /the primaryHosts override 127\.0\.0\.1:\d+ answers SMTP\.$/);
  });

  test('primary without an address', async () => {
    const report = await check('no-address', [
      [10, 'no-address.check.example'],
      [200, HOSTNAME],
    ]);
    assert.equal(report.primary.smtp, 'no address');
    assert.match(report.problems[0], /has no address: no A or AAAA record/);
  });

  test('DNS server that fails', async () => {
    const servfail = testDomain('servfail');
    dns.setFailure(servfail, 'SERVFAIL');
    const domain = await registerDomain(harness.app, servfail);
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}/dns-check`,
      headers: AUTH,
    });
    const report = response.json();
    assert.equal(report.mxLookup, 'failed');
    assert.equal(report.mxError, 'ESERVFAIL');
    assert.equal(report.ok, false);
    assert.equal(report.listed, false);
    assert.match(report.problems[0], /^The MX lookup for .* failed \(ESERVFAIL\)/);
    assert.equal(
      report.summary,
      `${domain} is not set up correctly: the MX lookup failed (ESERVFAIL).`,
    );
  });

  test('DNS server that does not answer', async () => {
    const silent = testDomain('dns-timeout');
    dns.setFailure(silent, 'no-response');
    const domain = await registerDomain(harness.app, silent);
    const started = Date.now();
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}/dns-check`,
      headers: AUTH,
    });
    const report = response.json();
    assert.equal(report.mxLookup, 'failed');
    assert.equal(report.mxError, 'ETIMEOUT');
    assert.ok(Date.now() - started < 5000, 'the lookup gives up after MX_DNS_TIMEOUT');
  });

  test('unregistered domain is 404', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${testDomain('unregistered')}/dns-check`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 404);
  });

  test('dns-check is shown to the own member only', async () => {
    const domain = await registerDomain(harness.app, testDomain('check-access'));
    const other = await registerDomain(harness.app, testDomain('check-access-other'));
    await assertAccess(
      harness.app,
      { method: 'GET', url: `/api/domains/${domain}/dns-check` },
      { admin: 200, member: 200, otherMember: 404 },
      await createCallers(harness.app, domain, other, AUTH),
    );
  });
});
