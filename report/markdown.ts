/** The report as Markdown a person can paste into an issue: the tables of the one model (model.ts). */
import { reportModel, type Cell, type Table } from './model.js';
import type { Report } from './types.js';

/** Escapes what would change meaning in a GitHub table cell; newlines become spaces. */
export const escapeMd = (s: string): string => s.replace(/\r?\n/g, ' ').replace(/([\\`*|<[\]])/g, '\\$1');

function codeSpan(s: string): string {
  // A pipe ends a table cell even inside a code span on GitHub; backticks need a longer fence.
  const t = s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  return t.includes('`') ? `\`\` ${t} \`\`` : `\`${t}\``;
}

function mdCell(cell: Cell): string {
  if (cell.code) return codeSpan(cell.text);
  if (cell.text === '') return '';
  return cell.strong ? `**${escapeMd(cell.text)}**` : escapeMd(cell.text);
}

/** A table under its title: `###` for a group's, `####` for the group's further concerns (Group.more). */
function mdTable(t: Table, heading = '###'): string[] {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    ...(t.title ? [`${heading} ${escapeMd(t.title)}`, ''] : []),
    line(t.headers.map(escapeMd)),
    line(t.align.map((a) => (a === 'r' ? '---:' : '---'))),
    // The row's anchor ends its last cell, so each row still starts with its own figures.
    ...t.rows.map((r) =>
      line(
        r.cells.map((cell, i) =>
          i === r.cells.length - 1 && r.anchor ? `${mdCell(cell)}<a id="${r.anchor}"></a>` : mdCell(cell),
        ),
      ),
    ),
    ...(t.notes.length ? ['', ...t.notes.map((n) => `- ${escapeMd(n)}`)] : []),
    '',
  ];
}

export function renderMarkdown(report: Report): string {
  const m = reportModel(report);
  const out = [`# ${m.title}`, ''];
  if (m.invalid.length) {
    out.push(
      `> **${m.invalid.length} invalid result${m.invalid.length === 1 ? '' : 's'}**, shown without figures:`,
      '>',
    );
    for (const i of m.invalid) out.push(`> - ${escapeMd(i.what)}: **INVALID: ${escapeMd(i.reason)}**`);
    out.push('');
  }
  for (const s of m.sections) {
    out.push(
      `## ${s.title}`,
      '',
      ...(s.intro ? [escapeMd(s.intro), ''] : []),
      ...s.groups.flatMap((g) => [...mdTable(g.table), ...(g.more ?? []).flatMap((t) => mdTable(t, '####'))]),
    );
  }
  // The appendix: where the numbers came from and how each is measured.
  out.push(
    '## Appendix: environment, parameters and method',
    '',
    ...m.facts.map((f) => `- **${f.label}:** ${f.code ? codeSpan(f.value) : escapeMd(f.value)}`),
    '',
  );
  if (m.method.length)
    out.push('### Method', '', ...m.method.map((f) => `- **${escapeMd(f.label)}:** ${escapeMd(f.value)}`), '');
  return out.join('\n');
}
