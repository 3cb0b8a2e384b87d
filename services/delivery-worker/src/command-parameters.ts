/**
 * ESMTP parameters that nodemailer's send() cannot express, added to its MAIL and RCPT commands
 * on their way out:
 * - SMTPUTF8 (RFC 6531) for a message that needs it although every address is ASCII, because
 *   nodemailer adds it only for non-ASCII addresses;
 * - NOTIFY and ORCPT per recipient (RFC 3461 section 4), because nodemailer sends one set for
 *   every recipient. A relay must pass them on to a next hop that supports DSN.
 *
 * NOTE: this wraps nodemailer's internal `_sendCommand` and reads `_supportedExtensions`, both
 * present in nodemailer 10.6.1. The constructor throws if they are gone after an upgrade.
 */

import type { JobRecipient } from '@secondary-mx/contracts';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

interface ConnectionInternals {
  _sendCommand: (command: string, logText?: string) => void;
  _supportedExtensions: string[];
}

export interface TransactionParameters {
  smtpUtf8: boolean;
  /** RCPT parameters by recipient address, ready to send. */
  recipientParameters: Map<string, string[]>;
}

const MAIL_COMMAND = /^MAIL FROM:<[^>]*>/i;
const RCPT_COMMAND = /^RCPT TO:<([^>]*)>/i;

/**
 * Encodes text as RFC 3461 xtext: `+`, `=` and bytes outside 33-126 become `+XX`.
 * NOTE: a UTF-8 ORCPT would need the utf-8-addr-xtext form of RFC 6533; its bytes are sent as
 * plain xtext here.
 */
export function encodeXtext(text: string): string {
  let encoded = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const printable = byte >= 33 && byte <= 126 && byte !== 0x2b && byte !== 0x3d;
    encoded += printable
      ? String.fromCharCode(byte)
      : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/** Returns the NOTIFY and ORCPT parameters of a recipient, if it has any. */
export function dsnParameters(recipient: JobRecipient): string[] {
  const parameters: string[] = [];
  if (recipient.notify) {
    parameters.push(`NOTIFY=${recipient.notify.join(',')}`);
  }
  if (recipient.orcpt) {
    const separator = recipient.orcpt.indexOf(';');
    const addressType = separator > 0 ? recipient.orcpt.slice(0, separator) : 'rfc822';
    const address = separator > 0 ? recipient.orcpt.slice(separator + 1) : recipient.orcpt;
    parameters.push(`ORCPT=${addressType};${encodeXtext(address)}`);
  }
  return parameters;
}

export class CommandParameters {
  private readonly internals: ConnectionInternals;
  private current: TransactionParameters | undefined;

  constructor(connection: SMTPConnection) {
    const internals = connection as unknown as ConnectionInternals;
    if (
      typeof internals._sendCommand !== 'function' ||
      !Array.isArray(internals._supportedExtensions)
    ) {
      throw new Error(
        'nodemailer SMTPConnection no longer has _sendCommand or _supportedExtensions',
      );
    }
    this.internals = internals;
    const send = internals._sendCommand.bind(connection);
    internals._sendCommand = (command, logText) => send(this.rewrite(command), logText);
  }

  /** Returns whether the server announced an extension in its EHLO reply. */
  supports(extension: string): boolean {
    return this.internals._supportedExtensions.includes(extension);
  }

  /** Sets the parameters of the next transaction; undefined sends nodemailer's commands unchanged. */
  set(parameters: TransactionParameters | undefined): void {
    this.current = parameters;
  }

  private rewrite(command: string): string {
    const parameters = this.current;
    if (!parameters) {
      return command;
    }
    if (MAIL_COMMAND.test(command)) {
      const addSmtpUtf8 =
        parameters.smtpUtf8 && this.supports('SMTPUTF8') && !/\sSMTPUTF8(\s|$)/i.test(command);
      return addSmtpUtf8 ? `${command} SMTPUTF8` : command;
    }
    const rcpt = RCPT_COMMAND.exec(command);
    if (rcpt && this.supports('DSN')) {
      const extra = parameters.recipientParameters.get(rcpt[1] ?? '') ?? [];
      const missing = extra.filter(
        (parameter) => !command.includes(` ${parameter.split('=')[0]}=`),
      );
      return missing.length > 0 ? `${command} ${missing.join(' ')}` : command;
    }
    return command;
  }
}
