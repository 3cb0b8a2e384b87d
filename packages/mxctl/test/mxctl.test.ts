/**
 * mxctl as a child process against an admin API that listens on a free loopback port, with the
 * greylist service in this process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, startDnsServer, type TestDnsServer } from '@secondary-mx/testkit';
import {
  startTestGreylist,
  type TestGreylist,
} from '../../../services/admin-api/test/greylist-service.ts';
import {
  createTokenHeader,
  type Harness,
  registerDomain,
  startHarness,
  storeMessage,
  TOKEN,
  testDomain,
} from '../../../services/admin-api/test/support.ts';
import { COMMANDS } from '../src/commands/index.ts';

const BIN = fileURLToPath(new URL('../bin/mxctl.js', import.meta.url));

let dns: TestDnsServer;
let harness: Harness;
let greylist: TestGreylist;
let adminUrl: string;

before(async () => {
  // For the greylist service's SPF checks, which must never reach the machine's resolver.
  dns = await startDnsServer({});
  harness = await startHarness();
  greylist = await startTestGreylist(harness.amqpPrefix, {
    DNS_SERVERS: dns.server,
    MX_GREYLIST_WHITELIST_NAMES: 'relay.partner.example',
  });
  await harness.app.listen({ host: '127.0.0.1', port: 0 });
  const address = harness.app.server.address();
  assert.ok(address !== null);
  assert.ok(typeof address === 'object');
  adminUrl = `http://127.0.0.1:${address.port}`;
});

after(async () => {
  await greylist?.stop();
  await harness?.close();
  await dns?.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs mxctl with the admin URL and token in its environment, plus `env`. */
async function mxctl(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
  };
  for (const [name, value] of Object.entries({
    MX_ADMIN_URL: adminUrl,
    MX_ADMIN_TOKEN: TOKEN,
    ...env,
  })) {
    if (value !== undefined) {
      childEnv[name] = value;
    }
  }
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

/** Asserts a successful run and returns its standard output. */
async function succeed(args: string[], env?: Record<string, string | undefined>) {
  const run = await mxctl(args, env);
  assert.equal(run.code, 0, `mxctl ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

/** Asserts a failed run with the status and one stderr line that matches. */
async function failWith(
  args: string[],
  code: number,
  message: RegExp,
  env?: Record<string, string | undefined>,
): Promise<void> {
  const run = await mxctl(args, env);
  assert.equal(run.code, code, `mxctl ${args.join(' ')}: ${run.stderr}`);
  assert.equal(run.stdout, '', `mxctl ${args.join(' ')}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0] ?? '', /^mxctl: /);
  assert.match(lines[0] ?? '', message);
}

/** Returns the value of a `label: value` line, or undefined without one. */
function field(output: string, label: string): string | undefined {
  const line = output.split('\n').find((candidate) => candidate.startsWith(`${label}:`));
  return line?.slice(label.length + 1).trim();
}

describe('mxctl command line', () => {
  test('help lists every command', async () => {
    const output = await succeed(['--help']);
    assert.match(output, /^Usage: mxctl /);
    for (const command of COMMANDS) {
      assert.ok(output.includes(`  ${command.path.join(' ')}`), command.path.join(' '));
    }
    assert.match(output, /--url URL/);
    assert.match(output, /Exit status: /);
  });

  test('command help shows its options', async () => {
    const output = await succeed(['greylist', 'whitelist', 'add', '--help']);
    assert.match(output, /^Usage: mxctl greylist whitelist add KIND VALUE \[--note TEXT\]/);
    assert.match(output, /KIND is client/);
    const group = await succeed(['queue', '-h']);
    assert.match(group, /^Usage: mxctl queue SUBCOMMAND/);
    assert.match(group, /queue retry \[ID\]/);
  });

  test('invalid command lines exit 64', async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [['bogus'], /unknown command "bogus"/],
      [['domains', 'bogus'], /unknown command "domains bogus"/],
      [['greylist'], /needs a subcommand/],
      [['domains', 'show'], /missing DOMAIN; run mxctl domains show --help/],
      [['domains', 'show', 'a.example', 'b.example'], /unexpected argument "b\.example"/],
      [['domains', 'list', '--bogus'], /unknown option '--bogus'/],
      [['domains', 'list', '--state', 'lost'], /--state must be one of pending, approved/],
      [['domains', 'request', 'x.example'], /missing --member/],
      [['domains', 'set', 'x.example'], /give at least one of --greylist/],
      [['queue', 'hold'], /give a queue id, filter options or --all/],
      [['queue', 'hold', 'ABC', '--domain', 'x.example'], /either a queue id or filter/],
      [['greylist', 'whitelist', 'add', 'colour', 'blue'], /KIND must be one of client/],
      [['tokens', 'create', '--role', 'member'], /member token needs --domain/],
    ];
    for (const [args, message] of cases) {
      await failWith(args, 64, message);
    }
  });

  test('option types agree across commands', () => {
    const types = new Map<string, string>();
    for (const command of COMMANDS) {
      for (const [name, spec] of Object.entries(command.options ?? {})) {
        const seen = types.get(name) ?? spec.type;
        assert.equal(spec.type, seen, `--${name} of ${command.path.join(' ')}`);
        types.set(name, spec.type);
      }
    }
  });
});

