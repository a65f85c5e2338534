// Hand-drawn SVG charts (no library, nothing fetched). Colours come from
// the stylesheet by class (.k0 … .k7); each chart carries a text
// description and a table-free legend so it reads without colour too.
import { h, s } from './dom.js';

const fmt = (n) => Number(n).toLocaleString('en-US');

// Horizontal bars: items [{label, value}].
export function bars(title, items, opts = {}) {
  const rowH = 26, labelW = opts.labelWidth || 150, W = 640;
  const max = Math.max(1, ...items.map((i) => i.value));
  const H = Math.max(rowH, items.length * rowH) + 8;
  const desc = items.map((i) => i.label + ': ' + fmt(i.value)).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title + '. ' + desc, class: 'chart' },
    items.map((it, n) => {
      const y = 4 + n * rowH, w = Math.round((W - labelW - 70) * it.value / max);
      return s('g', {},
        s('text', { x: labelW - 8, y: y + 16, 'text-anchor': 'end', class: 'lbl' }, it.label),
        s('rect', { x: labelW, y: y + 3, width: Math.max(w, it.value ? 2 : 0), height: rowH - 8,
                    class: 'bar k' + ((it.k ?? n) % 8) }),
        s('text', { x: labelW + w + 6, y: y + 16, class: 'val' }, fmt(it.value)));
    }));
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title), svg);
}

// Stacked columns: labels (x axis), series [{name, values}].
export function columns(title, labels, series, opts = {}) {
  const W = 720, H = 240, left = 44, bottom = 34, top = 10;
  const n = labels.length;
  const totals = labels.map((_, i) => series.reduce((a, ser) => a + (ser.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = (W - left - 8) / Math.max(n, 1), bw = Math.max(2, step * 0.7);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const ticks = [0, max / 2, max].map((v) => Math.round(v));
  const cols = labels.map((lab, i) => {
    let acc = 0;
    const x = left + i * step + (step - bw) / 2;
    const parts = series.map((ser, k) => {
      const v = ser.values[i] || 0;
      if (!v) return null;
      const r = s('rect', { x: x.toFixed(1), y: y(acc + v).toFixed(1), width: bw.toFixed(1),
                            height: (y(acc) - y(acc + v)).toFixed(1), class: 'bar k' + (k % 8) },
        s('title', {}, lab + ' · ' + ser.name + ': ' + fmt(v)));
      acc += v;
      return r;
    });
    const every = Math.ceil(n / (opts.maxLabels || 10));
    return s('g', {}, parts,
      i % every === 0 || i === n - 1
        ? s('text', { x: (x + bw / 2).toFixed(1), y: H - bottom + 16, 'text-anchor': 'middle', class: 'lbl' },
            opts.short ? opts.short(lab) : lab)
        : null);
  });
  const total = totals.reduce((a, b) => a + b, 0);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart',
                         'aria-label': `${title}. ${fmt(total)} in all; ` +
                           series.map((ser) => ser.name + ' ' + fmt(ser.values.reduce((a, b) => a + b, 0))).join(', ') },
    ticks.map((t) => s('g', {},
      s('line', { x1: left, x2: W - 4, y1: y(t).toFixed(1), y2: y(t).toFixed(1), class: 'grid' }),
      s('text', { x: left - 6, y: (y(t) + 4).toFixed(1), 'text-anchor': 'end', class: 'lbl' }, fmt(t)))),
    cols);
  const legend = h('ul', { class: 'legend' }, series.map((ser, k) =>
    h('li', {}, s('svg', { viewBox: '0 0 10 10', class: 'swatch', 'aria-hidden': 'true' },
      s('rect', { width: 10, height: 10, class: 'k' + (k % 8) })), ser.name)));
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title), svg,
    series.length ? legend : h('p', { class: 'empty' }, opts.empty || 'Nothing to show yet.'));
}
