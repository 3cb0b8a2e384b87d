/**
 * Checks the ESMTP parameters of MAIL FROM and RCPT TO against what ingress advertises and
 * what queue-store stores. smtp-server 3.21 validates SIZE, BODY, SMTPUTF8, RET and NOTIFY
 * itself, but it passes unknown parameters on, and it decodes xtext values (`+XX` with
 * upper-case hex) without rejecting a `+` that starts no escape. So ingress keeps the raw
 * parameter text of each command and checks it here:
 *
 * - a parameter that ingress does not advertise gets `555 5.5.4` (RFC 5321 section 4.1.1.11);
 * - ENVID and ORCPT must be xtext (RFC 3461 section 4), ORCPT as `addr-type;xtext`, and at
 *   most 100 and 500 characters long (RFC 3461 sections 4.4 and 4.2), else `501 5.5.4`.
 *   queue-store's spool.store schema has the same limits on the decoded values, which are
 *   never longer than the raw ones.
 */
import type { SMTPServerAddress } from 'smtp-server';
import { smtpError } from './enhanced-codes.ts';
import { connectionPrototype } from './smtp-connection-patch.ts';

/** Parameters advertised in EHLO: SIZE, 8BITMIME, SMTPUTF8 and DSN (RFC 3461). */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID']);
const RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);

/** RFC 3461 section 4.4. */
export const MAX_ENVID_LENGTH = 100;
/** RFC 3461 section 4.2. */
export const MAX_ORCPT_LENGTH = 500;

/** xtext of RFC 3461 section 4: `!` to `~` except `+` and `=`, or `+` and two upper-case hex digits. */
const XTEXT = /^(?:[!-*,-<>-~]|\+[0-9A-F]{2})*$/;
/** xtext plus UTF-8, for `ORCPT=utf-8;...` in an SMTPUTF8 transaction (RFC 6533 section 3). */
const UTF8_XTEXT = /^(?:[!-*,-<>-~\u{80}-\u{10FFFF}]|\+[0-9A-F]{2})*$/u;
/** addr-type is an atom (RFC 3461 section 4.2, RFC 5322 atext). */
const ADDR_TYPE = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+$/i;

/** Parameter name to raw value, or true for a parameter without a value. */
export type RawParameters = Map<string, string | true>;

/** The parsed command as smtp-server returns it, with the raw parameters that ingress adds. */
interface ParsedAddressCommand {
  rawParameters?: RawParameters;
}

type ParseAddressCommand = (name: unknown, command: unknown) => ParsedAddressCommand | false;

let installed = false;

/**
 * Splits the parameters off a MAIL or RCPT command line the way smtp-server 3.21 does in
 * `_parseAddressCommand`, but keeps each value as sent.
 */
export function parseRawParameters(command: string): RawParameters {
  const parts = command.split(':').slice(1).join(':').trim().split(/\s+/).slice(1);
  const parameters: RawParameters = new Map();
  for (const part of parts) {
    const [name = '', ...value] = part.split('=');
    if (name.trim() === '') {
      continue;
    }
    parameters.set(name.toUpperCase(), value.join('=') || true);
  }
  return parameters;
}

/** Makes smtp-server keep the raw parameters of MAIL and RCPT on the address it passes on. */
export function installRawParameters(): void {
  if (installed) {
    return;
  }
  installed = true;
  const prototype = connectionPrototype as unknown as { _parseAddressCommand: ParseAddressCommand };
  const original = prototype._parseAddressCommand;
  prototype._parseAddressCommand = function parseAddressCommand(this: unknown, name, command) {
    const parsed = original.call(this, name, command);
    if (parsed) {
      Object.defineProperty(parsed, 'rawParameters', {
        value: parseRawParameters(String(command ?? '')),
        enumerable: false,
      });
    }
    return parsed;
  };
}

function rawParameters(address: SMTPServerAddress): RawParameters {
  return (address as ParsedAddressCommand).rawParameters ?? new Map();
}

function rejectUnsupported(parameters: RawParameters, supported: Set<string>): void {
  for (const name of parameters.keys()) {
    if (!supported.has(name)) {
      throw smtpError(555, '5.5.4', `Unsupported option: ${name}`);
    }
  }
}

/** Throws 555 for an unsupported MAIL FROM parameter and 501 for an invalid ENVID. */
export function checkMailParameters(address: SMTPServerAddress): void {
  const parameters = rawParameters(address);
  rejectUnsupported(parameters, MAIL_PARAMETERS);

  const envid = parameters.get('ENVID');
  if (typeof envid === 'string') {
    if (!XTEXT.test(envid)) {
      throw smtpError(501, '5.5.4', 'invalid ENVID: not xtext, encode + and = as +2B and +3D');
    }
    if (envid.length > MAX_ENVID_LENGTH) {
      throw smtpError(
        501,
        '5.5.4',
        `invalid ENVID: ${envid.length} characters, more than the ${MAX_ENVID_LENGTH} allowed`,
      );
    }
  }
}

/** Throws 555 for an unsupported RCPT TO parameter and 501 for an invalid ORCPT. */
export function checkRcptParameters(address: SMTPServerAddress, smtpUtf8: boolean): void {
  const parameters = rawParameters(address);
  rejectUnsupported(parameters, RCPT_PARAMETERS);

  const orcpt = parameters.get('ORCPT');
  if (typeof orcpt === 'string') {
    const separator = orcpt.indexOf(';');
    const addrType = orcpt.slice(0, separator);
    const text = orcpt.slice(separator + 1);
    const utf8 = smtpUtf8 && addrType.toLowerCase() === 'utf-8';
    const syntax = utf8 ? UTF8_XTEXT : XTEXT;
    if (separator < 0 || !ADDR_TYPE.test(addrType) || text === '' || !syntax.test(text)) {
      throw smtpError(
        501,
        '5.5.4',
        'invalid ORCPT: expected addr-type;xtext such as rfc822;user@example.org',
      );
    }
    if (orcpt.length > MAX_ORCPT_LENGTH) {
      throw smtpError(
        501,
        '5.5.4',
        `invalid ORCPT: ${orcpt.length} characters, more than the ${MAX_ORCPT_LENGTH} allowed`,
      );
    }
  }
}
