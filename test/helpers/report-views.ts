/**
 * Reads the tables back out of each rendering of a bench report (the model itself, the Markdown, the
 * HTML; the dashboard's DOM is read in test/web/dashboard.test.ts) into one plain shape, so that a test can
 * check that the renderings show the same groups, the same figures and the same INVALID rows.
 */
import type { ReportModel } from '../../report/model.js';

export interface TableView {
  section: string;
  title: string | undefined;
  headers: string[];
  rows: { cells: string[]; invalid: boolean }[];
}

export function modelTables(m: ReportModel): TableView[] {
  return m.sections.flatMap((s) =>
    s.groups
      .flatMap((g) => [g.table, ...(g.more ?? [])])
      .map((t) => ({
        section: s.title,
        title: t.title,
        headers: t.headers,
        rows: t.rows.map((r) => ({ cells: r.cells.map((c) => c.text), invalid: r.invalid })),
      })),
  );
}

/** `**x**`, `` `x` `` and ``` `` x `` ``` unwrapped, Markdown escapes undone. */
function mdText(cell: string): string {
  const code = /^(`+) ?(.*?) ?\1$/.exec(cell);
  if (code) return code[2]!.replace(/\\\|/g, '|');
  return cell.replace(/^\*\*(.*)\*\*$/, '$1').replace(/\\([\\`*|<[\]])/g, '$1');
}

export function markdownTables(md: string): TableView[] {
  const out: TableView[] = [];
  let section = '';
  let title: string | undefined;
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) [section, title] = [line.slice(3), undefined];
    else if (/^####? /.test(line)) title = mdText(line.slice(line.indexOf(' ') + 1));
    else if (line.startsWith('| ')) {
      // A row's anchor (`<a id="row-…"></a>` after its last cell's text) is not part of the cell.
      const cells = (l: string) =>
        l
          .slice(2, -2)
          .split(' | ')
          .map((c) => c.replace(/<a id="[^"]+"><\/a>$/, ''));
      const headers = cells(line).map(mdText);
      const rows: TableView['rows'] = [];
      for (i += 2; lines[i]?.startsWith('| '); i++) {
        const raw = cells(lines[i]!);
        rows.push({ cells: raw.map(mdText), invalid: raw.some((c) => c.startsWith('**INVALID:')) });
      }
      out.push({ section, title, headers, rows });
      title = undefined;
    }
  }
  return out;
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const htmlText = (s: string): string =>
  s.replace(/<[^>]+>/g, '').replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]!);

/** The tables of renderHtml's output (its own, regular markup: not a general HTML parser). */
export function htmlTables(html: string): TableView[] {
  const out: TableView[] = [];
  for (const part of html.split('<section><h2>').slice(1)) {
    const section = htmlText(part.slice(0, part.indexOf('</h2>')));
    for (const m of part.matchAll(
      /(?:<h[34]>([^<]*)<\/h[34]>)?<div class="scroll"><table><thead><tr>(.*?)<\/tr><\/thead><tbody>\n([\s\S]*?)\n<\/tbody>/g,
    )) {
      const cells = (tr: string, tag: string) =>
        [...tr.matchAll(new RegExp(`<${tag}[^>]*>(.*?)</${tag}>`, 'g'))].map((c) => htmlText(c[1]!));
      const rows = [...m[3]!.matchAll(/<tr( class="invalid")?(?: id="[^"]+")?>(.*?)<\/tr>/g)].map((r) => ({
        cells: cells(r[2]!, 'td'),
        invalid: r[1] !== undefined,
      }));
      out.push({ section, title: m[1] === undefined ? undefined : htmlText(m[1]), headers: cells(m[2]!, 'th'), rows });
    }
  }
  return out;
}
