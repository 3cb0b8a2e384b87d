/**
 * The SMTP transaction as ingress runs it. It checks the sender (syntax, then DNS) and each
 * recipient (syntax, member domain, DNSBL, the domain's recipient check, then greylist). It
 * reads DATA within the size limit and the rules of message-scanner.ts, prepends Received:
 * (and X-Greylist: when a recipient passed on a greylist retry), and replies 250 only after
 * queue-store reports the message committed. Every other outcome of DATA is a 4xx or 5xx, so
 * nothing is ever acknowledged without being stored.
 */
import type { Readable } from 'node:stream';
import { normalizeDomain } from '@secondary-mx/address';
import { type Broker, BrokerUnavailableError } from '@secondary-mx/amqp';
import { type EnvelopeRecipient, newQueueId } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { ApprovedDomains } from './approved-domains.ts';
import type { DnsblChecker } from './dnsbl.ts';
import { smtpError } from './enhanced-codes.ts';
import { checkMailParameters, checkRcptParameters } from './esmtp-parameters.ts';
import { checkGreylist, type GreylistVerdict } from './greylist-client.ts';
import { buildGreylistHeader } from './greylist-header.ts';
import { MessageScanner, messageViolation } from './message-scanner.ts';
import type { IngressMetrics } from './metrics.ts';
import type { PregreetPasses } from './pregreet-passes.ts';
import { buildReceivedHeader, transmissionProtocol } from './received.ts';
import { parseRecipient } from './recipient-address.ts';
import { checkRecipientPolicy } from './recipient-policy.ts';
import type { RecipientVerifier } from './recipient-verifier.ts';
import type { SenderDomainChecker } from './sender-domain.ts';
import type { IngressSettings } from './settings.ts';
import type { SpoolAvailability } from './spool-availability.ts';
import { storeMessage } from './spool-client.ts';

type Callback = (error?: Error | null) => void;
type DataCallback = (error?: Error | null, message?: string) => void;

export interface HandlerContext {
  settings: IngressSettings;
  broker: Broker;
  domains: ApprovedDomains;
  senderDomains: SenderDomainChecker;
  dnsbl: DnsblChecker;
  verifier: RecipientVerifier;
  logger: Logger;
  metrics: IngressMetrics;
  /** Clients that passed the pregreet test recently and skip its wait. */
  pregreet: PregreetPasses;
  spool: SpoolAvailability;
}

/**
 * The maximum greylist delay, in seconds, among the accepted recipients of a transaction, for
 * the X-Greylist header. Keyed by the envelope, which smtp-server replaces at every new
 * transaction, so a delay never carries over to the next message of the session.
 */
const greylistDelays = new WeakMap<object, number>();

const NOTIFY_VALUES = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);

/** Maximum sender length, in octets, that queue-store's spool.store schema accepts. */
const MAX_ADDRESS_OCTETS = 320;

/** queue-store replies that mean it or its database cannot store mail now. */
const UNAVAILABLE_SPOOL_ERRORS = new Set(['database error', 'deadline passed']);

function sessionLog(context: HandlerContext, session: SMTPServerSession): Logger {
  return context.logger.child({ session: session.id, client: session.remoteAddress });
}

/**
 * Checks MAIL FROM: the null sender, or a mailbox with a domain name (not an address literal)
 * that can receive a bounce.
 */
export function onMailFrom(context: HandlerContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void => {
    void checkSender(context, address, session).then(
      () => callback(),
      (error: Error) => callback(error),
    );
  };
}

