#!/usr/bin/env python3
"""Builds the rpm2 vs pm2 table from the raw results (JSON lines written by bt.py).

usage: report.py RAW_JSONL META_JSON OUT_MD OUT_JSON
Prints the markdown to stdout as well.
"""
import json
import sys
import time

# key, label, unit, target ratio (rpm2/pm2, lower is better) or None, target text, script
METRICS = [
    ('rss_idle_mib', 'daemon RSS, idle (0 apps)', 'MiB', 1 / 8, '≤ 1/8 (#2)', 'daemon-rss'),
    ('rss_10apps_mib', 'daemon RSS, 10 apps', 'MiB', 1 / 8, '≤ 1/8 (#2)', 'daemon-rss'),
    ('list_10apps_ms', '`list` wall time, 10 apps', 'ms', 1 / 10, '≤ 1/10 (#2)', 'cli-list'),
    ('start_ms', '`start` wall time, one app', 'ms', 1 / 3, '≤ 1/3 (#2)', 'cli-start'),
    ('crash_restart_ms', 'crash → restart (exit → new instance\'s first line)', 'ms', 1.0,
     '≤ 1, no slower (#2)', 'crash-restart'),
    ('log_burst_ms', '{lines} log lines: burst → all on disk', 'ms', 1 / 3, '≤ 1/3, ≥ 3x faster (#5)', 'log-burst'),
    ('log_burst_cpu_ms', '{lines} log lines: daemon CPU', 'ms', 1 / 3, '≤ 1/3 (#5)', 'log-burst'),
    ('idle_cpu_ms', 'daemon CPU over {idle}s idle, 10 apps', 'ms', 1 / 5, '≤ 1/5 (#8 asks 60 s)', 'idle-cpu'),
    ('watch_restart_ms', 'file change → new instance\'s first line (watch_delay 0)', 'ms', 1.0,
     '≤ 1, no slower (#6)', 'watch'),
    ('watch_idle_cpu_ms', 'daemon CPU, 10 apps watching a large tree, nothing changing', 'ms', 1 / 5, '≤ 1/5 (#6)',
     'watch'),
    # informational
    ('jlist_10apps_ms', '`jlist` wall time, 10 apps', 'ms', None, '—', 'cli-list'),
    ('list_direct_ms', '`list`, 10 apps, rpm2d run directly (no bin/rpm2 launcher)', 'ms', None, '—', 'cli-list'),
    ('list_installed_ms', '`list`, 10 apps, as `npm install -g` lays it out (symlink, launcher, platform package)',
     'ms', None, '— (#15: as fast as the checkout)', 'cli-list'),
    ('delete_ms', '`delete` wall time, one app', 'ms', None, '—', 'cli-start'),
    ('web_root_ms', '`GET /` of the web API, 50 apps', 'ms', None, '— (#8; pm2 7 has none)', 'web-api'),
    ('web_metrics_ms', '`GET /metrics`, 50 apps', 'ms', None, '— (#8)', 'web-api'),
    ('logs_tail_ms', '`logs --nostream --lines 1000` on a 100 MB log', 'ms', None, '— (#5: must not read the whole file)', 'logs-tail'),
    ('crash_restart_origin_ms', 'crash → new node process origin (excl. node boot)', 'ms', None, '—',
     'crash-restart'),
    ('idle_wakeups_per_s', 'daemon context switches per second, idle, 10 apps', '/s', None, '—', 'idle-cpu'),
    ('probes_cpu_ms_per_s', 'daemon CPU per second, 100 apps probed every second (http liveness + tcp readiness)',
     'ms', None, '— (#22: a few ms; pm2 7 has no probes)', 'probes'),
    ('log_burst_daemon_syscalls', '{lines} log lines: daemon read+write syscalls', 'count', None, '—', 'log-burst'),
    # what an app pays for its metrics: rpm2's preload vs pm2's @pm2/io, and rpm2 with --no-pmx (#22)
    ('app_boot_ms', 'app start-up (process start → first line), with metrics (rpm2 preload / pm2 agent)', 'ms',
     None, '—', 'preload'),
    ('app_boot_nopmx_ms', 'app start-up (process start → first line), rpm2 `--no-pmx`', 'ms', None, '—', 'preload'),
    ('app_rss_mib', 'idle app RSS, with metrics (rpm2 preload / pm2 agent)', 'MiB', None, '—', 'preload'),
    ('app_rss_nopmx_mib', 'idle app RSS, rpm2 `--no-pmx`', 'MiB', None, '—', 'preload'),
    ('app_idle_cpu_ms', 'idle app CPU per second, with metrics', 'ms', None, '—', 'preload'),
    ('app_idle_cpu_nopmx_ms', 'idle app CPU per second, rpm2 `--no-pmx`', 'ms', None, '—', 'preload'),
    ('app_wakeups_per_s', 'idle app context switches per second, with metrics', '/s', None, '—', 'preload'),
    ('app_wakeups_nopmx_per_s', 'idle app context switches per second, rpm2 `--no-pmx`', '/s', None, '—', 'preload'),
]
TOOLS = ('rpm2', 'pm2')
RPM2_ONLY = {'list_direct_ms', 'list_installed_ms', 'probes_cpu_ms_per_s', 'app_boot_nopmx_ms', 'app_rss_nopmx_mib',
             'app_idle_cpu_nopmx_ms', 'app_wakeups_nopmx_per_s'}


def fmt(v, unit):
    if v is None:
        return 'n/a'
    if unit == 'count':
        return '%d' % round(v)
    if unit == 'MiB':
        return '%.1f MiB' % v
    if v == 0:
        return '0 ' + unit
    if abs(v) >= 100:
        return '%.0f %s' % (v, unit)
    if abs(v) >= 10:
        return '%.1f %s' % (v, unit)
    return '%.2f %s' % (v, unit)


