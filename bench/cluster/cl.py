#!/usr/bin/env python3
"""Helpers for bench/cluster.sh (stdlib only). Subcommands:

  free-ports BASE N          N ports >= BASE free on 127.0.0.1 (outside the ephemeral range)
  wait-port PORT TIMEOUT_S   exit 0 once 127.0.0.1:PORT accepts a connection
  wait-closed PORT TIMEOUT_S exit 0 once 127.0.0.1:PORT refuses
  jlist-pids NAME            (jlist JSON on stdin) pids of NAME's online instances, one a line
  jlist-count NAME           (stdin) number of NAME's online instances
  jlist-mode NAME            (stdin) exec_mode of NAME's first instance
  ticks PID                  utime+stime of PID (clock ticks, all threads)
  alive PID                  exit 0 if PID exists and is not a zombie
  owns PID NEEDLE...         exit 0 if PID's environ or cmdline contains one of the NEEDLEs
  children PID               direct children of PID, one a line
  kill-respawn DPID PID NEEDLE TIMEOUT_S
                             SIGKILL PID (only if its cmdline/environ holds NEEDLE), then poll
                             DPID's children every 5 ms for a new one holding NEEDLE; print
                             the ms from the kill to its appearance (exit 1: none in time)
  parse-wrk FILE             "rps p99_ms requests errors" (errors: socket errors + non-2xx)
  parse-ac FILE              same, from autocannon --json output
  time TIMEOUT_S -- CMD...   run CMD (stdout/stderr to $CL_CMDLOG or /dev/null); print "<ms> <rc>"
  now-ms                     epoch milliseconds
  cpustat                    "busy total" jiffies from /proc/stat
  node-boot-ms               median wall time of 3 x `node -e 0`
  emit RAW METRIC TOOL VALUE [JSON]   append a sample to the raw jsonl
  na RAW METRIC TOOL REASON           append a "could not measure" record
  ctx RAW KEY VALUE                   append a context record
  report RAW MD JSON                  write the table (markdown, also to stdout) and the JSON
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def ephemeral_range():
    try:
        lo, hi = open('/proc/sys/net/ipv4/ip_local_port_range').read().split()
        return int(lo), int(hi)
    except Exception:
        return 32768, 60999


def port_free(p):
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', p))
    except OSError:
        return False
    finally:
        s.close()
    c = socket.socket()
    c.settimeout(0.2)
    try:
        c.connect(('127.0.0.1', p))
        return False
    except OSError:
        return True
    finally:
        c.close()


def cmd_free_ports(base, n):
    lo, hi = ephemeral_range()
    out, p = [], int(base)
    while len(out) < int(n) and p < 65535:
        if not (lo <= p <= hi) and port_free(p):
            out.append(p)
        p += 1
    if len(out) < int(n):
        sys.exit(1)
    print(' '.join(map(str, out)))


def try_connect(port):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(('127.0.0.1', int(port)))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cmd_wait_port(port, timeout, want=True):
    end = time.monotonic() + float(timeout)
    while time.monotonic() < end:
        if try_connect(port) == want:
            return 0
        time.sleep(0.05)
    return 1


def read_jlist():
    txt = sys.stdin.read()
    i = txt.find('[')
    while i >= 0:
        try:
            return json.loads(txt[i:])
        except ValueError:
            # maybe a banner line containing '[' before the JSON
            j = txt.find('\n[', i + 1)
            i = j + 1 if j >= 0 else -1
    return None


def online(apps, name):
    return [a for a in apps if a.get('name') == name and (a.get('pm2_env') or {}).get('status') == 'online']


def cmd_jlist(kind, name):
    apps = read_jlist()
    if apps is None:
        sys.exit(2)
    on = online(apps, name)
    if kind == 'pids':
        for a in on:
            if a.get('pid'):
                print(a['pid'])
    elif kind == 'count':
        print(len(on))
    else:
        mine = [a for a in apps if a.get('name') == name]
        print((mine[0].get('pm2_env') or {}).get('exec_mode', '?') if mine else '?')


def ticks(pid):
    with open('/proc/%s/stat' % pid) as f:
        s = f.read()
    rest = s[s.rindex(')') + 2:].split()
    # fields 14 and 15 (utime, stime); rest starts at field 3
    return int(rest[11]) + int(rest[12])


def alive(pid):
    try:
        with open('/proc/%s/stat' % pid) as f:
            s = f.read()
        return s[s.rindex(')') + 2] != 'Z'
    except Exception:
        return False


def owns(pid, needles):
    blobs = []
    for f in ('environ', 'cmdline'):
        try:
            with open('/proc/%s/%s' % (pid, f), 'rb') as fh:
                blobs.append(fh.read().decode('utf-8', 'replace'))
        except Exception:
            pass
    return any(n and n in b for n in needles for b in blobs)


def children(pid):
    out = []
    try:
        for t in os.listdir('/proc/%s/task' % pid):
            try:
                out += open('/proc/%s/task/%s/children' % (pid, t)).read().split()
            except Exception:
                pass
    except Exception:
        pass
    return out


def to_ms(v):
    v = v.strip()
    for suf, mul in (('us', 1e-3), ('ms', 1.0), ('s', 1000.0), ('m', 60000.0)):
        if v.endswith(suf):
            return float(v[:-len(suf)]) * mul
    return float(v)


def parse_wrk(path):
    rps = p99 = req = None
    errs = 0
    for line in open(path, errors='replace'):
        t = line.split()
        if line.startswith('Requests/sec:'):
            rps = float(t[1])
        elif t[:1] == ['99%'] and len(t) >= 2:
            p99 = to_ms(t[1])
        elif 'requests in' in line:
            req = int(t[0])
        elif line.strip().startswith('Socket errors:'):
            for part in line.split(':', 1)[1].split(','):
                errs += int(part.split()[-1])
        elif line.strip().startswith('Non-2xx or 3xx responses:'):
            errs += int(t[-1])
    if rps is None or req is None:
        sys.exit(1)
    print(rps, p99 if p99 is not None else 'NA', req, errs)


def parse_ac(path):
    try:
        d = json.loads(open(path).read().strip().splitlines()[-1])
    except Exception:
        sys.exit(1)
    rps = d['requests']['average']
    p99 = d['latency'].get('p99', 'NA')
    req = d['requests']['total']
    errs = d.get('errors', 0) + d.get('timeouts', 0) + d.get('non2xx', 0)
    print(rps, p99, req, errs)


def cmd_time(timeout, cmd):
    logp = os.environ.get('CL_CMDLOG')
    out = open(logp, 'ab') if logp else subprocess.DEVNULL
    t = time.monotonic()
    try:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=float(timeout)).returncode
    except subprocess.TimeoutExpired:
        rc = 124
    print('%.1f %d' % ((time.monotonic() - t) * 1000, rc))


def append(raw, rec):
    with open(raw, 'a') as f:
        f.write(json.dumps(rec) + '\n')


def num(v):
    for conv in (int, float):
        try:
            return conv(v)
        except (TypeError, ValueError):
            pass
    return None


# ------------------------------------------------------------------ report
TOOLS = ('rpm2', 'pm2', 'node')
# metric, label, unit, aggregate, better, target (op, value) or None
ROWS = [
    ('ka_rps', 'keep-alive throughput', 'req/s', 'median', 'higher', None),
    ('ka_p99_ms', 'keep-alive p99 latency', 'ms', 'median', 'lower', None),
    ('close_rps', 'connection-per-request throughput', 'req/s', 'median', 'higher', None),
    ('close_p99_ms', 'connection-per-request p99 latency', 'ms', 'median', 'lower', None),
    ('cpu_us_per_conn', 'primary CPU per new connection (round-robin)', 'µs', 'median', 'lower', ('<=', 20)),
    ('reload_i2_failed', 'failed requests, 3 reloads, -i 2', 'count', 'sum', 'lower', ('==', 0)),
    ('reload_i1_failed', 'failed requests, 3 reloads, -i 1', 'count', 'sum', 'lower', ('==', 0)),
    ('sigkill_i1_refused', 'refused connections, SIGKILL of the only worker (-i 1)', 'count', 'sum', 'lower', ('==', 0)),
    ('sigkill_i1_failed', 'all failed requests, SIGKILL of the only worker (-i 1)', 'count', 'sum', 'lower', None),
    ('sigkill_i1_back_ms', 'SIGKILL → new worker process spawned', 'ms', 'median', 'lower', None),
    ('sigkill_i1_max_lat_ms', 'slowest request around a SIGKILL', 'ms', 'median', 'lower', None),
    ('reload_i2_cmd_ms', 'reload command wall time, -i 2', 'ms', 'median', 'lower', None),
    ('reload_i1_cmd_ms', 'reload command wall time, -i 1', 'ms', 'median', 'lower', None),
    ('reload_max_lat_ms', 'slowest request during a reload (-i 1 and -i 2)', 'ms', 'median', 'lower', None),
]


def fmt(v, unit=''):
    if v is None:
        return 'n/a'
    if isinstance(v, float):
        if abs(v) >= 1000:
            return '{:,.0f}'.format(v)
        if abs(v) >= 10:
            return '%.1f' % v
        return '%.2f' % v
    return '{:,}'.format(v) if isinstance(v, int) else str(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cmd_report(raw, md_path, json_path):
    samples, nas, ctx = {}, {}, {}
    for line in open(raw):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r['kind'] == 'sample':
            samples.setdefault((r['metric'], r['tool']), []).append(r)
        elif r['kind'] == 'na':
            nas.setdefault((r['metric'], r['tool']), []).append(r['reason'])
        elif r['kind'] == 'ctx':
            ctx[r['key']] = r['value']
    out = {'metrics': {}, 'context': ctx}
    lines = []
    lines.append('## Cluster mode: rpm2 vs pm2 vs node cluster (2 workers unless stated)')
    lines.append('')
    lines.append('| metric | rpm2 | pm2 | node cluster | ratio rpm2/pm2 | ratio rpm2/node | target | PASS/FAIL |')
    lines.append('|---|---|---|---|---|---|---|---|')
    reasons = []
    for metric, label, unit, agg, better, target in ROWS:
        m = {'label': label, 'unit': unit, 'aggregate': agg, 'better': better, 'tools': {}}
        vals = {}
        cells = []
        for tool in TOOLS:
            ss = samples.get((metric, tool), [])
            na = nas.get((metric, tool))
            xs = [s['value'] for s in ss if isinstance(s['value'], (int, float))]
            entry = {'samples': xs, 'extra': [s.get('extra') for s in ss if s.get('extra')]}
            if na:
                entry['na'] = na
            if xs and not na:
                v = statistics.median(xs) if agg == 'median' else sum(xs)
                if agg == 'median' and len(xs) > 1:
                    entry['min'], entry['max'] = min(xs), max(xs)
                entry['value'] = v
                vals[tool] = v
                c = fmt(v)
                if agg == 'median' and len(xs) > 1:
                    c += ' (%s–%s)' % (fmt(min(xs)), fmt(max(xs)))
                elif agg == 'sum' and len(xs) > 1:
                    c += ' [%s]' % '+'.join(fmt(x) for x in xs)
            else:
                vals[tool] = None
                why = '; '.join(na) if na else 'not measured'
                entry['value'] = None
                entry['na'] = na or ['not measured']
                reasons.append('%s, %s: %s' % (label, tool, why))
                c = 'n/a'
            cells.append(c)
            m['tools'][tool] = entry
        r1, r2 = ratio(vals['rpm2'], vals['pm2']), ratio(vals['rpm2'], vals['node'])
        m['ratio_rpm2_pm2'], m['ratio_rpm2_node'] = r1, r2
        tgt, verdict = '—', ''
        if target:
            op, tv = target
            tgt = '%s %s%s' % ('≤' if op == '<=' else '=', tv, (' ' + unit) if unit not in ('count',) else '')
            v = vals['rpm2']
            if v is None:
                verdict = 'n/a'
            else:
                ok = v <= tv if op == '<=' else v == tv
                verdict = 'PASS' if ok else 'FAIL'
            m['target'] = {'op': op, 'value': tv, 'verdict': verdict}
        rs = lambda r: ('%.2f' % r) if r is not None else '—'
        lines.append('| %s (%s) | %s | %s | %s | %s | %s | %s | %s |' % (
            label, unit, cells[0], cells[1], cells[2], rs(r1), rs(r2), tgt, verdict))
        out['metrics'][metric] = m
    lines.append('')
    lines.append('Medians over rounds (min–max); counts are sums over the repetitions [each one]. '
                 'Ratios compare the medians/sums; "—" = no ratio (a zero or missing denominator).')
    if reasons:
        lines.append('')
        lines.append('n/a:')
        for r in reasons:
            lines.append('- ' + r)
    lines.append('')
    lines.append('Machine: ' + ctx.get('machine', '?'))
    lines.append('')
    lines.append('Load: ' + ctx.get('load_summary', '?'))
    if ctx.get('notes'):
        lines.append('')
        lines.append('Notes: ' + ctx['notes'])
    lines.append('')
    md = '\n'.join(lines)
    with open(md_path, 'w') as f:
        f.write(md)
    with open(json_path, 'w') as f:
        json.dump(out, f, indent=1)
    print(md)


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    c = a[0]
    if c == 'free-ports':
        cmd_free_ports(a[1], a[2])
    elif c == 'wait-port':
        return cmd_wait_port(a[1], a[2], True)
    elif c == 'wait-closed':
        return cmd_wait_port(a[1], a[2], False)
    elif c == 'jlist-pids':
        cmd_jlist('pids', a[1])
    elif c == 'jlist-count':
        cmd_jlist('count', a[1])
    elif c == 'jlist-mode':
        cmd_jlist('mode', a[1])
    elif c == 'ticks':
        print(ticks(a[1]))
    elif c == 'alive':
        return 0 if alive(a[1]) else 1
    elif c == 'owns':
        return 0 if alive(a[1]) and owns(a[1], a[2:]) else 1
    elif c == 'children':
        print('\n'.join(children(a[1])))
    elif c == 'kill-respawn':
        dpid, pid, needle, to = a[1], a[2], a[3], float(a[4])
        if not (alive(pid) and owns(pid, [needle])):
            print('pid %s is not ours' % pid, file=sys.stderr)
            return 2
        before = set(children(dpid))
        t = time.monotonic()
        os.kill(int(pid), 9)
        while time.monotonic() - t < to:
            for ch in children(dpid):
                if ch != pid and ch not in before and owns(ch, [needle]):
                    print('%.1f' % ((time.monotonic() - t) * 1000))
                    return 0
            time.sleep(0.005)
        return 1
    elif c == 'parse-wrk':
        parse_wrk(a[1])
    elif c == 'parse-ac':
        parse_ac(a[1])
    elif c == 'time':
        cmd_time(a[1], a[3:] if a[2] == '--' else a[2:])
    elif c == 'now-ms':
        print(int(time.time() * 1000))
    elif c == 'cpustat':
        f = open('/proc/stat').readline().split()[1:]
        v = list(map(int, f))
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        print(sum(v[:8]) - idle, sum(v[:8]))
    elif c == 'node-boot-ms':
        ts = []
        for _ in range(3):
            t = time.monotonic()
            subprocess.run(['node', '-e', '0'])
            ts.append((time.monotonic() - t) * 1000)
        print('%.0f' % statistics.median(ts))
    elif c == 'emit':
        rec = {'kind': 'sample', 'metric': a[2], 'tool': a[3], 'value': num(a[4])}
        if len(a) > 5 and a[5]:
            try:
                rec['extra'] = json.loads(a[5])
            except ValueError:
                rec['extra'] = a[5]
        append(a[1], rec)
    elif c == 'na':
        append(a[1], {'kind': 'na', 'metric': a[2], 'tool': a[3], 'reason': ' '.join(a[4:])})
    elif c == 'ctx':
        append(a[1], {'kind': 'ctx', 'key': a[2], 'value': ' '.join(a[3:])})
    elif c == 'report':
        cmd_report(a[1], a[2], a[3])
    else:
        print('unknown subcommand ' + c, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main() or 0)
