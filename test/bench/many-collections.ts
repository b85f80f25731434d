/** What the "many collections" bench asks one child process to run. */
export interface ManyCollectionsArgs {
  mongoUri: string;
  redisUrl: string;
  dbName: string;
  consumer: string;
  /** Watched collections: `c000`, `c001`, … */
  collections: number;
  streams: 'collection' | 'database';
  /**
   * `prime`: start (positions stored at open) and stop; `idle`: start, then stand still for
   * `idleSeconds` between READY and RESULT; `drain`: start and handle `expected` events.
   */
  phase: 'prime' | 'idle' | 'drain';
  idleSeconds?: number;
  /** `idle`: seconds between the bootstrap and READY (the window's start): see BENCH_IDLE_SETTLE_SECONDS. */
  settleSeconds?: number;
  expected?: number;
}

export interface ManyCollectionsResult {
  /** `createApplicationContext` until it resolved: every stream open. */
  startupMs: number;
  /** This process's CPU time (user + system) between READY and IDLE_DONE (before the close), µs. */
  cpuMicros: number;
  /** V8's garbage collections between READY and IDLE_DONE: main-thread pause time, ms, and how many were major. */
  gcMs: number;
  majorGcs: number;
  /** `drain`: the first event's arrival to the last one's. */
  drainMs?: number;
  /** `drain`: this process's CPU time over the same window, µs (less moved by other processes' load than `drainMs`). */
  drainCpuMicros?: number;
  events: number;
}

export function collectionName(i: number): string {
  return `c${String(i).padStart(3, '0')}`;
}
