/**
 * The one way the editor shows a moment: local time with its zone, e.g. "2026-12-06 17:20:31
 * UTC+1" (tooltips, panels, pickers, confirmations). Plain code with no Node or DOM imports, so
 * the webview uses it too. Machine output (the CLI's `--json`, files) stays ISO 8601.
 */

/** An epoch-ms number, an ISO 8601 string or a Date. */
export type Moment = number | string | Date;

const two = (n: number) => String(n).padStart(2, '0');

function epoch(at: Moment): number {
  return at instanceof Date ? at.getTime() : typeof at === 'number' ? at : Date.parse(at);
}

/** "UTC", "UTC+1", "UTC-3:30" for an offset east of UTC in minutes. */
export function zoneName(offsetMinutes: number): string {
  if (offsetMinutes === 0) return 'UTC';
  const sign = offsetMinutes > 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  const m = abs % 60;
  return `UTC${sign}${Math.floor(abs / 60)}${m ? `:${two(m)}` : ''}`;
}

/** Minutes east of UTC where this code runs, at that moment (summer time included). */
export function localOffsetMinutes(at: Moment): number {
  const ms = epoch(at);
  return Number.isNaN(ms) ? 0 : -new Date(ms).getTimezoneOffset();
}

/**
 * "2026-12-06 17:20:31 UTC+1": the moment in local time (or at `offsetMinutes` east of UTC) with
 * the zone. A string that is no time is returned as it is, so nothing is hidden.
 */
export function localStamp(at: Moment, offsetMinutes = localOffsetMinutes(at)): string {
  const ms = epoch(at);
  if (Number.isNaN(ms)) return String(at);
  const d = new Date(ms + offsetMinutes * 60_000);
  return (
    `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} ${zoneName(offsetMinutes)}`
  );
}

/** "17:20" (or "17:20:31"): the time of day of the same format, for chart axes. */
export function localClock(
  at: Moment,
  opts: { seconds?: boolean; offsetMinutes?: number } = {},
): string {
  const ms = epoch(at);
  if (Number.isNaN(ms)) return String(at);
  const d = new Date(ms + (opts.offsetMinutes ?? localOffsetMinutes(ms)) * 60_000);
  return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}${opts.seconds ? `:${two(d.getUTCSeconds())}` : ''}`;
}
