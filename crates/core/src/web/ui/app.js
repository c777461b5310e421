// rpm2 dashboard: one server-sent-events stream (/events) feeds the table, charts, details and logs;
// actions are POSTs carrying the token in a header. No dependencies, no build step.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const AUTH = document.body.dataset.auth === 'token';
  const WINDOW_MS = 5 * 60 * 1000; // chart span
  const MAX_POINTS = 320;
  const MAX_LOGS = 1000;
  const STALL_MS = 40000; // no byte for this long (the server pings every 15 s): reconnect

  const S = {
    procs: new Map(), // pm_id -> {pm_id, name, pid, pm2_env, cpu, memory}
    hist: new Map(), // pm_id -> [[t, cpu, mem]]
    dhist: [], // [[t, rss, cpu]]
    logs: [],
    sel: null,
    offset: 0, // server clock - our clock (ms)
    actions: false,
    retry: 1000,
    token: null,
    bumped: new Set(),
  };
  try {
    S.token = sessionStorage.getItem('rpm2-token');
    const sel = sessionStorage.getItem('rpm2-sel');
    if (sel !== null && sel !== '') S.sel = Number(sel);
  } catch (e) { /* storage off: memory only */ }

  // ------------------------------------------------------------------ formatting
  function fmtMem(b) {
    if (!(b > 0)) return '0b';
    const u = ['b', 'kb', 'mb', 'gb', 'tb'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(Math.round(b)) : b.toFixed(b >= 100 ? 0 : 1)) + u[i];
  }
  function fmtCpu(c) { return (Number(c) || 0).toFixed(c >= 100 ? 0 : 1) + '%'; }
  function fmtDur(ms) {
    if (!(ms > 0)) return '0s';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm';
    const h = Math.floor(m / 60);
    if (h < 24) return h + 'h';
    return Math.floor(h / 24) + 'D';
  }
  function fmtTime(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 8);
  }
  function fmtVal(v) {
    if (v === null || v === undefined) return 'N/A';
    if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ') : 'N/A';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function now() { return Date.now() + S.offset; }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function statusClass(st) { return 'status st-' + String(st || 'stopped').split(' ')[0]; }
  function running(p) { const st = p.pm2_env.status; return st === 'online' || st === 'launching'; }

  // ------------------------------------------------------------------ charts (canvas)
  function fit(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(10, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(10, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return dpr;
  }
  // A round axis maximum: 1, 2, 2.5 or 5 times a power of ten of `scale` units (MiB for memory).
  function niceMax(v, floor, scale) {
    scale = scale || 1;
    if (scale !== 1) return niceMax(v / scale, floor / scale) * scale;
    const m = Math.max(v, floor);
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= m) return k * p;
    return 10 * p;
  }
  // pts: [[t, v]]; opts: {color, fmt, floor}
  function chart(canvas, pts, opts) {
    const dpr = fit(canvas);
    const ctx = canvas.getContext('2d');
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const padL = 56 * dpr, padR = 10 * dpr, padT = 10 * dpr, padB = 20 * dpr;
    // The window grows with the history (at least a minute, at most WINDOW_MS).
    const t1 = now();
    const first = pts.length ? pts[0][0] : t1;
    const span = Math.min(WINDOW_MS, Math.max(60000, t1 - first));
    const t0 = t1 - span;
    const vis = pts.filter((p) => p[0] >= t0 - 2000);
    const max = niceMax(vis.reduce((m, p) => Math.max(m, p[1]), 0), opts.floor, opts.scale);
    const x = (t) => padL + ((t - t0) / span) * (W - padL - padR);
    const y = (v) => H - padB - (v / max) * (H - padT - padB);
    ctx.font = 11 * dpr + 'px ui-sans-serif, system-ui, sans-serif';
    ctx.fillStyle = '#6b788a';
    ctx.strokeStyle = '#223042';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(W - padR, yy); ctx.stroke();
      ctx.fillText(opts.fmt(v), padL - 6 * dpr, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const step = [10000, 15000, 30000, 60000].find((s) => span / s <= 6) || 60000;
    for (let ago = 0; ago <= span + 1; ago += step) {
      const label = ago === 0 ? 'now' : step >= 60000 ? '-' + ago / 60000 + 'm' : '-' + ago / 1000 + 's';
      const xx = x(t1 - ago);
      ctx.fillText(label, Math.max(padL + 10 * dpr, Math.min(xx, W - padR - 12 * dpr)), H - padB + 5 * dpr);
    }
    if (vis.length < 2) return;
    ctx.save();
    ctx.beginPath(); ctx.rect(padL, 0, W - padL - padR, H); ctx.clip();
    const grad = ctx.createLinearGradient(0, padT, 0, H - padB);
    grad.addColorStop(0, opts.color + '55');
    grad.addColorStop(1, opts.color + '05');
    ctx.beginPath();
    ctx.moveTo(x(vis[0][0]), y(0));
    for (const p of vis) ctx.lineTo(x(p[0]), y(p[1]));
    ctx.lineTo(x(vis[vis.length - 1][0]), y(0));
    ctx.closePath();
    ctx.fillStyle = grad;
    ctx.fill();
    ctx.beginPath();
    vis.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    ctx.strokeStyle = opts.color;
    ctx.lineWidth = 1.6 * dpr;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.restore();
  }
  function spark(canvas, vals, color, floor) {
    const dpr = window.devicePixelRatio || 1;
    const cw = Number(canvas.getAttribute('width')) || 80, ch = Number(canvas.getAttribute('height')) || 22;
    if (!canvas.dataset.fit) {
      canvas.style.width = cw + 'px'; canvas.style.height = ch + 'px';
      canvas.width = cw * dpr; canvas.height = ch * dpr; canvas.dataset.fit = '1';
    }
    const ctx = canvas.getContext('2d');
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    if (vals.length < 2) return;
    const max = Math.max(floor, ...vals) * 1.1;
    const step = W / (60 - 1);
    const off = W - (vals.length - 1) * step;
    ctx.beginPath();
    vals.forEach((v, i) => {
      const xx = off + i * step, yy = H - 2 * dpr - (v / max) * (H - 4 * dpr);
      i ? ctx.lineTo(xx, yy) : ctx.moveTo(xx, yy);
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.3 * dpr;
    ctx.stroke();
  }

  // ------------------------------------------------------------------ the table
  const rows = new Map(); // pm_id -> {tr, cells}
  const COLS = ['name', 'id', 'mode', 'status', 'pid', 'restarts', 'uptime', 'cpu', 'cspark', 'mem', 'mspark', 'watch'];
  function rowFor(p) {
    let r = rows.get(p.pm_id);
    if (r) return r;
    const tr = el('tr');
    tr.dataset.id = p.pm_id;
    const cells = {};
    for (const c of COLS) {
      const td = el('td', 'c-' + c);
      if (['id', 'pid', 'restarts', 'uptime', 'cpu', 'mem'].includes(c)) td.classList.add('num');
      if (c === 'cspark' || c === 'mspark') td.appendChild(el('canvas', 'spark')).setAttribute('width', '80');
      cells[c] = td;
      tr.appendChild(td);
    }
    cells.cspark.firstChild.setAttribute('height', '22');
    cells.mspark.firstChild.setAttribute('height', '22');
    tr.addEventListener('click', () => select(p.pm_id));
    r = { tr, cells };
    rows.set(p.pm_id, r);
    return r;
  }
  function setText(td, t) { if (td.textContent !== t) td.textContent = t; }
  function renderTable() {
    const tbody = document.querySelector('#procs tbody');
    const list = [...S.procs.values()].sort((a, b) => a.pm_id - b.pm_id);
    for (const [id, r] of rows) if (!S.procs.has(id)) { r.tr.remove(); rows.delete(id); }
    list.forEach((p, i) => {
      const r = rowFor(p);
      if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
      const e = p.pm2_env, c = r.cells;
      if (!c.name.firstChild || c.name.dataset.v !== p.name + '|' + e.namespace) {
        c.name.textContent = p.name;
        if (e.namespace && e.namespace !== 'default') c.name.appendChild(el('span', 'ns', e.namespace));
        c.name.dataset.v = p.name + '|' + e.namespace;
      }
      setText(c.id, String(p.pm_id));
      setText(c.mode, e.exec_mode === 'cluster_mode' ? 'cluster' : 'fork');
      const st = e.status || 'stopped';
      if (!c.status.firstChild) c.status.appendChild(el('span'));
      c.status.firstChild.className = statusClass(st);
      c.status.firstChild.textContent = st;
      setText(c.pid, p.pid ? String(p.pid) : 'N/A');
      setText(c.restarts, String(e.restart_time || 0));
      if (S.bumped.has(p.pm_id)) { S.bumped.delete(p.pm_id); c.restarts.classList.remove('bump'); void c.restarts.offsetWidth; c.restarts.classList.add('bump'); }
      setText(c.uptime, running(p) && e.pm_uptime ? fmtDur(now() - e.pm_uptime) : '0');
      setText(c.cpu, fmtCpu(running(p) ? p.cpu : 0));
      setText(c.mem, fmtMem(running(p) ? p.memory : 0));
      const w = !!e.watch;
      setText(c.watch, w ? '✔' : '✘');
      c.watch.className = 'c-watch ' + (w ? 'yes' : 'no');
      r.tr.classList.toggle('sel', p.pm_id === S.sel);
      const h = (S.hist.get(p.pm_id) || []).slice(-60);
      spark(c.cspark.firstChild, h.map((x) => x[1]), '#4fa3ff', 5);
      spark(c.mspark.firstChild, h.map((x) => x[2]), '#b48cff', 1 << 20);
    });
    $('empty').hidden = list.length > 0;
  }

  // ------------------------------------------------------------------ the selected process
  const DETAILS = [
    ['status', (p) => p.pm2_env.status],
    ['name', (p) => p.name],
    ['namespace', (p) => p.pm2_env.namespace],
    ['version', (p) => p.pm2_env.version],
    ['restarts', (p) => p.pm2_env.restart_time],
    ['uptime', (p) => (running(p) && p.pm2_env.pm_uptime ? fmtDur(now() - p.pm2_env.pm_uptime) : '0')],
    ['pid', (p) => p.pid || 'N/A'],
    ['script path', (p) => p.pm2_env.pm_exec_path],
    ['script args', (p) => p.pm2_env.args],
    ['error log path', (p) => p.pm2_env.pm_err_log_path],
    ['out log path', (p) => p.pm2_env.pm_out_log_path],
    ['pid path', (p) => p.pm2_env.pm_pid_path],
    ['interpreter', (p) => p.pm2_env.exec_interpreter],
    ['interpreter args', (p) => p.pm2_env.node_args],
    ['script id', (p) => p.pm_id],
    ['exec cwd', (p) => p.pm2_env.pm_cwd],
    ['exec mode', (p) => p.pm2_env.exec_mode],
    ['watch & reload', (p) => (p.pm2_env.watch ? '✔' : '✘')],
    ['unstable restarts', (p) => p.pm2_env.unstable_restarts],
    ['created at', (p) => (p.pm2_env.created_at ? new Date(p.pm2_env.created_at).toISOString() : 'N/A')],
    ['last restart reason', (p) => p.pm2_env.restart_reason, true],
    ['watch paused', (p) => p.pm2_env.watch_paused, true],
    ['last exit code', (p) => p.pm2_env.exit_code, true],
    ['kill_timeout', (p) => p.pm2_env.kill_timeout, true],
    ['max_memory_restart', (p) => p.pm2_env.max_memory_restart, true],
    ['cron_restart', (p) => p.pm2_env.cron_restart, true],
    ['pm_log_path', (p) => p.pm2_env.pm_log_path, true],
  ];
  function kvRows(tbody, pairs) {
    while (tbody.rows.length > pairs.length) tbody.deleteRow(-1);
    pairs.forEach(([k, v], i) => {
      const tr = tbody.rows[i] || tbody.insertRow();
      if (!tr.cells.length) { tr.insertCell(); tr.insertCell(); }
      setText(tr.cells[0], k);
      setText(tr.cells[1], v);
    });
  }
  function metricPairs(mon) {
    const out = [];
    if (!mon || typeof mon !== 'object') return out;
    for (const [k, m] of Object.entries(mon)) {
      let v = m, unit = '';
      if (m && typeof m === 'object' && !Array.isArray(m) && 'value' in m) { v = m.value; unit = m.unit || ''; }
      let s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : fmtVal(v);
      if (unit) s += ' ' + unit;
      out.push([k, s]);
    }
    return out;
  }
  function renderDetail() {
    const p = S.sel === null ? null : S.procs.get(S.sel);
    $('detail').hidden = false;
    $('logs-of').textContent = p ? '· ' + p.name : '· all processes';
    if (!p) {
      $('sel-name').textContent = 'Select a process';
      $('sel-status').textContent = '';
      $('sel-status').className = '';
      for (const b of document.querySelectorAll('#actions button')) b.disabled = true;
      kvRows($('details').tBodies[0], []);
      kvRows($('metrics').tBodies[0], []);
      chart($('cpu-chart'), [], { color: '#4fa3ff', fmt: fmtCpu, floor: 5 });
      chart($('mem-chart'), [], { color: '#b48cff', fmt: fmtMem, floor: 1 << 20, scale: 1 << 20 });
      return;
    }
    $('sel-name').textContent = p.name + ' (' + p.pm_id + ')';
    $('sel-status').textContent = p.pm2_env.status;
    $('sel-status').className = statusClass(p.pm2_env.status);
    const up = running(p);
    for (const b of document.querySelectorAll('#actions button')) {
      const a = b.dataset.action;
      const moot = (a === 'start' && up) || ((a === 'stop' || a === 'reload') && !up);
      b.disabled = !S.actions || b.classList.contains('busy') || moot;
      b.title = S.actions ? '' : 'Actions need the server started with --token';
    }
    $('actions-note').hidden = S.actions;
    kvRows($('details').tBodies[0], DETAILS.filter((d) => !d[2] || (d[1](p) !== undefined && d[1](p) !== null))
      .map((d) => [d[0], fmtVal(d[1](p))]));
    const mp = metricPairs(p.pm2_env.axm_monitor);
    const acts = (p.pm2_env.axm_actions || []).map((a) => a.action_name).filter(Boolean);
    if (acts.length) mp.push(['actions', acts.join(', ')]);
    kvRows($('metrics').tBodies[0], mp);
    $('metrics-none').hidden = mp.length > 0;
    const h = S.hist.get(p.pm_id) || [];
    chart($('cpu-chart'), h.map((x) => [x[0], x[1]]), { color: '#4fa3ff', fmt: fmtCpu, floor: 5 });
    chart($('mem-chart'), h.map((x) => [x[0], x[2]]), { color: '#b48cff', fmt: fmtMem, floor: 1 << 20, scale: 1 << 20 });
    const last = h[h.length - 1];
    $('cpu-now').textContent = last && running(p) ? fmtCpu(last[1]) : '';
    $('mem-now').textContent = last && running(p) ? fmtMem(last[2]) : '';
  }
  function select(id) {
    S.sel = S.sel === id ? null : id;
    try { sessionStorage.setItem('rpm2-sel', S.sel === null ? '' : String(S.sel)); } catch (e) { /* ignore */ }
    renderTable();
    renderDetail();
    renderLogs(true);
  }

  // ------------------------------------------------------------------ logs
  function logLine(l) {
    if (l.note) return el('div', 'll note', l.note);
    const d = el('div', 'll' + (l.err ? ' err' : ''));
    d.dataset.id = l.id;
    d.appendChild(el('span', 't', fmtTime(l.at || now())));
    if (S.sel === null) d.appendChild(el('span', 'n', l.name));
    if (l.err) d.appendChild(el('span', 'tag', 'ERR'));
    d.appendChild(document.createTextNode(l.text));
    return d;
  }
  function shown(l) { return l.note || S.sel === null || l.id === S.sel; }
  function renderLogs(all, fresh) {
    const box = $('logs');
    const stick = $('follow').checked;
    if (all) {
      box.textContent = '';
      const frag = document.createDocumentFragment();
      for (const l of S.logs.filter(shown).slice(-400)) frag.appendChild(logLine(l));
      box.appendChild(frag);
    } else {
      for (const l of fresh.filter(shown)) box.appendChild(logLine(l));
      while (box.childNodes.length > 600) box.removeChild(box.firstChild);
    }
    if (stick) box.scrollTop = box.scrollHeight;
  }
  let pendingLogs = [];
  function addLog(d) {
    const text = String(d.text || '').replace(/\n$/, '');
    const parts = d.note ? [null] : text.split('\n');
    for (const t of parts) {
      const l = d.note ? { note: d.note } : { id: d.id, name: d.name, err: !!d.err, at: d.at, text: t };
      S.logs.push(l);
      pendingLogs.push(l);
    }
    if (S.logs.length > MAX_LOGS) S.logs.splice(0, S.logs.length - MAX_LOGS);
    // A hidden tab draws nothing (no animation frames): keep only what the box can hold.
    if (pendingLogs.length > 600) pendingLogs.splice(0, pendingLogs.length - 600);
  }

  // ------------------------------------------------------------------ the stream
  let dirty = false;
  function frame(ev, d) {
    switch (ev) {
      case 'hello':
        S.procs.clear(); S.hist.clear(); S.dhist = []; S.logs = []; pendingLogs = [];
        S.actions = !!d.actions;
        if (d.retry) S.retry = d.retry;
        $('host').textContent = (d.host || '') + ' · rpm2 ' + (d.version || '');
        $('mode').textContent = S.actions ? '' : 'read-only';
        renderLogs(true);
        break;
      case 'daemon':
        if (d.up) { banner(null); $('d-pid').textContent = d.pid || '–'; } else banner('The rpm2 daemon is not reachable (' + (d.error || 'no answer') + '): retrying…');
        setConn(d.up ? 'live' : 'down');
        break;
      case 'list': {
        if (d.at) S.offset = d.at - Date.now();
        const seen = new Set();
        for (const p of d.processes || []) {
          const old = S.procs.get(p.pm_id);
          p.cpu = old ? old.cpu : 0; p.memory = old ? old.memory : 0;
          if (old && (p.pm2_env.restart_time || 0) > (old.pm2_env.restart_time || 0)) S.bumped.add(p.pm_id);
          S.procs.set(p.pm_id, p);
          seen.add(p.pm_id);
        }
        for (const id of [...S.procs.keys()]) if (!seen.has(id)) { S.procs.delete(id); S.hist.delete(id); }
        if (S.sel !== null && !S.procs.has(S.sel) && (d.processes || []).length) S.sel = null;
        dirty = true;
        break;
      }
      case 'sample': {
        S.offset = d.t - Date.now();
        for (const [id, cpu, mem, mon] of d.p || []) {
          const p = S.procs.get(id);
          if (p) { p.cpu = cpu; p.memory = mem; if (mon) p.pm2_env.axm_monitor = mon; }
          let h = S.hist.get(id);
          if (!h) S.hist.set(id, (h = []));
          h.push([d.t, p && !running(p) ? 0 : cpu, p && !running(p) ? 0 : mem]);
          if (h.length > MAX_POINTS) h.splice(0, h.length - MAX_POINTS);
        }
        if (d.daemon) {
          S.dhist.push([d.t, d.daemon.memory, d.daemon.cpu]);
          if (S.dhist.length > MAX_POINTS) S.dhist.shift();
          $('d-pid').textContent = d.daemon.pid || '–';
          $('d-mem').textContent = fmtMem(d.daemon.memory);
          $('d-cpu').textContent = fmtCpu(d.daemon.cpu);
        }
        dirty = true;
        break;
      }
      case 'event': {
        const p = S.procs.get(d.id);
        if (p) {
          if (d.status) p.pm2_env.status = d.status;
          if (typeof d.restart_time === 'number') {
            if (d.restart_time > (p.pm2_env.restart_time || 0)) S.bumped.add(d.id);
            p.pm2_env.restart_time = d.restart_time;
          }
          if (d.pm_uptime) p.pm2_env.pm_uptime = d.pm_uptime;
          dirty = true;
        }
        break;
      }
      case 'log':
        addLog(d);
        break;
      default:
    }
  }
  function render() {
    if (pendingLogs.length) { renderLogs(false, pendingLogs); pendingLogs = []; }
    if (!dirty) return;
    dirty = false;
    renderTable();
    renderDetail();
    spark($('d-spark'), S.dhist.slice(-60).map((x) => x[1]), '#3ecf8e', 1 << 20);
  }
  // Frames arrive in bursts (a replay of minutes of history): draw once per animation frame.
  let raf = 0;
  function schedule() { if (!raf) raf = requestAnimationFrame(() => { raf = 0; render(); }); }
  setInterval(() => { dirty = true; schedule(); }, 1000); // uptimes and the chart's time axis move on

  function parseBlock(block) {
    let ev = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? '' : line.slice(i + 1);
      if (v[0] === ' ') v = v.slice(1);
      if (k === 'event') ev = v;
      else if (k === 'data') data.push(v);
      else if (k === 'retry' && /^\d+$/.test(v)) S.retry = Number(v);
    }
    if (!data.length) return;
    try { frame(ev, JSON.parse(data.join('\n'))); } catch (e) { console.error('rpm2: bad frame', ev, e); }
  }

  // EventSource cannot send the token (no headers) and gives up for good on an HTTP error (a 503
  // while the server restarts), so the stream is read with fetch, the same format and retry rule.
  let gen = 0;
  async function connect() {
    const my = ++gen;
    const ctrl = new AbortController();
    let stall = setTimeout(() => ctrl.abort(), STALL_MS);
    const alive = () => { clearTimeout(stall); stall = setTimeout(() => ctrl.abort(), STALL_MS); };
    try {
      const headers = { Accept: 'text/event-stream' };
      if (S.token) headers.Authorization = 'Bearer ' + S.token;
      const r = await fetch('/events', { headers, cache: 'no-store', signal: ctrl.signal });
      if (r.status === 401) {
        clearTimeout(stall);
        setConn('down');
        askToken(S.token ? 'The server refused this token.' : '');
        return;
      }
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      setConn('live');
      banner(null);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        alive();
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          parseBlock(buf.slice(0, i).replace(/\r/g, ''));
          buf = buf.slice(i + 2);
        }
        schedule();
      }
    } catch (e) { /* lost: retry below */ }
    clearTimeout(stall);
    if (my !== gen) return;
    setConn('wait');
    banner('Lost the connection to the rpm2 web server: reconnecting…');
    setTimeout(() => { if (my === gen) connect(); }, S.retry);
  }

  function setConn(s) {
    const c = $('conn');
    c.className = 'pill ' + (s === 'live' ? 'pill-live' : s === 'down' ? 'pill-down' : 'pill-wait');
    c.textContent = s === 'live' ? 'live' : s === 'down' ? 'daemon down' : 'reconnecting…';
    c.dataset.state = s;
  }
  function banner(text) {
    const b = $('banner');
    b.hidden = !text;
    b.textContent = text || '';
  }
  let toastTimer = 0;
  function toast(text, bad) {
    const t = $('toast');
    t.textContent = text;
    t.className = bad ? 'bad' : '';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 2500);
  }

  // ------------------------------------------------------------------ token and actions
  function askToken(why) {
    const dlg = $('token-dlg');
    $('token-why').hidden = !why;
    $('token-why').textContent = why || '';
    $('token-input').value = '';
    if (!dlg.open) dlg.showModal();
    $('token-input').focus();
  }
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('token-input').value.trim();
    if (!v) return;
    S.token = v;
    try { sessionStorage.setItem('rpm2-token', v); } catch (err) { /* memory only */ }
    $('token-dlg').close();
    connect();
  });
  $('token-btn').addEventListener('click', () => askToken(''));
  $('token-btn').hidden = !AUTH;

  async function act(action, btn) {
    const p = S.procs.get(S.sel);
    if (!p) return;
    btn.classList.add('busy');
    btn.disabled = true;
    try {
      const headers = {};
      if (S.token) headers.Authorization = 'Bearer ' + S.token;
      const r = await fetch('/api/' + action + '/' + p.pm_id, { method: 'POST', headers, cache: 'no-store' });
      let body = {};
      try { body = await r.json(); } catch (e) { /* not JSON */ }
      if (r.status === 401) { askToken('The server refused this token.'); }
      if (!r.ok) toast(action + ' ' + p.name + ': ' + (body.err || 'HTTP ' + r.status), true);
      else toast(action + ' ' + p.name + ': done');
    } catch (e) {
      toast(action + ' ' + p.name + ': the server did not answer', true);
    } finally {
      btn.classList.remove('busy');
      dirty = true;
      schedule();
    }
  }
  for (const b of document.querySelectorAll('#actions button')) b.addEventListener('click', () => act(b.dataset.action, b));
  window.addEventListener('resize', () => { dirty = true; schedule(); });

  renderDetail();
  if (AUTH && !S.token) askToken('');
  else connect();
})();
