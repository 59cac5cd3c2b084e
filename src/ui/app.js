// The explorer page: its state lives in the URL with GET /events' parameter names
// (topic, source, since, until, q, payload.<path>), so a link reproduces a view.
// No framework: a few functions over the DOM. uPlot (global, from /ui/uPlot.iife.min.js)
// draws the histogram.

const PAGE_SIZE = 100;
/** Requests one "load" or "older" may chain when a filtered scan comes back short (see next_cursor). */
const SCAN_REQUESTS_MAX = 50;
/** Rows the table keeps; older ones fall off the bottom (the "Older" button fetches them again). */
const TABLE_ROWS_MAX = 2000;
/** Live events held while paused; past it they are dropped and counted. */
const PAUSE_BUFFER_MAX = 500;
const KEY_STORAGE = 'logagg.readKey';
const RANGE_PRESETS = ['15m', '1h', '24h', '7d'];

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('query'),
  q: $('q'),
  topic: $('topic'),
  source: $('source'),
  range: $('range'),
  custom: $('custom-range'),
  since: $('since'),
  until: $('until'),
  field: $('field'),
  fields: $('fields'),
  topics: $('topics'),
  rows: $('rows'),
  empty: $('empty'),
  older: $('older'),
  total: $('total'),
  histogram: $('histogram'),
  live: $('live'),
  pause: $('pause'),
  liveStatus: $('live-status'),
  scanStatus: $('scan-status'),
  detail: $('detail'),
  detailJson: $('detail-json'),
  detailFields: $('detail-fields'),
  copy: $('copy'),
  keyDialog: $('key-dialog'),
  keyForm: $('key-form'),
  key: $('key'),
  keyError: $('key-error'),
  forgetKey: $('forget-key'),
  health: $('health'),
};

/** The current view: what the URL says. */
let view = readView(new URLSearchParams(location.search));
/** Rows shown, newest first: {seq, event}. */
let shown = [];
/** Where "Older" goes on from, or null at the end. */
let olderCursor = null;
/** Incremented by every new load, so answers to an older one are ignored. */
let generation = 0;
let chart = null;
const live = { on: false, paused: false, controller: null, buffer: [], dropped: 0, lastSeq: 0 };

// ---- The view and the URL -------------------------------------------------------------

function readView(params) {
  const fields = [];
  for (const [name, value] of params) if (name.startsWith('payload.')) fields.push([name.slice('payload.'.length), value]);
  return {
    topics: params.getAll('topic').filter((t) => t !== ''),
    source: params.get('source') ?? '',
    since: params.get('since') ?? '',
    until: params.get('until') ?? '',
    q: params.get('q') ?? '',
    fields,
  };
}

/** The filter as GET /events parameters (the same names the URL uses). */
function filterParams(v = view) {
  const params = new URLSearchParams();
  for (const topic of v.topics) params.append('topic', topic);
  if (v.source) params.set('source', v.source);
  if (v.since) params.set('since', v.since);
  if (v.until) params.set('until', v.until);
  if (v.q) params.set('q', v.q);
  for (const [path, value] of v.fields) params.append(`payload.${path}`, value);
  return params;
}

function showView() {
  ui.q.value = view.q;
  ui.topic.value = view.topics.join(', ');
  ui.source.value = view.source;
  const preset = !view.until && (view.since === '' || RANGE_PRESETS.includes(view.since));
  ui.range.value = preset ? view.since : 'custom';
  ui.custom.hidden = preset;
  ui.since.value = view.since;
  ui.until.value = view.until;
  ui.fields.replaceChildren(
    ...view.fields.map(([path, value], i) => {
      const chip = el('span', { class: 'chip' }, `payload.${path} = ${value} `);
      const remove = el('button', { type: 'button', 'aria-label': `Remove filter payload.${path}` }, '✕');
      remove.addEventListener('click', () => navigate({ ...view, fields: view.fields.filter((_, j) => j !== i) }));
      chip.append(remove);
      return chip;
    }),
  );
}

