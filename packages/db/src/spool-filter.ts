/**
 * Filters of the queue API as SQL conditions on `messages m` and `recipients r`, shared by the
 * listing and the actions so both select the same recipients.
 */
import { domainToUnicode } from 'node:url';
import type { RecipientState } from '@secondary-mx/contracts';

/** An envelope address to match: the local part exactly, the domain in any case. */
export interface AddressMatch {
  localPart: string;
  /** Lower-case A-label form. */
  domain: string;
}

export interface SpoolFilter {
  queueId?: string | undefined;
  /** Recipient domain, lower-case A-label form. */
  domain?: string | undefined;
  state?: RecipientState | undefined;
  /** Envelope sender. The empty string matches the null reverse-path `<>`. */
  sender?: AddressMatch | '' | undefined;
  recipient?: AddressMatch | undefined;
  receivedBefore?: Date | undefined;
  receivedAfter?: Date | undefined;
}

/** Positional parameters of one statement, numbered in the order they are added. */
export class SqlParameters {
  readonly values: unknown[] = [];

  /** Adds a value and returns its placeholder, such as `$3`. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * Returns the lower-cased forms in which the address may be stored: its domain as the A-label
 * and, for an internationalized domain, as the U-label that an SMTPUTF8 session may have used.
 */
function storedForms(match: AddressMatch): string[] {
  const forms = new Set([`${match.localPart}@${match.domain}`.toLowerCase()]);
  const unicode = domainToUnicode(match.domain);
  if (unicode !== '') {
    forms.add(`${match.localPart}@${unicode}`.toLowerCase());
  }
  return [...forms];
}

/**
 * Matches an address column: `lower()` against every stored form, which the index on
 * `lower(column)` serves, then the part before the last `@` exactly.
 */
function addressCondition(column: string, match: AddressMatch, params: SqlParameters): string {
  const forms = params.add(storedForms(match));
  const localPart = params.add(match.localPart);
  return (
    `(lower(${column}) = ANY(${forms}::text[]) AND ` +
    `left(${column}, length(${column}) - strpos(reverse(${column}), '@')) = ${localPart})`
  );
}

/** Returns conditions on `messages m`. An empty list matches every message. */
export function messageConditions(filter: SpoolFilter, params: SqlParameters): string[] {
  const conditions: string[] = [];
  if (filter.queueId !== undefined) {
    conditions.push(`m.id = ${params.add(filter.queueId)}`);
  }
  if (filter.sender === '') {
    conditions.push(`m.sender = ''`);
  } else if (filter.sender !== undefined) {
    conditions.push(addressCondition('m.sender', filter.sender, params));
  }
  if (filter.receivedBefore !== undefined) {
    conditions.push(`m.received_at < ${params.add(filter.receivedBefore)}`);
  }
  if (filter.receivedAfter !== undefined) {
    conditions.push(`m.received_at > ${params.add(filter.receivedAfter)}`);
  }
  return conditions;
}

/** Returns conditions on `recipients r`. An empty list matches every recipient. */
export function recipientConditions(filter: SpoolFilter, params: SqlParameters): string[] {
  const conditions: string[] = [];
  if (filter.domain !== undefined) {
    conditions.push(`r.domain = ${params.add(filter.domain)}`);
  }
  if (filter.state !== undefined) {
    conditions.push(`r.state = ${params.add(filter.state)}::recipient_state`);
  }
  if (filter.recipient !== undefined) {
    conditions.push(`r.domain = ${params.add(filter.recipient.domain)}`);
    conditions.push(addressCondition('r.address', filter.recipient, params));
  }
  return conditions;
}

/** Joins conditions with AND, or returns `true` when there are none. */
export function allOf(conditions: string[]): string {
  return conditions.length === 0 ? 'true' : conditions.join(' AND ');
}
