// Types of rpm2's programmatic API (`require('rpm2')`), hand-written to match index.js.
// PM2's names and shapes; every method returns a Promise when no callback is given, and
// `undefined` (calling `cb(err, result)`) when one is.

import { EventEmitter } from 'events';

declare namespace rpm2 {
  type Callback<T> = (err: RPM2Error | null, result: T) => void;

  /**
   * The stable error codes (the core's `protocol::ErrorCode`; a unit test keeps this list equal to it):
   * `not_found` unknown target, `bad_request` wrong request, `version_mismatch` run `rpm2 update`,
   * `internal` a daemon fault, `failed` a process refused a control, `reload_failed` a rollout stopped,
   * `already_running` use restart or `-f`, `start_failed` nothing could be spawned, `nothing_to_do`,
   * `empty` dump would erase a saved list, `io` a file could not be written, `not_running` no daemon,
   * `connection` the connection failed, `bad_config` an invalid declaration or file, `closed` a
   * subscription ended, `timeout` processes did not answer a `trigger` in time.
   */
  type ErrorCode =
    | 'not_found' | 'bad_request' | 'version_mismatch' | 'internal' | 'failed' | 'reload_failed'
    | 'already_running' | 'start_failed' | 'nothing_to_do' | 'empty' | 'io' | 'not_running'
    | 'connection' | 'bad_config' | 'closed' | 'timeout';

  /** Errors carry a stable `code` besides their one-line message. */
  interface RPM2Error extends Error {
    /** One of {@link ErrorCode}; a newer daemon may send a code this version does not list. */
    code?: ErrorCode | (string & {});
    /** For `not_found` from stop/restart/...: the daemon's own message, the line the CLI prints. */
    detail?: string;
  }

  /** A process target: pm_id, name, namespace, `'all'`, `'/regex/'` (on names). */
  /**
   * A target of stop/restart/reload/delete/reset/describe/flush/sendSignal: an id, a name, a
   * namespace, `'all'`, a regular expression as `'/^api-/'` (matched against names), a script file
   * (`'echo.js'`, matched by path) or an ecosystem file (its apps).
   */
  type Target = string | number;

  /** PM2's app options (ecosystem file / `start()`); camelCase aliases are accepted too. */
  interface StartOptions {
    /** Script to run (aliases: exec, cmd, command). Required in app objects. */
    script?: string;
    name?: string;
    name_prefix?: string;
    namespace?: string;
    /** Working directory (relative paths resolve against process.cwd()). */
    cwd?: string;
    /** Arguments for the script; a string is split shell-style. */
    args?: string | string[];
    /** Alias of args (PM2's CLI-style option). */
    scriptArgs?: string | string[];
    interpreter?: string;
    exec_interpreter?: string;
    node_args?: string | string[];
    nodeArgs?: string | string[];
    interpreter_args?: string | string[];
    interpreterArgs?: string | string[];
    /** Number of instances, `'max'` or a negative number (CPUs minus N). Sets cluster mode for node. */
    instances?: number | string;
    exec_mode?: 'fork' | 'cluster' | 'fork_mode' | 'cluster_mode';
    execMode?: 'fork' | 'cluster' | 'fork_mode' | 'cluster_mode';
    watch?: boolean | string | string[];
    ignore_watch?: string | string[];
    ignoreWatch?: string | string[];
    watch_delay?: number;
    watchDelay?: number;
    watch_options?: Record<string, unknown>;
    /** Bytes, or a size with K/M/G (`'100M'`). */
    max_memory_restart?: number | string;
    maxMemoryRestart?: number | string;
    /**
     * In an app object: the app's environment (merged over process.env).
     * In `start(script|file, opts)`: an object is the app's environment; a string names the
     * `env_<name>` block of an ecosystem file.
     */
    env?: Record<string, string | number | boolean> | string;
    [envBlock: `env_${string}`]: Record<string, string | number | boolean> | undefined;
    log_date_format?: string;
    logDateFormat?: string;
    time?: boolean;
    log_type?: 'json' | string;
    error_file?: string;
    out_file?: string;
    log_file?: boolean | string;
    output?: string;
    error?: string;
    log?: boolean | string;
    merge_logs?: boolean;
    mergeLogs?: boolean;
    combine_logs?: boolean;
    disable_logs?: boolean;
    pid_file?: string;
    min_uptime?: number | string;
    minUptime?: number | string;
    max_restarts?: number;
    maxRestarts?: number;
    restart_delay?: number;
    restartDelay?: number;
    exp_backoff_restart_delay?: number;
    expBackoffRestartDelay?: number;
    autorestart?: boolean;
    autostart?: boolean;
    stop_exit_codes?: number | number[];
    cron_restart?: string;
    cronRestart?: string;
    cron?: string;
    kill_timeout?: number;
    killTimeout?: number;
    listen_timeout?: number;
    listenTimeout?: number;
    wait_ready?: boolean;
    waitReady?: boolean;
    /** Restart the instance after `failure_threshold` failed checks (see README, "Health probes"). */
    liveness_probe?: Probe;
    /** The instance is online (and gets cluster connections) only while this passes; reload waits for it. */
    readiness_probe?: Probe;
    shutdown_with_message?: boolean;
    shutdownWithMessage?: boolean;
    treekill?: boolean;
    increment_var?: string;
    incrementVar?: string;
    instance_var?: string;
    instanceVar?: string;
    port?: number;
    filter_env?: boolean | string | string[];
    append_env_to_name?: boolean;
    vizion?: boolean;
    /** false: no metrics preload in this Node app (no built-in code metrics), as PM2's `pmx: false`. */
    pmx?: boolean;
    automation?: boolean;
    uid?: string | number;
    gid?: string | number;
    /** start(): start another copy even if an app with that name runs. */
    force?: boolean;
    /** start(): with an ecosystem file, only these apps (comma-separated or a list). */
    only?: string | string[];
    /** restart()/reload(): refresh the environment from process.env. */
    updateEnv?: boolean;
    [option: string]: unknown;
  }

