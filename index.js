// rpm2's programmatic API: `require('rpm2')`, with PM2's method names, arguments and result shapes.
//
// Every method returns a Promise when no callback is given, and calls `cb(err, result)` when one is
// (then it returns undefined, as PM2 does). Errors are `Error`s with a one-line `message` and a
// stable `code` (`not_found`, `bad_request`, `already_running`, `not_running`, `connection`, ...).
//
// The work is done by the native addon (found by ./loader.js: a local build, or the platform
// package) over rpm2's Rust core.
// start/stop/restart/reload/delete/reset run the core's start/operate flow, the code behind the CLI's
// `rpm2 start|stop|...`: this file only shapes PM2's arguments and wraps Promises and callbacks.
// Each call opens a short connection to the daemon (starting it with the package's `rpm2d` when it
// is not running), so nothing stays open between calls; only a bus from launchBus() holds the
// event loop, until bus.close() or disconnect().
'use strict';

const os = require('os');
const path = require('path');
const { EventEmitter } = require('events');
const { native, daemonExe: DAEMON_EXE } = require('./loader.js').load();

const CONFIG_FILE = /\.(json5?|ya?ml|config\.(c|m)?js)$/i;
const RESERVED_TOPICS = new Set(['error', 'newListener', 'removeListener']);

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

/**
 * The event bus of launchBus(): an EventEmitter with PM2's wildcards. `bus.on('process:event', d)`,
 * `bus.on('log:*', (type, d))`, `bus.on('*', (topic, d))`; every `*` in a pattern matches one or
 * more characters and its match is passed before the payload.
 */
class Bus extends EventEmitter {
  constructor() {
    super();
    this.closed = false;
    this._handle = null;
    this._patterns = new Map();
  }

  _match(pattern) {
    let re = this._patterns.get(pattern);
    if (!re) {
      const src = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('(.+)');
      re = new RegExp(`^${src}$`);
      this._patterns.set(pattern, re);
    }
    return re;
  }

  _dispatch(topic, data) {
    if (!RESERVED_TOPICS.has(topic) && !topic.includes('*')) super.emit(topic, data);
    for (const name of this.eventNames()) {
      if (typeof name !== 'string' || !name.includes('*')) continue;
      const m = this._match(name).exec(topic);
      if (m) super.emit(name, ...m.slice(1), data);
    }
  }

