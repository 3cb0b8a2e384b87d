import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadSettings, parseDuration } from '../src/index.ts';

test('durations take s, m, h, d and w suffixes', () => {
  assert.equal(parseDuration('300s'), 300_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('1w'), 604_800_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('5 minutes'), undefined);
  assert.equal(parseDuration(''), undefined);
  assert.equal(parseDuration('-5s'), undefined);
});

test('defaults apply when variables are unset', () => {
  const settings = loadSettings(
    ['MX_SMTP_LISTEN', 'MX_QUEUE_LIFETIME', 'MX_RETRY_MIN', 'AMQP_URL'],
    {},
  );
  assert.deepEqual(settings.MX_SMTP_LISTEN, { host: '0.0.0.0', port: 2525 });
  assert.equal(settings.MX_QUEUE_LIFETIME, 35 * 86_400_000);
  assert.equal(settings.MX_RETRY_MIN, 60_000);
  assert.equal(settings.AMQP_URL, 'amqp://guest:guest@127.0.0.1:5672');
  assert.ok(Object.isFrozen(settings));
});

test('every invalid or missing value is reported by name at once', () => {
  assert.throws(
    () =>
      loadSettings(['MX_ADMIN_TOKEN', 'MX_RETRY_MIN', 'MX_SMTP_LISTEN', 'DATABASE_URL'], {
        MX_RETRY_MIN: 'soon',
        MX_SMTP_LISTEN: 'localhost:99999',
        DATABASE_URL: 'mysql://x',
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 4);
      assert.match(error.message, /MX_ADMIN_TOKEN is missing/);
      assert.match(error.message, /MX_RETRY_MIN="soon" must be a duration/);
      assert.match(
        error.message,
        /MX_SMTP_LISTEN="localhost:99999" port must be between 1 and 65535/,
      );
      assert.match(
        error.message,
        /DATABASE_URL="mysql:\/\/x" must be a URL starting with postgres:/,
      );
      return true;
    },
  );
});

