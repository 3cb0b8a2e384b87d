import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  normalizePrimaryHost,
  normalizePrimaryHosts,
  PrimaryHostError,
} from '../src/primary-hosts.ts';

describe('normalizePrimaryHost', () => {
  test('valid entries are normalized', () => {
    const cases: [string, string][] = [
      ['mx.example.net', 'mx.example.net'],
      ['MX.Example.NET.', 'mx.example.net'],
      ['mx.example.net:2525', 'mx.example.net:2525'],
      ['mx.example.net:00025', 'mx.example.net:25'],
      ['localhost', 'localhost'],
      ['mx.bücher.example', 'mx.xn--bcher-kva.example'],
      ['192.0.2.1', '192.0.2.1'],
      ['127.0.0.1:65535', '127.0.0.1:65535'],
      ['[::1]', '[::1]'],
      ['[2001:DB8::1]:25', '[2001:db8::1]:25'],
      ['  mx.example.net  ', 'mx.example.net'],
    ];
    for (const [entry, expected] of cases) {
      assert.equal(normalizePrimaryHost(entry), expected, entry);
    }
  });

  test('invalid entries are rejected', () => {
    const cases: [string, RegExp][] = [
      ['', /host or host:port/],
      ['2001:db8::1', /in brackets/],
      ['[2001:db8::zz]:25', /not an IPv6 address/],
      ['[192.0.2.1]', /not an IPv6 address/],
      ['256.0.0.1', /not an IPv4 address/],
      ['192.0.2', /not an IPv4 address/],
      ['mx..example.net', /not a valid host name/],
      ['-mx.example.net', /not a valid host name/],
      ['mx_1.example.net', /not a valid host name/],
      [`${'a'.repeat(64)}.example.net`, /not a valid host name/],
      ['mx.example.123', /not a valid host name/],
      ['mx.example.net:0', /port 0 is not between 1 and 65535/],
      ['mx.example.net:65536', /port 65536/],
      ['mx.example.net:', /host or host:port/],
      ['mx.example.net:25:25', /host or host:port/],
      ['mx.example.net:123456', /host or host:port/],
      ['mx example.net', /not a valid host name/],
    ];
    for (const [entry, message] of cases) {
      assert.throws(
        () => normalizePrimaryHost(entry),
        (error: unknown) => {
          assert.ok(error instanceof PrimaryHostError, entry);
          assert.match(error.message, message, entry);
          return true;
        },
      );
    }
  });
});

describe('normalizePrimaryHosts', () => {
  test('error names the entry index and value', () => {
    assert.throws(
      () => normalizePrimaryHosts(['mx.example.net', 'bad host']),
      /^PrimaryHostError: primaryHosts\[1\] "bad host": /,
    );
  });

  test('repeated entry after normalization is rejected', () => {
    assert.throws(
      () => normalizePrimaryHosts(['mx.example.net:25', 'MX.example.net.:25']),
      /primaryHosts\[1\] "MX.example.net.:25" is listed twice/,
    );
  });

  test('empty list stays empty', () => {
    assert.deepEqual(normalizePrimaryHosts([]), []);
  });
});
