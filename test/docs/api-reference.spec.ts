import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);

interface Run {
  code: number;
  output: string;
}

/** Runs TypeDoc with typedoc.json, as `npm run docs` does, without writing anything. */
function typedoc(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--emit', 'none', ...args],
      {
        cwd: root,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        // eslint-disable-next-line no-control-regex -- strips the ANSI colour codes of TypeDoc's output
        resolve({ code, output: `${stdout}\n${stderr}`.replace(/\x1b\[[0-9;]*m/g, '') });
      },
    );
  });
}

/**
 * The API reference (typedoc.json: lib/index.ts → docs/api/, with README.md and
 * every docs/*.md page) builds without a single warning: every public type and member has a
 * doc comment, every type the public API mentions is exported, and every link resolves.
 */
describe('API reference (TypeDoc)', () => {
  it('builds with no warnings', async () => {
    const { code, output } = await typedoc('--treatWarningsAsErrors');
    const problems = output
      .split('\n')
      .filter(
        (line) =>
          /^\[(warning|error)\]/.test(line) &&
          !/^\[(warning|error)\] Found \d+ errors? and \d+ warnings?/.test(line),
      );
    expect({ problems }).toEqual({ problems: [] });
    expect(code).toBe(0);
  }, 120_000);
});
