/** `mxctl queue ...` and `mxctl stats`: the spool, actions on its messages, and counts. */
import type { Query } from '../api-client.ts';
import {
  type Command,
  type CommandInput,
  type Context,
  type OptionSpec,
  UsageError,
} from '../cli.ts';
import {
  type Cell,
  formatAge,
  formatFields,
  formatJson,
  formatTable,
  formatTime,
  truncate,
} from '../output.ts';

interface AttemptView {
  attemptedAt: string;
  status: string;
  reply: string | null;
  remoteMta: string | null;
}

interface RecipientView {
  id: string;
  address: string;
  domain: string;
  state: string;
  attempts: number;
  nextAttemptAt?: string | null;
  lastAttemptAt?: string | null;
  lastReply?: string | null;
  remoteMta?: string | null;
  /** In the reply of GET /api/messages/:id only. */
  deliveryAttempts?: AttemptView[];
  /** A hold or bounce of an active recipient that waits for its attempt to end (show only). */
  pendingAction?: string | null;
}

interface MessageView {
  id: string;
  sender: string;
  size: number;
  receivedAt: string;
  expiresAt: string;
  completedAt: string | null;
  recipients: RecipientView[];
  /** The fields below are in the reply of GET /api/messages/:id only. */
  kind?: string;
  clientAddress?: string;
  clientName?: string | null;
  heloName?: string | null;
}

interface MessagePage {
  messages: MessageView[];
  nextCursor: string | null;
}

type StateCounts = Record<string, number>;

interface Stats {
  states: StateCounts;
  domains: { domain: string; states: StateCounts }[];
  oldestWaitingAgeSeconds: number | null;
  lastHour: Record<string, number>;
  lastDay: Record<string, number>;
}

const RECIPIENT_STATES = [
  'queued',
  'active',
  'deferred',
  'hold',
  'delivered',
  'failed',
  'expired',
] as const;

const ACTIONS = {
  retry: 'Make recipients due now',
  hold: 'Hold recipients until released',
  release: 'Release held recipients',
  delete: 'Delete recipients without a bounce',
  bounce: 'Fail recipients and bounce them to the sender',
} as const;

/** The filter options of `queue list` and of the bulk actions, as the API names them. */
const FILTER_OPTIONS: Record<string, OptionSpec & { query: string }> = {
  domain: { type: 'string', value: 'DOMAIN', query: 'domain', help: 'recipient domain' },
  state: {
    type: 'string',
    value: 'STATE',
    query: 'state',
    choices: RECIPIENT_STATES,
    help: `recipient state: ${RECIPIENT_STATES.join(', ')}`,
  },
  sender: { type: 'string', value: 'ADDRESS', query: 'sender', help: 'envelope sender' },
  recipient: { type: 'string', value: 'ADDRESS', query: 'recipient', help: 'recipient address' },
  'older-than': {
    type: 'string',
    value: 'AGE',
    query: 'olderThan',
    help: 'received before this age (2h, 3d) or ISO 8601 time',
  },
  'newer-than': {
    type: 'string',
    value: 'AGE',
    query: 'newerThan',
    help: 'received after this age (30m) or ISO 8601 time',
  },
};

/** Returns the filter options that were given, under their API names. */
function filterOf(options: CommandInput['options']): Record<string, string> {
  const filter: Record<string, string> = {};
  for (const [name, spec] of Object.entries(FILTER_OPTIONS)) {
    const value = options[name];
    if (typeof value === 'string') {
      filter[spec.query] = value;
    }
  }
  return filter;
}

function messagePath(id: string, suffix = ''): string {
  return `/api/messages/${encodeURIComponent(id)}${suffix}`;
}

function ageOf(receivedAt: string): string | undefined {
  return formatAge((Date.now() - Date.parse(receivedAt)) / 1000);
}

