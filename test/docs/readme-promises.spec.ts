import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { messages } from '../../lib/change-stream.messages.js';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const section = (heading: string) => readme.slice(readme.indexOf(`\n## ${heading}\n`), readme.indexOf('\n## ', readme.indexOf(`\n## ${heading}\n`) + 1));
/** The `npm install …` commands of the README, in backticks or code blocks. */
const installs = [...readme.matchAll(/npm install ([^`\n#]+)/g)].map((m) => m[1].trim().split(/\s+/));
const versionOf = (args: string[], name: string) => args.find((a) => a.startsWith(`${name}@`))?.slice(name.length + 1);

describe('README promises that failed as written (issue 17, item 22)', () => {
  it('installs the Node 20 OpenTelemetry SDK line together with an @opentelemetry/api it accepts (no ERESOLVE)', () => {
    const sdk = JSON.parse(readFileSync(join(root, 'node_modules/@opentelemetry/sdk-metrics/package.json'), 'utf8')) as { version: string; peerDependencies: Record<string, string> };
    // The 2.x line (the one for Node 20) accepts exactly one minor of the API.
    const [, minor] = /^>=1\.(\d+)\.0 <1\.(\d+)\.0$/.exec(sdk.peerDependencies['@opentelemetry/api'])!;
    const sdkLine = installs.filter((args) => /^\^?2\./.test(versionOf(args, '@opentelemetry/sdk-metrics') ?? ''));
    expect(sdkLine).not.toHaveLength(0);
    for (const args of sdkLine) expect(versionOf(args, '@opentelemetry/api')).toBe(`~1.${minor}.0`);
    // The install section's own API line must not pull the newest API, which the Node 20 SDK refuses.
    const apiAlone = installs.filter((args) => args.length === 1 && args[0].startsWith('@opentelemetry/api'));
    for (const args of apiAlone) expect(args[0]).toBe(`@opentelemetry/api@~1.${minor}.0`);
  });

  it('says that drainTimedOut events come back once the lease expires, not on the next start', () => {
    const text = messages.drainTimedOut('k', 1000);
    expect(text).toContain("once this instance's lease expires");
    expect(text).not.toMatch(/will be delivered again on the next start/);
  });

  it('says that lagMs is also null while open when events carry no usable time', () => {
    expect(section('Operating it')).toMatch(/`null`[^.]*while it is open with events\s+pending that carry no usable time/);
  });

  it('shows isHealthy(key, { degraded }) in the health section', () => {
    expect(section('Health')).toMatch(/isHealthy\('changeStreams', \{ degraded: 'down'/);
  });
});
