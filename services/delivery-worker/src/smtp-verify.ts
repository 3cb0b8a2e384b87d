/**
 * Asks a domain's next hops whether they take a recipient, without sending mail: connect,
 * EHLO and STARTTLS as a delivery does, then `MAIL FROM:<>`, `RCPT TO`, `RSET` and `QUIT`.
 * The first reply to RCPT decides: 2xx valid, 5xx invalid, anything else unknown. A host that
 * cannot be reached or rejects the null sender is skipped for the next one.
 */
import type { RecipientVerifyReply } from '@secondary-mx/contracts';
import type { NextHop } from './next-hop.ts';
import { parseReply } from './reply-classification.ts';
import { describeSessionError, openSession, type SmtpSession } from './smtp-session.ts';

export type VerifyResult = RecipientVerifyReply['result'];

export interface VerifyOptions {
  heloName: string;
  /** Limit in milliseconds for the TCP connect, greeting, EHLO and STARTTLS. */
  connectTimeoutMs: number;
}

export interface VerifyAnswer {
  result: VerifyResult;
  /** The reply to RCPT on one line, or every failed attempt when no host replied to it. */
  reply: string;
  /** Host name of the next hop that replied to RCPT. */
  remoteMta?: string;
  /** The last address tried as `host[address]:port`. */
  relay?: string;
}

/** The result of each reply class to RCPT; other classes leave the recipient unknown. */
const RESULT_BY_CLASS: Record<string, VerifyResult> = { '2': 'valid', '5': 'invalid' };

/** How long RSET and QUIT may take at the end; their replies do not matter. */
const CLOSING_TIMEOUT_MS = 2000;

function hasNonAscii(text: string): boolean {
  return [...text].some((char) => char.charCodeAt(0) > 0x7f);
}

function oneLine(raw: string): string {
  const parsed = parseReply(raw);
  return parsed ? `${parsed.code} ${parsed.text}`.trim() : raw.replace(/\s+/g, ' ').trim();
}

type AddressAnswer =
  | { replied: true; result: VerifyResult; reply: string }
  | { replied: false; detail: string };

/** Runs the envelope on an open session and closes it; each reply may take until `deadline`. */
async function askSession(
  session: SmtpSession,
  recipient: string,
  deadline: number,
): Promise<AddressAnswer> {
  const remaining = () => Math.max(1, deadline - Date.now());
  try {
    // RFC 6531: a non-ASCII address needs SMTPUTF8 on MAIL FROM.
    const utf8 = hasNonAscii(recipient);
    if (utf8 && !session.parameters.supports('SMTPUTF8')) {
      return { replied: false, detail: 'SMTPUTF8 is required, but was not offered' };
    }
    const mail = await session.command(`MAIL FROM:<>${utf8 ? ' SMTPUTF8' : ''}`, remaining());
    if (!mail.startsWith('2')) {
      return { replied: false, detail: `MAIL FROM:<> rejected: ${oneLine(mail)}` };
    }
    const rcpt = await session.command(`RCPT TO:<${recipient}>`, remaining());
    const result = RESULT_BY_CLASS[rcpt.charAt(0)] ?? 'unknown';
    return { replied: true, result, reply: oneLine(rcpt) };
  } catch (error) {
    return { replied: false, detail: (error as Error).message };
  } finally {
    await session.reset(CLOSING_TIMEOUT_MS).catch(() => undefined);
    await session.quit();
  }
}

/** Asks the hops in order until one replies to RCPT; gives up at `deadline` (epoch ms). */
export async function verifyAtHops(
  recipient: string,
  hops: readonly NextHop[],
  options: VerifyOptions,
  deadline: number,
): Promise<VerifyAnswer> {
  const attempts: string[] = [];
  let relay: string | undefined;
  for (const hop of hops) {
    for (const address of hop.addresses) {
      relay = `${hop.host}[${address}]:${hop.port}`;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        attempts.push(`${relay}: deadline reached before connecting`);
        return { result: 'unknown', reply: attempts.join('; '), relay };
      }
      let session: SmtpSession;
      try {
        session = await openSession(
          { host: hop.host, address, port: hop.port },
          {
            heloName: options.heloName,
            connectTimeoutMs: Math.min(options.connectTimeoutMs, remaining),
            socketTimeoutMs: remaining,
          },
        );
      } catch (error) {
        attempts.push(`${relay}: ${describeSessionError(error)}`);
        continue;
      }
      const answer = await askSession(session, recipient, deadline);
      if (answer.replied) {
        return { result: answer.result, reply: answer.reply, remoteMta: hop.host, relay };
      }
      attempts.push(`${relay}: ${answer.detail}`);
    }
  }
  const tried = attempts.length > 0 ? attempts.join('; ') : 'no address to try';
  return { result: 'unknown', reply: `no next hop replied to RCPT: ${tried}`, relay };
}
