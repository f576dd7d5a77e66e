/**
 * The one function that makes a remote command argument safe for a POSIX shell: every
 * argument of every command sent over SSH goes through it.
 */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument: left as is when it has only safe characters, else single-quoted. */
export function shellQuote(arg: string): string {
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line from argv, each argument quoted. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
