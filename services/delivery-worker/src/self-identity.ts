/**
 * Recognizes ourselves among next hops, so a message is never handed back to our own ingress:
 * by the names under which we appear in MX records, and by the address and port where our
 * ingress listens.
 */
import { BlockList, isIP } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import type { ListenAddress } from '@secondary-mx/config';

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/** Lower-cases a host name and drops the trailing dot of a fully qualified name. */
export function normalizeHostName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function familyOf(address: string): 'ipv4' | 'ipv6' | undefined {
  const version = isIP(address);
  if (version === 4) {
    return 'ipv4';
  }
  return version === 6 ? 'ipv6' : undefined;
}

function addLocalAddresses(list: BlockList, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): void {
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addAddress('::1', 'ipv6');
  // A connection to the unspecified address reaches the local host.
  list.addAddress('0.0.0.0', 'ipv4');
  list.addAddress('::', 'ipv6');
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      list.addAddress(entry.address, entry.family === 'IPv4' ? 'ipv4' : 'ipv6');
    }
  }
}

export class SelfIdentity {
  private readonly names: Set<string>;
  private readonly listenAddresses = new BlockList();
  private readonly listenPort: number;

  /**
   * A wildcard listener (0.0.0.0 or ::) counts as every address of every local interface plus
   * the loopback addresses, for both families, because a dual-stack `::` socket takes IPv4 too.
   */
  constructor(
    selfNames: readonly string[],
    listen: ListenAddress,
    interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
  ) {
    this.names = new Set(selfNames.map(normalizeHostName));
    this.listenPort = listen.port;
    const host = normalizeHostName(listen.host);
    const family = familyOf(host);
    if (WILDCARD_HOSTS.has(host)) {
      addLocalAddresses(this.listenAddresses, interfaces);
    } else if (family !== undefined) {
      this.listenAddresses.addAddress(host, family);
    } else if (host === 'localhost') {
      this.listenAddresses.addAddress('127.0.0.1', 'ipv4');
      this.listenAddresses.addAddress('::1', 'ipv6');
    } else {
      // NOTE: a listener given by another host name is recognized by that name only, because
      // resolving it here would need DNS at start-up.
      this.names.add(host);
    }
  }

  /** Returns whether a next-hop host name is one of our MX_SELF_NAMES. */
  isSelfName(host: string): boolean {
    return this.names.has(normalizeHostName(host));
  }

  /** Returns whether a connection to address:port would reach our own ingress listener. */
  isSelfAddress(address: string, port: number): boolean {
    const family = familyOf(address);
    return (
      port === this.listenPort &&
      family !== undefined &&
      this.listenAddresses.check(address, family)
    );
  }
}
