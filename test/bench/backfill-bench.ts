import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mongoose from 'mongoose';
import type { BackfillScenarioArgs, BackfillScenarioResult } from './backfill-scenario.main.js';
import { median, percentile } from './percentiles.js';

const script = fileURLToPath(new URL('./backfill-scenario.main.js', import.meta.url));
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const DOCUMENTS = env('BENCH_BACKFILL_DOCS', 100_000);
const BATCH = env('BENCH_BACKFILL_BATCH', 1000);
const RATE = env('BENCH_LIVE_RATE', 1000);

/**
 * The "Backfill" table of `npm run bench`: DOCUMENTS small documents read by a bare `find()` in
 * `_id` order and by a backfill to a no-op handler (ratio to the find, peak RSS growth), then the
 * backfill again with a writer inserting at RATE/s meanwhile (write-to-handler delay of those
 * inserts, p50 / p99).
 */
export async function backfillTable(
  client: mongoose.mongo.MongoClient,
  mongoUri: string,
  redisUrl: string,
  rounds: number,
): Promise<void> {
  const dbName = `bench_backfill_${Date.now()}`;
  const items = client
    .db(dbName)
    .collection<{ _id: number; n: number; writtenAt?: number }>('items');
  for (let i = 0; i < DOCUMENTS; i += 10_000)
    await items.insertMany(
      Array.from({ length: Math.min(10_000, DOCUMENTS - i) }, (_, j) => ({ _id: i + j, n: i + j })),
    );
  const base = {
    mongoUri,
    redisUrl,
    dbName,
    collection: 'items',
    documents: DOCUMENTS,
    batchSize: BATCH,
  };
  const rows = new Map<string, BackfillScenarioResult[]>([
    ['bare find() in _id order', []],
    ['backfill, no-op handler', []],
    [`backfill, no-op handler, writer at ${RATE}/s`, []],
  ]);
  for (let round = 1; round <= rounds; round++) {
    rows.get('bare find() in _id order')!.push(await run({ ...base, kind: 'find' }));
    rows.get('backfill, no-op handler')!.push(await run({ ...base, kind: 'module' }));
    let next = DOCUMENTS * 10 + round * 1_000_000;
    rows.get(`backfill, no-op handler, writer at ${RATE}/s`)!.push(
      await run({ ...base, kind: 'module' }, async (stop) => {
        const perTick = Math.max(1, Math.round(RATE / 100));
        const began = performance.now();
        for (let written = 0; !stop.aborted; written += perTick) {
          const wait = began + (written / RATE) * 1000 - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          await items.insertMany(
            Array.from({ length: perTick }, () => ({ _id: next++, n: 0, writtenAt: Date.now() })),
          );
        }
      }),
    );
    process.stdout.write('.');
  }
  process.stdout.write('\n');
  const find = rows.get('bare find() in _id order')!;
  const rate = (r: BackfillScenarioResult) => (r.documents / r.ms) * 1000;
  console.log(
    `\nBackfill (${DOCUMENTS} small documents, chunks of ${BATCH}; median of ${rounds} rounds; memory: peak growth from the first document)`,
  );
  const live = find.some((r) => r.memory.liveHeap !== undefined);
  const header = [
    'scenario',
    'docs/s',
    '× find [min–max]',
    'RSS +MB',
    'RSS − find',
    'heap used +MB',
    'heap total +MB',
    'external +MB',
    ...(live ? ['live heap +MB'] : []),
    'p50 ms',
    'p99 ms',
    'writes seen',
  ];
  const mb = (results: BackfillScenarioResult[], of: (r: BackfillScenarioResult) => number) =>
    median(results.map(of)).toFixed(1);
  const lines = [...rows].map(([name, results]) => {
    const ratios = results.map((r, i) => rate(r) / rate(find[i]));
    const delays = results.flatMap((r) => r.delays);
    return [
      name,
      median(results.map(rate)).toFixed(0),
      `${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`,
      mb(results, (r) => r.memory.rss),
      // What the backfill adds over reading the same documents with a bare find(), round by round.
      results === find
        ? '-'
        : mb(results, (r) => r.memory.rss - find[results.indexOf(r)].memory.rss),
      mb(results, (r) => r.memory.heapUsed),
      mb(results, (r) => r.memory.heapTotal),
      mb(results, (r) => r.memory.external),
      ...(live ? [mb(results, (r) => r.memory.liveHeap ?? 0)] : []),
      delays.length ? percentile(delays, 50).toFixed(0) : '-',
      delays.length ? percentile(delays, 99).toFixed(0) : '-',
      delays.length ? String(delays.length) : '-',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(format(header));
  lines.forEach((l) => console.log(format(l)));
  await client.db(dbName).dropDatabase();
}

/** One scenario in a child process; `during` runs from its READY until it reports. */
async function run(
  args: BackfillScenarioArgs,
  during?: (stop: AbortSignal) => Promise<void>,
): Promise<BackfillScenarioResult> {
  const flags = process.env.BENCH_BACKFILL_LIVE ? ['--expose-gc'] : [];
  const child = spawn(process.execPath, [...flags, script, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const stop = new AbortController();
  let writing: Promise<void> | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (during && !writing && output.includes('READY')) writing = during(stop.signal);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  stop.abort();
  await writing;
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || !line)
    throw new Error(`backfill scenario ${args.kind} failed (exit ${code}):\n${output}`);
  return JSON.parse(line.slice('RESULT '.length)) as BackfillScenarioResult;
}
