// The sandbox of Node-RED's function node, evaluated once in every node's own QuickJS context.
// Host functions (__py_*) are added by edge_runner.lib.js before this runs. Values cross the
// boundary as JSON text; "\u0001B" (Buffer, base64), "\u0001D" (Date, ms) and "\u0001H"
// (a host object such as an http response, by handle) mark what JSON cannot hold.
(function () {
  "use strict";
  const G = globalThis;
  const py = {
    send: G.__py_send, report: G.__py_report, ctx: G.__py_ctx, env: G.__py_env,
    timer: G.__py_timer, clear: G.__py_clear, crypto: G.__py_crypto, link: G.__py_link,
  };
  for (const name of Object.keys(G)) {
    if (name.startsWith("__py_")) delete G[name];
  }

  // ------------------------------------------------------------------ Buffer
  function utf8Encode(text) {
    const out = [];
    for (let i = 0; i < text.length; i++) {
      let c = text.charCodeAt(i);
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
        else c = 0xfffd;
      } else if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return out;
  }
  function utf8Decode(bytes, start, end) {
    let s = "";
    for (let i = start; i < end;) {
      const b = bytes[i];
      let c = 0xfffd, n = 1;
      if (b < 0x80) c = b;
      else if (b >= 0xc2 && b < 0xe0 && i + 1 < end && (bytes[i + 1] & 0xc0) === 0x80) {
        c = ((b & 31) << 6) | (bytes[i + 1] & 63); n = 2;
      } else if (b >= 0xe0 && b < 0xf0 && i + 2 < end && (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80) {
        c = ((b & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63); n = 3;
      } else if (b >= 0xf0 && b < 0xf5 && i + 3 < end && (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80 && (bytes[i + 3] & 0xc0) === 0x80) {
        c = ((b & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63); n = 4;
      }
      s += String.fromCodePoint(c);
      i += n;
    }
    return s;
  }
  function toBytes(value, encoding) {
    const enc = String(encoding || "utf8").toLowerCase();
    const text = String(value);
    if (enc === "hex") return Uint8Array.fromHex(text.length % 2 ? text.slice(0, -1) : text);
    if (enc === "base64" || enc === "base64url") {
      const clean = text.replace(/[^A-Za-z0-9+/_-]/g, "");
      return Uint8Array.fromBase64(clean, { alphabet: enc === "base64url" || /[-_]/.test(clean) ? "base64url" : "base64", lastChunkHandling: "loose" });
    }
    if (enc === "ascii" || enc === "latin1" || enc === "binary") {
      return Uint8Array.from(text, (ch) => ch.charCodeAt(0) & 255);
    }
    return utf8Encode(text);
  }
  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return Buffer._wrap(toBytes(value, encodingOrOffset));
      if (value instanceof ArrayBuffer) return new Buffer(value, encodingOrOffset || 0, length);
      if (value && value.type === "Buffer" && Array.isArray(value.data)) return Buffer._wrap(value.data);
      return Buffer._wrap(value);
    }
    static _wrap(bytes) {
      const buf = new Buffer(bytes.length);
      buf.set(bytes);
      return buf;
    }
    static alloc(size, fill) { const b = new Buffer(size); if (fill !== undefined) b.fill(typeof fill === "string" ? fill.charCodeAt(0) : fill); return b; }
    static allocUnsafe(size) { return new Buffer(size); }
    static isBuffer(value) { return value instanceof Buffer; }
    static byteLength(value, encoding) { return typeof value === "string" ? toBytes(value, encoding).length : value.length; }
    static concat(list, total) {
      const size = total === undefined ? list.reduce((n, b) => n + b.length, 0) : total;
      const out = Buffer.alloc(size);
      let at = 0;
      for (const b of list) { if (at >= size) break; out.set(b.subarray(0, size - at), at); at += b.length; }
      return out;
    }
    static isEncoding(e) { return ["utf8", "utf-8", "hex", "base64", "ascii", "latin1", "binary", "base64url"].includes(String(e).toLowerCase()); }
    toString(encoding, start, end) {
      const s = start || 0, e = end === undefined ? this.length : Math.min(end, this.length);
      const enc = String(encoding || "utf8").toLowerCase();
      const part = s === 0 && e === this.length ? this : this.subarray(s, e);
      if (enc === "hex") return Uint8Array.prototype.toHex.call(part);
      if (enc === "base64") return Uint8Array.prototype.toBase64.call(part);
      if (enc === "base64url") return Uint8Array.prototype.toBase64.call(part, { alphabet: "base64url", omitPadding: true });
      if (enc === "ascii" || enc === "latin1" || enc === "binary") {
        let out = "";
        for (let i = 0; i < part.length; i++) out += String.fromCharCode(enc === "ascii" ? part[i] & 127 : part[i]);
        return out;
      }
      return utf8Decode(this, s, e);
    }
    toJSON() { return { type: "Buffer", data: Array.from(this) }; }
    equals(other) { if (other.length !== this.length) return false; for (let i = 0; i < this.length; i++) if (this[i] !== other[i]) return false; return true; }
    slice(start, end) { return this.subarray(start, end); }
    subarray(start, end) { const v = Uint8Array.prototype.subarray.call(this, start, end); return new Buffer(v.buffer, v.byteOffset, v.length); }
    write(text, offset) { const bytes = utf8Encode(String(text)); const at = offset || 0; const n = Math.min(bytes.length, this.length - at); this.set(bytes.slice(0, n), at); return n; }
    _view() { return new DataView(this.buffer, this.byteOffset, this.length); }
  }
  const numberTypes = [["UInt8", "Uint8", 1], ["Int8", "Int8", 1], ["UInt16", "Uint16", 2], ["Int16", "Int16", 2], ["UInt32", "Uint32", 4], ["Int32", "Int32", 4], ["Float", "Float32", 4], ["Double", "Float64", 8], ["BigUInt64", "BigUint64", 8], ["BigInt64", "BigInt64", 8]];
  for (const [name, view, size] of numberTypes) {
    const ends = size === 1 ? [["", false]] : [["BE", false], ["LE", true]];
    for (const [suffix, little] of ends) {
      const read = function (offset) {
        const at = offset || 0;
        if (at < 0 || at + size > this.length) throw new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${this.length - size}. Received ${at}`);
        return this._view()["get" + view](at, little);
      };
      const write = function (value, offset) { const at = offset || 0; this._view()["set" + view](at, value, little); return at + size; };
      Buffer.prototype["read" + name + suffix] = read;
      Buffer.prototype["write" + name + suffix] = write;
      if (name.startsWith("UInt") || name === "BigUInt64") {
        Buffer.prototype["readUint" + name.slice(4) + suffix] = read;
        Buffer.prototype["writeUint" + name.slice(4) + suffix] = write;
      }
    }
  }
  G.Buffer = Buffer;

  // ------------------------------------------------------------------ crossing the boundary
  // quickjs-ng builds concatenated strings as ropes, which the binding cannot hand to Python;
  // a JSON round trip makes a flat string (only off the message path)
  const flat = (text) => JSON.parse(JSON.stringify(text));
  let special = false;
  let crossing = false;
  // Buffer's and Date's toJSON write markers only while a value crosses to the host; user code
  // calling JSON.stringify gets Node's forms. (Swapping the methods per call instead costs a
  // shape change of both prototypes per message.)
  const nodeBufferJSON = Buffer.prototype.toJSON;
  const nodeDateJSON = Date.prototype.toJSON;
  Object.defineProperty(Buffer.prototype, "toJSON", {
    value: function toJSON() {
      if (!crossing) return nodeBufferJSON.call(this);
      special = true;
      return { "\u0001B": Uint8Array.prototype.toBase64.call(this) };
    },
    writable: true, configurable: true,
  });
  Object.defineProperty(Date.prototype, "toJSON", {
    value: function toJSON(key) {
      if (!crossing) return nodeDateJSON.call(this, key);
      special = true;
      const t = this.getTime();
      return isNaN(t) ? null : { "\u0001D": t };
    },
    writable: true, configurable: true,
  });
  // An Error crosses with its name, message and stack (JSON.stringify gives {} for it).
  Object.defineProperty(Error.prototype, "toJSON", {
    value: function toJSON() {
      if (!crossing) return {};
      special = true;
      const text = errorText(this);
      const stack = `${text}\n${String(this.stack || "").trimEnd()}`;
      return { "\u0001E": { name: String(this.name), message: String(this.message), stack, text } };
    },
    writable: true, configurable: true,
  });
  // Returns the JSON text; ``encode.special`` tells whether a marker was written.
  function encode(value) {
    special = false;
    crossing = true;
    try {
      return JSON.stringify(value);
    } finally {
      crossing = false;
      encode.special = special;
    }
  }
  function revive(key, value) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      if ("\u0001B" in value) return Buffer.from(value["\u0001B"], "base64");
      if ("\u0001D" in value) return new Date(value["\u0001D"]);
      if ("\u0001E" in value) {
        const data = value["\u0001E"];
        const err = new Error(data.message);
        err.name = data.name;
        return err;
      }
    }
    return value;
  }
  function decode(text, marked) {
    if (text === null || text === undefined) return undefined;
    return marked ? JSON.parse(text, revive) : JSON.parse(text);
  }
  function show(value) {
    // what node.warn/log/error give the host: text as is, Errors as "Name: message", anything
    // else as JSON (Buffers as {type, data}, as Node-RED's log shows them)
    if (value instanceof Error) return errorText(value);
    if (typeof value === "string") return value;
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  }

  // ------------------------------------------------------------------ RED.util
  function cloneValue(value) {
    if (value === null || typeof value !== "object") return value;
    if (value instanceof Buffer) return Buffer.from(value);
    if (value instanceof Date) return new Date(value.getTime());
    if (value instanceof RegExp) return value;
    if (Array.isArray(value)) return value.map(cloneValue);
    if (value["\u0001H"] !== undefined) return value;
    const out = {};
    for (const key of Object.keys(value)) out[key] = cloneValue(value[key]);
    return out;
  }
  function cloneMessage(msg) {
    if (msg === null || typeof msg !== "object") return msg;
    const out = {};
    for (const key of Object.keys(msg)) out[key] = key === "req" || key === "res" ? msg[key] : cloneValue(msg[key]);
    return out;
  }
  function normalisePropertyExpression(expr) {
    const text = String(expr);
    const parts = [];
    let i = 0;
    const fail = () => { throw new Error("Invalid property expression: " + text); };
    while (i < text.length) {
      if (text[i] === ".") { if (i === 0) fail(); i++; }
      if (text[i] === "[") {
        const close = text.indexOf("]", i);
        if (close < 0) fail();
        let inner = text.slice(i + 1, close).trim();
        if (/^['"]/.test(inner)) {
          const q = inner[0];
          const end = text.indexOf(q + "]", i + 2);
          if (end < 0) fail();
          parts.push(text.slice(text.indexOf(q, i) + 1, end));
          i = end + 2;
        } else if (/^-?\d+$/.test(inner)) { parts.push(Number(inner)); i = close + 1; }
        else fail();
      } else {
        const m = /^[^.[\]]+/.exec(text.slice(i));
        if (!m) fail();
        parts.push(m[0].trim());
        i += m[0].length;
      }
    }
    if (!parts.length) fail();
    return parts;
  }
  function getObjectProperty(obj, expr) {
    let cur = obj;
    for (const part of normalisePropertyExpression(expr)) {
      if (cur === null || cur === undefined) return undefined;
      cur = cur[part];
    }
    return cur;
  }
  function getMessageProperty(msg, expr) {
    const path = String(expr).startsWith("msg.") ? String(expr).slice(4) : expr;
    return getObjectProperty(msg, path);
  }
  function setObjectProperty(obj, expr, value, createMissing) {
    const parts = normalisePropertyExpression(expr);
    const create = createMissing === undefined ? value !== undefined : createMissing;
    let cur = obj;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = parts[i];
      if (cur[key] === null || typeof cur[key] !== "object") {
        if (!create) return false;
        cur[key] = typeof parts[i + 1] === "number" ? [] : {};
      }
      cur = cur[key];
    }
    const last = parts[parts.length - 1];
    if (value === undefined) delete cur[last];
    else cur[last] = value;
    return true;
  }
  function setMessageProperty(msg, expr, value, createMissing) {
    const path = String(expr).startsWith("msg.") ? String(expr).slice(4) : expr;
    return setObjectProperty(msg, path, value, createMissing);
  }
  let idCounter = 0;
  function generateId() {
    idCounter = (idCounter + 1) % 0x10000;
    let out = "";
    for (let i = 0; i < 16; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
  }
  function evaluateNodeProperty(value, type, node, msg, callback) {
    let result;
    try {
      if (type === "str" || type === undefined || type === "") result = String(value);
      else if (type === "num") result = Number(value);
      else if (type === "bool") result = /^true$/i.test(String(value));
      else if (type === "json") result = JSON.parse(value);
      else if (type === "bin") result = Buffer.from(JSON.parse(value));
      else if (type === "date") result = Date.now();
      else if (type === "msg") result = getMessageProperty(msg, value);
      else if (type === "flow" || type === "global") result = G[type].get(value);
      else if (type === "env") result = G.env.get(value);
      else if (type === "re") result = new RegExp(value);
      else result = value;
    } catch (err) {
      if (callback) { callback(err); return undefined; }
      throw err;
    }
    if (callback) { callback(null, result); return undefined; }
    return result;
  }
  function compareObjects(a, b) { return encode(a) === encode(b); }
  G.RED = {
    util: {
      cloneMessage, getMessageProperty, setMessageProperty, getObjectProperty, setObjectProperty,
      normalisePropertyExpression, generateId, evaluateNodeProperty, compareObjects,
      ensureString: (v) => typeof v === "string" ? v : (v instanceof Buffer ? v.toString() : JSON.stringify(v)),
      ensureBuffer: (v) => v instanceof Buffer ? v : Buffer.from(typeof v === "string" ? v : JSON.stringify(v)),
    },
  };

  // ------------------------------------------------------------------ context, env
  // Node-RED's memory store hands out live objects: `flow.get("state").count++` changes the
  // stored state. Values cross as copies here, so objects read during a call are written back
  // when the call ends if they changed (and were not set meanwhile).
  const borrowed = new Map();
  function borrow(name, key, store, value, text) {
    if (value !== null && typeof value === "object") {
      borrowed.set(JSON.stringify([name, key, store === undefined ? null : store]), { name, key, store, value, text });
    }
  }
  G.__settle = function () {
    if (borrowed.size === 0) return true;
    const items = Array.from(borrowed.values());
    borrowed.clear();
    for (const item of items) {
      const text = encode(item.value);
      if (text !== item.text) {
        py.ctx(item.name, "set", JSON.stringify(item.key), item.store === undefined ? null : flat(String(item.store)), text === undefined ? null : text, encode.special);
      }
    }
    return true;
  };
  function scope(name) {
    function call(op, key, storeOrCb, cb, value) {
      let store = storeOrCb, callback = cb;
      if (typeof store === "function") { callback = store; store = undefined; }
      const keyText = encode(key);
      const storeText = store === undefined ? null : flat(String(store));
      let result;
      try {
        if (op === "set") {
          const keys = Array.isArray(key) ? key : [key];
          for (const one of keys) borrowed.delete(JSON.stringify([name, one, store === undefined ? null : store]));
          const text = encode(value);
          result = py.ctx(name, op, keyText, storeText, text === undefined ? null : text, encode.special);
        } else {
          result = py.ctx(name, op, keyText, storeText, null, false);
        }
      } catch (err) {
        if (callback) { callback(err); return undefined; }
        throw err;
      }
      const decoded = result === null || result === undefined ? undefined : decode(result.slice(1), result[0] === "1");
      if (op === "get" && decoded !== undefined) {
        if (Array.isArray(key)) decoded.forEach((one, i) => borrow(name, key[i], store, one, encode(one)));
        else borrow(name, key, store, decoded, encode(decoded));
      }
      if (callback) {
        if (op === "get" && Array.isArray(key)) callback(null, ...decoded);
        else callback(null, decoded);
        return undefined;
      }
      return decoded;
    }
    return {
      get: (key, store, cb) => call("get", key, store, cb),
      set: (key, value, store, cb) => call("set", key, store, cb, value),
      keys: (store, cb) => call("keys", null, store, cb),
    };
  }
  const nodeContext = scope("context");
  G.flow = scope("flow");
  G.global = scope("global");
  Object.defineProperty(nodeContext, "flow", { get: () => G.flow });
  Object.defineProperty(nodeContext, "global", { get: () => G.global });
  G.context = nodeContext;
  G.env = { get: (name) => { const r = py.env(flat(String(name))); return r === null ? undefined : decode(r, false); } };

  // ------------------------------------------------------------------ timers, console
  const timers = new Map();
  let timerSeq = 0;
  function addTimer(fn, ms, args, repeat) {
    const id = ++timerSeq;
    timers.set(id, { fn, args, repeat });
    py.timer(id, Math.max(0, Number(ms) || 0), repeat);
    return id;
  }
  function clearTimer(id) {
    if (timers.delete(id)) py.clear(id);
  }
  G.setTimeout = (fn, ms, ...args) => addTimer(fn, ms, args, false);
  G.setInterval = (fn, ms, ...args) => addTimer(fn, ms, args, true);
  G.clearTimeout = clearTimer;
  G.clearInterval = clearTimer;
  G.setImmediate = (fn, ...args) => addTimer(fn, 0, args, false);
  G.clearImmediate = clearTimer;
  G.__fire = function (id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    try {
      timer.fn.apply(null, timer.args);
    } catch (err) {
      report("error", err, {});
    }
  };
  const formatArgs = (args) => args.map((a) => typeof a === "string" ? a : (a instanceof Error ? String(a) : JSON.stringify(a))).join(" ");
  G.console = {
    log: (...a) => report("log", formatArgs(a), undefined),
    info: (...a) => report("log", formatArgs(a), undefined),
    debug: (...a) => report("log", formatArgs(a), undefined),
    warn: (...a) => report("warn", formatArgs(a), undefined),
    error: (...a) => report("error", formatArgs(a), undefined),
  };
  G.util = { inspect: (v) => typeof v === "string" ? v : JSON.stringify(v), format: (...a) => formatArgs(a) };

  // ------------------------------------------------------------------ crypto basics
  function hashObject(algorithm, key) {
    const chunks = [];
    return {
      update(data, encoding) { chunks.push(typeof data === "string" ? Buffer.from(data, encoding) : Buffer.from(data)); return this; },
      digest(encoding) {
        const data = Uint8Array.prototype.toBase64.call(Buffer.concat(chunks));
        const keyText = key === null ? null : Uint8Array.prototype.toBase64.call(typeof key === "string" ? Buffer.from(key) : Buffer.from(key));
        const hex = py.crypto("hash", String(algorithm).toLowerCase(), keyText, data);
        const out = Buffer.from(hex, "hex");
        return encoding ? out.toString(encoding) : out;
      },
    };
  }
  const crypto = {
    randomUUID: () => py.crypto("uuid", null, null, null),
    createHash: (algorithm) => hashObject(algorithm, null),
    createHmac: (algorithm, key) => hashObject(algorithm, key),
    randomBytes: (size) => Buffer.from(py.crypto("random", String(size), null, null), "hex"),
  };
  // only through the Setup tab's modules (libs), as in Node-RED's sandbox
  const builtins = { crypto };

  // ------------------------------------------------------------------ node API and messages
  // QuickJS words some errors differently from V8; flows match on V8's words in catch nodes
  const V8_WORDS = [
    [/^cannot read property '(.*)' of (undefined|null)$/, "Cannot read properties of $2 (reading '$1')"],
    [/^cannot set property '(.*)' of (undefined|null)$/, "Cannot set properties of $2 (setting '$1')"],
  ];
  function errorText(err) {
    if (err instanceof Error) {
      let message = String(err.message);
      for (const [pattern, words] of V8_WORDS) message = message.replace(pattern, words);
      const text = message ? `${err.name}: ${message}` : String(err.name);
      if (err instanceof ReferenceError) {
        // Node-RED adds where an undefined name was used: the body starts on line 2 here
        const at = /:(\d+):(\d+)/.exec(String(err.stack));
        if (at) return `${text} (line ${Number(at[1]) - 1}, col ${at[2]})`;
      }
      return text;
    }
    if (typeof err === "string") return err;
    return JSON.stringify(err);
  }
  function report(kind, value, msg) {
    const msgText = msg === undefined || msg === null ? null : encode(msg);
    if (value instanceof Error && (kind === "error" || kind === "failed")) {
      // the Error itself: a catch node's msg.error gets its stack, as in Node-RED
      py.report(kind, encode(value), true, false, msgText);
      return;
    }
    py.report(kind, flat(show(value)), msgText !== null && encode.special, true, msgText);
  }
  // Checks the results like Node-RED's sendResults and returns them encoded ("" for none).
  function encodeResults(msgs, msgid) {
    if (msgs === null || msgs === undefined) return "";
    if (!Array.isArray(msgs)) msgs = [msgs];
    let count = 0;
    for (let m = 0; m < msgs.length; m++) {
      if (!msgs[m]) continue;
      if (!Array.isArray(msgs[m])) msgs[m] = [msgs[m]];
      for (let n = 0; n < msgs[m].length; n++) {
        const msg = msgs[m][n];
        if (msg === null || msg === undefined) continue;
        if (typeof msg === "object" && !(msg instanceof Buffer) && !Array.isArray(msg) && !(msg instanceof Date)) {
          msg._msgid = msgid;
          count++;
        } else {
          const type = typeof msg === "object" ? (msg instanceof Buffer ? "Buffer" : Array.isArray(msg) ? "Array" : "Date") : typeof msg;
          report("error", `Function tried to send a message of type ${type}`, undefined);
        }
      }
    }
    if (count === 0) return "";
    return encode(msgs);
  }
  function sendResults(msgs, msgid) {
    const out = encodeResults(msgs, msgid);
    if (out) py.send(out, encode.special);
  }
  // node.linkcall (Node-RED 5): the host sends a copy of msg to the link in node and answers
  // a call id (or why it could not); a link out node in return mode settles the promise.
  const linkCalls = new Map();
  function linkcall(target, msg, options) {
    return new Promise((resolve, reject) => {
      if (typeof target !== "string" || target.trim() === "") {
        throw new Error("Error link call target parameter is not valid, expected a string");
      }
      if (typeof msg !== "object" || msg === null) {
        throw new Error("Error link call msg parameter is not valid, expected an object");
      }
      const timeout = Number(options && options.timeout) || 5000;
      const text = encode(msg);
      const id = py.link(flat(target), text, encode.special, timeout);
      if (typeof id === "string") throw new Error(id);
      linkCalls.set(id, { resolve, reject });
    });
  }
  G.__linkReturn = function (id, text, marked, error) {
    const call = linkCalls.get(id);
    if (!call) return;
    linkCalls.delete(id);
    if (error !== null) call.reject(new Error(error));
    else call.resolve(decode(text, marked));
  };
  // The stateless part of `node` is made once; per message only send and done are closures
  // (code passes them around: `setTimeout(node.done, 10)`).
  const nodeBase = {
    log: (v) => report("log", v, undefined),
    warn: (v) => report("warn", v, undefined),
    error: (v, msg) => report("error", v, msg),
    debug: (v) => report("log", v, undefined),
    trace: (v) => report("log", v, undefined),
    status: (s) => {
      const value = typeof s === "string" ? { text: s } : (s || {});
      py.report("status", encode(value), false, false, null);
    },
    on: (event) => { if (event === "input") throw new Error("Cannot add listener to 'input' event within Function"); },
    linkcall,
  };
  function makeNode(info, msgid, input, hooks) {
    const node = Object.create(nodeBase);
    node.id = info.id;
    node.name = info.name;
    node.path = info.path;
    node.outputCount = info.outputCount;
    node.send = hooks.send ? hooks.send : (msgs) => sendResults(msgs, msgid === undefined ? generateId() : msgid);
    node.done = (err) => {
      if (err !== undefined && err !== null) report("failed", err instanceof Error ? err : errorText(err), input);
      else py.report("done", "", false, true, input === undefined || !hosts.info.watched ? null : encode(input));
    };
    return node;
  }

  const hosts = {};
  G.__install = function (infoText, bodySource, startSource, stopSource) {
    const info = JSON.parse(infoText);
    hosts.info = info;
    hosts.body = (0, eval)(bodySource);
    hosts.start = startSource ? (0, eval)(startSource) : null;
    hosts.stop = stopSource ? (0, eval)(stopSource) : null;
  };
  G.__lib = function (name, module) { G[name] = builtins[module]; };
  G.__start = function () {
    const node = makeNode(hosts.info, undefined, undefined, {});
    Promise.resolve(hosts.start(node)).catch((err) => report("error", errorText(err), undefined));
  };
  G.__stop = function () {
    const node = makeNode(hosts.info, undefined, undefined, { send: () => report("error", "Cannot send from close function", undefined) });
    hosts.stop(node);
  };
  // Runs the body for one message. Returns the results encoded (flag character + JSON, "" for
  // none, "E" when it threw) when the body finished synchronously, or null when it returned a promise: the results
  // then go through py.send once it settles (and the host runs the promise jobs).
  G.__onMessage = function (text, marked, autoDone) {
    const msg = decode(text, marked);
    const msgid = msg._msgid;
    const node = makeNode(hosts.info, msgid, msg, {});
    let result;
    try {
      result = hosts.body(msg, node);
    } catch (err) {
      failed(err, msg);
      return "E";
    }
    if (result === null || typeof result !== "object" || typeof result.then !== "function") {
      return encodeResults(result, msgid);
    }
    result.then((results) => {
      sendResults(results, msgid);
      if (autoDone) py.report("done", "", false, true, hosts.info.watched ? encode(msg) : null);
    }, (err) => failed(err, msg));
    return null;
  };
  // A thrown Error stays on the message as msg.error, as Node-RED keeps it (a catch node then
  // finds it as msg._error).
  function failed(err, msg) {
    if (err instanceof Error && msg !== null && typeof msg === "object") msg.error = err;
    report("failed", err instanceof Error ? err : errorText(err), msg);
  }
})();
