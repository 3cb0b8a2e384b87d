/** RFC 3464 section 2.3.3 action values, without `expanded` because we never expand aliases. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnRecipient {
  /** The envelope address, such as `bob@member.example`. */
  finalRecipient: string;
  /**
   * The ORCPT parameter as received, `addr-type;xtext` (RFC 3461 section 4.2), such as
   * `rfc822;bob+2Bx@member.example`. Its xtext is decoded for the Original-Recipient field.
   */
  originalRecipient?: string;
  action: DsnAction;
  /** RFC 3463 status code, such as `5.1.1` or `4.4.7`. */
  status: string;
  /** Host name of the server that sent the reply in `diagnosticCode`. */
  remoteMta?: string;
  /** The full SMTP reply, such as `550 5.1.1 <bob@member.example>: no such user`. */
  diagnosticCode?: string;
  lastAttemptDate?: Date;
  /** End of the retry period, written only for action `delayed` (RFC 3464 section 2.3.9). */
  willRetryUntil?: Date;
}

export interface DsnInput {
  /** Our host name, used in Reporting-MTA, From and Message-ID. */
  reportingMta: string;
  /** Queue id of the original message, named in the text part and in X-Original-Queue-ID. */
  queueId: string;
  /** When we received the original message. */
  arrivalDate: Date;
  /** The ENVID parameter as received (xtext, RFC 3461 section 4.4). */
  envid?: string;
  /** The original envelope sender, which receives the DSN. Must not be empty. */
  sender: string;
  /** Every recipient that this event reports on, at least one. */
  recipients: DsnRecipient[];
  /** The stored message bytes, with CRLF line ends. */
  original: Buffer;
  /** The RFC 3461 RET parameter of the original message. */
  ret?: 'FULL' | 'HDRS';
  /** Without `ret`, the full message is returned only up to this many bytes, else its header. */
  fullContentLimit: number;
  /** The time of the DSN, normally now. */
  date: Date;
}

export interface Dsn {
  message: Buffer;
  /** The BODY parameter to send the DSN with: `8BITMIME` when any byte of it is above 127. */
  bodyType: '7BIT' | '8BITMIME';
  /**
   * Whether the DSN's own header contains non-ASCII text, which happens only for a non-ASCII
   * sender address in To:. Such a DSN must be sent with SMTPUTF8 (RFC 6531).
   */
  smtpUtf8: boolean;
  subject: string;
}

/** Error for input that cannot produce a valid DSN. The message names the invalid value. */
export class DsnInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DsnInputError';
  }
}