function messageRows(messages: readonly MessageView[]): Cell[][] {
  return messages.flatMap((message) =>
    message.recipients.map((recipient) => [
      message.id,
      ageOf(message.receivedAt),
      message.sender || '<>',
      recipient.address,
      recipient.state,
      recipient.attempts,
      truncate(recipient.lastReply ?? '', 60),
    ]),
  );
}

const MESSAGE_HEADERS = ['ID', 'AGE', 'SENDER', 'RECIPIENT', 'STATE', 'TRIES', 'LAST REPLY'];

async function listMessages(context: Context, { options }: CommandInput): Promise<void> {
  const query: Query = { ...filterOf(options), limit: options.limit as string | undefined };
  let cursor = options.cursor as string | undefined;
  const pages: MessagePage[] = [];
  do {
    const page = (await context.api.request('GET', '/api/messages', {
      query: { ...query, cursor },
    })) as MessagePage;
    pages.push(page);
    cursor = page.nextCursor ?? undefined;
  } while (options.all === true && cursor !== undefined);

  const last = pages[pages.length - 1];
  if (context.json) {
    const messages = pages.flatMap((page) => page.messages);
    context.print(formatJson({ messages, nextCursor: last?.nextCursor ?? null }));
  } else {
    context.print(
      formatTable(
        MESSAGE_HEADERS,
        pages.flatMap((page) => messageRows(page.messages)),
      ),
    );
  }
  if (last?.nextCursor) {
    context.note(`more messages: repeat with --cursor ${last.nextCursor}, or use --all`);
  }
}

function printMessage(context: Context, message: MessageView): void {
  context.print(
    formatFields([
      ['id', message.id],
      ['sender', message.sender || '<>'],
      ['size', `${message.size} bytes`],
      ['received', formatTime(message.receivedAt)],
      ['expires', formatTime(message.expiresAt)],
      ['completed', formatTime(message.completedAt)],
      ['client', clientText(message)],
    ]),
  );
  context.print('');
  context.print(
    formatTable(
      ['RECIPIENT', 'STATE', 'TRIES', 'NEXT ATTEMPT', 'LAST REPLY'],
      message.recipients.map((recipient) => [
        recipient.address,
        recipient.pendingAction
          ? `${recipient.state}, ${recipient.pendingAction} requested`
          : recipient.state,
        recipient.attempts,
        formatTime(recipient.nextAttemptAt),
        recipient.lastReply,
      ]),
    ),
  );
  const attempts = message.recipients.flatMap((recipient) =>
    (recipient.deliveryAttempts ?? []).map((attempt) => ({ ...attempt, to: recipient.address })),
  );
  attempts.sort((a, b) => Date.parse(a.attemptedAt) - Date.parse(b.attemptedAt));
  context.print('');
  context.print(
    formatTable(
      ['ATTEMPTED', 'RECIPIENT', 'STATUS', 'REMOTE MTA', 'REPLY'],
      attempts.map((attempt) => [
        formatTime(attempt.attemptedAt),
        attempt.to,
        attempt.status,
        attempt.remoteMta,
        attempt.reply,
      ]),
    ),
  );
}

/** Returns the client as `Received:` names it: HELO name, then reverse DNS name and address. */
function clientText(message: MessageView): string | undefined {
  if (message.clientAddress === undefined) {
    return undefined;
  }
  const name = message.clientName ? `${message.clientName} ` : '';
  return `${message.heloName ?? '-'} (${name}[${message.clientAddress}])`;
}

