#!/usr/bin/env python3
"""Small helpers for the rpm2 vs pm2 bench (stdlib only, Linux /proc).

Subcommands (all print plain text on stdout unless stated):
  time --n N [--warmup W] [--timeout S] -- CMD...   one line per timed run: "<ms> <rc>"
                                                    (monotonic clock, whole process: spawn .. wait;
                                                    stdin/stdout/stderr of CMD go to /dev/null)
  rss PID                                           VmRSS of PID in kB
  ticks PID...                                      sum of utime+stime of PIDs, in clock ticks
  ctxsw PID                                         context switches summed over PID's threads
  alive PID                                         exit 0 if PID exists and is not a zombie
  owns PID VAR=VALUE [CMDLINE_SUBSTR]               exit 0 if PID's environment holds VAR=VALUE
                                                    (or its command line holds CMDLINE_SUBSTR)
  owned-pids VAR=VALUE SUBSTR PID...                the PIDs among these that `owns` would accept
  jlist-count PREFIX [STATUS]                       stdin: jlist JSON; apps named PREFIX* with STATUS (online)
  jlist-pids [PREFIX]                               stdin: jlist JSON; app pids, one a line
  jlist-field NAME FIELD                            stdin: jlist JSON; pm2_env.FIELD of app NAME
  wait-count FILE WORD COUNT TIMEOUT_S              wait until FILE has COUNT lines starting with WORD
  crash-intervals FILE                              per crash: "<exit->first line ms> <exit->process origin ms>"
  burst --go F --out F --lines N --pid PID [--timeout S]
                                                    create the go file, wait until the out log holds N lines,
                                                    print JSON {ms, cpu_ms, lines, missing, out_of_order}
  ref-burst --script S --out F [--lines N]          the same, for `node S | cat > F` (cat's CPU)
  emit METRIC TOOL [--note TEXT] SAMPLES...         append a result to $BENCH_RAW (JSON lines)
  fail METRIC TOOL REASON                           append a failure to $BENCH_RAW
  helpers DAEMON_PID [APP_PID...]                   daemon descendants that are not apps: "pid rss_kb name"
  now-ms                                            CLOCK_MONOTONIC in ms
  cpustat                                           "<busy> <total>" jiffies of the whole machine
  wait-quiet PCT MAX_S                              wait until the machine is < PCT % busy (2 s samples)
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')


def die(msg, code=2):
    print(msg, file=sys.stderr)
    sys.exit(code)


def cmd_time(argv):
    n, warmup, timeout = 1, 0, 60.0
    while argv and argv[0] != '--':
        k = argv.pop(0)
        if k == '--n':
            n = int(argv.pop(0))
        elif k == '--warmup':
            warmup = int(argv.pop(0))
        elif k == '--timeout':
            timeout = float(argv.pop(0))
        else:
            die('time: unknown option ' + k)
    if not argv:
        die('time: missing -- CMD')
    cmd = argv[1:]
    for i in range(warmup + n):
        t0 = time.monotonic_ns()
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            print('NA 127', flush=True)
            print('time: cannot run %s: %s' % (cmd[0], e), file=sys.stderr)
            return
        # A blocking wait, so the end is seen when the process exits. (Popen.wait(timeout=...)
        # polls with sleeps that double from 0.5 ms up to 50 ms: it rounds a run up to 3.5, 7.5,
        # 15.5, ... 163.5 ms, which hid a 3.6 ms command in the 7.5 ms step.) A timer thread kills
        # the process group when it runs over the timeout.
        timed_out = threading.Event()

        def kill(pid=p.pid):
            timed_out.set()
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        rc = p.wait()
        t1 = time.monotonic_ns()
        timer.cancel()
        if timed_out.is_set():
            rc = 124
        if i >= warmup:
            print('%.3f %d' % ((t1 - t0) / 1e6, rc), flush=True)


def read_status(pid):
    with open('/proc/%s/status' % pid) as f:
        return f.read()


def cmd_rss(argv):
    m = re.search(r'^VmRSS:\s+(\d+)\s+kB', read_status(argv[0]), re.M)
    if not m:
        die('no VmRSS for pid %s' % argv[0], 1)
    print(m.group(1))


def pid_ticks(pid):
    with open('/proc/%s/stat' % pid) as f:
        s = f.read()
    fields = s[s.rindex(')') + 2:].split()
    # fields[0] is field 3 (state); utime = field 14, stime = field 15
    return int(fields[11]) + int(fields[12])


def pid_io(pid):
    try:
        with open('/proc/%s/io' % pid) as f:
            return {k: int(v) for k, v in (l.split(':') for l in f if ':' in l)}
    except (OSError, ValueError):
        return None


def cmd_ctxsw(argv):
    """ctxsw PID: voluntary + involuntary context switches summed over PID's threads
    (how often the process woke up)"""
    total = 0
    for tid in os.listdir('/proc/%s/task' % argv[0]):
        try:
            with open('/proc/%s/task/%s/status' % (argv[0], tid)) as f:
                for l in f:
                    if 'ctxt_switches:' in l:
                        total += int(l.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    print(total)


def cmd_ticks(argv):
    print(sum(pid_ticks(p) for p in argv))


def is_alive(pid):
    try:
        st = read_status(pid)
    except OSError:
        return False
    m = re.search(r'^State:\s+(\S)', st, re.M)
    return bool(m) and m.group(1) not in 'ZX'


def cmd_alive(argv):
    sys.exit(0 if is_alive(argv[0]) else 1)


def cmd_owns(argv):
    pid, kv = argv[0], argv[1].encode()
    sub = argv[2].encode() if len(argv) > 2 and argv[2] else None
    if not is_alive(pid):
        sys.exit(1)
    try:
        with open('/proc/%s/environ' % pid, 'rb') as f:
            if kv in f.read().split(b'\0'):
                sys.exit(0)
    except OSError:
        pass
    if sub:
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if sub in f.read():
                    sys.exit(0)
        except OSError:
            pass
    sys.exit(1)


def cmd_owned_pids(argv):
    """owned-pids VAR=VALUE CMDLINE_SUBSTR PID...: the PIDs that are alive and carry
    VAR=VALUE in their environment (or CMDLINE_SUBSTR in their command line)"""
    kv, sub = argv[0].encode(), argv[1].encode()
    for pid in argv[2:]:
        if not pid.isdigit() or not is_alive(pid):
            continue
        ok = False
        try:
            with open('/proc/%s/environ' % pid, 'rb') as f:
                ok = kv in f.read().split(b'\0')
        except OSError:
            pass
        if not ok and sub:
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    ok = sub in f.read()
            except OSError:
                pass
        if ok:
            print(pid)


def read_jlist():
    data = sys.stdin.read().strip()
    # tolerate noise before the JSON array (banners)
    i = data.find('[')
    if i < 0:
        die('jlist: no JSON array', 1)
    try:
        arr = json.loads(data[i:])
    except ValueError as e:
        die('jlist: bad JSON: %s' % e, 1)
    if not isinstance(arr, list):
        die('jlist: not an array', 1)
    return arr


def cmd_jlist_count(argv):
    prefix = argv[0] if argv else ''
    status = argv[1] if len(argv) > 1 else 'online'
    n = 0
    for a in read_jlist():
        if str(a.get('name', '')).startswith(prefix) and (a.get('pm2_env') or {}).get('status') == status:
            n += 1
    print(n)


def cmd_jlist_pids(argv):
    prefix = argv[0] if argv else ''
    for a in read_jlist():
        if str(a.get('name', '')).startswith(prefix) and a.get('pid'):
            print(a['pid'])


def cmd_jlist_field(argv):
    name, field = argv
    for a in read_jlist():
        if a.get('name') == name:
            v = (a.get('pm2_env') or {}).get(field)
            if v is not None:
                print(v)
            return


def cmd_wait_count(argv):
    path, word, count, timeout = argv[0], argv[1], int(argv[2]), float(argv[3])
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        try:
            with open(path) as f:
                n = sum(1 for l in f if l.split(' ', 1)[0] == word)
        except OSError:
            n = 0
        if n >= count:
            print(n)
            return
        if time.monotonic() > deadline:
            print(n)
            sys.exit(1)
        time.sleep(0.02)


def cmd_crash_intervals(argv):
    # lines: "start PID ORIGIN FIRSTLINE" / "exit PID T"
    last_exit = None
    for line in open(argv[0]):
        p = line.split()
        if not p:
            continue
        if p[0] == 'exit':
            last_exit = (p[1], float(p[2]))
        elif p[0] == 'start' and last_exit and p[1] != last_exit[0]:
            print('%.3f %.3f' % (float(p[3]) - last_exit[1], float(p[2]) - last_exit[1]))
            last_exit = None


LINE_ANY_RE = re.compile(rb'LOGSPAM (\d+) ')
BURST_PAD = 40   # apps/logburst.js writes "LOGSPAM <i> <40 x>\n"


def burst_expected_bytes(lines):
    total, lo, digits = 0, 0, 1
    while lo < lines:
        hi = min(lines, 10 ** digits)
        total += (hi - lo) * (len('LOGSPAM  \n') + digits + BURST_PAD)
        lo, digits = hi, digits + 1
    return total


def log_family(out):
    """The out log and its rotated siblings (<stem>*), oldest first, the live file last."""
    d, base = os.path.split(out)
    d = d or '.'
    stem = base[:-4] if base.endswith('.log') else base
    rotated = []
    for name in os.listdir(d):
        if name.startswith(stem) and name != base:
            try:
                st = os.stat(os.path.join(d, name))
            except OSError:
                continue
            rotated.append((st.st_mtime_ns, name, st.st_size))
    rotated.sort()
    fam = [(os.path.join(d, n), sz) for _, n, sz in rotated]
    try:
        fam.append((out, os.stat(out).st_size))
    except OSError:
        pass
    return fam


def read_log(path):
    if path.endswith('.gz'):
        import gzip
        with gzip.open(path, 'rb') as g:
            return g.read()
    with open(path, 'rb') as g:
        return g.read()


def count_lines(fam):
    n = 0
    for path, _ in fam:
        try:
            n += len(LINE_ANY_RE.findall(read_log(path)))
        except OSError:
            pass
    return n


def burst(go, out, lines, pid, timeout, stall=15.0):
    """Creates GO, then waits until OUT and its rotated siblings hold LINES lines.
    Polls every 2 ms the sizes of the files (cheap: one listdir + stats); once they
    reach the exact byte count the app writes, counts the lines to confirm. Then
    checks every line is there, in order, reading the files oldest first."""
    res = {'lines_expected': lines}
    want = burst_expected_bytes(lines)
    io0 = pid_io(pid)
    ticks0 = pid_ticks(pid)
    t0 = time.monotonic_ns()
    open(go, 'w').close()
    deadline = time.monotonic() + timeout
    last_progress, last_size, last_count = time.monotonic(), -1, 0.0
    seen = 0
    while True:
        fam = log_family(out)
        size = sum(sz for p, sz in fam if not p.endswith('.gz'))
        now = time.monotonic()
        if size != last_size:
            last_size, last_progress = size, now
        # bytes reached (or compressed files present): confirm with a line count,
        # at most every 100 ms
        if (size >= want or any(p.endswith('.gz') for p, _ in fam)) and now - last_count >= 0.1:
            seen = count_lines(fam)
            last_count = time.monotonic()
            if seen >= lines:
                t1 = time.monotonic_ns()
                ticks1 = pid_ticks(pid)
                io1 = pid_io(pid)
                break
        if now > deadline or now - last_progress > stall:
            seen = count_lines(fam)
            res.update(error='only %d of %d lines in %s (%d file(s)) after %.1f s%s' % (
                seen, lines, out, len(fam), (time.monotonic_ns() - t0) / 1e9,
                ', no progress for %.0f s' % stall if now - last_progress > stall else ''), lines=seen)
            return res
        time.sleep(0.002)
    res['ms'] = round((t1 - t0) / 1e6, 3)
    res['cpu_ms'] = round((ticks1 - ticks0) * 1000.0 / CLK_TCK, 1)
    if io0 and io1:
        res['daemon_read_syscalls'] = io1['syscr'] - io0['syscr']
        res['daemon_write_syscalls'] = io1['syscw'] - io0['syscw']
    # correctness: every line present, in order (oldest file first)
    fam = log_family(out)
    res['files'] = len(fam)
    expect, missing, ooo, total, other = 0, 0, 0, 0, 0
    for path, _ in fam:
        for l in read_log(path).splitlines():
            m = LINE_ANY_RE.search(l)
            if not m:
                other += 1
                continue
            total += 1
            i = int(m.group(1))
            if i == expect:
                expect += 1
            elif i > expect:
                missing += i - expect
                expect = i + 1
            else:
                ooo += 1
    missing += max(0, lines - expect)
    res.update(lines=total, missing=missing, out_of_order=ooo, other_lines=other)
    return res


def burst_opts(argv):
    o = {'go': None, 'out': None, 'lines': 200000, 'pid': None, 'timeout': 120.0, 'script': None, 'node': 'node',
         'stall': 15.0}
    while argv:
        k = argv.pop(0).lstrip('-')
        o[k] = argv.pop(0)
    o['lines'] = int(o['lines'])
    o['timeout'] = float(o['timeout'])
    o['stall'] = float(o['stall'])
    return o


def cmd_burst(argv):
    o = burst_opts(argv)
    print(json.dumps(burst(o['go'], o['out'], o['lines'], o['pid'], o['timeout'], o['stall'])))


def cmd_ref_burst(argv):
    """ref-burst --script S --out F [--lines N] [--node NODE]: the same app run directly,
    `node S | cat > F`; "daemon" CPU is cat's"""
    o = burst_opts(argv)
    go = o['script'] + '.go'
    for x in (go, o['out']):
        try:
            os.unlink(x)
        except OSError:
            pass
    with open(o['out'], 'wb') as outf:
        app = subprocess.Popen([o['node'], o['script']], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        cat = subprocess.Popen(['cat'], stdin=app.stdout, stdout=outf)
    app.stdout.close()
    try:
        time.sleep(0.5)
        res = burst(go, o['out'], o['lines'], str(cat.pid), o['timeout'], o['stall'])
    finally:
        app.kill()
        app.wait()
        cat.wait()
    print(json.dumps(res))


def raw_append(obj):
    path = os.environ.get('BENCH_RAW')
    if not path:
        die('BENCH_RAW is not set')
    with open(path, 'a') as f:
        f.write(json.dumps(obj) + '\n')


def cmd_emit(argv):
    metric, tool = argv[0], argv[1]
    rest = argv[2:]
    note = None
    if rest[:1] == ['--note']:
        note = rest[1]
        rest = rest[2:]
    samples = []
    for s in rest:
        try:
            samples.append(float(s))
        except ValueError:
            pass
    if not samples:
        raw_append({'metric': metric, 'tool': tool, 'error': 'no numeric samples (%s)' % ' '.join(rest)})
        print('%s %s: n/a (no samples)' % (metric, tool))
        return
    obj = {'metric': metric, 'tool': tool, 'samples': samples,
           'median': statistics.median(samples), 'min': min(samples), 'max': max(samples), 'n': len(samples)}
    if note:
        obj['note'] = note
    raw_append(obj)
    print('%s %s: median %.3f (min %.3f max %.3f n=%d)' % (metric, tool, obj['median'], obj['min'], obj['max'], obj['n']))


def cmd_fail(argv):
    metric, tool, reason = argv[0], argv[1], ' '.join(argv[2:])
    raw_append({'metric': metric, 'tool': tool, 'error': reason})
    print('%s %s: n/a (%s)' % (metric, tool, reason))


def children_map():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = st[st.rindex(')') + 2:].split()[1]
        kids.setdefault(ppid, []).append(d)
    return kids


def cmd_helpers(argv):
    """helpers DAEMON_PID [APP_PID...]: the daemon's descendants that are not apps
    (nor below an app): "pid rss_kb comm" lines"""
    root, apps = argv[0], set(argv[1:])
    kids = children_map()
    todo = list(kids.get(root, []))
    while todo:
        p = todo.pop()
        if p in apps:
            continue
        todo.extend(kids.get(p, []))
        try:
            st = read_status(p)
            m = re.search(r'^VmRSS:\s+(\d+)', st, re.M)
            name = re.search(r'^Name:\s+(.*)$', st, re.M).group(1)
        except (OSError, AttributeError):
            continue
        print('%s %s %s' % (p, m.group(1) if m else 0, name))


def cpustat():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def cmd_cpustat(argv):
    """cpustat: "<busy jiffies> <total jiffies>" of the whole machine"""
    print('%d %d' % cpustat())


def cmd_wait_quiet(argv):
    """wait-quiet PCT MAX_S: wait until the machine was less than PCT % busy over 2 s
    (at most MAX_S); prints the last busy %"""
    pct, max_s = float(argv[0]), float(argv[1])
    deadline = time.monotonic() + max_s
    while True:
        b0, a0 = cpustat()
        time.sleep(2)
        b1, a1 = cpustat()
        busy = 100.0 * (b1 - b0) / max(1, a1 - a0)
        if busy < pct or time.monotonic() > deadline:
            print('%.0f' % busy)
            return


def cmd_now_ms(argv):
    print('%.3f' % (time.monotonic_ns() / 1e6))


CMDS = {
    'time': cmd_time, 'rss': cmd_rss, 'ticks': cmd_ticks, 'ctxsw': cmd_ctxsw, 'alive': cmd_alive, 'owns': cmd_owns, 'owned-pids': cmd_owned_pids,
    'jlist-count': cmd_jlist_count, 'jlist-pids': cmd_jlist_pids, 'jlist-field': cmd_jlist_field,
    'wait-count': cmd_wait_count, 'crash-intervals': cmd_crash_intervals, 'burst': cmd_burst, 'ref-burst': cmd_ref_burst,
    'helpers': cmd_helpers, 'emit': cmd_emit, 'fail': cmd_fail, 'now-ms': cmd_now_ms, 'cpustat': cmd_cpustat, 'wait-quiet': cmd_wait_quiet,
}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        die(__doc__)
    try:
        CMDS[sys.argv[1]](sys.argv[2:])
    except (OSError, ValueError, IndexError) as e:
        die('%s: %s' % (sys.argv[1], e), 1)
