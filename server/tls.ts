/**
 * The certificate HTTPS and HTTP/2 serve: the PEM files TLS_CERT and TLS_KEY name, or else a
 * self-signed one for 127.0.0.1, ::1 and localhost, made at start by `selfsigned` (an ECDSA P-256 key,
 * valid for 7 days, never written to disk). Browsers and clients must be told to accept the latter
 * (Chromium: `ignoreHTTPSErrors`; undici/ws/http2: `rejectUnauthorized: false`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';

export interface Credentials {
  readonly key: string;
  readonly cert: string;
  /** For the start-up line: which certificate this is. */
  readonly source: string;
}

const SELF_SIGNED_DAYS = 7;
let selfSignedOnce: Promise<Credentials> | undefined;

/** One self-signed certificate per process: every app built in it (tests, several instances) shares it. */
export function selfSignedCredentials(): Promise<Credentials> {
  selfSignedOnce ??= (async () => {
    const notBeforeDate = new Date();
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate: new Date(notBeforeDate.getTime() + SELF_SIGNED_DAYS * 86_400_000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
            { type: 7, ip: '::1' },
          ],
        },
      ],
    });
    return {
      key: pems.private,
      cert: pems.cert,
      source: `self-signed for localhost, 127.0.0.1 and ::1 (fingerprint ${pems.fingerprint}), made at start`,
    };
  })();
  return selfSignedOnce;
}

/** The credentials `config` asks for, or undefined when it serves cleartext HTTP/1.1. */
export async function loadCredentials(config: Readonly<Config>): Promise<Credentials | undefined> {
  if (!config.tls && !config.http2) return undefined;
  if (config.tlsCert === '') return selfSignedCredentials();
  const read = async (key: 'tlsCert' | 'tlsKey', path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError(key, path, `cannot read it: ${(err as Error).message}`);
    }
  };
  const [cert, key] = await Promise.all([read('tlsCert', config.tlsCert), read('tlsKey', config.tlsKey)]);
  return { key, cert, source: `TLS_CERT=${config.tlsCert}, TLS_KEY=${config.tlsKey}` };
}

/**
 * The self-signed certificate as PEM files in a folder of their own (key readable by this user only),
 * removed when the process exits: for a cluster primary to hand one certificate to every worker.
 */
export async function writeSelfSigned(): Promise<{ cert: string; key: string; source: string }> {
  const c = await selfSignedCredentials();
  const dir = mkdtempSync(join(tmpdir(), 'transport-lab-tls-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await writeFile(cert, c.cert);
  await writeFile(key, c.key, { mode: 0o600 });
  return { cert, key, source: c.source };
}
