/**
 * The certificate ingress offers with STARTTLS, from MX_TLS_CERT_FILE and MX_TLS_KEY_FILE.
 * Without them ingress does not offer STARTTLS at all. The files are polled every
 * MX_TLS_RELOAD_INTERVAL; when either changes, the pair is read again, checked, and swapped
 * into the running server, so a renewed certificate takes effect for the next STARTTLS without
 * a restart. A pair that fails the check (a key that does not match the certificate, a file
 * still being written) is logged and the previous pair stays in use until the next change.
 */
import { readFileSync, type Stats, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Logger } from '@secondary-mx/logger';
import type { SMTPServer } from 'smtp-server';

export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads the certificate chain and key and checks that they form a usable pair. Throws an
 * error that names the files when they cannot be read or do not match.
 */
export function readTlsCredentials(certFile: string, keyFile: string): TlsCredentials {
  const credentials = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  try {
    createSecureContext(credentials);
  } catch (error) {
    throw new Error(
      `TLS certificate ${certFile} and key ${keyFile} are not a valid pair: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return credentials;
}

/**
 * Polls both files and swaps a changed pair into the server with updateSecureContext.
 * Returns a function that stops polling.
 */
export function watchTlsCredentials(
  server: SMTPServer,
  certFile: string,
  keyFile: string,
  intervalMs: number,
  logger: Logger,
): () => void {
  const log = logger.child({ certFile, keyFile });
  const reload = (current: Stats, previous: Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino) {
      return;
    }
    let credentials: TlsCredentials;
    try {
      credentials = readTlsCredentials(certFile, keyFile);
    } catch (error) {
      log.error({ err: error }, 'TLS certificate not reloaded, the previous one stays in use');
      return;
    }
    server.updateSecureContext(credentials);
    log.info('TLS certificate reloaded');
  };
  const options = { interval: intervalMs, persistent: false };
  watchFile(certFile, options, reload);
  watchFile(keyFile, options, reload);
  return () => {
    unwatchFile(certFile, reload);
    unwatchFile(keyFile, reload);
  };
}
