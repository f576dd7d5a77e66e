/**
 * A plan is data: per host, ordered steps (guards that only read, directories and files with
 * owner/mode/content hash, commands with a check that says whether they are already done,
 * services restarted only when a step they depend on changed, waits). `render.ts` turns a host's
 * steps into one POSIX `sh` script, which both runners execute: over SSH (`runner.ts`), or in
 * the host's own terminal (`local.ts`).
 */
import { createHash } from 'node:crypto';

/**
 * A step's outcome. `not-run` is a dry run's word for a check that waits on a change before it
 * (etcd active after the start step would start it): it cannot be checked before the change.
 */
export type StepStatus = 'ok' | 'unchanged' | 'changed' | 'would-change' | 'failed' | 'not-run';

interface StepBase {
  /** Short id used for dependencies (`restartOn`). */
  id: string;
  title: string;
}

/** Read-only precondition: `check` must succeed, else the run stops with `message`. */
export interface GuardStep extends StepBase {
  kind: 'guard';
  check: string;
  /** Shell word list printed on failure (may use variables the check set). */
  message: string;
}

export interface DirStep extends StepBase {
  kind: 'dir';
  path: string;
  mode: number;
  owner: string;
  group: string;
}

export interface FileStep extends StepBase {
  kind: 'file';
  path: string;
  mode: number;
  owner: string;
  group: string;
  sha256: string;
  /** Text written through a here-document, or a payload staged beside the script. */
  source: { text: string } | { payload: string };
  /** Keep a dated copy of a file that is about to be replaced. */
  backup?: boolean;
}

export interface CommandStep extends StepBase {
  kind: 'command';
  /** Exit 0 = already done. Must only read. */
  check: string;
  run: string;
  /** The files `run` replaces (a rolling change backs them up first, to put them back). */
  writes?: string[];
}

export interface ServiceStep extends StepBase {
  kind: 'service';
  unit: string;
  /** Step ids whose change requires a restart (a unit file among them also reloads systemd). */
  restartOn: string[];
  /** Step id of the unit file (daemon-reload when it changed). */
  unitFileStep?: string;
  /** Step id of an installer that starts the service itself: when it changed, no restart. */
  startedBy?: string;
}

/** Waits (up to `seconds`) for `check`; on timeout prints `onTimeout`'s output and fails. */
export interface WaitStep extends StepBase {
  kind: 'wait';
  check: string;
  seconds: number;
  onTimeout: string;
  message: string;
  /**
   * Stop waiting at once when a systemd unit that restarts on failure has exited `times` times
   * since the wait began (seen as it entering `auto-restart`): a flag it rejects or data it
   * cannot start on never gets better, and the whole timeout would only delay saying so.
   */
  crashLoop?: { unit: string; times: number; message: string };
}

export type Step = GuardStep | DirStep | FileStep | CommandStep | ServiceStep | WaitStep;

/** A file the runner puts in the script's staging folder before the run. */
export interface Payload {
  name: string;
  sha256: string;
  /** From this machine's disk (binaries, tarballs). */
  localPath?: string;
  /** Or in memory (private keys read from the workspace). */
  content?: Buffer;
  /** The step that needs it: staged only when that step would change. */
  step: string;
}

export interface HostPlan {
  host: string;
  /** Human title for the script header. */
  title: string;
  steps: Step[];
  payloads: Payload[];
}

export const sha256 = (data: string | Buffer): string =>
  createHash('sha256').update(data).digest('hex');

/**
 * A file step for `content` (its SHA-256 computed here), owned by root unless said otherwise:
 * written from the script's text, or, with `payload`, from the staged file of that name.
 */
export function fileStep(f: {
  id: string;
  title: string;
  path: string;
  mode: number;
  content: string | Buffer;
  owner?: string;
  group?: string;
  payload?: string;
  backup?: boolean;
}): FileStep {
  return {
    kind: 'file',
    id: f.id,
    title: f.title,
    path: f.path,
    mode: f.mode,
    owner: f.owner ?? 'root',
    group: f.group ?? f.owner ?? 'root',
    sha256: sha256(f.content),
    source: f.payload ? { payload: f.payload } : { text: f.content.toString() },
    ...(f.backup ? { backup: true } : {}),
  };
}

/** The first guard of every plan: the host runs systemd; `why` completes "this host does not run systemd: ". */
export function systemdGuard(why: string): GuardStep {
  return {
    kind: 'guard',
    id: 'systemd',
    title: 'systemd is the init system',
    check: '[ -d /run/systemd/system ]',
    message: `"this host does not run systemd: ${why}"`,
  };
}

/** C0 and C1 control characters and the Unicode line and paragraph separators. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * `text` for one line of a script or of its output (a title, the header comment): control
 * characters written as `\xNN` / `\uNNNN`, so a value can never end the line it is on.
 */
export function oneLine(text: string): string {
  return text.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return n > 0xff
      ? `\\u${n.toString(16).padStart(4, '0')}`
      : `\\x${n.toString(16).padStart(2, '0')}`;
  });
}

/** Does `text` hold a control character (a line break among them)? */
export const hasControl = (text: string): boolean => new RegExp(CONTROL.source).test(text);
