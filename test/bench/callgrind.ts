import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * BENCH_CALLGRIND=1: each consumer runs under `valgrind --tool=callgrind`, which counts the
 * instructions it executes. Unlike CPU time on a shared 2-core VM, the count does not depend on
 * the machine's other load (identical runs still differ by several percent: JIT and GC timing). The consumer blocks when its clock starts and stops (see `awaitCallgrind` in
 * scenario.main.ts) until the counters are zeroed or dumped, so the dump holds only the timed drain.
 */
export class CallgrindRun {
  readonly dir: string;
  private readonly done = new Set<string>();

  constructor() {
    try {
      execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(
        'BENCH_CALLGRIND=1 needs valgrind on the PATH (Debian: apt-get install valgrind)',
      );
    }
    this.dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'));
  }

  /** The path prefix of the flag files the consumer waits on. */
  get flagPrefix(): string {
    return join(this.dir, 'flag');
  }

  command(node: readonly string[]): [string, string[]] {
    return [
      'valgrind',
      ['-q', '--tool=callgrind', `--callgrind-out-file=${this.dumpPattern}`, ...node],
    ];
  }

  /** Reacts to the consumer's `CALLGRIND start|stop` lines (all output so far); throws if callgrind did not obey. */
  onOutput(output: string, pid: number): void {
    for (const [step, control] of [
      ['start', '--zero'],
      ['stop', '--dump'],
    ] as const) {
      if (this.done.has(step) || !output.includes(`CALLGRIND ${step}\n`)) continue;
      this.done.add(step);
      // callgrind_control exits 0 even when it reached no callgrind: its answer says.
      const answer = execFileSync('callgrind_control', [control, String(pid)], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      if (!/^\s*OK\.?\s*$/m.test(answer))
        throw new Error(`callgrind_control ${control} ${pid} did not succeed:\n${answer}`);
      if (step === 'stop' && !existsSync(this.dump(pid)))
        throw new Error(`callgrind wrote no dump at ${this.dump(pid)}`);
      writeFileSync(`${this.flagPrefix}-${pid}-${step}`, '');
    }
  }

  /** Instructions of the dump taken at `stop`: the main thread's (all under `node::Start`) and the rest. */
  instructions(pid: number): { main: number; other: number } {
    const report = execFileSync(
      'callgrind_annotate',
      ['--inclusive=yes', '--threshold=100', '--auto=no', this.dump(pid)],
      { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
    );
    const count = (pattern: RegExp) => Number(report.match(pattern)?.[1]?.replace(/,/g, '') ?? NaN);
    const total = count(/^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS/m);
    const main = count(/^\s*([\d,]+) \([^)]*\)\s+\S*node::Start\(int/m);
    if (!Number.isFinite(total) || !Number.isFinite(main))
      throw new Error(
        `callgrind_annotate gave no total or no node::Start line for ${this.dump(pid)}`,
      );
    return { main, other: total - main };
  }

  /** Removes the dumps and flags, whatever happened. */
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private get dumpPattern(): string {
    return join(this.dir, 'cg-%p.out');
  }

  /** The first dump callgrind writes on request (`--dump`) is `<out>.1`; the final one at exit is `<out>`. */
  private dump(pid: number): string {
    return join(this.dir, `cg-${pid}.out.1`);
  }
}
