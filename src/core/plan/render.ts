/**
 * The one renderer: a host's steps become one POSIX `sh` script (no bash-isms: BusyBox hosts run
 * it too), readable by a person.
 *
 * The script prints one line per step start (`==> 3/12 title`) and one per outcome
 * (`<== 3/12 unchanged|changed|would-change|ok|failed|not-run: why`); `parseMarker` reads them
 * back. With `DRY_RUN=1` it only reads the host and reports what would change; a wait after a
 * step that would change is `not-run` (it checks the changed host, so it cannot be checked yet).
 */
import { K3sEtcdError } from '../errors';
import { shellQuote } from '../ssh/quote';
import { hasControl, oneLine, type HostPlan, type Step, type StepStatus } from './steps';

const octal = (mode: number) => (mode & 0o7777).toString(8);

const WORD = /^[A-Za-z0-9_.-]+$/;

/**
 * Refuses a step whose parts that go into the script unquoted are not plain words (ids, payload
 * names, hashes) or whose failure message spans lines: a value that reached them from a host, an
 * inventory or a file must never become a line of a root script.
 */
function checkStep(step: Step): void {
  const bad = (what: string, value: string) =>
    new K3sEtcdError(
      'provision-refused',
      `step "${oneLine(step.title)}": ${what} ${JSON.stringify(value)} cannot go into a script: nothing was run`,
    );
  const ids = [step.id];
  if (step.kind === 'service') {
    ids.push(...step.restartOn);
    if (step.unitFileStep) ids.push(step.unitFileStep);
    if (step.startedBy) ids.push(step.startedBy);
  }
  for (const id of ids) if (!WORD.test(id)) throw bad('the step id', id);
  if ((step.kind === 'guard' || step.kind === 'wait') && hasControl(step.message))
    throw bad('the message', step.message);
  if (step.kind === 'wait' && step.crashLoop) {
    if (!WORD.test(step.crashLoop.unit)) throw bad('the unit', step.crashLoop.unit);
    if (!Number.isInteger(step.crashLoop.times) || step.crashLoop.times < 1)
      throw bad('the number of exits', String(step.crashLoop.times));
    if (hasControl(step.crashLoop.message)) throw bad('the message', step.crashLoop.message);
  }
  if (step.kind === 'file') {
    if (!/^[0-9a-f]{64}$/.test(step.sha256)) throw bad('the SHA-256', step.sha256);
    if ('payload' in step.source && !WORD.test(step.source.payload))
      throw bad('the payload name', step.source.payload);
    if (hasControl(step.path)) throw bad('the path', step.path);
  }
  if (step.kind === 'dir' && hasControl(step.path)) throw bad('the path', step.path);
}

const HEREDOC = 'K3S_ETCD_EOF';

/** A dry run's detail of a wait after a change (`not-run`), and of one that does not pass now. */
export const AFTER_CHANGE = 'after the change: a dry run does not wait for it';
export const NOT_PASSING = 'does not pass now, and no step before it would change anything';

function heredocSafe(text: string, where: string): string {
  if (!text.endsWith('\n')) throw new Error(`${where}: file text must end with a newline`);
  if (text.split('\n').includes(HEREDOC)) throw new Error(`${where}: text contains ${HEREDOC}`);
  return text;
}

