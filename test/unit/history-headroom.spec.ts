import { afterEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import { OplogWindowSampler } from '../../lib/headroom/oplog-window-sampler.js';
import { type OplogCollection, readOplogWindow } from '../../lib/headroom/oplog-window.js';
import type { CollectionStream } from '../../lib/stream/collection-stream.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { deferred, KEY, logs, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const HOUR = 3_600_000;
const ts = (t: number, i = 1) => new mongoose.mongo.Timestamp({ t, i });
/** A mongod resume token (KeyString: 0x82, the Timestamp's seconds and increment, then the rest). */
const mongodToken = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}000000010100000004`,
});
const T0 = 1_790_000_000;

/**
 * `local.oplog.rs` as mongod answers the sampler's two reads: entries in natural (insertion)
 * order, a capped collection that drops its oldest entries; a missing collection answers nothing
 * (a find on a collection that does not exist returns no document); a refusal throws the driver's
 * `MongoServerError` with the server's code.
 */
class OplogDouble implements OplogCollection {
  entries: mongo.Timestamp[] = [];
  refusal: Error | null = null;
  readonly queries: Array<{ filter: object; options: object }> = [];

  constructor(...seconds: number[]) {
    this.entries = seconds.map((t) => ts(t));
  }

  async findOne(
    filter: object,
    options: { sort: { $natural: 1 | -1 }; projection: { ts: 1; _id: 0 }; maxTimeMS: number },
  ) {
    this.queries.push({ filter, options });
    await Promise.resolve();
    if (this.refusal) throw this.refusal;
    const entry = options.sort.$natural === 1 ? this.entries[0] : this.entries.at(-1);
    return entry ? { ts: entry } : null;
  }

  /** The capped collection is full: each write drops the oldest entries up to `oldest`. */
  truncateTo(oldest: number): void {
    this.entries = [ts(oldest), ...this.entries.filter((e) => e.t > oldest)];
  }
}

const serverError = (code: number, codeName: string, errmsg: string) =>
  new mongoose.mongo.MongoServerError({ ok: 0, code, codeName, errmsg });
const unauthorized = () =>
  serverError(
    13,
    'Unauthorized',
    'not authorized on local to execute command { find: "oplog.rs", filter: {}, sort: { $natural: 1 }, projection: { ts: 1, _id: 0 }, limit: 1, singleBatch: true, maxTimeMS: 5000, $db: "local" }',
  );

/** A sampler over `oplog` with the given streams (a long interval: specs call `sample()` themselves). */
function samplerOf(oplog: OplogDouble, ...streams: CollectionStream[]) {
  const sampler = new OplogWindowSampler(
    'default',
    () => oplog,
    HOUR,
    new Logger('ChangeStreamModule'),
  );
  streams.forEach((s) => sampler.add(s.headroom!));
  return sampler;
}

/** An open stream (leases off) whose position is a mongod token of time `t`, idle. */
async function openAt(t: number, options: Parameters<typeof setup>[0]['options'] = {}) {
  const harness = setup({
    scripts: [{ aggregate: { postBatchResumeToken: mongodToken(t) }, idleToken: mongodToken(t) }],
    options: { historyHeadroom: { warnMs: HOUR }, ...options },
  });
  harness.stream.start();
  await harness.stream.whenSettled();
  await eventually('the position is read', () => harness.checkpointer.position !== null);
  return harness;
}

const warnings = () => logs.messages('warn');

describe('readOplogWindow', () => {
  it('reads the first and the last entry by natural order, only their ts, bounded in time', async () => {
    const oplog = new OplogDouble(T0, T0 + 60, T0 + 7200);
    expect(await readOplogWindow(oplog)).toEqual({ oldest: ts(T0), newest: ts(T0 + 7200) });
    expect(oplog.queries).toEqual([
      {
        filter: {},
        options: { sort: { $natural: 1 }, projection: { ts: 1, _id: 0 }, maxTimeMS: 5000 },
      },
      {
        filter: {},
        options: { sort: { $natural: -1 }, projection: { ts: 1, _id: 0 }, maxTimeMS: 5000 },
      },
    ]);
  });

  it('a missing or empty local.oplog.rs (not a replica set member) is unknown, not an error', async () => {
    expect(await readOplogWindow(new OplogDouble())).toEqual({
      unknown: expect.stringMatching(/local\.oplog\.rs is missing or empty/),
      refused: true,
    });
  });

  it('Unauthorized (13) names the privilege that is missing', async () => {
    const oplog = new OplogDouble(T0);
    oplog.refusal = unauthorized();
    const reading = await readOplogWindow(oplog);
    expect(reading).toEqual({
      unknown: expect.stringMatching(
        /not authorized to read local\.oplog\.rs .*grant "find" on local\.oplog\.rs/,
      ),
      refused: true,
    });
  });

  it("mongos (IllegalOperation 20, \"Can't use 'local' database through mongos\") says the oplog is on the shards", async () => {
    const oplog = new OplogDouble(T0);
    oplog.refusal = serverError(
      20,
      'IllegalOperation',
      "Can't use 'local' database through mongos",
    );
    expect(await readOplogWindow(oplog)).toEqual({
      unknown: expect.stringMatching(/goes through mongos/),
      refused: true,
    });
  });

  it('a network error is a passing failure: not a refusal', async () => {
    const oplog = new OplogDouble(T0);
    oplog.refusal = new mongoose.mongo.MongoNetworkError('connection 3 to 127.0.0.1:27017 closed');
    expect(await readOplogWindow(oplog)).toEqual({
      unknown: expect.stringMatching(/could not be read this time .*closed/),
      refused: false,
    });
  });
});

describe('history headroom of a stream', () => {
  it('is its position time minus the oldest entry, beside the oplog window, in status', async () => {
    const { stream } = await openAt(T0 + 5400);
    expect(stream.status()).toMatchObject({
      historyHeadroomMs: null,
      oplogWindowMs: null,
      historyHeadroomUnknown: 'the oplog has not been sampled yet',
    });
    await samplerOf(new OplogDouble(T0, T0 + 7200), stream).sample();
    expect(stream.status()).toMatchObject({
      historyHeadroomMs: 5400_000,
      oplogWindowMs: 7200_000,
      historyHeadroomUnknown: null,
      state: 'open',
    });
  });

  it('one pair of oplog reads per sample, whatever the number of streams on the connection', async () => {
    const oplog = new OplogDouble(T0, T0 + 7200);
    const streams = await Promise.all([openAt(T0 + 10), openAt(T0 + 20), openAt(T0 + 30)]);
    await samplerOf(oplog, ...streams.map((s) => s.stream)).sample();
    expect(oplog.queries).toHaveLength(2);
    expect(streams.map((s) => s.stream.status().historyHeadroomMs)).toEqual([
      10_000, 20_000, 30_000,
    ]);
  });

  it('below warnMs while the oplog drops entries: degraded with one warning naming the stream, headroom and window; recovers above it', async () => {
    const later = deferred();
    const { stream, checkpointer, states } = (() => {
      const harness = setup({
        scripts: [
          {
            aggregate: { postBatchResumeToken: mongodToken(T0 + 1800) },
            getMores: [
              {
                after: later.promise,
                then: { batch: [], postBatchResumeToken: mongodToken(T0 + 9000) },
              },
            ],
            idleToken: mongodToken(T0 + 9000),
          },
        ],
        options: { historyHeadroom: { warnMs: HOUR } },
      });
      harness.stream.start();
      return harness;
    })();
    await stream.whenSettled();
    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, stream);

    // A fresh oplog (its oldest entry never moved): 30 min from its first entry is no risk yet.
    await sampler.sample();
    expect(stream.status()).toMatchObject({ state: 'open', historyHeadroomMs: 1800_000 });
    expect(warnings().filter((w) => w.includes('history headroom'))).toEqual([]);

    // It rolls over: the oldest entry moves up to 20 min before the position.
    oplog.truncateTo(T0 + 600);
    await sampler.sample();
    await sampler.sample();
    expect(stream.status()).toMatchObject({
      state: 'degraded',
      historyHeadroomMs: 1200_000,
      oplogWindowMs: 6600_000,
      lastError: 'history headroom 20 m 0 s, oplog window 1 h 50 m',
    });
    expect(warnings().filter((w) => w.includes('history headroom'))).toEqual([
      `Stream ${KEY}: history headroom 20 m 0 s (oplog window 1 h 50 m) is below historyHeadroom.warnMs (1 h 0 m): the consumer is falling behind or stopped; once its position falls off the oplog, onHistoryLost applies.`,
    ]);

    // The consumer moves on (a newer post-batch token): headroom back above an hour.
    later.resolve();
    await eventually(
      'the newer position, stored',
      () =>
        JSON.stringify(checkpointer.savedPosition) ===
        JSON.stringify({ token: mongodToken(T0 + 9000) }),
    );
    await sampler.sample();
    expect(stream.status()).toMatchObject({
      state: 'open',
      historyHeadroomMs: 8400_000,
      lastError: null,
    });
    expect(logs.messages('log')).toContain(
      `Stream ${KEY}: history headroom is 2 h 20 m again (oplog window 1 h 50 m).`,
    );
    expect(states()).toEqual(['open', 'degraded', 'open']);
  });

  it('a position already off the oplog is reported negative, and says history is lost', async () => {
    const { stream } = await openAt(T0 + 100);
    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, stream);
    await sampler.sample();
    oplog.truncateTo(T0 + 700);
    await sampler.sample();
    expect(stream.status()).toMatchObject({ state: 'degraded', historyHeadroomMs: -600_000 });
    expect(warnings()).toContain(
      `Stream ${KEY}: its position is 10 m 0 s older than the oldest oplog entry (oplog window 1 h 48 m): history is lost, and the next reopen applies onHistoryLost.`,
    );
  });

  it('warnMs 0 never degrades; the numbers are still shown', async () => {
    const { stream } = await openAt(T0 + 100, { historyHeadroom: { warnMs: 0 } });
    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, stream);
    await sampler.sample();
    oplog.truncateTo(T0 + 50);
    await sampler.sample();
    expect(stream.status()).toMatchObject({ state: 'open', historyHeadroomMs: 50_000 });
  });

  it('a server that refuses (Unauthorized): said once per connection, the reason on every stream, never degraded', async () => {
    const [a, b] = await Promise.all([openAt(T0 + 100), openAt(T0 + 200)]);
    const oplog = new OplogDouble(T0, T0 + 7200);
    oplog.refusal = unauthorized();
    const sampler = samplerOf(oplog, a.stream, b.stream);
    await sampler.sample();
    await sampler.sample();
    await sampler.sample();
    const said = warnings().filter((w) => w.startsWith('History headroom of connection "default"'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/not authorized to read local\.oplog\.rs/);
    expect(said[0]).toMatch(/Streams keep working/);
    for (const { stream } of [a, b]) {
      expect(stream.status()).toMatchObject({
        state: 'open',
        historyHeadroomMs: null,
        oplogWindowMs: null,
        historyHeadroomUnknown: expect.stringMatching(/not authorized to read local\.oplog\.rs/),
        lastError: null,
      });
    }
  });

  it('a degraded stream whose oplog can no longer be read is not left degraded by it', async () => {
    const { stream } = await openAt(T0 + 100);
    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, stream);
    await sampler.sample();
    oplog.truncateTo(T0 + 50);
    await sampler.sample();
    expect(stream.status().state).toBe('degraded');
    oplog.refusal = new mongoose.mongo.MongoNetworkError('connection closed');
    await sampler.sample();
    expect(stream.status()).toMatchObject({
      state: 'open',
      historyHeadroomMs: null,
      historyHeadroomUnknown: expect.stringMatching(/could not be read this time/),
    });
  });

  it('a position without a readable time (not a mongod token): unknown, with the window still shown', async () => {
    const { stream } = setup({
      scripts: [{ aggregate: { postBatchResumeToken: { _data: 't7' } } }],
    });
    stream.start();
    await stream.whenSettled();
    await eventually('the position is read', () => stream.checkpointer.position !== null);
    await samplerOf(new OplogDouble(T0, T0 + 60), stream).sample();
    expect(stream.status()).toMatchObject({
      historyHeadroomMs: null,
      oplogWindowMs: 60_000,
      historyHeadroomUnknown: expect.stringMatching(
        /cluster time of the stream's position is unknown/,
      ),
    });
  });

  it('historyHeadroom: false reads nothing and says why', async () => {
    const { stream } = await openAt(T0 + 100, { historyHeadroom: false });
    expect(stream.status().historyHeadroomUnknown).toBe(
      'history headroom sampling is off (historyHeadroom: false)',
    );
  });
});

describe('the oplog sampler at shutdown', () => {
  it('is not waited for: a sample under way when it stops changes nothing', async () => {
    const { stream } = await openAt(T0 + 100);
    const answer = deferred();
    const oplog = new OplogDouble(T0, T0 + 7200);
    const slow: OplogCollection = {
      findOne: async (filter, options) => {
        await answer.promise;
        return oplog.findOne(filter, options);
      },
    };
    const sampler = new OplogWindowSampler('default', () => slow, HOUR, new Logger('x'));
    sampler.add(stream.headroom!);
    const sampling = sampler.sample();
    sampler.stop(); // returns at once, though the server has not answered
    answer.resolve();
    await sampling;
    expect(stream.status().historyHeadroomUnknown).toBe('the oplog has not been sampled yet');
  });
});

describe('history headroom with leases', () => {
  it("a standby shows the holder's headroom (its stored position) and is not degraded by it", async () => {
    const tokens = new FencedMemoryStore();
    const options = { historyHeadroom: { warnMs: HOUR } };
    const holder = setup({
      tokens,
      leases: { instanceId: 'A' },
      options,
      scripts: [
        {
          aggregate: { postBatchResumeToken: mongodToken(T0 + 300) },
          idleToken: mongodToken(T0 + 300),
        },
      ],
    });
    holder.stream.start();
    await eventually('A holds the stream', () => holder.stream.status().role === 'active');
    await eventually('A stored its position', async () => (await tokens.load(KEY)) !== null);
    const standby = setup({ tokens, leases: { instanceId: 'B' }, options, scripts: [] });
    standby.stream.start();
    await eventually('B stands by', () => standby.stream.status().state === 'standby');

    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, holder.stream, standby.stream);
    await sampler.sample();
    oplog.truncateTo(T0 + 60);
    await sampler.sample();
    expect(standby.stream.status()).toMatchObject({
      state: 'standby',
      holder: 'A',
      historyHeadroomMs: 240_000,
      oplogWindowMs: 7140_000,
    });
    expect(holder.stream.status()).toMatchObject({ state: 'degraded', historyHeadroomMs: 240_000 });
    // One warning, from the holder: the standby's view is the same stream.
    expect(warnings().filter((w) => w.includes('is below historyHeadroom.warnMs'))).toHaveLength(1);
  });
});

describe('history headroom while saves fail', () => {
  it('is that of the position last stored (what a restart resumes from), not of the newer one in memory', async () => {
    const tokens = new FencedMemoryStore();
    const later = deferred();
    const { stream, checkpointer } = setup({
      tokens,
      scripts: [
        {
          aggregate: { postBatchResumeToken: mongodToken(T0 + 1800) },
          getMores: [
            {
              after: later.promise,
              then: { batch: [], postBatchResumeToken: mongodToken(T0 + 9000) },
            },
          ],
          idleToken: mongodToken(T0 + 9000),
        },
      ],
      options: { historyHeadroom: { warnMs: HOUR } },
    });
    stream.start();
    await eventually('the start position stored', async () => (await tokens.load(KEY)) !== null);
    tokens.failSaves = true; // Redis away from now on
    later.resolve();
    await eventually(
      'the newer position in memory',
      () =>
        JSON.stringify(checkpointer.position) === JSON.stringify({ token: mongodToken(T0 + 9000) }),
    );
    await eventually('a save of it failed', () => checkpointer.failing);
    const oplog = new OplogDouble(T0, T0 + 7200);
    const sampler = samplerOf(oplog, stream);
    await sampler.sample();
    oplog.truncateTo(T0 + 600);
    await sampler.sample();
    // A restart now resumes from T0 + 1800: 20 minutes from the oldest entry, and it says so.
    expect(stream.status()).toMatchObject({ historyHeadroomMs: 1200_000 });
    expect(warnings().filter((w) => w.includes('is below historyHeadroom.warnMs'))).toHaveLength(1);
    tokens.failSaves = false;
    await eventually(
      'the newer position stored',
      async () =>
        JSON.stringify(await tokens.load(KEY)) ===
        JSON.stringify({ token: mongodToken(T0 + 9000) }),
    );
    await sampler.sample();
    expect(stream.status()).toMatchObject({ historyHeadroomMs: 8400_000 });
  });
});
