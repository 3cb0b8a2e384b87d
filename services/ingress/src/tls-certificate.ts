/**
 * The certificate ingress offers with STARTTLS: the operator's files when MX_TLS_CERT_FILE and
 * MX_TLS_KEY_FILE are set, otherwise a self-signed one for MX_HOSTNAME made at start and valid
 * for a year. Sending servers use opportunistic TLS and rarely verify the certificate; a
 * self-signed one still encrypts, as Debian's snakeoil certificate does for Postfix.
 */
import { readFileSync } from 'node:fs';
import { generate } from 'selfsigned';

export interface TlsCredentials {
  key: Buffer | string;
  cert: Buffer | string;
}

const VALIDITY_MS = 365 * 86_400_000;

export async function loadTlsCredentials(
  certFile: string,
  keyFile: string,
  hostname: string,
): Promise<TlsCredentials> {
  if (certFile !== '' && keyFile !== '') {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  }
  const now = Date.now();
  const generated = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    notBeforeDate: new Date(now - 86_400_000),
    notAfterDate: new Date(now + VALIDITY_MS),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
  });
  return { cert: generated.cert, key: generated.private };
}
