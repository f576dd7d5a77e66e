/**
 * Progress of a migration that means something on a long run: which phase, how far in its own
 * units (database pages while reading, keys after), rows read, bytes, and the time left once it
 * can be estimated. One text for the CLI's progress line and the editor's notification.
 */

/** `etcd` and `fill`: the way back (etcd read in pages, state.db written). */
export type MigrationPhase = 'read' | 'hash' | 'write' | 'verify' | 'etcd' | 'fill';

export interface MigrationProgress {
  phase: MigrationPhase;
  /** Units done and in all: database pages while reading, keys in the other phases. */
  done: number;
  total: number;
  /** History rows read (the whole table while reading; all of it after). */
  rows: number;
  written: number;
  alreadyThere: number;
  /** Bytes read (reading: of the database file) or keys and values handled, and in all. */
  bytesDone: number;
  bytesTotal: number;
  /** Seconds left in this phase, once it can be estimated. */
  etaSec?: number | undefined;
}

/** Estimates the time left in a phase from the fraction done so far. */
export class PhaseClock {
  private readonly start = performance.now();
  eta(fraction: number): number | undefined {
    const elapsed = (performance.now() - this.start) / 1000;
    if (fraction <= 0.01 || elapsed < 1 || fraction >= 1) return fraction >= 1 ? 0 : undefined;
    return Math.round((elapsed * (1 - fraction)) / fraction);
  }
}

const mb = (n: number) =>
  n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GB` : `${(n / 1024 ** 2).toFixed(1)} MB`;
const count = (n: number) => n.toLocaleString('en-US');
const eta = (s: number | undefined) =>
  s === undefined ? '' : s >= 90 ? `, about ${Math.round(s / 60)} min left` : `, about ${s} s left`;

/** One line: what the migration is doing, how far, and how long it may take. */
export function progressText(p: MigrationProgress): string {
  const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
  switch (p.phase) {
    case 'read':
      return `Reading state.db: ${count(p.rows)} rows, ${mb(p.bytesDone)} of ${mb(p.bytesTotal)} (${pct}%)${eta(p.etaSec)}`;
    case 'hash':
      return `Checking values: ${count(p.done)}/${count(p.total)} keys, ${mb(p.bytesDone)} of ${mb(p.bytesTotal)}${eta(p.etaSec)}`;
    case 'write':
      return `Writing: ${count(p.done)}/${count(p.total)} keys (${count(p.written)} written, ${count(p.alreadyThere)} already there), ${mb(p.bytesDone)} of ${mb(p.bytesTotal)} (${pct}%)${eta(p.etaSec)}`;
    case 'verify':
      return `Verifying: ${count(p.done)}/${count(p.total)} keys read back${eta(p.etaSec)}`;
    case 'etcd':
      return `Reading etcd: ${count(p.done)} keys, ${mb(p.bytesDone)}`;
    case 'fill':
      return `Writing state.db: ${count(p.done)}/${count(p.total)} keys, ${mb(p.bytesDone)} of ${mb(p.bytesTotal)} (${pct}%)${eta(p.etaSec)}`;
  }
}
