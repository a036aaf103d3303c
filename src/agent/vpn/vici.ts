// A client for strongSwan's vici protocol (src/libcharon/plugins/vici/README.md).
// There is no maintained npm library, and the protocol is small: a stream of
// packets, each a 4-byte big-endian length and then
//   type (1 byte) [name length (1 byte) + name, for named types] message
// where a message is a sequence of elements:
//   SECTION_START(1) name | SECTION_END(2) | KEY_VALUE(3) name, u16 len + value
//   LIST_START(4) name | LIST_ITEM(5) u16 len + value | LIST_END(6)
// The codec below is pure; ViciClient adds a Unix socket, request/response
// matching (charon answers in order), event streaming and timeouts.
import net from 'node:net';

export const PacketType = {
  CMD_REQUEST: 0,
  CMD_RESPONSE: 1,
  CMD_UNKNOWN: 2,
  EVENT_REGISTER: 3,
  EVENT_UNREGISTER: 4,
  EVENT_CONFIRM: 5,
  EVENT_UNKNOWN: 6,
  EVENT: 7,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

const El = { SECTION_START: 1, SECTION_END: 2, KEY_VALUE: 3, LIST_START: 4, LIST_ITEM: 5, LIST_END: 6 } as const;

/** Decoded values are strings (vici carries bytes; every value charon sends us is text). */
export type ViciValue = string | string[] | ViciMessage;
export interface ViciMessage { [key: string]: ViciValue }
/** What encode accepts: numbers and booleans become "123" / "yes" / "no". undefined keys are skipped. */
export type ViciInput = string | number | boolean | Buffer | ViciInputList | ViciInputMessage | undefined;
export type ViciInputList = Array<string | number | Buffer>;
export interface ViciInputMessage { [key: string]: ViciInput }

export interface Packet { type: PacketType; name?: string; message: ViciMessage }

const NAMED = new Set<number>([PacketType.CMD_REQUEST, PacketType.EVENT_REGISTER, PacketType.EVENT_UNREGISTER, PacketType.EVENT]);

export class ViciProtocolError extends Error {}

function valueBytes(v: string | number | boolean | Buffer): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'boolean') return Buffer.from(v ? 'yes' : 'no');
  return Buffer.from(String(v), 'utf8');
}