  /** An app declaration in an app object, an array or an ecosystem file. */
  interface AppDeclaration extends StartOptions {
    script: string;
  }

  /**
   * Options of restart() and reload(). Start options given here (`node_args`, `args`,
   * `max_memory_restart`, ...) are applied to the apps, as PM2 applies them.
   */
  interface RestartOptions extends Partial<Omit<StartOptions, 'env'>> {
    /** Replace the stored environment's values with process.env's (as `--update-env`). */
    updateEnv?: boolean;
    /** Extra variables merged over the stored environment; a string names an ecosystem `env_<name>`. */
    env?: Record<string, string> | string;
  }

  type Status = 'launching' | 'online' | 'stopping' | 'stopped' | 'waiting restart' | 'errored';

  /** `pm2_env` of a process description (PM2's `jlist` fields; more keys may be present). */
  interface Pm2Env {
    name: string;
    namespace: string;
    pm_id: number;
    status: Status;
    restart_time: number;
    unstable_restarts: number;
    created_at: number;
    pm_uptime: number;
    exec_mode: 'fork_mode' | 'cluster_mode';
    instances: number;
    exec_interpreter: string;
    pm_exec_path: string;
    pm_cwd: string;
    args: string[];
    node_args: string[];
    pm_out_log_path: string;
    pm_err_log_path: string;
    pm_pid_path: string;
    pm_log_path?: string;
    merge_logs: boolean;
    autorestart: boolean;
    autostart: boolean;
    watch: boolean | string | string[];
    max_restarts: number;
    min_uptime: number;
    kill_timeout: number;
    listen_timeout: number;
    wait_ready: boolean;
    shutdown_with_message: boolean;
    restart_delay: number;
    treekill: boolean;
    instance_var: string;
    NODE_APP_INSTANCE: number;
    unique_id: string;
    username: string;
    version: string;
    exp_backoff_restart_delay?: number;
    prev_restart_delay?: number;
    stop_exit_codes?: number[];
    max_memory_restart?: number;
    cron_restart?: string;
    log_date_format?: string;
    increment_var?: string;
    exit_code?: number;
    restart_reason?: string;
    /** The readiness probe's verdict, for apps that declare a `readiness_probe`. */
    readiness?: 'ready' | 'not ready';
    axm_monitor?: Record<string, unknown>;
    /** Actions the app declared with tx2/@pm2/io (`trigger` runs them). */
    axm_actions: Array<{ action_name: string; action_type?: string; arity?: number; opts?: unknown }>;
    /** Set by `monitor`/`unmonitor`. */
    _km_monitored?: boolean;
    /** The app's environment; values are `'[hidden]'` unless asked with `{env: true}`. */
    env: Record<string, string>;
    [key: string]: unknown;
  }

  /** One process, as list() / describe() return it (PM2's `jlist` item). */
  interface ProcessDescription {
    pid: number;
    name: string;
    pm_id: number;
    monit: { memory: number; cpu: number };
    pm2_env: Pm2Env;
  }