function viewFromForm() {
  const range = ui.range.value;
  return {
    ...view,
    q: ui.q.value.trim(),
    topics: ui.topic.value
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== ''),
    source: ui.source.value.trim(),
    since: range === 'custom' ? ui.since.value.trim() : range,
    until: range === 'custom' ? ui.until.value.trim() : '',
  };
}

/** Moves to another view: a new URL (so Back returns) and a new load. */
function navigate(next) {
  view = next;
  const query = filterParams(view).toString();
  history.pushState(null, '', query === '' ? '/' : `/?${query}`);
  showView();
  void load();
}

// ---- Talking to the API ---------------------------------------------------------------

class ApiError extends Error {}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** GET a JSON answer; on 401 asks for a key and tries again; other errors throw ApiError with the service's message. */
async function api(path) {
  for (;;) {
    const res = await fetch(path, { headers: { Accept: 'application/json', ...authHeaders() } });
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => ({}));
      await askForKey(sessionStorage.getItem(KEY_STORAGE) ? (body.message ?? 'that key was refused') : '');
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const details = (body?.details ?? []).map((d) => `${d.path} ${d.message}`).join('; ');
      throw new ApiError(`${body?.message ?? res.statusText}${details ? `: ${details}` : ''}`);
    }
    return body;
  }
}

let keyPrompt = null;
/** Shows the key dialog once, however many requests are waiting for it. */
function askForKey(error) {
  keyPrompt ??= new Promise((resolve) => {
    ui.keyError.textContent = error;
    ui.key.value = '';
    ui.keyDialog.showModal();
    ui.keyForm.addEventListener(
      'submit',
      () => {
        sessionStorage.setItem(KEY_STORAGE, ui.key.value.trim());
        ui.forgetKey.hidden = false;
        keyPrompt = null;
        resolve();
      },
      { once: true },
    );
  });
  return keyPrompt;
}

