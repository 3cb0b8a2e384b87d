import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simpleParser } from 'mailparser';
import { formatElapsed } from '../src/explanation.ts';
import { buildDsn, type DsnInput, DsnInputError, type DsnRecipient } from '../src/index.ts';
import { chooseBoundary, encodeQuotedPrintable, headerSection } from '../src/mime.ts';

const ORIGINAL_HEADER =
  'Received: from client.example ([192.0.2.7]) by mx2.example.net\r\n' +
  'Message-ID: <m1@client.example>\r\n' +
  'From: Alice <alice@client.example>\r\n' +
  'To: bob@member.example, carol@member.example\r\n' +
  'Subject: Lunch\r\n' +
  '\r\n';
const ORIGINAL_BODY = 'Shall we meet at noon?\r\nSECRET-BODY-LINE\r\n';
const ORIGINAL = Buffer.from(ORIGINAL_HEADER + ORIGINAL_BODY, 'ascii');

const ARRIVAL = new Date('2025-12-01T09:00:00Z');
const NOW = new Date('2025-12-06T10:03:00Z');

function bob(overrides: Partial<DsnRecipient> = {}): DsnRecipient {
  return {
    finalRecipient: 'bob@member.example',
    originalRecipient: 'rfc822;bob+2Bx@member.example',
    action: 'failed',
    status: '5.1.1',
    remoteMta: 'mail.member.example',
    diagnosticCode: '550 5.1.1 <bob@member.example>: no such user',
    lastAttemptDate: new Date('2025-12-04T09:51:00Z'),
    ...overrides,
  };
}

function carol(overrides: Partial<DsnRecipient> = {}): DsnRecipient {
  return {
    finalRecipient: 'carol@member.example',
    action: 'failed',
    status: '4.4.7',
    diagnosticCode: '451 4.4.1 connection to mail.member.example refused',
    lastAttemptDate: new Date('2025-12-06T10:00:00Z'),
    ...overrides,
  };
}

function input(overrides: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx2.example.net',
    queueId: '7F3A2B',
    arrivalDate: ARRIVAL,
    sender: 'alice@client.example',
    recipients: [bob(), carol()],
    original: ORIGINAL,
    fullContentLimit: 10_000,
    date: NOW,
    ...overrides,
  };
}

interface Part {
  header: string;
  body: Buffer;
}

interface SplitMessage {
  header: string;
  boundary: string;
  parts: Part[];
}

/** Splits a DSN at its boundary by hand, keeping the bytes of every part. */
function splitMessage(message: Buffer): SplitMessage {
  const text = message.toString('latin1');
  const headerEnd = text.indexOf('\r\n\r\n');
  const header = text.slice(0, headerEnd + 2);
  const boundary = /boundary="([^"]+)"/.exec(header)?.[1];
  assert.ok(boundary, 'no boundary parameter in the header');
  const body = text.slice(headerEnd + 4);
  const sections = body.split(`\r\n--${boundary}`);
  assert.equal(sections.at(-1), '--\r\n', 'the message must end with the close delimiter');
  const parts = sections.slice(1, -1).map((section) => {
    assert.ok(section.startsWith('\r\n'), 'a delimiter line must end with CRLF');
    const partText = section.slice(2);
    const partHeaderEnd = partText.indexOf('\r\n\r\n');
    return {
      header: partText.slice(0, partHeaderEnd + 2),
      body: Buffer.from(partText.slice(partHeaderEnd + 4), 'latin1'),
    };
  });
  return { header, boundary, parts };
}

type Field = [name: string, value: string];

/** Unfolds a header block (RFC 5322 section 2.2.3) and returns its fields in order. */
function parseFields(block: string): Field[] {
  return block
    .replace(/\r\n(?=[ \t])/g, '')
    .split('\r\n')
    .filter((line) => line !== '')
    .map((line) => {
      const colon = line.indexOf(':');
      assert.ok(colon > 0, `not a field: ${JSON.stringify(line)}`);
      return [line.slice(0, colon), line.slice(colon + 1).trim()];
    });
}

/** Splits delivery-status content into the per-message group and one group per recipient. */
function statusGroups(content: Buffer): Field[][] {
  const text = content.toString('latin1');
  assert.ok(text.endsWith('\r\n'), 'the last field must end with CRLF');
  return text
    .slice(0, -2)
    .split('\r\n\r\n')
    .map((group) => parseFields(`${group}\r\n`));
}