function actionCommand(action: keyof typeof ACTIONS): Command {
  return {
    path: ['queue', action],
    args: ['[ID]'],
    summary: `${ACTIONS[action]}, by queue id or filter`,
    details:
      'Give a queue id, or filter options, or --all for every message. A member token acts ' +
      'only on the recipients of its own domain.',
    options: {
      ...FILTER_OPTIONS,
      all: { type: 'boolean', help: 'every message in the spool (administrators only)' },
    },
    async run(context, { args, options }) {
      const id = args[0];
      const filter = filterOf(options);
      const filtered = Object.keys(filter).length > 0;
      if (id !== undefined && (filtered || options.all === true)) {
        throw new UsageError(
          `give either a queue id or filter options, not both; run mxctl queue ${action} --help`,
        );
      }
      if (id === undefined && !filtered && options.all !== true) {
        throw new UsageError(
          `give a queue id, filter options or --all; run mxctl queue ${action} --help`,
        );
      }

      if (id !== undefined) {
        const reply = (await context.api.request('POST', messagePath(id, `/${action}`))) as {
          id: string;
          changed: number;
        };
        context.print(
          context.json
            ? formatJson(reply)
            : `${action}: ${reply.changed} recipients of ${reply.id} changed`,
        );
        return;
      }
      const body = options.all === true ? { all: true } : filter;
      const reply = (await context.api.request('POST', `/api/messages/actions/${action}`, {
        body,
      })) as { action: string; changed: number; messages: number };
      context.print(
        context.json
          ? formatJson(reply)
          : `${action}: ${reply.changed} recipients of ${reply.messages} messages changed`,
      );
    },
  };
}

function printStats(context: Context, stats: Stats): void {
  context.print(
    formatFields([
      ...RECIPIENT_STATES.map((state): [string, Cell] => [state, stats.states[state] ?? 0]),
      ['oldest waiting', formatAge(stats.oldestWaitingAgeSeconds)],
    ]),
  );
  const periods = Object.keys({ ...stats.lastHour, ...stats.lastDay });
  if (periods.length > 0) {
    context.print('');
    context.print(
      formatTable(
        ['', ...periods.map((name) => name.toUpperCase())],
        [
          ['last hour', ...periods.map((name) => stats.lastHour[name] ?? 0)],
          ['last day', ...periods.map((name) => stats.lastDay[name] ?? 0)],
        ],
      ),
    );
  }
  if (stats.domains.length > 0) {
    context.print('');
    context.print(
      formatTable(
        ['DOMAIN', ...RECIPIENT_STATES.map((state) => state.toUpperCase())],
        stats.domains.map((entry) => [
          entry.domain,
          ...RECIPIENT_STATES.map((state) => entry.states[state] ?? 0),
        ]),
      ),
    );
  }
}

export const queueCommands: Command[] = [
  {
    path: ['queue', 'list'],
    args: [],
    summary: 'List spooled messages with one row per matching recipient',
    options: {
      ...FILTER_OPTIONS,
      limit: {
        type: 'string',
        value: 'N',
        help: 'messages per page (API default 50, at most 500)',
      },
      cursor: { type: 'string', value: 'ID', help: 'the page after this queue id (nextCursor)' },
      all: { type: 'boolean', help: 'fetch every page' },
    },
    run: listMessages,
  },
  {
    path: ['queue', 'show'],
    args: ['ID'],
    summary: 'Show one message with its recipients and delivery attempts',
    async run(context, { args }) {
      const message = (await context.api.request('GET', messagePath(args[0] ?? ''))) as MessageView;
      if (context.json) {
        context.print(formatJson(message));
      } else {
        printMessage(context, message);
      }
    },
  },
  {
    path: ['queue', 'raw'],
    args: ['ID'],
    summary: 'Write the stored message (message/rfc822) to standard output',
    details: 'Administrators only.',
    async run(context, { args }) {
      const bytes = await context.api.requestBytes(messagePath(args[0] ?? '', '/raw'));
      context.write(bytes);
    },
  },
  ...(Object.keys(ACTIONS) as (keyof typeof ACTIONS)[]).map(actionCommand),
  {
    path: ['stats'],
    args: [],
    summary: 'Count recipients by state and recent deliveries',
    async run(context) {
      const stats = (await context.api.request('GET', '/api/stats')) as Stats;
      if (context.json) {
        context.print(formatJson(stats));
      } else {
        printStats(context, stats);
      }
    },
  },
];
