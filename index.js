// rpm2's programmatic API: `require('rpm2')`, with PM2's method names, arguments and result shapes.
// Every method returns a Promise when no callback is given, and calls `cb(err, result)` when one is
// (then it returns undefined, as PM2 does). Errors are `Error`s with a one-line `message` and a
// stable `code` (`not_found`, `bad_request`, `already_running`, `not_running`, `connection`, ...).
//
// The work is done by the native addon (found by ./loader.js) over rpm2's Rust core: the start/operate
// flow and every request on targets are the code behind the CLI's commands; this file only shapes
// PM2's arguments and wraps Promises and callbacks. Each call opens a short connection to the daemon
// (starting it with the package's `rpm2d` when needed), so nothing stays open between calls; only a
// bus from launchBus() holds the event loop, until bus.close() or disconnect().
'use strict';

const os = require('os');
const path = require('path');
const { Bus } = require('./bus.js');
const { native, daemonExe: DAEMON_EXE } = require('./loader.js').load();

function rpm2Error(message, code, extra) {
  const err = new Error(message);
  if (code) err.code = code;
  if (extra) Object.assign(err, extra);
  return err;
}

// Calls cb(err, result) on the next tick (so an exception thrown by cb is not swallowed by the
// promise machinery), or returns the promise when there is no callback.
function settle(promise, cb) {
  if (typeof cb !== 'function') return promise;
  promise.then(
    (res) => process.nextTick(cb, null, res),
    (err) => process.nextTick(cb, err),
  );
  return undefined;
}

// PM2's optional middle argument: (x, cb) is (x, {}, cb).
function optsAndCb(opts, cb) {
  return typeof opts === 'function' ? [{}, opts] : [opts || {}, cb];
}

// A native envelope (`{result}` or `{error: {code, message, detail?}}`, plus `warnings`) as a value.
function unwrap(raw) {
  const env = JSON.parse(raw);
  for (const w of env.warnings || []) process.emitWarning(w, 'RPM2Warning');
  if (env.error) throw rpm2Error(env.error.message, env.error.code, env.error.detail && { detail: env.error.detail });
  return env;
}

class RPM2 {
  /** @param {{home?: string, pm2_home?: string, cwd?: string, daemonExe?: string}} [opts] */
  constructor(opts = {}) {
    this._home = opts.home || opts.rpm2_home || opts.pm2_home || undefined;
    this._cwd = opts.cwd || undefined;
    this._daemonExe = opts.daemonExe || DAEMON_EXE;
    this._buses = new Set();
  }

  /** The RPM2_HOME this instance talks to. */
  get home() {
    const h = this._home || process.env.RPM2_HOME || path.join(os.homedir(), '.rpm2');
    return path.resolve(h);
  }

  get cwd() {
    return this._cwd || process.cwd();
  }

  // One daemon call. Starts the daemon unless `start` is false.
  async _call(method, params = {}, { start = true } = {}) {
    return unwrap(await native.call(method, JSON.stringify(params), this.home, start ? this._daemonExe : null)).result;
  }

  /**
   * connect([noDaemonMode], [cb]) or connect({home}, [cb]). rpm2 always runs a separate daemon
   * (`noDaemonMode` is accepted and ignored); calls connect lazily, so this is optional.
   */
  connect(...args) {
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const first = args[0];
    if (first && typeof first === 'object') {
      if (first.home || first.pm2_home) this._home = first.home || first.pm2_home;
      if (first.daemonExe) this._daemonExe = first.daemonExe;
    }
    return settle(this._local('connect', {}, { start: true }), cb);
  }

  /** Closes every bus opened by this instance. Nothing else stays open between calls. */
  disconnect(cb) {
    for (const bus of this._buses) bus.close();
    this._buses.clear();
    return settle(Promise.resolve(), cb);
  }

  // start(script | app | apps[] | 'ecosystem.config.js', [opts], [cb]), startOrRestart and
  // startOrReload (below) run this. `reload`: existing declared apps are reloaded rather than restarted; `orRestart` (startOrRestart,
  // startOrReload): a script whose app exists is restarted/reloaded rather than refused.
  async _start(cmd, opts, reload, orRestart) {
    if (typeof cmd === 'number') return this._operate('restart', cmd, opts);
    const input = cmd !== null && typeof cmd === 'object' ? { apps: cmd } : { script: typeof cmd === 'string' ? cmd : '' };
    const o = JSON.stringify({ cwd: this.cwd, env: process.env, reload, orRestart, options: opts });
    return unwrap(await native.start(JSON.stringify(input), o, this.home, this._daemonExe)).result;
  }

