import { MongoJavaServer } from './mongo-java-server.js';
import { MongodReplSet } from './mongod-replset.js';
import { LocalRedisServer } from './redis-server.js';

export type MongoKind = 'external' | 'mongod' | 'mongo-java-server';

/** The servers tests and the sample run against, and how to stop what was started here. */
export interface TestServers {
  mongoUri: string;
  mongoKind: MongoKind;
  redisUrl: string;
  description: string;
  /** The MongoDB server's process when it was started here (mongo-java-server): the bench reads its CPU time. */
  mongoPid?: number;
  stop(): Promise<void>;
}

/**
 * MongoDB: `MONGODB_URI`, else a real mongod (`MONGOMS_SYSTEM_BINARY` names a binary, or
 * `MONGOMS_VERSION` a version to download), else mongo-java-server.
 * Redis: `REDIS_URL`, else a `redis-server` on a free port.
 */
export async function startTestServers(): Promise<TestServers> {
  const stops: Array<() => Promise<void>> = [];
  try {
    let mongoUri = process.env.MONGODB_URI;
    let mongoKind: MongoKind = 'external';
    let mongoLabel = `external (${mongoUri})`;
    let mongoPid: number | undefined;
    if (!mongoUri) {
      const server = MongodReplSet.available()
        ? await MongodReplSet.start()
        : await MongoJavaServer.start();
      stops.push(() => server.stop());
      mongoUri = server.uri;
      mongoKind = server instanceof MongodReplSet ? 'mongod' : 'mongo-java-server';
      if (server instanceof MongoJavaServer) mongoPid = server.pid;
      mongoLabel =
        server instanceof MongodReplSet
          ? `${server.description}, ${mongoUri}`
          : `${mongoKind} (${mongoUri})`;
    }
    let redisUrl = process.env.REDIS_URL;
    if (!redisUrl) {
      const redis = await LocalRedisServer.start();
      stops.push(() => redis.stop());
      redisUrl = redis.url;
    }
    const description = `MongoDB: ${mongoLabel}; Redis: ${process.env.REDIS_URL ? 'external' : 'redis-server'} (${redisUrl})`;
    return {
      mongoUri,
      mongoKind,
      redisUrl,
      description,
      ...(mongoPid !== undefined && { mongoPid }),
      stop: () => stopAll(stops),
    };
  } catch (error) {
    await stopAll(stops);
    throw error;
  }
}

async function stopAll(stops: Array<() => Promise<void>>): Promise<void> {
  await Promise.allSettled(stops.reverse().map((stop) => stop()));
}
