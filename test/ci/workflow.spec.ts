import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../servers/project-root.js';

/** The version `.ci/run` installs. */
const ACTIONLINT_VERSION = 'v1.7.12';
const root = projectRoot(import.meta.url);

/** `ACTIONLINT`, else `actionlint` on PATH, else where `go install` puts it (GOBIN, GOPATH/bin), which is often not on PATH. */
function findActionlint(): string | null {
  if (process.env.ACTIONLINT) return process.env.ACTIONLINT;
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  try {
    const [gobin, gopath] = execFileSync('go', ['env', 'GOBIN', 'GOPATH'], {
      encoding: 'utf8',
      timeout: 10_000,
    }).split('\n');
    if (gobin) dirs.push(gobin);
    if (gopath) dirs.push(join(gopath, 'bin'));
  } catch {
    // No Go toolchain: PATH only.
  }
  return dirs.map((dir) => join(dir, 'actionlint')).find((path) => existsSync(path)) ?? null;
}

function shellcheckVersion(): string {
  const result = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
  return result.status === 0
    ? (/version: (\S+)/.exec(result.stdout)?.[1] ?? 'unknown version')
    : 'not installed (run: scripts are not checked)';
}

const actionlint = findActionlint();
const title = 'actionlint reports nothing in .github/workflows/*.yml';
const lint = actionlint ? it : it.skip;

describe('GitHub Actions workflows', () => {
  lint(
    actionlint
      ? title
      : `${title} (skipped: actionlint is not installed; go install github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}, as .ci/run does, or set ACTIONLINT)`,
    () => {
      const files = readdirSync(join(root, '.github', 'workflows'))
        .filter((name) => /\.ya?ml$/.test(name))
        .map((name) => join('.github', 'workflows', name));
      expect(files).toContain(join('.github', 'workflows', 'ci.yml'));
      const version = spawnSync(actionlint!, ['-version'], { encoding: 'utf8' }).stdout.split(
        '\n',
      )[0];
      const result = spawnSync(actionlint!, ['-no-color', '-oneline', ...files], {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.error).toBeUndefined();
      // Every finding is a failure: exit status 0 and no output.
      expect({
        status: result.status,
        findings: result.stdout.trim().split('\n').filter(Boolean),
        stderr: result.stderr.trim(),
      }).toEqual({ status: 0, findings: [], stderr: '' });
      console.log(
        `[actionlint] ${version} (shellcheck ${shellcheckVersion()}): no findings in ${files.join(', ')}`,
      );
    },
  );
});
