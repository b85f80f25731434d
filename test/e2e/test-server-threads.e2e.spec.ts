import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { mongo } from 'mongoose';
import { MongoJavaServer } from '../servers/mongo-java-server.js';

const CONNECTIONS = 20;

/** The threads serving connections (`mongo-connection-…`; Linux keeps 15 characters of a name). */
async function connectionThreads(pid: number): Promise<number> {
  let count = 0;
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const name = await readFile(`/proc/${pid}/task/${task}/comm`, 'utf8').catch(() => '');
    if (name.startsWith('mongo-connectio')) count++;
  }
  return count;
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

  it(`${CONNECTIONS} connections waiting at once on ${CONNECTIONS} threads, none after they close`, async () => {
    const pid = server.pid!;
    const client = await new mongo.MongoClient(server.uri, {
      maxPoolSize: CONNECTIONS,
    }).connect();
    const db = client.db('threads');
    const streams = Array.from({ length: CONNECTIONS }, (_, i) =>
      db.collection(`c${i}`).watch([], { maxAwaitTimeMS: 3_000 }),
    );
    try {
      // Each stream's first getMore waits on the server, holding a connection of its own.
      const waiting = streams.map((stream) => stream.tryNext());
      await until(`${CONNECTIONS} connections are served`, async () => {
        return (await connectionThreads(pid)) >= CONNECTIONS;
      });
      await Promise.all(waiting);
    } finally {
      await Promise.all(streams.map((stream) => stream.close()));
      await client.close();
    }
    await until('every connection thread has ended', async () => {
      return (await connectionThreads(pid)) === 0;
    });
    expect(await connectionThreads(pid)).toBe(0);
  });
});
