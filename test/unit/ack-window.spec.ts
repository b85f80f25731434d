import { describe, expect, it } from '@jest/globals';
import { AckWindow } from '../../lib/checkpoint/ack-window.js';

const token = (n: number) => ({ _data: `t${n}` });

describe('AckWindow', () => {
  it('starts with nothing acknowledged and no position', () => {
    const window = new AckWindow();
    expect(window.acknowledgedSeq).toBe(0);
    expect(window.token).toBeNull();
  });

  it('moves with each event finished in order', () => {
    const window = new AckWindow();
    expect(window.complete(1, token(1))).toBe(true);
    expect(window.complete(2, token(2))).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 2,
      token: token(2),
    });
  });

  it('does not move past an event still running, then jumps over every finished one once it finishes', () => {
    const window = new AckWindow();
    expect(window.complete(2, token(2))).toBe(false);
    expect(window.complete(3, token(3))).toBe(false);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({ seq: 0, token: null });
    expect(window.complete(1, token(1))).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 3,
      token: token(3),
    });
  });

  it('stops at the first gap: events after it wait for it', () => {
    const window = new AckWindow();
    window.complete(3, token(3));
    expect(window.complete(1, token(1))).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 1,
      token: token(1),
    });
    expect(window.complete(2, token(2))).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 3,
      token: token(3),
    });
  });

  it('an event that is no resume point (null token) advances the count but keeps the last resume point', () => {
    const window = new AckWindow();
    window.complete(1, token(1));
    expect(window.complete(2, null)).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 2,
      token: token(1),
    });
    // Out of order: the newest resume point in the prefix wins, even when a null comes after it.
    window.complete(5, null);
    window.complete(4, token(4));
    expect(window.complete(3, token(3))).toBe(true);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 5,
      token: token(4),
    });
  });

  it('reports no move while the prefix holds no resume point at all', () => {
    const window = new AckWindow();
    expect(window.complete(1, null)).toBe(false);
    expect(window.complete(3, null)).toBe(false);
    expect(window.complete(2, null)).toBe(false);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({ seq: 3, token: null });
  });

  it('ignores an event already behind the position (a duplicate completion)', () => {
    const window = new AckWindow();
    window.complete(1, token(1));
    window.complete(2, token(2));
    expect(window.complete(1, token(9))).toBe(false);
    expect(window.complete(2, token(9))).toBe(false);
    expect({ seq: window.acknowledgedSeq, token: window.token }).toEqual({
      seq: 2,
      token: token(2),
    });
  });

  it('any completion order of 1..50 ends at 50 with the last token, and never moves past a running event', () => {
    const order = Array.from({ length: 50 }, (_, i) => i + 1).sort(
      (a, b) => ((a * 37) % 50) - ((b * 37) % 50),
    );
    const window = new AckWindow();
    const done = new Set<number>();
    for (const seq of order) {
      window.complete(seq, token(seq));
      done.add(seq);
      let contiguous = 0;
      while (done.has(contiguous + 1)) contiguous++;
      expect(window.acknowledgedSeq).toBe(contiguous);
      expect(window.token).toEqual(contiguous === 0 ? null : token(contiguous));
    }
    expect(window.acknowledgedSeq).toBe(50);
  });
});
