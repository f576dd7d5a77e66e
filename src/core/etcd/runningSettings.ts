/**
 * Every tuning key a member's etcd really runs with, read on its host, beside what the inventory
 * renders for that member's version (`status --settings`, the health panel's Read Settings from
 * Hosts). On each host one root read: the running process's environment and arguments
 * (`systemctl show -p MainPID`, /proc/<pid>/environ and cmdline), and its env file and unit's
 * command line (what it would start with, the only source when etcd is not running). All of it
 * is hostile input: sent back in base64, cut at fixed sizes, only `ETCD_[A-Z0-9_]+` names and
 * `--lower-case-flag` arguments taken, and only the flags etcdRelease/flags.ts knows mapped to a
 * key (any release's name: 3.4's `--experimental-initial-corrupt-check` and 3.6's
 * `InitialCorruptCheck` gate are both corruptCheck). Settings no key renders and the tool does
 * not set are listed, never mapped. Pure except `readMemberSettings` / `readHostSettings`.
 */
import { boundedOutput } from '../ssh/boundedOutput';
import { errorMessage, isCancelled } from '../errors';
import {
  extraArgsLine,
  isOwnedFlag,
  newestFlagName,
  tuningEnv,
  tuningKeyOfFlag,
  tuningKeyOfGate,
  type EtcdTuning,
} from '../etcdRelease/flags';
import { parseEtcdVersion } from '../etcdRelease/version';
import { clientUrl, etcdHosts } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import type { HostTransport } from '../plan/runner';
import { hasControl } from '../plan/steps';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import type { HostSettings, HostSettingsMember, HostSettingsRow } from '../../shared/etcdTypes';
import { BIN_DIR, ENV_FILE } from './memberHost';
import { quotaText } from './effective';
import { renderTable } from '../format/table';

/** The most read of a process's environment and of an env file. */
export const MAX_ENV_BYTES = 64 * 1024;
/** The most read of a process's arguments and of the unit's command line. */
export const MAX_ARGS_BYTES = 16 * 1024;
/** The longest name=value (or argument) taken. */
export const MAX_ENTRY_CHARS = 4096;
/** The most entries taken from one source. */
export const MAX_ENTRIES = 512;
/** The most one host's read may print (every part at its bound, in base64, and the labels). */
const MAX_OUTPUT = 4 * (2 * MAX_ENV_BYTES + 2 * MAX_ARGS_BYTES) + 4096;

/** The keys compared, in the inventory's order (`profile` is heartbeat and election). */
export const SETTING_KEYS = [
  'quotaBackendBytes',
  'autoCompactionMode',
  'autoCompactionRetention',
  'heartbeatInterval',
  'electionTimeout',
  'snapshotCount',
  'maxRequestBytes',
  'corruptCheck',
  'compactHashCheck',
  'cipherSuites',
  'tlsMinVersion',
  'extraArgs',
] as const satisfies ReadonlyArray<keyof EtcdTuning>;
export type SettingKey = (typeof SETTING_KEYS)[number];

/** What one source says etcd runs with: values by key (normalised), the rest listed. */
export interface Settings {
  values: Partial<Record<SettingKey, string>>;
  /** No key renders these and the tool does not set them: `ETCD_X=v` or `--flag=v`. */
  unknown: string[];
  /** Entries refused: a malformed name, a control character, too long, too many. */
  refused: number;
}

/** One `name=value` environment entry or one `--flag[=value]` argument, kept. */
interface Entry {
  flag: string;
  value?: string;
  /** How it was written, for `unknown`. */
  text: string;
}

const ENV_NAME = /^ETCD_[A-Z0-9_]+$/;
const FLAG = /^--?([a-z0-9][a-z0-9-]*)(?:=(.*))?$/s;

/** `ETCD_QUOTA_BACKEND_BYTES` → `quota-backend-bytes` (etcd's pkg/flags, reversed). */
const flagOfEnv = (name: string) => name.slice(5).toLowerCase().replace(/_/g, '-');

