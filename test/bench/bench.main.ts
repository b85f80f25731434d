import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import mongoose from 'mongoose';
import { startTestServers } from '../servers/test-servers.js';
import { backfillTable } from './backfill-bench.js';
import { currentToken, makeBacklog } from './backlog.js';
import { CallgrindRun } from './callgrind.js';
import { manyCollectionsTable } from './many-collections-bench.js';
import { median, percentile } from './percentiles.js';
import type { ScenarioArgs, ScenarioResult } from './scenario.js';

/**
 * `npm run bench`: drains the same backlog with the bare driver loop, the hand-rolled
 * per-event SET, and the module (no-op and 1 ms handlers at several concurrencies), then a
 * live run with a writer; prints events/s, the ratio to the bare loop, write-to-handler delay,
 * peak RSS growth and per-document order. Not part of the tests' pass/fail.
 */
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env('BENCH_ROUNDS', 3);
const EVENTS = env('BENCH_EVENTS', 8000);
const MEMORY_EVENTS = env('BENCH_MEMORY_EVENTS', 20_000);
/** Backlog events each consumer handles before its clock starts (it drains EVENTS more): JIT warm-up, see docs/throughput.md. */
const WARM_EVENTS = env('BENCH_WARM_EVENTS', 0);
const LIVE_RATE = env('BENCH_LIVE_RATE', 1000);
const LIVE_SECONDS = env('BENCH_LIVE_SECONDS', 4);
const { EJSON } = mongoose.mongo.BSON;
const scenarioScript = fileURLToPath(new URL('./scenario.main.js', import.meta.url));

interface Variant {
  name: string;
  kind: ScenarioArgs['kind'];
  handlerDelayMs: number;
  busyMicrosPerEvent?: number;
  batch?: ScenarioArgs['batch'];
  concurrency?: number;
}

/** Batch handlers against per-event ones of the same cost: 1 ms per call plus 2 µs per event (a bulk write). */
const BULK = { handlerDelayMs: 1, busyMicrosPerEvent: 2 };
/** BENCH_BATCH_MAX_SIZE: another `maxSize` for the batch variants (their names keep saying 500). */
const BATCH = { maxSize: env('BENCH_BATCH_MAX_SIZE', 500), maxWaitMs: 50 };
const BATCH_VARIANTS = {
  perEvent1: 'module, bulk-cost handler (1 ms/call + 2 µs/event), concurrency 1',
  perEvent32: 'module, bulk-cost handler (1 ms/call + 2 µs/event), concurrency 32',
  batch: 'module, bulk-cost batch handler (maxSize 500), concurrency 1',
  noopBatch: 'module, no-op batch handler (maxSize 500)',
};

const ALL_VARIANTS: Variant[] = [
  { name: 'bare driver loop (no checkpoints)', kind: 'bare', handlerDelayMs: 0 },
  { name: 'bare driver loop in a Nest app', kind: 'bare-nest', handlerDelayMs: 0 },
  { name: 'hand-rolled: await SET per event', kind: 'seed-set', handlerDelayMs: 0 },
  { name: 'module, no-op handler', kind: 'module', handlerDelayMs: 0, concurrency: 1 },
  {
    name: 'module, no-op handler, concurrency 8',
    kind: 'module',
    handlerDelayMs: 0,
    concurrency: 8,
  },
  { name: 'hand-rolled SET, 1 ms handler', kind: 'seed-set', handlerDelayMs: 1 },
  ...[1, 8, 16, 32, 128].map((concurrency) => ({
    name: `module, 1 ms handler, concurrency ${concurrency}`,
    kind: 'module' as const,
    handlerDelayMs: 1,
    concurrency,
  })),
  { name: BATCH_VARIANTS.perEvent1, kind: 'module', ...BULK, concurrency: 1 },
  { name: BATCH_VARIANTS.perEvent32, kind: 'module', ...BULK, concurrency: 32 },
  { name: BATCH_VARIANTS.batch, kind: 'module', ...BULK, batch: BATCH, concurrency: 1 },
  {
    name: BATCH_VARIANTS.noopBatch,
    kind: 'module',
    handlerDelayMs: 0,
    batch: BATCH,
    concurrency: 1,
  },
];
/** BENCH_VARIANTS=<regex> runs a subset (the bare loop always runs: it is the reference). */
const VARIANTS = ALL_VARIANTS.filter(
  (v, i) => i === 0 || new RegExp(process.env.BENCH_VARIANTS ?? '.').test(v.name),
);
const SKIP = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean));

