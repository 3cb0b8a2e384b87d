/**
 * Outages of queue-store, RabbitMQ, PostgreSQL and Redis, with the services as separate
 * processes. The servers are reached through TCP proxies that the tests cut and restore, so the
 * shared local servers keep running. While mail cannot be stored, ingress replies 451 4.3.0 and
 * never 250. Afterwards every service takes work again without a restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type FakePrimary,
  fetchHealth,
  freePort,
  LOCAL_AMQP_URL,
  LOCAL_REDIS_URL,
  type ServiceProcess,
  SmtpClient,
  type SmtpReply,
  type Suite,
  startDnsServer,
  startFakePrimary,
  startSuite,
  startTcpProxy,
  type TcpProxy,
  type TestDnsServer,
  testEnvironment,
  waitForHealth,
} from '@secondary-mx/testkit';
import pg from 'pg';

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
  });
});

after(async () => {
  await dns?.close();
});

function processOf(suite: Suite, name: ServiceProcess['name']): ServiceProcess {
  const child = suite.processes.find(
    (entry) => entry.name === name && entry.exitCode === undefined,
  );
  assert.ok(child, `${name} is not running`);
  return child;
}

/** Starts a proxy to the host and port of a URL; returns it with the URL through the proxy. */
async function proxyFor(url: string, defaultPort: number): Promise<[TcpProxy, string]> {
  const target = new URL(url);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || defaultPort));
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  return [proxy, proxied.toString()];
}