  // stop/restart/reload/delete/reset. Restarting or reloading a declaration (app objects or an
  // ecosystem file) applies it; opts.updateEnv takes process.env, opts.env (an object) sets values.
  // Targets are strings (ids, names, namespaces, 'all', '/regex/', script and ecosystem files) or app
  // objects; the core resolves them and refuses a missing one.
  async _operate(method, target, opts = {}) {
    const targets = JSON.stringify([].concat(target).map((t) => (t && typeof t === 'object' ? t : String(t ?? ''))));
    const o = JSON.stringify({ cwd: this.cwd, env: process.env, options: opts });
    return unwrap(await native.operate(method, targets, o, this.home, this._daemonExe)).result;
  }

  /** list([opts], [cb]): PM2's `jlist` objects. Environment values are hidden unless opts.env. */
  list(opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._call('list', { env: !!opts.env }), cb);
  }

  /** describe(target, [cb]): the list objects of the matching processes; unknown target → []. */
  describe(target, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    const none = (e) => (e.code === 'not_found' ? [] : Promise.reject(e)); // unknown target → []
    const p = this._call('describe', { targets: [String(target)], env: !!opts.env }).catch(none);
    return settle(p, cb);
  }

  /** getPID(name, [cb]): the pids of an app (all processes when no name). */
  getPID(name, cb) {
    if (typeof name === 'function') [name, cb] = [undefined, name];
    const p = (name === undefined ? this._call('list') : this.describe(name)).then((l) => l.map((x) => x.pid));
    return settle(p, cb);
  }

  // A request on targets of the core (flush, signal, monitor, inspect, sendData), as the CLI runs it.
  _onTargets(op, target, args = {}) {
    const targets = target === undefined || target === null ? [] : [].concat(target).map(String);
    return this._local(op, { ...args, targets, cwd: this.cwd }, { start: true });
  }

  /** flush([target], [cb]): empties log files (all, and the daemon's log, when no target) → the list. */
  flush(target, cb) {
    if (typeof target === 'function') [target, cb] = [undefined, target];
    return settle(this._onTargets('flush', target), cb);
  }

  /** sendSignalToProcessName(signal, name, [cb]) → the process list (sendSignalToProcessId too) */
  sendSignalToProcessName(signal, name, cb) {
    return settle(this._onTargets('signal', name, { signal: String(signal) }), cb);
  }

  /** sendDataToProcessId(id, packet, [cb]) or (packet, [cb]): sends `packet` (which needs `id`, a truthy
   * `topic` and `data`) verbatim on the process's IPC channel → {success: true, data: packet} */
  sendDataToProcessId(id, packet, cb) {
    if (id && typeof id === 'object' && (typeof packet === 'function' || packet === undefined)) {
      [packet, cb] = [id, packet];
    } else if (packet && typeof packet === 'object') {
      packet = Object.assign({}, packet, { id });
    }
    return settle(this._local('sendData', { packet: packet ?? null }, { start: true }), cb);
  }

  /** sendLineToStdin(pm_id, line, [separator], [cb]): writes `line` + separator ('\n') to the stdin
   * of a fork-mode process → {pm_id, line} */
  sendLineToStdin(pmId, line, separator, cb) {
    if (typeof separator === 'function') [separator, cb] = [undefined, separator];
    return settle(this._call('sendLine', { id: pmId, line: String(line) + String(separator ?? '\n') }), cb);
  }

  /**
   * trigger(target, action_name, [params], [cb]): runs an action the app declared with tx2/@pm2/io
   * on every matching process → the `axm:reply` packets [{process, data: {return, action_name}, at}].
   * Rejects when no process received it, or one did not answer within 10 s.
   */
  trigger(target, action, params, cb) {
    if (typeof params === 'function') [params, cb] = [undefined, params];
    const args = { target: String(target), action, params: params === undefined ? null : params };
    return settle(this._local('trigger', args), cb);
  }

  /** monitorState('monitor' | 'unmonitor', target, [cb]): PM2's `_km_monitored` flag → summaries. */
  monitorState(state, target, cb) {
    return settle(this._onTargets('monitor', target, { on: state === 'monitor' }), cb);
  }

  /** inspect(target, [cb]): restarts the app's processes with Node's inspector on → summaries. */
  inspect(target, cb) {
    return settle(this._onTargets('inspect', target), cb);
  }

  async _local(op, args, { start = false } = {}) {
    const raw = await native.local(op, JSON.stringify(args), this.home, start ? this._daemonExe : null);
    return unwrap(raw).result;
  }

  /**
   * serve([path], [port], [opts], [cb]): serves a folder's static files as the managed app
   * `static-page-server-<port>` (opts: spa, basicAuthUsername, basicAuthPassword, host, name)
   * → {name, path, port}
   */
  serve(dir, port, opts, cb) {
    if (typeof dir === 'function') [dir, port, opts, cb] = [undefined, undefined, undefined, dir];
    if (typeof port === 'function') [port, opts, cb] = [undefined, undefined, port];
    [opts, cb] = optsAndCb(opts, cb);
    const args = Object.assign({}, opts, { path: dir === undefined ? '.' : String(dir), cwd: this.cwd });
    if (port !== undefined && port !== null) args.port = String(port);
    return settle(this._local('serve', args, { start: true }), cb);
  }

  /** report([cb]): versions, daemon, system, apps with their last log lines, the daemon log's end. */
  report(cb) {
    return settle(this._local('report', {}), cb);
  }

  /**
   * deploy(file, commands, [cb]): PM2's deploy over ssh and git, as `rpm2 deploy`. `commands` is
   * PM2's commander object (`{rawArgs}`, the words after `deploy` are used) or an array of the words
   * after `file` (`['production', 'setup']`). Progress goes to stdout → {env, hosts: [{host, ref, ok,
   * error, seconds}]}; when a host fails the error (code `deploy_failed`) carries them as `detail`.
   */
  deploy(file, commands, cb) {
    if (typeof commands === 'function') [commands, cb] = [undefined, commands];
    return settle(this._local('deploy', { file, commands: commands ?? null, cwd: this.cwd }), cb);
  }

  /** set(key, value, [cb]): PM2's module configuration (RPM2_HOME/module_conf.json) → {success} */
  set(key, value, cb) {
    return settle(this._local('conf.set', { key, value: value === undefined ? '' : String(value) }), cb);
  }

  /** get([key], [cb]): a value (or a module's object); the whole store without a key. */
  get(key, cb) {
    if (typeof key === 'function') [key, cb] = [undefined, key];
    return settle(this._local('conf.get', key === undefined ? {} : { key }), cb);
  }

  /** conf(key, [value], [cb]): set with a value, else get. */
  conf(key, value, cb) {
    if (typeof value === 'function') [value, cb] = [undefined, value];
    return value === undefined || value === null ? this.get(key, cb) : this.set(key, value, cb);
  }

  /** launchBus([cb]) → the Bus, once it receives events. */
  launchBus(cb) {
    const bus = new Bus();
    const p = new Promise((resolve, reject) => {
      let ready = false;
      const onMsg = (raw) => {
        const m = JSON.parse(raw); // the addon's own JSON: {kind: event | ready | error | end, ...}
        if (m.kind === 'event') {
          if (!bus.closed) bus._dispatch(m.topic, m.data);
        } else if (m.kind === 'ready') {
          ready = true;
          if (bus.closed) reject(rpm2Error('the bus was closed before it was ready', 'closed'));
          else resolve(bus);
        } else if (m.kind === 'error') {
          bus.closed = true;
          this._buses.delete(bus);
          reject(rpm2Error(m.message, m.code));
        } else if (m.kind === 'end') {
          const wasClosed = bus.closed;
          bus.closed = true;
          this._buses.delete(bus);
          if (!ready) reject(rpm2Error('the bus was closed before it was ready', 'closed'));
          bus.emit('close', { byUser: wasClosed });
        }
      };
      try {
        bus._handle = native.subscribe([], [], this.home, this._daemonExe, onMsg);
        this._buses.add(bus);
      } catch (e) {
        reject(rpm2Error(e.message, 'connection'));
      }
    });
    return settle(p, cb);
  }

  /** killDaemon([cb]): stops every app and the daemon → {success: true}. */
  killDaemon(cb) {
    return settle(native.killDaemon(this.home).then((raw) => unwrap(raw).result), cb);
  }

  /**
   * Runs the rpm2 CLI in this process (a fallback for where the native executable cannot run).
   * `args` excludes the program name: runCli(['list']). Resolves to the exit code.
   */
  runCli(args, cb) {
    return settle(native.runCli(['rpm2', ...(args || [])], this._daemonExe), cb);
  }
}

