import { Resolver } from 'node:dns/promises';

const REVERSE_TIMEOUT_MS = 3000;

/**
 * The reverse lookup smtp-server runs on each client, through DNS_SERVERS when set. A failed
 * lookup is not an error for the session: the client is then logged as `[address]`.
 */
export function createReverseResolver(servers: string[]) {
  const resolver = new Resolver({ timeout: REVERSE_TIMEOUT_MS, tries: 1 });
  if (servers.length > 0) {
    resolver.setServers(servers);
  }
  return {
    reverse(address: string, callback: (error: Error | null, hostnames?: string[]) => void): void {
      resolver.reverse(address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')).then(
        (hostnames) => callback(null, hostnames),
        (error: Error) => callback(error),
      );
    },
  };
}