const PRELUDE = `set -eu
DRY_RUN="\${DRY_RUN:-0}"
STAGE="\${STAGE:-}"
N=0
CHANGED=" "
trap 'rc=$?; if [ "$rc" -ne 0 ] && [ "$N" -gt 0 ] && [ -z "\${REPORTED:-}" ]; then echo "<== $N/$TOTAL failed: exit $rc"; fi' EXIT

begin() { N=$1; echo "==> $1/$TOTAL $2"; }
result() { echo "<== $N/$TOTAL $1"; }
fail() { REPORTED=1; echo "<== $N/$TOTAL failed: $*"; exit 1; }
# mark ID: step ID changed (or would change, in a dry run)
mark() { CHANGED="$CHANGED$1 "; }
changed() { case "$CHANGED" in *" $1 "*) return 0 ;; esac; return 1; }
# file_ok PATH SHA256 MODE OWNER GROUP
file_ok() {
  [ ! -L "$1" ] && [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ] && [ "$(stat -c '%a %U %G' "$1")" = "$3 $4 $5" ]
}
# dir_ok PATH MODE OWNER GROUP: a folder itself, not a link to one
dir_ok() { [ ! -L "$1" ] && [ -d "$1" ] && [ "$(stat -c '%a %U %G' "$1")" = "$2 $3 $4" ]; }
# put_file SRC DEST MODE OWNER GROUP BACKUP: DEST is made as a new file inside a fresh folder only
# root can enter (mktemp -d beside DEST), with its owner and mode set there, then renamed over
# DEST: a symlink at DEST or at any other name in DEST's folder is replaced, never followed, even
# when another user owns that folder (etcd's data dir). Work happens relative to that folder.
put_file() (
  d=$(dirname "$2")
  mkdir -p "$d" && w=$(mktemp -d "$d/.k3s-etcd-XXXXXXXX") && cd "$w" || exit 1
  ok=0
  if [ "$(stat -c '%u %a' .)" = "0 700" ] && cat "$1" > new && chown "$4:$5" new && chmod "$3" new &&
    { [ "$6" != 1 ] || [ -L "$2" ] || [ ! -f "$2" ] ||
      { cp -pP "$2" old && rename_over old "$2.bak.$(date -u +%Y%m%dT%H%M%SZ)"; }; } &&
    rename_over new "$2"; then ok=1; fi
  rm -f new old
  cd / && rmdir "$w" 2>/dev/null || true
  [ "$ok" = 1 ]
)
# rename_over SRC DEST: SRC renamed over DEST, never moved into a folder a link at DEST names:
# mv -T (GNU, BusyBox 1.35+); an mv without -T only in a folder no one but root can change.
rename_over() {
  mv -fT "$1" "$2" 2>/dev/null && return 0
  [ -e "$1" ] && [ ! -d "$2" ] || return 1
  case "$(stat -c '%u %A' "$(dirname "$2")")" in
  "0 d"????-??-?) mv -f "$1" "$2" ;;
  *) echo "cannot replace $2 safely: this mv has no -T and another user can change $(dirname "$2")" >&2; return 1 ;;
  esac
}
`;