/**
 * ETCD_* entries of an environment (`NUL`-separated, as /proc/<pid>/environ) or an env file
 * (lines, `#` comments, values maybe in quotes as systemd's EnvironmentFile takes them). Other
 * names are not etcd's and are skipped; a name that starts like etcd's but is not
 * `ETCD_[A-Z0-9_]+`, a control character, an entry past MAX_ENTRY_CHARS or MAX_ENTRIES is refused.
 * The first of a name counts in an environment (getenv's), the last in a file (systemd's).
 */
export function envEntries(
  text: string,
  kind: 'environ' | 'file',
): { entries: Entry[]; refused: number } {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  let refused = 0;
  const parts = kind === 'environ' ? text.split('\0') : text.split('\n');
  for (const raw of parts) {
    const part = kind === 'file' ? raw.replace(/\r$/, '').trim() : raw;
    if (!part || (kind === 'file' && (part.startsWith('#') || part.startsWith(';')))) continue;
    const i = part.indexOf('=');
    const name = i < 0 ? part : part.slice(0, i);
    if (!/^ETCD_/i.test(name)) continue;
    let value = i < 0 ? '' : part.slice(i + 1);
    if (kind === 'file') {
      const q = /^(['"])(.*)\1$/s.exec(value);
      if (q) value = q[2]!;
    }
    if (
      i < 0 ||
      !ENV_NAME.test(name) ||
      part.length > MAX_ENTRY_CHARS ||
      hasControl(value) ||
      entries.length >= MAX_ENTRIES
    ) {
      refused++;
      continue;
    }
    const entry = { flag: flagOfEnv(name), value, text: `${name}=${value}` };
    if (seen.has(name)) {
      if (kind === 'file')
        entries.splice(
          entries.findIndex((e) => e.flag === entry.flag),
          1,
          entry,
        );
      continue;
    }
    seen.add(name);
    entries.push(entry);
  }
  return { entries, refused };
}

/**
 * `--flag[=value]` arguments after the program (argv[0] is skipped). Only `--lower-case-name`
 * flags are taken; a bare word after a flag is its value (Go's flag package); anything else is
 * refused. The last of a flag counts (Go's).
 */
export function argEntries(argv: readonly string[]): { entries: Entry[]; refused: number } {
  const byFlag = new Map<string, Entry>();
  let refused = 0;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '') continue;
    const m = FLAG.exec(a);
    if (!m || a.length > MAX_ENTRY_CHARS || hasControl(a) || byFlag.size >= MAX_ENTRIES) {
      refused++;
      continue;
    }
    let value = m[2];
    const next = argv[i + 1];
    if (value === undefined && next !== undefined && next !== '' && !next.startsWith('-')) {
      if (next.length > MAX_ENTRY_CHARS || hasControl(next)) {
        refused++;
      } else value = next;
      i++;
    }
    const flag = m[1]!;
    byFlag.delete(flag);
    byFlag.set(flag, {
      flag,
      ...(value !== undefined ? { value } : {}),
      text: value === undefined ? `--${flag}` : `--${flag}=${value}`,
    });
  }
  return { entries: [...byFlag.values()], refused };
}

const NUMERIC = new Set<SettingKey>([
  'quotaBackendBytes',
  'heartbeatInterval',
  'electionTimeout',
  'snapshotCount',
  'maxRequestBytes',
]);
const BOOLEAN = new Set<SettingKey>(['corruptCheck', 'compactHashCheck']);