function fieldValue(fields: Field[], name: string): string | undefined {
  return fields.find(([fieldName]) => fieldName.toLowerCase() === name.toLowerCase())?.[1];
}

function fieldNames(fields: Field[]): string[] {
  return fields.map(([name]) => name);
}

test('failed DSN has every delivery-status field', () => {
  const dsn = buildDsn(input({ envid: 'QQ+2B314159' }));
  const { parts } = splitMessage(dsn.message);
  assert.equal(parts.length, 3);
  assert.match(parts[1]?.header ?? '', /^Content-Type: message\/delivery-status\r\n/);

  const [perMessage, first, second, ...rest] = statusGroups(parts[1]?.body ?? Buffer.alloc(0));
  assert.equal(rest.length, 0);
  assert.deepEqual(perMessage, [
    ['Original-Envelope-Id', 'QQ+314159'],
    ['Reporting-MTA', 'dns; mx2.example.net'],
    ['Arrival-Date', 'Mon, 01 Dec 2025 09:00:00 +0000'],
  ]);
  assert.deepEqual(first, [
    ['Original-Recipient', 'rfc822;bob+x@member.example'],
    ['Final-Recipient', 'rfc822; bob@member.example'],
    ['Action', 'failed'],
    ['Status', '5.1.1'],
    ['Remote-MTA', 'dns; mail.member.example'],
    ['Diagnostic-Code', 'smtp; 550 5.1.1 <bob@member.example>: no such user'],
    ['Last-Attempt-Date', 'Thu, 04 Dec 2025 09:51:00 +0000'],
  ]);
  assert.deepEqual(second, [
    ['Final-Recipient', 'rfc822; carol@member.example'],
    ['Action', 'failed'],
    ['Status', '4.4.7'],
    ['Diagnostic-Code', 'smtp; 451 4.4.1 connection to mail.member.example refused'],
    ['Last-Attempt-Date', 'Sat, 06 Dec 2025 10:00:00 +0000'],
  ]);
});

