/**
 * The client side of a cluster's TLS for our own HTTP/2 clients (`rpc.ts`): the client
 * certificate and key, and the cluster's CA as the only trust. A connection first shakes hands
 * with a context that holds no CA at all, and is kept only when `directTrust.ts` accepts the
 * certificate the member served (issued directly by the cluster's CA, for this host); anything
 * else is dialled again with Node's own verification against the CA, which then accepts it or
 * refuses it with Node's error. No request is sent before one of the two has said yes.
 *
 * Why: a secure context with a `ca` makes Node build and copy its public root store first,
 * 20-35 ms on this kind of machine, more than a one-shot command's handshakes and calls.
 */
import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { tlsCredentials, type EtcdTls } from './client';
import { pemCertificates, trustsDirectly } from './directTrust';

export class ClusterTls {
  private checked: SecureContext | undefined;

  private constructor(
    /** The client certificate and key, no CA: only for handshakes `trustsDirectly` checks. */
    private readonly bare: SecureContext,
    private readonly anchors: readonly X509Certificate[],
    private readonly creds: { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer },
  ) {}

  /** Reads and parses the TLS files once, for every connection of a call. */
  static async load(tls: EtcdTls): Promise<ClusterTls> {
    const creds = await tlsCredentials(tls);
    const bare = createSecureContext({ ca: [], cert: creds.certChain, key: creds.privateKey });
    const t = new ClusterTls(bare, pemCertificates(creds.rootCertificate), creds);
    // A CA file with no certificate in it: Node's context says what is wrong, now, as before.
    if (t.anchors.length === 0) t.verifying();
    return t;
  }

  /** The context Node verifies with (the CA, the client certificate): built on first need. */
  verifying(): SecureContext {
    this.checked ??= createSecureContext({
      ca: this.creds.rootCertificate,
      cert: this.creds.certChain,
      key: this.creds.privateKey,
    });
    return this.checked;
  }

  /**
   * A TLS connection to `host:port` offering HTTP/2 whose server is trusted: it resolves once
   * the certificate passed, and rejects with the socket's or Node's verification error.
   * `onError` gets the errors of the socket it resolves with (a TLS alert after the
   * handshake: the server refusing our certificate). Aborting destroys the connection.
   */
  connect(
    host: string,
    port: number,
    opts: { signal?: AbortSignal; onError: (err: Error) => void },
  ): Promise<TLSSocket> {
    // SNI carries host names only; an IP address is checked against the IP SANs.
    const base = { host, port, ALPNProtocols: ['h2'], ...(isIP(host) ? {} : { servername: host }) };
    return new Promise<TLSSocket>((resolve, reject) => {
      let current: TLSSocket | undefined;
      const onAbort = () => {
        current?.destroy();
        reject(new Error('Connection cancelled'));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (socket: TLSSocket) => {
        opts.signal?.removeEventListener('abort', onAbort);
        socket.off('error', fail);
        socket.on('error', opts.onError);
        resolve(socket);
      };
      const fail = (err: Error) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      const quick = connect({ ...base, secureContext: this.bare, rejectUnauthorized: false });
      current = quick;
      quick.once('error', fail);
      quick.once('secureConnect', () => {
        // This order: once getPeerX509Certificate() has run, Node 20's getPeerCertificate()
        // answers {} (no names, so the identity check would fail).
        const peer = quick.getPeerCertificate();
        const leaf = quick.getPeerX509Certificate();
        if (leaf && trustsDirectly(leaf, peer, host, this.anchors)) return settle(quick);
        quick.off('error', fail);
        quick.on('error', () => undefined); // closed unused: nothing it says matters now
        quick.destroy();
        const checked = connect({ ...base, secureContext: this.verifying() });
        current = checked;
        checked.once('error', fail);
        checked.once('secureConnect', () => settle(checked));
      });
    });
  }
}
