// heaptide's HTML report: draws the page from the JSON block `heaptide-data`.
// Hand-written, no libraries. Every string from the report goes in as text (textContent, text
// nodes, attribute values), never as markup.
(function () {
  'use strict';

  const SVGNS = 'http://www.w3.org/2000/svg';
  const data = JSON.parse(document.getElementById('heaptide-data').textContent);
  const R = data.report;
  const FRAMES = data.frames;
  const FILES = data.files;

  // === helpers ===

  const $ = (id) => document.getElementById(id);

  function append(parent, children) {
    if (children == null || children === false) return parent;
    if (!Array.isArray(children)) children = [children];
    for (const c of children) {
      if (c == null || c === false) continue;
      if (Array.isArray(c)) append(parent, c);
      else parent.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return parent;
  }

  // An HTML element. `props`: class, text, on<event>, or attributes.
  function h(tag, props, children) {
    const e = document.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    return append(e, children);
  }

  // An SVG element; `text` becomes its text content.
  function s(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) {
      if (attrs[k] != null) e.setAttribute(k, String(attrs[k]));
    }
    if (text != null) e.textContent = String(text);
    return e;
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }

  function fmtBytes(b) {
    if (b == null || !isFinite(b)) return '–';
    const sign = b < 0 ? '-' : '';
    let v = Math.abs(b);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return sign + (i === 0 ? String(Math.round(v)) : v.toFixed(1)) + ' ' + units[i];
  }

  // Bytes for axes and bounds: "64 MiB" rather than "64.0 MiB".
  function fmtBytesRound(b) {
    return fmtBytes(b).replace('.0 ', ' ');
  }

  function fmtCount(n) {
    if (n == null || !isFinite(n)) return '–';
    return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function fmtShortCount(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
    return String(Math.round(n));
  }

  // `x` with at most `digits` decimals, trailing zeros dropped.
  function trimNum(x, digits) {
    const t = x.toFixed(digits);
    return t.indexOf('.') < 0 ? t : t.replace(/\.?0+$/, '');
  }

  function fmtNs(ns) {
    if (ns == null || !isFinite(ns)) return '–';
    if (ns < 1e3) return Math.round(ns) + ' ns';
    if (ns < 1e6) return trimNum(ns / 1e3, ns < 1e4 ? 1 : 0) + ' µs';
    if (ns < 1e9) return trimNum(ns / 1e6, ns < 1e7 ? 1 : 0) + ' ms';
    if (ns < 60e9) return trimNum(ns / 1e9, 2) + ' s';
    if (ns < 3600e9) return trimNum(ns / 60e9, 1) + ' min';
    if (ns < 86400e9) return trimNum(ns / 3600e9, 1) + ' h';
    return trimNum(ns / 86400e9, 1) + ' d';
  }

  const fmtMs = (ms) => fmtNs(ms * 1e6);

  // A time axis label at `ms`, for ticks `step` ms apart: whole units of the step's size.
  function fmtTick(ms, step) {
    if (ms === 0) return '0';
    if (step < 1000) return fmtMs(ms);
    const parts = (units) => {
      const out = [];
      let rest = Math.round(ms);
      for (const u of units) {
        const n = Math.floor(rest / u[0]);
        rest -= n * u[0];
        if (n > 0 || (u === units[units.length - 1] && !out.length)) out.push(n + ' ' + u[1]);
      }
      return out.join(' ');
    };
    if (step < 60e3) return parts([[60e3, 'min'], [1e3, 's']]);
    if (step < 3600e3) return parts([[3600e3, 'h'], [60e3, 'min']]);
    return parts([[86400e3, 'd'], [3600e3, 'h']]);
  }

  // A function's name without generic arguments and with only its last two path segments:
  // `my::module::<impl my::Trait<T>>::handle` becomes `module::handle`.
  function shortName(fn) {
    let prev = '';
    let t = fn;
    while (t !== prev) {
      prev = t;
      t = t.replace(/<[^<>]*>/g, '');
    }
    const segs = t.split('::').filter((x) => x !== '');
    return segs.length ? segs.slice(-2).join('::') : fn;
  }

  function fmtPct(x) {
    if (!isFinite(x)) return '–';
    const p = x * 100;
    return (p >= 10 || p === 0 ? p.toFixed(0) : p < 0.1 ? '<0.1' : p.toFixed(1)) + '%';
  }

  function fmtGrowth(bph) {
    return (bph >= 0 ? '+' : '') + fmtBytes(bph) + '/h';
  }

  function fmtTime(ms) {
    if (!ms) return '–';
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
      p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  function words(snake) {
    return String(snake || '').replace(/_/g, ' ');
  }

  function frame(i) {
    const f = FRAMES[i];
    return {
      fn: f[0] || '<unknown>',
      file: f[1] == null ? null : FILES[f[1]],
      line: f[2],
      plumbing: f[3] === 1,
    };
  }

  function loc(f) {
    if (!f.file) return '';
    return f.line == null ? f.file : f.file + ':' + f.line;
  }

  // A file path shortened for tables: the standard library's build path and long prefixes go.
  function shortLoc(f) {
    let l = loc(f);
    l = l.replace(/^\/rustc\/[0-9a-f]+\/library\//, 'std library: ');
    l = l.replace(/^.*\/\.cargo\/registry\/src\/[^/]+\//, '');
    return l;
  }

  function blamedFrame(x) {
    if (!x.stack.length) return { fn: '<no stack>', file: null, line: null, plumbing: false };
    return frame(x.stack[Math.min(x.blamed, x.stack.length - 1)]);
  }

  function quoteArg(a) {
    return /^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'";
  }

  function program() {
    const a0 = (R.command_line || [])[0];
    if (!a0) return 'pid ' + R.pid;
    return a0.split('/').pop();
  }

  const SEVERITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 };

  // The stack of a site or leak as a list, innermost first, the blamed frame in bold.
  function stackList(x) {
    const ol = h('ol', { class: 'stack' });
    x.stack.forEach((id, i) => {
      const f = frame(id);
      const cls = (f.plumbing ? 'plumbing' : '') + (i === x.blamed ? ' blamed' : '');
      append(ol, h('li', { class: cls.trim() || null }, [
        h('span', { class: 'fn', text: f.fn }),
        f.file ? ' ' : null,
        f.file ? h('span', { class: 'loc', text: shortLoc(f) }) : null,
      ]));
    });
    return h('details', null, [h('summary', { text: 'stack (' + x.stack.length + ' frames, innermost first)' }), ol]);
  }

  // === labels: the filter's state ===

  // Every key=value pair the label sets and the sites carry, by key, then value.
  const labelPairs = [];
  const pairById = new Map();
  const pairId = (key, value) => JSON.stringify([key, value]);
  (function () {
    const add = (set) => {
      for (const k of Object.keys(set || {})) {
        const id = pairId(k, set[k]);
        if (!pairById.has(id)) {
          const pair = { key: k, value: set[k], text: k + '=' + set[k] };
          pairById.set(id, pair);
          labelPairs.push(pair);
        }
      }
    };
    (data.labels || []).forEach((u) => add(u.labels));
    data.sites.forEach((x) => add(x.labels));
    data.leaks.forEach((l) => add(l.labels));
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    labelPairs.sort((a, b) => cmp(a.key, b.key) || cmp(a.value, b.value));
  })();

  // The chosen pair (null: no filter), and the sites and leaks it keeps.
  const view = { pair: null, sites: data.sites, leaks: data.leaks };

  // Whether label set `set` (an object, or null when unknown) holds `pair`.
  function hasPair(set, pair) {
    return set != null && Object.prototype.hasOwnProperty.call(set, pair.key) && set[pair.key] === pair.value;
  }

  // A label as a button that filters the page by it, or shows everything again when it is the
  // filter already.
  function chip(key, value) {
    const pair = pairById.get(pairId(key, value));
    const on = view.pair === pair;
    return h('button', {
      type: 'button',
      class: 'chip' + (on ? ' on' : ''),
      text: key + '=' + value,
      title: on ? 'show every call site' : 'show only the call sites labelled ' + key + '=' + value,
      onclick: (ev) => { ev.stopPropagation(); setFilter(on ? null : pair); },
    });
  }

  // A label set as chips (null for the empty set).
  function chips(set) {
    const keys = Object.keys(set || {}).sort();
    if (!keys.length) return null;
    return h('div', { class: 'chips' }, keys.map((k) => chip(k, set[k])));
  }

  // `what` with the filter in words: "call sites" or "call sites labelled component=cache".
  function labelled(what) {
    return view.pair ? what + ' labelled ' + view.pair.text : what;
  }

  // === tooltip ===

  const tip = $('tooltip');

  function showTip(ev, content) {
    clear(tip);
    append(tip, content);
    tip.hidden = false;
    moveTip(ev);
  }

  function moveTip(ev) {
    const pad = 14;
    const r = tip.getBoundingClientRect();
    let x = ev.clientX + pad;
    let y = ev.clientY + pad;
    if (x + r.width > window.innerWidth - 4) x = Math.max(4, ev.clientX - pad - r.width);
    if (y + r.height > window.innerHeight - 4) y = Math.max(4, ev.clientY - pad - r.height);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  function hideTip() {
    tip.hidden = true;
  }

  function tipRow(k, v) {
    return h('div', { class: 't-row' }, [h('span', { class: 'k', text: k }), h('span', { text: v })]);
  }

  // === header and summary ===

  function renderHeader() {
    $('h-program').textContent = program();
    document.title = 'heaptide: ' + program() + ' (pid ' + R.pid + ')';
    const sampling = R.sample_interval === 0 ? 'profiling off'
      : R.exact ? 'exact: every allocation'
        : 'sampled: one per ' + fmtBytes(R.sample_interval) + ' on average';
    $('h-sub').textContent = 'pid ' + R.pid + ' · report of ' + fmtTime(R.timestamp) + ' · ' + sampling + ' · ' +
      fmtCount(R.profiler.samples) + ' samples, ' + fmtCount(R.profiler.dropped) + ' dropped · profiler memory ' +
      fmtBytes(R.profiler.overhead_bytes);
    const badge = $('h-health');
    const status = R.health.status || 'ok';
    badge.textContent = 'health: ' + status;
    badge.className = 'health-badge ' + status;
    if (R.health.reasons && R.health.reasons.length) badge.title = R.health.reasons.join('\n');
  }

  function card(label, value, detail, cls) {
    return h('div', { class: 'card' + (cls ? ' ' + cls : '') }, [
      h('div', { class: 'label', text: label }),
      h('div', { class: 'value', text: value }),
      detail ? h('div', { class: 'detail', text: detail }) : null,
    ]);
  }

  function renderSummary() {
    const box = $('summary');
    const est = R.exact ? '' : ' (estimated)';
    const leaks = data.leaks_total;
    append(box, [
      leaks > 0
        ? card('Leak candidates', String(leaks),
          'worst: ' + shortName(blamedFrame(data.leaks[0]).fn) + ', ' + fmtGrowth(data.leaks[0].growth_bytes_per_hour), 'bad')
        : card('Leak candidates', 'none',
          data.snapshots.t.length < 9 ? 'too few snapshots to judge (' + data.snapshots.t.length + ')' : 'no site keeps growing', 'good'),
      card('Live heap' + est, fmtBytes(R.totals.live_bytes), fmtCount(R.totals.live_count) + ' blocks'),
      R.peak ? card('Peak live heap' + est, fmtBytes(R.peak.live_bytes),
        trimNum(R.peak.seconds_since_start, 1) + ' s after start' + (R.peak.top ? '; most: ' + shortName(R.peak.top) : '')) : null,
      card('Resident (RSS)', fmtBytes(R.memory.rss_bytes),
        'jemalloc: ' + fmtBytes(R.memory.jemalloc.allocated) + ' allocated, ' + fmtBytes(R.memory.jemalloc.resident) + ' resident'),
      card('Allocated since start', fmtBytes(R.totals.alloc_bytes), fmtCount(R.totals.alloc_count) + ' allocations'),
      card('Allocation rate', fmtBytes(R.rate.recent.alloc_bytes_per_sec) + '/s',
        fmtShortCount(R.rate.recent.alloc_count_per_sec) + ' allocations/s over ' + trimNum(R.rate.recent.seconds, 1) + ' s'),
      card('Median lifetime', R.lifetime_ns ? fmtNs(R.lifetime_ns.p50) : '–',
        R.lifetime_ns ? 'p99 ' + fmtNs(R.lifetime_ns.p99) + ' of freed blocks' : 'nothing freed yet'),
    ]);
  }

  // === leaks ===

  function sparkline(history, width, height) {
    const svg = s('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, 'aria-hidden': 'true' });
    if (history.length < 2) return svg;
    const t0 = history[0][0];
    const t1 = history[history.length - 1][0];
    let max = 0;
    for (const p of history) max = Math.max(max, p[1]);
    const x = (t) => 1 + (t1 > t0 ? (t - t0) / (t1 - t0) : 0) * (width - 2);
    const y = (b) => height - 2 - (max > 0 ? b / max : 0) * (height - 4);
    let d = '';
    history.forEach((p, i) => { d += (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1); });
    svg.appendChild(s('path', { d: d + 'L' + x(t1).toFixed(1) + ' ' + height + 'L1 ' + height + 'Z', fill: '#fbd5d2', stroke: 'none' }));
    svg.appendChild(s('path', { d: d, fill: 'none', stroke: '#d0312d', 'stroke-width': 1.5 }));
    return svg;
  }

  const leaksView = { all: false };
  const LEAKS_SHOWN = 5;

  function renderLeaks() {
    if (!data.leaks.length) return;
    const leaks = view.leaks;
    const sec = $('leaks');
    sec.hidden = false;
    const listed = data.leaks_total > data.leaks.length
      ? data.leaks_total + ' (the first ' + data.leaks.length + ' listed)' : String(data.leaks.length);
    $('leaks-count').textContent = view.pair ? leaks.length + ' of ' + listed + ', labelled ' + view.pair.text : listed;
    const box = clear($('leaks-table'));
    if (!leaks.length) {
      append(box, h('p', { class: 'note', text: 'None of the listed leak candidates is labelled ' + view.pair.text + '.' }));
      return;
    }
    const table = h('table');
    append(table, h('thead', null, h('tr', null, [
      h('th', { text: 'severity' }), h('th', { text: 'where' }), h('th', { class: 'num', text: 'growth' }),
      h('th', { class: 'num', text: 'live now' }), h('th', { text: 'confidence' }), h('th', { text: 'pattern' }),
      h('th', { text: 'live bytes over time' }),
    ])));
    const body = h('tbody');
    const shown = leaksView.all ? leaks : leaks.slice(0, LEAKS_SHOWN);
    for (const l of shown) {
      const f = blamedFrame(l);
      const conf = Math.max(0, Math.min(1, l.confidence));
      const bar = h('span', { class: 'bar' }, h('span'));
      bar.firstChild.style.width = (conf * 100).toFixed(0) + '%';
      append(body, h('tr', { 'data-site': l.site_id }, [
        h('td', null, h('span', { class: 'sev ' + l.severity, text: l.severity })),
        h('td', { class: 'where' }, [
          h('div', { class: 'fn', text: f.fn }),
          f.file ? h('div', { class: 'loc', text: shortLoc(f) }) : null,
          chips(l.labels),
          h('div', { class: 'reason', text: l.reason }),
          stackList(l),
        ]),
        h('td', { class: 'num growth', text: fmtGrowth(l.growth_bytes_per_hour) }),
        h('td', { class: 'num' }, [fmtBytes(l.live_bytes), h('div', { class: 'loc', text: fmtCount(l.live_samples) + ' samples' })]),
        h('td', null, h('span', { class: 'conf' }, [bar, fmtPct(conf)])),
        h('td', { class: 'pattern', text: words(l.pattern) }),
        h('td', null, sparkline(l.history, 150, 34)),
      ]));
    }
    append(table, body);
    append(box, table);
    if (leaks.length > LEAKS_SHOWN) {
      append(box, h('p', null, h('button', {
        type: 'button', class: 'button',
        text: leaksView.all ? 'show the first ' + LEAKS_SHOWN : 'show all ' + leaks.length,
        onclick: () => { leaksView.all = !leaksView.all; renderLeaks(); },
      })));
    }
  }

  // === axes ===

  // A "nice" step (1, 2 or 5 times a power of ten) for about `count` ticks over `span`.
  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  // Byte ticks: steps that are round in the unit the largest value is shown in.
  function byteTicks(max, count) {
    let unit = 1;
    while (max / unit >= 1024 && unit < Math.pow(1024, 5)) unit *= 1024;
    const step = niceStep(max / unit, count) * unit;
    const ticks = [];
    for (let v = 0; v <= max * 1.0001; v += step) ticks.push(v);
    return ticks;
  }

  const TIME_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3,
    120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];

  function timeTicks(max, count) {
    let step = TIME_STEPS[TIME_STEPS.length - 1];
    for (const st of TIME_STEPS) {
      if (max / st <= count) { step = st; break; }
    }
    const ticks = [];
    for (let v = 0; v <= max * 1.0001; v += step) ticks.push(v);
    return ticks;
  }

  // === memory over time ===

  const LEAK_COLORS = ['#d0312d', '#c2185b', '#e8710a', '#8e24aa', '#795548'];
  const hiddenSeries = {};

  // The snapshot columns, with the report's own moment as a last point when it came later (the
  // report measured memory then too): without it a short run would have one point or none.
  const memoryPoints = (function () {
    const S = data.snapshots;
    const cols = { t: S.t.slice(), rss: S.rss.slice(), resident: S.resident.slice(), allocated: S.allocated.slice(), live: S.live.slice() };
    const t0 = S.t.length ? S.t0 : R.timestamp;
    const at = R.timestamp - t0;
    const last = cols.t.length ? cols.t[cols.t.length - 1] : -1;
    cols.reportAt = null;
    if (R.timestamp > 0 && at > last) {
      cols.t.push(at);
      cols.rss.push(R.memory.rss_bytes);
      cols.resident.push(R.memory.jemalloc.resident);
      cols.allocated.push(R.memory.jemalloc.allocated);
      cols.live.push(R.totals.live_bytes);
      cols.reportAt = at;
    }
    cols.t0 = t0;
    return cols;
  })();

  function memorySeries() {
    const cols = memoryPoints;
    const t = cols.t;
    const series = [
      { id: 'rss', name: 'RSS', color: '#2f6fdb', width: 2.2, t: t, v: cols.rss },
      { id: 'resident', name: 'jemalloc resident', color: '#00a3a3', width: 1.6, t: t, v: cols.resident },
      { id: 'allocated', name: 'jemalloc allocated', color: '#2e9b47', width: 1.6, t: t, v: cols.allocated },
      { id: 'live', name: 'live heap (profile)', color: '#8d949e', width: 1.4, dash: '4 3', t: t, v: cols.live },
    ];
    view.leaks.forEach((l, i) => {
      if (i >= LEAK_COLORS.length || l.history.length === 0 || !data.snapshots.t.length) return;
      series.push({
        id: 'leak' + l.site_id,
        name: blamedFrame(l).fn,
        leak: l,
        color: LEAK_COLORS[i],
        width: 2,
        dash: '7 3',
        t: l.history.map((p) => p[0]),
        v: l.history.map((p) => p[1]),
      });
    });
    return series;
  }

  function thresholds() {
    const out = [];
    const H = R.health;
    if (H.warn_bytes != null) out.push({ name: 'warn', bytes: H.warn_bytes, color: '#c77700' });
    if (H.critical_bytes != null) out.push({ name: 'critical', bytes: H.critical_bytes, color: '#d0312d' });
    if (H.limit_bytes != null) out.push({ name: 'limit', bytes: H.limit_bytes, color: '#6a1b1a' });
    return out;
  }

  function renderMemoryLegend(series) {
    const box = clear($('memory-legend'));
    for (const sr of series) {
      const sw = h('span', { class: 'swatch' + (sr.dash ? ' dashed' : '') });
      sw.style.borderTopColor = sr.color;
      const label = sr.leak ? [h('span', { text: 'leak: ' }), h('span', { class: 'fn', text: shortName(sr.name) })] : sr.name;
      append(box, h('button', {
        type: 'button',
        'aria-pressed': hiddenSeries[sr.id] ? 'false' : 'true',
        title: (sr.leak ? sr.name + '\n' : '') + 'click to show or hide',
        onclick: () => { hiddenSeries[sr.id] = !hiddenSeries[sr.id]; renderMemory(); },
      }, [sw, label]));
    }
    for (const th of thresholds()) {
      const sw = h('span', { class: 'swatch dashed' });
      sw.style.borderTopColor = th.color;
      append(box, h('span', { class: 'legend-item' }, [sw, ' ' + th.name + ' ' + fmtBytes(th.bytes)]));
    }
  }

  // A line chart over time into `box`: `series` ({t, v, color, width, dash, name, leak}),
  // horizontal `lines` ({name, bytes, color}) for thresholds; `span`: the time axis's length
  // (0: the data's). Returns the thresholds it could not draw on its scale and the span.
  function timeChart(box, series, lines, height, label, span) {
    const W = Math.max(320, box.clientWidth || 900);
    const H = height;
    const m = { l: 70, r: 16, t: 12, b: 34 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    let tmax = span || 0;
    let vmax = 0;
    for (const sr of series) {
      for (const t of sr.t) tmax = Math.max(tmax, t);
      for (const v of sr.v) vmax = Math.max(vmax, v);
    }
    // A threshold far above the data would flatten it: such lines are named in the note.
    const onScale = lines.filter((th) => th.bytes <= Math.max(vmax, 1) * 2);
    for (const th of onScale) vmax = Math.max(vmax, th.bytes);
    if (vmax <= 0) vmax = 1024;
    const yTicks = byteTicks(vmax * 1.06, Math.max(3, Math.floor(ph / 50)));
    const ymax = Math.max(yTicks[yTicks.length - 1], vmax * 1.06);
    const xmax = tmax > 0 ? tmax : 1;
    // A lone point at time 0 sits in the middle.
    const X = tmax > 0 ? (t) => m.l + (t / xmax) * pw : () => m.l + pw / 2;
    const Y = (v) => m.t + ph - (v / ymax) * ph;

    const svg = s('svg', { width: W, height: H, role: 'img', 'aria-label': label });
    const grid = s('g', { class: 'grid' });
    const axis = s('g', { class: 'axis' });
    for (const v of yTicks) {
      grid.appendChild(s('line', { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
      axis.appendChild(s('text', { x: m.l - 8, y: Y(v) + 4, 'text-anchor': 'end' }, fmtBytesRound(v)));
    }
    const xTicks = tmax > 0 ? timeTicks(xmax, Math.max(2, Math.floor(pw / 90))) : [0];
    for (const t of xTicks) {
      grid.appendChild(s('line', { x1: X(t), x2: X(t), y1: m.t, y2: m.t + ph }));
      axis.appendChild(s('text', { x: X(t), y: H - m.b + 16, 'text-anchor': 'middle' }, fmtTick(t, xTicks[1] - xTicks[0] || 1)));
    }
    axis.appendChild(s('line', { x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
    axis.appendChild(s('text', { x: W - m.r, y: H - 3, 'text-anchor': 'end' }, data.snapshots.t.length ? 'time since the first snapshot' : 'time'));
    svg.appendChild(grid);
    svg.appendChild(axis);

    for (const th of onScale) {
      svg.appendChild(s('line', {
        x1: m.l, x2: W - m.r, y1: Y(th.bytes), y2: Y(th.bytes),
        stroke: th.color, 'stroke-width': 1.5, 'stroke-dasharray': '6 4', 'data-chart': 'threshold',
      }));
      svg.appendChild(s('text', { x: m.l + 6, y: Y(th.bytes) - 5, style: 'fill: ' + th.color, class: 'halo' },
        th.name + ' ' + fmtBytes(th.bytes)));
    }

    const dots = series.every((sr) => sr.t.length <= 60);
    for (const sr of series) {
      if (!sr.t.length) continue;
      let d = '';
      sr.t.forEach((t, i) => { d += (i ? 'L' : 'M') + X(t).toFixed(1) + ' ' + Y(sr.v[i]).toFixed(1); });
      if (sr.t.length > 1) {
        svg.appendChild(s('path', {
          d: d, fill: 'none', stroke: sr.color, 'stroke-width': sr.width, 'stroke-dasharray': sr.dash,
          'stroke-linejoin': 'round', 'data-chart': 'line', 'data-series': sr.id,
        }));
      }
      if (dots || sr.t.length === 1) {
        sr.t.forEach((t, i) => {
          svg.appendChild(s('circle', {
            cx: X(t).toFixed(1), cy: Y(sr.v[i]).toFixed(1), r: sr.t.length === 1 ? 4 : 2.2,
            fill: sr.color, 'data-chart': 'point',
          }));
        });
      }
    }

    // Hover: a guide line and the values at the nearest snapshot.
    const guide = s('line', { y1: m.t, y2: m.t + ph, stroke: '#1c1e21', 'stroke-width': 1, 'stroke-dasharray': '2 3', visibility: 'hidden' });
    svg.appendChild(guide);
    const overlay = s('rect', { x: m.l, y: m.t, width: pw, height: ph, fill: 'transparent' });
    svg.appendChild(overlay);
    const nearest = (arr, t) => {
      let best = 0;
      for (let i = 1; i < arr.length; i++) if (Math.abs(arr[i] - t) < Math.abs(arr[best] - t)) best = i;
      return best;
    };
    overlay.addEventListener('mousemove', (ev) => {
      const rect = svg.getBoundingClientRect();
      const t = ((ev.clientX - rect.left - m.l) / pw) * xmax;
      const base = series.find((sr) => sr.t.length) || null;
      if (!base) return;
      const at = base.t[nearest(base.t, t)];
      guide.setAttribute('x1', X(at));
      guide.setAttribute('x2', X(at));
      guide.setAttribute('visibility', 'visible');
      const title = at === memoryPoints.reportAt ? 'the report (' + fmtMs(at) + ' after the first snapshot)'
        : fmtMs(at) + ' after the first snapshot';
      const rows = [h('div', { class: 't-title', text: title })];
      rows.push(h('div', { class: 't-loc', text: fmtTime(memoryPoints.t0 + at) }));
      for (const sr of series) {
        if (!sr.t.length) continue;
        const sw = h('span', { class: 't-swatch' });
        sw.style.background = sr.color;
        rows.push(h('div', { class: 't-row' }, [
          h('span', { class: 'k' }, [sw, sr.leak ? 'leak: ' + shortName(sr.name) : sr.name]),
          h('span', { text: fmtBytes(sr.v[nearest(sr.t, at)]) }),
        ]));
      }
      showTip(ev, rows);
    });
    overlay.addEventListener('mouseleave', () => { guide.setAttribute('visibility', 'hidden'); hideTip(); });
    box.appendChild(svg);
    return { off: lines.filter((th) => onScale.indexOf(th) < 0), span: tmax };
  }

  function renderMemory() {
    const box = clear($('memory-chart'));
    const series = memorySeries();
    renderMemoryLegend(series);
    const shown = series.filter((sr) => !hiddenSeries[sr.id]);
    const ths = thresholds();
    const main = timeChart(box, shown, ths, 300, 'memory over time', 0);
    const off = main.off;
    // The leaks on a scale of their own: beside RSS they may be too small to see.
    const leakSeries = shown.filter((sr) => sr.leak);
    if (leakSeries.length) {
      const leakMax = Math.max.apply(null, leakSeries.map((sr) => Math.max.apply(null, sr.v.concat([0]))));
      const allMax = Math.max.apply(null, shown.map((sr) => Math.max.apply(null, sr.v.concat([0]))));
      if (leakMax < allMax / 4) {
        append(box, h('div', { class: 'chart-title', text: 'Leak candidates\u2019 live bytes, on their own scale' }));
        timeChart(box, leakSeries, [], 180, 'leak candidates over time', main.span);
      }
    }

    const n = data.snapshots.t.length;
    const notes = [];
    if (!n) notes.push('No snapshot was taken before this report: the point is the report\'s own measurement.');
    else {
      notes.push((n === 1 ? '1 snapshot' : n + ' snapshots') + ' from ' + fmtTime(data.snapshots.t0) + ', one every ' +
        fmtMs(R.snapshot_interval_ms) + ' (up to ' + fmtCount(R.snapshot_max) + ' kept; snapshot_now() adds more)' +
        (memoryPoints.reportAt != null ? ', and the report\'s own measurement as the last point.' : '.'));
    }
    if (off.length) notes.push('Off the scale: ' + off.map((th) => th.name + ' ' + fmtBytes(th.bytes)).join(', ') + '.');
    if (!ths.length) notes.push('No limit or thresholds set (HEAPTIDE_LIMIT, HEAPTIDE_WARN, HEAPTIDE_CRITICAL).');
    const tr = R.trend.rss;
    if (tr) {
      notes.push('RSS ' + fmtGrowth(tr.growth_bytes_per_hour) + ' (r² ' + tr.r_squared.toFixed(2) + '), peak ' + fmtBytes(tr.peak_bytes) +
        (tr.seconds_to_limit != null ? ', reaches the limit in ' + fmtNs(tr.seconds_to_limit * 1e9) : '') + '.');
    }
    $('memory-note').textContent = notes.join(' ');
  }

  // === flame graph (icicle: root at the top, the allocating frame at the bottom) ===

  const METRICS = [
    { key: 'live_bytes', label: 'live bytes', fmt: fmtBytes },
    { key: 'live_count', label: 'live blocks', fmt: fmtCount },
    { key: 'alloc_bytes', label: 'allocated bytes', fmt: fmtBytes },
    { key: 'alloc_count', label: 'allocations', fmt: fmtCount },
  ];
  const flame = { metric: 0, trim: true, focus: [], search: '', tree: null };
  const leakOf = {};
  data.leaks.forEach((l) => { leakOf[l.site_id] = l; });

  function buildTree() {
    const key = METRICS[flame.metric].key;
    const root = { name: 'all', children: new Map(), value: 0, self: 0, locs: new Map(), sites: 0, depth: 0, parent: null, root: true };
    for (const site of view.sites) {
      const v = site[key];
      if (!(v > 0)) continue;
      const first = flame.trim ? Math.min(site.blamed, Math.max(0, site.stack.length - 1)) : 0;
      const leak = leakOf[site.id];
      let node = root;
      root.value += v;
      root.sites++;
      for (let i = site.stack.length - 1; i >= first; i--) {
        const f = frame(site.stack[i]);
        let child = node.children.get(f.fn);
        if (!child) {
          child = { name: f.fn, children: new Map(), value: 0, self: 0, locs: new Map(), sites: 0, depth: node.depth + 1, parent: node, plumbing: f.plumbing, leak: null };
          node.children.set(f.fn, child);
        }
        child.value += v;
        child.sites++;
        const l = loc(f);
        if (l) child.locs.set(l, (child.locs.get(l) || 0) + v);
        if (leak && i === site.blamed && (!child.leak || SEVERITY_RANK[leak.severity] > SEVERITY_RANK[child.leak.severity])) child.leak = leak;
        node = child;
      }
      node.self += v;
    }
    flame.tree = root;
  }

  function pathOf(node) {
    const p = [];
    for (let n = node; n && !n.root; n = n.parent) p.unshift(n.name);
    return p;
  }

  function focusNode() {
    let node = flame.tree;
    for (const name of flame.focus) {
      const next = node.children.get(name);
      if (!next) break;
      node = next;
    }
    return node;
  }

  function hash(str) {
    let x = 2166136261;
    for (let i = 0; i < str.length; i++) x = Math.imul(x ^ str.charCodeAt(i), 16777619);
    return x >>> 0;
  }

  function nodeFill(n) {
    if (n.root) return '#c7ccd3';
    if (n.leak) return n.leak.severity === 'low' ? '#e57373' : '#d0312d';
    const k = hash(n.name);
    if (n.plumbing) return 'hsl(212, 16%, ' + (74 + (k % 9)) + '%)';
    return 'hsl(' + (24 + (k % 26)) + ', ' + (78 + (k >>> 8) % 14) + '%, ' + (60 + (k >>> 16) % 12) + '%)';
  }

  function matches(n) {
    return flame.search !== '' && !n.root && n.name.toLowerCase().indexOf(flame.search) >= 0;
  }

  let charWidth = 0;

  function measureChar(svg) {
    if (charWidth > 0) return charWidth;
    const t = s('text', { x: 0, y: -10 }, 'MMMMMMMMMMMMMMMMMMMM');
    svg.appendChild(t);
    const w = t.getComputedTextLength ? t.getComputedTextLength() / 20 : 0;
    svg.removeChild(t);
    charWidth = w > 0 ? w : 6.7;
    return charWidth;
  }

  function label(name, width) {
    const fit = Math.floor((width - 8) / charWidth);
    if (fit < 3) return '';
    return name.length <= fit ? name : name.slice(0, fit - 1) + '…';
  }

  function renderFlame() {
    const box = clear($('flame-chart'));
    const metric = METRICS[flame.metric];
    const root = flame.tree;
    const focus = focusNode();
    flame.focus = pathOf(focus);
    const W = Math.max(320, box.clientWidth || 1200);
    const ROW = 18;
    const items = [];
    const ancestors = [];
    for (let n = focus.parent; n; n = n.parent) ancestors.unshift(n);
    ancestors.forEach((n, i) => items.push({ n: n, x: 0, w: W, row: i, ancestor: true }));
    const base = ancestors.length;
    let maxRow = base;
    const walk = (n, x, w, row) => {
      items.push({ n: n, x: x, w: w, row: row });
      maxRow = Math.max(maxRow, row);
      const kids = Array.from(n.children.values()).sort((a, b) => b.value - a.value || (a.name < b.name ? -1 : 1));
      let cx = x;
      for (const c of kids) {
        const cw = n.value > 0 ? (w * c.value) / n.value : 0;
        if (cw >= 0.6) walk(c, cx, cw, row + 1);
        cx += cw;
      }
    };
    if (focus.value > 0) walk(focus, 0, W, base);
    const height = (maxRow + 1) * ROW + 1;
    const svg = s('svg', {
      width: W, height: height, role: 'img', 'aria-label': 'flame graph of ' + metric.label,
      'data-total': root.value, 'data-filter': view.pair ? view.pair.text : '',
    });
    box.appendChild(svg);
    measureChar(svg);
    items.forEach((it, i) => {
      const n = it.n;
      const y = it.row * ROW;
      const fill = nodeFill(n);
      const cls = (it.ancestor ? 'ancestor' : '') + (matches(n) ? ' match' : '');
      svg.appendChild(s('rect', {
        x: it.x.toFixed(2), y: y, width: Math.max(0.5, it.w - 0.4).toFixed(2), height: ROW - 1, rx: 1.5,
        fill: matches(n) ? '#b794f4' : fill, class: cls.trim() || null, 'data-flame': i,
      }));
      const text = label(n.root ? (view.pair ? view.pair.text : 'all') + ' (' + metric.fmt(n.value) + ')' : n.name, it.w);
      if (text) {
        svg.appendChild(s('text', { x: (it.x + 4).toFixed(2), y: y + 12.5, class: n.leak ? 'light' : null }, text));
      }
    });
    if (!items.length || focus.value <= 0) {
      svg.setAttribute('height', 40);
      svg.appendChild(s('text', { x: 8, y: 24 }, 'No ' + metric.label + ' in the listed ' + labelled('call sites') + '.'));
    }

    const itemOf = (ev) => {
      const i = ev.target && ev.target.getAttribute ? ev.target.getAttribute('data-flame') : null;
      return i == null ? null : items[+i];
    };
    svg.addEventListener('mousemove', (ev) => {
      const it = itemOf(ev);
      if (!it) { hideTip(); return; }
      showTip(ev, flameTip(it.n, metric, root, focus));
    });
    svg.addEventListener('mouseleave', hideTip);
    svg.addEventListener('click', (ev) => {
      const it = itemOf(ev);
      if (!it) return;
      flame.focus = it.n === focus && !it.n.root ? pathOf(it.n.parent) : pathOf(it.n);
      hideTip();
      renderFlame();
    });

    renderCrumbs(focus);
    const total = R.totals[metric.key] || 0;
    const notes = ['Icicle graph: the root (all listed call sites) at the top, callers above their callees, the function that allocated at the bottom. Width is ' +
      metric.label + '. Click a frame to zoom in, click it again or the root to zoom out.'];
    if (view.pair) {
      notes.push('Filtered to ' + view.pair.text + ': the ' + view.sites.length + ' of ' + data.sites.length +
        ' listed call sites labelled so hold ' + metric.fmt(root.value) + (total > 0 ? ', ' + fmtPct(Math.min(1, root.value / total)) +
        ' of all ' + metric.label + ' (' + metric.fmt(total) + ').' : '.'));
    } else if (total > 0) {
      notes.push('The report lists ' + data.sites.length + ' of ' + fmtCount(R.sites_seen) + ' call sites; they hold ' +
        fmtPct(Math.min(1, root.value / total)) + ' of all ' + metric.label + ' (' + metric.fmt(total) + ').');
    }
    if (flame.trim) notes.push('Allocator frames (alloc::, core::, std:: below the allocating function) are hidden.');
    if (flame.search) {
      let matched = 0;
      const sum = (n) => { if (matches(n)) { matched += n.value; return; } n.children.forEach(sum); };
      sum(root);
      notes.push('Frames matching "' + flame.search + '": ' + metric.fmt(matched) + ' (' + fmtPct(root.value ? matched / root.value : 0) + ').');
    }
    $('flame-note').textContent = notes.join(' ');
  }

  function flameTip(n, metric, root, focus) {
    const rows = [h('div', { class: 't-title', text: n.root ? 'all listed ' + labelled('call sites') : n.name })];
    if (n.locs && n.locs.size) {
      const locs = Array.from(n.locs.entries()).sort((a, b) => b[1] - a[1]);
      locs.slice(0, 3).forEach((l) => rows.push(h('div', { class: 't-loc', text: l[0] })));
      if (locs.length > 3) rows.push(h('div', { class: 't-loc', text: 'and ' + (locs.length - 3) + ' more lines' }));
    }
    rows.push(tipRow(metric.label, metric.fmt(n.value)));
    rows.push(tipRow('share of all', fmtPct(root.value ? n.value / root.value : 0)));
    if (focus !== root && !n.root) rows.push(tipRow('share of zoomed frame', fmtPct(focus.value ? n.value / focus.value : 0)));
    if (n.parent && !n.parent.root) rows.push(tipRow('share of caller', fmtPct(n.parent.value ? n.value / n.parent.value : 0)));
    if (n.self > 0 && n.children.size) rows.push(tipRow('allocated here directly', metric.fmt(n.self)));
    rows.push(tipRow('call sites', String(n.sites)));
    if (n.leak) {
      rows.push(h('div', { class: 't-leak', text: 'leak candidate: ' + n.leak.severity + ', ' + words(n.leak.pattern) + ', ' + fmtGrowth(n.leak.growth_bytes_per_hour) }));
    }
    return rows;
  }

  function renderCrumbs(focus) {
    const box = clear($('flame-crumbs'));
    const chain = [];
    for (let n = focus; n; n = n.parent) chain.unshift(n);
    if (chain.length === 1) {
      append(box, h('span', { text: view.pair ? 'Showing the call sites labelled ' + view.pair.text + '.' : 'Showing all call sites.' }));
      return;
    }
    // The root, then at most the three callers nearest the zoomed frame (all of them are rows
    // of the graph too).
    const shown = chain.length > 5 ? [chain[0], null].concat(chain.slice(-4)) : chain;
    append(box, h('span', { text: 'Zoomed: ' }));
    shown.forEach((n, i) => {
      if (i) append(box, h('span', { class: 'sep', text: '›' }));
      if (n === null) append(box, h('span', { text: '…', title: (chain.length - 5) + ' more callers' }));
      else if (n === focus) append(box, h('span', { class: 'current', text: shortName(n.name), title: n.name }));
      else {
        append(box, h('button', {
          type: 'button', text: n.root ? 'all' : shortName(n.name), title: n.root ? 'zoom out' : n.name,
          onclick: () => { flame.focus = pathOf(n); renderFlame(); },
        }));
      }
    });
  }

  function setupFlame() {
    const seg = $('flame-metrics');
    METRICS.forEach((mt, i) => {
      append(seg, h('button', {
        type: 'button',
        'aria-pressed': i === flame.metric ? 'true' : 'false',
        text: mt.label,
        onclick: () => {
          flame.metric = i;
          Array.from(seg.children).forEach((b, j) => b.setAttribute('aria-pressed', j === i ? 'true' : 'false'));
          buildTree();
          renderFlame();
        },
      }));
    });
    $('flame-trim').addEventListener('change', (ev) => { flame.trim = ev.target.checked; buildTree(); renderFlame(); });
    $('flame-search').addEventListener('input', (ev) => { flame.search = ev.target.value.trim().toLowerCase(); renderFlame(); });
    $('flame-reset').addEventListener('click', () => { flame.focus = []; renderFlame(); });
    buildTree();
    renderFlame();
  }

  // === sizes and lifetimes ===

  function bucketRange(b) {
    if (b.max_bytes == null) return '≥ ' + fmtBytesRound(b.min_bytes);
    return '< ' + fmtBytesRound(b.max_bytes + 1);
  }

  function renderSizes() {
    const box = clear($('sizes-chart'));
    const buckets = R.size_buckets || [];
    const W = Math.max(320, box.clientWidth || 600);
    const ROW = 30;
    const labelW = 118;
    const colW = (W - labelW) / 2;
    const H = 24 + buckets.length * ROW + 4;
    const svg = s('svg', { width: W, height: H, role: 'img', 'aria-label': 'allocations by size' });
    const totalCount = buckets.reduce((a, b) => a + b.alloc_count, 0);
    const totalLive = buckets.reduce((a, b) => a + b.live_bytes, 0);
    svg.appendChild(s('text', { x: labelW, y: 14, class: 'strong' }, 'allocations'));
    svg.appendChild(s('text', { x: labelW + colW, y: 14, class: 'strong' }, 'live bytes'));
    buckets.forEach((b, i) => {
      const y = 24 + i * ROW;
      svg.appendChild(s('text', { x: 0, y: y + 12, class: 'strong' }, b.name));
      svg.appendChild(s('text', { x: 0, y: y + 25 }, bucketRange(b)));
      const bars = [
        { x: labelW, share: totalCount ? b.alloc_count / totalCount : 0, text: fmtCount(b.alloc_count), color: '#5b8def' },
        { x: labelW + colW, share: totalLive ? b.live_bytes / totalLive : 0, text: fmtBytes(b.live_bytes), color: '#f08a24' },
      ];
      for (const bar of bars) {
        const maxW = colW - 112;
        svg.appendChild(s('rect', { x: bar.x, y: y + 4, width: maxW, height: 16, rx: 3, fill: '#eef0f3' }));
        svg.appendChild(s('rect', { x: bar.x, y: y + 4, width: Math.max(bar.share > 0 ? 1.5 : 0, bar.share * maxW).toFixed(1), height: 16, rx: 3, fill: bar.color, 'data-chart': 'bar' }));
        svg.appendChild(s('text', { x: bar.x + maxW + 6, y: y + 16, class: 'value' }, bar.text + ' · ' + fmtPct(bar.share)));
      }
    });
    box.appendChild(svg);
  }

  function renderLifetimes() {
    const box = clear($('lifetimes-chart'));
    const L = R.lifetime_ns;
    if (!L) {
      append(box, h('p', { class: 'note', text: 'No sampled block has been freed yet.' }));
      return;
    }
    const rows = [['median (p50)', L.p50], ['p90', L.p90], ['p99', L.p99], ['longest', L.max]];
    const W = Math.max(320, box.clientWidth || 600);
    const labelW = 96;
    const ROW = 26;
    const H = rows.length * ROW + 34;
    const lo = 1;
    const hi = Math.max(1e10, L.max * 1.5);
    const span = Math.log10(hi) - Math.log10(lo);
    const pw = W - labelW - 70;
    const X = (ns) => labelW + ((Math.log10(Math.max(lo, ns)) - Math.log10(lo)) / span) * pw;
    const svg = s('svg', { width: W, height: H, role: 'img', 'aria-label': 'lifetime percentiles' });
    const ticks = [[1, '1 ns'], [1e3, '1 µs'], [1e6, '1 ms'], [1e9, '1 s'], [60e9, '1 min'], [3600e9, '1 h'], [86400e9, '1 d']];
    const grid = s('g', { class: 'grid' });
    for (const t of ticks) {
      if (t[0] > hi) break;
      grid.appendChild(s('line', { x1: X(t[0]), x2: X(t[0]), y1: 0, y2: rows.length * ROW }));
      svg.appendChild(s('text', { x: X(t[0]), y: rows.length * ROW + 14, 'text-anchor': 'middle' }, t[1]));
    }
    svg.insertBefore(grid, svg.firstChild);
    rows.forEach((r, i) => {
      const y = i * ROW;
      svg.appendChild(s('text', { x: 0, y: y + 17, class: 'strong' }, r[0]));
      svg.appendChild(s('rect', { x: labelW, y: y + 5, width: Math.max(1.5, X(r[1]) - labelW).toFixed(1), height: 16, rx: 3, fill: '#7a5af5', opacity: 0.55 + 0.15 * i, 'data-chart': 'bar' }));
      svg.appendChild(s('text', { x: X(r[1]) + 6, y: y + 17, class: 'value' }, fmtNs(r[1])));
    });
    svg.appendChild(s('text', { x: W - 4, y: H - 4, 'text-anchor': 'end' }, 'log scale'));
    box.appendChild(svg);
    $('lifetimes-note').textContent = 'Over ' + fmtCount(L.count) + ' freed allocations' + (R.exact ? '' : ' (estimated)') +
      '. Per-site lifetimes are in the table below.';
  }

  // === top sites ===

  const SITE_COLUMNS = [
    { key: 'live_bytes', label: 'live bytes', fmt: fmtBytes },
    { key: 'live_count', label: 'live blocks', fmt: fmtCount },
    { key: 'alloc_bytes', label: 'allocated', fmt: fmtBytes },
    { key: 'alloc_count', label: 'allocations', fmt: fmtCount },
    { key: 'p50', label: 'lifetime p50', fmt: fmtNs, get: (x) => (x.lifetime_ns ? x.lifetime_ns.p50 : null) },
    { key: 'p99', label: 'p99', fmt: fmtNs, get: (x) => (x.lifetime_ns ? x.lifetime_ns.p99 : null) },
  ];
  const sitesView = { sort: 'live_bytes', all: false };
  const SITES_SHOWN = 20;

  function renderSites() {
    const box = clear($('sites-table'));
    const col = SITE_COLUMNS.find((c) => c.key === sitesView.sort) || SITE_COLUMNS[0];
    const get = col.get || ((x) => x[col.key]);
    const sites = view.sites.slice().sort((a, b) => (get(b) || 0) - (get(a) || 0));
    $('sites-count').textContent = view.pair
      ? sites.length + ' of ' + data.sites.length + ' listed, labelled ' + view.pair.text
      : data.sites.length + ' listed of ' + fmtCount(R.sites_seen) + ' seen';
    const totalLive = R.totals.live_bytes || 0;
    const table = h('table');
    const head = h('tr', null, [h('th', { text: 'site' })]);
    for (const c of SITE_COLUMNS) {
      append(head, h('th', {
        class: 'num sortable' + (c === col ? ' sorted' : ''),
        text: c.label,
        title: 'sort by ' + c.label,
        onclick: () => { sitesView.sort = c.key; renderSites(); },
      }));
    }
    append(head, h('th', { text: 'pattern' }));
    append(table, h('thead', null, head));
    const body = h('tbody');
    const shown = sitesView.all ? sites : sites.slice(0, SITES_SHOWN);
    for (const site of shown) {
      const f = blamedFrame(site);
      const share = h('span', { class: 'share', title: 'share of live bytes' }, h('span'));
      share.firstChild.style.width = (totalLive ? Math.min(100, (100 * site.live_bytes) / totalLive) : 0).toFixed(1) + '%';
      const tr = h('tr', { 'data-site': site.id }, h('td', { class: 'where' }, [
        h('div', { class: 'fn', text: f.fn }),
        f.file ? h('div', { class: 'loc', text: shortLoc(f) }) : null,
        chips(site.labels),
        stackList(site),
      ]));
      SITE_COLUMNS.forEach((c, i) => {
        const v = (c.get || ((x) => x[c.key]))(site);
        append(tr, h('td', { class: 'num' }, [c.fmt(v), i === 0 ? share : null]));
      });
      const leak = leakOf[site.id];
      append(tr, h('td', { class: 'pattern' }, leak ? h('span', { class: 'sev ' + leak.severity, text: 'leak' }) : words(site.pattern) || '–'));
      append(body, tr);
    }
    append(table, body);
    append(box, table);
    if (!sites.length) append(box, h('p', { class: 'note', text: 'No listed call site is labelled ' + view.pair.text + '.' }));
    if (sites.length > SITES_SHOWN) {
      append(box, h('p', null, h('button', {
        type: 'button', class: 'button',
        text: sitesView.all ? 'show the first ' + SITES_SHOWN : 'show all ' + sites.length,
        onclick: () => { sitesView.all = !sitesView.all; renderSites(); },
      })));
    }
  }

  // === memory by label, and the filter ===

  const labelsView = { all: false };
  const LABELS_SHOWN = 12;

  function renderLabels() {
    const usage = data.labels || [];
    if (!usage.length) return;
    $('labels').hidden = false;
    $('labels-count').textContent = usage.length === 1 ? '1 label set' : usage.length + ' label sets';
    $('labels-note').textContent = 'The memory of the allocations made under each label set (heaptide::label), most live bytes first' +
      (R.exact ? '' : ', estimated from the samples') + '. Choose a label to see only its call sites.';
    const total = R.totals.live_bytes || 0;
    const table = h('table');
    append(table, h('thead', null, h('tr', null, [
      h('th', { text: 'label set' }), h('th', { class: 'num', text: 'live bytes' }), h('th', { class: 'num', text: 'share' }),
      h('th', { class: 'num', text: 'allocated' }), h('th', { class: 'num', text: 'allocations' }),
    ])));
    const body = h('tbody');
    const shown = labelsView.all ? usage : usage.slice(0, LABELS_SHOWN);
    for (const u of shown) {
      const keys = Object.keys(u.labels || {});
      const single = keys.length === 1 ? pairById.get(pairId(keys[0], u.labels[keys[0]])) : null;
      const share = total ? Math.min(1, u.live_bytes / total) : 0;
      const bar = h('span', { class: 'share', title: 'share of live bytes' }, h('span'));
      bar.firstChild.style.width = (100 * share).toFixed(1) + '%';
      const cls = (single ? 'pick' : '') + (view.pair ? (hasPair(u.labels, view.pair) ? ' selected' : ' dim') : '');
      append(body, h('tr', {
        class: cls.trim() || null,
        title: single ? (view.pair === single ? 'show every call site' : 'show only the call sites labelled ' + single.text) : null,
        onclick: single ? () => setFilter(view.pair === single ? null : single) : null,
      }, [
        h('td', null, keys.length ? chips(u.labels) : h('span', { class: 'unlabelled', text: '(no label)' })),
        h('td', { class: 'num' }, [fmtBytes(u.live_bytes), bar]),
        h('td', { class: 'num', text: fmtPct(share) }),
        h('td', { class: 'num', text: fmtBytes(u.alloc_bytes) }),
        h('td', { class: 'num', text: fmtCount(u.alloc_count) }),
      ]));
    }
    append(table, body);
    const box = clear($('labels-table'));
    append(box, table);
    if (usage.length > LABELS_SHOWN) {
      append(box, h('p', null, h('button', {
        type: 'button', class: 'button',
        text: labelsView.all ? 'show the first ' + LABELS_SHOWN : 'show all ' + usage.length,
        onclick: () => { labelsView.all = !labelsView.all; renderLabels(); },
      })));
    }
  }

  function renderFilterNote() {
    const p = view.pair;
    $('filter').classList.toggle('on', !!p);
    $('filter-clear').hidden = !p;
    if (!p) {
      $('filter-note').textContent = 'Every call site is shown. Choose a label to narrow the flame graph, the call sites and the leak candidates to the sites labelled with it.';
      return;
    }
    let live = 0;
    let alloc = 0;
    for (const u of data.labels || []) {
      if (hasPair(u.labels, p)) {
        live += u.live_bytes;
        alloc += u.alloc_bytes;
      }
    }
    const total = R.totals.live_bytes || 0;
    $('filter-note').textContent = 'Filtered to ' + p.text + ': ' + fmtBytes(live) + ' live' + (R.exact ? '' : ' (estimated)') +
      ', ' + fmtPct(total ? Math.min(1, live / total) : 0) + ' of the live heap; ' + fmtBytes(alloc) + ' allocated; ' +
      view.sites.length + ' of ' + data.sites.length + ' listed call sites.';
  }

  // Shows only the sites (and leaks) labelled `pair`; null shows them all.
  function setFilter(pair) {
    view.pair = pair;
    view.sites = pair ? data.sites.filter((x) => hasPair(x.labels, pair)) : data.sites;
    view.leaks = pair ? data.leaks.filter((l) => hasPair(l.labels, pair)) : data.leaks;
    $('label-filter').value = pair ? String(labelPairs.indexOf(pair)) : '';
    attempt('label filter', renderFilterNote);
    attempt('labels', renderLabels);
    attempt('leaks', renderLeaks);
    attempt('memory chart', renderMemory);
    attempt('flame graph', () => { buildTree(); renderFlame(); });
    attempt('sites', renderSites);
    document.body.setAttribute('data-label-filter', pair ? pair.text : '');
    selftest();
  }

  function setupFilter() {
    if (!labelPairs.length) return;
    $('filter').hidden = false;
    const select = $('label-filter');
    append(select, h('option', { value: '', text: 'all' }));
    labelPairs.forEach((p, i) => append(select, h('option', { value: String(i), text: p.text })));
    select.addEventListener('change', () => setFilter(select.value === '' ? null : labelPairs[+select.value]));
    $('filter-clear').addEventListener('click', () => setFilter(null));
    renderFilterNote();
    document.body.setAttribute('data-label-filter', '');
  }

  // === health, advice, facts ===

  function renderHealth() {
    const box = clear($('health-body'));
    const H = R.health;
    append(box, h('p', null, [h('span', { class: 'status-' + H.status, text: 'Health: ' + H.status }),
      H.reasons.length ? '' : ' (nothing to report)']));
    if (H.reasons.length) append(box, h('ul', { class: 'list' }, H.reasons.map((r) => h('li', { text: r }))));
    append(box, h('h3', { text: 'Recommendations' }));
    if (!R.recommendations.length) append(box, h('p', { class: 'note', text: 'None: no figure calls for one.' }));
    else {
      append(box, h('ul', { class: 'list' }, R.recommendations.map((r) => h('li', null, [
        h('span', { class: 'kind', text: words(r.kind) }), r.message,
      ]))));
    }
    append(box, h('h3', { text: 'Alerts' }));
    const alerts = R.alerts.slice().reverse().slice(0, 20);
    if (!alerts.length) append(box, h('p', { class: 'note', text: 'None raised.' }));
    else {
      append(box, h('ul', { class: 'list' }, alerts.map((a) => h('li', null, [
        h('span', { class: 'time', text: fmtTime(a.timestamp_ms) }),
        h('span', { class: 'kind', text: a.kind + (a.severity ? ': ' + a.severity : '') }),
        a.message,
      ]))));
      if (R.alerts.length > alerts.length) append(box, h('p', { class: 'note', text: (R.alerts.length - alerts.length) + ' older alerts not shown.' }));
    }
  }

  function renderFacts() {
    const dl = $('facts-list');
    const P = R.profiler;
    const M = R.memory;
    const J = M.jemalloc;
    const fact = (k, v) => append(dl, [h('dt', { text: k }), h('dd', null, v)]);
    fact('process', 'pid ' + R.pid);
    fact('command line', R.command_line && R.command_line.length
      ? h('code', { text: R.command_line.map(quoteArg).join(' ') }) : 'not available');
    fact('report taken', fmtTime(R.timestamp));
    fact('sampling', R.sample_interval === 0 ? 'off (plain jemalloc): no profile'
      : R.exact ? 'exact: every allocation recorded, figures exact'
        : 'one sample per ' + fmtBytes(R.sample_interval) + ' on average (' + fmtCount(R.sample_interval) + ' bytes); heap figures are estimates');
    fact('samples', [fmtCount(P.samples) + ' taken, ',
      h('span', { class: P.dropped > 0 ? 'warn' : null, text: fmtCount(P.dropped) + ' dropped' }),
      ', ' + fmtCount(P.live_samples) + ' live']);
    fact('profiler overhead', fmtBytes(P.overhead_bytes) + ' of its own memory (rings ' + fmtBytes(P.ring_bytes) + ', ' +
      fmtCount(P.symbols_cached) + ' addresses symbolized)');
    fact('threads sampled', String(P.thread_slots));
    fact('stack capture', P.stack_walker || '–');
    fact('call sites', data.sites.length + ' listed of ' + fmtCount(R.sites_seen) + ' seen');
    fact('snapshots', data.snapshots.t.length + ' kept, every ' + fmtMs(R.snapshot_interval_ms) + ' (at most ' + fmtCount(R.snapshot_max) + ')');
    fact('memory', 'RSS ' + fmtBytes(M.rss_bytes) + ', virtual ' + fmtBytes(M.virtual_bytes) + ' (includes ' +
      fmtBytes(P.reserved_bytes) + ' reserved, not memory)');
    fact('jemalloc', fmtBytes(J.allocated) + ' allocated, ' + fmtBytes(J.active) + ' active, ' + fmtBytes(J.resident) +
      ' resident, ' + fmtBytes(J.metadata) + ' metadata, ' + fmtBytes(J.mapped) + ' mapped, ' + fmtBytes(J.retained) + ' retained');
    fact('fragmentation', 'resident / allocated ×' + M.fragmentation_ratio.toFixed(2) + ', active / allocated ×' +
      M.active_ratio.toFixed(2) + ', metadata ' + fmtPct(M.metadata_ratio));
    const rate = (r) => fmtBytes(r.alloc_bytes_per_sec) + '/s, ' + fmtShortCount(r.alloc_count_per_sec) + ' allocations/s';
    fact('allocation rate', 'recent ' + rate(R.rate.recent) + '; since start ' + rate(R.rate.since_start) +
      ' over ' + fmtNs(R.rate.since_start.seconds * 1e9));
    const tr = R.trend.heap;
    if (tr) {
      fact('heap trend', fmtGrowth(tr.growth_bytes_per_hour) + ' over ' + fmtNs(tr.window_seconds * 1e9) + ' (r² ' +
        tr.r_squared.toFixed(2) + '), peak ' + fmtBytes(tr.peak_bytes) + ', average ' + fmtBytes(tr.average_bytes));
    }
  }

  // === run ===

  const errorsBox = $('errors');

  function attempt(name, fn) {
    try {
      fn();
    } catch (e) {
      window.heaptideErrors.push(name + ': ' + (e && e.stack ? e.stack : String(e)));
    }
  }

  function selftest() {
    const errs = window.heaptideErrors;
    const flameCount = document.querySelectorAll('#flame-chart [data-flame]').length;
    const chartCount = document.querySelectorAll('#memory-chart [data-chart]').length;
    $('selftest').textContent = 'flame=' + flameCount + ' chart=' + chartCount + ' errors=' + errs.length +
      (errs.length ? '\n' + errs.join('\n') : '');
    if (errs.length) {
      errorsBox.hidden = false;
      errorsBox.textContent = 'This page hit an error while drawing (please report it):\n' + errs.join('\n');
    }
  }

  attempt('header', renderHeader);
  attempt('summary', renderSummary);
  attempt('label filter', setupFilter);
  attempt('leaks', renderLeaks);
  attempt('labels', renderLabels);
  attempt('memory chart', renderMemory);
  attempt('flame graph', setupFlame);
  attempt('sizes', renderSizes);
  attempt('lifetimes', renderLifetimes);
  attempt('sites', renderSites);
  attempt('health', renderHealth);
  attempt('facts', renderFacts);
  selftest();

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      attempt('memory chart', renderMemory);
      attempt('flame graph', renderFlame);
      attempt('sizes', renderSizes);
      attempt('lifetimes', renderLifetimes);
      selftest();
    }, 150);
  });
  window.addEventListener('load', selftest);
})();
