import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { mongo } from 'mongoose';
import { MongoJavaServer } from '../servers/mongo-java-server.js';

const CONNECTIONS = 20;

/** The server's threads: all of them, and those serving connections (`mongo-connection-…`; Linux keeps 15 characters of a name). */
async function threads(pid: number): Promise<{ all: number; connections: number }> {
  const tasks = await readdir(`/proc/${pid}/task`);
  let connections = 0;
  for (const task of tasks) {
    const name = await readFile(`/proc/${pid}/task/${task}/comm`, 'utf8').catch(() => '');
    if (name.startsWith('mongo-connectio')) connections++;
  }
  return { all: tasks.length, connections };
}

async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
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
      await until(`${CONNECTIONS} connections are served`, async () => {
        return (await threads(pid)).connections >= CONNECTIONS;
      });
      expect((await threads(pid)).all).toBeGreaterThanOrEqual(before.all + CONNECTIONS);
    } finally {
      await client.close();
    }
    await until('every connection thread has ended', async () => {
      return (await threads(pid)).connections === 0;
    });
    // Whatever their names. Slack for threads the JVM and netty start on their own (a compiler
    // thread, netty's global executor after a close), not for twenty.
    expect((await threads(pid)).all).toBeLessThanOrEqual(before.all + 3);
  });
});