function renderStep(step: Step, n: number): string {
  checkStep(step);
  const q = shellQuote;
  const head = `begin ${n} ${q(oneLine(step.title))}\n`;
  switch (step.kind) {
    case 'guard':
      return `${head}if ${step.check}; then result ok; else fail ${step.message}; fi\n`;
    case 'dir': {
      const args = `${q(step.path)} ${octal(step.mode)} ${q(step.owner)} ${q(step.group)}`;
      return (
        head +
        `if dir_ok ${args}; then result unchanged\n` +
        // A link is never followed: its owner and mode would land on whatever it names.
        `elif [ -L ${q(step.path)} ]; then fail ${q(`${step.path} is a symbolic link: its owner and mode are never set through a link; make it a folder, or name the folder it points to`)}\n` +
        `elif [ "$DRY_RUN" = 1 ]; then mark ${step.id}; result would-change\n` +
        `else mkdir -p ${q(step.path)}; chown -h ${q(`${step.owner}:${step.group}`)} ${q(step.path)}; chmod ${octal(step.mode)} ${q(step.path)}; mark ${step.id}; result changed; fi\n`
      );
    }
    case 'file': {
      const args = `${q(step.path)} ${step.sha256} ${octal(step.mode)} ${q(step.owner)} ${q(step.group)}`;
      const put = (src: string) =>
        `put_file ${src} ${q(step.path)} ${octal(step.mode)} ${q(step.owner)} ${q(step.group)} ${step.backup ? 1 : 0} || fail ${q(`cannot put ${step.path} in place`)}`;
      const write =
        'text' in step.source
          ? `  tmp=$(mktemp)\n  cat > "$tmp" <<'${HEREDOC}'\n${heredocSafe(step.source.text, step.path)}${HEREDOC}\n  ${put('"$tmp"')}\n  rm -f "$tmp"\n`
          : `  ${put(`"$STAGE/${step.source.payload}"`)}\n`;
      return (
        head +
        `if file_ok ${args}; then result unchanged\n` +
        `elif [ "$DRY_RUN" = 1 ]; then mark ${step.id}; result would-change\n` +
        `else\n${write}  mark ${step.id}; result changed\nfi\n`
      );
    }
    case 'command':
      return (
        head +
        `if ${step.check}; then result unchanged\n` +
        `elif [ "$DRY_RUN" = 1 ]; then mark ${step.id}; result would-change\n` +
        `else\n${step.run.replace(/^/gm, '  ')}\n  mark ${step.id}; result changed\nfi\n`
      );
    case 'service': {
      const u = q(step.unit);
      const deps = step.restartOn.map((d) => `changed ${d}`).join(' || ') || 'false';
      const reload = step.unitFileStep
        ? `  if changed ${step.unitFileStep}; then systemctl daemon-reload; fi\n`
        : '';
      const started = step.startedBy
        ? `if changed ${step.startedBy}; then\n  if [ "$DRY_RUN" = 1 ]; then result would-change; else mark ${step.id}; result changed; fi\nel`
        : '';
      return (
        head +
        started +
        `if systemctl is-enabled -q ${u} 2>/dev/null && systemctl is-active -q ${u} && ! { ${deps}; }; then result unchanged\n` +
        `elif [ "$DRY_RUN" = 1 ]; then mark ${step.id}; result would-change\n` +
        `else\n${reload}` +
        `  systemctl is-enabled -q ${u} 2>/dev/null || systemctl enable -q ${u}\n` +
        `  if ! systemctl is-active -q ${u}; then systemctl start --no-block ${u}\n` +
        // A restart waits for the new process (Type=notify), so the checks after it see the new one.
        `  elif ${deps}; then systemctl restart ${u}; fi\n` +
        `  mark ${step.id}; result changed\nfi\n`
      );
    }
    case 'wait': {
      const crash = step.crashLoop;
      const timeout = step.onTimeout.replace(/^/gm, '      ');
      // A dry run never waits. After a step that would change, the check is about the changed
      // host: not run, never reported as passing. With nothing to change it is asked once; a
      // check that does not pass is reported without stopping the dry run (the run would not
      // wait for it: nothing changes).
      return (
        head +
        `if [ "$DRY_RUN" = 1 ]; then\n` +
        `  if [ "$CHANGED" != " " ]; then result ${q(`not-run: ${AFTER_CHANGE}`)}\n` +
        `  elif ${step.check}; then result ok\n` +
        `  else result ${q(`failed: ${NOT_PASSING}`)}; fi\nelse\n` +
        `  i=0\n${crash ? '  exits=0\n  was=\n' : ''}  until ${step.check}; do\n` +
        `    i=$((i + 1))\n    if [ "$i" -ge ${step.seconds} ]; then\n${timeout}\n      fail ${step.message}\n    fi\n` +
        (crash
          ? `    now=$(systemctl show -p SubState --value ${q(crash.unit)} 2>/dev/null || true)\n` +
            `    if [ "$now" = auto-restart ] && [ "$was" != auto-restart ]; then exits=$((exits + 1)); fi\n` +
            `    was=$now\n` +
            `    if [ "$exits" -ge ${crash.times} ]; then\n${timeout}\n      fail ${crash.message}\n    fi\n`
          : '') +
        `    sleep 1\n  done\n` +
        `  result ok\nfi\n`
      );
    }
  }
}

/** The host's script: header, helpers, then every step in order. */
export function renderScript(plan: HostPlan): string {
  const body = plan.steps.map((s, i) => renderStep(s, i + 1)).join('\n');
  return (
    `#!/bin/sh\n# ${oneLine(plan.title)}\n` +
    '# Written by k3s-etcd. Run as root. DRY_RUN=1 only reads the host and reports what would\n' +
    '# change; STAGE names the folder holding uploaded files (binaries, private keys).\n' +
    `TOTAL=${plan.steps.length}\n${PRELUDE}\n${body}\necho "<== done"\n`
  );
}

export interface Marker {
  n: number;
  total: number;
  /** Set on a start line. */
  title?: string;
  /** Set on an outcome line. */
  status?: StepStatus;
  detail?: string;
}

/** Reads a `==>`/`<==` line of a script's output. */
export function parseMarker(line: string): Marker | undefined {
  const start = /^==> (\d+)\/(\d+) (.*)$/.exec(line);
  if (start) return { n: Number(start[1]), total: Number(start[2]), title: start[3] ?? '' };
  const end =
    /^<== (\d+)\/(\d+) (ok|unchanged|changed|would-change|failed|not-run)(?::\s*(.*))?$/.exec(line);
  if (!end) return undefined;
  return {
    n: Number(end[1]),
    total: Number(end[2]),
    status: end[3] as StepStatus,
    ...(end[4] ? { detail: end[4] } : {}),
  };
}
