/**
 * The names of the handlers still running for one event (for stuck-handler reports). Most events
 * have one handler: a Set is made only once two run at once, since one per event costs more than
 * the rest of the module's bookkeeping for that event.
 */
export class RunningHandlers implements Iterable<string> {
  private one: string | null = null;
  private more: Set<string> | null = null;

  add(name: string): void {
    if (this.more) this.more.add(name);
    else if (this.one === null || this.one === name) this.one = name;
    else {
      this.more = new Set([this.one, name]);
      this.one = null;
    }
  }

  delete(name: string): void {
    if (this.more) this.more.delete(name);
    else if (this.one === name) this.one = null;
  }

  get size(): number {
    return this.more ? this.more.size : this.one === null ? 0 : 1;
  }

  *[Symbol.iterator](): Iterator<string> {
    if (this.more) yield* this.more;
    else if (this.one !== null) yield this.one;
  }
}