// ---- The table ------------------------------------------------------------------------

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** `2025-10-23 12:00:00.123` in the browser's time zone (the date part hides on a narrow window; the title keeps the published text). */
function timeCell(timestamp) {
  const td = el('td', { class: 'time', title: timestamp });
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) {
    td.textContent = timestamp;
    return td;
  }
  const pad = (n, width = 2) => String(n).padStart(width, '0');
  td.append(
    el('span', { class: 'date' }, `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `),
    document.createTextNode(
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`,
    ),
  );
  return td;
}

/** One line of payload: top-level key=value pairs, nested values as JSON. */
function summary(payload) {
  if (payload === undefined) return '';
  const parts = Object.entries(payload).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const line = parts.join('  ');
  return line.length > 160 ? `${line.slice(0, 159)}…` : line;
}

function rowFor(item) {
  const { event } = item;
  const tr = el('tr', { tabindex: '0', 'data-seq': String(item.seq) });
  tr.append(
    timeCell(event.timestamp),
    el('td', {}, event.topic),
    el('td', { class: 'wide' }, event.source),
    el('td', { class: 'wide' }, event.event_id),
    el('td', { class: 'payload' }, summary(event.payload)),
  );
  tr.addEventListener('click', () => openDetail(item));
  return tr;
}

function appendRows(items) {
  shown.push(...items);
  ui.rows.append(...items.map(rowFor));
  trimTable();
  ui.empty.hidden = shown.length > 0;
}

function prependRows(items) {
  shown.unshift(...items);
  ui.rows.prepend(...items.map(rowFor));
  trimTable();
  ui.empty.hidden = shown.length > 0;
}

/** Keeps the table bounded; "Older" then goes on from the last row kept. */
function trimTable() {
  if (shown.length <= TABLE_ROWS_MAX) return;
  shown = shown.slice(0, TABLE_ROWS_MAX);
  while (ui.rows.children.length > TABLE_ROWS_MAX) ui.rows.lastElementChild.remove();
  olderCursor = String(shown[shown.length - 1].seq);
  ui.older.hidden = false;
}

/**
 * Fetches newest-first pages from `cursor` until a page is full or the end is reached. A
 * filtered page may come back short with a next_cursor (the service bounds the rows one
 * request examines): go on, up to SCAN_REQUESTS_MAX requests.
 */
async function fetchOlder(cursor, mine) {
  let wanted = PAGE_SIZE;
  for (let request = 0; request < SCAN_REQUESTS_MAX && wanted > 0; request += 1) {
    const params = filterParams();
    params.set('order', 'desc');
    params.set('limit', String(wanted));
    if (cursor !== null) params.set('after', cursor);
    const page = await api(`/events?${params}`);
    if (mine !== generation) return;
    appendRows(page.events.map((event) => ({ seq: event.seq, event })));
    wanted -= page.events.length;
    cursor = page.next_cursor;
    if (cursor === null) break;
  }
  olderCursor = cursor;
  ui.older.hidden = cursor === null;
  ui.scanStatus.textContent = cursor !== null && wanted > 0 ? `searched back to seq ${cursor}; “Older” searches further` : '';
}

async function load() {
  const mine = ++generation;
  document.body.dataset.state = 'loading';
  stopLive();
  shown = [];
  ui.rows.replaceChildren();
  ui.scanStatus.textContent = '';
  ui.older.hidden = true;
  ui.empty.hidden = true;
  try {
    await Promise.all([fetchOlder(null, mine), loadHistogram(mine)]);
    if (mine !== generation) return;
    ui.empty.hidden = shown.length > 0;
    if (live.on) startLive();
    document.body.dataset.state = 'ready';
  } catch (err) {
    if (mine !== generation) return;
    ui.scanStatus.textContent = err instanceof ApiError ? `The query was refused: ${err.message}` : `Could not load: ${err.message}`;
    document.body.dataset.state = 'error';
  }
}

// ---- Histogram ------------------------------------------------------------------------

async function loadHistogram(mine) {
  const params = filterParams();
  params.set('buckets', '60');
  const histogram = await api(`/events/histogram?${params}`);
  if (mine !== generation) return;
  ui.total.textContent = `${histogram.total.toLocaleString('en')} matching event${histogram.total === 1 ? '' : 's'}`;
  ui.total.dataset.total = String(histogram.total);
  drawHistogram(histogram);
}

function chartColors() {
  const style = getComputedStyle(document.body);
  return {
    bar: style.getPropertyValue('--accent').trim(),
    text: style.getPropertyValue('--fg').trim(),
    grid: style.getPropertyValue('--line').trim(),
  };
}

function drawHistogram(histogram) {
  const xs = histogram.buckets.map((b) => Date.parse(b.start) / 1000);
  const ys = histogram.buckets.map((b) => b.count);
  chart?.destroy();
  chart = null;
  if (xs.length === 0 || typeof uPlot === 'undefined') {
    ui.histogram.replaceChildren();
    return;
  }
  const colors = chartColors();
  const axis = { stroke: colors.text, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid } };
  const width = Math.max(240, ui.histogram.clientWidth);
  chart = new uPlot(
    {
      width,
      height: 140,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: {
        x: { time: true, range: [xs[0], xs[xs.length - 1] + histogram.interval_ms / 1000] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [axis, { ...axis, size: 50 }],
      series: [
        {},
        {
          label: 'events',
          fill: colors.bar,
          stroke: colors.bar,
          paths: uPlot.paths.bars({ size: [0.9, 40], align: 1 }),
          points: { show: false },
        },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, 'x');
            const to = u.posToVal(u.select.left + u.select.width, 'x');
            navigate({ ...view, since: new Date(from * 1000).toISOString(), until: new Date(to * 1000).toISOString() });
          },
        ],
      },
    },
    [xs, ys],
    ui.histogram,
  );
}

// ---- Event detail ---------------------------------------------------------------------

/** Every scalar leaf of a payload with its dotted path. */
function leaves(value, path = [], out = []) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) leaves(inner, [...path, key], out);
  } else if (!Array.isArray(value) && path.length > 0) {
    out.push([path.join('.'), value]);
  }
  return out;
}

function openDetail(item) {
  const { event } = item;
  ui.detailJson.textContent = JSON.stringify(event, null, 2);
  ui.copy.textContent = 'Copy JSON';
  const filters = [
    ['topic', event.topic, () => navigate({ ...view, topics: [event.topic] })],
    ['source', event.source, () => navigate({ ...view, source: event.source })],
    ['event_id', event.event_id, () => navigate({ ...view, q: `"${event.event_id}"` })],
    ...leaves(event.payload ?? {}).map(([path, value]) => [
      `payload.${path}`,
      value,
      () => navigate({ ...view, fields: [...view.fields.filter(([p]) => p !== path), [path, String(value)]] }),
    ]),
  ];
  ui.detailFields.replaceChildren(
    ...filters.map(([name, value, apply]) => {
      const li = el('li');
      const button = el('button', { type: 'button' }, 'Filter');
      button.setAttribute('aria-label', `Filter by ${name} = ${value}`);
      button.addEventListener('click', () => {
        ui.detail.close();
        apply();
      });
      li.append(button, el('code', {}, name), document.createTextNode(' = '), el('span', {}, JSON.stringify(value)));
      return li;
    }),
  );
  ui.detail.showModal();
  ui.detailJson.focus();
}

ui.copy.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(ui.detailJson.textContent);
    ui.copy.textContent = 'Copied';
  } catch {
    // No clipboard permission (plain http on another host): select the text for Ctrl+C.
    getSelection().selectAllChildren(ui.detailJson);
    ui.copy.textContent = 'Selected: press Ctrl+C';
  }
});

// ---- Live tail ------------------------------------------------------------------------

function showLiveStatus(text) {
  const parts = [text];
  if (live.paused) parts.push(`${live.buffer.length} waiting`);
  if (live.dropped > 0) parts.push(`${live.dropped} dropped while paused`);
  ui.liveStatus.textContent = parts.filter(Boolean).join(' · ');
}

function stopLive() {
  live.controller?.abort();
  live.controller = null;
}

/**
 * Follows /events/stream with the current filter after the newest row shown. fetch rather
 * than EventSource, so that the API key goes in the Authorization header; a dropped
 * connection resumes after the last id with Last-Event-ID.
 */
function startLive() {
  stopLive();
  const controller = new AbortController();
  live.controller = controller;
  live.lastSeq = shown.length > 0 ? shown[0].seq : live.lastSeq;
  const params = filterParams();
  params.set('after', String(live.lastSeq));
  const follow = async () => {
    while (!controller.signal.aborted) {
      try {
        const res = await fetch(`/events/stream?${params}`, {
          headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(live.lastSeq), ...authHeaders() },
          signal: controller.signal,
        });
        if (res.status === 401 || res.status === 403) {
          await askForKey('');
          continue;
        }
        if (!res.ok) throw new Error(`live tail answered ${res.status}`);
        showLiveStatus('live');
        await readStream(res.body, controller.signal);
      } catch (err) {
        if (controller.signal.aborted) return;
        showLiveStatus(`reconnecting (${err.message})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  void follow();
}

/** Reads Server-Sent Events: blocks separated by a blank line, with `id:` and `data:` lines. */
async function readStream(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    text += decoder.decode(value, { stream: true });
    let end;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (data !== '') receiveLive(JSON.parse(data));
    }
  }
}

