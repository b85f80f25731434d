import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { messages } from '../../lib/change-stream.messages.js';
import { projectRoot } from '../servers/project-root.js';

const PAGE = 'docs/troubleshooting.md';
const page = readFileSync(join(projectRoot(import.meta.url), PAGE), 'utf8');
const keys = Object.keys(messages);

/**
 * An entry is a `### <a id="<name>"></a><name>` heading followed by its text up to the next
 * heading. `<name>` is a key of `messages`, or `inline-<name>` for a message still written inline
 * in lib/ (it drops the prefix when it moves into `messages`).
 */
const ENTRY = /^### <a id="([^"]+)"><\/a>(.*)$/gm;
const entries = [...page.matchAll(ENTRY)].map((match) => ({
  anchor: match[1],
  title: match[2].trim(),
  body: page.slice(match.index + match[0].length).split(/^#{1,3} /m)[0],
}));
const anchors = entries.map((e) => e.anchor);
const INLINE = 'inline-';

/** Every `id` a `#fragment` can point to: explicit anchors, and headings as GitHub and TypeDoc slug them. */
function targets(): Set<string> {
  const ids = new Set([...page.matchAll(/<a (?:id|name)="([^"]+)"/g)].map((m) => m[1]));
  for (const [, text] of page.matchAll(/^#{1,6} (?!<a )(.*)$/gm)) {
    ids.add(
      text
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return ids;
}

describe(`${PAGE} (the troubleshooting page) and lib/change-stream.messages.ts`, () => {
  it('has an entry for every message key', () => {
    const missing = keys.filter((key) => !anchors.includes(key));
    expect({
      missingEntries: missing.map(
        (key) => `### <a id="${key}"></a>${key}  (text, level, what it means, what to do)`,
      ),
    }).toEqual({ missingEntries: [] });
  });

  it('documents no key that no longer exists', () => {
    const stale = anchors.filter((anchor) => !anchor.startsWith(INLINE) && !keys.includes(anchor));
    expect({
      entriesForRemovedKeys: stale.map(
        (key) => `#${key}: not a key of messages any more (renamed? removed?)`,
      ),
    }).toEqual({ entriesForRemovedKeys: [] });
  });

  it('names an inline message without its prefix once it is a key of messages', () => {
    const moved = anchors.filter(
      (anchor) => anchor.startsWith(INLINE) && keys.includes(anchor.slice(INLINE.length)),
    );
    expect({
      renameAnchors: moved.map((anchor) => `#${anchor} → #${anchor.slice(INLINE.length)}`),
    }).toEqual({ renameAnchors: [] });
  });

  it('has each entry once, titled by its anchor, with the text, level, meaning and what to do', () => {
    const duplicates = anchors.filter((anchor, i) => anchors.indexOf(anchor) !== i);
    const malformed = entries
      .filter(
        (e) =>
          e.title !== e.anchor ||
          !/```text\n[^`]+```/.test(e.body) ||
          !['**Level:**', '**Means:**', '**Do:**'].every((part) => e.body.includes(part)),
      )
      .map((e) => e.anchor);
    expect({ duplicates, malformed }).toEqual({ duplicates: [], malformed: [] });
  });

  it('lists every entry in its contents, and every link within the page lands on an anchor', () => {
    const contents = page.slice(page.indexOf('## Contents'), page.indexOf('\n---'));
    const unlisted = anchors.filter((anchor) => !contents.includes(`](#${anchor})`));
    const ids = targets();
    const broken = [...new Set([...page.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]))].filter(
      (id) => !ids.has(id),
    );
    expect({ unlisted, broken }).toEqual({ unlisted: [], broken: [] });
  });
});
