import { describe, expect, it } from '@jest/globals';
import { InFlightList, type Linked } from '../../lib/stream/in-flight-list.js';

interface Entry extends Linked<Entry> {
  n: number;
}
const entry = (n: number): Entry => ({ n, prev: null, next: null });
const numbers = (list: InFlightList<Entry>) => list.toArray().map((e) => e.n);

describe('InFlightList: the events in flight, oldest first', () => {
  it('keeps insertion order while entries leave from anywhere', () => {
    const list = new InFlightList<Entry>();
    const [a, b, c, d] = [1, 2, 3, 4].map(entry);
    [a, b, c, d].forEach((e) => list.add(e));
    expect(numbers(list)).toEqual([1, 2, 3, 4]);
    list.remove(b); // middle
    list.remove(a); // head
    list.remove(d); // tail
    expect(numbers(list)).toEqual([3]);
    expect(list.size).toBe(1);
    const e = entry(5);
    list.add(e);
    expect(numbers(list)).toEqual([3, 5]);
    list.remove(c);
    list.remove(e);
    expect(numbers(list)).toEqual([]);
    expect(list.size).toBe(0);
  });

  it('removing an entry twice, or one never added, changes nothing', () => {
    const list = new InFlightList<Entry>();
    const [a, b] = [1, 2].map(entry);
    list.add(a);
    list.add(b);
    list.remove(a);
    list.remove(a);
    list.remove(entry(9));
    expect(numbers(list)).toEqual([2]);
    expect(list.size).toBe(1);
  });
});
