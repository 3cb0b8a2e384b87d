/**
 * Greylist triplets and their Redis keys. A triplet is (client group, normalized sender,
 * recipient), and its key is the SHA-256 of those fields. The auto-whitelist counter of a client
 * group is keyed by the SHA-256 of the group. So Redis contains no address, name or network in
 * the clear, and every replica derives the same key from the same triplet without sharing a
 * secret.
 *
 * NOTE: the hash is unkeyed. Someone who can read the keys and guesses a group, sender and
 * recipient can confirm that this triplet was seen.
 */
import { createHash } from 'node:crypto';
import { type ClientIdentity, clientGroup } from './client-group.ts';
import { normalizeSender } from './sender.ts';

export interface Triplet extends ClientIdentity {
  /** Empty string for the null reverse-path `<>`. */
  sender: string;
  recipient: string;
}

/** The fields of a triplet as its key contains them. */
export interface TripletFields {
  clientGroup: string;
  /** The normalized sender. */
  sender: string;
  /** The recipient in lower case. */
  recipient: string;
}

/**
 * Returns the client group, normalized sender and recipient of a triplet. Throws
 * InvalidAddressError for a client address that is not an IP.
 */
export function tripletFields(triplet: Triplet): TripletFields {
  return {
    clientGroup: clientGroup(triplet),
    sender: normalizeSender(triplet.sender),
    recipient: triplet.recipient.toLowerCase(),
  };
}

/**
 * Returns the Redis key of a triplet. Throws InvalidAddressError for a client address that is
 * not an IP.
 */
export function tripletKey(prefix: string, triplet: Triplet): string {
  const fields = tripletFields(triplet);
  // JSON encoding keeps the fields apart whatever characters the addresses contain.
  const text = JSON.stringify([fields.clientGroup, fields.sender, fields.recipient]);
  return `${prefix}gl:${sha256(text)}`;
}

/** Returns the Redis key of the auto-whitelist counter of a client group. */
export function groupKey(prefix: string, group: string): string {
  return `${prefix}awl:${sha256(group)}`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
