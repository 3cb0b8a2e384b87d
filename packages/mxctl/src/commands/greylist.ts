/** `mxctl greylist ...`: triplet lookups and the static whitelist. */
import { type Command, UsageError } from '../cli.ts';
import { type Cell, formatFields, formatJson, formatTable, formatTime } from '../output.ts';

interface TripletState {
  state: string;
  reason?: string;
  whitelistEntry?: { kind: string; value: string; source: string };
  firstSeen?: string;
  passAfter?: string;
  lastPassed?: string;
  expiresAt?: string;
  clientGroup: string;
  sender: string;
  recipient: string;
  spf: string;
  key: string;
  groupKey: string;
  groupPasses: number;
  autoWhitelistAfter: number;
}

interface WhitelistEntry {
  kind: string;
  value: string;
  note: string | null;
  createdAt: string | null;
  source: string;
}

const KINDS = ['client', 'name', 'sender'];

const KIND_HELP =
  'KIND is client (an IP address or network such as 192.0.2.0/24), name (a suffix of ' +
  'forward-confirmed client names such as relay.example) or sender (an address, or ' +
  '@example.com for a domain and its subdomains).';

function checkKind(kind: string, command: string): string {
  if (!KINDS.includes(kind)) {
    throw new UsageError(
      `KIND must be one of ${KINDS.join(', ')}, not "${kind}"; run mxctl ${command} --help`,
    );
  }
  return kind;
}

function entryText(entry: WhitelistEntry): string {
  return `${entry.kind} ${entry.value}`;
}

export const greylistCommands: Command[] = [
  {
    path: ['greylist', 'lookup'],
    args: [],
    summary: 'Show the greylist state of one triplet without recording an attempt',
    details:
      'The client group depends on SPF and on the forward-confirmed reverse DNS name, which ' +
      'the lookup does not resolve: pass --name for a client that has one.',
    options: {
      client: { type: 'string', value: 'IP', required: true, help: 'client IP address' },
      sender: {
        type: 'string',
        value: 'ADDRESS',
        required: true,
        help: "envelope sender; '' or '<>' for the null sender",
      },
      recipient: { type: 'string', value: 'ADDRESS', required: true, help: 'recipient address' },
      name: { type: 'string', value: 'HOST', help: "the client's forward-confirmed DNS name" },
      helo: { type: 'string', value: 'HOST', help: 'the name the client gave in EHLO' },
    },
    async run(context, { options }) {
      const lookup = (await context.api.request('GET', '/api/greylist/triplets', {
        query: {
          client: options.client as string,
          sender: options.sender as string,
          recipient: options.recipient as string,
          name: options.name as string | undefined,
          helo: options.helo as string | undefined,
        },
      })) as TripletState;
      if (context.json) {
        context.print(formatJson(lookup));
        return;
      }
      const entry = lookup.whitelistEntry;
      const fields: [string, Cell][] = [
        ['state', lookup.reason ? `${lookup.state} (${lookup.reason})` : lookup.state],
      ];
      if (entry) {
        fields.push(['whitelist entry', `${entry.kind} ${entry.value} from ${entry.source}`]);
      }
      fields.push(
        ['first seen', formatTime(lookup.firstSeen)],
        ['passes after', formatTime(lookup.passAfter)],
        ['last passed', formatTime(lookup.lastPassed)],
        ['expires', formatTime(lookup.expiresAt)],
        ['client group', lookup.clientGroup],
        ['sender', lookup.sender || '<>'],
        ['recipient', lookup.recipient],
        ['SPF', lookup.spf],
        [
          'group passes',
          lookup.autoWhitelistAfter > 0
            ? `${lookup.groupPasses} of ${lookup.autoWhitelistAfter} for the auto-whitelist`
            : `${lookup.groupPasses} (never auto-whitelisted)`,
        ],
        ['key', lookup.key],
        ['group key', lookup.groupKey],
      );
      context.print(formatFields(fields));
    },
  },
  {
    path: ['greylist', 'whitelist', 'list'],
    args: [],
    summary: 'List the static whitelist, entries from settings first',
    async run(context) {
      const reply = (await context.api.request('GET', '/api/greylist/whitelist')) as {
        entries: WhitelistEntry[];
      };
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      const rows = reply.entries.map((entry) => [
        entry.kind,
        entry.value,
        entry.source,
        formatTime(entry.createdAt),
        entry.note,
      ]);
      context.print(formatTable(['KIND', 'VALUE', 'SOURCE', 'ADDED', 'NOTE'], rows));
    },
  },
  {
    path: ['greylist', 'whitelist', 'add'],
    args: ['KIND', 'VALUE'],
    summary: 'Add a static whitelist entry, used by every replica within a second',
    details: KIND_HELP,
    options: { note: { type: 'string', value: 'TEXT', help: 'why the entry exists' } },
    async run(context, { args, options }) {
      const kind = checkKind(args[0] ?? '', 'greylist whitelist add');
      const { status, body } = await context.api.requestWithStatus(
        'POST',
        '/api/greylist/whitelist',
        { body: { kind, value: args[1], note: options.note } },
      );
      const entry = body as WhitelistEntry;
      // 201 when added, 200 when the entry was listed already.
      const added = status === 201;
      context.print(
        context.json
          ? formatJson(entry)
          : `${added ? 'added' : 'already listed'}: ${entryText(entry)}`,
      );
    },
  },
  {
    path: ['greylist', 'whitelist', 'remove'],
    args: ['KIND', 'VALUE'],
    summary: 'Remove a static whitelist entry that was added with mxctl or the API',
    details: `${KIND_HELP} Entries from the MX_GREYLIST_WHITELIST_* settings are removed there.`,
    async run(context, { args }) {
      const kind = checkKind(args[0] ?? '', 'greylist whitelist remove');
      const path = `/api/greylist/whitelist/${kind}/${encodeURIComponent(args[1] ?? '')}`;
      const entry = (await context.api.request('DELETE', path)) as WhitelistEntry;
      context.print(context.json ? formatJson(entry) : `removed: ${entryText(entry)}`);
    },
  },
];
