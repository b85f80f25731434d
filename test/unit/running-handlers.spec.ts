import { describe, expect, it } from '@jest/globals';
import { RunningHandlers } from '../../lib/stream/running-handlers.js';

describe('RunningHandlers: names of the handlers still running for one event', () => {
  it('holds one name, then several, in the order they started', () => {
    const running = new RunningHandlers();
    expect(running.size).toBe(0);
    running.add('A.one');
    expect([...running]).toEqual(['A.one']);
    running.add('B.two');
    running.add('C.three');
    expect([...running]).toEqual(['A.one', 'B.two', 'C.three']);
    running.delete('B.two');
    expect(running.size).toBe(2);
    expect([...running]).toEqual(['A.one', 'C.three']);
  });

  it('adding the same name twice counts it once; deleting an absent name is a no-op', () => {
    const running = new RunningHandlers();
    running.add('A.one');
    running.add('A.one');
    expect(running.size).toBe(1);
    running.delete('B.two');
    expect(running.size).toBe(1);
    running.delete('A.one');
    expect(running.size).toBe(0);
    expect([...running]).toEqual([]);
  });
});
