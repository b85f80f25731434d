/** A real `mongod` replica set through mongodb-memory-server-core, when a binary is at hand. */
export class MongodReplSet {
  private constructor(private readonly replSet: { getUri(): string; stop(): Promise<boolean> }) {}

  /** Only when `MONGOMS_SYSTEM_BINARY` names a mongod: this harness never downloads one. */
  static available(): boolean {
    return Boolean(process.env.MONGOMS_SYSTEM_BINARY);
  }

  static async start(): Promise<MongodReplSet> {
    const { MongoMemoryReplSet } = await import('mongodb-memory-server-core');
    const replSet = await MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger', ip: '127.0.0.1' } });
    return new MongodReplSet(replSet);
  }

  get uri(): string {
    return this.replSet.getUri();
  }

  async stop(): Promise<void> {
    await this.replSet.stop();
  }
}
