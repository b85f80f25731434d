import { afterEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import type { ResumeTokenStore, StreamPosition } from '../../lib/index.js';
import { eventually } from '../fixtures/test-env.js';

Logger.overrideLogger(false);

/** Records every save; can be made to fail or to hang until released. */
class RecordingStore implements ResumeTokenStore {
  saves: StreamPosition[] = [];
  failing = false;
  gate: Promise<void> | undefined;
  async load(): Promise<StreamPosition | null> {
    return null;
  }
  async save(_key: string, position: StreamPosition): Promise<void> {
    await this.gate;
    if (this.failing) throw new Error('store down');
    this.saves.push(position);
  }
}

const token = (n: number) => ({ _data: `t${n}` });
const at = (n: number): StreamPosition => ({ token: token(n) });
const settings = (maxEvents: number, intervalMs: number) => ({
  maxEvents,
  intervalMs,
  maxUnsavedEvents: 10_000,
});
/** Lets pending saves (microtasks and one macrotask) complete. */
const settle = () => new Promise((r) => setTimeout(r, 0));
let checkpointer: Checkpointer | undefined;

afterEach(() => checkpointer?.dispose());

describe('Checkpointer', () => {
  it('saves once maxEvents acknowledgements have accumulated, with the newest token', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(3, 60_000) });
    checkpointer.ack(token(1), 1);
    checkpointer.ack(token(2), 2);
    await settle();
    expect(store.saves).toEqual([]);
    checkpointer.ack(token(3), 3);
    await settle();
    expect(store.saves).toEqual([at(3)]);
    expect(checkpointer.unsavedCount).toBe(0);
  });

  it('saves after intervalMs when fewer events arrived, and not before', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(100, 50) });
    const start = Date.now();
    checkpointer.ack(token(1), 1);
    checkpointer.ack(token(2), 2);
    await eventually('saved', () => store.saves.length === 1);
    expect(Date.now() - start).toBeGreaterThanOrEqual(45);
    expect(store.saves).toEqual([at(2)]);
  });

  it('flush saves only what is unsaved, and nothing twice', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(100, 60_000) });
    await checkpointer.flush();
    expect(store.saves).toEqual([]);
    checkpointer.ack(token(1), 1);
    await checkpointer.flush();
    await checkpointer.flush();
    expect(store.saves).toEqual([at(1)]);
  });

  it('a flush requested during a save waits for and includes later acknowledgements', async () => {
    const store = new RecordingStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(100, 60_000) });
    checkpointer.ack(token(1), 1);
    const first = checkpointer.flush();
    checkpointer.ack(token(2), 2);
    const second = checkpointer.flush();
    release();
    await Promise.all([first, second]);
    expect(store.saves).toEqual([at(1), at(2)]);
  });

  it('an acknowledgement that arrives as a save ends, before its promise settles, is saved by that flush', async () => {
    const store = new RecordingStore();
    // Queued from the save's last step: runs after the save looked for more work, before its promise settles.
    const onWrite = () => {
      if (store.saves.length === 1) queueMicrotask(() => cp.ack(token(2), 2));
    };
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(1, 60_000), onWrite });
    const cp = checkpointer;
    cp.ack(token(1), 1);
    await eventually(
      'the second position stored without a timer',
      () => store.saves.length === 2,
      1000,
    );
    expect(store.saves).toEqual([at(1), at(2)]);
    expect(cp.unsavedCount).toBe(0);
  });

  it('keeps the position after a failed save and stores it once the store is back', async () => {
    const store = new RecordingStore();
    store.failing = true;
    const trouble: Array<string | null> = [];
    checkpointer = new Checkpointer({
      store,
      key: 'k',
      settings: settings(1, 20),
      onSaveTrouble: (error) => trouble.push(error),
    });
    checkpointer.ack(token(1), 1);
    await eventually('the save failed', () => checkpointer!.failing);
    expect(checkpointer.unsavedCount).toBe(1);
    expect(checkpointer.position).toEqual(at(1));
    store.failing = false;
    await eventually('saved after the backoff', () => store.saves.length === 1, 5000);
    expect(store.saves).toEqual([at(1)]);
    expect(checkpointer.unsavedCount).toBe(0);
    expect(trouble).toEqual(['store down', null]);
  });

  it('treats every new idle token as a position to save, without an immediate write', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(1, 30) });
    checkpointer.restore(at(1));
    checkpointer.advanceIdle(at(1));
    await checkpointer.flush();
    expect(store.saves).toEqual([]);
    checkpointer.advanceIdle(at(2));
    expect(store.saves).toEqual([]);
    await eventually('p2 saved', () => store.saves.length === 1);
    checkpointer.advanceIdle(at(3));
    checkpointer.advanceIdle(at(4));
    await eventually('p4 saved', () => store.saves.length === 2);
    expect(store.saves).toEqual([at(2), at(4)]);
  });

  it('waitForRunAheadRoom lets at most 2 × maxEvents events past the stored position, and opens once a save lands', async () => {
    const store = new RecordingStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(2, 60_000) });
    const signal = new AbortController().signal;
    for (let seq = 1; seq <= 4; seq++) {
      expect(await checkpointer.waitForRunAheadRoom(seq - 1, signal)).toBe(true);
      checkpointer.ack(token(seq), seq);
    }
    let fifthMayGo = false;
    const fifth = checkpointer.waitForRunAheadRoom(4, signal).then((ok) => (fifthMayGo = ok));
    await settle();
    expect(fifthMayGo).toBe(false); // 4 dispatched, none stored: the bound holds it
    release();
    await fifth;
    expect(fifthMayGo).toBe(true);
    expect(store.saves[0]).toEqual(at(2));
  });

  it('persistStart retries until the start position is stored', async () => {
    const store = new RecordingStore();
    store.failing = true;
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(100, 10) });
    const stored = checkpointer.persistStart({ token: token(0) }, new AbortController().signal);
    await eventually('a save failed', () => checkpointer!.failing);
    store.failing = false;
    expect(await stored).toBe(true);
    expect(store.saves).toEqual([at(0)]);
  });

  it('ignores acknowledgements after dispose (a handler that outlived shutdown)', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(1, 10) });
    checkpointer.dispose();
    checkpointer.ack(token(1), 1);
    expect(await checkpointer.flush()).toBe(true);
    expect(store.saves).toEqual([]);
  });

  it('backfill progress acknowledged while a save is under way is saved after it (no token moves with it)', async () => {
    const store = new RecordingStore();
    checkpointer = new Checkpointer({ store, key: 'k', settings: settings(100, 10) });
    checkpointer.restore(at(1));
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    checkpointer.ackSeq(1);
    const first = checkpointer.flush();
    checkpointer.ackSeq(2); // during the save of seq 1
    release();
    await first;
    await eventually('seq 2 saved too', () => checkpointer!.unsavedCount === 0);
    expect(store.saves.length).toBe(2);
  });
});
