import { describe, expect, it } from '@jest/globals';
import type { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import { InMemoryDeadLetterStore } from '../../lib/index.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { ChangeDispatcher } from '../../lib/stream/change-dispatcher.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { EventScheduler } from '../../lib/stream/event-scheduler.js';
import { insert } from '../fixtures/fake-change-stream.js';
import { idOf } from '../fixtures/batch-harness.js';

/** A scheduler over a dispatcher with one batch handler; acknowledgements recorded by number. */
function scheduler(mayDispatch: () => boolean) {
  const calls: number[][] = [];
  const acked: number[] = [];
  const handler: ChangeHandler = {
    name: 'Sink.onOrders',
    collection: 'orders',
    connectionName: 'default',
    options: {},
    batch: { maxSize: 100, maxWaitMs: 60_000 },
    invoke: (changes) => void calls.push((changes as ChangeEvent[]).map(idOf)),
  };
  const dispatcher = new ChangeDispatcher(
    [handler],
    {
      retries: 0,
      initialDelayMs: 1,
      maxDelayMs: 1,
      onFailure: 'stop',
      deadLetters: new InMemoryDeadLetterStore(),
      hasUserPipeline: false,
    },
    { consumer: 'svc', connectionName: 'default', database: 'db', collection: 'orders' },
    'cs:orders',
  );
  const checkpointer = { ack: (_token: unknown, seq: number) => acked.push(seq) };
  const events = new EventScheduler({
    concurrency: 1,
    signalPerAttempt: false,
    dispatcher,
    checkpointer: checkpointer as unknown as Checkpointer,
    stopping: new AbortController().signal,
    mayDispatch,
    onHandled: () => undefined,
    onFailed: () => undefined,
  });
  return { events, calls, acked };
}

describe('EventScheduler with a batch handler', () => {
  it('takes no slot for an event only batch handlers want, and a drain hands over the pending batch at once', async () => {
    const { events, calls, acked } = scheduler(() => true);
    for (let n = 1; n <= 5; n++) {
      const change = insert(n);
      expect(events.needsSlot(change)).toBe(false);
      events.submit(change, events.keyOf(change)!);
    }
    expect(events.hasSlot()).toBe(true); // concurrency 1, five events waiting
    expect(calls).toEqual([]);
    await events.drain();
    expect(calls).toEqual([[1, 2, 3, 4, 5]]);
    expect(acked.at(-1)).toBe(5);
  });

  it('calls no batch once this instance may no longer dispatch (lease lost); nothing is acknowledged', async () => {
    let valid = true;
    const { events, calls, acked } = scheduler(() => valid);
    for (let n = 1; n <= 3; n++) events.submit(insert(n), events.keyOf(insert(n))!);
    valid = false;
    await events.drain();
    expect(calls).toEqual([]);
    expect(acked).toEqual([]);
    expect(events.events).toEqual([]);
  });

  it('runs a dead-letter replay after the events batched before it, and reads nothing new until it ran', async () => {
    const { events, calls } = scheduler(() => true);
    for (let n = 1; n <= 3; n++) events.submit(insert(n), events.keyOf(insert(n))!);
    const order: string[] = [];
    let release!: () => void;
    const replay = events.runInOrder(
      insert(2),
      'n:2',
      async () => {
        order.push(`replay after ${JSON.stringify(calls)}`);
        await new Promise<void>((resolve) => (release = resolve));
      },
      () => new Error('refused'),
    );
    // The pending batch was handed over at once; nothing new may be read while the replay waits or runs.
    expect(events.hasSlot()).toBe(false);
    expect(events.needsSlot(insert(4))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 0));
    while (order.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(order).toEqual(['replay after [[1,2,3]]']);
    expect(events.hasSlot()).toBe(false);
    release();
    await replay;
    expect(events.hasSlot()).toBe(true);
  });
});