async function checkSender(
  context: HandlerContext,
  address: SMTPServerAddress,
  session: SMTPServerSession,
): Promise<void> {
  const log = sessionLog(context, session);
  const sender = address.address;
  try {
    checkMailParameters(address);
  } catch (error) {
    log.info(
      { sender, reply: (error as { responseCode?: number }).responseCode },
      `sender rejected: ${(error as Error).message}`,
    );
    throw error;
  }
  if (sender !== '') {
    const at = sender.lastIndexOf('@');
    const domainText = at > 0 ? sender.slice(at + 1) : '';
    const domain = normalizeDomain(domainText);
    const literal = /^\[[0-9a-f.:IPv6]+\]$/i.test(domainText);
    if (at <= 0 || (!domain && !literal)) {
      log.info({ sender, reply: 553 }, 'sender rejected: invalid address');
      throw smtpError(553, '5.1.7', `<${sender}>: sender address syntax is invalid`);
    }
    // queue-store could not route a DSN to an address literal, and we never accept mail that
    // we could not bounce.
    if (literal) {
      log.info({ sender, reply: 550 }, 'sender rejected: address literal');
      throw smtpError(
        550,
        '5.1.8',
        `<${sender}>: sender address literal not accepted, a bounce could not be delivered`,
      );
    }
    // smtp-server hands over U-labels whatever the client sent, so only the local part shows
    // whether the client used UTF-8 (RFC 6531 section 3.4).
    if (session.envelope.smtpUtf8 !== true && /[^\p{ASCII}]/u.test(sender.slice(0, at))) {
      log.info({ sender, reply: 553 }, 'sender rejected: UTF-8 local part without SMTPUTF8');
      throw smtpError(553, '5.6.7', `<${sender}>: a UTF-8 local part requires SMTPUTF8`);
    }
    // smtp-server bounds the address as sent to 253 octets, but the A-label form can be longer.
    const stored =
      domain && session.envelope.smtpUtf8 !== true ? `${sender.slice(0, at)}@${domain}` : sender;
    if (Buffer.byteLength(stored) > MAX_ADDRESS_OCTETS) {
      log.info({ sender, reply: 553 }, 'sender rejected: address too long');
      throw smtpError(
        553,
        '5.1.7',
        `<${sender}>: sender address longer than ${MAX_ADDRESS_OCTETS} octets`,
      );
    }
    if (domain && context.settings.MX_SENDER_DOMAIN_CHECK) {
      const rejection = await context.senderDomains.check(sender, domain);
      if (rejection) {
        log.info(
          {
            sender,
            reply: (rejection as { responseCode?: number }).responseCode,
            err: rejection.cause,
          },
          `sender rejected: ${rejection.message}`,
        );
        throw rejection;
      }
    }
    // smtp-server hands over U-labels; without SMTPUTF8 the primary must get A-labels.
    address.address = stored;
  }
  log.info({ sender, size: address.args ? address.args.SIZE : undefined }, 'MAIL FROM accepted');
}

/**
 * Checks one RCPT TO: syntax, member domain, DNSBL, recipient limit, the domain's recipient
 * check, then the greylist verdict unless the domain has greylisting off.
 */
export function onRcptTo(context: HandlerContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void => {
    void checkRecipient(context, address, session).then(
      () => callback(),
      (error: Error) => callback(error),
    );
  };
}

async function checkRecipient(
  context: HandlerContext,
  address: SMTPServerAddress,
  session: SMTPServerSession,
): Promise<void> {
  const { settings, domains, broker } = context;
  const log = sessionLog(context, session);
  let recipient = address.address;

  let domain: string;
  let localPart: string;
  try {
    checkRcptParameters(address, session.envelope.smtpUtf8 === true);
    ({
      address: recipient,
      domain,
      localPart,
    } = parseRecipient(recipient, session.envelope.smtpUtf8 === true));
  } catch (error) {
    log.info(
      { recipient, reply: (error as { responseCode?: number }).responseCode },
      `recipient rejected: ${(error as Error).message}`,
    );
    throw error;
  }
  address.address = recipient;

  if (!domains.loaded) {
    log.warn({ recipient, reply: 451 }, 'recipient deferred: approved domains not loaded yet');
    throw smtpError(451, '4.3.0', `<${recipient}>: service starting, try again later`);
  }
  if (domains.isSuspended(domain)) {
    // Temporary, because the member's primary MX still takes the mail and the sender retries.
    log.info({ recipient, domain, reply: 450 }, 'recipient rejected: domain suspended');
    throw smtpError(
      450,
      '4.7.1',
      `<${recipient}>: relaying for ${domain} is suspended at this backup MX, deliver to the domain's primary MX`,
    );
  }
  if (!domains.has(domain)) {
    log.info({ recipient, domain, reply: 550 }, 'recipient rejected: relaying denied');
    throw smtpError(550, '5.7.1', `<${recipient}>: relaying denied`);
  }
  const unavailable = context.spool.unavailableReason();
  if (unavailable) {
    log.warn(
      { recipient, reason: unavailable, reply: 451 },
      'recipient deferred: mail cannot be stored now',
    );
    throw smtpError(451, '4.3.0', `<${recipient}>: mail cannot be stored now, try again later`);
  }
  const listed = await context.dnsbl.check(session.id, session.remoteAddress);
  if (listed) {
    log.info({ recipient, reply: 554 }, `recipient rejected: ${listed.message}`);
    throw listed;
  }
  if (session.envelope.rcptTo.length >= settings.MX_MAX_RECIPIENTS) {
    log.info({ recipient, reply: 452 }, 'recipient deferred: too many recipients');
    throw smtpError(452, '4.5.3', 'too many recipients, send the rest in another transaction');
  }

  const policy = domains.policy(domain);
  const recipientCheck = await checkRecipientPolicy(
    { session: session.id, address: recipient, localPart, domain },
    policy,
    context.verifier,
    log,
  );
  if (!policy.greylist) {
    log.info({ recipient, recipientCheck, greylist: 'off' }, 'RCPT TO accepted');
    return;
  }

  const mailFrom = session.envelope.mailFrom;
  const verdict = await checkGreylist(
    broker,
    {
      session: session.id,
      clientAddress: session.remoteAddress,
      // The reverse resolver sets a name only when it is forward-confirmed, else `[address]`.
      ...(session.clientHostname && !session.clientHostname.startsWith('[')
        ? { clientName: session.clientHostname }
        : {}),
      ...(session.hostNameAppearsAs ? { heloName: session.hostNameAppearsAs.slice(0, 255) } : {}),
      sender: mailFrom ? mailFrom.address : '',
      recipient,
    },
    settings.MX_GREYLIST_TIMEOUT,
  );
  applyVerdict(context, session, recipient, verdict, recipientCheck, log);
}

