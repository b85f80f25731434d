import mongoose from 'mongoose';

export interface MongodReplSetOptions {
  /** More `mongod` arguments, e.g. `['--oplogSize', '1']` for a replica set whose oplog rolls over quickly. */
  args?: string[];
}

/**
 * A real `mongod`, as a single-node replica set (wiredTiger) through mongodb-memory-server-core:
 * the binary `MONGOMS_SYSTEM_BINARY` names, or the version `MONGOMS_VERSION` names, which
 * mongodb-memory-server-core downloads (where the network allows: GitHub Actions) into
 * `~/.cache/mongodb-binaries` and reuses from there.
 */
export class MongodReplSet {
  private constructor(
    private readonly replSet: { getUri(): string; stop(): Promise<boolean> },
    /** What the server reports (`buildInfo`), e.g. `7.0.14`. */
    readonly version: string,
  ) {}

  /** A binary is named, or a version to download: without either the harness never downloads one. */
  static available(): boolean {
    return Boolean(process.env.MONGOMS_SYSTEM_BINARY || process.env.MONGOMS_VERSION);
  }

  static async start(options: MongodReplSetOptions = {}): Promise<MongodReplSet> {
    const { MongoMemoryReplSet } = await import('mongodb-memory-server-core');
    let replSet;
    try {
      replSet = await MongoMemoryReplSet.create({
        replSet: {
          count: 1,
          storageEngine: 'wiredTiger',
          ip: '127.0.0.1',
          args: options.args ?? [],
        },
      });
    } catch (error) {
      // No silent fallback to mongo-java-server: a run that asked for mongod must not pass without it.
      const asked = process.env.MONGOMS_SYSTEM_BINARY
        ? `MONGOMS_SYSTEM_BINARY=${process.env.MONGOMS_SYSTEM_BINARY}`
        : `MONGOMS_VERSION=${process.env.MONGOMS_VERSION}`;
      throw new Error(
        `${asked}: could not start mongod through mongodb-memory-server-core: ${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      return new MongodReplSet(replSet, await serverVersion(replSet.getUri()));
    } catch (error) {
      await replSet.stop();
      throw error;
    }
  }

  get uri(): string {
    return this.replSet.getUri();
  }

  /** For the `[test servers]` line: `mongod 7.0.14 (replica set)`. */
  get description(): string {
    return `mongod ${this.version} (replica set)`;
  }

  async stop(): Promise<void> {
    await this.replSet.stop();
  }
}

async function serverVersion(uri: string): Promise<string> {
  const client = await new mongoose.mongo.MongoClient(uri).connect();
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    return String(info.version);
  } finally {
    await client.close();
  }
}
