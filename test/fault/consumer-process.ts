import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../servers/project-root.js';

// Compiled by `tsc` before Jest runs (package.json "test").
const script = join(projectRoot(import.meta.url), 'dist', 'test', 'fault', 'consumer.main.js');

/** One run of the consumer process; `statuses` collects the states it reported. */
export class ConsumerProcess {
  readonly statuses: string[] = [];
  output = '';
  private constructor(private readonly child: ChildProcess) {}

  static start(env: Record<string, string>): Promise<ConsumerProcess> {
    const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const consumer = new ConsumerProcess(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumer not ready after 30 s:\n${consumer.output}`)), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        consumer.output += chunk.toString();
        for (const match of chunk.toString().matchAll(/^STATUS (\w+)$/gm)) consumer.statuses.push(match[1]);
        if (consumer.output.includes('READY')) {
          clearTimeout(timer);
          resolve(consumer);
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (consumer.output += chunk.toString()));
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`consumer exited with ${code} before it was ready:\n${consumer.output}`));
      });
    });
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
      this.child.kill(signal);
    });
  }
}
