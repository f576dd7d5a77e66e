/**
 * The certificate a member serves on a URL, read with a TLS handshake that presents no client
 * certificate and trusts nothing (it only looks). With TLS 1.3 the server shows its certificate
 * before it judges the client's, so a member that requires client certificates is still read;
 * a one-line HTTP request after the handshake then says whether it really requires one (etcd
 * with client-cert-auth refuses the connection; one without answers). Bounded by a deadline.
 */
import { connect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';

export interface Served {
  url: string;
  /** The leaf the member served (its DER), when the handshake got that far. */
  cert?: X509Certificate;
  /** Whether the member refused a client without a certificate; 'unknown' when it did not say. */
  clientCert: 'required' | 'not-required' | 'unknown';
  /** Why no certificate was read: refused, timed out, the handshake failed. */
  error?: string;
}

function target(url: string): { host: string; port: number } | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:') return undefined;
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    return { host, port: Number(u.port || 443) };
  } catch {
    return undefined;
  }
}

function words(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return 'connection refused (is etcd running?)';
  if (err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') return 'host unreachable';
  return `TLS handshake failed (${err.code ?? err.message})`;
}

/** Reads what `url` serves, within `timeoutMs`. Never throws. */
export function readServed(url: string, timeoutMs = 5000, signal?: AbortSignal): Promise<Served> {
  const t = target(url);
  if (!t) return Promise.resolve({ url, clientCert: 'unknown', error: 'not an https URL' });
  return new Promise<Served>((resolve) => {
    const socket: TLSSocket = connect({
      host: t.host,
      port: t.port,
      ...(isIP(t.host) ? {} : { servername: t.host }),
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
    });
    let cert: X509Certificate | undefined;
    let settled = false;
    const finish = (r: Omit<Served, 'url' | 'cert'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ url, ...(cert ? { cert } : {}), ...r });
    };
    const onAbort = () => finish({ clientCert: 'unknown', error: 'cancelled' });
    const timer = setTimeout(
      () =>
        finish({
          clientCert: 'unknown',
          ...(cert ? {} : { error: `no TLS answer within ${timeoutMs / 1000} s` }),
        }),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    let answer = '';
    socket.once('secureConnect', () => {
      const raw = socket.getPeerX509Certificate();
      if (raw) cert = raw;
      if (!cert) return finish({ clientCert: 'unknown', error: 'the member sent no certificate' });
      socket.write(`GET /version HTTP/1.1\r\nHost: ${t.host}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (/^HTTP\/1\.[01] \d{3}/.test(answer)) finish({ clientCert: 'not-required' });
      else if (answer.length > 64) finish({ clientCert: 'unknown' });
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      // After the handshake, an error is the member refusing a client without a certificate.
      cert
        ? finish({ clientCert: 'required' })
        : finish({ clientCert: 'unknown', error: words(err) }),
    );
    socket.on('close', () =>
      cert
        ? finish({ clientCert: 'required' })
        : finish({
            clientCert: 'unknown',
            error: 'the member closed the connection during the handshake',
          }),
    );
  });
}
