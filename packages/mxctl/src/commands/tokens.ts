/** `mxctl tokens ...`: stored bearer tokens of administrators and members. */
import { type Command, UsageError } from '../cli.ts';
import { formatFields, formatJson, formatTable, formatTime } from '../output.ts';

interface TokenView {
  id: string;
  role: string;
  domain: string | null;
  note: string | null;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  token?: string;
}

export const tokenCommands: Command[] = [
  {
    path: ['tokens', 'list'],
    args: [],
    summary: 'List stored tokens without their secrets, newest first',
    options: { domain: { type: 'string', value: 'DOMAIN', help: 'only tokens of this domain' } },
    async run(context, { options }) {
      const reply = (await context.api.request('GET', '/api/tokens', {
        query: { domain: options.domain as string | undefined },
      })) as { tokens: TokenView[] };
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      const rows = reply.tokens.map((token) => [
        token.id,
        token.role,
        token.domain,
        formatTime(token.createdAt),
        formatTime(token.lastUsedAt),
        formatTime(token.revokedAt),
        token.note,
      ]);
      context.print(
        formatTable(['ID', 'ROLE', 'DOMAIN', 'CREATED', 'LAST USED', 'REVOKED', 'NOTE'], rows),
      );
    },
  },
  {
    path: ['tokens', 'create'],
    args: [],
    summary: 'Create a token; its secret is shown only this once',
    options: {
      role: {
        type: 'string',
        value: 'ROLE',
        required: true,
        choices: ['admin', 'member'],
        help: 'admin (everything) or member (one domain)',
      },
      domain: { type: 'string', value: 'DOMAIN', help: 'the domain of a member token' },
      note: { type: 'string', value: 'TEXT', help: 'who or what uses the token' },
    },
    async run(context, { options }) {
      if (options.role === 'member' && options.domain === undefined) {
        throw new UsageError('a member token needs --domain; run mxctl tokens create --help');
      }
      const token = (await context.api.request('POST', '/api/tokens', {
        body: { role: options.role, domain: options.domain, note: options.note },
      })) as TokenView;
      if (context.json) {
        context.print(formatJson(token));
        return;
      }
      context.print(
        formatFields([
          ['id', token.id],
          ['role', token.role],
          ['domain', token.domain],
          ['note', token.note],
          ['token', token.token],
        ]),
      );
      context.note('The token is shown only once: store it now.');
    },
  },
  {
    path: ['tokens', 'revoke'],
    args: ['ID'],
    summary: 'Revoke a token: requests with it are rejected from now on',
    async run(context, { args }) {
      const token = (await context.api.request(
        'DELETE',
        `/api/tokens/${encodeURIComponent(args[0] ?? '')}`,
      )) as TokenView;
      context.print(context.json ? formatJson(token) : `revoked ${token.id}`);
    },
  },
];
