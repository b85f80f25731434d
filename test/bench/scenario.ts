/** What the bench asks one child process to run, and what it reports back. */
export interface ScenarioArgs {
  /** `bare-nest`: the bare loop inside a Nest application (same process weight as the module). */
  kind: 'bare' | 'bare-nest' | 'seed-set' | 'module';
  mode: 'backlog' | 'live';
  mongoUri: string;
  redisUrl: string;
  dbName: string;
  collection: string;
  /** EJSON of the resume token to start after. */
  start: string;
  /** Events to wait for. */
  size: number;
  /** Per handler call: `await` a timer of this many ms (a round trip). */
  handlerDelayMs: number;
  /** Per event: busy-wait this many µs (the CPU a bulk write spends on each document). */
  busyMicrosPerEvent?: number;
  /** Set: the handler is an `@OnChangeBatch` one with these limits. */
  batch?: { maxSize: number; maxWaitMs: number };
  concurrency?: number;
  /** Events handled before timing starts (they still count in `size`). */
  warmEvents?: number;
  /** Under callgrind: the path prefix of the flag files the bench writes once it zeroed or dumped the counters. */
  callgrindFlagPrefix?: string;
}

export interface ScenarioResult {
  /** Events timed (those finished after the clock started). */
  events: number;
  ms: number;
  /** Write (client clock, `writtenAt`) to handler call, live mode only. */
  delays: number[];
  rssBaselineMb: number;
  rssPeakMb: number;
  orderViolations: number;
  /** Handler calls over the timed drain (a batch handler's: batches). */
  calls?: number;
  /** The consumer process's CPU time over the drain, µs (user + system, all its threads). */
  cpuMicros: number;
  /** BENCH_CALLGRIND: instructions over the timed drain, on the main thread and on V8's and libuv's other threads. */
  instructions?: { main: number; other: number };
}
