/**
 * dist/cli.js, the `k3s-etcd` bin: runs the command line (dist/cliMain.js: the command table and
 * the one-shot commands; every other command is in dist/cliCommands.js, required when one runs)
 * through V8's code cache (codeCache.ts), so a call does not compile the bundle again.
 */
import { join } from 'node:path';
import { commandKey, runCachedBundle } from './codeCache';

/** Runs the command line (when this is the process's main module, not imported). */
export function runBin(): void {
  const cli = runCachedBundle(join(__dirname, 'cliMain.js'), commandKey(process.argv.slice(2))) as {
    runAsBin(): void;
  };
  cli.runAsBin();
}

if (typeof module !== 'undefined' && require.main === module) runBin();