test('the admin token is never echoed in an error', () => {
  assert.throws(
    () => loadSettings(['MX_ADMIN_TOKEN'], { MX_ADMIN_TOKEN: 'short-secret' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.doesNotMatch(error.message, /short-secret/);
      assert.match(error.message, /MX_ADMIN_TOKEN=\(hidden\) must be at least 16 characters/);
      return true;
    },
  );
});

test('retry bounds must be ordered', () => {
  assert.throws(
    () =>
      loadSettings(['MX_RETRY_MIN', 'MX_RETRY_MAX'], { MX_RETRY_MIN: '2h', MX_RETRY_MAX: '1h' }),
    /MX_RETRY_MIN must not be larger than MX_RETRY_MAX/,
  );
});

test('self names default to the host name and are lower-cased', () => {
  const fromHost = loadSettings(['MX_SELF_NAMES'], { MX_HOSTNAME: 'MX2.Example.NET' });
  assert.deepEqual(fromHost.MX_SELF_NAMES, ['mx2.example.net']);
  const listed = loadSettings(['MX_SELF_NAMES'], {
    MX_SELF_NAMES: 'mx2.example.net., backup.example.org',
  });
  assert.deepEqual(listed.MX_SELF_NAMES, ['mx2.example.net', 'backup.example.org']);
});

test('DNS servers take host:port with port 53 by default', () => {
  const settings = loadSettings(['DNS_SERVERS'], { DNS_SERVERS: '127.0.0.1:5353, ::1' });
  assert.deepEqual(settings.DNS_SERVERS, ['127.0.0.1:5353', '[::1]:53']);
});

test('ingress limits have their defaults', () => {
  const settings = loadSettings(
    [
      'MX_MAX_CONNECTIONS',
      'MX_MAX_CONNECTIONS_PER_CLIENT',
      'MX_SMTP_TIMEOUT',
      'MX_MAX_ERRORS',
      'MX_PREGREET_WAIT',
      'MX_MAX_HOPS',
      'MX_SENDER_DOMAIN_CHECK',
      'MX_DNSBL_ZONES',
      'MX_DNS_TIMEOUT',
      'MX_TLS_RELOAD_INTERVAL',
    ],
    {},
  );
  assert.equal(settings.MX_MAX_CONNECTIONS, 500);
  assert.equal(settings.MX_MAX_CONNECTIONS_PER_CLIENT, 50);
  assert.equal(settings.MX_SMTP_TIMEOUT, 300_000);
  assert.equal(settings.MX_MAX_ERRORS, 20);
  assert.equal(settings.MX_PREGREET_WAIT, 1000);
  assert.equal(settings.MX_MAX_HOPS, 50);
  assert.equal(settings.MX_SENDER_DOMAIN_CHECK, true);
  assert.deepEqual(settings.MX_DNSBL_ZONES, []);
  assert.equal(settings.MX_DNS_TIMEOUT, 5000);
  assert.equal(settings.MX_TLS_RELOAD_INTERVAL, 30_000);
});

test('sender domain check takes on and off', () => {
  const off = loadSettings(['MX_SENDER_DOMAIN_CHECK'], { MX_SENDER_DOMAIN_CHECK: 'off' });
  assert.equal(off.MX_SENDER_DOMAIN_CHECK, false);
  assert.throws(
    () => loadSettings(['MX_SENDER_DOMAIN_CHECK'], { MX_SENDER_DOMAIN_CHECK: 'maybe' }),
    /MX_SENDER_DOMAIN_CHECK="maybe" must be on or off/,
  );
});

test('DNSBL zones are lower-cased without duplicates', () => {
  const settings = loadSettings(['MX_DNSBL_ZONES'], {
    MX_DNSBL_ZONES: 'Zen.Example., bl.example, zen.example',
  });
  assert.deepEqual(settings.MX_DNSBL_ZONES, ['zen.example', 'bl.example']);
  assert.throws(
    () => loadSettings(['MX_DNSBL_ZONES'], { MX_DNSBL_ZONES: 'bad zone' }),
    /"bad zone" must be a DNS zone name/,
  );
});

test('TLS certificate and key are set together', () => {
  assert.throws(
    () =>
      loadSettings(['MX_TLS_CERT_FILE', 'MX_TLS_KEY_FILE'], { MX_TLS_CERT_FILE: '/etc/mx.crt' }),
    /MX_TLS_CERT_FILE and MX_TLS_KEY_FILE must be set together/,
  );
});

test('greylist whitelists are parsed and normalized', () => {
  const settings = loadSettings(
    [
      'MX_GREYLIST_WHITELIST_CLIENTS',
      'MX_GREYLIST_WHITELIST_NAMES',
      'MX_GREYLIST_WHITELIST_SENDERS',
      'MX_GREYLIST_AUTO_WHITELIST',
    ],
    {
      MX_GREYLIST_WHITELIST_CLIENTS: '192.0.2.0/24, 2001:DB8::/32,198.51.100.7,',
      MX_GREYLIST_WHITELIST_NAMES: '.Relay.Example, mail.partner.example.',
      MX_GREYLIST_WHITELIST_SENDERS: 'Trusted.Example',
      MX_GREYLIST_AUTO_WHITELIST: '0',
    },
  );
  assert.deepEqual(settings.MX_GREYLIST_WHITELIST_CLIENTS, [
    '192.0.2.0/24',
    '2001:db8::/32',
    '198.51.100.7/32',
  ]);
  assert.deepEqual(settings.MX_GREYLIST_WHITELIST_NAMES, ['relay.example', 'mail.partner.example']);
  assert.deepEqual(settings.MX_GREYLIST_WHITELIST_SENDERS, ['trusted.example']);
  assert.equal(settings.MX_GREYLIST_AUTO_WHITELIST, 0);
});

test('greylist defaults', () => {
  const settings = loadSettings(
    [
      'MX_GREYLIST_WHITELIST_CLIENTS',
      'MX_GREYLIST_AUTO_WHITELIST',
      'MX_GREYLIST_ON_ERROR',
      'MX_INGRESS_METRICS_LISTEN',
    ],
    {},
  );
  assert.deepEqual(settings.MX_GREYLIST_WHITELIST_CLIENTS, []);
  assert.equal(settings.MX_GREYLIST_AUTO_WHITELIST, 5);
  assert.equal(settings.MX_GREYLIST_ON_ERROR, 'open');
  assert.deepEqual(settings.MX_INGRESS_METRICS_LISTEN, { host: '127.0.0.1', port: 9101 });
  const off = loadSettings(['MX_INGRESS_METRICS_LISTEN'], { MX_INGRESS_METRICS_LISTEN: '' });
  assert.equal(off.MX_INGRESS_METRICS_LISTEN, undefined);
});

test('invalid greylist settings are reported by name', () => {
  assert.throws(
    () =>
      loadSettings(
        [
          'MX_GREYLIST_WHITELIST_CLIENTS',
          'MX_GREYLIST_WHITELIST_NAMES',
          'MX_GREYLIST_WHITELIST_SENDERS',
          'MX_GREYLIST_AUTO_WHITELIST',
          'MX_GREYLIST_ON_ERROR',
          'MX_INGRESS_METRICS_LISTEN',
        ],
        {
          MX_GREYLIST_WHITELIST_CLIENTS: '192.0.2.0/24,192.0.2.0/33',
          MX_GREYLIST_WHITELIST_NAMES: 'relay.example,bad_name!',
          MX_GREYLIST_WHITELIST_SENDERS: 'user@example.com',
          MX_GREYLIST_AUTO_WHITELIST: '-1',
          MX_GREYLIST_ON_ERROR: 'maybe',
          MX_INGRESS_METRICS_LISTEN: 'localhost',
        },
      ),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 6, error.message);
      assert.match(
        error.message,
        /MX_GREYLIST_WHITELIST_CLIENTS=.*"192\.0\.2\.0\/33" must be an IP network/,
      );
      assert.match(
        error.message,
        /MX_GREYLIST_WHITELIST_NAMES=.*"bad_name!" must be a DNS host name/,
      );
      assert.match(error.message, /MX_GREYLIST_WHITELIST_SENDERS=.*must be a DNS host name/);
      assert.match(error.message, /MX_GREYLIST_AUTO_WHITELIST="-1" must be a whole number/);
      assert.match(error.message, /MX_GREYLIST_ON_ERROR="maybe" must be one of open, closed/);
      assert.match(error.message, /MX_INGRESS_METRICS_LISTEN="localhost" must include a port/);
      return true;
    },
  );
});

