/** A connection deadline that stops while a person answers a prompt. */
export class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private remaining: number;
  private startedAt = 0;
  constructor(
    ms: number,
    private readonly onExpire: () => void,
  ) {
    this.remaining = ms;
  }
  start(): void {
    this.startedAt = Date.now();
    this.timer = setTimeout(this.onExpire, this.remaining);
  }
  pause(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.remaining -= Date.now() - this.startedAt;
  }
  resume(): void {
    if (!this.timer && !this.cleared) this.start();
  }
  private cleared = false;
  clear(): void {
    this.cleared = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  /** Runs `f` with the clock stopped (a person is answering a prompt). */
  async paused<T>(f: () => Promise<T>): Promise<T> {
    this.pause();
    try {
      return await f();
    } finally {
      this.resume();
    }
  }
}