function receiveLive(event) {
  if (event.seq <= live.lastSeq) return;
  live.lastSeq = event.seq;
  const item = { seq: event.seq, event };
  if (live.paused) {
    if (live.buffer.length < PAUSE_BUFFER_MAX) live.buffer.push(item);
    else live.dropped += 1;
  } else {
    prependRows([item]);
  }
  showLiveStatus('live');
}

function setLive(on) {
  live.on = on;
  ui.live.setAttribute('aria-pressed', String(on));
  ui.live.textContent = on ? 'Stop live tail' : 'Live tail';
  ui.pause.disabled = !on;
  if (on) startLive();
  else {
    stopLive();
    setPaused(false);
    ui.liveStatus.textContent = '';
  }
}

function setPaused(paused) {
  live.paused = paused;
  ui.pause.setAttribute('aria-pressed', String(paused));
  ui.pause.textContent = paused ? 'Resume' : 'Pause';
  if (!paused && live.buffer.length > 0) {
    prependRows(live.buffer.reverse());
    live.buffer = [];
  }
  if (live.on) showLiveStatus(paused ? 'paused' : 'live');
}

// ---- Header: state and counters -------------------------------------------------------

let lastStats = null;
async function refreshHeader() {
  try {
    const health = await fetch('/health').then((res) => res.json());
    ui.health.textContent = health.status;
    ui.health.dataset.status = health.status;
    const stats = await api('/stats');
    const now = Date.now();
    $('c-received').textContent = stats.received.toLocaleString('en');
    $('c-unique').textContent = stats.unique_processed.toLocaleString('en');
    $('c-duplicates').textContent = stats.duplicate_dropped.toLocaleString('en');
    $('c-conflicts').textContent = (stats.conflicts ?? 0).toLocaleString('en');
    if (lastStats !== null) $('c-rate').textContent = (((stats.received - lastStats.received) * 1000) / (now - lastStats.at)).toFixed(1);
    lastStats = { received: stats.received, at: now };
    ui.topics.replaceChildren(...(stats.topics ?? []).map((topic) => el('option', { value: topic })));
  } catch {
    ui.health.textContent = 'unreachable';
    ui.health.dataset.status = 'failed';
  }
}

