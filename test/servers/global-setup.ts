import { startTestServers, type TestServers } from './test-servers.js';

declare global {
  var __changeStreamTestServers: TestServers | undefined;
}

/** Starts the servers once for the whole run; workers read them from the environment. */
export default async function globalSetup(): Promise<void> {
  const servers = await startTestServers();
  globalThis.__changeStreamTestServers = servers;
  process.env.MONGODB_URI = servers.mongoUri;
  process.env.REDIS_URL = servers.redisUrl;
  process.env.TEST_MONGO_KIND = servers.mongoKind;
  console.log(`\n[test servers] ${servers.description}`);
}
