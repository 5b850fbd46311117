/**
 * Every `§n` a source file under protocol/, server/, client/ or shared/ cites must be a heading of
 * docs/protocol.md, so that a comment's reference resolves inside the repository. Citations that
 * name another document on the same line (`docs/protocol-v4.md §3`, `RFC 8446 §7.5`), and those
 * in a `v4/` folder without such a name, belong to that document and are not checked here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const SOURCE_DIRS = ['protocol', 'server', 'client', 'shared'] as const;
const PROTOCOL_DOC = join(ROOT, 'docs', 'protocol.md');

/** Which document a citation refers to: docs/protocol.md, or one this test does not check. */
type Target = 'protocol.md' | 'other';

interface Citation {
  readonly file: string;
  readonly line: number;
  readonly section: string;
}

const SECTION = /§(\d+(?:\.\d+)*)/g;
const HEADING = /^#{1,6}\s+§(\d+(?:\.\d+)*)(?:\s|$)/;
// Names of documents a line may cite; the nearest one before a `§` decides its document.
const DOCUMENT = /protocol-v4\.md|protocol\.md|RFC \d+|\bv3\b/g;

function targetOf(documentName: string): Target {
  return documentName === 'protocol.md' || documentName === 'v3' ? 'protocol.md' : 'other';
}

/** The sections docs/protocol.md has a heading for (`## §5 Flows` → "5"). */
function headingSections(markdown: string): Set<string> {
  const sections = new Set<string>();
  for (const line of markdown.split('\n')) {
    const m = HEADING.exec(line);
    if (m) sections.add(m[1]);
  }
  return sections;
}

/** Citations of docs/protocol.md in one file's text. */
function citationsIn(file: string, text: string, fallback: Target): Citation[] {
  const found: Citation[] = [];
  text.split('\n').forEach((lineText, index) => {
    const marks = [...lineText.matchAll(DOCUMENT)].map((m) => ({ at: m.index, name: m[0] }));
    for (const m of lineText.matchAll(SECTION)) {
      const before = marks.filter((mark) => mark.at < m.index);
      const last = before[before.length - 1];
      const target = last === undefined ? fallback : targetOf(last.name);
      if (target === 'protocol.md') found.push({ file, line: index + 1, section: m[1] });
    }
  });
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.isFile() && entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Files in a `v4/` folder cite docs/protocol-v4.md unless a line says otherwise. */
function fallbackFor(relativePath: string): Target {
  return relativePath.split(sep).slice(0, -1).includes('v4') ? 'other' : 'protocol.md';
}

function citationsInCode(): Citation[] {
  return SOURCE_DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir))).flatMap((full) => {
    const rel = relative(ROOT, full);
    return citationsIn(rel, readFileSync(full, 'utf8'), fallbackFor(rel));
  });
}

function unresolved(citations: readonly Citation[], headings: ReadonlySet<string>): string[] {
  return citations
    .filter((c) => !headings.has(c.section))
    .map((c) => `${c.file}:${c.line}: §${c.section}`);
}

describe('§ citations in code', () => {
  const headings = headingSections(readFileSync(PROTOCOL_DOC, 'utf8'));

  it('docs/protocol.md has a heading for every section of the contract', () => {
    const contract = ['1', '2', '3', '4', '5', '5.1', '5.2', '5.3', '5.4', '5.5', '6', '7', '8'];
    expect([...headings]).toEqual(expect.arrayContaining([...contract, '9', '10']));
  });

  it('every §n cited in protocol/, server/, client/ and shared/ is a heading of docs/protocol.md', () => {
    const citations = citationsInCode();
    // The code cites the protocol throughout; a scan that finds almost nothing looked elsewhere.
    expect(citations.length).toBeGreaterThan(50);
    expect(unresolved(citations, headings)).toEqual([]);
  });

  it('reports a citation that has no heading', () => {
    const text = [
      '/** Framing (docs/protocol.md §1) and a section that does not exist (§11). */',
      '// §5.9 does not exist either; §5.4 does.',
    ].join('\n');
    const citations = citationsIn('bogus.ts', text, 'protocol.md');
    expect(unresolved(citations, headings)).toEqual(['bogus.ts:1: §11', 'bogus.ts:2: §5.9']);
  });

  it('leaves citations of other documents to them', () => {
    const text = [
      '// docs/protocol-v4.md §3.2, as v3 §9; RFC 8446 §7.5',
      '/** (§4.1) in a v4 folder */',
    ].join('\n');
    expect(citationsIn('protocol/v4/x.ts', text, 'other')).toEqual([
      { file: 'protocol/v4/x.ts', line: 1, section: '9' },
    ]);
  });
});