  /** One result item of stop/restart/reload/delete/reset (PM2's `_operate` shape). */
  interface OperateResult {
    name: string;
    namespace: string;
    pm_id: number;
    status: Status;
    restart_time: number;
    pid: number;
    pm2_env: { name: string; namespace: string; pm_id: number; status: Status; restart_time: number };
  }

  /** What start() resolves to: started processes, and (operate shape) the restarted ones. */
  type StartResult = Array<ProcessDescription | OperateResult>;

  interface ConnectResult {
    daemon_mode: true;
    /** Whether this call started the daemon. */
    new_pm2_instance: boolean;
    rpc_socket_file: string;
    /** rpm2 has one socket for calls and events: the same path as rpc_socket_file. */
    pub_socket_file: string;
    pm2_home: string;
    rpm2_home: string;
    daemon_pid?: number;
    version?: string;
  }

  interface ConnectOptions {
    /** The RPM2_HOME to use (default: process.env.RPM2_HOME, else ~/.rpm2). */
    home?: string;
    pm2_home?: string;
    /** The daemon executable (default: the package's rpm2d). */
    daemonExe?: string;
  }

  interface Packet {
    id?: number | string;
    topic: string | boolean | number;
    data: unknown;
    type?: string;
    [key: string]: unknown;
  }

  interface ProcessRef {
    pm_id: number;
    name: string;
    namespace: string;
    rev?: null;
  }

  interface ProcessEvent {
    /** `start`, `online`, `exit`, `stop`, `restart`, `reload`, `delete`, `errored`, `restart overlimit`, ... */
    event: string;
    manually: boolean;
    at: number;
    process: {
      name: string;
      namespace: string;
      pm_id: number;
      status: Status;
      restart_time: number;
      pm_uptime: number;
      exec_mode: 'fork_mode' | 'cluster_mode';
      pm_exec_path: string;
      unstable_restarts: number;
      exit_code?: number | null;
      exit_signal?: string | null;
      [key: string]: unknown;
    };
  }

  interface LogPacket {
    process: ProcessRef;
    at: number;
    data: string;
  }

  /** A child's `process.send({type, data})`: the bus topic is `type`. */
  interface MessagePacket<T = unknown> {
    at: number;
    data: T;
    process: ProcessRef;
  }

  /** A child's `process.send(anything else)`: on `process:msg` as `raw`. */
  interface RawMessagePacket {
    at: number;
    raw: unknown;
    process: ProcessRef;
  }

  /**
   * The event bus. Exact topics receive `(data)`; patterns with `*` receive what each `*` matched,
   * then the data: `bus.on('log:*', (type, data) => ...)` gets `'out'`/`'err'`,
   * `bus.on('*', (topic, data) => ...)` gets every topic. `'close'` is emitted when the bus ends.
   */
  interface Bus extends EventEmitter {
    readonly closed: boolean;
    on(event: 'process:event', listener: (data: ProcessEvent) => void): this;
    on(event: 'log:out' | 'log:err', listener: (data: LogPacket) => void): this;
    on(event: 'log:*', listener: (type: 'out' | 'err' | string, data: LogPacket) => void): this;
    on(event: 'process:msg', listener: (data: MessagePacket | RawMessagePacket) => void): this;
    on(event: '*', listener: (topic: string, data: any) => void): this;
    on(event: 'close', listener: (info: { byUser: boolean }) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
    once(event: string, listener: (...args: any[]) => void): this;
    /** Stops receiving events and releases the connection (idempotent). */
    close(): void;
    /** Alias of close(). */
    disconnect(): void;
  }

  interface SendDataResult {
    success: true;
    data: Packet;
  }

  /** One `axm:reply` of `trigger()`. */
  interface ActionReply {
    process: ProcessRef;
    data: { return: unknown; action_name: string };
    at: number;
  }

  interface ServeOptions {
    spa?: boolean;
    basicAuthUsername?: string;
    basicAuthPassword?: string;
    /** Address to bind (default 127.0.0.1). */
    host?: string;
    /** App name (default static-page-server-<port>). */
    name?: string;
  }

  interface ServeResult {
    name: string;
    path: string;
    port: number;
  }

  interface DeployHost {
    /** `host`, or `host:port`. */
    host: string;
    /** The ref deployed, with the commit the host ended on when known. */
    ref: string;
    ok: boolean;
    /** The one-line reason it failed (null when ok). */
    error: string | null;
    seconds: number;
  }

