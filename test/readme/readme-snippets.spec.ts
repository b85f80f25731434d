import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import ts from 'typescript';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);
/** The README and every docs page (docs/api/ is generated). */
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .map((file) => `docs/${file}`),
];
const snippets = pages.flatMap((page) =>
  [...readFileSync(join(root, page), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((match, i) => ({
    page,
    index: i + 1,
    code: match[1],
  })),
);

/**
 * Every ```ts block of the README and of docs/*.md compiles as written, as its own module, against the
 * library's sources (imported by its package name, as a user writes it). Snippets that name
 * their file in a first-line comment may import one another.
 */
describe('TypeScript snippets of the README and the docs pages', () => {
  it('has snippets to check, in the README and in the docs pages', () => {
    expect(snippets.filter((s) => s.page === 'README.md').length).toBeGreaterThanOrEqual(4);
    expect(snippets.filter((s) => s.page !== 'README.md').length).toBeGreaterThanOrEqual(4);
  });

  it('compiles every one of them', () => {
    const dir = join(root, 'dist', 'readme-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = snippets.map(({ page, index, code }) => {
      // A snippet that names its file (`// metrics.ts: …`) is written under that name, so another can import it.
      const named = /^\/\/ ([\w.-]+\.ts):/.exec(code)?.[1];
      const file = join(dir, named ?? `${page.replace(/[/.]/g, '-')}-${index}.ts`);
      writeFileSync(file, code);
      return file;
    });
    const config = ts.getParsedCommandLineOfConfigFile(
      join(root, 'tsconfig.json'),
      {},
      { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
    )!;
    const program = ts.createProgram(files, {
      ...config.options,
      noEmit: true,
      baseUrl: root,
      paths: {
        'nestjs-change-streams': ['lib/index.ts'],
        'nestjs-change-streams/testing': ['lib/testing/index.ts'],
      },
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.includes(d.file.fileName))
      .map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${d.file!.fileName.split('/').pop()}:${line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  });
});
