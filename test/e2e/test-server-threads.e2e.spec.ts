import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import { eventually } from '../fixtures/test-env.js';
import { MongoJavaServer } from '../servers/mongo-java-server.js';
import { groupOf, threadNames } from '../servers/server-threads.js';

const CONNECTIONS = 20;

/**
 * The server's threads, leaving out the JVM's compiler and garbage-collector threads (they come
 * and go on their own), and those serving connections (`mongo-connection-…`).
 */
async function threads(pid: number): Promise<{ all: number; connections: number }> {
  const names = [...(await threadNames(pid)).values()];
  return {
    all: names.filter((name) => !['jit', 'gc'].includes(groupOf(name))).length,
    connections: names.filter((name) => name.startsWith('mongo-connectio')).length,
  };
}

/**
 * As mongod: each connection has a thread of its own that ends with it, so idle CPU measured on
 * the test server counts the connections open now, not every connection it ever had (see
 * docs/development.md). On a mongo-java-server of its own: no other spec's connections.
 */
describe('the test server serves each connection on a thread that ends with it', () => {
  let server: MongoJavaServer;

  beforeAll(async () => {
    server = await MongoJavaServer.start();
  }, 120_000);
  afterAll(() => server?.stop());

  it(`${CONNECTIONS} connections on ${CONNECTIONS} threads, none left after they close`, async () => {
    const pid = server.pid!;
    const before = await threads(pid);
    // minPoolSize: the driver opens them all, whether the server's getMores wait or not.
    const client = await new mongo.MongoClient(server.uri, {
      minPoolSize: CONNECTIONS,
      maxPoolSize: CONNECTIONS,
    }).connect();
    try {
      // Whatever their names, so that the old launcher (threads named otherwise) fails below, not here.
      await eventually(
        `${CONNECTIONS} connections are served`,
        async () => (await threads(pid)).all >= before.all + CONNECTIONS,
        20_000,
      );
    } finally {
      await client.close();
    }
    // Slack for netty's global executor (it completes each closed connection's loop, then ends
    // after a second idle) and the like, not for twenty.
    await eventually(
      "the connections' threads have ended",
      async () => (await threads(pid)).all <= before.all + 2,
      20_000,
    );
    expect((await threads(pid)).connections).toBe(0);
  });
});