  interface DeployResult {
    env?: string;
    hosts?: DeployHost[];
    /** Set when no environment was given and the help was printed. */
    help?: true;
  }

  interface API {
    /** The class behind the singleton: `new rpm2.custom({home})` talks to another RPM2_HOME. */
    custom: typeof RPM2;
    RPM2: typeof RPM2;
    /** The version of this package (the addon's core). */
    version: string;
  }
}

declare class RPM2 {
  constructor(opts?: { home?: string; pm2_home?: string; rpm2_home?: string; cwd?: string; daemonExe?: string });

  /** The RPM2_HOME this instance talks to. */
  readonly home: string;
  readonly cwd: string;

  /** Connects (starting the daemon if needed). Optional: every call connects lazily. */
  connect(cb: rpm2.Callback<rpm2.ConnectResult>): void;
  connect(noDaemonMode: boolean | rpm2.ConnectOptions, cb: rpm2.Callback<rpm2.ConnectResult>): void;
  connect(noDaemonMode?: boolean | rpm2.ConnectOptions): Promise<rpm2.ConnectResult>;

  /** Closes every bus of this instance; a script then exits by itself. */
  disconnect(cb: rpm2.Callback<void>): void;
  disconnect(): Promise<void>;
  close(cb: rpm2.Callback<void>): void;
  close(): Promise<void>;

  /** start(script, [opts]), start(app | apps, [opts]), start('ecosystem.config.js', [opts]). */
  start(script: string | rpm2.AppDeclaration | rpm2.AppDeclaration[] | { apps: rpm2.AppDeclaration[] },
    cb: rpm2.Callback<rpm2.StartResult>): void;
  start(script: string | rpm2.AppDeclaration | rpm2.AppDeclaration[] | { apps: rpm2.AppDeclaration[] },
    opts: rpm2.StartOptions, cb: rpm2.Callback<rpm2.StartResult>): void;
  start(script: string | rpm2.AppDeclaration | rpm2.AppDeclaration[] | { apps: rpm2.AppDeclaration[] },
    opts?: rpm2.StartOptions): Promise<rpm2.StartResult>;

  startOrRestart(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrRestart(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts: rpm2.StartOptions,
    cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrRestart(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts?: rpm2.StartOptions):
    Promise<rpm2.StartResult>;
  startOrReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts: rpm2.StartOptions,
    cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts?: rpm2.StartOptions):
    Promise<rpm2.StartResult>;
  /** Alias of startOrReload(), as in PM2. */
  startOrGracefulReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrGracefulReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts: rpm2.StartOptions,
    cb: rpm2.Callback<rpm2.StartResult>): void;
  startOrGracefulReload(file: string | rpm2.AppDeclaration | rpm2.AppDeclaration[], opts?: rpm2.StartOptions):
    Promise<rpm2.StartResult>;

