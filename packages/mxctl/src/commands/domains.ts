/** `mxctl domains ...` and `mxctl flush`: member domains, their approval and their checks. */
import { type Command, CommandFailedError, type Context, UsageError } from '../cli.ts';
import { type Cell, formatFields, formatJson, formatTable, formatTime } from '../output.ts';

interface DomainView {
  domain: string;
  memberNumber: string;
  state: string;
  primaryHosts: string[];
  recipientCheck: string;
  localPartCaseSensitive: boolean;
  greylist: boolean;
  contact?: string | null;
  note?: string | null;
  requestedAt: string;
  approvedAt: string | null;
  updatedAt: string;
}

interface ApproveReply {
  domain: DomainView;
  dnsRecord: string;
  memberToken?: { id: string; token: string } | null;
}

interface DomainEvent {
  at: string;
  actor: string;
  action: string;
  fromState: string | null;
  toState: string | null;
  reason: string | null;
}

interface DnsCheck {
  domain: string;
  listed: boolean;
  ourPreference: number | null;
  primary: {
    host: string;
    port: number;
    /** Null for a primaryHosts entry, which has no MX preference. */
    preference: number | null;
    source: 'mx' | 'primaryHosts';
    smtp: string;
    reply?: string;
  } | null;
  records: { host: string; preference: number }[];
  preferenceOk: boolean;
  ok: boolean;
  problems: string[];
  summary: string;
}

const DOMAIN_STATES = ['pending', 'approved', 'suspended'];

/** Returns the path of a domain's route, with the name URL-encoded (IDN names are allowed). */
function domainPath(domain: string, suffix = ''): string {
  return `/api/domains/${encodeURIComponent(domain)}${suffix}`;
}

function onOff(value: boolean): string {
  return value ? 'on' : 'off';
}

function domainFields(domain: DomainView): [string, Cell][] {
  const fields: [string, Cell][] = [
    ['domain', domain.domain],
    ['state', domain.state],
    ['member number', domain.memberNumber],
  ];
  if (domain.contact !== undefined) {
    fields.push(['contact', domain.contact]);
  }
  if (domain.note !== undefined) {
    fields.push(['note', domain.note]);
  }
  fields.push(
    ['greylisting', onOff(domain.greylist)],
    ['recipient check', domain.recipientCheck],
    ['local part case', domain.localPartCaseSensitive ? 'sensitive' : 'insensitive'],
    [
      'primary hosts',
      domain.primaryHosts.length > 0 ? domain.primaryHosts.join(', ') : 'MX records',
    ],
    ['requested', formatTime(domain.requestedAt)],
    ['approved', formatTime(domain.approvedAt)],
    ['updated', formatTime(domain.updatedAt)],
  );
  return fields;
}

function printDomain(context: Context, domain: DomainView): void {
  context.print(formatFields(domainFields(domain)));
}

/** Parses an on/off option; the option's choices have been checked already. */
function parseSwitch(value: string): boolean {
  return ['on', 'true', 'yes'].includes(value);
}

const SWITCH_CHOICES = ['on', 'off', 'true', 'false', 'yes', 'no'];

