// The event bus of require('rpm2').launchBus(): an EventEmitter with PM2's wildcards, fed by the
// native subscription (index.js wires it).
'use strict';

const { EventEmitter } = require('events');

const RESERVED_TOPICS = new Set(['error', 'newListener', 'removeListener']);

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

module.exports = { Bus };
