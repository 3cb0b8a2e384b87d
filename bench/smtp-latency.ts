/**
 * Measures where one SMTP transaction spends its time at ingress, one client at a time on a
 * quiet suite: connect to greeting, EHLO, MAIL, RCPT (greylist verdict), and DATA to the 250
 * after the commit. Prints the mean of each step over the messages after a warm-up.
 *
 * Run: node --import tsx bench/smtp-latency.ts [messages]
 * Every server it starts listens on 127.0.0.1 only.
 */
import { SmtpClient, startSuite, TestDnsServer } from '@secondary-mx/testkit';

const messages = Number(process.argv[2] ?? 200);
const WARM_UP = 10;

const dns = await TestDnsServer.start({ 'bench.example': { A: ['127.0.0.1'] } });
const suite = await startSuite({
  env: {
    DNS_SERVERS: dns.server,
    MX_GREYLIST_DELAY: '0s',
    MX_RETRY_MIN: '1h',
    MX_RETRY_MAX: '1h',
  },
});
try {
  await suite.api('POST', '/api/domains', { domain: 'member.example', memberNumber: '1' });
  await suite.api('POST', '/api/domains/member.example/approve');
  await suite.waitUntilRelayed('member.example');
  const line = `${'x'.repeat(76)}\r\n`;
  const data = `Subject: latency\r\n\r\n${line.repeat(130)}.`;
  const totals = new Map<string, number>();

  for (let i = 0; i < WARM_UP + messages; i++) {
    let last = performance.now();
    const step = (name: string) => {
      const now = performance.now();
      if (i >= WARM_UP) {
        totals.set(name, (totals.get(name) ?? 0) + (now - last));
      }
      last = now;
    };
    const { client } = await SmtpClient.connect(suite.smtpPort);
    step('connect to greeting');
    await client.command('EHLO bench.example');
    step('EHLO');
    await client.command('MAIL FROM:<sender@bench.example>');
    step('MAIL FROM');
    await client.command('RCPT TO:<user@member.example>');
    step('RCPT TO');
    await client.command('DATA');
    const reply = await client.command(data);
    step('DATA to 250');
    client.close();
    if (!reply.text.startsWith('250')) {
      throw new Error(`message ${i} was not accepted: ${reply.text}`);
    }
  }
  for (const [name, total] of totals) {
    console.log(`${name.padEnd(20)} ${(total / messages).toFixed(2)} ms`);
  }
} finally {
  await suite.stop();
  await dns.close();
}
