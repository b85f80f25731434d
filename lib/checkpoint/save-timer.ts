/** The next batched save: at most one is pending, and asking again keeps the earlier one. */
export class SaveTimer {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly save: () => void) {}

  schedule(delayMs: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save();
    }, delayMs);
    this.timer.unref();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