test('probe interval max defaults to 5s', () => {
  // A primary that comes back must be noticed within 10 s, so the longest wait between two
  // probes stays well below that.
  const settings = loadSettings(['MX_PROBE_INTERVAL_MIN', 'MX_PROBE_INTERVAL_MAX'], {});
  assert.equal(settings.MX_PROBE_INTERVAL_MIN, 2000);
  assert.equal(settings.MX_PROBE_INTERVAL_MAX, 5000);
});

test('lease time must exceed delivery timeout', () => {
  assert.throws(
    () =>
      loadSettings(['MX_LEASE_TIME', 'MX_DELIVERY_TIMEOUT'], {
        MX_LEASE_TIME: '20s',
        MX_DELIVERY_TIMEOUT: '60s',
      }),
    /MX_LEASE_TIME \(20s\) must be larger than MX_DELIVERY_TIMEOUT \(60s\)/,
  );
  assert.throws(
    () =>
      loadSettings(['MX_LEASE_TIME', 'MX_DELIVERY_TIMEOUT'], {
        MX_LEASE_TIME: '1m',
        MX_DELIVERY_TIMEOUT: '60s',
      }),
    /MX_LEASE_TIME \(60s\) must be larger than MX_DELIVERY_TIMEOUT \(60s\)/,
  );
  const defaults = loadSettings(['MX_LEASE_TIME', 'MX_DELIVERY_TIMEOUT'], {});
  assert.ok(defaults.MX_LEASE_TIME > defaults.MX_DELIVERY_TIMEOUT);
});

