import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../servers/project-root.js';

// Compiled by `tsc` before Jest runs (package.json "test").
const faultDir = join(projectRoot(import.meta.url), 'dist', 'test', 'fault');
const script = join(faultDir, 'consumer.main.js');

/** One run of the consumer process; `statuses` collects the states it reported. */
export class ConsumerProcess {
  readonly statuses: string[] = [];
  /** Role changes as the process reported them. */
  readonly roles: Array<{ at: number; collection: string; role: string; fence: string }> = [];
  output = '';
  /** When the process exited (ms), once it did. */
  exitedAt: number | undefined;
  private constructor(private readonly child: ChildProcess) {}

  /** `main`: another consumer script of test/fault (compiled name, e.g. `backfill-consumer.main.js`). */
  static start(env: Record<string, string>, main?: string): Promise<ConsumerProcess> {
    const child = spawn(process.execPath, [main ? join(faultDir, main) : script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const consumer = new ConsumerProcess(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`consumer not ready after 30 s:\n${consumer.output}`)),
        30_000,
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        consumer.output += chunk.toString();
        for (const match of chunk.toString().matchAll(/^STATUS (\w+)$/gm))
          consumer.statuses.push(match[1]);
        for (const match of chunk.toString().matchAll(/^ROLE (\d+) (\S+) (\w+) (\S+)$/gm)) {
          consumer.roles.push({
            at: Number(match[1]),
            collection: match[2],
            role: match[3],
            fence: match[4],
          });
        }
        if (consumer.output.includes('READY')) {
          clearTimeout(timer);
          resolve(consumer);
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (consumer.output += chunk.toString()));
      child.on('exit', (code) => {
        consumer.exitedAt = Date.now();
        clearTimeout(timer);
        reject(new Error(`consumer exited with ${code} before it was ready:\n${consumer.output}`));
      });
    });
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: a frozen holder, like a long GC pause. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.child.kill(signal);
  }

  /** SIGKILL: no shutdown hook runs. */
  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** SIGTERM: a graceful shutdown (drain and flush). */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGCONT'); // a paused process would never handle the signal
      this.child.kill(signal);
    });
  }
}