test('failed DSN has the top-level header fields', () => {
  const dsn = buildDsn(input());
  const { header, boundary } = splitMessage(dsn.message);
  const fields = parseFields(header);

  assert.deepEqual(fieldNames(fields), [
    'From',
    'To',
    'Subject',
    'Date',
    'Message-ID',
    'In-Reply-To',
    'References',
    'Auto-Submitted',
    'X-Original-Queue-ID',
    'MIME-Version',
    'Content-Type',
  ]);

  assert.equal(fieldValue(fields, 'From'), 'Mail Delivery System <MAILER-DAEMON@mx2.example.net>');
  assert.equal(fieldValue(fields, 'To'), '<alice@client.example>');
  assert.equal(fieldValue(fields, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(fieldValue(fields, 'Date'), 'Sat, 06 Dec 2025 10:03:00 +0000');
  assert.match(
    fieldValue(fields, 'Message-ID') ?? '',
    /^<[0-9a-z]+\.[0-9a-f]{24}@mx2\.example\.net>$/,
  );
  assert.equal(fieldValue(fields, 'In-Reply-To'), '<m1@client.example>');
  assert.equal(fieldValue(fields, 'References'), '<m1@client.example>');
  assert.equal(fieldValue(fields, 'Auto-Submitted'), 'auto-replied');
  assert.equal(fieldValue(fields, 'X-Original-Queue-ID'), '7F3A2B');
  assert.equal(fieldValue(fields, 'MIME-Version'), '1.0');
  assert.equal(
    fieldValue(fields, 'Content-Type'),
    `multipart/report; report-type=delivery-status; boundary="${boundary}"`,
  );

  assert.equal(dsn.subject, 'Undelivered Mail Returned to Sender');
  assert.equal(dsn.bodyType, '7BIT');
  assert.equal(dsn.smtpUtf8, false);
});

test('Message-ID differs between DSNs', () => {
  const first = parseFields(splitMessage(buildDsn(input()).message).header);
  const second = parseFields(splitMessage(buildDsn(input()).message).header);
  assert.notEqual(fieldValue(first, 'Message-ID'), fieldValue(second, 'Message-ID'));
});

test('original without Message-ID gives no In-Reply-To', () => {
  const original = Buffer.from('Subject: no id\r\n\r\nbody\r\n', 'ascii');
  const fields = parseFields(splitMessage(buildDsn(input({ original })).message).header);
  assert.equal(fieldValue(fields, 'In-Reply-To'), undefined);
  assert.equal(fieldValue(fields, 'References'), undefined);
});

test('text part explains a failure', () => {
  const { parts } = splitMessage(buildDsn(input()).message);
  const part = parts[0];
  assert.ok(part);
  assert.equal(
    part.header,
    'Content-Type: text/plain; charset=utf-8\r\n' +
      'Content-Transfer-Encoding: 7bit\r\n' +
      'Content-Description: Notification\r\n',
  );
  const text = part.body.toString('ascii').replace(/\s+/g, ' ');
  assert.match(text, /could not be delivered to the 2 recipients/);
  assert.match(text, /We tried for 5 days, 1 hour and 3 minutes and have now given up\./);
  assert.match(text, /queue ID here is 7F3A2B/);
  assert.match(text, /<bob@member\.example> \(originally addressed to <bob\+x@member\.example>\)/);
  assert.match(text, /Status: 5\.1\.1 \(the recipient address does not exist\)/);
  assert.match(
    text,
    /Reply from mail\.member\.example: 550 5\.1\.1 <bob@member\.example>: no such user/,
  );
  assert.match(text, /<carol@member\.example> Status: 4\.4\.7 \(delivery time expired\)/);
  assert.match(text, /Reason given by this mail system: 451 4\.4\.1 connection/);
  assert.match(text, /A copy of your message is attached\./);
  for (const line of part.body.toString('ascii').split('\r\n')) {
    assert.ok(line.length <= 76, `text line longer than 76: ${line}`);
  }
});

test('delayed DSN has Will-Retry-Until', () => {
  const until = new Date('2026-01-05T09:00:00Z');
  const dsn = buildDsn(
    input({
      recipients: [bob({ action: 'delayed', status: '4.4.1', willRetryUntil: until })],
      date: new Date('2025-12-01T13:10:00Z'),
    }),
  );
  assert.equal(dsn.subject, 'Delayed Mail (still being retried)');
  const { header, parts } = splitMessage(dsn.message);
  assert.equal(fieldValue(parseFields(header), 'Subject'), 'Delayed Mail (still being retried)');

  const [, recipient] = statusGroups(parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(fieldValue(recipient, 'Action'), 'delayed');
  assert.equal(fieldValue(recipient, 'Status'), '4.4.1');
  assert.equal(fieldValue(recipient, 'Will-Retry-Until'), 'Mon, 05 Jan 2026 09:00:00 +0000');
  assert.equal(fieldNames(recipient).at(-1), 'Will-Retry-Until');

  const text = parts[0]?.body.toString('ascii').replace(/\s+/g, ' ') ?? '';
  assert.match(text, /has not been delivered yet to the recipient listed below/);
  assert.match(text, /We have been trying for 4 hours and 10 minutes/);
  assert.match(text, /will keep trying until Mon, 05 Jan 2026 09:00:00 \+0000\./);
  assert.match(text, /No action is needed from you yet\./);
});

test('Will-Retry-Until appears only for delayed', () => {
  const until = new Date('2026-01-05T09:00:00Z');
  const dsn = buildDsn(input({ recipients: [bob({ willRetryUntil: until })] }));
  const [, recipient] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(fieldValue(recipient, 'Will-Retry-Until'), undefined);
});

test('subject follows the action', () => {
  const cases: [DsnRecipient['action'], string, string][] = [
    ['failed', '5.1.1', 'Undelivered Mail Returned to Sender'],
    ['delayed', '4.4.1', 'Delayed Mail (still being retried)'],
    ['relayed', '2.0.0', 'Mail relayed to a system without delivery notifications'],
    ['delivered', '2.0.0', 'Successful Mail Delivery Report'],
  ];
  for (const [action, status, subject] of cases) {
    const dsn = buildDsn(input({ recipients: [bob({ action, status })] }));
    assert.equal(dsn.subject, subject, action);
    const header = parseFields(splitMessage(dsn.message).header);
    assert.equal(fieldValue(header, 'Subject'), subject, action);
  }
});

test('mixed actions take the most urgent subject', () => {
  const dsn = buildDsn(
    input({
      recipients: [
        bob({ action: 'delivered', status: '2.0.0' }),
        carol({ action: 'failed', status: '5.1.1' }),
      ],
    }),
  );
  assert.equal(dsn.subject, 'Undelivered Mail Returned to Sender');
  const text = splitMessage(dsn.message).parts[0]?.body.toString('ascii') ?? '';
  assert.ok(text.indexOf('Could not be delivered to:') < text.indexOf('Delivered to:'));
});

test('RET=HDRS returns only the header', () => {
  const dsn = buildDsn(input({ ret: 'HDRS' }));
  const returned = splitMessage(dsn.message).parts[2];
  assert.ok(returned);
  assert.match(returned.header, /^Content-Type: text\/rfc822-headers\r\n/);
  assert.equal(returned.body.toString('ascii'), ORIGINAL_HEADER);
  assert.equal(dsn.message.includes('SECRET-BODY-LINE'), false);
  const text = splitMessage(dsn.message).parts[0]?.body.toString('ascii') ?? '';
  assert.match(text.replace(/\s+/g, ' '), /The rest of it is not, as requested when it was sent\./);
});

test('without RET the size limit chooses the content', () => {
  const over = buildDsn(input({ fullContentLimit: ORIGINAL.length - 1 }));
  const overPart = splitMessage(over.message).parts[2];
  assert.ok(overPart);
  assert.match(overPart.header, /^Content-Type: text\/rfc822-headers\r\n/);
  assert.equal(overPart.body.toString('ascii'), ORIGINAL_HEADER);
  assert.equal(over.message.includes('SECRET-BODY-LINE'), false);
  const overText = splitMessage(over.message).parts[0]?.body.toString('ascii') ?? '';
  assert.match(overText.replace(/\s+/g, ' '), /too large to return in full/);

  const atLimit = buildDsn(input({ fullContentLimit: ORIGINAL.length }));
  const atLimitPart = splitMessage(atLimit.message).parts[2];
  assert.ok(atLimitPart);
  assert.match(atLimitPart.header, /^Content-Type: message\/rfc822\r\n/);
  assert.ok(atLimitPart.body.equals(ORIGINAL));
});

test('RET=FULL returns only headers over the limit', () => {
  const dsn = buildDsn(input({ ret: 'FULL', fullContentLimit: 10 }));
  const returned = splitMessage(dsn.message).parts[2];
  assert.ok(returned);
  assert.match(returned.header, /^Content-Type: text\/rfc822-headers\r\n/);
  assert.ok(returned.body.equals(headerSection(ORIGINAL)));
});

test('RET=FULL returns the full message within the limit', () => {
  const dsn = buildDsn(input({ ret: 'FULL', fullContentLimit: ORIGINAL.length }));
  const returned = splitMessage(dsn.message).parts[2];
  assert.ok(returned);
  assert.match(returned.header, /^Content-Type: message\/rfc822\r\n/);
  assert.ok(returned.body.equals(ORIGINAL));
});

test('message without a body returns whole as header', () => {
  const headersOnly = Buffer.from('Subject: only header\r\nFrom: a@client.example\r\n', 'ascii');
  assert.ok(headerSection(headersOnly).equals(headersOnly));
  const dsn = buildDsn(input({ original: headersOnly, ret: 'HDRS' }));
  assert.ok(splitMessage(dsn.message).parts[2]?.body.equals(headersOnly));
});

test('ENVID xtext is decoded', () => {
  const cases: [string, string][] = [
    ['QQ+2B314159', 'QQ+314159'],
    ['a+3Db', 'a=b'],
    ['plain', 'plain'],
    ['bad+ZZ', 'bad+ZZ'],
    ['cut+4', 'cut+4'],
    ['latin+E9', 'latin+E9'],
  ];
  for (const [envid, expected] of cases) {
    const dsn = buildDsn(input({ envid }));
    const [perMessage] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
    assert.ok(perMessage);
    assert.equal(fieldValue(perMessage, 'Original-Envelope-Id'), expected, envid);
  }
});

test('without ENVID there is no Original-Envelope-Id', () => {
  const [perMessage] = statusGroups(
    splitMessage(buildDsn(input()).message).parts[1]?.body ?? Buffer.alloc(0),
  );
  assert.ok(perMessage);
  assert.deepEqual(fieldNames(perMessage), ['Reporting-MTA', 'Arrival-Date']);
});

test('ORCPT keeps its address type', () => {
  const cases: [string, string][] = [
    ['rfc822;bob+2Bx@member.example', 'rfc822;bob+x@member.example'],
    ['RFC822;Bob@Member.Example', 'RFC822;Bob@Member.Example'],
    ['x400;/G=Bob/S=Smith/O=Member+2BCo/', 'x400;/G=Bob/S=Smith/O=Member+Co/'],
    ['utf-8;j+C3+B6rg@member.example', 'utf-8;j\\x{F6}rg@member.example'],
    ['utf-8;j\\x{F6}rg@member.example', 'utf-8;j\\x{F6}rg@member.example'],
    ['rfc822;j+C3+B6rg@member.example', 'rfc822;j+C3+B6rg@member.example'],
    ['bob@member.example', 'unknown;bob@member.example'],
  ];
  for (const [orcpt, expected] of cases) {
    const dsn = buildDsn(input({ recipients: [bob({ originalRecipient: orcpt })] }));
    const [, recipient] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
    assert.ok(recipient);
    assert.equal(fieldValue(recipient, 'Original-Recipient'), expected, orcpt);
  }
});

test('without ORCPT there is no Original-Recipient', () => {
  const dsn = buildDsn(input({ recipients: [carol()] }));
  const [, recipient] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(fieldNames(recipient)[0], 'Final-Recipient');
});

test('8-bit original gives 8BITMIME and unchanged bytes', () => {
  const original = Buffer.concat([
    Buffer.from(ORIGINAL_HEADER, 'ascii'),
    Buffer.from('Caf\xe9 au lait \xff\xfe and UTF-8 caf\xc3\xa9\r\n', 'latin1'),
  ]);
  const dsn = buildDsn(input({ original }));
  assert.equal(dsn.bodyType, '8BITMIME');
  const { header, parts } = splitMessage(dsn.message);
  assert.equal(fieldValue(parseFields(header), 'Content-Transfer-Encoding'), '8bit');
  const returned = parts[2];
  assert.ok(returned);
  assert.match(returned.header, /^Content-Type: message\/rfc822\r\n/);
  assert.match(returned.header, /\r\nContent-Transfer-Encoding: 8bit\r\n/);
  assert.ok(returned.body.equals(original));
});

test('7-bit original gives 7BIT without 8bit labels', () => {
  const dsn = buildDsn(input());
  assert.equal(dsn.bodyType, '7BIT');
  assert.equal(dsn.message.includes('8bit'), false);
  assert.ok(dsn.message.every((byte) => byte < 0x80));
});

test('8-bit body with RET=HDRS stays 7BIT', () => {
  const original = Buffer.concat([
    Buffer.from(ORIGINAL_HEADER, 'ascii'),
    Buffer.from('caf\xc3\xa9\r\n', 'latin1'),
  ]);
  const dsn = buildDsn(input({ original, ret: 'HDRS' }));
  assert.equal(dsn.bodyType, '7BIT');
});

test('UTF-8 header returns message/global', () => {
  const original = Buffer.from(
    'Subject: Caf\xc3\xa9\r\nFrom: a@client.example\r\n\r\nhi\r\n',
    'latin1',
  );
  const full = buildDsn(input({ original, ret: 'FULL' }));
  const fullPart = splitMessage(full.message).parts[2];
  assert.ok(fullPart);
  assert.match(fullPart.header, /^Content-Type: message\/global\r\n/);
  assert.ok(fullPart.body.equals(original));
  assert.equal(full.bodyType, '8BITMIME');

  const headers = buildDsn(input({ original, ret: 'HDRS' }));
  const headersPart = splitMessage(headers.message).parts[2];
  assert.ok(headersPart);
  assert.match(headersPart.header, /^Content-Type: message\/global-headers\r\n/);
  assert.ok(headersPart.body.equals(headerSection(original)));
});

test('CRLF in the diagnostic code adds no field', () => {
  const diagnosticCode =
    '550 bad\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; evil@x\n\rX: y';
  const dsn = buildDsn(input({ recipients: [bob({ diagnosticCode })] }));
  const groups = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
  assert.equal(groups.length, 2);
  const recipient = groups[1];
  assert.ok(recipient);
  assert.deepEqual(fieldNames(recipient), [
    'Original-Recipient',
    'Final-Recipient',
    'Action',
    'Status',
    'Remote-MTA',
    'Diagnostic-Code',
    'Last-Attempt-Date',
  ]);
  assert.equal(fieldValue(recipient, 'Action'), 'failed');
  assert.equal(
    fieldValue(recipient, 'Diagnostic-Code'),
    'smtp; 550 bad Action: delivered Status: 2.0.0 Final-Recipient: rfc822; evil@x X: y',
  );
});

test('CRLF in other values adds no field', () => {
  const dsn = buildDsn(
    input({
      reportingMta: 'mx2.example.net\r\nBcc: victim@example.org',
      queueId: 'Q1\r\nBcc: victim@example.org',
      sender: 'alice@client.example>\r\nBcc: <victim@example.org',
      envid: 'id+0D+0AReporting-MTA: dns; evil',
      recipients: [
        bob({
          finalRecipient: 'bob@member.example\r\nAction: delivered',
          originalRecipient: 'rfc822;bob+0D+0AAction: delivered',
          remoteMta: 'mail.member.example\r\nStatus: 2.0.0',
        }),
      ],
    }),
  );
  const { header, parts } = splitMessage(dsn.message);
  const fields = parseFields(header);
  assert.equal(fieldValue(fields, 'Bcc'), undefined);
  assert.equal(fields.length, 11);

  const [perMessage, recipient, ...rest] = statusGroups(parts[1]?.body ?? Buffer.alloc(0));
  assert.equal(rest.length, 0);
  assert.ok(perMessage);
  assert.ok(recipient);
  assert.deepEqual(fieldNames(perMessage), [
    'Original-Envelope-Id',
    'Reporting-MTA',
    'Arrival-Date',
  ]);
  assert.equal(fieldValue(perMessage, 'Original-Envelope-Id'), 'id Reporting-MTA: dns; evil');

  assert.equal(fieldNames(recipient).filter((name) => name === 'Action').length, 1);
  assert.equal(fieldNames(recipient).filter((name) => name === 'Status').length, 1);
  assert.equal(fieldValue(recipient, 'Original-Recipient'), 'rfc822;bob Action: delivered');
  assert.equal(
    fieldValue(recipient, 'Final-Recipient'),
    'rfc822; bob@member.example Action: delivered',
  );
});

test('long diagnostic code folds at spaces', () => {
  const words = Array.from({ length: 40 }, (_, index) => `word${index}`);
  const diagnosticCode = `550 5.7.1 ${words.join(' ')}`;
  const dsn = buildDsn(input({ recipients: [bob({ diagnosticCode })] }));
  const content = splitMessage(dsn.message).parts[1]?.body.toString('ascii') ?? '';
  const start = content.indexOf('Diagnostic-Code:');
  const end = content.indexOf('\r\nLast-Attempt-Date:');
  const folded = content.slice(start, end);
  const lines = folded.split('\r\n');
  assert.ok(lines.length > 1, 'the field should be folded');
  for (const line of lines) {
    assert.ok(line.length <= 78, `line longer than 78: ${line}`);
  }
  for (const line of lines.slice(1)) {
    assert.match(line, /^ word\d+/);
  }
  assert.equal(folded.replace(/\r\n/g, ''), `Diagnostic-Code: smtp; ${diagnosticCode}`);
});

test('word over 998 characters is cut', () => {
  const diagnosticCode = `550 ${'x'.repeat(2000)}`;
  const dsn = buildDsn(input({ recipients: [bob({ diagnosticCode })] }));
  for (const line of dsn.message.toString('latin1').split('\r\n')) {
    assert.ok(line.length <= 998, `line of ${line.length} characters`);
  }
  const [, recipient] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(
    fieldValue(recipient, 'Diagnostic-Code')?.replace(/ /g, ''),
    `smtp;550${'x'.repeat(2000)}`,
  );
});

test('mailparser sees the multipart/report structure', async () => {
  const dsn = buildDsn(input({ envid: 'QQ+2B314159' }));
  const parsed = await simpleParser(dsn.message, { keepDeliveryStatus: true });
  const contentType = parsed.headers.get('content-type') as {
    value: string;
    params: Record<string, string>;
  };
  assert.equal(contentType.value, 'multipart/report');
  assert.equal(contentType.params['report-type'], 'delivery-status');
  assert.equal(parsed.subject, 'Undelivered Mail Returned to Sender');
  assert.equal(parsed.from?.value[0]?.address, 'MAILER-DAEMON@mx2.example.net');
  assert.equal(parsed.from?.value[0]?.name, 'Mail Delivery System');
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
  assert.equal(to?.value[0]?.address, 'alice@client.example');
  assert.equal(parsed.inReplyTo, '<m1@client.example>');
  assert.equal(parsed.date?.toISOString(), NOW.toISOString());
  assert.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
  assert.match(parsed.text ?? '', /^This is the mail system at mx2\.example\.net\./);

  assert.deepEqual(
    parsed.attachments.map((attachment) => attachment.contentType),
    ['message/delivery-status', 'message/rfc822'],
  );
  const status = parsed.attachments[0]?.content.toString('ascii') ?? '';
  assert.match(
    status,
    /^Original-Envelope-Id: QQ\+314159\r\nReporting-MTA: dns; mx2\.example\.net\r\n/,
  );
  assert.ok(parsed.attachments[1]?.content.equals(ORIGINAL));
});

test('mailparser decodes a non-ASCII text part', async () => {
  const diagnosticCode = '550 5.1.1 Benutzer unbekannt: jörg@member.example';
  const dsn = buildDsn(input({ recipients: [bob({ diagnosticCode })] }));
  assert.equal(dsn.bodyType, '7BIT');
  const { parts } = splitMessage(dsn.message);
  assert.match(parts[0]?.header ?? '', /\r\nContent-Transfer-Encoding: quoted-printable\r\n/);
  for (const line of parts[0]?.body.toString('ascii').split('\r\n') ?? []) {
    assert.ok(line.length <= 76, `quoted-printable line longer than 76: ${line}`);
  }
  const [, recipient] = statusGroups(parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(
    fieldValue(recipient, 'Diagnostic-Code'),
    'smtp; 550 5.1.1 Benutzer unbekannt: j?rg@member.example',
  );
  const parsed = await simpleParser(dsn.message);
  assert.match(parsed.text ?? '', /Benutzer unbekannt: jörg@member\.example/);
});

test('boundary never appears in the parts', () => {
  const lookalikes = Array.from({ length: 200 }, () => `--dsn=_${'A'.repeat(24)}\r\n`).join('');
  const original = Buffer.from(`${ORIGINAL_HEADER}${lookalikes}`, 'ascii');
  for (let round = 0; round < 20; round++) {
    const dsn = buildDsn(input({ original }));
    const { boundary, parts } = splitMessage(dsn.message);
    assert.equal(parts.length, 3);
    assert.equal(original.includes(boundary), false);
    assert.ok(parts[2]?.body.equals(original));
  }
});

test('chooseBoundary draws again on a collision', () => {
  const colliding = Buffer.alloc(18, 0);
  const collidingBoundary = `dsn=_${colliding.toString('base64url')}`;
  const draws: Buffer[] = [colliding, Buffer.alloc(18, 1)];
  let calls = 0;
  const boundary = chooseBoundary([Buffer.from(`text ${collidingBoundary} text`)], (size) => {
    assert.equal(size, 18);
    calls++;
    return draws.shift() ?? Buffer.alloc(18, 2);
  });
  assert.equal(calls, 2);
  assert.notEqual(boundary, collidingBoundary);
  assert.equal(boundary, `dsn=_${Buffer.alloc(18, 1).toString('base64url')}`);
});

test('non-ASCII final recipient uses utf-8 type', () => {
  const dsn = buildDsn(
    input({
      recipients: [
        bob({ finalRecipient: 'jörg+a=b@member.example', originalRecipient: undefined }),
      ],
    }),
  );
  const [, recipient] = statusGroups(splitMessage(dsn.message).parts[1]?.body ?? Buffer.alloc(0));
  assert.ok(recipient);
  assert.equal(
    fieldValue(recipient, 'Final-Recipient'),
    'utf-8; j\\x{F6}rg\\x{2B}a\\x{3D}b@member.example',
  );
});

test('non-ASCII sender needs SMTPUTF8', () => {
  const dsn = buildDsn(input({ sender: 'jörg@client.example' }));
  assert.equal(dsn.smtpUtf8, true);
  assert.equal(dsn.bodyType, '8BITMIME');
  const header = dsn.message.subarray(0, dsn.message.indexOf('\r\n\r\n')).toString('utf8');
  assert.match(header, /\r\nTo: <jörg@client\.example>\r\n/);
});

test('internationalized host names become A-labels', () => {
  const dsn = buildDsn(
    input({
      reportingMta: 'mx2.bücher.example',
      recipients: [bob({ remoteMta: 'mail.bücher.example' })],
    }),
  );
  const { header, parts } = splitMessage(dsn.message);
  assert.equal(
    fieldValue(parseFields(header), 'From'),
    'Mail Delivery System <MAILER-DAEMON@mx2.xn--bcher-kva.example>',
  );
  const [perMessage, recipient] = statusGroups(parts[1]?.body ?? Buffer.alloc(0));
  assert.equal(fieldValue(perMessage ?? [], 'Reporting-MTA'), 'dns; mx2.xn--bcher-kva.example');
  assert.equal(fieldValue(recipient ?? [], 'Remote-MTA'), 'dns; mail.xn--bcher-kva.example');
});

test('invalid input is rejected', () => {
  const cases: [string, Partial<DsnInput>, RegExp][] = [
    ['empty sender', { sender: '' }, /sender is empty/],
    ['null reverse-path', { sender: '<>' }, /sender is empty/],
    ['no recipients', { recipients: [] }, /recipients is empty/],
    ['empty reporting MTA', { reportingMta: ' ' }, /reportingMta is empty/],
    ['leading zero', { recipients: [bob({ status: '5.01.1' })] }, /recipients\[0\]\.status/],
    ['class 3', { recipients: [bob({ status: '3.0.0' })] }, /recipients\[0\]\.status/],
    ['no status', { recipients: [bob({ status: '' })] }, /recipients\[0\]\.status/],
    [
      'bad action',
      { recipients: [bob({ action: 'expanded' as 'failed' })] },
      /\.action is invalid/,
    ],
    ['empty recipient', { recipients: [bob({ finalRecipient: '' })] }, /finalRecipient is empty/],
    ['invalid date', { date: new Date('nope') }, /date is not a valid date/],
    [
      'invalid last attempt',
      { recipients: [carol(), bob({ lastAttemptDate: new Date(Number.NaN) })] },
      /recipients\[1\]\.lastAttemptDate/,
    ],
    ['negative limit', { fullContentLimit: -1 }, /fullContentLimit/],
  ];
  for (const [name, overrides, message] of cases) {
    assert.throws(
      () => buildDsn(input(overrides)),
      (error: unknown) => error instanceof DsnInputError && message.test(error.message),
      name,
    );
  }
});

test('formatElapsed counts days, hours and minutes', () => {
  const cases: [number, string][] = [
    [0, 'less than a minute'],
    [59_999, 'less than a minute'],
    [60_000, '1 minute'],
    [61 * 60_000, '1 hour and 1 minute'],
    [2 * 86_400_000, '2 days'],
    [86_400_000 + 2 * 3_600_000 + 5 * 60_000, '1 day, 2 hours and 5 minutes'],
    [-60_000, 'less than a minute'],
  ];
  for (const [elapsed, expected] of cases) {
    assert.equal(formatElapsed(ARRIVAL, new Date(ARRIVAL.getTime() + elapsed)), expected);
  }
});

test('quoted-printable keeps lines within 76', () => {
  const line = `${'é'.repeat(40)} a=b ${'x'.repeat(100)} end `;
  const encoded = encodeQuotedPrintable(`${line}\r\nsecond\t`);
  for (const encodedLine of encoded.split('\r\n')) {
    assert.ok(encodedLine.length <= 76, `line of ${encodedLine.length}: ${encodedLine}`);
    assert.doesNotMatch(encodedLine, /[ \t]$/);
  }
  assert.match(encoded, /a=3Db/);
  assert.match(encoded, /end=20\r\n/);
  assert.match(encoded, /second=09$/);
  const decoded = Buffer.from(
    encoded
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_match, hex: string) =>
        String.fromCharCode(Number.parseInt(hex, 16)),
      ),
    'latin1',
  ).toString('utf8');
  assert.equal(decoded, `${line}\r\nsecond\t`);
});
