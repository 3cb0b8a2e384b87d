/**
 * Parsing of the queue filters that GET /api/messages takes as query parameters and the bulk
 * actions take as a JSON body. Each error message names the field and the expected form.
 */
import { normalizeDomain } from '@secondary-mx/address';
import { parseDuration } from '@secondary-mx/config';
import { QUEUE_ID_PATTERN, RECIPIENT_STATES, type RecipientState } from '@secondary-mx/contracts';
import type { AddressMatch, SpoolFilter } from '@secondary-mx/db';

export const FILTER_FIELDS = [
  'domain',
  'state',
  'sender',
  'recipient',
  'olderThan',
  'newerThan',
] as const;

export interface FilterFields {
  domain?: string | undefined;
  state?: RecipientState | undefined;
  sender?: string | undefined;
  recipient?: string | undefined;
  olderThan?: string | undefined;
  newerThan?: string | undefined;
}

/** A filter value that cannot be used; the message names the field. */
export class FilterError extends Error {
  override name = 'FilterError';
}

/** JSON schema properties of the filter fields, shared by the query string and the body. */
export const FILTER_PROPERTIES = {
  domain: {
    type: 'string',
    minLength: 1,
    maxLength: 253,
    description: 'recipient domain, IDN allowed',
  },
  state: {
    type: 'string',
    enum: [...RECIPIENT_STATES],
    description: 'recipient state',
  },
  sender: {
    type: 'string',
    minLength: 1,
    maxLength: 322,
    description:
      'envelope sender: the local part matches exactly, the domain in any case; `<>` is the null sender',
  },
  recipient: {
    type: 'string',
    minLength: 1,
    maxLength: 322,
    description: 'recipient address: the local part matches exactly, the domain in any case',
  },
  olderThan: {
    type: 'string',
    minLength: 1,
    maxLength: 64,
    description:
      'received before: a duration back from now (`2h`, `3d`, `1h30m`) or an ISO 8601 date or ' +
      'timestamp with zone (`2025-12-01`, `2025-12-01T08:00:00Z`; write `+` as `%2B` in a URL)',
  },
  newerThan: {
    type: 'string',
    minLength: 1,
    maxLength: 64,
    description: 'received after: a duration back from now or an ISO 8601 timestamp, as olderThan',
  },
} as const;

/** A date alone, or a date and time with `Z` or a numeric offset, so no time is read as local. */
const ISO_TIMESTAMP =
  /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/i;

function parseTimeBound(field: string, value: string, now: Date): Date {
  const trimmed = value.trim();
  const duration = parseDuration(trimmed);
  if (duration !== undefined) {
    return new Date(now.getTime() - duration);
  }
  const timestamp = ISO_TIMESTAMP.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(timestamp)) {
    throw new FilterError(
      `${field} ${JSON.stringify(value)} is neither a duration such as 2h or 3d nor an ISO 8601 ` +
        'timestamp such as 2025-12-01T08:00:00Z',
    );
  }
  return new Date(timestamp);
}

function parseAddress(field: string, value: string): AddressMatch {
  let address = value.trim();
  if (address.startsWith('<') && address.endsWith('>')) {
    address = address.slice(1, -1);
  }
  const at = address.lastIndexOf('@');
  const domain = at > 0 ? normalizeDomain(address.slice(at + 1)) : undefined;
  if (!domain) {
    throw new FilterError(
      `${field} ${JSON.stringify(value)} is not an address such as alice@example.org`,
    );
  }
  return { localPart: address.slice(0, at), domain };
}

/** Converts the filter fields into a SpoolFilter. Throws FilterError naming the invalid field. */
export function parseFilter(fields: FilterFields, now = new Date()): SpoolFilter {
  const filter: SpoolFilter = {};
  if (fields.domain !== undefined) {
    filter.domain = normalizeDomain(fields.domain);
    if (!filter.domain) {
      throw new FilterError(`domain ${JSON.stringify(fields.domain)} is not a valid domain name`);
    }
  }
  if (fields.state !== undefined) {
    filter.state = fields.state;
  }
  if (fields.sender !== undefined) {
    filter.sender = fields.sender.trim() === '<>' ? '' : parseAddress('sender', fields.sender);
  }
  if (fields.recipient !== undefined) {
    filter.recipient = parseAddress('recipient', fields.recipient);
  }
  if (fields.olderThan !== undefined) {
    filter.receivedBefore = parseTimeBound('olderThan', fields.olderThan, now);
  }
  if (fields.newerThan !== undefined) {
    filter.receivedAfter = parseTimeBound('newerThan', fields.newerThan, now);
  }
  return filter;
}

/**
 * Returns the queue id in canonical upper case, or undefined when the text is not one. Crockford
 * base32 is case-insensitive, so a lower-case id is accepted.
 */
export function parseQueueId(text: string): string | undefined {
  const upper = text.toUpperCase();
  return QUEUE_ID_PATTERN.test(upper) ? upper : undefined;
}
