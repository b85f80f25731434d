import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type mongoose from 'mongoose';
import {
  collectionName,
  type ManyCollectionsArgs,
  type ManyCollectionsResult,
} from './many-collections.js';

const script = fileURLToPath(new URL('./many-collections-scenario.main.js', import.meta.url));
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const IDLE_COLLECTIONS = env('BENCH_IDLE_COLLECTIONS', 200);
const IDLE_SECONDS = env('BENCH_IDLE_SECONDS', 30);
const DRAIN_COLLECTIONS = env('BENCH_DRAIN_COLLECTIONS', 50);
const DRAIN_EVENTS = env('BENCH_DRAIN_EVENTS', 20_000);
type Mode = 'collection' | 'database';
/** BENCH_MANY_MODES: a subset, e.g. `collection` (the targets need both). */
const MODES = (process.env.BENCH_MANY_MODES ?? 'collection,database').split(',') as Mode[];
let runs = 0;

interface Servers {
  client: mongoose.mongo.MongoClient;
  mongoUri: string;
  redisUrl: string;
  /** The MongoDB server's process, when the bench started it: its CPU time is read from /proc. */
  mongoPid?: number;
}

/**
 * The "Many collections" table of `npm run bench` (issue 20's targets): per-collection against
 * per-database streams, with IDLE_COLLECTIONS watched collections idle for IDLE_SECONDS (the
 * app's and the MongoDB server's CPU), startup with that many collections against one, and the
 * drain of a DRAIN_EVENTS backlog spread over DRAIN_COLLECTIONS collections against the same
 * backlog in one collection (one collection stream).
 */
