import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type { mongo } from 'mongoose';
import { OnChange, OnChangeBatch } from '../../lib/index.js';
import {
  ChangeStreamTester,
  ChangeStreamTestingModule,
  changeEvents,
} from '../../lib/testing/index.js';

interface Doc {
  _id: string;
}
const calls: string[][] = [];
const perEvent: string[] = [];
let failOn: string | null = null;

@Injectable()
class DocSink {
  @OnChangeBatch<Doc>('docs', { maxSize: 3, maxWaitMs: 60_000, onFailure: 'dead-letter' })
  onDocs(changes: Array<mongo.ChangeStreamDocument<Doc>>) {
    const ids = changes.map((c) =>
      'documentKey' in c ? String(c.documentKey._id) : c.operationType,
    );
    calls.push(ids);
    if (failOn && ids.includes(failOn)) throw new Error(`${failOn} refused`);
  }
}

@Injectable()
class DocListener {
  @OnChange<Doc, 'insert'>('docs', { operationTypes: ['insert'] })
  onDoc(change: mongo.ChangeStreamInsertDocument<Doc>) {
    perEvent.push(change.fullDocument._id);
  }
}

const opened: TestingModule[] = [];
afterEach(async () => {
  calls.length = 0;
  perEvent.length = 0;
  failOn = null;
  await Promise.all(opened.splice(0).map((m) => m.close()));
});

async function tester() {
  const moduleRef = await Test.createTestingModule({
    imports: [ChangeStreamTestingModule.forRoot({ handlerRetry: { retries: 0 } })],
    providers: [DocSink, DocListener],
  }).compile();
  opened.push(moduleRef);
  return moduleRef.get(ChangeStreamTester);
}

const inserts = (...ids: string[]) =>
  ids.map((id) => changeEvents.insert<Doc>('docs', { _id: id }));

describe('the testing module with @OnChangeBatch', () => {
  it('emitMany hands a batch handler batches cut at maxSize and around an event without a document; emit a batch of one', async () => {
    const t = await tester();
    const outcomes = await t.emitMany('docs', [
      ...inserts('a', 'b', 'c', 'd'),
      changeEvents.drop('docs'),
      ...inserts('e'),
    ]);
    expect(calls).toEqual([['a', 'b', 'c'], ['d'], ['drop'], ['e']]);
    expect(perEvent).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(outcomes.map((o) => o.acknowledged)).toEqual([true, true, true, true, true, true]);
    expect(outcomes[0].handlers.map((h) => [h.handler, h.status])).toEqual([
      ['DocSink.onDocs', 'succeeded'],
      ['DocListener.onDoc', 'succeeded'],
    ]);
    await t.emit('docs', inserts('f')[0]);
    expect(calls.at(-1)).toEqual(['f']);
  });

  it('bisects a failing batch: only the failing event is dead-lettered', async () => {
    const t = await tester();
    failOn = 'b';
    const outcomes = await t.emitMany('docs', inserts('a', 'b', 'c'));
    expect(
      outcomes.map((o) => o.handlers.find((h) => h.handler === 'DocSink.onDocs')!.status),
    ).toEqual(['succeeded', 'dead-lettered', 'succeeded']);
    expect(outcomes.every((o) => o.acknowledged)).toBe(true);
    expect(
      (await t.deadLetters()).map((l) => [
        l.handler,
        (l.change as mongo.ChangeStreamInsertDocument<Doc>).fullDocument._id,
      ]),
    ).toEqual([['DocSink.onDocs', 'b']]);
    expect(calls).toEqual([['a', 'b', 'c'], ['a', 'b'], ['a'], ['b'], ['c']]);
  });
});