describe('mxctl connection and token', () => {
  test('missing token exits 78', async () => {
    await failWith(['domains', 'list'], 78, /no token given: set MX_ADMIN_TOKEN/, {
      MX_ADMIN_TOKEN: undefined,
    });
  });

  test('invalid URL exits 78', async () => {
    await failWith(['--url', 'ftp://mx.example', 'domains', 'list'], 78, /--url "ftp:\/\/mx/);
    await failWith(['domains', 'list'], 78, /MX_ADMIN_URL "not a url" must be a URL/, {
      MX_ADMIN_URL: 'not a url',
    });
  });

  test('wrong token shows the API message', async () => {
    await failWith(
      ['domains', 'list'],
      1,
      /^mxctl: 401 Unauthorized: invalid or revoked bearer token$/,
      { MX_ADMIN_TOKEN: 'wrong-token-0123456789' },
    );
  });

  test('token flag overrides the environment', async () => {
    const output = await succeed(['--token', TOKEN, 'tokens', 'list'], {
      MX_ADMIN_TOKEN: 'wrong-token-0123456789',
    });
    assert.match(output, /^ID\s+ROLE/);
  });

  test('server down names the URL', async () => {
    const port = await freePort();
    await failWith(
      ['domains', 'list'],
      69,
      new RegExp(
        `cannot reach the admin API at http://127\\.0\\.0\\.1:${port}/: connection refused \\(ECONNREFUSED\\)`,
      ),
      { MX_ADMIN_URL: `http://127.0.0.1:${port}` },
    );
  });

  test('https to plain HTTP is one line', async () => {
    await failWith(
      ['domains', 'list'],
      69,
      /cannot reach the admin API at https:\/\/127\.0\.0\.1:\d+\/: .*\(ERR_SSL_WRONG_VERSION_NUMBER\); check --url/,
      { MX_ADMIN_URL: adminUrl.replace('http:', 'https:') },
    );
  });

  test('url flag overrides the environment', async () => {
    const port = await freePort();
    const output = await succeed(['tokens', 'list', '--url', adminUrl], {
      MX_ADMIN_URL: `http://127.0.0.1:${port}`,
    });
    assert.match(output, /^ID\s+ROLE/);
  });
});

describe('mxctl domains', () => {
  test('domains request, show and list', async () => {
    const domain = testDomain('cli-request');
    const requested = await succeed(['domains', 'request', domain, '--member', 'M-42']);
    assert.equal(field(requested, 'domain'), domain);
    assert.equal(field(requested, 'state'), 'pending');
    assert.equal(field(requested, 'member number'), 'M-42');

    const shown = await succeed(['domains', 'show', domain.toUpperCase()]);
    assert.equal(field(shown, 'greylisting'), 'on');
    assert.equal(field(shown, 'primary hosts'), 'MX records');

    const listed = await succeed(['domains', '--state', 'pending']);
    const header = listed.split('\n')[0] ?? '';
    assert.match(header, /^DOMAIN\s+STATE\s+MEMBER\s+GREYLIST/);
    const row = listed.split('\n').find((line) => line.startsWith(`${domain} `));
    assert.ok(row, listed);
    assert.match(row, /\spending\s+M-42\s+on\s+none\s+MX\s/);

    const json = JSON.parse(await succeed(['domains', 'list', '--json']));
    assert.ok(json.domains.some((entry: { domain: string }) => entry.domain === domain));
  });

  test('domains of an unknown name exit 1', async () => {
    const domain = testDomain('cli-unknown');
    await failWith(
      ['domains', 'show', domain],
      1,
      new RegExp(`404 Not Found: domain ${domain.replaceAll('.', '\\.')} is not registered`),
    );
    await failWith(
      ['domains', 'request', 'not a domain', '--member', '1'],
      1,
      /^mxctl: 400 Bad Request: /,
    );
  });

  test('domains set switches greylisting', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-set'));
    const output = await succeed([
      'domains',
      'set',
      domain,
      '--greylist',
      'off',
      '--primary-hosts',
      'mail.member.example:2525, backup.member.example',
      '--reason',
      'primary moved',
    ]);
    assert.equal(field(output, 'greylisting'), 'off');
    assert.equal(field(output, 'primary hosts'), 'mail.member.example:2525, backup.member.example');
    const json = JSON.parse(await succeed(['domains', 'show', domain, '--json']));
    assert.equal(json.greylist, false);
    const events = JSON.parse(await succeed(['domains', 'events', domain, '--json']));
    const change = events.events.find((event: { action: string }) => event.action === 'change');
    assert.equal(change.reason, 'primary moved');
  });

  test('domains approve makes it approved', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-approve'));
    const output = await succeed(['domains', 'approve', domain]);
    assert.equal(field(output, 'state'), 'approved');
    assert.match(field(output, 'DNS record') ?? '', /^@ MX 200 \S+\.$/);
    assert.match(field(output, 'member token') ?? '', /^smx_/);
  });

  test('flush reports scheduled recipients', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-flush'));
    await storeMessage(harness.pool, [`a@${domain}`, `b@${domain}`]);
    const output = await succeed(['flush', domain]);
    assert.equal(output, `scheduled 2 recipients of ${domain} for delivery now\n`);
  });

  test('domains suspend and events', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-suspend'));
    await succeed(['domains', 'approve', domain]);
    const suspended = await succeed(['domains', 'suspend', domain, '--reason', 'unpaid fee']);
    assert.equal(field(suspended, 'state'), 'suspended');
    await failWith(['domains', 'suspend', domain], 1, /^mxctl: 409 Conflict: /);

    const events = await succeed(['domains', 'events', domain]);
    assert.match(events.split('\n')[0] ?? '', /^AT\s+ACTOR\s+ACTION\s+FROM\s+TO\s+REASON/);
    assert.match(events, /unpaid fee/);
    const json = JSON.parse(await succeed(['domains', 'events', domain, '--json']));
    assert.ok(json.events.length >= 2);
  });

  test('domains remove refuses waiting mail', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-remove'));
    await storeMessage(harness.pool, [`a@${domain}`]);
    await failWith(['domains', 'remove', domain], 1, /^mxctl: 409 Conflict: /);
    const output = await succeed(['domains', 'remove', domain, '--waiting', 'drop']);
    assert.equal(output, `removed ${domain}: 0 waiting messages bounced, 1 dropped\n`);
    await failWith(['domains', 'show', domain], 1, /404 Not Found/);
  });

  test('domains dns-check of an unlisted domain', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-dns'));
    const run = await mxctl(['domains', 'dns-check', domain]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(field(run.stdout, 'result'), 'problems found');
    assert.equal(field(run.stdout, 'we are listed'), 'no');
    assert.match(run.stderr, /^mxctl: the DNS check of .* found problems\n$/);
  });

  test('domains dns-check names the override', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-dns-override'));
    const port = await freePort();
    await succeed(['domains', 'set', domain, '--primary-hosts', `127.0.0.1:${port}`]);
    const run = await mxctl(['domains', 'dns-check', domain]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      field(run.stdout, 'primary'),
      `127.0.0.1:${port} (primaryHosts override), SMTP no answer`,
    );
  });
});