  /** Stops receiving events and releases the connection (idempotent). */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this._handle) this._handle.close();
  }

  /** Alias of close(). */
  disconnect() {
    this.close();
  }
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
  async _call(method, params = {}, { start = true, full = false } = {}) {
    const env = unwrap(await native.call(method, JSON.stringify(params), this.home, start ? this._daemonExe : null));
    return full ? env : env.result;
  }

  // Targets for the daemon: strings (ids, names, namespaces, 'all', '/regex/', script and ecosystem
  // files: the core resolves them) and app objects (the core acts on their names).
  async _targets(target) {
    const out = [];
    for (const t of Array.isArray(target) ? target : [target]) {
      if (t === undefined || t === null || t === '') {
        throw rpm2Error('a target is needed: an id, a name, a namespace, "all" or an ecosystem file', 'bad_request');
      }
      out.push(typeof t === 'object' ? t : String(t));
    }
    return out;
  }

  // ---- connection ---------------------------------------------------------------------------------

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
    const p = this._call('info', {}, { full: true }).then(({ started_daemon: started, result: r }) => {
      const [home, sock] = [this.home, path.join(this.home, 'rpc.sock')];
      return { daemon_mode: true, new_pm2_instance: !!started, rpc_socket_file: sock, pub_socket_file: sock,
        pm2_home: home, rpm2_home: home, daemon_pid: r && r.pid, version: r && r.version };
    });
    return settle(p, cb);
  }

  /** Closes every bus opened by this instance. Nothing else stays open between calls. */
  disconnect(cb) {
    for (const bus of this._buses) bus.close();
    this._buses.clear();
    return settle(Promise.resolve(), cb);
  }

  // ---- the start/operate flow -------------------------------------------------------------------------

  /** start(script | app | apps[] | 'ecosystem.config.js', [opts], [cb]) */
  start(cmd, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._start(cmd, opts, false), cb);
  }

  // `reload`: existing declared apps are reloaded rather than restarted; `orRestart` (startOrRestart,
  // startOrReload): a script whose app exists is restarted/reloaded rather than refused.
  async _start(cmd, opts, reload, orRestart = false) {
    if (typeof cmd === 'number') return this._operate('restart', cmd, opts);
    const decl = cmd !== null && typeof cmd === 'object';
    // A declaration's `cwd` option is where its relative paths resolve; a script's is the app's cwd.
    const file = typeof cmd === 'string' && CONFIG_FILE.test(cmd);
    const cwd = opts.cwd && (decl || file) ? path.resolve(this.cwd, opts.cwd) : this.cwd;
    const input = decl ? { apps: cmd } : { script: typeof cmd === 'string' ? cmd : '' };
    const o = JSON.stringify({ cwd, env: process.env, reload, orRestart, options: opts });
    return unwrap(await native.start(JSON.stringify(input), o, this.home, this._daemonExe)).result;
  }

  /** startOrRestart(file | script | apps, [opts], [cb]): starts what is not running, restarts the rest. */
  startOrRestart(cmd, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._start(cmd, opts, false, true), cb);
  }

  /** startOrReload(file | script | apps, [opts], [cb]): starts what is not running, reloads the rest. */
  startOrReload(cmd, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._start(cmd, opts, true, true), cb);
  }

  // stop/restart/reload/delete/reset. Restarting or reloading a declaration (app objects or an
  // ecosystem file) applies it; opts.updateEnv takes process.env, opts.env (an object) sets values.
  async _operate(method, target, opts = {}) {
    const targets = JSON.stringify(await this._targets(target));
    const o = JSON.stringify({ cwd: this.cwd, env: process.env, options: opts });
    return unwrap(await native.operate(method, targets, o, this.home, this._daemonExe)).result;
  }

  // ---- reading ----------------------------------------------------------------------------------------

  /** list([opts], [cb]): PM2's `jlist` objects. Environment values are hidden unless opts.env. */
  list(opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    return settle(this._call('list', { env: !!opts.env }), cb);
  }

  /** describe(target, [cb]): the list objects of the matching processes; unknown target → []. */
  describe(target, opts, cb) {
    [opts, cb] = optsAndCb(opts, cb);
    const env = !!opts.env;
    const none = (e) => (e.code === 'not_found' ? [] : Promise.reject(e)); // unknown target → []
    const p = this._call('describe', { targets: [String(target)], env }).catch(none);
    return settle(p, cb);
  }

  /** getPID(name, [cb]): the pids of an app (all processes when no name). */
  getPID(name, cb) {
    if (typeof name === 'function') [name, cb] = [undefined, name];
    const p = (name === undefined ? this._call('list') : this.describe(name)).then((l) => l.map((x) => x.pid));
    return settle(p, cb);
  }

  /** ping([cb]) → {msg: 'pong'} */
  ping(cb) {
    return settle(this._call('ping'), cb);
  }

  /** getVersion([cb]) → the daemon's version. */
  getVersion(cb) {
    return settle(this._call('version'), cb);
  }

  // ---- logs, signals and messages ---------------------------------------------------------------------

  // A daemon call on targets whose not_found error says PM2's words; resolves to the process list.
  async _onTargets(method, params, target) {
    await this._call(method, params).catch((e) => {
      throw e.code === 'not_found' ? rpm2Error(`process or namespace not found: ${target}`, 'not_found') : e;
    });
    return this._call('list');
  }

  /** flush([target], [cb]): empties log files (all, and the daemon's log, when no target). */
  flush(target, cb) {
    if (typeof target === 'function') [target, cb] = [undefined, target];
    const all = target === undefined || target === null || target === 'all';
    const p = (all ? Promise.resolve([]) : this._targets(target)).then((targets) =>
      this._onTargets('flush', { targets }, target));
    return settle(p, cb);
  }

  /** reloadLogs([cb]): reopens every log file → {} */
  reloadLogs(cb) {
    return settle(this._call('reloadLogs'), cb);
  }

  async _signal(signal, target) {
    return this._onTargets('signal', { signal: String(signal), targets: await this._targets(target) }, target);
  }

  /** sendSignalToProcessName(signal, name, [cb]) → the process list (sendSignalToProcessId too) */
  sendSignalToProcessName(signal, name, cb) {
    return settle(this._signal(signal, name), cb);
  }

  /**
   * sendDataToProcessId(id, packet, [cb]) or sendDataToProcessId(packet, [cb]): sends `packet`
   * (which needs `id`, a truthy `topic` and `data`) verbatim on the process's IPC channel.
   * → {success: true, data: packet}
   */
  sendDataToProcessId(id, packet, cb) {
    if (id && typeof id === 'object' && (typeof packet === 'function' || packet === undefined)) {
      [packet, cb] = [id, packet];
    } else if (packet && typeof packet === 'object') {
      packet = Object.assign({}, packet, { id });
    }
    const ok = packet && typeof packet === 'object' && packet.id !== undefined && packet.data !== undefined &&
      packet.topic;
    const p = ok
      ? this._call('send', { id: packet.id, packet })
      : Promise.reject(rpm2Error('ID, DATA or TOPIC field is missing', 'bad_request'));
    return settle(p, cb);
  }

  /**
   * sendLineToStdin(pm_id, line, [separator], [cb]): writes `line` + separator ('\n') to the stdin of
   * a fork-mode process → {pm_id, line}
   */
  sendLineToStdin(pmId, line, separator, cb) {
    if (typeof separator === 'function') [separator, cb] = [undefined, separator];
    const sep = separator === undefined || separator === null ? '\n' : String(separator);
    return settle(this._call('sendLine', { id: pmId, line: String(line) + sep }), cb);
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
    const p = target === undefined || target === null || target === ''
      ? Promise.reject(rpm2Error('Please specify an <app_name|pm_id>', 'bad_request'))
      : this._call('monitor', { targets: [String(target)], on: state === 'monitor' });
    return settle(p, cb);
  }

  /** monitor(target, [cb]) / unmonitor(target, [cb]): see monitorState. */
  monitor(target, cb) {
    return this.monitorState('monitor', target, cb);
  }

  unmonitor(target, cb) {
    return this.monitorState('unmonitor', target, cb);
  }

  /** inspect(target, [cb]): restarts the app's processes with Node's inspector on → summaries. */
  inspect(target, cb) {
    return settle(this._call('inspect', { targets: [String(target)] }), cb);
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
    const args = Object.assign({}, opts, { path: dir === undefined ? this.cwd : path.resolve(this.cwd, dir) });
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
    let words;
    if (file === 'help') words = ['help'];
    else if (commands && Array.isArray(commands.rawArgs)) {
      words = commands.rawArgs.slice(commands.rawArgs.indexOf('deploy') + 1).map(String);
    } else if (Array.isArray(commands)) words = [file, ...commands].map(String);
    else words = [file, ...(commands === undefined || commands === null ? [] : [commands])].map(String);
    return settle(this._local('deploy', { words, cwd: this.cwd }), cb);
  }

  /** set(key, value, [cb]): PM2's module configuration (RPM2_HOME/module_conf.json) → {success} */
  set(key, value, cb) {
    return settle(this._local('conf.set', { key, value: value === undefined ? '' : String(value) }), cb);
  }

  /** multiset("k1 v1 k2 v2", [cb]) → {success} */
  multiset(serial, cb) {
    return settle(this._local('conf.multiset', { serial }), cb);
  }

  /** unset(key, [cb]) → {success} */
  unset(key, cb) {
    return settle(this._local('conf.unset', { key }), cb);
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

  // ---- bus ----------------------------------------------------------------------------------------------------

  /** launchBus([cb]) → the Bus, once it receives events. */
  launchBus(cb) {
    const bus = new Bus();
    const p = new Promise((resolve, reject) => {
      let ready = false;
      const onMsg = (raw) => {
        let m;
        try {
          m = JSON.parse(raw);
        } catch {
          return;
        }
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

  // ---- daemon ---------------------------------------------------------------------------------------------------

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
