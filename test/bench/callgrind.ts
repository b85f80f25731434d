import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * BENCH_CALLGRIND=1: each consumer runs under `valgrind --tool=callgrind`, which counts the
 * instructions it executes. Unlike CPU time on a shared 2-core VM, the count barely moves between
 * identical runs. The consumer blocks when its clock starts and stops (see `awaitCallgrind` in
 * scenario.main.ts) until the counters are zeroed or dumped, so the dump holds only the timed drain.
 */
export class CallgrindRun {
  readonly dir: string;
  private readonly done = new Set<string>();

  constructor() {
    try {
      execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('BENCH_CALLGRIND=1 needs valgrind on the PATH (Debian: apt-get install valgrind)');
    }
    this.dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'));
  }

  /** The flag-file prefix the consumer waits on. */
  get flags(): string {
    return join(this.dir, 'flag');
  }

  command(node: readonly string[]): [string, string[]] {
    return ['valgrind', ['-q', '--tool=callgrind', `--callgrind-out-file=${join(this.dir, 'cg-%p.out')}`, ...node]];
  }

  /** Reacts to the consumer's `CALLGRIND start|stop` lines (all output so far). */
  onOutput(output: string, pid: number): void {
    for (const [step, control] of [['start', '--zero'], ['stop', '--dump']] as const) {
      if (this.done.has(step) || !output.includes(`CALLGRIND ${step}\n`)) continue;
      this.done.add(step);
      execFileSync('callgrind_control', [control, String(pid)], { stdio: 'ignore' });
      writeFileSync(`${this.flags}-${pid}-${step}`, '');
    }
  }

  /** Instructions of the dump taken at `stop`: the main thread's (all under `node::Start`) and the rest. Removes the dumps. */
  instructions(pid: number): { main: number; other: number } {
    const report = this.annotate(pid);
    rmSync(this.dir, { recursive: true, force: true });
    const count = (pattern: RegExp) => Number(report.match(pattern)?.[1]?.replace(/,/g, '') ?? NaN);
    const total = count(/^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS/m);
    const main = count(/^\s*([\d,]+) \([^)]*\)\s+\S*node::Start\(int/m);
    return { main, other: total - main };
  }

  private annotate(pid: number): string {
    return execFileSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', '--auto=no', join(this.dir, `cg-${pid}.out.1`)], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  }
}