describe('mxctl queue and stats', () => {
  test('queue list shows one row per recipient', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-queue'));
    const id = await storeMessage(harness.pool, [`a@${domain}`, `b@${domain}`]);
    const output = await succeed(['queue', 'list', '--domain', domain]);
    const lines = output.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ID\s+AGE\s+SENDER\s+RECIPIENT\s+STATE\s+TRIES\s+LAST REPLY$/);
    assert.equal(lines.length, 3, output);
    assert.match(lines[1] ?? '', new RegExp(`^${id}\\s+\\d+s\\s+sender@origin\\.example\\s+a@`));
    assert.match(lines[2] ?? '', /\squeued\s+0\s+-$/);

    const json = JSON.parse(await succeed(['queue', '--domain', domain, '--json']));
    assert.equal(json.messages[0].id, id);
    assert.equal(json.nextCursor, null);
  });

  test('queue list follows pages', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-pages'));
    for (let i = 0; i < 3; i += 1) {
      await storeMessage(harness.pool, [`r${i}@${domain}`]);
    }
    const page = await mxctl(['queue', 'list', '--domain', domain, '--limit', '2']);
    assert.equal(page.code, 0, page.stderr);
    assert.equal(page.stdout.trimEnd().split('\n').length, 3);
    assert.match(page.stderr, /^more messages: repeat with --cursor \S+, or use --all\n$/);

    const all = await mxctl(['queue', 'list', '--domain', domain, '--limit', '2', '--all']);
    assert.equal(all.stdout.trimEnd().split('\n').length, 4);
    assert.equal(all.stderr, '');
  });

  test('queue show, hold and release', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-show'));
    const id = await storeMessage(harness.pool, [`a@${domain}`]);
    await harness.pool.query(
      `INSERT INTO delivery_attempts (recipient_id, attempted_at, status, reply, remote_mta)
       SELECT id, now() - interval '1 minute', 'deferred', '421 4.4.2 busy', 'mx1.example'
       FROM recipients WHERE address = $1`,
      [`a@${domain}`],
    );
    const shown = await succeed(['queue', 'show', id]);
    assert.equal(field(shown, 'id'), id);
    assert.equal(field(shown, 'sender'), 'sender@origin.example');
    assert.equal(field(shown, 'client'), '- ([127.0.0.1])');
    const address = domain.replaceAll('.', '\\.');
    assert.match(shown, new RegExp(`\\na@${address}\\s+queued\\s+0\\s`));
    assert.match(shown, /\nATTEMPTED\s+RECIPIENT\s+STATUS\s+REMOTE MTA\s+REPLY\n/);
    const attempt = `Z\\s+a@${address}\\s+deferred\\s+mx1\\.example\\s+421 4\\.4\\.2 busy\\n`;
    assert.match(shown, new RegExp(attempt));

    assert.equal(await succeed(['queue', 'hold', id]), `hold: 1 recipients of ${id} changed\n`);
    const bulk = await succeed(['queue', 'release', '--domain', domain]);
    assert.equal(bulk, 'release: 1 recipients of 1 messages changed\n');
    const raw = await succeed(['queue', 'raw', id]);
    assert.match(raw, /^Subject: test\r\n/);
    await failWith(['queue', 'show', 'NOSUCHID'], 1, /^mxctl: (400|404) /);
  });

  test('queue show marks a requested hold', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-pending'));
    const id = await storeMessage(harness.pool, [`a@${domain}`]);
    await harness.pool.query(
      `UPDATE recipients SET state = 'active', lease_until = now() + interval '10 minutes'
        WHERE message_id = $1`,
      [id],
    );
    assert.equal(await succeed(['queue', 'hold', id]), `hold: 1 recipients of ${id} changed\n`);

    const shown = await succeed(['queue', 'show', id]);
    const address = domain.replaceAll('.', '\\.');
    assert.match(shown, new RegExp(`\\na@${address}\\s+active, hold requested\\s+0\\s`));
  });

  test('stats counts states', async () => {
    const output = await succeed(['stats']);
    assert.match(field(output, 'queued') ?? '', /^\d+$/);
    const json = JSON.parse(await succeed(['stats', '--json']));
    assert.equal(typeof json.states, 'object');
  });
});

