import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type mongoose from 'mongoose';
import {
  collectionName,
  type ManyCollectionsArgs,
  type ManyCollectionsResult,
} from './many-collections.js';
import { groupShares, type ThreadGroup, threadTimes } from '../servers/server-threads.js';

const script = fileURLToPath(new URL('./many-collections-scenario.main.js', import.meta.url));
let runs = 0;

export type Mode = 'collection' | 'database';

export interface Servers {
  client: mongoose.mongo.MongoClient;
  mongoUri: string;
  redisUrl: string;
  /** The MongoDB server's process, when the bench started it: its CPU time is read from /proc. */
  mongoPid?: number;
}

export interface Idle {
  startupMs: number;
  appPercent: number;
  /** The server's CPU over the same window (READY to IDLE_DONE), null without its pid. */
  serverPercent: number | null;
  /** The same, by what its threads do (live threads only), null without /proc. */
  serverThreads: Record<ThreadGroup, number> | null;
  /** The app's garbage collections in the window: main-thread pause ms, and how many were major. */
  gcMs: number;
  majorGcs: number;
}

/** `collections` watched collections idle for `seconds`: the app's and the server's CPU over that window. */
export async function idleRun(
  servers: Servers,
  mode: Mode,
  collections: number,
  seconds: number,
  /** Seconds between the app's bootstrap and the window's start (0: the window starts at once). */
  settleSeconds = 0,
): Promise<Idle> {
  const args = { ...(await fresh(servers, collections)), streams: mode };
  let from: Sample | undefined;
  let to: Sample | undefined;
  const sample = () => sampleServer(servers.mongoPid);
  const result = await run(
    servers,
    { ...args, phase: 'idle', idleSeconds: seconds, settleSeconds },
    { READY: async () => (from = await sample()), IDLE_DONE: async () => (to = await sample()) },
  );
  await servers.client.db(args.dbName).dropDatabase();
  return {
    startupMs: result.startupMs,
    appPercent: (result.cpuMicros / 1000 / (seconds * 1000)) * 100,
    serverPercent: percentOf(from!, to!),
    serverThreads: groupShares(from!.threads, to!.threads, to!.at - from!.at),
    gcMs: result.gcMs,
    majorGcs: result.majorGcs,
  };
}

/** The server's CPU at a moment: its process's ticks (ended threads included) and each live thread's time. */
interface Sample {
  ticks: number | null;
  threads: Awaited<ReturnType<typeof threadTimes>>;
  at: number;
}

async function sampleServer(pid: number | undefined): Promise<Sample> {
  const [ticks, threads] = await Promise.all([cpuTicks(pid), threadTimes(pid)]);
  return { ticks, threads, at: performance.now() };
}

export interface Floor {
  percent: number;
  threads: Record<ThreadGroup, number> | null;
}

/**
 * The server's CPU over `seconds` with no consumer running (JVM housekeeping), from `settleSeconds`
 * after the previous consumer left, as the modes' windows: null without its pid.
 */
export async function serverFloor(
  servers: Servers,
  seconds: number,
  settleSeconds = 0,
): Promise<Floor | null> {
  await new Promise((resolve) => setTimeout(resolve, settleSeconds * 1000));
  const from = await sampleServer(servers.mongoPid);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const to = await sampleServer(servers.mongoPid);
  const percent = percentOf(from, to);
  if (percent === null) return null;
  return { percent, threads: groupShares(from.threads, to.threads, to.at - from.at) };
}

function percentOf(from: Sample, to: Sample): number | null {
  if (from.ticks === null || to.ticks === null) return null;
  return (((to.ticks - from.ticks) * TICK_MS) / (to.at - from.at)) * 100;
}

/** Startup with one watched collection (it starts, stores its position, stops): ms. */
export async function startupWithOne(servers: Servers, mode: Mode): Promise<number> {
  const args = await fresh(servers, 1);
  const one = await run(servers, { ...args, streams: mode, phase: 'prime' });
  await servers.client.db(args.dbName).dropDatabase();
  return one.startupMs;
}

export interface Drain {
  /** Events per second, first event to last. */
  rate: number;
  /** The app's CPU time per event over the same window, µs. */
  cpuMicrosPerEvent: number;
}

/** Positions stored by a first start, then a backlog written while nothing runs, then the timed drain. */
export async function drainRun(
  servers: Servers,
  mode: Mode,
  collections: number,
  events: number,
): Promise<Drain> {
  const args = { ...(await fresh(servers, collections)), streams: mode };
  const db = servers.client.db(args.dbName);
  // A first run handles one event per collection, so each stream stored a position (a server without
  // post-batch tokens gives none at open), then stops: the backlog is written while nothing runs.
  await run(
    servers,
    { ...args, phase: 'drain', expected: collections },
    {
      READY: () =>
        Promise.all(
          Array.from({ length: collections }, (_, c) =>
            db.collection(collectionName(c)).insertOne({ prime: c }),
          ),
        ),
    },
  );
  const perRound = 40;
  let written = 0;
  for (let round = 0; written < events; round++) {
    for (let c = 0; c < collections && written < events; c++) {
      const count = Math.min(perRound, events - written);
      await db
        .collection(collectionName(c))
        .insertMany(Array.from({ length: count }, (_, i) => ({ round, i })));
      written += count;
    }
  }
  const result = await run(servers, { ...args, phase: 'drain', expected: events });
  await db.dropDatabase();
  return {
    rate: (result.events / result.drainMs!) * 1000,
    cpuMicrosPerEvent: result.drainCpuMicros! / result.events,
  };
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

/** One scenario in a child process; `marks` run when it prints READY or IDLE_DONE. */
async function run(
  servers: Servers,
  args: ManyCollectionsArgs,
  marks: Partial<Record<'READY' | 'IDLE_DONE', () => Promise<unknown>>> = {},
): Promise<ManyCollectionsResult> {
  if (process.env.BENCH_ECHO)
    console.error(`[many] ${args.phase} ${args.streams} ${args.collections}`);
  // BENCH_NODE_ARGS: extra node flags for each consumer, as in `npm run bench` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, script, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const reached: Promise<unknown>[] = [];
  const pending = new Set(Object.keys(marks) as ('READY' | 'IDLE_DONE')[]);
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    for (const mark of pending)
      if (output.includes(mark)) {
        pending.delete(mark);
        reached.push(marks[mark]!());
      }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  await Promise.all(reached);
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
