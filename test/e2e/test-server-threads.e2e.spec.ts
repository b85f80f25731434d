import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { mongo } from 'mongoose';
import { MongoJavaServer } from '../servers/mongo-java-server.js';

const CONNECTIONS = 20;

/**
 * The server's threads (leaving out the JVM's compiler and garbage-collector threads, which come
 * and go on their own) and those serving connections (`mongo-connection-…`; Linux keeps 15
 * characters of a name).
 */
async function threads(pid: number): Promise<{ all: number; connections: number }> {
  let all = 0;
  let connections = 0;
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const name = await readFile(`/proc/${pid}/task/${task}/comm`, 'utf8').catch(() => '');
    if (name.includes('Compiler') || /^(G1|GC )/.test(name)) continue;
    all++;
    if (name.startsWith('mongo-connectio')) connections++;
  }
  return { all, connections };
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
      // Whatever their names, so that the old launcher (threads named otherwise) fails below, not here.
      await until(`${CONNECTIONS} connections are served`, async () => {
        return (await threads(pid)).all >= before.all + CONNECTIONS;
      });
    } finally {
      await client.close();
    }
    // Slack for netty's global executor (it completes each closed connection's loop, then ends
    // after a second idle) and the like, not for twenty.
    await until("the connections' threads have ended", async () => {
      return (await threads(pid)).all <= before.all + 2;
    });
    expect((await threads(pid)).connections).toBe(0);
  });
});
