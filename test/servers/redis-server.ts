import type { ChildProcess } from 'node:child_process';
import { spawnUntilReady, stopChild } from './child-process.js';
import { freePort } from './free-port.js';

/** A throwaway `redis-server` (Debian package) on 127.0.0.1, nothing persisted to disk. */
export class LocalRedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** `extraArgs`: more redis-server options, e.g. `['--requirepass', 'secret']`. */
  static async start(extraArgs: string[] = []): Promise<LocalRedisServer> {
    const server = new LocalRedisServer(await freePort(), extraArgs);
    await server.resume();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it again on the same port (after `stop`). */
  async resume(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...this.extraArgs,
    ];
    try {
      this.child = await spawnUntilReady(
        'redis-server',
        args,
        /Ready to accept connections/,
        15_000,
      );
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || /ENOENT/.test(String(error))) {
        throw new Error(
          'redis-server not found: install the Debian package "redis-server" or set REDIS_URL.',
          { cause: error },
        );
      }
      throw error;
    }
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = undefined;
  }
}