export const domainCommands: Command[] = [
  {
    path: ['domains', 'list'],
    args: [],
    summary: 'List member domains',
    options: {
      state: {
        type: 'string',
        value: 'STATE',
        choices: DOMAIN_STATES,
        help: `only domains in this state: ${DOMAIN_STATES.join(', ')}`,
      },
    },
    async run(context, { options }) {
      const reply = (await context.api.request('GET', '/api/domains', {
        query: { state: options.state as string | undefined },
      })) as { domains: DomainView[] };
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      const rows = reply.domains.map((domain) => [
        domain.domain,
        domain.state,
        domain.memberNumber,
        onOff(domain.greylist),
        domain.recipientCheck,
        domain.primaryHosts.join(',') || 'MX',
        formatTime(domain.requestedAt),
      ]);
      context.print(
        formatTable(
          ['DOMAIN', 'STATE', 'MEMBER', 'GREYLIST', 'RCPT CHECK', 'PRIMARY', 'REQUESTED'],
          rows,
        ),
      );
    },
  },
  {
    path: ['domains', 'show'],
    args: ['DOMAIN'],
    summary: 'Show one domain and its settings',
    async run(context, { args }) {
      const domain = (await context.api.request('GET', domainPath(args[0] ?? ''))) as DomainView;
      context.print(context.json ? formatJson(domain) : formatFields(domainFields(domain)));
    },
  },
  {
    path: ['domains', 'request'],
    args: ['DOMAIN'],
    summary: 'File a request for a member domain, which starts as pending',
    options: {
      member: { type: 'string', value: 'NUMBER', required: true, help: 'member number' },
      contact: { type: 'string', value: 'ADDRESS', help: "the member's contact address" },
      note: { type: 'string', value: 'TEXT', help: 'a note for the administrators' },
    },
    async run(context, { args, options }) {
      const body: Record<string, string> = {
        domain: args[0] ?? '',
        memberNumber: options.member as string,
      };
      if (options.contact !== undefined) {
        body.contact = options.contact as string;
      }
      if (options.note !== undefined) {
        body.note = options.note as string;
      }
      const domain = (await context.api.request('POST', '/api/domains', { body })) as DomainView;
      context.print(context.json ? formatJson(domain) : formatFields(domainFields(domain)));
    },
  },
  {
    path: ['domains', 'approve'],
    args: ['DOMAIN'],
    summary: 'Approve a pending or suspended domain, so that it is relayed',
    details:
      'Prints the MX record the member must publish and, when one was issued, the member ' +
      'token. The token is shown only this once.',
    options: { reason: { type: 'string', value: 'TEXT', help: 'reason, kept in the events' } },
    async run(context, { args, options }) {
      const reply = (await context.api.request('POST', domainPath(args[0] ?? '', '/approve'), {
        body: options.reason === undefined ? undefined : { reason: options.reason },
      })) as ApproveReply | DomainView;
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      if (!('dnsRecord' in reply)) {
        printDomain(context, reply);
        return;
      }
      const fields = domainFields(reply.domain);
      fields.push(['DNS record', reply.dnsRecord]);
      if (reply.memberToken) {
        fields.push(['member token id', reply.memberToken.id]);
        fields.push(['member token', reply.memberToken.token]);
      }
      context.print(formatFields(fields));
      if (reply.memberToken) {
        context.note('The member token is shown only once: hand it to the member now.');
      }
    },
  },
  {
    path: ['domains', 'suspend'],
    args: ['DOMAIN'],
    summary: 'Suspend an approved domain: it is no longer relayed',
    options: { reason: { type: 'string', value: 'TEXT', help: 'reason, kept in the events' } },
    async run(context, { args, options }) {
      const domain = (await context.api.request('POST', domainPath(args[0] ?? '', '/suspend'), {
        body: options.reason === undefined ? undefined : { reason: options.reason },
      })) as DomainView;
      context.print(context.json ? formatJson(domain) : formatFields(domainFields(domain)));
    },
  },
  {
    path: ['domains', 'remove'],
    args: ['DOMAIN'],
    summary: 'Remove a domain and handle its waiting mail',
    details:
      'With --waiting refuse (the default), a domain with waiting mail is not removed. ' +
      'bounce sends each waiting message back to its sender, drop deletes it silently.',
    options: {
      waiting: {
        type: 'string',
        value: 'ACTION',
        choices: ['refuse', 'bounce', 'drop'],
        help: 'what to do with waiting mail: refuse, bounce or drop',
      },
      reason: { type: 'string', value: 'TEXT', help: 'reason, kept in the events' },
    },
    async run(context, { args, options }) {
      const domain = args[0] ?? '';
      const reply = (await context.api.request('DELETE', domainPath(domain), {
        query: {
          waiting: options.waiting as string | undefined,
          reason: options.reason as string | undefined,
        },
      })) as { domain: string; removed: boolean; bounced: number; dropped: number };
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      context.print(
        `removed ${reply.domain}: ${reply.bounced} waiting messages bounced, ${reply.dropped} dropped`,
      );
    },
  },
  {
    path: ['domains', 'events'],
    args: ['DOMAIN'],
    summary: "Show a domain's history of requests, approvals and changes",
    async run(context, { args }) {
      const reply = (await context.api.request('GET', domainPath(args[0] ?? '', '/events'))) as {
        events: DomainEvent[];
      };
      if (context.json) {
        context.print(formatJson(reply));
        return;
      }
      const rows = reply.events.map((event) => [
        formatTime(event.at),
        event.actor,
        event.action,
        event.fromState,
        event.toState,
        event.reason,
      ]);
      context.print(formatTable(['AT', 'ACTOR', 'ACTION', 'FROM', 'TO', 'REASON'], rows));
    },
  },
  {
    path: ['domains', 'dns-check'],
    args: ['DOMAIN'],
    summary: "Check a domain's MX records and its primary's SMTP reply",
    details: 'Exits with status 1 when the check finds a problem.',
    async run(context, { args }) {
      const check = (await context.api.request(
        'GET',
        domainPath(args[0] ?? '', '/dns-check'),
      )) as DnsCheck;
      if (context.json) {
        context.print(formatJson(check));
      } else {
        printDnsCheck(context, check);
      }
      if (!check.ok) {
        throw new CommandFailedError(`the DNS check of ${check.domain} found problems`);
      }
    },
  },
  {
    path: ['domains', 'set'],
    args: ['DOMAIN'],
    summary: "Change a domain's greylisting, recipient check or next hops",
    options: {
      greylist: {
        type: 'string',
        value: 'on|off',
        choices: SWITCH_CHOICES,
        help: "greylist the domain's recipients",
      },
      'recipient-check': {
        type: 'string',
        value: 'CHECK',
        choices: ['none', 'list', 'verify'],
        help: 'how RCPT TO is checked: none, list or verify',
      },
      'case-sensitive': {
        type: 'string',
        value: 'on|off',
        choices: SWITCH_CHOICES,
        help: 'match recipient-list local parts case-sensitively',
      },
      'primary-hosts': {
        type: 'string',
        value: 'HOSTS',
        help: 'comma-separated next hops (host or host:port); empty to use the MX records',
      },
      reason: { type: 'string', value: 'TEXT', help: 'reason, kept in the events' },
    },
    async run(context, { args, options }) {
      const body: Record<string, unknown> = {};
      if (options.greylist !== undefined) {
        body.greylist = parseSwitch(options.greylist as string);
      }
      if (options['recipient-check'] !== undefined) {
        body.recipientCheck = options['recipient-check'];
      }
      if (options['case-sensitive'] !== undefined) {
        body.localPartCaseSensitive = parseSwitch(options['case-sensitive'] as string);
      }
      if (options['primary-hosts'] !== undefined) {
        body.primaryHosts = (options['primary-hosts'] as string)
          .split(',')
          .map((host) => host.trim())
          .filter((host) => host !== '');
      }
      if (Object.keys(body).length === 0) {
        throw new UsageError(
          'give at least one of --greylist, --recipient-check, --case-sensitive and ' +
            '--primary-hosts; run mxctl domains set --help',
        );
      }
      if (options.reason !== undefined) {
        body.reason = options.reason;
      }
      const domain = (await context.api.request('PATCH', domainPath(args[0] ?? ''), {
        body,
      })) as DomainView;
      context.print(context.json ? formatJson(domain) : formatFields(domainFields(domain)));
    },
  },
  {
    path: ['flush'],
    args: ['DOMAIN'],
    summary: "Deliver a domain's queued and deferred mail now",
    async run(context, { args }) {
      const reply = (await context.api.request('POST', domainPath(args[0] ?? '', '/flush'))) as {
        domain: string;
        scheduled: number;
      };
      context.print(
        context.json
          ? formatJson(reply)
          : `scheduled ${reply.scheduled} recipients of ${reply.domain} for delivery now`,
      );
    },
  },
];

function primaryText(primary: NonNullable<DnsCheck['primary']>): string {
  if (primary.source === 'primaryHosts') {
    return `${primary.host}:${primary.port} (primaryHosts override)`;
  }
  return `${primary.host} (preference ${primary.preference})`;
}

function printDnsCheck(context: Context, check: DnsCheck): void {
  const primary = check.primary;
  const fields: [string, Cell][] = [
    ['domain', check.domain],
    ['result', check.ok ? 'ok' : 'problems found'],
    ['summary', check.summary],
    ['we are listed', check.listed ? `yes, preference ${check.ourPreference}` : 'no'],
    ['preference ok', check.preferenceOk ? 'yes' : 'no'],
    ['primary', primary ? `${primaryText(primary)}, SMTP ${primary.smtp}` : 'none'],
  ];
  if (primary?.reply) {
    fields.push(['primary reply', primary.reply]);
  }
  context.print(formatFields(fields));
  context.print('');
  context.print(
    formatTable(
      ['PREFERENCE', 'MX HOST'],
      check.records.map((record) => [record.preference, record.host]),
    ),
  );
  if (check.problems.length > 0) {
    context.print('');
    context.print(check.problems.map((problem) => `problem: ${problem}`).join('\n'));
  }
}
