/**
 * Probes a domain's next hops without sending mail. For each address in order it connects, reads
 * the greeting, sends EHLO and QUIT, and it stops at the first host whose greeting and EHLO reply
 * are both 2xx. Each probe uses a short connection of its own.
 */
import type { NextHop } from './next-hop.ts';
import { localVerdict, parseReply } from './reply-classification.ts';
import {
  describeSessionError,
  openProbeSession,
  type SessionOptions,
  type SmtpSession,
  type TranscriptLine,
} from './smtp-session.ts';

export interface ProbeOptions {
  heloName: string;
  /** Limit in milliseconds for the TCP connect and for each of the greeting and EHLO replies. */
  connectTimeoutMs: number;
}

export interface ProbeAnswer {
  ok: boolean;
  /** The first line of the EHLO reply when ok, otherwise every failed attempt on one line. */
  reply: string;
  /** Host name of the last next hop whose server replied at all; absent when none did. */
  remoteMta?: string;
  /** The last address tried as `host[address]:port`; absent when none was tried. */
  relay?: string;
}

interface AddressAnswer {
  ok: boolean;
  /** For the log and the reply: the EHLO reply, or why the attempt failed. */
  detail: string;
  /** Whether the server sent any reply. */
  replied: boolean;
}

/** Formats the first line of a reply as `code text`, the form of outcome replies. */
function firstLine(raw: string): string {
  const line = raw.split(/\r?\n/)[0] ?? '';
  const parsed = parseReply(line);
  return parsed ? `${parsed.code} ${parsed.text}`.trim() : line.trim();
}

/**
 * Returns the server's reply to our EHLO, or undefined when none came. nodemailer sends HELO by
 * itself after a failed EHLO, so a session that opened may still have had its EHLO rejected.
 */
function ehloReply(transcript: readonly TranscriptLine[]): string | undefined {
  const sent = transcript.findIndex((line) => line.from === 'client' && /^EHLO\s/i.test(line.text));
  if (sent < 0) {
    return undefined;
  }
  return transcript.slice(sent + 1).find((line) => line.from === 'server')?.text;
}

async function probeAddress(
  hop: NextHop,
  address: string,
  options: SessionOptions,
): Promise<AddressAnswer> {
  const transcript: TranscriptLine[] = [];
  const target = { host: hop.host, address, port: hop.port };
  let session: SmtpSession;
  try {
    session = await openProbeSession(target, options, transcript);
  } catch (error) {
    const replied = transcript.some((line) => line.from === 'server');
    return { ok: false, detail: describeSessionError(error), replied };
  }
  await session.quit();
  const reply = ehloReply(transcript);
  if (reply === undefined) {
    return { ok: false, detail: 'no reply to EHLO', replied: true };
  }
  if (!reply.startsWith('2')) {
    return { ok: false, detail: `EHLO rejected: ${firstLine(reply)}`, replied: true };
  }
  return { ok: true, detail: firstLine(reply), replied: true };
}

/** Probes the hops in order until one replies with 2xx; gives up at `deadline` (epoch ms). */
export async function probeHops(
  domain: string,
  hops: readonly NextHop[],
  options: ProbeOptions,
  deadline: number,
): Promise<ProbeAnswer> {
  const attempts: string[] = [];
  let remoteMta: string | undefined;
  let relay: string | undefined;
  for (const hop of hops) {
    for (const address of hop.addresses) {
      relay = `${hop.host}[${address}]:${hop.port}`;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        attempts.push(`${relay}: probe deadline reached before connecting`);
        return failedProbe(domain, attempts, remoteMta, relay);
      }
      const timeoutMs = Math.min(options.connectTimeoutMs, remaining);
      const sessionOptions: SessionOptions = {
        heloName: options.heloName,
        connectTimeoutMs: timeoutMs,
        socketTimeoutMs: timeoutMs,
      };
      const answer = await probeAddress(hop, address, sessionOptions);
      if (answer.replied) {
        remoteMta = hop.host;
      }
      if (answer.ok) {
        return { ok: true, reply: answer.detail, remoteMta: hop.host, relay };
      }
      attempts.push(`${relay}: ${answer.detail}`);
    }
  }
  return failedProbe(domain, attempts, remoteMta, relay);
}

function failedProbe(
  domain: string,
  attempts: readonly string[],
  remoteMta: string | undefined,
  relay: string | undefined,
): ProbeAnswer {
  const tried = attempts.length > 0 ? attempts.join('; ') : 'no address to try';
  const { reply } = localVerdict(
    'connectFailed',
    `no next hop of ${domain} answered the greeting and EHLO with 2xx: ${tried}`,
  );
  return { ok: false, reply, remoteMta, relay };
}
