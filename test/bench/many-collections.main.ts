import 'reflect-metadata';
import mongoose from 'mongoose';
import { startTestServers } from '../servers/test-servers.js';
import { manyCollectionsTable } from './many-collections-bench.js';

/** `npm run bench:many`: the "Many collections" table of `npm run bench` alone. */
async function main(): Promise<void> {
  const servers = await startTestServers();
  const connection = await mongoose.createConnection(servers.mongoUri).asPromise();
  console.log(`[bench] ${servers.description}`);
  try {
    await manyCollectionsTable({ ...servers, client: connection.getClient() });
  } finally {
    await connection.close();
    await servers.stop();
  }
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
