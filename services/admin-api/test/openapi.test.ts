import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Harness, startHarness } from './support.ts';

let harness: Harness;

interface Operation {
  summary?: string;
  parameters?: { in: string }[];
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

let operations: [string, string, Operation][];

before(async () => {
  harness = await startHarness();
  const document = (await harness.app.inject({ method: 'GET', url: '/docs/json' })).json<{
    paths: Record<string, Record<string, Operation>>;
  }>();
  operations = Object.entries(document.paths)
    .filter(([path]) => path.startsWith('/api/'))
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]): [string, string, Operation] => [
        method.toUpperCase(),
        path,
        operation,
      ]),
    );
});

after(async () => {
  await harness.close();
});

/** Fills the path parameters of an OpenAPI path with values of the right shape. */
function samplePath(path: string): string {
  return path
    .replaceAll('{domain}', 'member.example')
    .replaceAll('{id}', '00000000-0000-4000-8000-000000000000')
    .replace(/\{[^}]+\}/g, 'sample');
}

describe('openapi document', () => {
  test('lists the api routes', () => {
    assert.ok(operations.length >= 20, `only ${operations.length} operations`);
  });

  test('every api route needs a token', async () => {
    for (const [method, path] of operations) {
      const response = await harness.app.inject({
        method: method as 'GET',
        url: samplePath(path),
        payload: method === 'GET' || method === 'DELETE' ? undefined : {},
      });
      assert.equal(response.statusCode, 401, `${method} ${path}`);
    }
  });

  test('every api route documents its replies', () => {
    for (const [method, path, operation] of operations) {
      const label = `${method} ${path}`;
      assert.ok(operation.summary, `${label} has no summary`);
      const success = Object.keys(operation.responses).filter((code) => code.startsWith('2'));
      assert.ok(success.length > 0, `${label} documents no 2xx reply`);
      assert.ok(operation.responses['401'], `${label} does not document 401`);
      const takesInput = (operation.parameters?.length ?? 0) > 0 || operation.requestBody;
      if (takesInput) {
        assert.ok(operation.responses['400'], `${label} takes input but does not document 400`);
      }
    }
  });
});