test('metrics listeners take port 0 and default per service', () => {
  const names = [
    'MX_INGRESS_METRICS_LISTEN',
    'MX_GREYLIST_METRICS_LISTEN',
    'MX_QUEUE_STORE_METRICS_LISTEN',
    'MX_DELIVERY_METRICS_LISTEN',
  ] as const;
  const defaults = loadSettings(names, {});
  assert.deepEqual(defaults.MX_INGRESS_METRICS_LISTEN, { host: '127.0.0.1', port: 9101 });
  assert.deepEqual(defaults.MX_GREYLIST_METRICS_LISTEN, { host: '127.0.0.1', port: 9102 });
  assert.deepEqual(defaults.MX_QUEUE_STORE_METRICS_LISTEN, { host: '127.0.0.1', port: 9103 });
  assert.deepEqual(defaults.MX_DELIVERY_METRICS_LISTEN, { host: '127.0.0.1', port: 9104 });

  const anyPort = loadSettings(names, {
    MX_INGRESS_METRICS_LISTEN: '0.0.0.0:0',
    MX_GREYLIST_METRICS_LISTEN: '[::1]:0',
    MX_QUEUE_STORE_METRICS_LISTEN: ':0',
    MX_DELIVERY_METRICS_LISTEN: '',
  });
  assert.deepEqual(anyPort.MX_INGRESS_METRICS_LISTEN, { host: '0.0.0.0', port: 0 });
  assert.deepEqual(anyPort.MX_GREYLIST_METRICS_LISTEN, { host: '::1', port: 0 });
  assert.deepEqual(anyPort.MX_QUEUE_STORE_METRICS_LISTEN, { host: '0.0.0.0', port: 0 });
  assert.equal(anyPort.MX_DELIVERY_METRICS_LISTEN, undefined);
});

test('port 0 is rejected for SMTP and admin', () => {
  assert.throws(
    () =>
      loadSettings(['MX_SMTP_LISTEN', 'MX_ADMIN_LISTEN'], {
        MX_SMTP_LISTEN: '127.0.0.1:0',
        MX_ADMIN_LISTEN: '127.0.0.1:0',
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 2, error.message);
      assert.match(
        error.message,
        /MX_SMTP_LISTEN="127\.0\.0\.1:0" port must be between 1 and 65535/,
      );
      return true;
    },
  );
});

test('member number pattern must match whole values', () => {
  const settings = loadSettings(['MX_MEMBER_NUMBER_PATTERN'], {});
  assert.equal(settings.MX_MEMBER_NUMBER_PATTERN.test('M-12/3.4'), true);
  assert.equal(settings.MX_MEMBER_NUMBER_PATTERN.test('x'.repeat(64)), true);
  assert.equal(settings.MX_MEMBER_NUMBER_PATTERN.test('x'.repeat(65)), false);
  assert.equal(settings.MX_MEMBER_NUMBER_PATTERN.test('M 12'), false);

  const custom = loadSettings(['MX_MEMBER_NUMBER_PATTERN'], { MX_MEMBER_NUMBER_PATTERN: '\\d+' });
  assert.equal(custom.MX_MEMBER_NUMBER_PATTERN.test('1001'), true);
  assert.equal(custom.MX_MEMBER_NUMBER_PATTERN.test('a1001'), false, 'anchored at the start');
  assert.equal(custom.MX_MEMBER_NUMBER_PATTERN.test('1001a'), false, 'anchored at the end');
  const alternation = loadSettings(['MX_MEMBER_NUMBER_PATTERN'], {
    MX_MEMBER_NUMBER_PATTERN: 'A\\d|B\\d',
  });
  assert.equal(alternation.MX_MEMBER_NUMBER_PATTERN.test('A1x'), false, 'alternatives anchored');
});

test('invalid member number pattern is reported', () => {
  for (const [pattern, problem] of [
    ['[A-Z', /MX_MEMBER_NUMBER_PATTERN="\[A-Z" must be a valid regular expression/],
    ['\\d*', /MX_MEMBER_NUMBER_PATTERN="\\\\d\*" must not match an empty value/],
  ] as const) {
    assert.throws(
      () => loadSettings(['MX_MEMBER_NUMBER_PATTERN'], { MX_MEMBER_NUMBER_PATTERN: pattern }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, problem);
        return true;
      },
    );
  }
});
