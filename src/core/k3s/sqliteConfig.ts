/**
 * K3s's config.yaml without its external datastore: the lines of `datastore-endpoint`,
 * `datastore-cafile`, `datastore-certfile` and `datastore-keyfile` (with their continuation
 * lines) removed, every other byte kept as it was. The file is the host's, so hostile input: the
 * line edit is then proven with a YAML parser (the result parses, holds none of the four keys,
 * and every other key has exactly its old value); a layout where that does not hold (flow
 * mappings, anchors shared with other keys, duplicate keys, a file that is not a mapping) is
 * refused with words that say what to remove by hand. No value is ever put into the words: the
 * file holds the token.
 */
import { isDeepStrictEqual } from 'node:util';
import { parseDocument } from 'yaml';
import { K3sEtcdError } from '../errors';
import { K3S_CONFIG } from './server';

/** The keys that point K3s at an external datastore (K3s: pkg/cli/cmds/server.go). */
export const DATASTORE_KEYS = [
  'datastore-endpoint',
  'datastore-cafile',
  'datastore-certfile',
  'datastore-keyfile',
] as const;

export interface SqliteConfig {
  /** The new config.yaml's bytes. */
  text: string;
  /** The datastore keys that were there and are removed, in the file's order. */
  removed: string[];
  /** The other top-level keys, kept as they were (names only: values may be secrets). */
  kept: string[];
}

const KEY_LINE = /^(["']?)(datastore-(?:endpoint|cafile|certfile|keyfile))\1[ \t]*:(?:[ \t]|$)/;

/** A line that belongs to the top-level entry above it: indented, or a `- ` item at column 0. */
const continues = (line: string) => /^[ \t]/.test(line) || /^-(?:[ \t]|$)/.test(line);

function refuse(host: string, why: string): K3sEtcdError {
  return new K3sEtcdError(
    'provision-refused',
    `${host}: ${K3S_CONFIG} ${why}, so it cannot be rewritten line by line with every other key kept: remove ${DATASTORE_KEYS.join(', ')} from it by hand (keep a copy), or make it one "key: value" entry per line, then run again. Nothing was changed.`,
  );
}

/** The top-level mapping of `text` as plain data, or a refusal. */
function mapping(host: string, text: string, what: string): Record<string, unknown> {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0)
    throw refuse(host, `${what} is not valid YAML (${doc.errors[0]?.code})`);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // An alias whose anchor went with a removed line, or an alias bomb: its words could hold values.
    throw refuse(host, `${what} has aliases that do not resolve`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw refuse(host, `${what} is not a mapping of keys`);
  return value as Record<string, unknown>;
}

/**
 * `text` (config.yaml as the host has it) without the datastore keys, proven by a parser.
 * `host` names the server in the words of a refusal.
 */
export function sqliteConfig(host: string, text: string): SqliteConfig {
  if (text.includes('\0')) throw refuse(host, 'holds a NUL byte');
  const before = mapping(host, text, 'as it is');
  const lines = text.split('\n');
  const out: string[] = [];
  const removed: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = KEY_LINE.exec(lines[i] as string);
    if (!m) {
      out.push(lines[i] as string);
      continue;
    }
    removed.push(m[2] as string);
    // Its continuation: indented or item lines, and blank lines only when more of it follows.
    let j = i + 1;
    for (;;) {
      let k = j;
      while (k < lines.length && (lines[k] as string).trim() === '') k++;
      if (k < lines.length && continues(lines[k] as string)) j = k + 1;
      else break;
    }
    i = j - 1;
  }
  const result = out.join('\n');
  const after = mapping(host, result, 'without the datastore keys');
  const expected = Object.fromEntries(
    Object.entries(before).filter(([k]) => !(DATASTORE_KEYS as readonly string[]).includes(k)),
  );
  const left = DATASTORE_KEYS.filter((k) => k in after);
  if (left.length > 0) throw refuse(host, `still names ${left.join(', ')} after the line edit`);
  if (!isDeepStrictEqual(after, expected))
    throw refuse(host, 'would lose or change another key with those lines');
  if (removed.length === 0)
    throw new K3sEtcdError(
      'provision-refused',
      `${host}: ${K3S_CONFIG} names no datastore-endpoint: this K3s server does not run on the external etcd (SQLite or embedded etcd already). Nothing was changed.`,
    );
  if (!removed.includes('datastore-endpoint'))
    throw refuse(host, `names ${removed.join(', ')} but no datastore-endpoint`);
  return { text: result, removed, kept: Object.keys(expected) };
}