/** Throws the SMTP reply of a verdict that defers the recipient, and counts every verdict. */
function applyVerdict(
  context: HandlerContext,
  session: SMTPServerSession,
  recipient: string,
  verdict: GreylistVerdict,
  recipientCheck: string,
  log: Logger,
): void {
  const { settings, metrics } = context;
  if (verdict.action === 'unavailable') {
    const policy = settings.MX_GREYLIST_ON_ERROR;
    metrics.countUnavailable(policy);
    if (policy === 'closed') {
      log.warn(
        { recipient, err: verdict.error, reply: 451 },
        'greylist verdict unavailable, recipient deferred',
      );
      throw smtpError(451, '4.3.0', `<${recipient}>: greylisting is unavailable, try again later`);
    }
    // NOTE: the default policy fails open, so an outage of Redis or the greylist service never
    // stops mail, but mail then skips greylisting.
    log.warn({ recipient, err: verdict.error }, 'greylist verdict unavailable, recipient accepted');
    log.info({ recipient, recipientCheck, greylist: 'unavailable' }, 'RCPT TO accepted');
    return;
  }

  metrics.countVerdict(verdict.action, verdict.reason);
  if (verdict.action === 'defer') {
    log.info(
      { recipient, reason: verdict.reason, retryAfter: verdict.retryAfter, reply: 451 },
      'greylisted',
    );
    throw smtpError(
      451,
      '4.7.1',
      `<${recipient}>: greylisted, try again in ${verdict.retryAfter ?? 300} seconds`,
    );
  }
  // Only the first pass of a triplet, `retried`, carries how long the sender was kept waiting.
  if (verdict.reason === 'retried' && verdict.delayed !== undefined) {
    const envelope = session.envelope;
    greylistDelays.set(envelope, Math.max(greylistDelays.get(envelope) ?? 0, verdict.delayed));
  }
  log.info(
    { recipient, recipientCheck, greylist: verdict.reason, delayed: verdict.delayed },
    'RCPT TO accepted',
  );
}

function envelopeRecipient(address: SMTPServerAddress): EnvelopeRecipient {
  const notify = address.dsn?.notify?.filter((value) => NOTIFY_VALUES.has(value)) as
    | EnvelopeRecipient['notify']
    | undefined;
  return {
    address: address.address,
    ...(notify && notify.length > 0 ? { notify } : {}),
    ...(address.dsn?.orcpt ? { orcpt: address.dsn.orcpt } : {}),
  };
}

/**
 * Drops repeated addresses, keeping the last, as smtp-server does. smtp-server compares the
 * addresses it parsed, and checkRecipient may have turned two spellings into one A-label form.
 */
function uniqueRecipients(recipients: EnvelopeRecipient[]): EnvelopeRecipient[] {
  const byAddress = new Map<string, EnvelopeRecipient>();
  for (const recipient of recipients) {
    const key = recipient.address.toLowerCase();
    byAddress.delete(key);
    byAddress.set(key, recipient);
  }
  return [...byAddress.values()];
}

/**
 * Marks the spool unavailable and reloads the approved domains. The first domains.list request
 * that succeeds marks the spool available again.
 */
function noteSpoolFailure(context: HandlerContext, reason: string): void {
  context.spool.failed(reason);
  void context.domains.reload();
}

/** Reads the message, then stores it; answers 250 with the queue id only after the commit. */
export function onData(context: HandlerContext) {
  return (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: DataCallback,
  ): void => {
    void receiveMessage(context, stream, session).then(
      (message) => callback(null, message),
      (error: Error) => callback(error),
    );
  };
}

/**
 * Collects the stream up to limit bytes while the scanner checks it; returns undefined when
 * the message is larger.
 */
