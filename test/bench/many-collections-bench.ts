import {
  type Drain,
  drainRun,
  type Floor,
  type Idle,
  idleRun,
  type Mode,
  type Servers,
  serverFloor,
  startupWithOne,
} from './many-collections-runs.js';
import { formatShares } from '../servers/server-threads.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const IDLE_COLLECTIONS = env('BENCH_IDLE_COLLECTIONS', 200);
const IDLE_SECONDS = env('BENCH_IDLE_SECONDS', 30);
/**
 * Seconds between the app's bootstrap and the idle window's start, in both modes (0: from READY
 * on). Idle means the steady state, not two one-offs after a start: V8 shrinks the heap startup
 * left (two or three major collections) some 15 to 35 s after the process goes quiet, which a
 * database stream's does at once and collection mode's, busy with 200 getMores a second, did in no
 * window measured from READY; and the server's JIT compiler is still busy with the hot paths of the
 * run before. A minute lets both pass before the window.
 */
const IDLE_SETTLE_SECONDS = env('BENCH_IDLE_SETTLE_SECONDS', 60);
const DRAIN_COLLECTIONS = env('BENCH_DRAIN_COLLECTIONS', 50);
const DRAIN_EVENTS = env('BENCH_DRAIN_EVENTS', 20_000);
/** Idle rounds: each measures the server alone, then both modes (in turn first). */
const IDLE_ROUNDS = env('BENCH_MANY_ROUNDS', 2);
/** Drain rounds: each drains the one-stream reference and each mode (in turn first). */
const DRAIN_ROUNDS = env('BENCH_MANY_DRAIN_ROUNDS', 5);
/** BENCH_MANY_MODES: a subset, e.g. `collection` (the targets need both). */
const MODES = (process.env.BENCH_MANY_MODES ?? 'collection,database').split(',') as Mode[];

