import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compileRecipientList,
  isPostmaster,
  parseRecipientEntry,
  RecipientPatternError,
} from '../src/index.ts';

describe('parseRecipientEntry', () => {
  test('valid entries give their local part', () => {
    const cases: [string, string][] = [
      ['alice@member.example', 'alice'],
      ['Alice@MEMBER.Example.', 'Alice'],
      ['alice@', 'alice'],
      ['sales-*@', 'sales-*'],
      ['*@', '*'],
      ['*.smith@member.example', '*.smith'],
      ['  bob@  ', 'bob'],
      ['jörg@', 'jörg'],
      ['info@bücher.example', 'info'],
    ];
    for (const [entry, localPart] of cases) {
      const domain = entry.includes('bücher') ? 'xn--bcher-kva.example' : 'member.example';
      assert.equal(parseRecipientEntry(entry, domain), localPart, entry);
    }
  });

  test('invalid entries are rejected', () => {
    const cases: [string, RegExp][] = [
      ['alice', /has no @/],
      ['alice@other.example', /is not an address of member\.example/],
      ['@member.example', /empty local part/],
      ['"alice"@', /quoted local part/],
      ['al ice@', /invalid local part/],
      ['a..b@', /invalid local part/],
      ['.a@', /invalid local part/],
      ['a.@', /invalid local part/],
      ['a%b@', /invalid local part/],
      ['a!b@', /invalid local part/],
      ['a@b@', /invalid local part/],
      [`${'x'.repeat(65)}@`, /longer than 64 octets/],
    ];
    for (const [entry, message] of cases) {
      assert.throws(
        () => parseRecipientEntry(entry, 'member.example'),
        (error: unknown) => {
          assert.ok(error instanceof RecipientPatternError, entry);
          assert.match(error.message, message, entry);
          return true;
        },
      );
    }
  });
});

describe('compileRecipientList', () => {
  const patterns = ['alice', 'sales-*', '*-team', 'a*b*c', 'Jörg'];

  test('case-insensitive matching', () => {
    const isListed = compileRecipientList(patterns, false);
    const cases: [string, boolean][] = [
      ['alice', true],
      ['ALICE', true],
      ['alicex', false],
      ['sales-', true],
      ['sales-eu', true],
      ['SALES-EU', true],
      ['sales', false],
      ['xsales-eu', false],
      ['dev-team', true],
      ['dev-team2', false],
      ['abc', true],
      ['aXbYc', true],
      ['aXbY', false],
      ['jörg', true],
      ['JÖRG', true],
    ];
    for (const [localPart, expected] of cases) {
      assert.equal(isListed(localPart), expected, localPart);
    }
  });

  test('case-sensitive matching', () => {
    const isListed = compileRecipientList(patterns, true);
    assert.equal(isListed('alice'), true);
    assert.equal(isListed('Alice'), false);
    assert.equal(isListed('sales-EU'), true);
    assert.equal(isListed('Sales-eu'), false);
    assert.equal(isListed('Jörg'), true);
    assert.equal(isListed('jörg'), false);
  });

  test('wildcard alone matches everything', () => {
    const isListed = compileRecipientList(['*'], false);
    assert.equal(isListed('anyone'), true);
    assert.equal(isListed('x'), true);
  });

  test('empty list matches nothing', () => {
    assert.equal(compileRecipientList([], false)('alice'), false);
  });

  test('many wildcards finish', () => {
    // A backtracking regular expression needs exponential time for this pair.
    const isListed = compileRecipientList([`${'*a'.repeat(30)}*b`], false);
    assert.equal(isListed('a'.repeat(64)), false);
  });
});

test('postmaster in any case', () => {
  assert.equal(isPostmaster('postmaster'), true);
  assert.equal(isPostmaster('PostMaster'), true);
  assert.equal(isPostmaster('postmasters'), false);
});