function nameBytes(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  if (b.length > 255) throw new ViciProtocolError(`vici name longer than 255 bytes: ${name.slice(0, 40)}…`);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

function lenValue(v: Buffer): Buffer {
  // The error names no value: values can be secrets.
  if (v.length > 0xffff) throw new ViciProtocolError('vici value longer than 65535 bytes');
  const h = Buffer.alloc(2);
  h.writeUInt16BE(v.length);
  return Buffer.concat([h, v]);
}

/** A message body (no packet header). */
export function encodeMessage(msg: ViciInputMessage): Buffer {
  const parts: Buffer[] = [];
  const walk = (m: ViciInputMessage) => {
    for (const [key, value] of Object.entries(m)) {
      if (value === undefined) continue;
      if (Array.isArray(value)) {
        parts.push(Buffer.from([El.LIST_START]), nameBytes(key));
        for (const item of value) parts.push(Buffer.from([El.LIST_ITEM]), lenValue(valueBytes(item)));
        parts.push(Buffer.from([El.LIST_END]));
      } else if (typeof value === 'object' && !Buffer.isBuffer(value)) {
        parts.push(Buffer.from([El.SECTION_START]), nameBytes(key));
        walk(value);
        parts.push(Buffer.from([El.SECTION_END]));
      } else {
        parts.push(Buffer.from([El.KEY_VALUE]), nameBytes(key), lenValue(valueBytes(value)));
      }
    }
  };
  walk(msg);
  return Buffer.concat(parts);
}

/** A whole packet, length prefix included. */
export function encodePacket(type: PacketType, name: string | undefined, msg: ViciInputMessage = {}): Buffer {
  const head: Buffer[] = [Buffer.from([type])];
  if (NAMED.has(type)) {
    if (name === undefined) throw new ViciProtocolError(`vici packet type ${type} needs a name`);
    head.push(nameBytes(name));
  }
  const body = Buffer.concat([...head, encodeMessage(msg)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** A message body → nested object. Throws ViciProtocolError on malformed input. */
export function decodeMessage(buf: Buffer): ViciMessage {
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new ViciProtocolError('truncated vici message');
  };
  const readName = () => {
    need(1);
    const n = buf[pos++];
    need(n);
    const s = buf.toString('utf8', pos, pos + n);
    pos += n;
    return s;
  };
  const readValue = () => {
    need(2);
    const n = buf.readUInt16BE(pos);
    pos += 2;
    need(n);
    const s = buf.toString('utf8', pos, pos + n);
    pos += n;
    return s;
  };
  const root: ViciMessage = {};
  const stack: ViciMessage[] = [root];
  let list: string[] | null = null;
  while (pos < buf.length) {
    const el = buf[pos++];
    const top = stack[stack.length - 1];
    if (list !== null && el !== El.LIST_ITEM && el !== El.LIST_END) throw new ViciProtocolError(`vici element ${el} inside a list`);
    switch (el) {
      case El.SECTION_START: {
        const s: ViciMessage = {};
        top[readName()] = s;
        stack.push(s);
        break;
      }
      case El.SECTION_END:
        if (stack.length === 1) throw new ViciProtocolError('unbalanced vici section end');
        stack.pop();
        break;
      case El.KEY_VALUE: {
        const k = readName();
        top[k] = readValue();
        break;
      }
      case El.LIST_START:
        list = [];
        top[readName()] = list;
        break;
      case El.LIST_ITEM:
        if (list === null) throw new ViciProtocolError('vici list item outside a list');
        list.push(readValue());
        break;
      case El.LIST_END:
        if (list === null) throw new ViciProtocolError('vici list end outside a list');
        list = null;
        break;
      default:
        throw new ViciProtocolError(`unknown vici element type ${el}`);
    }
  }
  if (stack.length !== 1 || list !== null) throw new ViciProtocolError('unterminated vici section or list');
  return root;
}

/** One packet body (after the length prefix). */
export function decodePacket(body: Buffer): Packet {
  if (body.length < 1) throw new ViciProtocolError('empty vici packet');
  const type = body[0] as PacketType;
  if (type > PacketType.EVENT) throw new ViciProtocolError(`unknown vici packet type ${type}`);
  let pos = 1;
  let name: string | undefined;
  if (NAMED.has(type)) {
    if (body.length < 2 || body.length < 2 + body[1]) throw new ViciProtocolError('truncated vici packet name');
    name = body.toString('utf8', 2, 2 + body[1]);
    pos = 2 + body[1];
  }
  return { type, name, message: decodeMessage(body.subarray(pos)) };
}

/** Splits a byte stream into packets; keeps the incomplete tail. */
export class PacketReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Packet[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Packet[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) break;
      out.push(decodePacket(this.buf.subarray(4, 4 + len)));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

export class ViciError extends Error {}

interface Pending {
  expect: 'response' | 'confirm';
  resolve: (p: Packet) => void;
  reject: (e: Error) => void;
}

/**
 * One connection to a charon's vici socket. Requests are serialised (charon
 * answers them in order and a streamed command's events must not interleave
 * with another command's), each with a timeout; a timeout destroys the
 * connection, because a late answer would otherwise be taken for the next one.
 */
export class ViciClient {
  private socket: net.Socket;
  private reader = new PacketReader();
  private pending: Pending[] = [];
  private listeners = new Map<string, Set<(m: ViciMessage) => void>>();
  private chain: Promise<unknown> = Promise.resolve();
  private closed: Error | null = null;

  private constructor(socket: net.Socket, readonly timeoutMs: number) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      let packets: Packet[];
      try {
        packets = this.reader.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const p of packets) this.dispatch(p);
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new ViciError('vici connection closed')));
  }

  static connect(path: string, opts: { timeoutMs?: number } = {}): Promise<ViciClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ViciError(`vici connect to ${path} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new ViciClient(socket, timeoutMs));
      });
      const onError = (e: Error) => {
        clearTimeout(timer);
        reject(new ViciError(`vici connect to ${path}: ${e.message}`));
      };
      socket.once('error', onError);
    });
  }

  private dispatch(p: Packet) {
    if (p.type === PacketType.EVENT) {
      for (const l of this.listeners.get(p.name!) ?? []) l(p.message);
      return;
    }
    const head = this.pending.shift();
    if (!head) return; // unsolicited: ignore
    if (head.expect === 'response') {
      if (p.type === PacketType.CMD_RESPONSE) head.resolve(p);
      else if (p.type === PacketType.CMD_UNKNOWN) head.reject(new ViciError('vici: unknown command'));
      else head.reject(new ViciError(`vici: unexpected packet type ${p.type}`));
    } else {
      if (p.type === PacketType.EVENT_CONFIRM) head.resolve(p);
      else if (p.type === PacketType.EVENT_UNKNOWN) head.reject(new ViciError('vici: unknown event'));
      else head.reject(new ViciError(`vici: unexpected packet type ${p.type}`));
    }
  }

  private fail(e: Error) {
    if (this.closed) return;
    this.closed = e;
    for (const p of this.pending.splice(0)) p.reject(e);
    this.socket.destroy();
  }

  private send(type: PacketType, name: string, msg: ViciInputMessage, expect: Pending['expect'], timeoutMs: number): Promise<Packet> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new ViciError(`vici ${name} timed out after ${timeoutMs} ms`)), timeoutMs);
      this.pending.push({
        expect,
        resolve: (p) => { clearTimeout(timer); resolve(p); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.socket.write(encodePacket(type, name, msg));
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** A command; resolves with its response message. Does not interpret success=no (see `call`). */
  request(command: string, msg: ViciInputMessage = {}, opts: { timeoutMs?: number } = {}): Promise<ViciMessage> {
    return this.serial(async () => (await this.send(PacketType.CMD_REQUEST, command, msg, 'response', opts.timeoutMs ?? this.timeoutMs)).message);
  }

  /** A command whose response carries success=yes|no; rejects with charon's errmsg on `no`. */
  async call(command: string, msg: ViciInputMessage = {}, opts: { timeoutMs?: number } = {}): Promise<ViciMessage> {
    const res = await this.request(command, msg, opts);
    if (res.success === 'no') throw new ViciError(`vici ${command} failed: ${typeof res.errmsg === 'string' ? res.errmsg : 'no reason given'}`);
    return res;
  }

  /**
   * A command that streams its results as events (list-sas → list-sa,
   * list-conns → list-conn): register, request, collect, unregister.
   */
  streamed(command: string, event: string, msg: ViciInputMessage = {}, opts: { timeoutMs?: number } = {}): Promise<{ events: ViciMessage[]; response: ViciMessage }> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return this.serial(async () => {
      const events: ViciMessage[] = [];
      const collect = (m: ViciMessage) => events.push(m);
      this.addListener(event, collect);
      try {
        await this.send(PacketType.EVENT_REGISTER, event, {}, 'confirm', timeoutMs);
        const res = await this.send(PacketType.CMD_REQUEST, command, msg, 'response', timeoutMs);
        await this.send(PacketType.EVENT_UNREGISTER, event, {}, 'confirm', timeoutMs);
        return { events, response: res.message };
      } finally {
        this.removeListener(event, collect);
      }
    });
  }

  /** Subscribes to an event (e.g. ike-updown, child-updown, log) until the returned function is called. */
  async subscribe(event: string, handler: (m: ViciMessage) => void): Promise<() => Promise<void>> {
    this.addListener(event, handler);
    try {
      await this.serial(() => this.send(PacketType.EVENT_REGISTER, event, {}, 'confirm', this.timeoutMs));
    } catch (e) {
      this.removeListener(event, handler);
      throw e;
    }
    return async () => {
      this.removeListener(event, handler);
      if (!this.closed) await this.serial(() => this.send(PacketType.EVENT_UNREGISTER, event, {}, 'confirm', this.timeoutMs));
    };
  }

  private addListener(event: string, fn: (m: ViciMessage) => void) {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
  }

  private removeListener(event: string, fn: (m: ViciMessage) => void) {
    this.listeners.get(event)?.delete(fn);
  }

  close() {
    this.fail(new ViciError('vici connection closed by the client'));
  }
}
