/**
 * Greylist triplets and their Redis keys. A key is the SHA-256 of the triplet, so Redis contains
 * no address in the clear. Every replica and the admin API derive the same key from the same
 * triplet without sharing a secret.
 *
 * NOTE: the hash is unkeyed. Someone who can read the keys and guesses a network, sender and
 * recipient can confirm that this triplet was seen.
 */
import { createHash } from 'node:crypto';
import { clientNetwork } from './network.ts';

export interface Triplet {
  clientAddress: string;
  /** Empty string for the null reverse-path `<>`. */
  sender: string;
  recipient: string;
}

/** Returns the Redis key of a triplet. Throws InvalidAddressError for a client address that is not an IP. */
export function tripletKey(prefix: string, triplet: Triplet): string {
  const fields = [
    clientNetwork(triplet.clientAddress),
    triplet.sender.toLowerCase(),
    triplet.recipient.toLowerCase(),
  ];
  // JSON encoding keeps the fields apart whatever characters the addresses contain.
  const digest = createHash('sha256').update(JSON.stringify(fields)).digest('hex');
  return `${prefix}gl:${digest}`;
}