// start(script | app | apps[] | file, [opts], [cb]); startOrRestart(...) starts what is not running and
// restarts the rest; startOrReload(...) reloads the rest.
for (const [method, reload, orRestart] of [['start', false, false], ['startOrRestart', false, true],
  ['startOrReload', true, true]]) {
  RPM2.prototype[method] = function start(cmd, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._start(cmd, opts, reload, orRestart), cb);
  };
}

// ping([cb]) → {msg: 'pong'}; getVersion([cb]) → the daemon's version; reloadLogs([cb]) reopens every
// log file → {}.
for (const [method, call] of [['ping', 'ping'], ['getVersion', 'version'], ['reloadLogs', 'reloadLogs']]) {
  RPM2.prototype[method] = function daemonCall(cb) {
    return settle(this._call(call), cb);
  };
}

// monitor(target, [cb]) / unmonitor(target, [cb]): see monitorState. multiset("k1 v1 k2 v2", [cb])
// and unset(key, [cb]) → {success}.
for (const state of ['monitor', 'unmonitor']) {
  RPM2.prototype[state] = function monitor(target, cb) {
    return this.monitorState(state, target, cb);
  };
}
for (const [method, arg] of [['multiset', 'serial'], ['unset', 'key']]) {
  RPM2.prototype[method] = function conf(value, cb) {
    return settle(this._local(`conf.${method}`, { [arg]: value }), cb);
  };
}

