/**
 * Times as this tool writes them: in names of files and folders (backupStamp, UTC), and the one
 * format the editor shows a moment in (localStamp, from src/shared so the webview has it too).
 */
export { localClock, localStamp, zoneName, type Moment } from '../../shared/stamp';

/** `20261124T230545Z`: sortable, no colons (valid on every file system). */
export function backupStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
