import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { spawnUntilReady, stopChild } from './child-process.js';
import { freePort } from './free-port.js';

const run = promisify(execFile);

/**
 * A throwaway Redis Cluster of `masters` masters and no replicas, from the Debian `redis-server`
 * and `redis-cli` binaries, on 127.0.0.1 and free ports, nothing persisted. Needs Redis 7
 * (`--cluster-port`: the default bus port, port + 10000, is often above 65535 for a free port).
 */
export class LocalRedisCluster {
  private constructor(
    readonly nodes: ReadonlyArray<{ host: string; port: number }>,
    private readonly children: ChildProcess[],
    private readonly dir: string,
  ) {}

  static async start(masters = 3): Promise<LocalRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
    const ports = await distinctFreePorts(masters * 2);
    const children: ChildProcess[] = [];
    const cluster = new LocalRedisCluster(
      ports.slice(0, masters).map((port) => ({ host: '127.0.0.1', port })),
      children,
      dir,
    );
    try {
      // Settled, not all: a node that fails must not leave its siblings running unseen.
      const started = await Promise.allSettled(
        cluster.nodes.map(({ port }, i) => {
          const args = [
            '--port',
            String(port),
            '--cluster-port',
            String(ports[masters + i]),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
          ];
          args.push(
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--dir',
            dir,
          );
          return spawnUntilReady('redis-server', args, /Ready to accept connections/, 15_000);
        }),
      );
      for (const result of started) if (result.status === 'fulfilled') children.push(result.value);
      const failed = started.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      const addresses = cluster.nodes.map(({ host, port }) => `${host}:${port}`);
      await run(
        'redis-cli',
        ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
        { timeout: 30_000 },
      );
      await cluster.waitUntilOk(30_000);
      return cluster;
    } catch (error) {
      await cluster.stop();
      if (/ENOENT/.test(String(error)))
        throw new Error(
          `redis-server or redis-cli not found: install the Debian package "redis-server" (${String(error)}).`,
          { cause: error },
        );
      throw error;
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.children.splice(0).map((child) => stopChild(child)));
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Every node reports `cluster_state:ok`: all slots assigned and the nodes agree. */
  private async waitUntilOk(timeoutMs: number): Promise<void> {
    const clients = this.nodes.map(
      ({ host, port }) => new Redis({ host, port, lazyConnect: true }),
    );
    try {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const infos = await Promise.all(
          clients.map((client) => client.cluster('INFO') as Promise<string>),
        );
        if (infos.every((info) => /^cluster_state:ok\r?$/m.test(info))) return;
        if (Date.now() > deadline)
          throw new Error(`Redis Cluster not ok after ${timeoutMs} ms:\n${infos.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      clients.forEach((client) => client.disconnect());
    }
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
