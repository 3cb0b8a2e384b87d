import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SmtpClient } from '@secondary-mx/testkit';
import { type IngressUnderTest, startIngressUnderTest } from './support.ts';

let ingress: IngressUnderTest;

/** A raw connection that records every byte the server sends until it closes. */
interface RawSession {
  socket: Socket;
  received(): string;
  closed: Promise<unknown>;
}

async function rawConnect(localAddress = '127.0.0.1'): Promise<RawSession> {
  const socket = connect({ port: ingress.port, host: '127.0.0.1', localAddress });
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

/** Resolves with the first reply line once the server sent one. */
async function firstLine(session: RawSession): Promise<string> {
  for (let i = 0; i < 200 && !session.received().includes('\r\n'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return session.received().split('\r\n')[0] ?? '';
}

/** Waits until ingress greets a client from the address, so earlier sessions were released. */
async function waitForGreeting(localAddress = '127.0.0.1'): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const session = await rawConnect(localAddress);
    const line = await firstLine(session);
    session.socket.destroy();
    if (line.startsWith('220 ')) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`ingress does not greet ${localAddress}`);
}

before(async () => {
  ingress = await startIngressUnderTest('limits', {
    MX_MAX_CONNECTIONS: '3',
    MX_MAX_CONNECTIONS_PER_CLIENT: '2',
    MX_MAX_ERRORS: '3',
    MX_MAX_RECIPIENTS: '100',
    MX_SMTP_TIMEOUT: '1s',
    MX_PREGREET_WAIT: '400ms',
  });
});

after(async () => {
  await ingress?.stop();
});

describe('pregreet test', () => {
  test('command before the greeting gets 554 5.5.1 and a close', async () => {
    const session = await rawConnect();
    session.socket.write('EHLO early.example\r\n');
    await session.closed;
    assert.match(session.received(), /^554 5\.5\.1 [^\r\n]*before the greeting\r\n$/);
  });

  test('command after the greeting is served', async () => {
    const { client, greeting } = await SmtpClient.connect(ingress.port);
    const reply = await client.command('EHLO patient.example');
    client.close();
    assert.match(greeting.text, /^220 mx2\.example\.net ESMTP/);
    assert.equal(reply.code, 250);
  });
});

describe('pregreet passes', () => {
  /**
   * Connects from the address, sends EHLO after delayMs (250 ms: inside the 400 ms wait for a
   * new client), and returns everything the server sent until it closed or answered.
   */
  async function talkAfter(localAddress: string, delayMs = 250): Promise<string> {
    const session = await rawConnect(localAddress);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    session.socket.write('EHLO returning.example\r\n');
    for (let i = 0; i < 200 && !/^250 /m.test(session.received()); i++) {
      if (session.socket.destroyed || session.received().startsWith('554')) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    session.socket.destroy();
    return session.received();
  }

  test('client that waited once skips the wait', async () => {
    await waitForGreeting('127.0.0.5');
    const received = await talkAfter('127.0.0.5');
    assert.match(received, /^220 mx2\.example\.net ESMTP/);
    assert.match(received, /^250 /m);
  });

  test('passed client is greeted without a pause', async () => {
    await waitForGreeting('127.0.0.8');
    // Inside smtp-server's own 100 ms early-talker pause, which ingress does not add.
    const received = await talkAfter('127.0.0.8', 60);
    assert.match(received, /^220 mx2\.example\.net ESMTP/);
    assert.match(received, /^250 /m);
  });

  test('new client still has to wait', async () => {
    const received = await talkAfter('127.0.0.6');
    assert.match(received, /^554 5\.5\.1 /);
  });

  test('early talker loses its pass', async () => {
    await waitForGreeting('127.0.0.7');
    const early = await rawConnect('127.0.0.7');
    early.socket.write('EHLO early.example\r\n');
    await early.closed;
    assert.match(early.received(), /^554 5\.5\.1 /);
    const received = await talkAfter('127.0.0.7');
    assert.match(received, /^554 5\.5\.1 /);
  });
});

describe('connection limits', () => {
  test('a third connection from one address gets 421 4.7.0', async () => {
    await waitForGreeting();
    const open = [await rawConnect(), await rawConnect()];
    assert.match(await firstLine(open[0] as RawSession), /^220 /);
    assert.match(await firstLine(open[1] as RawSession), /^220 /);
    const refused = await rawConnect();
    await refused.closed;
    for (const session of open) {
      session.socket.destroy();
    }
    assert.match(
      refused.received(),
      /^421 4\.7\.0 mx2\.example\.net Error: too many connections from 127\.0\.0\.1\r\n$/,
    );
  });

  test('a fourth connection in total gets 421 4.7.0', async () => {
    await waitForGreeting();
    const open = [
      await rawConnect('127.0.0.1'),
      await rawConnect('127.0.0.2'),
      await rawConnect('127.0.0.3'),
    ];
    for (const session of open) {
      assert.match(await firstLine(session), /^220 /);
    }
    const refused = await rawConnect('127.0.0.4');
    await refused.closed;
    for (const session of open) {
      session.socket.destroy();
    }
    assert.match(
      refused.received(),
      /^421 4\.7\.0 mx2\.example\.net Error: too many connections, try again later\r\n$/,
    );
  });

  test('closed sessions free their places', async () => {
    await waitForGreeting();
    await waitForGreeting('127.0.0.4');
  });
});

describe('error limit', () => {
  test('the third error reply is followed by 421 4.7.0 and a close', async () => {
    await waitForGreeting();
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    assert.equal((await client.command('MAIL FROM:<broken')).code, 501);
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 503);
    assert.equal((await client.command('DATA')).code, 503);
    const last = await client.read();
    await client.closed();
    assert.equal(last.text, '421 4.7.0 mx2.example.net Error: too many errors');
  });

  test('recipients past the limit are not errors', async () => {
    const before = await ingress.countMessages();
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    for (let i = 1; i <= 100; i++) {
      const reply = await client.command(`RCPT TO:<r${i}@no-greylist.example>`);
      assert.equal(reply.code, 250, `RCPT ${i}: ${reply.text}`);
    }
    // MX_MAX_ERRORS is 3, so four more would end the session if they counted.
    for (let i = 101; i <= 104; i++) {
      const reply = await client.command(`RCPT TO:<r${i}@no-greylist.example>`);
      assert.match(reply.text, /^452 4\.5\.3 /, `RCPT ${i}`);
    }
    assert.equal((await client.command('DATA')).code, 354, 'session open after four 452 replies');
    client.write('Subject: many recipients\r\n\r\nbody\r\n.\r\n');
    const reply = await client.read();
    client.close();
    assert.match(reply.text, /^250 2\.0\.0 /);
    assert.equal(await ingress.countMessages(), before + 1);
  });

  test('overshoot past 1000 replies counts', async () => {
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    for (let i = 1; i <= 100; i++) {
      assert.equal((await client.command(`RCPT TO:<o${i}@no-greylist.example>`)).code, 250);
    }
    for (let i = 101; i <= 1100; i++) {
      const reply = await client.command(`RCPT TO:<o${i}@no-greylist.example>`);
      assert.match(reply.text, /^452 4\.5\.3 /, `RCPT ${i}`);
    }
    // The next MX_MAX_ERRORS (3) overshoot replies count, and the last one ends the session.
    for (let i = 1101; i <= 1102; i++) {
      assert.equal((await client.command(`RCPT TO:<o${i}@no-greylist.example>`)).code, 452);
    }
    await client.command('RCPT TO:<o1103@no-greylist.example>');
    const closing = await client.read();
    await client.closed();
    assert.match(closing.text, /^421 4\.7\.0 /);
  });

  test('two errors leave the session open', async () => {
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    assert.equal((await client.command('MAIL FROM:<broken')).code, 501);
    assert.equal((await client.command('DATA')).code, 503);
    const reply = await client.command('NOOP');
    client.close();
    assert.equal(reply.code, 250);
  });
});

describe('timeouts', () => {
  test('an idle client gets 421 4.4.2 and a close', async () => {
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    const reply = await client.read();
    await client.closed();
    assert.match(reply.text, /^421 4\.4\.2 /);
  });

  test('a client that stops sending DATA gets 421 4.4.2 and nothing is stored', async () => {
    const before = await ingress.countMessages();
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    assert.equal((await client.command('DATA')).code, 354);
    client.write('Subject: half a message\r\n\r\nand then nothing');
    const reply = await client.read();
    await client.closed();
    assert.match(reply.text, /^421 4\.4\.2 /);
    assert.equal(await ingress.countMessages(), before);
  });
});
