// Markdown tables of the docs, read by the tests that hold them to the code (reasons, metrics).

/** The cells of the first table under `## heading` (any level), before the next heading: the rows
 * after its header and separator, each row's cells trimmed (`\|` in a cell stays a `|`). */
export function tableUnder(markdown: string, heading: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, '').trim() === heading);
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const out: string[][] = [];
  let inTable = false;
  for (const l of lines.slice(start + 1)) {
    if (/^#{1,6} /.test(l)) break;
    if (!l.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    if (!inTable) {
      inTable = true; // the header row
      continue;
    }
    if (/^\|[\s:|-]+\|$/.test(l.trim())) continue; // the separator
    out.push(l.trim().replace(/^\||\|$/g, '').split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|')));
  }
  return out;
}