/** Go's strconv.ParseBool, as etcd reads a boolean flag; undefined when it is not one. */
function goBool(v: string | undefined): boolean | undefined {
  if (v === undefined || ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** A value in one spelling for comparing; undefined = etcd's default (also `false` switches). */
function normal(key: SettingKey, value: string | undefined): string | undefined {
  if (BOOLEAN.has(key)) {
    const b = goBool(value);
    return b === undefined ? value : b ? 'true' : undefined;
  }
  if (value === undefined) return undefined;
  if (NUMERIC.has(key) && /^\d{1,20}$/.test(value)) return String(Number(value));
  return value;
}

/**
 * What etcd runs with from its environment and its arguments (an argument wins over the same
 * flag in the environment, as in etcd). Flags the tool owns are left out; tuning flags under any
 * release's name give their key; the environment's feature gates give corruptCheck and
 * compactHashCheck; other arguments are extraArgs (the inventory puts extraArgs on the command
 * line), other environment entries are `unknown`.
 */
export function settingsOf(
  env: { entries: Entry[]; refused: number },
  args: { entries: Entry[]; refused: number },
): Settings {
  const values: Partial<Record<SettingKey, string>> = {};
  const unknown: string[] = [];
  const extra: string[] = [];
  const fromArgs = new Set(args.entries.map((e) => e.flag));
  const put = (key: SettingKey, value: string | undefined) => {
    const v = normal(key, value);
    if (v !== undefined) values[key] = v;
    else delete values[key];
  };
  for (const [source, list] of [
    ['env', env.entries.filter((e) => !fromArgs.has(e.flag))],
    ['args', args.entries],
  ] as const) {
    for (const e of list) {
      if (isOwnedFlag(e.flag)) continue;
      const key = tuningKeyOfFlag(e.flag) as SettingKey | undefined;
      if (key && (SETTING_KEYS as readonly string[]).includes(key)) {
        put(key, e.value);
      } else if (e.flag === 'feature-gates' && source === 'env') {
        for (const g of (e.value ?? '').split(',').filter(Boolean)) {
          const [gate = '', value] = g.split('=');
          const gk = tuningKeyOfGate(gate) as SettingKey | undefined;
          if (gk) put(gk, value ?? 'true');
          else unknown.push(`${e.text.split('=')[0]}: ${g}`);
        }
      } else if (source === 'args') {
        const flag = newestFlagName(e.flag);
        extra.push(e.value === undefined ? `--${flag}` : `--${flag}=${e.value}`);
      } else unknown.push(e.text);
    }
  }
  if (extra.length > 0) values.extraArgs = extra.sort().join(' ');
  return { values, unknown, refused: env.refused + args.refused };
}

/** What the inventory renders for a member of `version`, read back the same way. */
export function inventorySettings(tuning: EtcdTuning, version: string): Settings {
  const env = tuningEnv(tuning, version).map(([k, v]) => ({
    flag: flagOfEnv(k),
    value: v,
    text: `${k}=${v}`,
  }));
  return settingsOf({ entries: env, refused: 0 }, argEntries(['etcd', ...extraArgsLine(tuning)]));
}

/** What one host said, before it is compared. */
export interface MemberRead {
  /** The running etcd's pid; undefined when it is not running. */
  pid?: number;
  /** The process's environment and arguments. */
  process?: Settings;
  /** The env file and the unit's command line. */
  files?: Settings;
  version?: string;
  /** A part was cut at its bound. */
  truncated?: boolean;
}

/** The read-only root command that prints `key=value` lines, every file's bytes in base64. */
export function readCommand(unit = 'etcd'): string {
  const b64 = "base64 | tr -d '\\n'";
  return [
    `pid=$(systemctl show -p MainPID --value ${unit} 2>/dev/null || true)`,
    `case "$pid" in ''|*[!0-9]*) pid=0 ;; esac`,
    'echo "pid=$pid"',
    'exe=',
    'if [ "$pid" != 0 ] && [ -r "/proc/$pid/environ" ]; then',
    `  echo "environ=$(head -c ${MAX_ENV_BYTES + 1} "/proc/$pid/environ" | ${b64})"`,
    `  echo "cmdline=$(head -c ${MAX_ARGS_BYTES + 1} "/proc/$pid/cmdline" | ${b64})"`,
    '  exe="/proc/$pid/exe"',
    'else',
    `  exe=$(command -v etcd 2>/dev/null || true); if [ -x ${BIN_DIR}/etcd ]; then exe=${BIN_DIR}/etcd; fi`,
    'fi',
    `if [ -f ${ENV_FILE} ]; then echo "envfile=$(head -c ${MAX_ENV_BYTES + 1} ${ENV_FILE} | ${b64})"; fi`,
    `echo "execstart=$(systemctl show -p ExecStart --value ${unit} 2>/dev/null | head -c ${MAX_ARGS_BYTES + 1} | ${b64})"`,
    `if [ -n "$exe" ]; then echo "version=$("$exe" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n 1 | head -c 64)"; fi`,
    'echo end=1',
  ].join('\n');
}

/** base64 of at most `max + 1` bytes, decoded; undefined when it is not base64 of that size. */
function decoded(
  text: string | undefined,
  max: number,
): { text: string; cut: boolean } | undefined {
  if (text === undefined || text.length > 4 * Math.ceil((max + 1) / 3)) return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  const cut = bytes.length > max;
  return { text: bytes.subarray(0, max).toString('utf8'), cut };
}

/** A cut source loses its last entry (it may be half of one). */
const whole = (t: { text: string; cut: boolean }, sep: string) =>
  t.cut ? t.text.slice(0, Math.max(0, t.text.lastIndexOf(sep))) : t.text;

/** systemd's `ExecStart` property: `{ path=... ; argv[]=/usr/local/bin/etcd --x=1 ; ... }`. */
export function execStartArgv(text: string): string[] {
  const m = /argv\[\]=([^;{}]*)/.exec(text);
  return (m ? m[1]! : '').trim().split(/\s+/).filter(Boolean);
}

/** Splits the read command's output; anything not in its shape is left out. */
export function parseRead(out: string): MemberRead {
  const kv = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && !kv.has(line.slice(0, i))) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const r: MemberRead = {};
  const pid = Number(kv.get('pid'));
  let truncated = false;
  const environ = decoded(kv.get('environ'), MAX_ENV_BYTES);
  const cmdline = decoded(kv.get('cmdline'), MAX_ARGS_BYTES);
  if (Number.isSafeInteger(pid) && pid > 0 && environ && cmdline) {
    r.pid = pid;
    truncated ||= environ.cut || cmdline.cut;
    r.process = settingsOf(
      envEntries(whole(environ, '\0'), 'environ'),
      argEntries(whole(cmdline, '\0').split('\0')),
    );
  }
  const envfile = decoded(kv.get('envfile'), MAX_ENV_BYTES);
  const exec = decoded(kv.get('execstart'), MAX_ARGS_BYTES);
  const argv = execStartArgv(exec ? whole(exec, ' ') : '');
  if (envfile || argv.length > 0) {
    truncated ||= Boolean(envfile?.cut || exec?.cut);
    r.files = settingsOf(envEntries(envfile ? whole(envfile, '\n') : '', 'file'), argEntries(argv));
  }
  const v = kv.get('version')?.trim();
  if (v && v.length <= 64 && /^\d+\.\d+\.\d+[0-9A-Za-z.+-]*$/.test(v) && parseEtcdVersion(v))
    r.version = v;
  if (truncated) r.truncated = true;
  return r;
}

/** Reads one member's host over `t` (as root); throws when the host cannot be read. */
export async function readMemberSettings(
  t: HostTransport,
  signal?: AbortSignal,
): Promise<MemberRead> {
  const out = boundedOutput(MAX_OUTPUT, signal);
  try {
    const r = await t.exec(readCommand(), {
      sudo: true,
      signal: out.signal,
      stdoutStream: out.sink,
    });
    const text = r.stdout || out.text();
    if (r.code !== 0) throw new Error(`reading etcd's settings as root failed (exit ${r.code})`);
    if (!/^end=1$/m.test(text)) throw new Error('its answer was cut short');
    return parseRead(text);
  } catch (err) {
    if (out.overflow) throw new Error(`it printed more than ${MAX_OUTPUT} bytes`);
    throw err;
  } finally {
    out.dispose();
  }
}

/** A value in the inventory's words: `64 MiB`, `500 ms`, `default`. */
export function settingText(key: SettingKey, value: string | undefined): string {
  if (value === undefined) return 'default';
  if ((key === 'quotaBackendBytes' || key === 'maxRequestBytes') && /^\d+$/.test(value))
    return Number(value) % 2 ** 20 === 0 ? quotaText(Number(value)) : value;
  if ((key === 'heartbeatInterval' || key === 'electionTimeout') && /^\d+$/.test(value))
    return `${value} ms`;
  return value;
}

/** One member: where it stands, for `compareSettings`. */
export interface MemberInput {
  member: string;
  host: string;
  endpoint: string;
  read?: MemberRead;
  error?: string;
}

const differ = (a: Settings, b: Settings) => SETTING_KEYS.some((k) => a.values[k] !== b.values[k]);

/**
 * The inventory's tuning beside what each member runs with (its process, or its files when etcd
 * is not running), each member against what the inventory renders for the version it runs, and
 * what to run where they differ: provision when the files differ (it rewrites them and restarts
 * the member, one at a time), a restart when only the running etcd does.
 */
export function compareSettings(
  cluster: Cluster,
  members: readonly MemberInput[],
  at = new Date(),
): HostSettings {
  const tuning = cluster.etcd.tuning;
  const asked = inventorySettings(tuning, cluster.etcd.version);
  const out: HostSettingsMember[] = [];
  const effective = new Map<string, Settings>();
  const differs = new Map<SettingKey, string[]>();
  const provision: string[] = [];
  const restart: string[] = [];
  const stopped: string[] = [];
  const unread: string[] = [];
  for (const m of members) {
    const r = m.read;
    const source = r?.process ? 'process' : r?.files ? 'files' : 'unread';
    const s = r?.process ?? r?.files;
    const base = { member: m.member, host: m.host, endpoint: m.endpoint };
    if (!r || !s) {
      const error = m.error ?? 'etcd is not installed there (no process, env file or unit)';
      out.push({ ...base, source: 'unread', error, unknown: [], refused: 0 });
      unread.push(`${m.host} (${error})`);
      continue;
    }
    effective.set(m.member, s);
    const want = inventorySettings(tuning, r.version ?? cluster.etcd.version);
    const stale = Boolean(r.process && r.files && differ(r.process, r.files));
    out.push({
      ...base,
      source,
      ...(r.pid ? { pid: r.pid } : {}),
      ...(r.version ? { version: r.version } : {}),
      unknown: s.unknown,
      refused: s.refused + (r.files && r.process ? r.files.refused : 0),
      ...(stale ? { stale } : {}),
      ...(r.truncated ? { error: 'part of what it runs with was cut at the size read' } : {}),
    });
    let off = false;
    for (const k of SETTING_KEYS) {
      if (s.values[k] === want.values[k]) continue;
      off = true;
      differs.set(k, [...(differs.get(k) ?? []), m.member]);
    }
    if (source === 'files') stopped.push(m.host);
    else if (off && r.files && !differ(r.files, want)) restart.push(m.host);
    else if (off) provision.push(m.host);
  }
  const rows: HostSettingsRow[] = SETTING_KEYS.filter(
    (k) =>
      asked.values[k] !== undefined ||
      [...effective.values()].some((s) => s.values[k] !== undefined),
  ).map((k) => ({
    key: k,
    inventory: settingText(k, asked.values[k]),
    values: Object.fromEntries(
      [...effective.entries()].map(([m, s]) => [m, settingText(k, s.values[k])]),
    ),
    differs: differs.get(k) ?? [],
  }));
  const actions: string[] = [];
  const cmd = `k3s-etcd provision etcd --cluster ${cluster.name}`;
  if (provision.length > 0)
    actions.push(
      `${provision.join(', ')} ${provision.length === 1 ? 'runs' : 'run'} with other settings than the inventory's: apply them with \`${cmd}\` (it rewrites the env file and the unit and restarts one member at a time)`,
    );
  if (restart.length > 0)
    actions.push(
      `${restart.join(', ')}: the env file and the unit already hold the inventory's settings but etcd was not restarted on them: restart it one member at a time (\`sudo systemctl restart etcd\` on each, waiting for \`k3s-etcd health\` in between), or run \`${cmd}\` after changing a file`,
    );
  if (stopped.length > 0)
    actions.push(
      `etcd is not running on ${stopped.join(', ')}: its settings are read from the env file and the unit; \`${cmd}\` starts it`,
    );
  if (unread.length > 0) actions.push(`not read: ${unread.join('; ')}`);
  return { at: at.toISOString(), members: out, rows, actions };
}

/** Did every member read run with the inventory's values? */
export const settingsAgree = (s: HostSettings): boolean => s.actions.length === 0;

export interface ReadSettingsOptions {
  ssh: SshContext;
  signal?: AbortSignal;
  /** A transport to a host (tests, or this machine); default SSH as the inventory says. */
  open?: (host: Host, signal?: AbortSignal) => Promise<HostTransport>;
}

/** Reads every etcd host of `cluster` in parallel and compares (a host that fails is named). */
export async function readHostSettings(
  cluster: Cluster,
  opts: ReadSettingsOptions,
): Promise<HostSettings> {
  const open = opts.open ?? ((h, s) => sshOpener(cluster, h, opts.ssh)(s));
  const members = await Promise.all(
    etcdHosts(cluster).map(async (h): Promise<MemberInput> => {
      const base = { member: h.memberName, host: h.name, endpoint: clientUrl(cluster, h) };
      let t: HostTransport | undefined;
      try {
        t = await open(h, opts.signal);
        return { ...base, read: await readMemberSettings(t, opts.signal) };
      } catch (err) {
        if (isCancelled(err) && opts.signal?.aborted) throw err;
        return { ...base, error: errorMessage(err) };
      } finally {
        t?.close();
      }
    }),
  );
  return compareSettings(cluster, members);
}

/** Where a member's values come from, in words. */
export function sourceText(m: HostSettingsMember): string {
  const v = m.version ? `etcd ${m.version}, ` : '';
  switch (m.source) {
    case 'process':
      return `${v}the running etcd (pid ${m.pid ?? '?'}): its environment and arguments${m.stale ? '; its env file or unit now says otherwise' : ''}`;
    case 'files':
      return `${v}etcd is not running: from ${ENV_FILE} and the unit's command line`;
    case 'unread':
      return `not read: ${m.error ?? 'no answer'}`;
  }
}

/**
 * The comparison as `status --settings` prints it: KEY | INVENTORY | one column per member, a
 * value that is not the inventory's marked `*`; each member's source, what it runs with that no
 * key renders, and what to run.
 */
export function hostSettingsText(s: HostSettings): string {
  const read = s.members.filter((m) => m.source !== 'unread');
  const lines: string[] = [];
  if (s.rows.length === 0) {
    lines.push(
      read.length > 0
        ? "No tuning key is set in the inventory or on any member: etcd's defaults everywhere."
        : 'No member could be read.',
    );
  } else {
    lines.push(
      renderTable(
        ['KEY', 'INVENTORY', ...read.map((m) => m.member)],
        s.rows.map((r) => [
          r.key,
          r.inventory,
          ...read.map((m) => {
            const v = r.values[m.member] ?? '';
            return r.differs.includes(m.member) ? `* ${v}` : v;
          }),
        ]),
      ),
    );
    if (s.rows.some((r) => r.differs.length > 0)) lines.push("* not the inventory's value");
  }
  for (const m of s.members) {
    lines.push(`${m.member} (${m.host}): ${sourceText(m)}`);
    if (m.error && m.source !== 'unread') lines.push(`  warning: ${m.error}`);
    for (const u of m.unknown) lines.push(`  also set, not from the inventory: ${u}`);
    if (m.refused > 0)
      lines.push(
        `  ${m.refused} entr${m.refused === 1 ? 'y' : 'ies'} not read (malformed or too large)`,
      );
  }
  for (const a of s.actions) lines.push(`to do: ${a}`);
  if (s.actions.length === 0) lines.push("Every member runs with the inventory's settings.");
  return lines.join('\n');
}
