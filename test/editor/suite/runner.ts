/**
 * A tiny test runner for suites that run INSIDE the VS Code extension host (no mocha): each test
 * runs in order with its own timeout, and the results leave by the JSON file named in
 * K3S_ETCD_TEST_RESULTS (the extension host inherits the VS Code server's environment) and by one
 * console line with a unique prefix, which the page's console shows (the fallback channel).
 */
import { writeFileSync } from 'node:fs';

export interface InHostTest {
  name: string;
  fn: () => Promise<void> | void;
  timeoutMs?: number;
}
export interface InHostResult {
  name: string;
  ok: boolean;
  error?: string;
}

export const RESULTS_CONSOLE_PREFIX = 'K3S_ETCD_TEST_RESULTS_JSON:';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

export async function runInHostTests(suite: string, tests: InHostTest[]): Promise<void> {
  const results: InHostResult[] = [];
  for (const t of tests) {
    const name = `${suite}: ${t.name}`;
    try {
      await withTimeout(Promise.resolve().then(t.fn), t.timeoutMs ?? 30_000, name);
      results.push({ name, ok: true });
      console.log(`[${suite}] ok   ${t.name}`);
    } catch (e) {
      results.push({ name, ok: false, error: describe(e) });
      console.log(`[${suite}] FAIL ${t.name}: ${describe(e)}`);
    }
  }
  const passed = results.filter((r) => r.ok).length;
  const payload = JSON.stringify({ tests: results, passed, failed: results.length - passed });
  console.log(`${RESULTS_CONSOLE_PREFIX}${payload}`);
  const file = process.env['K3S_ETCD_TEST_RESULTS'];
  if (file !== undefined && file !== '') writeFileSync(file, payload);
}
