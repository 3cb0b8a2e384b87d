/**
 * The reverse lookup smtp-server runs on each client, through DNS_SERVERS when set, made
 * forward-confirmed (FCrDNS): a PTR name counts only when its own A or AAAA records contain the
 * client's address. Anyone who controls the reverse zone of an address can publish any PTR
 * name, so an unconfirmed name would let a client claim another's identity in the greylist and
 * in `Received:`. A client without a confirmed name is logged and traced as `[address]`.
 */
import { Resolver } from 'node:dns/promises';
import { BlockList, isIPv4 } from 'node:net';

const REVERSE_TIMEOUT_MS = 3000;
/** PTR names checked per client, which bounds the lookups one connection can cause. */
const MAX_NAMES = 5;

export class NoConfirmedNameError extends Error {
  override name = 'NoConfirmedNameError';
  /** The code of node:dns for a name without records, so callers treat it like one. */
  readonly code = 'ENOTFOUND';
}

export function createReverseResolver(servers: readonly string[]) {
  const resolver = new Resolver({ timeout: REVERSE_TIMEOUT_MS, tries: 1 });
  if (servers.length > 0) {
    resolver.setServers([...servers]);
  }
  return {
    /** Calls back with the forward-confirmed names of the address, or an error when it has none. */
    reverse(address: string, callback: (error: Error | null, hostnames?: string[]) => void): void {
      confirmedNames(resolver, address).then(
        (hostnames) => {
          if (hostnames.length === 0) {
            callback(new NoConfirmedNameError(`${address} has no forward-confirmed name`));
            return;
          }
          callback(null, hostnames);
        },
        (error: Error) => callback(error),
      );
    },
  };
}

/** Returns the PTR names of the address whose A or AAAA records contain it, in PTR order. */
export async function confirmedNames(resolver: Resolver, address: string): Promise<string[]> {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const family = isIPv4(plain) ? 'ipv4' : 'ipv6';
  // BlockList compares addresses by value, so `2001:db8::1` matches `2001:0db8:0:0::1`.
  const client = new BlockList();
  client.addAddress(plain, family);

  const names = (await resolver.reverse(plain)).slice(0, MAX_NAMES);
  const checks = names.map(async (name) => {
    try {
      const addresses =
        family === 'ipv4' ? await resolver.resolve4(name) : await resolver.resolve6(name);
      return addresses.some((candidate) => client.check(candidate, family)) ? name : undefined;
    } catch {
      // A name that does not resolve is simply not confirmed.
      return undefined;
    }
  });
  const confirmed = await Promise.all(checks);
  return confirmed.filter((name): name is string => name !== undefined);
}
