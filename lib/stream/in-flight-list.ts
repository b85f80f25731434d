/** An entry of an `InFlightList`: the list's links live on the entry itself. */
export interface Linked<T> {
  prev: T | null;
  next: T | null;
}

/**
 * The events in flight, oldest first: a doubly linked list through the entries, so adding and
 * removing one allocates nothing and hashes nothing (a Map cost about 0.1 µs per event).
 */
export class InFlightList<T extends Linked<T>> {
  private head: T | null = null;
  private tail: T | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(entry: T): void {
    entry.prev = this.tail;
    entry.next = null;
    if (this.tail) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    this.count++;
  }

  remove(entry: T): void {
    if (entry.prev) entry.prev.next = entry.next;
    else if (this.head === entry) this.head = entry.next;
    else return; // not in the list
    if (entry.next) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = entry.next = null;
    this.count--;
  }

  toArray(): T[] {
    const entries: T[] = [];
    for (let entry = this.head; entry; entry = entry.next) entries.push(entry);
    return entries;
  }
}
