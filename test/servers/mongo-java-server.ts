import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnUntilReady, stopChild } from './child-process.js';
import { freePort } from './free-port.js';
import { projectRoot } from './project-root.js';

const here = join(projectRoot(import.meta.url), 'test', 'servers', 'mongo-java-server');

/**
 * mongo-java-server (Maven Central `de.bwaldvogel:mongo-java-server`), an in-memory
 * MongoDB wire-protocol server with change streams, run by a one-file Java launcher.
 */
export class MongoJavaServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly classpath: string,
    private readonly oplogMaxEntries?: number,
  ) {}

  /** `oplogMaxEntries`: its oplog keeps only that many newest entries and answers a start before them with ChangeStreamHistoryLost, as mongod's rolls over. */
  static async start(options: { oplogMaxEntries?: number } = {}): Promise<MongoJavaServer> {
    const server = new MongoJavaServer(
      await freePort(),
      await resolveClasspath(),
      options.oplogMaxEntries,
    );
    await server.resume();
    return server;
  }

  /** Its process, for the bench's server CPU figures (undefined while stopped). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Not a replica set: the driver must talk to it directly. */
  get uri(): string {
    return `mongodb://127.0.0.1:${this.port}/?directConnection=true`;
  }

  /** Starts it again on the same port (with empty data: it keeps nothing). */
  async resume(): Promise<void> {
    const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
    this.child = await spawnUntilReady(
      java,
      [
        '-cp',
        this.classpath,
        join(here, 'MongoTestServer.java'),
        String(this.port),
        ...(process.env.MONGO_TEST_SERVER_AWAIT === undefined
          ? []
          : [process.env.MONGO_TEST_SERVER_AWAIT]),
      ],
      /listening on/,
      60_000,
      this.oplogMaxEntries === undefined
        ? {}
        : {
            env: {
              ...process.env,
              MONGO_TEST_SERVER_OPLOG_MAX_ENTRIES: String(this.oplogMaxEntries),
            },
          },
    );
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child, 'SIGKILL');
    this.child = undefined;
  }
}

/**
 * Whether the launcher's change-stream getMores wait as mongod's do (until a write or their
 * maxTimeMS) instead of answering an empty batch at once: `MONGO_TEST_SERVER_AWAIT` (`1`/`0`),
 * else the launcher's default (`AWAIT_BY_DEFAULT` in MongoTestServer.java, kept equal to this).
 */
export function testServerAwaitsIdleGetMore(): boolean {
  const value = process.env.MONGO_TEST_SERVER_AWAIT;
  return value === undefined ? AWAIT_BY_DEFAULT : value !== '0';
}
const AWAIT_BY_DEFAULT = true;

async function resolveClasspath(): Promise<string> {
  const output = join(await mkdtemp(join(tmpdir(), 'mongo-java-server-')), 'classpath.txt');
  try {
    await promisify(execFile)(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        join(here, 'pom.xml'),
        'dependency:build-classpath',
        `-Dmdep.outputFile=${output}`,
      ],
      {
        timeout: 300_000,
      },
    );
  } catch (error) {
    throw new Error(
      `Could not resolve mongo-java-server with Maven (is "mvn" installed and Maven Central reachable?): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return (await readFile(output, 'utf8')).trim();
}