// ---- Controls and keys ----------------------------------------------------------------

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  navigate(viewFromForm());
});
ui.range.addEventListener('change', () => {
  ui.custom.hidden = ui.range.value !== 'custom';
  if (ui.range.value === 'custom') ui.since.focus();
  else navigate(viewFromForm());
});
ui.field.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter') return;
  e.preventDefault();
  const match = /^(?:payload\.)?([^=\s]+)\s*=\s*(.*)$/.exec(ui.field.value.trim());
  if (match === null) {
    ui.scanStatus.textContent = 'A field filter is path=value, for example level=error or user.id=123';
    return;
  }
  ui.field.value = '';
  navigate({ ...viewFromForm(), fields: [...view.fields, [match[1], match[2]]] });
});
ui.older.addEventListener('click', () => {
  const mine = generation;
  ui.older.disabled = true;
  fetchOlder(olderCursor, mine)
    .catch((err) => (ui.scanStatus.textContent = `Could not load: ${err.message}`))
    .finally(() => (ui.older.disabled = false));
});
ui.live.addEventListener('click', () => setLive(!live.on));
ui.pause.addEventListener('click', () => setPaused(!live.paused));
ui.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.forgetKey.hidden = true;
});
ui.forgetKey.hidden = sessionStorage.getItem(KEY_STORAGE) === null;
// The key is needed to go on: Escape does not dismiss its dialog.
ui.keyDialog.addEventListener('cancel', (e) => e.preventDefault());
ui.rows.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter') return;
  const seq = Number(e.target.closest('tr')?.dataset.seq);
  const item = shown.find((row) => row.seq === seq);
  if (item) openDetail(item);
});
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector('dialog[open]')) return;
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement;
  if (typing) return;
  if (e.key === '/') {
    e.preventDefault();
    ui.q.focus();
  } else if (e.key === 'j' || e.key === 'k') {
    const rows = [...ui.rows.children];
    const at = rows.indexOf(document.activeElement);
    const next = rows[Math.max(0, Math.min(rows.length - 1, at + (e.key === 'j' ? 1 : -1)))];
    next?.focus();
  } else if (e.key === 'l') {
    setLive(!live.on);
  }
});
window.addEventListener('popstate', () => {
  view = readView(new URLSearchParams(location.search));
  showView();
  void load();
});
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => chart?.setSize({ width: Math.max(240, ui.histogram.clientWidth), height: 140 }), 100);
});

showView();
void load();
void refreshHeader();
setInterval(refreshHeader, 5000);