/** The middle value (the mean of the two middle ones for an even count). */
function middle(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

/** `median [min–max]` of `values`. */
function spread(values: number[], digits: number): string {
  if (values.length === 0) return '-';
  if (values.length === 1) return values[0].toFixed(digits);
  const [min, max] = [Math.min(...values), Math.max(...values)];
  return `${middle(values).toFixed(digits)} [${min.toFixed(digits)}–${max.toFixed(digits)}]`;
}

/** Each round's first order is the previous round's reversed (A B, B A, …), so drift over the run falls on both sides. */
function turn<T>(items: T[], round: number): T[] {
  return round % 2 ? [...items].reverse() : items;
}

/**
 * The "Many collections" table of `npm run bench` (issue 20's targets): per-collection against
 * per-database streams, with IDLE_COLLECTIONS watched collections idle for IDLE_SECONDS (the
 * app's and the MongoDB server's CPU, and the server's own CPU with no consumer before each
 * round), startup with that many collections against one, and the drain of a DRAIN_EVENTS
 * backlog spread over DRAIN_COLLECTIONS collections against the same backlog in one collection
 * (one collection stream), measured in the same rounds. Figures are medians over rounds with
 * their [min–max]; a ratio is the median of each round's own ratio.
 */
export async function manyCollectionsTable(servers: Servers): Promise<void> {
  const floorRuns: Floor[] = [];
  const idle = new Map<Mode, Idle[]>(MODES.map((m) => [m, []]));
  const startupOne = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  const drain = new Map<Mode | 'one', Drain[]>([['one', []]]);
  MODES.forEach((m) => drain.set(m, []));
  // Idle rounds first: every drain leaves 20,000 more entries in the oplog.
  for (let round = 0; round < IDLE_ROUNDS; round++) {
    const floor = await serverFloor(servers, IDLE_SECONDS, IDLE_SETTLE_SECONDS);
    if (floor !== null) floorRuns.push(floor);
    for (const mode of turn(MODES, round)) {
      idle
        .get(mode)!
        .push(await idleRun(servers, mode, IDLE_COLLECTIONS, IDLE_SECONDS, IDLE_SETTLE_SECONDS));
      startupOne.get(mode)!.push(await startupWithOne(servers, mode));
      process.stdout.write('.');
    }
  }
  for (let round = 0; round < DRAIN_ROUNDS; round++) {
    for (const what of turn(['one', ...MODES] as const, round)) {
      const drained =
        what === 'one'
          ? await drainRun(servers, 'collection', 1, DRAIN_EVENTS)
          : await drainRun(servers, what, DRAIN_COLLECTIONS, DRAIN_EVENTS);
      drain.get(what)!.push(drained);
      process.stdout.write('.');
    }
  }
  process.stdout.write('\n');
  const floors = floorRuns.map((f) => f.percent);
  const one = drain.get('one')!.map((d) => d.rate);
  const oneCpu = drain.get('one')!.map((d) => d.cpuMicrosPerEvent);
  console.log(
    `\nMany collections (${IDLE_COLLECTIONS} idle for ${IDLE_SECONDS} s${IDLE_SETTLE_SECONDS ? ` from ${IDLE_SETTLE_SECONDS} s after startup` : ''}, ${IDLE_ROUNDS} rounds; drain of ${DRAIN_EVENTS} events over ${DRAIN_COLLECTIONS} collections, ${DRAIN_ROUNDS} rounds; median [min–max])`,
  );
  if (one.length > 0)
    console.log(
      `  one collection stream drains the backlog of one collection at ${spread(one, 0)} events/s, ${spread(oneCpu, 1)} µs of app CPU per event`,
    );
  if (floors.length > 0)
    console.log(
      `  the MongoDB server with no consumer at all: ${spread(floors, 2)} % CPU (measured for ${IDLE_SECONDS} s before each idle round, ${IDLE_SETTLE_SECONDS} s after the previous consumer left; "caused" below is a mode's server CPU minus its round's)`,
    );
  const header = [
    'streams',
    'app CPU %',
    'server CPU %',
    `startup ${IDLE_COLLECTIONS} ms`,
    'startup 1 ms',
    'drain events/s',
    '× one stream',
    'drain CPU µs/ev',
    '× one (CPU)',
  ];
  const ratiosToOne = (mode: Mode) => drain.get(mode)!.map((d, i) => d.rate / one[i]);
  /** The same ratio from CPU time per event: the reference's over the mode's, each round's own. */
  const cpuRatiosToOne = (mode: Mode) =>
    drain.get(mode)!.map((d, i) => oneCpu[i] / d.cpuMicrosPerEvent);
  const lines = MODES.map((mode) => {
    const runs = idle.get(mode)!;
    const server = runs.map((r) => r.serverPercent).filter((p): p is number => p !== null);
    return [
      mode,
      spread(
        runs.map((r) => r.appPercent),
        2,
      ),
      spread(server, 2),
      spread(
        runs.map((r) => r.startupMs),
        0,
      ),
      spread(startupOne.get(mode)!, 0),
      spread(
        drain.get(mode)!.map((d) => d.rate),
        0,
      ),
      spread(ratiosToOne(mode), 2),
      spread(
        drain.get(mode)!.map((d) => d.cpuMicrosPerEvent),
        1,
      ),
      spread(cpuRatiosToOne(mode), 2),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(format(header));
  lines.forEach((l) => console.log(format(l)));
  // Per round, in the order run: what the medians hide (the server after the other mode's load, a major GC in the window or not).
  for (let round = 0; round < IDLE_ROUNDS; round++) {
    const runs = turn(MODES, round).map((mode) => {
      const r = idle.get(mode)![round];
      const server = r.serverPercent === null ? '' : `, server ${r.serverPercent.toFixed(2)} %`;
      return `${mode} app ${r.appPercent.toFixed(2)} %${server} (GC ${r.gcMs.toFixed(0)} ms, ${r.majorGcs} major)`;
    });
    const floor = floors[round] === undefined ? '' : `floor ${floors[round].toFixed(2)} %, `;
    console.log(`  idle round ${round + 1}: ${floor}${runs.join('; ')}`);
    // The server's CPU by what its threads do (% of a core): connections, JIT, GC, the JVM's own timers.
    const byThread = [
      ...(floorRuns[round]?.threads ? [`floor ${formatShares(floorRuns[round].threads)}`] : []),
      ...turn(MODES, round)
        .filter((mode) => idle.get(mode)![round].serverThreads)
        .map((mode) => `${mode} ${formatShares(idle.get(mode)![round].serverThreads)}`),
    ];
    if (byThread.length > 0) console.log(`    server by thread: ${byThread.join('; ')}`);
  }
  const collection = idle.get('collection');
  const database = idle.get('database');
  if (!collection || !database) return;
  const target = (what: string, values: number[], goal: string, met: (v: number) => boolean) =>
    values.length > 0 &&
    console.log(
      `  ${what}: ${spread(values, 2)} (target ${goal}: ${met(middle(values)) ? 'met' : 'MISSED'})`,
    );
  const perRound = (of: (c: Idle, d: Idle, round: number) => number | null) =>
    database
      .map((d, round) => of(collection[round], d, round))
      .filter((v): v is number => v !== null && Number.isFinite(v));
  const atMostTenth = (v: number) => v <= 0.1;
  target(
    'idle app CPU, database / collection',
    perRound((c, d) => d.appPercent / c.appPercent),
    '≤ 0.1',
    atMostTenth,
  );
  const server = perRound((c, d) =>
    c.serverPercent === null || d.serverPercent === null ? null : d.serverPercent / c.serverPercent,
  );
  if (server.length > 0) {
    // Not clamped: a mode below the floor shows as below it (noise), not as zero; a round where
    // collection mode is not above the floor has no ratio.
    const caused = perRound((c, d, round) =>
      c.serverPercent === null ||
      d.serverPercent === null ||
      floors[round] === undefined ||
      c.serverPercent <= floors[round]
        ? null
        : (d.serverPercent - floors[round]) / (c.serverPercent - floors[round]),
    );
    // The server's floor is in both modes' raw CPU: a database mode that cost nothing would still
    // show floor / collection, which is what the raw ratio cannot go below.
    const bound = perRound((c, _d, round) =>
      c.serverPercent === null || floors[round] === undefined
        ? null
        : floors[round] / c.serverPercent,
    );
    const floorNote =
      bound.length > 0
        ? `; a database mode costing the server nothing would show ${spread(bound, 2)}, its floor over collection mode's`
        : '';
    console.log(
      `  idle server CPU, database / collection, raw: ${spread(server, 2)} (the server's own floor included${floorNote})`,
    );
    const causedWhat =
      "idle server CPU caused by the consumer (minus its round's floor), database / collection";
    if (caused.length > 0 && middle(caused) < 0)
      console.log(
        `  ${causedWhat}: ${spread(caused, 2)} (target ≤ 0.1: inconclusive, database mode below the floor is noise)`,
      );
    else if (caused.length > 0) target(causedWhat, caused, '≤ 0.1', atMostTenth);
    // Without a subtraction (the floor is a window of its own, and as noisy): the CPU of the threads
    // that serve connections alone. Both modes' include what serves with no consumer (the listener,
    // the bench's own idle connections), which weighs on database mode's small figure; the JIT and
    // the GC are left out, mostly collection mode's.
    const serving = perRound((c, d) =>
      c.serverThreads && d.serverThreads ? d.serverThreads.serving / c.serverThreads.serving : null,
    );
    if (serving.length > 0)
      target(
        'idle server CPU on the threads serving connections, database / collection',
        serving,
        '≤ 0.1',
        atMostTenth,
      );
  }
  const extra = database.map(
    (d, round) => (d.startupMs - startupOne.get('database')![round]) / 1000,
  );
  target(
    `database mode: startup with ${IDLE_COLLECTIONS} collections minus with one, s`,
    extra,
    '≤ 1',
    (v) => v <= 1,
  );
  target(
    `database mode: drain over ${DRAIN_COLLECTIONS} collections vs one collection stream (each round's ratio)`,
    ratiosToOne('database'),
    '≥ 0.9',
    (v) => v >= 0.9,
  );
}
