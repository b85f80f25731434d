import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);
/** The README and every page of docs/ (docs/api/ is generated). */
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const text = new Map(pages.map((page) => [page, readFileSync(join(root, page), 'utf8')]));

/** The page without its fenced code blocks, where a `# line` is no heading and a `[x](y)` no link. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** Every `id` a `#fragment` can land on: explicit anchors, and headings as GitHub slugs them (repeats get `-1`, `-2`…). */
function anchorsOf(markdown: string): Set<string> {
  const ids = new Set([...markdown.matchAll(/<a (?:id|name)="([^"]+)"/g)].map((m) => m[1]));
  const seen = new Map<string, number>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} (.*)$/gm)) {
    const slug = heading
      .replace(/<[^>]+>/g, '')
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    ids.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return ids;
}

/** Relative links (no scheme) of a page: `[text](target)`, with inline code in the text allowed. */
function linksOf(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1])
    .filter((target) => !/^[a-z][a-z+.-]*:/i.test(target));
}

describe('links between the README and the docs pages', () => {
  it('finds the pages', () => {
    expect(pages).toEqual(
      expect.arrayContaining(['README.md', 'docs/troubleshooting.md', 'docs/architecture.md']),
    );
  });

  it('every relative link lands on a file, and every #anchor on a heading or an <a id> of that file', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const target of linksOf(text.get(page)!)) {
        const [path, fragment] = target.split('#') as [string, string | undefined];
        const file =
          path === '' ? page : relative(root, join(root, dirname(page), decodeURIComponent(path)));
        if (!existsSync(join(root, file))) {
          broken.push(`${page}: ${target} (no file ${file})`);
          continue;
        }
        if (fragment === undefined || statSync(join(root, file)).isDirectory()) continue;
        const linked = text.get(file) ?? readFileSync(join(root, file), 'utf8');
        if (!anchorsOf(linked).has(fragment))
          broken.push(`${page}: ${target} (no anchor #${fragment} in ${file})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links every docs page (each topic is one click away)', () => {
    const readmeLinks = new Set(
      linksOf(text.get('README.md')!).map((target) => target.split('#')[0]),
    );
    const unlinked = pages.filter((page) => page !== 'README.md' && !readmeLinks.has(page));
    expect(unlinked).toEqual([]);
  });
});