def main():
    raw_path, meta_path, out_md, out_json = sys.argv[1:5]
    raw = {}
    try:
        for line in open(raw_path):
            line = line.strip()
            if line:
                r = json.loads(line)
                raw[(r['metric'], r['tool'])] = r   # a later entry for the same pair wins
    except OSError:
        pass
    meta = json.load(open(meta_path))
    params = meta.get('params', {})
    scripts = meta.get('scripts', {})
    tools = meta.get('tools', list(TOOLS))
    n_lines = int(params.get('LOG_LINES', 200000))
    subst = {'lines': '%dk' % (n_lines // 1000) if n_lines % 1000 == 0 else str(n_lines),
             'idle': params.get('IDLE_S', 30)}

    rows, out_metrics, notes = [], [], []
    ran = meta.get('only')
    for key, label, unit, target, ttext, script in METRICS:
        if ran is not None and script not in ran:
            continue
        label = label.format(**subst)
        entry = {'key': key, 'label': label, 'unit': unit, 'target_ratio': target, 'target': ttext}
        cells = {}
        for t in TOOLS:
            r = raw.get((key, t))
            if r is None and key in RPM2_ONLY and t != 'rpm2':
                entry[t] = {}
                cells[t] = '—'
                continue
            if r is None:
                why = 'not measured'
                if t not in tools:
                    why = meta.get('missing', {}).get(t, 'tool not run')
                elif script in scripts and scripts[script].get('rc', 0) != 0:
                    why = 'script %s exited with rc %s' % (script, scripts[script]['rc'])
                r = {'error': why}
            entry[t] = r
            if 'error' in r:
                cells[t] = 'n/a (%s)' % r['error'] if len(r['error']) <= 60 else 'n/a ¹'
                notes.append('%s, %s: n/a: %s' % (label, t, r['error']))
            else:
                cells[t] = fmt(r['median'], unit)
                if r.get('note') and ('WRONG' in r['note'] or 'stopped early' in r['note'] or 'helper' in r['note']
                                      or 'only' in r['note'] or 'rotated' in r['note']):
                    notes.append('%s, %s: %s' % (label, t, r['note']))
        a, b = entry['rpm2'].get('median'), entry['pm2'].get('median')
        ratio = verdict = None
        if a is not None and b is not None:
            if b > 0:
                ratio = a / b
            elif a == 0:
                ratio = None
        if ratio is not None and target is not None:
            verdict = 'PASS' if ratio <= target + 1e-9 else 'FAIL'
            if 'WRONG' in (entry['rpm2'].get('note') or ''):
                verdict = 'FAIL'
        elif target is not None:
            verdict = 'n/a'
        entry['ratio'] = ratio
        entry['verdict'] = verdict
        out_metrics.append(entry)
        if key in RPM2_ONLY:
            rtxt = '—'
        elif ratio is None:
            rtxt = 'n/a' + (' (pm2 = 0)' if b == 0 else '')
        else:
            rtxt = '%.3f' % ratio if ratio < 1 else '%.2f' % ratio
        rows.append('| %s | %s | %s | %s | %s | %s |' % (label, cells['rpm2'], cells['pm2'], rtxt, ttext,
                                                       '**%s**' % verdict if verdict else ''))

    env = meta.get('env', {})
    md = ['# rpm2 vs pm2 (`npm run bench`)', '',
          '%s · rpm2 %s (%s) · pm2 %s · node %s · %s cores · %s' % (
              env.get('date', ''), env.get('rpm2_version', '?'), env.get('rpm2_commit', '?'),
              env.get('pm2_version', '?'), env.get('node', '?'), env.get('cores', '?'), env.get('kernel', '')),
          '',
          '| metric | rpm2 | pm2 | ratio rpm2/pm2 | target | result |',
          '|---|---|---|---|---|---|']
    md += rows
    md.append('')
    md.append('Medians (n per metric in latest.json, with min, max and every sample). Ratios below the target pass. '
              'Rows with target "—" are informational.')
    refm, refc = raw.get(('log_burst_ms', 'ref')), raw.get(('log_burst_cpu_ms', 'ref'))
    if refm and 'median' in refm:
        md.append('')
        md.append('Reference for the log burst, no manager (`node logburst.js | cat > file`): all lines on disk after '
                  '%s, cat used %s CPU. This is the floor the app\'s own writes set.' % (
                      fmt(refm['median'], 'ms'), fmt(refc['median'], 'ms') if refc and 'median' in refc else 'n/a'))
    if notes:
        md.append('')
        md.append('Notes:')
        for i, n in enumerate(notes):
            md.append('- %s' % n)
    ctx = meta.get('context', {})
    if ctx:
        md.append('')
        md.append('Machine: %s%% busy over the run (all processes, all cores, the bench included); load average %s at '
                  'start, %s at end; `node -e 0` took %s ms at start, %s ms at end; whole bench %s s. Parameters: %s.' % (
                      ctx.get('busy_pct', '?'), ctx.get('load_start', '?'), ctx.get('load_end', '?'), ctx.get('node_boot_ms_start', '?'),
                      ctx.get('node_boot_ms_end', '?'), ctx.get('seconds', '?'),
                      ', '.join('%s=%s' % kv for kv in sorted(params.items()) if kv[1] is not None)))
    text = '\n'.join(md) + '\n'
    open(out_md, 'w').write(text)
    json.dump({'generated': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'env': env, 'params': params,
               'context': ctx, 'scripts': scripts, 'metrics': out_metrics,
               'reference': {'log_burst_ms': refm, 'log_burst_cpu_ms': refc}},
              open(out_json, 'w'), indent=1)
    sys.stdout.write(text)


if __name__ == '__main__':
    main()