async function readLimited(
  stream: Readable,
  limit: number,
  scanner: MessageScanner,
): Promise<Buffer[] | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let oversized = false;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    scanner.scan(chunk as Buffer);
    if (size > limit) {
      // Keep reading so the client gets its reply after the final dot, but store nothing.
      oversized = true;
      chunks.length = 0;
      continue;
    }
    if (!oversized) {
      chunks.push(chunk as Buffer);
    }
  }
  return oversized ? undefined : chunks;
}

async function receiveMessage(
  context: HandlerContext,
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
): Promise<string> {
  const { settings, broker } = context;
  const log = sessionLog(context, session);
  const scanner = new MessageScanner();
  const chunks = await readLimited(stream, settings.MX_MAX_MESSAGE_SIZE, scanner);
  if (!chunks || stream.sizeExceeded) {
    log.info({ limit: settings.MX_MAX_MESSAGE_SIZE, reply: 552 }, 'message rejected: too large');
    throw smtpError(
      552,
      '5.3.4',
      `message exceeds the fixed maximum message size of ${settings.MX_MAX_MESSAGE_SIZE} bytes`,
    );
  }
  const violation = messageViolation(scanner.finish(), settings.MX_MAX_HOPS);
  if (violation) {
    log.info(
      { reply: (violation as { responseCode?: number }).responseCode },
      `message rejected: ${violation.message}`,
    );
    throw violation;
  }

  const queueId = newQueueId();
  const receivedAt = new Date();
  const envelope = session.envelope;
  const recipients = uniqueRecipients(envelope.rcptTo.map(envelopeRecipient));
  const smtpUtf8 = envelope.smtpUtf8 === true;
  const tls = session.secure && session.tlsOptions ? session.tlsOptions : undefined;
  const received = buildReceivedHeader({
    heloName: session.hostNameAppearsAs,
    clientHostname: session.clientHostname,
    clientAddress: session.remoteAddress,
    hostname: settings.MX_HOSTNAME,
    protocol: transmissionProtocol(
      session.secure,
      smtpUtf8,
      // smtp-server sets ESMTP... after EHLO and SMTP... after HELO.
      session.transmissionType?.startsWith('E') !== false,
    ),
    tls: tls ? { protocol: tls.version ?? tls.standardName ?? 'TLS', cipher: tls.name } : undefined,
    queueId,
    recipients: recipients.map((recipient) => recipient.address),
    date: receivedAt,
  });
  const delayed = greylistDelays.get(envelope);
  const greylistHeader =
    delayed === undefined ? [] : [buildGreylistHeader(delayed, settings.MX_HOSTNAME, receivedAt)];
  const message = Buffer.concat([received, ...greylistHeader, ...chunks]);

  const ret = envelope.dsn?.ret?.toUpperCase();
  try {
    const reply = await storeMessage(
      broker,
      {
        queueId,
        session: session.id,
        sender: envelope.mailFrom ? envelope.mailFrom.address : '',
        recipients,
        ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}),
        ...(envelope.dsn?.envid ? { envid: envelope.dsn.envid } : {}),
        bodyType: envelope.bodyType?.toLowerCase() === '8bitmime' ? '8BITMIME' : '7BIT',
        smtpUtf8,
        clientAddress: session.remoteAddress,
        // Without a forward-confirmed name the reverse resolver leaves `[address]` here.
        ...(session.clientHostname && !session.clientHostname.startsWith('[')
          ? { clientName: session.clientHostname }
          : {}),
        ...(session.hostNameAppearsAs ? { heloName: session.hostNameAppearsAs } : {}),
        receivedAt: receivedAt.toISOString(),
      },
      message,
      settings.MX_SPOOL_TIMEOUT,
    );
    if (!reply.ok) {
      log.error(
        { queueId, error: reply.error, reply: 451 },
        'message not stored: queue-store refused it',
      );
      if (UNAVAILABLE_SPOOL_ERRORS.has(reply.error)) {
        noteSpoolFailure(context, `spool.store replied: ${reply.error}`);
      }
      throw smtpError(451, '4.3.0', 'local error in processing, try again later');
    }
    context.spool.succeeded();
  } catch (error) {
    if ((error as { responseCode?: number }).responseCode) {
      throw error;
    }
    log.error({ queueId, err: error, reply: 451 }, 'message not stored');
    // A lost RabbitMQ connection is noticed by the broker itself.
    if (!(error instanceof BrokerUnavailableError)) {
      noteSpoolFailure(context, `spool.store failed: ${(error as Error).message}`);
    }
    throw smtpError(451, '4.3.0', 'local error in processing, try again later');
  }
  log.info(
    { queueId, size: message.length, recipients: recipients.length, reply: 250 },
    'message queued',
  );
  return `2.0.0 Ok: queued as ${queueId}`;
}
