import { afterEach, describe, expect, it } from '@jest/globals';
import { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import type { ResumeToken, ResumeTokenStore } from '../../lib/index.js';

/** Records every save; can be made to fail or to hang until released. */
class RecordingStore implements ResumeTokenStore {
  saves: unknown[] = [];
  failing = false;
  gate: Promise<void> | undefined;
  async load(): Promise<ResumeToken | null> {
    return null;
  }
  async save(_key: string, token: ResumeToken): Promise<void> {
    await this.gate;
    if (this.failing) throw new Error('store down');
    this.saves.push(token);
  }
}

const token = (n: number) => ({ _data: `t${n}` });
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
let checkpointer: Checkpointer | undefined;

afterEach(() => checkpointer?.dispose());

describe('Checkpointer', () => {
  it('saves once maxEvents acknowledgements have accumulated, with the newest token', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 3, intervalMs: 60_000 });
    checkpointer.ack(token(1));
    checkpointer.ack(token(2));
    await wait(20);
    expect(store.saves).toEqual([]);
    checkpointer.ack(token(3));
    await wait(20);
    expect(store.saves).toEqual([token(3)]);
    expect(checkpointer.unsavedCount).toBe(0);
  });

  it('saves after intervalMs when fewer events arrived', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 100, intervalMs: 50 });
    checkpointer.ack(token(1));
    checkpointer.ack(token(2));
    await wait(10);
    expect(store.saves).toEqual([]);
    await wait(150);
    expect(store.saves).toEqual([token(2)]);
  });

  it('flush saves only what is unsaved, and nothing twice', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 100, intervalMs: 60_000 });
    await checkpointer.flush();
    expect(store.saves).toEqual([]);
    checkpointer.ack(token(1));
    await checkpointer.flush();
    await checkpointer.flush();
    expect(store.saves).toEqual([token(1)]);
  });

  it('a flush requested during a save waits for and includes later acknowledgements', async () => {
    const store = new RecordingStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 100, intervalMs: 60_000 });
    checkpointer.ack(token(1));
    const first = checkpointer.flush();
    checkpointer.ack(token(2));
    const second = checkpointer.flush();
    release();
    await Promise.all([first, second]);
    expect(store.saves).toEqual([token(1), token(2)]);
  });

  it('keeps the position after a failed save and stores it once the store is back', async () => {
    const store = new RecordingStore();
    store.failing = true;
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 1, intervalMs: 20 });
    checkpointer.ack(token(1));
    await wait(10);
    expect(store.saves).toEqual([]);
    expect(checkpointer.unsavedCount).toBe(1);
    expect(checkpointer.position).toEqual(token(1));
    store.failing = false;
    await wait(200);
    expect(store.saves).toEqual([token(1)]);
    expect(checkpointer.unsavedCount).toBe(0);
  });

  it('treats an idle token as a position to save, without an immediate write', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 1, intervalMs: 30 });
    checkpointer.restore(token(1));
    checkpointer.advanceIdle(token(1));
    expect(checkpointer.unsavedCount).toBe(0);
    checkpointer.advanceIdle(token(2));
    expect(store.saves).toEqual([]);
    await wait(100);
    expect(store.saves).toEqual([token(2)]);
  });

  it('ignores acknowledgements after dispose (a handler that outlived shutdown)', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer(store, 'k', { maxEvents: 1, intervalMs: 10 });
    checkpointer.dispose();
    checkpointer.ack(token(1));
    await wait(50);
    expect(store.saves).toEqual([]);
  });
});