async function main(): Promise<void> {
  const servers = await startTestServers();
  process.env.MONGODB_URI = servers.mongoUri;
  process.env.REDIS_URL = servers.redisUrl;
  const connection = await mongoose.createConnection(servers.mongoUri).asPromise();
  const client = connection.getClient();
  console.log(`[bench] ${servers.description}`);
  console.log(
    `[bench] machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  );
  console.log(
    `[bench] ${ROUNDS} rounds, backlog ${EVENTS} events${WARM_EVENTS ? ` (+${WARM_EVENTS} before the clock starts)` : ''} (insert + delete per document, 16 apart), live ${LIVE_RATE}/s for ${LIVE_SECONDS} s; median of rounds`,
  );
  try {
    const backlog = await runRounds('backlog', VARIANTS, async (round) => {
      const dbName = `bench_backlog_${round}_${Date.now()}`;
      const made = await makeBacklog(client.db(dbName), 'bench', EVENTS + WARM_EVENTS);
      return {
        dbName,
        start: EJSON.stringify(made.start),
        size: made.size,
        warmEvents: WARM_EVENTS,
      };
    });
    printTable('Backlog (catch-up from a stored position)', backlog, false);
    printBatchTargets(backlog);
    if (!SKIP.has('backfill'))
      await backfillTable(client, servers.mongoUri, servers.redisUrl, ROUNDS);
    if (!SKIP.has('many')) await manyCollectionsTable({ ...servers, client });
    if (SKIP.has('live') && SKIP.has('memory')) return;
    const live = SKIP.has('live')
      ? new Map()
      : await runRounds('live', VARIANTS, async (round) => ({
          dbName: `bench_live_${round}_${Date.now()}`,
          start: '',
          size: LIVE_RATE * LIVE_SECONDS,
        }));
    if (!SKIP.has('live')) printTable(`Live (writer at ${LIVE_RATE}/s)`, live, true);
    if (SKIP.has('memory')) return;
    const memory = await runRounds(
      'backlog',
      VARIANTS.filter(
        (v) => v.kind === 'module' && (v.handlerDelayMs === 0 || (v.concurrency ?? 1) > 1),
      ),
      async () => {
        const dbName = `bench_memory_${Date.now()}`;
        const made = await makeBacklog(client.db(dbName), 'bench', MEMORY_EVENTS);
        return { dbName, start: EJSON.stringify(made.start), size: made.size };
      },
      1,
    );
    printTable(`Memory: ${MEMORY_EVENTS}-event backlog, one round`, memory, false);
  } finally {
    await connection.close();
    await servers.stop();
  }
}

type Rows = Map<string, ScenarioResult[]>;
/** One round's backlog (or live database); `warmEvents` only for the main backlog, which was made that much longer. */
type Prepared = { dbName: string; start: string; size: number; warmEvents?: number };
let liveRuns = 0;

async function runRounds(
  mode: ScenarioArgs['mode'],
  variants: Variant[],
  prepare: (round: number) => Promise<Prepared>,
  rounds = ROUNDS,
): Promise<Rows> {
  const rows: Rows = new Map(variants.map((v) => [v.name, []]));
  for (let round = 1; round <= rounds; round++) {
    const prepared = await prepare(round);
    // A discarded drain first: the JVM collects and compiles after a large write, and that would
    // fall on whichever variant ran first.
    if (mode === 'backlog' && !SKIP.has('warmup'))
      await runScenario(scenarioArgs(VARIANTS[0], mode, prepared), false);
    // Each round starts with another variant: whatever the servers do after a backlog is written
    // (a JVM collection, say) does not always fall on the same one.
    const shift = (round - 1) % variants.length;
    for (const variant of [...variants.slice(shift), ...variants.slice(0, shift)]) {
      rows.get(variant.name)!.push(await runScenario(scenarioArgs(variant, mode, prepared)));
      process.stdout.write('.');
    }
  }
  process.stdout.write('\n');
  return rows;
}

function scenarioArgs(
  variant: Variant,
  mode: ScenarioArgs['mode'],
  prepared: Prepared,
): ScenarioArgs {
  return {
    kind: variant.kind,
    mode,
    mongoUri: process.env.MONGODB_URI ?? '',
    redisUrl: process.env.REDIS_URL ?? '',
    dbName: prepared.dbName,
    collection: 'bench',
    start: prepared.start,
    size: prepared.size,
    handlerDelayMs: variant.handlerDelayMs,
    ...(variant.busyMicrosPerEvent ? { busyMicrosPerEvent: variant.busyMicrosPerEvent } : {}),
    ...(variant.batch ? { batch: variant.batch } : {}),
    concurrency: variant.concurrency,
    warmEvents: prepared.warmEvents ?? 0,
  };
}

/** Runs one scenario in a child process; in live mode, writes while it consumes. `counted: false`: a discarded drain, never under callgrind. */
async function runScenario(args: ScenarioArgs, counted = true): Promise<ScenarioResult> {
  // Live runs write their own documents: one database each.
  if (args.mode === 'live') args = { ...args, dbName: `${args.dbName}_${++liveRuns}` };
  const connection = await mongoose
    .createConnection(args.mongoUri, { dbName: args.dbName })
    .asPromise();
  const callgrind = counted && process.env.BENCH_CALLGRIND === '1' ? new CallgrindRun() : undefined;
  try {
    const items = connection.db!.collection<{ _id: number; writtenAt?: number }>(args.collection);
    if (args.mode === 'live') args = { ...args, start: EJSON.stringify(await currentToken(items)) };
    // BENCH_PIN=1: the consumer on CPU 1, everything else (this process, the servers it started) stays where it runs (start it with `taskset -c 0`).
    // BENCH_NODE_ARGS: extra node flags for the consumer, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
    if (callgrind) args = { ...args, callgrindFlagPrefix: callgrind.flagPrefix };
    const node = [
      process.execPath,
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      scenarioScript,
      JSON.stringify(args),
    ];
    const command = callgrind
      ? callgrind.command(node)
      : process.env.BENCH_PIN
        ? (['taskset', ['-c', '1', ...node]] as const)
        : ([node[0], node.slice(1)] as const);
    const child = spawn(command[0], [...command[1]], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    let controlError: unknown;
    const ready = new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        try {
          callgrind?.onOutput(output, child.pid!);
        } catch (error) {
          controlError ??= error;
          child.kill('SIGKILL'); // it would wait for its flag forever
        }
        if (output.includes('READY')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await Promise.race([ready, exited]);
    if (args.mode === 'live') await writeLive(items, args.size);
    const code = await exited;
    if (controlError) throw controlError;
    if (process.env.BENCH_ECHO) process.stderr.write(output);
    const line = output.split('\n').find((l) => l.startsWith('RESULT '));
    if (code !== 0 || !line)
      throw new Error(`scenario ${args.kind} failed (exit ${code}):\n${output}`);
    const result = JSON.parse(line.slice('RESULT '.length)) as ScenarioResult;
    return callgrind ? { ...result, instructions: callgrind.instructions(child.pid!) } : result;
  } finally {
    callgrind?.dispose();
    await connection.close();
  }
}

/** Inserts `count` documents at LIVE_RATE per second, each stamped with its write time. */
async function writeLive(
  items: mongoose.mongo.Collection<{ _id: number; writtenAt?: number }>,
  count: number,
): Promise<void> {
  const perTick = Math.max(1, Math.round(LIVE_RATE / 100));
  const began = performance.now();
  for (let written = 0; written < count; written += perTick) {
    const due = began + (written / LIVE_RATE) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const batch = Array.from({ length: Math.min(perTick, count - written) }, (_, i) => ({
      _id: written + i,
      writtenAt: Date.now(),
    }));
    await items.insertMany(batch);
  }
}

/**
 * events/s is the median over rounds; × bare is the median of each round's ratio to that round's
 * bare loop (both drained the same backlog on the same servers, minutes apart at most), with the
 * lowest and highest round in brackets: the servers share the 2 cores, so rounds vary.
 */
function printTable(title: string, rows: Rows, live: boolean): void {
  const rate = (r: ScenarioResult) => (r.events / r.ms) * 1000;
  const bare = rows.get(VARIANTS[0].name)?.map(rate) ?? [];
  console.log(`\n${title}`);
  const counted = [...rows.values()].every((results) => results.every((x) => x.instructions));
  const header = [
    'scenario',
    'events/s',
    '× bare [min–max]',
    ...(live ? ['p50 ms', 'p99 ms'] : []),
    'CPU µs/ev',
    ...(counted ? ['instr/ev main', 'instr/ev other'] : []),
    'RSS +MB',
    'order',
  ];
  const perEvent = (results: ScenarioResult[], thread: 'main' | 'other') =>
    median(results.map((x) => x.instructions![thread] / x.events)).toFixed(0);
  const lines = [...rows].map(([name, results]) => {
    const r = median(results.map(rate));
    const ratios = bare.length === results.length ? results.map((x, i) => rate(x) / bare[i]) : [];
    const violations = results.reduce((sum, x) => sum + x.orderViolations, 0);
    const delays = results.flatMap((x) => x.delays);
    return [
      name,
      r.toFixed(0),
      ratios.length === 0
        ? '-'
        : `${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`,
      ...(live ? [percentile(delays, 50).toFixed(1), percentile(delays, 99).toFixed(1)] : []),
      median(results.map((x) => x.cpuMicros / x.events)).toFixed(1),
      ...(counted ? [perEvent(results, 'main'), perEvent(results, 'other')] : []),
      Math.max(...results.map((x) => x.rssPeakMb - x.rssBaselineMb)).toFixed(1),
      violations === 0 ? 'kept' : `${violations} VIOLATIONS`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(format(header));
  lines.forEach((l) => console.log(format(l)));
}

/** Issue 19's targets: each a ratio of two variants' rates in the same round (median [min–max] over rounds). */
function printBatchTargets(rows: Rows): void {
  const rate = (r: ScenarioResult) => (r.events / r.ms) * 1000;
  const targets: Array<[string, string, string, number]> = [
    [
      'batch handler vs per-event, concurrency 1',
      BATCH_VARIANTS.batch,
      BATCH_VARIANTS.perEvent1,
      20,
    ],
    [
      'batch handler vs per-event, concurrency 32',
      BATCH_VARIANTS.batch,
      BATCH_VARIANTS.perEvent32,
      3,
    ],
    ['no-op batch handler vs bare driver loop', BATCH_VARIANTS.noopBatch, VARIANTS[0].name, 0.95],
  ];
  for (const name of [BATCH_VARIANTS.batch, BATCH_VARIANTS.noopBatch]) {
    const results = rows.get(name);
    if (results)
      console.log(
        `  ${name}: ${median(results.map((x) => x.events / (x.calls || 1))).toFixed(1)} events per call`,
      );
  }
  const shown = targets.filter(([, a, b]) => rows.has(a) && rows.has(b));
  if (shown.length === 0) return;
  console.log('\nBatch handler targets (ratio of rates in each round)');
  for (const [what, a, b, target] of shown) {
    const ratios = rows.get(a)!.map((x, i) => rate(x) / rate(rows.get(b)![i]));
    const met = median(ratios) >= target ? 'met' : 'MISSED';
    console.log(
      `  ${what}: ${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}] (target ≥ ${target}×: ${met})`,
    );
  }
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
