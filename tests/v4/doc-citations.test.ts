/**
 * Every `§n` that version-4 code cites for docs/protocol-v4.md is a heading there: citations
 * naming protocol-v4.md anywhere in the sources, and those in a `v4/` folder that name no other
 * document on their line (the rule of tests/docs/section-citations.test.ts, the other way round).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const SOURCE_DIRS = ['protocol', 'server', 'client', 'shared'];
const SECTION = /§(\d+(?:\.\d+)*)/g;
const HEADING = /^#{1,6}\s+§(\d+(?:\.\d+)*)(?:\s|$)/;
const DOCUMENT = /protocol-v4\.md|protocol\.md|RFC \d+|\bv3\b/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.isFile() && entry.name.endsWith('.ts') ? [full] : [];
  });
}

function v4Citations(): string[] {
  const found: string[] = [];
  for (const full of SOURCE_DIRS.flatMap((d) => sourceFiles(join(ROOT, d)))) {
    const rel = relative(ROOT, full);
    const inV4 = rel.split(sep).slice(0, -1).includes('v4');
    readFileSync(full, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        const marks = [...line.matchAll(DOCUMENT)].map((m) => ({ at: m.index, name: m[0] }));
        for (const m of line.matchAll(SECTION)) {
          const before = marks.filter((mark) => mark.at < m.index);
          const last = before[before.length - 1];
          const isV4 = last === undefined ? inV4 : last.name === 'protocol-v4.md';
          if (isV4) found.push(`${rel}:${index + 1}: §${m[1]}`);
        }
      });
  }
  return found;
}

describe('docs/protocol-v4.md citations', () => {
  it('resolve to headings of docs/protocol-v4.md', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'protocol-v4.md'), 'utf8');
    const headings = new Set(
      doc.split('\n').flatMap((line) => {
        const m = HEADING.exec(line);
        return m ? [m[1]] : [];
      }),
    );
    const citations = v4Citations();
    expect(citations.length).toBeGreaterThan(20);
    expect(citations.filter((c) => !headings.has(c.split('§')[1] ?? ''))).toEqual([]);
  });
});
