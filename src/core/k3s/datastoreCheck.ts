/**
 * Before K3s is installed or restarted on a server: prove from that host that the datastore
 * answers with exactly the files config.yaml will name. The CA, client certificate and key are
 * uploaded to a private temp folder on the host, each member's `/health` is asked with curl
 * (or etcdctl when the host has no curl), the folder is removed, and a failure is worded by
 * what it is: unknown authority, SAN mismatch, client certificate rejected, refused, timeout.
 */
import { K3sEtcdError } from '../errors';
import type { HostTransport } from '../plan/runner';
import { shellQuote as q } from '../ssh/quote';

export interface EndpointCheck {
  endpoint: string;
  ok: boolean;
  /** Worded cause when not ok. */
  problem?: string;
  /** The tool's own output (for the log). */
  raw: string;
}

const MARK = '@@k3s-etcd-check';

export function datastoreCheckScript(
  endpoints: readonly string[],
  dir: string,
  etcdctl?: string,
): string {
  const files = `--cacert ${q(`${dir}/ca.pem`)} --cert ${q(`${dir}/client.pem`)} --key ${q(`${dir}/client-key.pem`)}`;
  const ask = etcdctl
    ? `ETCDCTL_API=3 ${q(etcdctl)} --endpoints="$ep" ${files} --dial-timeout=5s --command-timeout=5s endpoint health 2>&1`
    : `curl -sS --max-time 5 ${files} "$ep/health" 2>&1`;
  return [
    `for ep in ${endpoints.map(q).join(' ')}; do`,
    `  out=$(${ask}); rc=$?`,
    `  echo "${MARK} $ep $rc"`,
    '  printf "%s\\n" "$out"',
    'done',
    `echo "${MARK} end"`,
  ].join('\n');
}

/** Why a member did not answer, from curl's or etcdctl's words. */
export function wordFailure(endpoint: string, rc: number, text: string): string {
  const host = endpoint.replace(/^https?:\/\//, '').replace(/:\d+$/, '');
  if (
    /unable to get local issuer|self[- ]signed certificate|signed by unknown authority|certificate verify failed/i.test(
      text,
    )
  )
    return `TLS unknown authority: ${endpoint}'s server certificate is not signed by the datastore CA (ca.pem of this cluster): use the CA that signed the etcd members' certificates`;
  if (
    /no alternative certificate subject name|subject name does not match|certificate is valid for|not valid for any names/i.test(
      text,
    )
  )
    return `SAN mismatch: ${endpoint}'s server certificate does not name ${host}: re-issue that member's certificates (Reissue, or Fix peer URL after an IP change)`;
  if (
    /alert unknown ca|alert bad certificate|certificate required|alert number 4[26]|tlsv13 alert/i.test(
      text,
    )
  )
    return `client certificate rejected by ${endpoint}: etcd trusts another CA for clients: use the k3s client certificate issued by the cluster's CA`;
  if (rc === 7 || /connection refused|couldn't connect/i.test(text))
    return `connection refused by ${endpoint}: is etcd running there (systemctl status etcd)?`;
  if (rc === 28 || /timed out|deadline exceeded|context deadline/i.test(text))
    return `no answer from ${endpoint} within 5 s: a firewall, or the member is down`;
  if (rc === 6 || /could not resolve/i.test(text))
    return `${host} does not resolve from the server: use an address in k3s-etcd.yaml`;
  return `${endpoint}: ${text.trim().split('\n')[0] || `exit ${rc}`}`;
}

export function parseDatastoreCheck(out: string): EndpointCheck[] {
  const checks: EndpointCheck[] = [];
  const parts = out.split(`${MARK} `).slice(1);
  for (const part of parts) {
    const nl = part.indexOf('\n');
    const head = (nl < 0 ? part : part.slice(0, nl)).trim();
    if (head === 'end') break;
    const [endpoint = '', rcText = '1'] = head.split(' ');
    const raw = nl < 0 ? '' : part.slice(nl + 1).trim();
    const rc = Number(rcText);
    const healthy =
      rc === 0 && (/"health"\s*:\s*"?true/.test(raw) || /is healthy: successfully/.test(raw));
    checks.push({
      endpoint,
      ok: healthy,
      raw,
      ...(healthy
        ? {}
        : {
            problem:
              rc === 0
                ? `${endpoint} answered but is not healthy (${raw.split('\n')[0]})`
                : wordFailure(endpoint, rc, raw),
          }),
    });
  }
  return checks;
}

/**
 * Runs the check on the host through `t` with `files` (the bytes config.yaml's files will
 * hold). Needs curl or etcdctl on the host.
 */
export async function checkDatastoreFromHost(
  t: HostTransport,
  hostName: string,
  endpoints: readonly string[],
  files: { ca: Buffer; cert: Buffer; key: Buffer },
  tools: { curl: boolean; etcdctl?: string },
  signal?: AbortSignal,
): Promise<EndpointCheck[]> {
  if (!tools.curl && !tools.etcdctl) {
    throw new K3sEtcdError(
      'k3s-datastore-check',
      `${hostName} has neither curl nor etcdctl to check the datastore from there: install curl (apt-get install curl) and run again.`,
    );
  }
  const mk = await t.exec('umask 077 && mktemp -d /tmp/.k3s-etcd-check-XXXXXXXX', {
    ...(signal ? { signal } : {}),
  });
  const dir = mk.stdout.trim();
  if (mk.code !== 0 || !dir.startsWith('/tmp/')) {
    throw new K3sEtcdError(
      'k3s-datastore-check',
      `${hostName}: cannot make a temp folder for the datastore check: ${mk.stderr.trim()}`,
    );
  }
  try {
    await t.put(`${dir}/ca.pem`, { data: files.ca });
    await t.put(`${dir}/client.pem`, { data: files.cert });
    await t.put(`${dir}/client-key.pem`, { data: files.key });
    const r = await t.exec(
      datastoreCheckScript(endpoints, dir, tools.curl ? undefined : tools.etcdctl),
      signal ? { signal } : {},
    );
    return parseDatastoreCheck(r.stdout);
  } finally {
    await t.exec(`rm -rf ${q(dir)}`).catch(() => undefined);
  }
}

/** Refuses, naming each member's problem, unless at least one member answered healthy. */
export function requireDatastore(hostName: string, checks: readonly EndpointCheck[]): string[] {
  const bad = checks.filter((c) => !c.ok);
  if (checks.length > 0 && bad.length < checks.length)
    return bad.map((c) => `warning: ${c.problem ?? c.endpoint}`);
  throw new K3sEtcdError(
    'k3s-datastore-check',
    `${hostName} cannot use the datastore with these files, so K3s was not installed or restarted: ${bad.map((c) => c.problem).join('; ')}`,
  );
}