// stop(target, [cb]); restart(target, [opts], [cb]) (opts.updateEnv refreshes the environment from
// process.env); reload(target, [opts], [cb]) (zero-downtime in cluster mode, a restart in fork mode);
// delete(target, [cb]) (stops and removes from the list); reset(target, [cb]) (zeroes the restart
// counters). Each resolves to PM2's `_operate` items: {name, namespace, pm_id, status, ...}.
for (const method of ['stop', 'restart', 'reload', 'delete', 'reset']) {
  RPM2.prototype[method] = function operate(target, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._operate(method, target, opts), cb);
  };
}

// dump([force], [cb]): saves the app list (`rpm2 save`) → {success: true}; resurrect([cb]): starts the
// saved apps that are not running → the processes started; scale(name, number | '+N' | '-N', [cb]) →
// {success: true}. The CLI's code, in the core.
Object.assign(RPM2.prototype, {
  dump(force, cb) {
    if (typeof force === 'function') [force, cb] = [false, force];
    return settle(this._local('dump', { force: !!force }, { start: true }), cb);
  },
  resurrect(cb) {
    return settle(this._local('resurrect', {}, { start: true }), cb);
  },
  scale(name, number, cb) {
    return settle(this._local('scale', { name: String(name), number: String(number) }, { start: true }), cb);
  },
  /** getProcessIdByName(name, [cb]) → the pm_ids of the app's processes ([] when none). */
  getProcessIdByName(name, cb) {
    return settle(this.describe(name).then((l) => l.map((p) => p.pm_id)), cb);
  },
});

// PM2's aliases: close = disconnect, startOrGracefulReload = startOrReload, gracefulReload = reload
// (older PM2), kill = killDaemon.
Object.assign(RPM2.prototype, {
  close: RPM2.prototype.disconnect,
  startOrGracefulReload: RPM2.prototype.startOrReload,
  gracefulReload: RPM2.prototype.reload,
  kill: RPM2.prototype.killDaemon,
  sendSignalToProcessId: RPM2.prototype.sendSignalToProcessName,
});

const api = new RPM2();
api.custom = RPM2;
api.RPM2 = RPM2;
api.Bus = Bus;
api.version = native.version();

module.exports = api;
