// The documentation's links hold: every relative link in README.md, docs/*.md and
// src/control/bgp/README.md names a file of the checkout, and a `#section` part names a heading
// of that file (GitHub's anchors: lower case, punctuation but `-` and `_` dropped, spaces as `-`,
// `-1`, `-2` for a repeated heading). The README was split into docs/ with its cross-references
// made links; a heading renamed or a section moved without its links fails here. README.md stays
// a page a newcomer reads through (the review that split it: at most ~400 lines).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOCS = ['README.md', 'src/control/bgp/README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

/** Lines outside ``` fences. */
function prose(text: string): string[] {
  let fence = false;
  return text.split('\n').filter((l) => {
    if (l.startsWith('```')) {
      fence = !fence;
      return false;
    }
    return !fence;
  });
}

/** GitHub's anchors for a file's headings. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of prose(text)) {
    const m = /^#{1,6} (.*)$/.exec(l);
    if (!m) continue;
    const base = m[1].replace(/[`*]/g, '').trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

test('GitHub anchors as GitHub makes them', () => {
  const a = anchors("# x\n## What `--bgp` runs: peers, exports\n### The node's address\n## Tests\n## Tests\n```\n## not a heading\n```\n");
  assert.equal([...a], ['x', 'what---bgp-runs-peers-exports', 'the-nodes-address', 'tests', 'tests-1']);
});

test('every relative link in README.md, docs/*.md and src/control/bgp/README.md resolves, to a heading when it names one', () => {
  assert.ok(DOCS.length >= 10, DOCS.join(' '));
  const bad: string[] = [];
  let links = 0;
  for (const f of DOCS) {
    const text = readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of prose(text).join('\n').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      links++;
      const [file, anchor] = target.split('#', 2);
      const to = file === '' ? path.join(ROOT, f) : path.resolve(ROOT, path.dirname(f), file);
      if (!existsSync(to)) {
        bad.push(`${f}: ${target}: no such file`);
        continue;
      }
      if (anchor !== undefined && !anchors(readFileSync(to, 'utf8')).has(anchor)) bad.push(`${f}: ${target}: no such heading in ${path.relative(ROOT, to)}`);
    }
  }
  assert.ok(links > 50, `only ${links} links found`);
  assert.equal(bad, []);
});

test('README.md is at most 400 lines; each docs/*.md file opens with its title', () => {
  const lines = readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length;
  assert.ok(lines <= 400, `README.md has ${lines} lines: move the detail to docs/`);
  for (const f of DOCS.filter((d) => d.startsWith('docs/'))) assert.match(readFileSync(path.join(ROOT, f), 'utf8'), /^# \S/, f);
});

test.run();
