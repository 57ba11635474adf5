// Number formatting shared by the live view and the reports.

/** Milliseconds, with the precision that matters at that size. @param {number | null | undefined} ms */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const a = Math.abs(ms);
  if (a < 1) return `${ms.toFixed(2)} ms`;
  if (a < 10) return `${ms.toFixed(1)} ms`;
  if (a < 1000) return `${Math.round(ms)} ms`;
  if (a < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** @param {number | null | undefined} n @param {number} [digits] */
export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Bytes, binary units. @param {number | null | undefined} n */
export function fmtBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a < 1024) return `${fmtNum(n, n % 1 === 0 ? 0 : a < 1 ? 2 : a < 10 ? 1 : 0)} B`;
  if (a < 1024 ** 2) return `${fmtNum(n / 1024, 1)} KiB`;
  return `${fmtNum(n / 1024 ** 2, 1)} MiB`;
}

/** A link rate in kbit/s (1 kbps = 1,000 bit/s); null = no limit. @param {number | null} kbps */
export function fmtKbps(kbps) {
  if (kbps === null) return 'unlimited';
  return kbps >= 1000 ? `${fmtNum(kbps / 1000, kbps % 1000 === 0 ? 0 : 1)} Mbps` : `${fmtNum(kbps)} kbps`;
}

/** A short, single-line preview of a message's data. @param {unknown} data @param {number} max */
export function preview(data, max = 40) {
  let s;
  if (typeof data === 'string') s = JSON.stringify(data.length > max * 2 ? data.slice(0, max * 2) : data);
  else {
    try {
      s = JSON.stringify(data) ?? String(data);
    } catch {
      s = String(data);
    }
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Sets an element's text only when it changed (keeps layout and the DOM quiet). @param {Element} el @param {string} text */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Sets a data-* attribute only when it changed. @param {HTMLElement} el @param {string} key @param {string} value */
export function setData(el, key, value) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}
