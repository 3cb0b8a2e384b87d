import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Creates a queue id: 10 characters of millisecond time then 10 random characters, in
 * Crockford base32. Ids sort by arrival time and are safe in SMTP replies and headers.
 */
export function newQueueId(now = Date.now()): string {
  let time = '';
  let rest = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[rest % 32] + time;
    rest = Math.floor(rest / 32);
  }
  const random = randomBytes(10);
  let tail = '';
  for (const byte of random) {
    tail += CROCKFORD[byte % 32];
  }
  return time + tail;
}

export const QUEUE_ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{20}$/;