export async function manyCollectionsTable(servers: Servers): Promise<void> {
  const floor = await serverFloor(servers);
  const rows = new Map<Mode, { idle: Idle; startupOneMs: number; drainRate: number }>();
  // Both idle runs first: the test server's oplog grows with every drain, and its reads scan it.
  const idle = new Map<Mode, Idle>();
  for (const mode of MODES) idle.set(mode, await idleRun(servers, mode));
  for (const mode of MODES) {
    const oneArgs = await fresh(servers, 1);
    const one = await run(servers, { ...oneArgs, streams: mode, phase: 'prime' });
    await servers.client.db(oneArgs.dbName).dropDatabase();
    const drain = await drainRun(servers, mode, DRAIN_COLLECTIONS);
    rows.set(mode, { idle: idle.get(mode)!, startupOneMs: one.startupMs, drainRate: drain });
    process.stdout.write('.');
  }
  const single = await drainRun(servers, 'collection', 1);
  process.stdout.write('\n');
  console.log(
    `\nMany collections (${IDLE_COLLECTIONS} idle for ${IDLE_SECONDS} s; drain of ${DRAIN_EVENTS} events over ${DRAIN_COLLECTIONS} collections vs one collection stream at ${single.toFixed(0)} events/s)`,
  );
  const header = [
    'streams',
    'app CPU %',
    'server CPU %',
    `startup ${IDLE_COLLECTIONS} ms`,
    'startup 1 ms',
    'drain events/s',
    '× one stream',
  ];
  if (floor !== null)
    console.log(
      `  the MongoDB server with no consumer at all: ${floor.toFixed(2)} % CPU over ${IDLE_SECONDS} s (its own floor; "caused" below is the rest)`,
    );
  const lines = [...rows].map(([mode, r]) => [
    mode,
    r.idle.appPercent.toFixed(2),
    r.idle.serverPercent === null ? '-' : r.idle.serverPercent.toFixed(2),
    r.idle.startupMs.toFixed(0),
    r.startupOneMs.toFixed(0),
    r.drainRate.toFixed(0),
    (r.drainRate / single).toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(format(header));
  lines.forEach((l) => console.log(format(l)));
  const collection = rows.get('collection');
  const database = rows.get('database');
  if (!collection || !database) return;
  const target = (what: string, value: number, goal: string, met: boolean) =>
    console.log(`  ${what}: ${value.toFixed(2)} (target ${goal}: ${met ? 'met' : 'MISSED'})`);
  const appShare = database.idle.appPercent / collection.idle.appPercent;
  target('idle app CPU, database / collection', appShare, '≤ 0.1', appShare <= 0.1);
  if (database.idle.serverPercent !== null && collection.idle.serverPercent !== null) {
    const serverShare = database.idle.serverPercent / collection.idle.serverPercent;
    target('idle server CPU, database / collection', serverShare, '≤ 0.1', serverShare <= 0.1);
    if (floor !== null) {
      const caused = (r: Idle) => Math.max(0, r.serverPercent! - floor);
      const causedShare = caused(database.idle) / caused(collection.idle);
      target(
        'idle server CPU caused by the consumer (minus its floor), database / collection',
        causedShare,
        '≤ 0.1',
        causedShare <= 0.1,
      );
    }
  }
  const extra = (database.idle.startupMs - database.startupOneMs) / 1000;
  target(
    `database mode: startup with ${IDLE_COLLECTIONS} collections minus with one, s`,
    extra,
    '≤ 1',
    extra <= 1,
  );
  const drainRatio = database.drainRate / single;
  target(
    `database mode: drain over ${DRAIN_COLLECTIONS} collections vs one collection stream`,
    drainRatio,
    '≥ 0.9',
    drainRatio >= 0.9,
  );
}

interface Idle {
  startupMs: number;
  appPercent: number;
  serverPercent: number | null;
}

async function idleRun(servers: Servers, mode: Mode): Promise<Idle> {
  const args = { ...(await fresh(servers, IDLE_COLLECTIONS)), streams: mode };
  let serverBefore: number | null = null;
  const result = await run(
    servers,
    { ...args, phase: 'idle', idleSeconds: IDLE_SECONDS },
    async () => (serverBefore = await cpuTicks(servers.mongoPid)),
  );
  const serverAfter = await cpuTicks(servers.mongoPid);
  await servers.client.db(args.dbName).dropDatabase();
  const windowMs = IDLE_SECONDS * 1000;
  return {
    startupMs: result.startupMs,
    appPercent: (result.cpuMicros / 1000 / windowMs) * 100,
    serverPercent:
      serverBefore === null || serverAfter === null
        ? null
        : (((serverAfter - serverBefore) * TICK_MS) / windowMs) * 100,
  };
}

/** The server's CPU over IDLE_SECONDS with no consumer running (JVM housekeeping): null without its pid. */
async function serverFloor(servers: Servers): Promise<number | null> {
  const before = await cpuTicks(servers.mongoPid);
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  const after = await cpuTicks(servers.mongoPid);
  return before === null || after === null
    ? null
    : (((after - before) * TICK_MS) / (IDLE_SECONDS * 1000)) * 100;
}

/** Events per second: positions stored by a first start, then a backlog written while nothing runs, then the timed drain. */
async function drainRun(servers: Servers, mode: Mode, collections: number): Promise<number> {
  const args = { ...(await fresh(servers, collections)), streams: mode };
  const db = servers.client.db(args.dbName);
  // A first run handles one event per collection, so each stream stored a position (a server without
  // post-batch tokens gives none at open), then stops: the backlog is written while nothing runs.
  await run(servers, { ...args, phase: 'drain', expected: collections }, () =>
    Promise.all(
      Array.from({ length: collections }, (_, c) =>
        db.collection(collectionName(c)).insertOne({ prime: c }),
      ),
    ),
  );
  const perRound = 40;
  let written = 0;
  for (let round = 0; written < DRAIN_EVENTS; round++) {
    for (let c = 0; c < collections && written < DRAIN_EVENTS; c++) {
      const count = Math.min(perRound, DRAIN_EVENTS - written);
      await db
        .collection(collectionName(c))
        .insertMany(Array.from({ length: count }, (_, i) => ({ round, i })));
      written += count;
    }
  }
  const result = await run(servers, { ...args, phase: 'drain', expected: DRAIN_EVENTS });
  await db.dropDatabase();
  return (result.events / result.drainMs!) * 1000;
}

/** A database of its own with `collections` collections (one document each), and a consumer of its own. */
async function fresh(
  servers: Servers,
  collections: number,
): Promise<Omit<ManyCollectionsArgs, 'streams' | 'phase'>> {
  const dbName = `bench_many_${process.pid}_${++runs}`;
  const db = servers.client.db(dbName);
  for (let i = 0; i < collections; i++)
    await db.collection(collectionName(i)).insertOne({ seed: i });
  return {
    mongoUri: servers.mongoUri,
    redisUrl: servers.redisUrl,
    dbName,
    consumer: `bench-many-${process.pid}-${runs}`,
    collections,
  };
}

/** One scenario in a child process; `atReady` runs when it printed READY. */
async function run(
  servers: Servers,
  args: ManyCollectionsArgs,
  atReady?: () => Promise<unknown>,
): Promise<ManyCollectionsResult> {
  if (process.env.BENCH_ECHO)
    console.error(`[many] ${args.phase} ${args.streams} ${args.collections}`);
  const child = spawn(process.execPath, [script, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  let ready: Promise<unknown> | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (!ready && output.includes('READY')) ready = atReady?.() ?? Promise.resolve();
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  await ready;
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || !line)
    throw new Error(`many-collections scenario ${args.phase} failed (exit ${code}):\n${output}`);
  return JSON.parse(line.slice('RESULT '.length)) as ManyCollectionsResult;
}

/** Linux clock ticks per second (`getconf CLK_TCK`): 100 on every kernel we run on. */
const TICK_MS = 10;

/** A process's user + system CPU time in clock ticks (its threads included), or null without /proc or a pid. */
async function cpuTicks(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th field, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}
