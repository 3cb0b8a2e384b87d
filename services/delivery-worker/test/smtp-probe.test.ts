import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { FakePrimary, startFakePrimary } from '@secondary-mx/testkit';
import type { NextHop } from '../src/next-hop.ts';
import { probeHops } from '../src/smtp-probe.ts';
import { waitFor } from './support.ts';

const OPTIONS = { heloName: 'mx2.ourmx.test', connectTimeoutMs: 2000 };

const primaries: FakePrimary[] = [];
const servers: Server[] = [];

function hopTo(port: number, host = 'primary.member.test'): NextHop {
  return { host, port, addresses: ['127.0.0.1'] };
}

/**
 * Starts a raw SMTP server on 127.0.0.1 that sends `greeting`, replies `ehlo` to EHLO and 250 to
 * everything else. smtp-server has no option to reject EHLO or to send a 5xx greeting.
 */
async function startScriptedServer(greeting: string, ehlo: string): Promise<number> {
  const server = createServer((socket: Socket) => {
    socket.write(`${greeting}\r\n`);
    socket.on('data', (chunk) => {
      for (const line of chunk.toString('ascii').split('\r\n').filter(Boolean)) {
        if (/^EHLO /i.test(line)) {
          socket.write(`${ehlo}\r\n`);
        } else if (/^QUIT/i.test(line)) {
          socket.end('221 2.0.0 Bye\r\n');
        } else {
          socket.write('250 2.0.0 Ok\r\n');
        }
      }
    });
    socket.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error(`scripted server has no TCP address: ${address}`);
  }
  return address.port;
}

afterEach(async () => {
  await Promise.all(primaries.splice(0).map((primary) => primary.stop()));
  await Promise.all(
    servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))),
  );
});

describe('SMTP probe', () => {
  test('succeeds against a running primary', async () => {
    const primary = await startFakePrimary();
    primaries.push(primary);
    const answer = await probeHops(
      'member.test',
      [hopTo(primary.port)],
      OPTIONS,
      Date.now() + 5000,
    );
    assert.equal(answer.ok, true);
    assert.match(answer.reply, /^250 /);
    assert.equal(answer.remoteMta, 'primary.member.test');
    assert.equal(answer.relay, `primary.member.test[127.0.0.1]:${primary.port}`);
    assert.equal(primary.messages.length, 0);
    assert.equal(primary.totalSessions, 1);
    await waitFor(() => primary.currentSessions === 0, 'the probe session to close', 1000);
  });

  test('fails on a refused connection', async () => {
    const down = await FakePrimary.create();
    const answer = await probeHops('member.test', [hopTo(down.port)], OPTIONS, Date.now() + 5000);
    assert.equal(answer.ok, false);
    assert.match(answer.reply, /^451 4\.4\.1 /);
    assert.match(answer.reply, /ECONNREFUSED/);
    assert.equal(answer.remoteMta, undefined);
  });

  test('tries the next hop', async () => {
    const down = await FakePrimary.create();
    const primary = await startFakePrimary();
    primaries.push(primary);
    const hops = [hopTo(down.port, 'down.member.test'), hopTo(primary.port)];
    const answer = await probeHops('member.test', hops, OPTIONS, Date.now() + 5000);
    assert.equal(answer.ok, true);
    assert.equal(answer.remoteMta, 'primary.member.test');
  });

  test('fails when EHLO is rejected', async () => {
    // nodemailer falls back to HELO after a failed EHLO, and the session then opens.
    const port = await startScriptedServer(
      '220 old.member.test ESMTP',
      '502 5.5.2 Command not recognized',
    );
    const answer = await probeHops('member.test', [hopTo(port)], OPTIONS, Date.now() + 5000);
    assert.equal(answer.ok, false);
    assert.match(answer.reply, /EHLO rejected: 502 5\.5\.2 Command not recognized/);
    assert.equal(answer.remoteMta, 'primary.member.test');
  });

  test('fails when the greeting is not 2xx', async () => {
    const port = await startScriptedServer('554 5.3.2 Not accepting mail', '250 ok');
    const answer = await probeHops('member.test', [hopTo(port)], OPTIONS, Date.now() + 5000);
    assert.equal(answer.ok, false);
    assert.match(answer.reply, /554 5\.3\.2 Not accepting mail/);
    assert.equal(answer.remoteMta, 'primary.member.test');
  });

  test('stops at the deadline', async () => {
    const primary = await startFakePrimary();
    primaries.push(primary);
    const answer = await probeHops('member.test', [hopTo(primary.port)], OPTIONS, Date.now() - 1);
    assert.equal(answer.ok, false);
    assert.match(answer.reply, /deadline/);
    assert.equal(primary.totalSessions, 0);
  });
});
