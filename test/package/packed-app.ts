import { type ChildProcess, spawn } from 'node:child_process';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);

/** The environment less what `npm test` set about this project, so nested npm runs see their own; the user's npm_config_* stay. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const ours = /^(npm_package_|npm_lifecycle_|npm_command$|npm_config_local_prefix$|INIT_CWD$)/i;
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !ours.test(key)));
  return { ...env, ...extra };
}

/**
 * Every child process this file started that has not exited yet. Commands (npm, npx, tsc) run
 * detached, each leading its own process group, so a timeout kills what they started too (npx
 * runs jest, npm pack runs tsc); apps are single processes and stay in our group, so a Ctrl-C
 * in the terminal reaches them.
 */
const running = new Map<ChildProcess, { group: boolean }>();

function track(child: ChildProcess, group: boolean): void {
  running.set(child, { group });
  child.once('exit', () => running.delete(child));
}

function killNow(child: ChildProcess, group: boolean): void {
  try {
    if (group && child.pid) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

/** For afterEach/afterAll: kills whatever a failed or timed-out test left running, and waits for it. */
export async function killRunningChildren(): Promise<void> {
  const exits = [...running].map(([child, { group }]) => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    killNow(child, group);
    return exited;
  });
  await Promise.all(exits);
}

// A Jest run that ends (or calls process.exit) while a command runs must not leave it behind.
process.once('exit', () => running.forEach(({ group }, child) => killNow(child, group)));

export interface RunOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs a command to completion; a failure or timeout names the command and carries its output. */
export function run(
  command: string,
  args: string[],
  cwd: string,
  { env = {}, timeoutMs = 600_000 }: RunOptions = {},
): Promise<string> {
  const what = `\`${command} ${args.join(' ')}\` in ${cwd}`;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    track(child, true);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      killNow(child, true);
      reject(new Error(`${what} did not finish within ${timeoutMs} ms (killed):\n${output}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${what} could not start: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${what} failed (${signal ?? `exit code ${code}`}):\n${output}`));
    });
  });
}

/** Builds the library and packs it (through its `prepack` script) into `destination`; returns the tarball's path. */
export async function packLibrary(destination: string): Promise<string> {
  await run('npm', ['pack', '--pack-destination', destination], root);
  const tarballs = (await readdir(destination)).filter((file) => file.endsWith('.tgz'));
  if (tarballs.length !== 1)
    throw new Error(
      `expected one tarball in ${destination}, found: ${tarballs.join(', ') || 'none'}`,
    );
  return join(destination, tarballs[0]);
}

export interface InstalledFixture {
  appDir: string;
  /** Installed packages whose `engines` exclude this Node (npm's EBADENGINE warnings), as `name@version`. */
  unsupportedEngines: string[];
}

/** Copies a fixture app of test/package/fixtures into `workDir`, installs its lockfile and the tarball, and compiles it. */
export async function installFixture(
  name: string,
  tarball: string,
  workDir: string,
): Promise<InstalledFixture> {
  const appDir = join(workDir, name);
  const source = join(root, 'test', 'package', 'fixtures', name);
  await cp(source, appDir, {
    recursive: true,
    filter: (path) => !/[/\\](node_modules|dist)$/.test(path),
  });
  const quiet = ['--prefer-offline', '--no-audit', '--no-fund'];
  const output =
    (await run('npm', ['ci', ...quiet], appDir)) +
    (await run('npm', ['install', tarball, '--no-save', ...quiet], appDir));
  await tsc(appDir, 'tsconfig.json');
  const unsupportedEngines = [
    ...new Set([...output.matchAll(/EBADENGINE +package: '([^']+)'/g)].map((match) => match[1])),
  ].sort();
  return { appDir, unsupportedEngines };
}

/** Runs the app's own TypeScript on one of its tsconfig files. */
export function tsc(appDir: string, tsconfig: string): Promise<string> {
  return run(
    process.execPath,
    [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig],
    appDir,
    { timeoutMs: 120_000 },
  );
}

/** The major version of a package installed in an app. */
export async function installedMajor(appDir: string, pkg: string): Promise<number> {
  const { version } = JSON.parse(
    await readFile(join(appDir, 'node_modules', pkg, 'package.json'), 'utf8'),
  ) as { version: string };
  return Number(version.split('.')[0]);
}

/** One `RECEIVED <id> ready=<bool> open=<bool>` line of a fixture app. */
export interface Received {
  id: string;
  ready: boolean;
  open: boolean;
}

/** A fixture app running as a child process, driven and observed through its output lines. */
export class PackedApp {
  output = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  static async start(appDir: string, env: Record<string, string>): Promise<PackedApp> {
    const child = spawn(process.execPath, [join('dist', 'main.js')], {
      cwd: appDir,
      env: cleanEnv({ ...env, NO_COLOR: '1' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child, false);
    const app = new PackedApp(child);
    await app.waitFor(/^READY$/m, 30_000);
    return app;
  }

  /** The app's base URL (`http://127.0.0.1:<port>`), from its LISTENING line. */
  get url(): string {
    const match = this.output.match(/^LISTENING (\S+)$/m);
    if (!match) throw new Error(`app printed no LISTENING line:\n${this.output}`);
    return match[1];
  }

  /** The RECEIVED lines so far, in order. */
  received(): Received[] {
    return [...this.output.matchAll(/^RECEIVED (\S+) ready=(\w+) open=(\w+)$/gm)].map(
      ([, id, ready, open]) => ({ id, ready: ready === 'true', open: open === 'true' }),
    );
  }

  /** Resolves with the first match of `pattern` in the output; fails with the output on timeout or exit. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`app exited before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline)
        throw new Error(`app did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGTERM, then waits up to `timeoutMs` for the exit (SIGKILL and a failure past that). */
  async terminate(
    timeoutMs: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const started = Date.now();
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`app still running ${timeoutMs} ms after SIGTERM:\n${this.output}`));
      }, timeoutMs);
    });
    try {
      return { ...(await Promise.race([this.exited, timeout])), ms: Date.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }
}