async function approveDomain(databaseUrl: string, domain: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO domains (name, member_number, state, greylist)
       VALUES ($1, '1001', 'approved', false)`,
      [domain],
    );
  } finally {
    await client.end();
  }
}

/**
 * Runs one transaction. Returns the first reply that is not 250 (or 354 to DATA), else the
 * reply after the message.
 */
async function sendMessage(port: number, sender: string, recipient: string): Promise<SmtpReply> {
  const { client } = await SmtpClient.connect(port);
  try {
    const steps = ['EHLO client.example', `MAIL FROM:<${sender}>`, `RCPT TO:<${recipient}>`];
    for (const line of steps) {
      const reply = await client.command(line);
      if (reply.code !== 250) {
        return reply;
      }
    }
    const data = await client.command('DATA');
    if (data.code !== 354) {
      return data;
    }
    client.write(`Subject: outage test\r\nTo: <${recipient}>\r\n\r\nbody\r\n.\r\n`);
    return await client.read();
  } finally {
    client.close();
  }
}

/** Runs EHLO, MAIL and RCPT and returns the reply to RCPT. */
async function rcptReply(port: number, sender: string, recipient: string): Promise<SmtpReply> {
  const { client } = await SmtpClient.connect(port);
  try {
    await client.command('EHLO client.example');
    const mail = await client.command(`MAIL FROM:<${sender}>`);
    assert.equal(mail.code, 250, mail.text);
    return await client.command(`RCPT TO:<${recipient}>`);
  } finally {
    client.close();
  }
}

/** Retries probe every 200 ms until its reply matches; throws with the last reply after timeoutMs. */
async function untilReply(
  description: string,
  probe: () => Promise<SmtpReply>,
  pattern: RegExp,
  suite: Suite,
  timeoutMs = 30_000,
): Promise<SmtpReply> {
  const deadline = Date.now() + timeoutMs;
  let last: SmtpReply | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (pattern.test(last.text)) {
      return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `${description}: last reply ${last?.text} after ${timeoutMs} ms\n${suite.logs()}`,
  );
}

function assertAllRunning(suite: Suite): void {
  for (const child of suite.processes) {
    assert.equal(child.exitCode, undefined, `${child.name} exited:\n${child.tail()}`);
  }
}

const STORE_DEFERRED = /^451 4\.3\.0 /;
const QUEUED = /^250 2\.0\.0 Ok: queued as /;

describe('outages', () => {
  test('ingress defers mail while queue-store is down', async () => {
    const environment = testEnvironment('outage');
    const suite = await startSuite({
      environment,
      services: ['queue-store', 'ingress'],
      env: {
        DNS_SERVERS: dns.server,
        MX_SPOOL_TIMEOUT: '3s',
        MX_PREGREET_WAIT: '0',
        MX_DOMAIN_REFRESH: '1s',
      },
    });
    try {
      await approveDomain(environment.database.url, 'member.example');
      await untilReply(
        'ingress to relay member.example',
        () => rcptReply(suite.smtpPort, '', 'bob@member.example'),
        /^250 /,
        suite,
      );
      const { client } = await SmtpClient.connect(suite.smtpPort);
      await client.command('EHLO client.example');
      await client.command('MAIL FROM:<>');
      const accepted = await client.command('RCPT TO:<bob@member.example>');
      assert.equal(accepted.code, 250, accepted.text);
      assert.equal((await client.command('DATA')).code, 354);
      client.write('Subject: no queue-store\r\n\r\nbody\r\n');

      assert.equal(await processOf(suite, 'queue-store').stop(), 0);
      client.write('.\r\n');
      const dataReply = await client.read();
      assert.match(dataReply.text, STORE_DEFERRED, 'a message without its commit');
      client.close();

      // Known to be down now, so later recipients are deferred before DATA.
      const started = Date.now();
      const deferred = await rcptReply(suite.smtpPort, '', 'bob@member.example');
      assert.match(deferred.text, STORE_DEFERRED);
      assert.ok(Date.now() - started < 1000, 'RCPT waited for a timeout');

      suite.start('queue-store');
      await untilReply(
        'RCPT after queue-store came back',
        () => rcptReply(suite.smtpPort, '', 'bob@member.example'),
        /^250 /,
        suite,
      );
      const stored = await sendMessage(suite.smtpPort, '', 'bob@member.example');
      assert.match(stored.text, QUEUED);
      assert.equal(processOf(suite, 'ingress').exitCode, undefined);
    } finally {
      await suite.stop();
    }
  });

  test('ingress defers mail at once when RabbitMQ is cut', async () => {
    const environment = testEnvironment('outage');
    const [amqpProxy, proxiedAmqpUrl] = await proxyFor(LOCAL_AMQP_URL, 5672);
    const suite = await startSuite({
      environment,
      services: ['queue-store', 'ingress'],
      env: {
        DNS_SERVERS: dns.server,
        MX_PREGREET_WAIT: '0',
        MX_DOMAIN_REFRESH: '1s',
      },
      serviceEnv: { ingress: { AMQP_URL: proxiedAmqpUrl } },
    });
    try {
      await approveDomain(environment.database.url, 'member.example');
      await untilReply(
        'ingress to relay member.example',
        () => rcptReply(suite.smtpPort, '', 'bob@member.example'),
        /^250 /,
        suite,
      );
      const { client } = await SmtpClient.connect(suite.smtpPort);
      await client.command('EHLO client.example');
      await client.command('MAIL FROM:<>');
      const accepted = await client.command('RCPT TO:<bob@member.example>');
      assert.equal(accepted.code, 250, accepted.text);
      assert.equal((await client.command('DATA')).code, 354);
      client.write('Subject: no broker\r\n\r\nbody\r\n');

      amqpProxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      const deferred = await rcptReply(suite.smtpPort, '', 'bob@member.example');
      assert.match(deferred.text, STORE_DEFERRED);
      assert.ok(Date.now() - started < 1000, 'RCPT waited for a timeout');
      client.write('.\r\n');
      const dataReply = await client.read();
      assert.match(dataReply.text, STORE_DEFERRED, 'a message without its commit');
      client.close();

      amqpProxy.restore();
      await untilReply(
        'RCPT after RabbitMQ came back',
        () => rcptReply(suite.smtpPort, '', 'bob@member.example'),
        /^250 /,
        suite,
      );
      const stored = await sendMessage(suite.smtpPort, '', 'bob@member.example');
      assert.match(stored.text, QUEUED);
      const ingress = processOf(suite, 'ingress');
      assert.match(ingress.output.join(''), /RabbitMQ reconnected/);
    } finally {
      await suite.stop();
      await amqpProxy.close();
    }
  });

  describe('every service through proxies', () => {
    let suite: Suite;
    let primary: FakePrimary;
    let ingressHealthPort: number;
    const proxies: Record<'amqp' | 'postgres' | 'redis', TcpProxy> = {} as never;

    before(async () => {
      primary = await startFakePrimary();
      ingressHealthPort = await freePort();
      const environment = testEnvironment('outage');
      const [amqp, amqpUrl] = await proxyFor(LOCAL_AMQP_URL, 5672);
      const [postgres, databaseUrl] = await proxyFor(environment.database.url, 5432);
      const [redis, redisUrl] = await proxyFor(LOCAL_REDIS_URL, 6379);
      Object.assign(proxies, { amqp, postgres, redis });
      suite = await startSuite({
        environment,
        env: {
          AMQP_URL: amqpUrl,
          DATABASE_URL: databaseUrl,
          REDIS_URL: redisUrl,
          DNS_SERVERS: dns.server,
          MX_SELF_NAMES: 'mx2.example.net',
          MX_PREGREET_WAIT: '0',
          MX_DOMAIN_REFRESH: '1h',
          MX_SPOOL_TIMEOUT: '2s',
          MX_GREYLIST_DELAY: '1s',
          MX_GREYLIST_RETRY_WINDOW: '1m',
          MX_GREYLIST_ON_ERROR: 'closed',
          MX_SCHEDULER_INTERVAL: '200ms',
          MX_RETRY_MIN: '1s',
          MX_RETRY_MAX: '2s',
          MX_CONNECT_TIMEOUT: '2s',
        },
        serviceEnv: {
          ingress: { MX_INGRESS_METRICS_LISTEN: `127.0.0.1:${ingressHealthPort}` },
        },
      });
      const filed = await suite.api('POST', '/api/domains', {
        domain: 'member.example',
        memberNumber: '1001',
      });
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      await suite.api('PATCH', '/api/domains/member.example', {
        primaryHosts: [primary.address],
      });
      await suite.api('POST', '/api/domains/member.example/approve');
      // Until ingress has loaded the approved domains it replies 451 4.3.0, not a verdict.
      await untilReply(
        'ingress to relay member.example',
        () => rcptReply(suite.smtpPort, 'alice@sender.example', 'relay-check@member.example'),
        /^(250|451 4\.7\.1) /,
        suite,
      );
    });

    after(async () => {
      await suite?.stop();
      await Promise.all(Object.values(proxies).map((proxy) => proxy.close()));
      await primary?.stop();
    });

    test('PostgreSQL cut defers mail', async () => {
      const greylisted = await rcptReply(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(greylisted.text, /^451 4\.7\.1 /);
      await untilReply(
        'the greylisted triplet to pass',
        () => rcptReply(suite.smtpPort, 'alice@sender.example', 'bob@member.example'),
        /^250 /,
        suite,
        5000,
      );

      proxies.postgres.cut();
      const unstored = await sendMessage(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(unstored.text, STORE_DEFERRED, 'a message while PostgreSQL is down');
      const deferred = await rcptReply(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(deferred.text, STORE_DEFERRED, 'RCPT after a failed spool write');
      const health = await fetchHealth(ingressHealthPort);
      assert.equal(health.status, 503, JSON.stringify(health.body));
      assert.equal(health.body.checks['queue-store'], 'failing');
      const api = await suite.api('GET', '/api/domains');
      assert.equal(api.status, 503);

      proxies.postgres.restore();
      await untilReply(
        'RCPT after PostgreSQL came back',
        () => rcptReply(suite.smtpPort, 'alice@sender.example', 'bob@member.example'),
        /^250 /,
        suite,
      );
      const stored = await sendMessage(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(stored.text, QUEUED);
      await waitForHealth(ingressHealthPort, 200);
      assertAllRunning(suite);
    });

    test('RabbitMQ and Redis cut, then every service resumes', async () => {
      proxies.amqp.cut();
      proxies.redis.cut();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const deferred = await rcptReply(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(deferred.text, STORE_DEFERRED);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assertAllRunning(suite);
      proxies.amqp.restore();
      proxies.redis.restore();

      // 451 4.7.1 is a verdict from the greylist service, so it is connected to RabbitMQ and
      // Redis again. Without a verdict ingress replies 451 4.3.0.
      await untilReply(
        'a greylist verdict',
        () => rcptReply(suite.smtpPort, 'alice@sender.example', 'new-recipient@member.example'),
        /^451 4\.7\.1 /,
        suite,
      );
      const stored = await sendMessage(
        suite.smtpPort,
        'alice@sender.example',
        'bob@member.example',
      );
      assert.match(stored.text, QUEUED);

      // queue-store schedules and the delivery worker delivers both stored messages.
      await primary.waitForMessages(2, 30_000);

      // admin-api writes and publishes domains.changed, and ingress receives it, because its
      // periodic reload (MX_DOMAIN_REFRESH) is an hour away.
      const filed = await suite.api('POST', '/api/domains', {
        domain: 'second.example',
        memberNumber: '1002',
      });
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      const approved = await suite.api('POST', '/api/domains/second.example/approve');
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      await suite.waitUntilRelayed('second.example', 10_000);

      assertAllRunning(suite);
      for (const child of suite.processes) {
        assert.match(child.output.join(''), /RabbitMQ reconnected/, `${child.name} log`);
      }
    });
  });
});
