/**
 * A progress line for long commands: on a terminal, one line on stderr rewritten in place (at
 * most five times a second); nothing at all in --json or when stderr is a pipe or a file, so
 * scripts and logs get only the result.
 */
export interface ProgressLine {
  update(text: string): void;
  /** Clears the line (before the result is printed). */
  done(): void;
}

export function progressLine(
  json: boolean,
  stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY' | 'columns'> = process.stderr,
): ProgressLine {
  const on = !json && stream.isTTY === true;
  let last = 0;
  let shown = false;
  return {
    update(text) {
      const now = Date.now();
      if (!on || now - last < 200) return;
      last = now;
      const width = Math.max(20, (stream.columns || 100) - 1);
      stream.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
      shown = false;
    },
  };
}
