import 'reflect-metadata';
import { startTestServers } from '../test/servers/test-servers.js';
import { registerMetrics } from './metrics/telemetry.js';
import { runSample } from './sample-run.js';

/**
 * `npm run sample`: uses MONGODB_URI / REDIS_URL when set, else starts embedded servers. With a
 * URI of yours it writes only to its own database (`nestjs_change_streams_sample`) and Redis
 * keys, and deletes nothing.
 */
async function main(): Promise<void> {
  registerMetrics(); // before any app starts: the module picks the SDK up at init
  const servers = await startTestServers();
  console.log(`\n== Servers: ${servers.description}\n`);
  try {
    await runSample(
      { mongoUri: servers.mongoUri, redisUrl: servers.redisUrl },
      {
        print: (text) => console.log(text),
        serveUntil: process.env.SAMPLE_SERVE
          ? async (url) => {
              console.log(`\n== Serving: GET ${url}/health (Ctrl+C to stop)`);
              await new Promise<void>((resolve) => {
                process.once('SIGINT', () => resolve());
                process.once('SIGTERM', () => resolve());
              });
            }
          : undefined,
      },
    );
  } finally {
    await servers.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
