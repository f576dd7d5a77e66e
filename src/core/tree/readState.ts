/**
 * What the editor knows of something read from the hosts on demand (backups, deployed
 * certificates): the last read, or why it failed, and whether a read is running now. Never
 * polled (SSH may prompt); the tree shows it as it is.
 */
export interface ReadState<R> {
  /** When it was read (ms since the epoch). */
  at: number;
  result?: R;
  /** The read itself failed (no host could be asked). */
  error?: string;
  /** A read is running now (what is above is the one before it, if any). */
  reading?: boolean;
}
