/**
 * SIGTERM as an operator sends it, to services running as separate processes: every service
 * exits 0 once its work in flight is done, and ingress lets SMTP sessions in progress finish
 * within MX_SHUTDOWN_GRACE before it replies 421 4.3.2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  type ServiceProcess,
  SmtpClient,
  type Suite,
  startDnsServer,
  startService,
  startSuite,
  startTcpProxy,
  type TestDnsServer,
  testEnvironment,
} from '@secondary-mx/testkit';
import pg from 'pg';

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({});
});

after(async () => {
  await dns?.close();
});

function processOf(suite: Suite, name: ServiceProcess['name']): ServiceProcess {
  const child = suite.processes.find((entry) => entry.name === name);
  assert.ok(child, `${name} is not running`);
  return child;
}

/** Connects to ingress and sends EHLO. */
async function openSession(port: number): Promise<SmtpClient> {
  const { client, greeting } = await SmtpClient.connect(port);
  assert.equal(greeting.code, 220, greeting.text);
  const ehlo = await client.command('EHLO client.example');
  assert.equal(ehlo.code, 250, ehlo.text);
  return client;
}

/** Sends MAIL FROM:<> and one RCPT, each of which must get 250. */
async function startTransaction(client: SmtpClient): Promise<void> {
  const mail = await client.command('MAIL FROM:<>');
  assert.equal(mail.code, 250, mail.text);
  const rcpt = await client.command('RCPT TO:<bob@member.example>');
  assert.equal(rcpt.code, 250, rcpt.text);
}

async function startData(client: SmtpClient): Promise<void> {
  const data = await client.command('DATA');
  assert.equal(data.code, 354, data.text);
}

async function countMessages(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const result = await client.query<{ count: string }>('SELECT count(*) FROM messages');
    return Number(result.rows[0]?.count);
  } finally {
    await client.end();
  }
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
 * Waits until RCPT for member.example gets 250. Suite.waitUntilRelayed also takes a 451, which
 * ingress replies while it has not loaded the approved domains yet.
 */
async function waitForRelay(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = await openSession(port);
    await client.command('MAIL FROM:<>');
    const reply = await client.command('RCPT TO:<bob@member.example>');
    client.close();
    if (reply.code === 250) {
      return;
    }
    assert.ok(Date.now() < deadline, `RCPT still gets ${reply.text} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const SHUTDOWN_REPLY = /^421 4\.3\.2 Service shutting down$/;

describe('stop on SIGTERM', () => {
  test('every service exits 0', async () => {
    const suite = await startSuite({
      env: { DNS_SERVERS: dns.server, MX_SHUTDOWN_GRACE: '5s' },
    });
    try {
      for (const child of [...suite.processes].reverse()) {
        const started = Date.now();
        const code = await child.stop(30_000);
        const stopMs = Date.now() - started;
        assert.equal(code, 0, `${child.name} exited with ${code}:\n${child.tail()}`);
        // Nothing was in flight, so no service needs its grace.
        assert.ok(stopMs < 5000, `${child.name} took ${stopMs} ms to stop`);
        assert.match(child.output.join(''), /"msg":"stopped"/, `${child.name}:\n${child.tail()}`);
      }
    } finally {
      await suite.stop();
    }
  });

  test('queue-store exits 0 while waiting for PostgreSQL', async () => {
    const environment = testEnvironment('stop');
    const closedPort = await freePort();
    const queueStore = startService('queue-store', {
      ...environment.env,
      DNS_SERVERS: dns.server,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/${environment.database.name}`,
    });
    try {
      await queueStore.waitForLog(/database not ready, retrying/);
      assert.equal(await queueStore.stop(10_000), 0, queueStore.tail());
    } finally {
      await queueStore.stop();
    }
  });

  test('ingress lets sessions finish within the grace', async () => {
    const environment = testEnvironment('stop');
    const databaseUrl = new URL(environment.database.url);
    const databaseProxy = await startTcpProxy(databaseUrl.hostname, Number(databaseUrl.port));
    const proxiedUrl = new URL(environment.database.url);
    proxiedUrl.port = String(databaseProxy.port);
    const suite = await startSuite({
      environment,
      services: ['queue-store', 'ingress'],
      env: {
        DNS_SERVERS: dns.server,
        MX_SHUTDOWN_GRACE: '2s',
        MX_SPOOL_TIMEOUT: '10s',
        MX_PREGREET_WAIT: '0',
        MX_DOMAIN_REFRESH: '1s',
      },
      serviceEnv: { 'queue-store': { DATABASE_URL: proxiedUrl.toString() } },
    });
    try {
      await approveDomain(environment.database.url, 'member.example');
      await waitForRelay(suite.smtpPort);

      const finishing = await openSession(suite.smtpPort);
      await startTransaction(finishing);
      const idle = await openSession(suite.smtpPort);
      const sending = await openSession(suite.smtpPort);
      await startTransaction(sending);
      await startData(sending);
      sending.write('Subject: cut off\r\n\r\nthe first line of a longer message\r\n');
      const committing = await openSession(suite.smtpPort);
      await startTransaction(committing);
      await startData(committing);
      committing.write('Subject: committed late\r\n\r\nbody\r\n');

      const ingress = processOf(suite, 'ingress');
      const exited = ingress.stop(60_000);
      await ingress.waitForLog(/SMTP listener closed/);
      await assert.rejects(SmtpClient.connect(suite.smtpPort), /ECONNREFUSED/);

      // A session in progress sends a whole message within the grace.
      await startData(finishing);
      finishing.write('Subject: finished\r\n\r\nbody\r\n.\r\n');
      const queued = await finishing.read();
      assert.match(queued.text, /^250 2\.0\.0 Ok: queued as /);

      // This spool write cannot commit before the grace ends.
      databaseProxy.pause();
      committing.write('.\r\n');
      await ingress.waitForLog(/shutdown grace over/);

      for (const [name, client] of Object.entries({ idle, sending, finishing })) {
        const reply = await client.read(5000);
        assert.match(reply.text, SHUTDOWN_REPLY, `${name} session`);
        await client.closed();
      }

      // The spool write still commits, and only then comes the 250.
      await new Promise((resolve) => setTimeout(resolve, 500));
      databaseProxy.resume();
      const committed = await committing.read(10_000);
      assert.match(committed.text, /^250 2\.0\.0 Ok: queued as /);
      const closing = await committing.read(5000);
      assert.match(closing.text, SHUTDOWN_REPLY);

      assert.equal(await exited, 0, ingress.tail());
      assert.equal(await countMessages(environment.database.url), 2, 'stored messages');
    } finally {
      await suite.stop();
      await databaseProxy.close();
    }
  });

  test('second signal exits at once', async () => {
    const suite = await startSuite({
      services: ['ingress'],
      env: { DNS_SERVERS: dns.server, MX_SHUTDOWN_GRACE: '60s', MX_PREGREET_WAIT: '0' },
    });
    try {
      const session = await openSession(suite.smtpPort);
      const ingress = processOf(suite, 'ingress');
      ingress.child.kill('SIGTERM');
      await ingress.waitForLog(/SMTP listener closed/);
      const started = Date.now();
      ingress.child.kill('SIGTERM');
      const code = await ingress.wait();
      const exitMs = Date.now() - started;
      assert.equal(code, 1, ingress.tail());
      assert.ok(exitMs < 2000, `exit took ${exitMs} ms after the second signal`);
      await session.closed();
    } finally {
      await suite.stop();
    }
  });
});
