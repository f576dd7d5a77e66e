/**
 * Usage errors a newcomer can act on: "did you mean" from the known commands and flags, and flag
 * checks worded here rather than in Node's argument-parser sentences.
 */
import { parseArgs } from 'node:util';
import { GLOBAL_OPTIONS, UsageError, type Options } from './base';

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** Known words close to `word` (a few edits, or one is a prefix of the other), closest first. */
export function suggest(word: string, known: readonly string[], max = 3): string[] {
  const bare = (w: string) => w.replace(/^-+/, '');
  const w = bare(word).toLowerCase();
  // A one-letter flag (`-v`): the long flags it could stand for (`--version`).
  if (w.length === 1 && word.startsWith('-'))
    return [...new Set(known)]
      .filter((k) => k.startsWith('--') && bare(k).toLowerCase().startsWith(w))
      .slice(0, max);
  if (w.length < 2) return [];
  const scored = [...new Set(known)]
    .map((k) => {
      const b = bare(k).toLowerCase();
      const prefix = w.length >= 2 && b.length >= 2 && (b.startsWith(w) || w.startsWith(b));
      return { k, d: prefix ? 0.5 : editDistance(w, b) };
    })
    .filter(({ d }) => d <= Math.max(1, Math.floor(w.length / 3)))
    .sort((x, y) => x.d - y.d);
  return scored.slice(0, max).map(({ k }) => k);
}

export function didYouMean(word: string, known: readonly string[]): string {
  const s = suggest(word, known);
  return s.length ? ` (did you mean ${s.join(' or ')}?)` : '';
}

/** A usage error that points at one command's help rather than the tool's. */
export class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

/** Like Node's parser: `-` alone is a value (standard input), `-x` and `--x` look like flags. */
function isFlagLike(value: string | undefined): boolean {
  return value !== undefined && value.length > 1 && value.startsWith('-');
}

/** ` (its flags: --a, --b)` for a command's own flags (the global ones are in every help). */
function ownFlags(options: Options): string {
  const own = Object.keys(options).filter((n) => !(n in GLOBAL_OPTIONS));
  return own.length ? ` (its flags: ${own.map((n) => `--${n}`).join(', ')})` : '';
}

/** `--name` and `-x` of each option. */
function flagNames(options: Options): string[] {
  return Object.entries(options).flatMap(([name, o]) => [
    `--${name}`,
    ...(o.short ? [`-${o.short}`] : []),
  ]);
}

interface FlagCheck {
  /** Every flag that may be on this command line, with its type. */
  options: Options;
  /** The flags checked for their value (a flag in `options` but not here is left alone). */
  checked: Options;
  /** `k3s-etcd health`, for the message. */
  where: string;
  /** What follows an unknown flag: "did you mean", or the flags there are. */
  hint: (rawName: string) => string;
  fail: (message: string) => UsageError;
}

/**
 * `-y=1`: Node's parser reads a short flag with `=` as the flags -y, -= and -1. Said as it was
 * meant: the flag given a value, or the unknown letter.
 */
function checkShortWithValue(args: string[], c: FlagCheck): void {
  for (const arg of args) {
    if (arg === '--') return;
    const m = /^-([^-=][^=]*)=/s.exec(arg);
    if (!m?.[1]) continue;
    const letters = [...m[1]];
    for (const [i, letter] of letters.entries()) {
      const entry = Object.entries(c.options).find(([, o]) => o.short === letter);
      if (!entry) throw c.fail(`unknown flag -${letter} for ${c.where}${c.hint(`-${letter}`)}`);
      if (i === letters.length - 1 && entry[1].type === 'boolean')
        throw c.fail(`flag -${letter} for ${c.where} takes no value (it was given ${arg})`);
    }
  }
}

function checkTokens(args: string[], c: FlagCheck): void {
  checkShortWithValue(args, c);
  const { tokens } = parseArgs({
    args,
    options: c.options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (!c.options[t.name])
      throw c.fail(`unknown flag ${t.rawName} for ${c.where}${c.hint(t.rawName)}`);
    const spec = c.checked[t.name];
    if (!spec) continue;
    if (spec.type === 'string' && t.value === undefined) {
      throw c.fail(`flag ${t.rawName} for ${c.where} needs a value`);
    }
    if (spec.type === 'string' && !t.inlineValue && isFlagLike(t.value)) {
      throw c.fail(
        `flag ${t.rawName} for ${c.where} needs a value before ${t.value} (if ${t.value} is the value, write ${t.rawName}=${t.value})`,
      );
    }
    if (spec.type === 'boolean' && t.value !== undefined) {
      throw c.fail(`flag ${t.rawName} for ${c.where} takes no value`);
    }
  }
}

/**
 * Every flag on the command line is one `command` knows, strings have a value and booleans none;
 * otherwise a usage error in these words (never Node's parser sentence).
 */
export function checkFlags(args: string[], options: Options, command: string): void {
  checkTokens(args, {
    options,
    checked: options,
    where: `k3s-etcd ${command}`,
    hint: (raw) => didYouMean(raw, flagNames(options)) || ownFlags(options),
    fail: (message) => new CommandUsageError(message, command),
  });
}

/**
 * The flags of a command line whose command is not known (none, a group alone, an unknown one):
 * the global flags checked as a command checks its own, with "did you mean" from them, so
 * `--helpp` and `-v` are named as flags and `--inventry x health` is not an unknown command "x".
 * A flag some command takes (`commandFlags`) is left to that command's check. `group`: the
 * group the line names (`snapshot`), whose help the error points at.
 */
export function checkToolFlags(args: string[], commandFlags: Options, group?: string): void {
  const global = Object.keys(GLOBAL_OPTIONS)
    .map((n) => `--${n}`)
    .join(', ');
  checkTokens(args, {
    options: { ...commandFlags, ...GLOBAL_OPTIONS },
    checked: GLOBAL_OPTIONS,
    where: group ? `k3s-etcd ${group}` : 'k3s-etcd',
    hint: (raw) => didYouMean(raw, flagNames(GLOBAL_OPTIONS)) || ` (its flags: ${global})`,
    fail: (message) => (group ? new CommandUsageError(message, group) : new UsageError(message)),
  });
}
