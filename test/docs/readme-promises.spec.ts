import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { messages } from '../../lib/change-stream.messages.js';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);
const read = (page: string) => readFileSync(join(root, page), 'utf8');
const readme = read('README.md');
/** The README and every docs page (docs/api/ is generated). */
const pages = [
  readme,
  ...readdirSync(join(root, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .map((file) => read(`docs/${file}`)),
];
/** A `## heading` section of a page, up to the next `## `. */
const section = (page: string, heading: string) =>
  page.slice(
    page.indexOf(`\n## ${heading}\n`),
    page.indexOf('\n## ', page.indexOf(`\n## ${heading}\n`) + 1),
  );
/** The `npm install …` commands of the README and the docs pages, in backticks or code blocks. */
const installs = pages.flatMap((page) =>
  [...page.matchAll(/npm install ([^`\n#]+)/g)].map((m) => m[1].trim().split(/\s+/)),
);
const versionOf = (args: string[], name: string) =>
  args.find((a) => a.startsWith(`${name}@`))?.slice(name.length + 1);

describe('README promises that failed as written (issue 17, item 22)', () => {
  it('installs the Node 20 OpenTelemetry SDK line together with an @opentelemetry/api it accepts (no ERESOLVE)', () => {
    const sdk = JSON.parse(
      readFileSync(join(root, 'node_modules/@opentelemetry/sdk-metrics/package.json'), 'utf8'),
    ) as { version: string; peerDependencies: Record<string, string> };
    // The 2.x line (the one for Node 20) accepts exactly one minor of the API.
    const [, minor] = /^>=1\.(\d+)\.0 <1\.(\d+)\.0$/.exec(
      sdk.peerDependencies['@opentelemetry/api'],
    )!;
    const sdkLine = installs.filter((args) =>
      /^\^?2\./.test(versionOf(args, '@opentelemetry/sdk-metrics') ?? ''),
    );
    expect(sdkLine).not.toHaveLength(0);
    for (const args of sdkLine) expect(versionOf(args, '@opentelemetry/api')).toBe(`~1.${minor}.0`);
    // The install sections' own API line must not pull the newest API, which the Node 20 SDK refuses.
    const apiAlone = installs.filter(
      (args) => args.length === 1 && args[0].startsWith('@opentelemetry/api'),
    );
    for (const args of apiAlone) expect(args[0]).toBe(`@opentelemetry/api@~1.${minor}.0`);
  });

  it('says that drainTimedOut events come back once the lease expires, not on the next start', () => {
    const text = messages.drainTimedOut('k', 1000);
    expect(text).toContain("once this instance's lease expires");
    expect(text).not.toMatch(/will be delivered again on the next start/);
  });

  it('says that lagMs is also null while open when events carry no usable time (docs/operating.md, Lag)', () => {
    expect(section(read('docs/operating.md'), 'Lag')).toMatch(
      /`null`[^.]*while it is open with events\s+pending that carry no usable time/,
    );
  });

  it('shows isHealthy(key, { degraded }) in the health section', () => {
    expect(section(readme, 'Health')).toMatch(/isHealthy\('changeStreams', \{ degraded: 'down'/);
  });
});
