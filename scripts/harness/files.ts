/** Walking a folder for files (logs, bundles) in tests, benchmarks and the lab. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every file below `dir` whose name `pred` accepts; a missing or vanishing entry is skipped. */
export function findFiles(
  dir: string,
  pred: (name: string) => boolean,
  out: string[] = [],
): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      continue;
    }
    if (isDir) findFiles(p, pred, out);
    else if (pred(e)) out.push(p);
  }
  return out;
}