describe('mxctl greylist', () => {
  test('greylist lookup shows the triplet', async () => {
    const output = await succeed([
      'greylist',
      'lookup',
      '--client',
      '203.0.113.8',
      '--sender',
      'Alice+news@Example.com',
      '--recipient',
      'bob@example.org',
    ]);
    assert.equal(field(output, 'state'), 'unknown');
    assert.equal(field(output, 'client group'), 'net:203.0.113.0/24');
    assert.equal(field(output, 'sender'), 'alice@example.com');
    assert.equal(field(output, 'SPF'), 'none');
    assert.equal(field(output, 'group passes'), '0 of 5 for the auto-whitelist');
    assert.match(field(output, 'key') ?? '', new RegExp(`^${greylist.redisPrefix}gl:`));

    const named = await succeed([
      'greylist',
      'lookup',
      '--client',
      '203.0.113.8',
      '--sender',
      '<>',
      '--recipient',
      'bob@example.org',
      '--name',
      'out.relay.partner.example',
    ]);
    assert.equal(field(named, 'state'), 'whitelisted (whitelisted-name)');
    assert.equal(field(named, 'whitelist entry'), 'name relay.partner.example from setting');
    assert.equal(field(named, 'sender'), '<>');
  });

  test('greylist lookup needs its options', async () => {
    await failWith(['greylist', 'lookup', '--client', '192.0.2.1'], 64, /missing --sender/);
    await failWith(
      ['greylist', 'lookup', '--client', 'nowhere', '--sender', '', '--recipient', 'a@example.org'],
      1,
      /^mxctl: 400 Bad Request: client address "nowhere" is not an IP address$/,
    );
  });

  test('whitelist add, list and remove', async () => {
    const added = await succeed([
      'greylist',
      'whitelist',
      'add',
      'client',
      '192.0.2.9/24',
      '--note',
      'partner',
    ]);
    assert.equal(added, 'added: client 192.0.2.0/24\n');
    const again = await succeed(['greylist', 'whitelist', 'add', 'client', '192.0.2.0/24']);
    assert.equal(again, 'already listed: client 192.0.2.0/24\n');

    const listed = await succeed(['greylist', 'whitelist']);
    const lines = listed.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^KIND\s+VALUE\s+SOURCE\s+ADDED\s+NOTE$/);
    assert.match(lines[1] ?? '', /^name\s+relay\.partner\.example\s+setting\s+-\s+-$/);
    assert.match(
      lines[2] ?? '',
      /^client\s+192\.0\.2\.0\/24\s+api\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+partner$/,
    );

    const json = JSON.parse(await succeed(['greylist', 'whitelist', 'list', '--json']));
    assert.equal(json.entries.length, 2);

    const removed = await succeed(['greylist', 'whitelist', 'remove', 'client', '192.0.2.0/24']);
    assert.equal(removed, 'removed: client 192.0.2.0/24\n');
    await failWith(
      ['greylist', 'whitelist', 'remove', 'client', '192.0.2.0/24'],
      1,
      /^mxctl: 404 Not Found: client 192\.0\.2\.0\/24 is not whitelisted$/,
    );
    await failWith(
      ['greylist', 'whitelist', 'remove', 'name', 'relay.partner.example'],
      1,
      /^mxctl: 409 Conflict: .*MX_GREYLIST_WHITELIST_NAMES/,
    );
  });

  test('member token may not use greylist', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-member'));
    const header = await createTokenHeader(harness.app, 'member', domain);
    const memberToken = header.authorization.slice('Bearer '.length);
    await failWith(
      ['greylist', 'whitelist', 'list'],
      1,
      /^mxctl: 403 Forbidden: this route needs an administrator token$/,
      { MX_ADMIN_TOKEN: memberToken },
    );
  });
});

