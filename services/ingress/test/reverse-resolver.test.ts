import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, test } from 'node:test';
import { reverseName, startDnsServer, type TestDnsServer } from '@secondary-mx/testkit';
import { confirmedNames, createReverseResolver } from '../src/reverse-resolver.ts';

let dns: TestDnsServer;
const resolver = new Resolver({ timeout: 2000, tries: 1 });

before(async () => {
  dns = await startDnsServer({
    [reverseName('40.107.0.89')]: { PTR: ['mail-a.outbound.protection.example'] },
    'mail-a.outbound.protection.example': { A: ['40.107.0.89'] },
    [reverseName('40.107.20.64')]: {
      PTR: ['spoofed.bank.example', 'mail-b.outbound.protection.example'],
    },
    'spoofed.bank.example': { A: ['192.0.2.1'] },
    'mail-b.outbound.protection.example': { A: ['40.107.20.63', '40.107.20.64'] },
    [reverseName('198.51.100.9')]: { PTR: ['dangling.example'] },
    [reverseName('2001:db8:1::25')]: { PTR: ['mx-v6.example'] },
    'mx-v6.example': { AAAA: ['2001:0db8:0001:0000:0000:0000:0000:0025'] },
  });
  resolver.setServers([dns.server]);
});

after(async () => {
  await dns.close();
});

test('confirmedNames keeps names that resolve back', async () => {
  assert.deepEqual(await confirmedNames(resolver, '40.107.0.89'), [
    'mail-a.outbound.protection.example',
  ]);
  assert.deepEqual(await confirmedNames(resolver, '::ffff:40.107.0.89'), [
    'mail-a.outbound.protection.example',
  ]);
  assert.deepEqual(await confirmedNames(resolver, '2001:db8:1::25'), ['mx-v6.example']);
});

test('confirmedNames drops names that do not resolve back', async () => {
  assert.deepEqual(await confirmedNames(resolver, '40.107.20.64'), [
    'mail-b.outbound.protection.example',
  ]);
  assert.deepEqual(await confirmedNames(resolver, '198.51.100.9'), []);
});

test('reverse resolver fails without a confirmed name', async () => {
  const reverse = createReverseResolver([dns.server]);
  const lookUp = (address: string) =>
    new Promise<string[]>((resolve, reject) =>
      reverse.reverse(address, (error, hostnames) =>
        error ? reject(error) : resolve(hostnames ?? []),
      ),
    );

  assert.deepEqual(await lookUp('40.107.0.89'), ['mail-a.outbound.protection.example']);
  await assert.rejects(lookUp('198.51.100.9'), /no forward-confirmed name/);
  await assert.rejects(lookUp('203.0.113.1'));
});
