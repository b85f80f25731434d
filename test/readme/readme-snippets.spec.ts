import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import ts from 'typescript';
import { projectRoot } from '../servers/project-root.js';

const root = projectRoot(import.meta.url);
const snippets = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]);

/**
 * Every ```ts block of the README compiles as written, as its own module, against the
 * library's sources (imported by its package name, as a user writes it). Snippets that name
 * their file in a first-line comment may import one another.
 */
describe('README TypeScript snippets', () => {
  it('has snippets to check', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(4);
  });

  it('compiles every one of them', () => {
    const dir = join(root, 'dist', 'readme-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = snippets.map((code, i) => {
      // A snippet that names its file (`// metrics.ts: …`) is written under that name, so another can import it.
      const named = /^\/\/ ([\w.-]+\.ts):/.exec(code)?.[1];
      const file = join(dir, named ?? `snippet-${i + 1}.ts`);
      writeFileSync(file, code);
      return file;
    });
    const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
    const program = ts.createProgram(files, {
      ...config.options,
      noEmit: true,
      baseUrl: root,
      paths: { 'nestjs-change-streams': ['lib/index.ts'], 'nestjs-change-streams/testing': ['lib/testing/index.ts'] },
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