  stop(target: rpm2.Target | rpm2.Target[], cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  stop(target: rpm2.Target | rpm2.Target[]): Promise<rpm2.OperateResult[]>;

  restart(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  restart(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    opts: rpm2.RestartOptions, cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  restart(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    opts?: rpm2.RestartOptions): Promise<rpm2.OperateResult[]>;

  reload(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  reload(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    opts: rpm2.RestartOptions, cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  reload(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    opts?: rpm2.RestartOptions): Promise<rpm2.OperateResult[]>;
  gracefulReload(target: rpm2.Target | rpm2.Target[], cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  gracefulReload(target: rpm2.Target | rpm2.Target[], opts?: rpm2.RestartOptions): Promise<rpm2.OperateResult[]>;

  delete(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[],
    cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  delete(target: rpm2.Target | rpm2.Target[] | rpm2.AppDeclaration | rpm2.AppDeclaration[]):
    Promise<rpm2.OperateResult[]>;

  reset(target: rpm2.Target | rpm2.Target[], cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  reset(target: rpm2.Target | rpm2.Target[]): Promise<rpm2.OperateResult[]>;

  /** The process list (PM2's `jlist`). Environment values are hidden unless `{env: true}`. */
  list(cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  list(opts: { env?: boolean }, cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  list(opts?: { env?: boolean }): Promise<rpm2.ProcessDescription[]>;

  /** The processes matching an id, name, namespace or /regex/; unknown → `[]` (no error). */
  describe(target: rpm2.Target, cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  describe(target: rpm2.Target, opts: { env?: boolean }, cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  describe(target: rpm2.Target, opts?: { env?: boolean }): Promise<rpm2.ProcessDescription[]>;

  getPID(name: rpm2.Target, cb: rpm2.Callback<number[]>): void;
  getPID(cb: rpm2.Callback<number[]>): void;
  getPID(name?: rpm2.Target): Promise<number[]>;
  /** The pm_ids of an app's processes ([] when there are none). */
  getProcessIdByName(name: string, cb: rpm2.Callback<number[]>): void;
  getProcessIdByName(name: string): Promise<number[]>;
  /** Saves the app list (`rpm2 save`); an empty list is refused (code `empty`) unless `force`. */
  dump(force: boolean, cb: rpm2.Callback<{ success: true }>): void;
  dump(cb: rpm2.Callback<{ success: true }>): void;
  dump(force?: boolean): Promise<{ success: true }>;
  /** Starts the saved apps that are not running (`rpm2 resurrect`) → the processes started. */
  resurrect(cb: rpm2.Callback<rpm2.StartResult>): void;
  resurrect(): Promise<rpm2.StartResult>;
  /** Sets an app's number of instances (`3`), or changes it (`'+2'`, `'-1'`), as `rpm2 scale`. */
  scale(name: string, number: number | string, cb: rpm2.Callback<{ success: true }>): void;
  scale(name: string, number: number | string): Promise<{ success: true }>;

  ping(cb: rpm2.Callback<{ msg: 'pong' }>): void;
  ping(): Promise<{ msg: 'pong' }>;

  /** The daemon's version. */
  getVersion(cb: rpm2.Callback<string>): void;
  getVersion(): Promise<string>;

  /** Empties log files (every app's, and the daemon's log, when no target); resolves to the list. */
  flush(target: rpm2.Target | undefined, cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  flush(cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  flush(target?: rpm2.Target): Promise<rpm2.ProcessDescription[]>;

  /** Reopens every log file. */
  reloadLogs(cb: rpm2.Callback<{}>): void;
  reloadLogs(): Promise<{}>;

  /** Sends a signal (name like `'SIGUSR2'` or number) to every process of an app; resolves to the list. */
  sendSignalToProcessName(signal: string | number, name: rpm2.Target,
    cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  sendSignalToProcessName(signal: string | number, name: rpm2.Target): Promise<rpm2.ProcessDescription[]>;
  sendSignalToProcessId(signal: string | number, id: number | string,
    cb: rpm2.Callback<rpm2.ProcessDescription[]>): void;
  sendSignalToProcessId(signal: string | number, id: number | string): Promise<rpm2.ProcessDescription[]>;

  /** Sends `packet` (needs `id`, a truthy `topic` and `data`) verbatim on the process's IPC channel. */
  sendDataToProcessId(id: number, packet: rpm2.Packet, cb: rpm2.Callback<rpm2.SendDataResult>): void;
  sendDataToProcessId(packet: rpm2.Packet & { id: number }, cb: rpm2.Callback<rpm2.SendDataResult>): void;
  sendDataToProcessId(id: number, packet: rpm2.Packet): Promise<rpm2.SendDataResult>;
  sendDataToProcessId(packet: rpm2.Packet & { id: number }): Promise<rpm2.SendDataResult>;

  /** Writes `line` + separator (default '\n') to the stdin of a fork-mode process. */
  sendLineToStdin(pmId: number | string, line: string, separator?: string): Promise<{ pm_id: number; line: string }>;
  sendLineToStdin(pmId: number | string, line: string, cb: rpm2.Callback<{ pm_id: number; line: string }>): void;
  sendLineToStdin(pmId: number | string, line: string, separator: string,
    cb: rpm2.Callback<{ pm_id: number; line: string }>): void;

  /** Runs an action declared with tx2/@pm2/io (`axm:action`); resolves to the `axm:reply` packets. */
  trigger(target: rpm2.Target, action: string, params?: unknown): Promise<rpm2.ActionReply[]>;
  trigger(target: rpm2.Target, action: string, cb: rpm2.Callback<rpm2.ActionReply[]>): void;
  trigger(target: rpm2.Target, action: string, params: unknown, cb: rpm2.Callback<rpm2.ActionReply[]>): void;

  /** Sets (`monitor`) or clears (`unmonitor`) PM2's `_km_monitored` flag of processes. */
  monitorState(state: 'monitor' | 'unmonitor', target: rpm2.Target): Promise<rpm2.OperateResult[]>;
  monitorState(state: 'monitor' | 'unmonitor', target: rpm2.Target, cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  monitor(target: rpm2.Target): Promise<rpm2.OperateResult[]>;
  monitor(target: rpm2.Target, cb: rpm2.Callback<rpm2.OperateResult[]>): void;
  unmonitor(target: rpm2.Target): Promise<rpm2.OperateResult[]>;
  unmonitor(target: rpm2.Target, cb: rpm2.Callback<rpm2.OperateResult[]>): void;

  /** Restarts processes with Node's inspector on (`--inspect` in their node args). */
  inspect(target: rpm2.Target): Promise<rpm2.OperateResult[]>;
  inspect(target: rpm2.Target, cb: rpm2.Callback<rpm2.OperateResult[]>): void;

  /** Serves a folder's static files as the app `static-page-server-<port>` (127.0.0.1 by default). */
  serve(path?: string, port?: number | string, opts?: rpm2.ServeOptions): Promise<rpm2.ServeResult>;
  serve(path: string, port: number | string, opts: rpm2.ServeOptions, cb: rpm2.Callback<rpm2.ServeResult>): void;

  /** What a bug report needs: versions, daemon, system, apps with their last log lines. */
  report(): Promise<Record<string, unknown>>;
  report(cb: rpm2.Callback<Record<string, unknown>>): void;

  /**
   * PM2's deploy over ssh and git, as `rpm2 deploy`: `commands` is PM2's `{rawArgs}` or the words
   * after `file` (`['production', 'setup']`). Rejects with code `deploy_failed` (hosts in `detail`)
   * when a host fails.
   */
  deploy(file: string, commands?: { rawArgs: string[] } | string[] | string): Promise<rpm2.DeployResult>;
  deploy(file: string, commands: { rawArgs: string[] } | string[] | string, cb: rpm2.Callback<rpm2.DeployResult>): void;

  /** PM2's module configuration store (RPM2_HOME/module_conf.json). */
  set(key: string, value: string | number): Promise<{ success: true }>;
  set(key: string, value: string | number, cb: rpm2.Callback<{ success: true }>): void;
  multiset(serial: string): Promise<{ success: true }>;
  multiset(serial: string, cb: rpm2.Callback<{ success: true }>): void;
  unset(key: string): Promise<{ success: true }>;
  unset(key: string, cb: rpm2.Callback<{ success: true }>): void;
  get(key?: string): Promise<unknown>;
  get(key: string, cb: rpm2.Callback<unknown>): void;
  conf(key: string, value?: string | number): Promise<unknown>;
  conf(key: string, value: string | number | undefined, cb: rpm2.Callback<unknown>): void;

  /** Opens the event bus; resolves once it receives events. It holds the event loop until closed. */
  launchBus(cb: (err: rpm2.RPM2Error | null, bus: rpm2.Bus) => void): void;
  launchBus(): Promise<rpm2.Bus>;

  /** Stops every app and the daemon. Succeeds (without starting one) when no daemon runs. */
  killDaemon(cb: rpm2.Callback<{ success: true }>): void;
  killDaemon(): Promise<{ success: true }>;
  kill(cb: rpm2.Callback<{ success: true }>): void;
  kill(): Promise<{ success: true }>;

  /** Runs the rpm2 CLI in this process (fallback); `args` excludes the program name. */
  runCli(args: string[], cb: rpm2.Callback<number>): void;
  runCli(args: string[]): Promise<number>;
}

declare const rpm2: RPM2 & rpm2.API & { Bus: new () => rpm2.Bus };
export = rpm2;/** A Kubernetes-style health probe: exactly one of `http_get`, `tcp_socket`, `exec`, `event_loop`. */
export interface Probe {
  http_get?: { host?: string; port: number | string; path?: string; scheme?: 'HTTP' | 'http'; http_headers?: { name: string; value: string }[] };
  tcp_socket?: { host?: string; port: number | string };
  exec?: { command: string[] | string };
  /** The event loop must answer (rpm2's preload reports it every second; Node apps only). */
  event_loop?: Record<string, never>;
  /** Seconds before the first check (default 0). */
  initial_delay_seconds?: number;
  /** Seconds between checks (default 10). */
  period_seconds?: number;
  /** Seconds before a check fails (default 1). */
  timeout_seconds?: number;
  /** Failures in a row that fail the probe (default 3). */
  failure_threshold?: number;
  /** Successes in a row that pass it (default 1; 1 for liveness). */
  success_threshold?: number;
}


