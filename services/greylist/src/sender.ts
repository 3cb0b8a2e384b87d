/**
 * Normalizes envelope senders for greylist keys, so that the retry of one message keys like its
 * first attempt even where the sending server changes the address on every attempt or message.
 * The result only keys greylist records and is never used to send mail.
 *
 * Steps, in order:
 * - lower case, local part included;
 * - BATV (`prvs=TAG=user@domain`, `msprvs1=TAG=user@domain`, `btv1==TAG==user@domain`) becomes
 *   `user@domain`;
 * - SRS (`SRS0=HASH=TT=orig.example=user@forwarder`, and `SRS1=HASH=forwarder==HASH=TT=...`)
 *   becomes the original `user@orig.example`;
 * - a `+extension` is dropped (`-` is not a separator, since `first-last@` is a common name);
 * - VERP parts become `#`: an encoded recipient (`bounce-user=example.com@`) and each part of
 *   the local part between `-`, `.`, `_` or `=` that is a number, or hex digits with at least
 *   one digit (`bounce-12345-abcdef0123@` becomes `bounce-#-#@`).
 */

const BATV = /^(?:prvs|msprvs1)=[^=@]*=(.+@.+)$/;
const BATV_BTV1 = /^btv1==[^=@]*==(.+@.+)$/;
/** `SRS0=HASH=TT=domain=user@forwarder`: the first separator may also be `+` or `-`. */
const SRS0 = /^srs0[=+-][^=]*=[^=]*=([^=@]+)=(.+)@[^@]+$/;
/** `SRS1=HASH=forwarder==HASH=TT=domain=user@forwarder2`, where `==` starts the SRS0 rest. */
const SRS1 = /^srs1[=+-][^=]*=[^=]*=[=+-][^=]*=[^=]*=([^=@]+)=(.+)@[^@]+$/;
/** A recipient address encoded in a VERP local part: `user=example.com` at the end. */
const VERP_ADDRESS = /[^-=._+]+=[a-z0-9-]+(?:\.[a-z0-9-]+)+$/;
const VERP_SEPARATOR = /([-._=])/;
const NUMBER = /^\d+$/;
const HEX_WITH_DIGIT = /^(?=[0-9a-f]*\d)[0-9a-f]{4,}$/;

/** Returns the sender as greylist keys see it. The null sender (empty string) stays empty. */
export function normalizeSender(sender: string): string {
  let address = sender.trim().toLowerCase();
  if (address === '') {
    return '';
  }
  address = stripBatv(address);
  address = unwrapSrs(address);
  // SRS may wrap a BATV address and the other way round.
  address = stripBatv(address);

  const at = address.lastIndexOf('@');
  if (at <= 0) {
    return address;
  }
  const domain = address.slice(at + 1);
  let local = address.slice(0, at);

  const plus = local.indexOf('+');
  if (plus > 0) {
    local = local.slice(0, plus);
  }
  local = local.replace(VERP_ADDRESS, '#');
  local = local
    .split(VERP_SEPARATOR)
    .map((part) => (NUMBER.test(part) || HEX_WITH_DIGIT.test(part) ? '#' : part))
    .join('');
  return `${local}@${domain}`;
}

function stripBatv(address: string): string {
  const match = BATV.exec(address) ?? BATV_BTV1.exec(address);
  return match ? (match[1] as string) : address;
}

function unwrapSrs(address: string): string {
  const match = SRS1.exec(address) ?? SRS0.exec(address);
  return match ? `${match[2]}@${match[1]}` : address;
}
