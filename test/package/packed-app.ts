import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);

/** The environment less what `npm test` set about this project, so nested npm runs see their own; the user's npm_config_* stay. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const ours = /^(npm_package_|npm_lifecycle_|npm_command$|npm_config_local_prefix$|INIT_CWD$)/i;
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !ours.test(key)));
  return { ...env, ...extra };
}

/** Runs a command to completion; a failure names the command and carries its output. */
export async function run(command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { cwd, env: cleanEnv(), maxBuffer: 32 * 1024 * 1024 });
    return stdout + stderr;
  } catch (error) {
    const { stdout = '', stderr = '', message } = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`\`${command} ${args.join(' ')}\` failed in ${cwd}: ${message}\n${stdout}\n${stderr}`);
  }
}

/** Builds the library and packs it (through its `prepack` script) into `destination`; returns the tarball's path. */
export async function packLibrary(destination: string): Promise<string> {
  await run('npm', ['pack', '--pack-destination', destination], root);
  const tarballs = (await readdir(destination)).filter((file) => file.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new Error(`expected one tarball in ${destination}, found: ${tarballs.join(', ') || 'none'}`);
  return join(destination, tarballs[0]);
}

/** Copies a fixture app of test/package/fixtures into `workDir`, installs its lockfile and the tarball, and compiles it. */
export async function installFixture(name: string, tarball: string, workDir: string): Promise<string> {
  const appDir = join(workDir, name);
  const source = join(root, 'test', 'package', 'fixtures', name);
  await cp(source, appDir, { recursive: true, filter: (path) => !/[/\\](node_modules|dist)$/.test(path) });
  const quiet = ['--prefer-offline', '--no-audit', '--no-fund'];
  await run('npm', ['ci', ...quiet], appDir);
  await run('npm', ['install', tarball, '--no-save', ...quiet], appDir);
  await run(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], appDir);
  return appDir;
}

/** The major version of a package installed in an app. */
export async function installedMajor(appDir: string, pkg: string): Promise<number> {
  const { version } = JSON.parse(await readFile(join(appDir, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string };
  return Number(version.split('.')[0]);
}

/** A fixture app running as a child process, driven and observed through its output lines. */
export class PackedApp {
  output = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(appDir: string, env: Record<string, string>): Promise<PackedApp> {
    const child = spawn(process.execPath, [join('dist', 'main.js')], { cwd: appDir, env: cleanEnv({ ...env, NO_COLOR: '1' }), stdio: ['ignore', 'pipe', 'pipe'] });
    const app = new PackedApp(child);
    await app.waitFor(/^READY$/m, 30_000);
    return app;
  }

  /** Resolves with the first match of `pattern` in the output; fails with the output on timeout or exit. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`app exited before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`app did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGTERM, then waits up to `timeoutMs` for the exit (SIGKILL and a failure past that). */
  async terminate(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
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

  /** For afterEach: makes sure no app outlives its test. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
