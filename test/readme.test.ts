import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SETTINGS } from '@secondary-mx/config';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('README documents every setting', () => {
  const missing = Object.keys(SETTINGS).filter((name) => !readme.includes(`\`${name}\``));
  assert.deepEqual(missing, []);
});
