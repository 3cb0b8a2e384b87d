/**
 * Self-signed certificates for tests of STARTTLS, written as PEM files the way an operator
 * provides them through MX_TLS_CERT_FILE and MX_TLS_KEY_FILE.
 */
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** SHA-256 fingerprint in the colon-separated form of tls.PeerCertificate.fingerprint256. */
  fingerprint256: string;
}

/**
 * Creates a P-256 certificate for hostname, valid from yesterday for a day more, and writes it
 * to `<prefix>.crt` and `<prefix>.key` in directory, replacing files of the same name.
 */
export async function writeTestCertificate(
  directory: string,
  hostname: string,
  prefix = 'ingress',
): Promise<TestCertificate> {
  const now = Date.now();
  const generated = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    notBeforeDate: new Date(now - 86_400_000),
    notAfterDate: new Date(now + 2 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
  });
  const certFile = join(directory, `${prefix}.crt`);
  const keyFile = join(directory, `${prefix}.key`);
  await writeFile(keyFile, generated.private, { mode: 0o600 });
  await writeFile(certFile, generated.cert);
  return { certFile, keyFile, fingerprint256: new X509Certificate(generated.cert).fingerprint256 };
}