describe('mxctl tokens', () => {
  test('tokens create, list and revoke', async () => {
    const domain = await registerDomain(harness.app, testDomain('cli-tokens'));
    const created = await mxctl([
      'tokens',
      'create',
      '--role',
      'member',
      '--domain',
      domain,
      '--note',
      'mail admin',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const id = field(created.stdout, 'id') ?? '';
    const token = field(created.stdout, 'token') ?? '';
    assert.match(token, /^smx_/);
    assert.match(created.stderr, /shown only once/);

    // The new member token works for its own domain.
    const own = await succeed(['domains', 'show', domain], { MX_ADMIN_TOKEN: token });
    assert.equal(field(own, 'domain'), domain);

    const listed = await succeed(['tokens', 'list', '--domain', domain]);
    const row = listed.split('\n').find((line) => line.startsWith(id));
    assert.ok(row, listed);
    assert.match(row, /\smember\s/);
    assert.match(row, /\smail admin$/);

    assert.equal(await succeed(['tokens', 'revoke', id]), `revoked ${id}\n`);
    await failWith(['domains', 'show', domain], 1, /401 Unauthorized/, { MX_ADMIN_TOKEN: token });
    await failWith(['tokens', 'revoke', 'not-a-uuid'], 1, /^mxctl: 400 Bad Request: /);
  });
});
