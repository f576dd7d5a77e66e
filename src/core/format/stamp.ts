/** Times in names of files and folders this tool writes. */

/** `20261124T230545Z`: sortable, no colons (valid on every file system). */
export function backupStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
