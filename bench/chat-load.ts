// A load process of bench:chat (started by bench/chat.ts with an IPC channel): opens its share of the
// room's connections, either receivers (every one counts room events, which the chat may batch several to a
// frame; 1 in --sample also parses them and records send -> deliver latency) or senders (a few connections that send at the rate the parent asks,
// spread evenly in time, each message's text being "<phase>:<send time in ms>").
// Talks to the platform's chat (ws, JSON frames, a JWT in the join frame) or to the Socket.IO baseline
// (socket.io-client with the websocket transport only, or with --client ws the Socket.IO protocol over ws).
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { io as ioClient } from 'socket.io-client';
import WebSocket from 'ws';
import { type Command, Histogram, type Report, type Snapshot, type Target } from './chat-shared.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'chat' },
    /** Socket.IO only: `lib` (socket.io-client) or `ws` (the Socket.IO protocol spoken through ws). */
    client: { type: 'string', default: 'lib' },
    url: { type: 'string' },
    room: { type: 'string', default: 'bench' },
    role: { type: 'string', default: 'receivers' },
    count: { type: 'string', default: '100' },
    /** Index of this process's first connection (user ids and sampling are global). */
    first: { type: 'string', default: '0' },
    sample: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '50' },
  },
});
const target = values.target as Target;
const client = values.client;
const url = values.url ?? '';
const room = values.room;
const senders = values.role === 'senders';
const count = Number(values.count);
const first = Number(values.first);
const sample = Number(values.sample);
const concurrency = Number(values.concurrency);
let secret = new Uint8Array();

const send = (report: Report) => process.send?.(report);

// ---------------------------------------------------------------------------------------------------------
// Counters, reported cumulatively on each snapshot.

let joined = 0;
let failed = 0;
let open = 0;
/** WebSocket messages received, and the room events in them (more than one in a batch). */
let frames = 0;
let events = 0;
const closed: Record<string, number> = {};
const sent: Record<number, number> = {};
const sampledDeliveries: Record<number, number> = {};
const hists = new Map<number, Histogram>();
const maxLatencyMs: Record<number, number> = {};
const other: Record<string, number> = {};
const errors: string[] = [];
const noteError = (message: string) => {
  if (errors.length < 20 && !errors.includes(message)) errors.push(message);
};

const now = () => performance.timeOrigin + performance.now();

/** A sampled receiver got a room message whose text is "<phase>:<sent at>". */
function recordLatency(text: unknown): void {
  if (typeof text !== 'string') return;
  const colon = text.indexOf(':');
  const phase = Number(text.slice(0, colon));
  const latency = now() - Number(text.slice(colon + 1));
  if (!Number.isFinite(phase) || !Number.isFinite(latency)) return;
  sampledDeliveries[phase] = (sampledDeliveries[phase] ?? 0) + 1;
  let hist = hists.get(phase);
  if (!hist) {
    hist = new Histogram();
    hists.set(phase, hist);
  }
  hist.record(latency);
  if (latency > (maxLatencyMs[phase] ?? 0)) maxLatencyMs[phase] = latency;
}

function countOther(kind: string): void {
  other[kind] = (other[kind] ?? 0) + 1;
}

interface Conn {
  send(text: string): void;
  close(): void;
  /** Joined and not closed since. */
  isOpen(): boolean;
}

// ---------------------------------------------------------------------------------------------------------
// The platform's chat: ws://HOST/chat/<room>, {"type":"join","token"} first, then "welcome" and "history";
// tokens as services/chat/src/auth/tokens.ts verifies them (HS256, issuer live-chat, exp).

async function token(userId: string): Promise<string> {
  return new SignJWT({ name: userId, role: 'viewer', rooms: [room], caps: ['send'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuer('live-chat')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(secret);
}

interface ChatFrame {
  type?: string;
  text?: unknown;
  code?: string;
}
const OPEN_BRACKET = 0x5b; // "["
const EVENT_START = Buffer.from('{"type":"');

async function openChat(userId: string, parse: boolean, latency: boolean): Promise<Conn> {
  const jwt = await token(userId);
  return new Promise<Conn>((resolve, reject) => {
    const ws = new WebSocket(`${url}/chat/${room}`, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: 30_000,
    });
    let welcomed = false;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'join', token: jwt })));
    ws.on('error', (error) => {
      noteError(error.message);
      if (!welcomed) reject(error);
    });
    ws.on('close', (code, reason) => {
      if (welcomed) {
        open--;
        const key = `${code}${reason.length ? ` ${reason.toString()}` : ''}`;
        closed[key] = (closed[key] ?? 0) + 1;
      } else reject(new Error(`closed before welcome: ${code} ${reason.toString()}`));
    });
    // Room events come one per frame, or several in one frame as a JSON array of the stored events
    // (CHAT_BATCH_MS): a receiver that does not parse counts the events by their `{"type":"` openings.
    const count = (data: WebSocket.RawData) => {
      frames++;
      const buf = data as Buffer;
      if (buf[0] !== OPEN_BRACKET) {
        events++;
        return;
      }
      for (
        let at = buf.indexOf(EVENT_START);
        at !== -1;
        at = buf.indexOf(EVENT_START, at + EVENT_START.length)
      )
        events++;
    };
    const parsed = (data: WebSocket.RawData) => {
      frames++;
      const json = JSON.parse(data.toString()) as ChatFrame | ChatFrame[];
      for (const frame of Array.isArray(json) ? json : [json]) {
        if (frame.type === 'msg') {
          events++;
          if (latency) recordLatency(frame.text);
        } else countOther(frame.type === 'error' ? `error ${frame.code}` : String(frame.type));
      }
    };
    // The server answers join with `welcome`, then `history` (the newest messages; none yet here).
    let seen = 0;
    const handshake = (data: WebSocket.RawData) => {
      const frame = JSON.parse(data.toString()) as { type?: string };
      const expected = seen++ === 0 ? 'welcome' : 'history';
      if (frame.type !== expected) {
        ws.off('message', handshake);
        ws.terminate();
        reject(new Error(`expected ${expected}, got: ${data.toString().slice(0, 200)}`));
        return;
      }
      if (expected === 'welcome') return;
      ws.off('message', handshake);
      welcomed = true;
      open++;
      ws.on('message', parse ? parsed : count);
      resolve({
        send: (text) => ws.send(JSON.stringify({ type: 'send', text })),
        close: () => ws.close(),
        isOpen: () => ws.readyState === WebSocket.OPEN,
      });
    };
    ws.on('message', handshake);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The Socket.IO baseline: the default namespace, `msg` events, `send` emits.

function openSocketIo(userId: string, parse: boolean, latency: boolean): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    const socket = ioClient(url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: 30_000,
      auth: { id: userId, name: userId },
    });
    let connected = false;
    socket.on('connect_error', (error) => {
      noteError(error.message);
      if (!connected) {
        socket.close();
        reject(error);
      }
    });
    socket.on('disconnect', (reason) => {
      if (!connected) return;
      open--;
      closed[reason] = (closed[reason] ?? 0) + 1;
    });
    socket.on(
      'msg',
      parse
        ? (m: { text?: unknown }) => {
            frames++;
            events++;
            if (latency) recordLatency(m.text);
          }
        : () => {
            frames++;
            events++;
          },
    );
    socket.once('connect', () => {
      connected = true;
      open++;
      resolve({
        send: (text) => socket.emit('send', text),
        close: () => socket.close(),
        isOpen: () => socket.connected,
      });
    });
  });
}

// The same Socket.IO server through `ws` directly (--client ws): Engine.IO 4 / Socket.IO 5 text packets
// ("0{...}" open, "40" connect with auth, "2" ping -> "3" pong, '42["msg",{...}]' events), so a receiver
// costs what one of ours costs (count a frame, parse 1 in --sample) and the load processes take the same
// CPU from the machine for both servers.
function openSocketIoWs(userId: string, parse: boolean, latency: boolean): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: 30_000,
    });
    let connected = false;
    ws.on('error', (error) => {
      noteError(error.message);
      if (!connected) reject(error);
    });
    ws.on('close', (code) => {
      if (connected) {
        open--;
        closed[String(code)] = (closed[String(code)] ?? 0) + 1;
      } else reject(new Error(`closed before connect: ${code}`));
    });
    const PING = 0x32; // "2"
    const isPing = (data: Buffer) => data.length === 1 && data[0] === PING;
    const count = (data: WebSocket.RawData) => {
      if (isPing(data as Buffer)) ws.send('3');
      else {
        frames++;
        events++;
      }
    };
    const parsed = (data: WebSocket.RawData) => {
      if (isPing(data as Buffer)) {
        ws.send('3');
        return;
      }
      const text = data.toString();
      if (!text.startsWith('42')) {
        countOther(`packet ${text.slice(0, 2)}`);
        return;
      }
      const [event, payload] = JSON.parse(text.slice(2)) as [string, { text?: unknown }];
      if (event !== 'msg') {
        countOther(event);
        return;
      }
      frames++;
      events++;
      if (latency) recordLatency(payload.text);
    };
    const handshake = (data: WebSocket.RawData) => {
      const text = data.toString();
      if (text.startsWith('0')) {
        ws.send(`40${JSON.stringify({ id: userId, name: userId })}`);
        return;
      }
      ws.off('message', handshake);
      if (!text.startsWith('40')) {
        ws.terminate();
        reject(new Error(`expected the namespace connect packet, got: ${text.slice(0, 200)}`));
        return;
      }
      connected = true;
      open++;
      ws.on('message', parse ? parsed : count);
      resolve({
        send: (t) => ws.send(`42${JSON.stringify(['send', t])}`),
        close: () => ws.close(),
        isOpen: () => ws.readyState === WebSocket.OPEN,
      });
    };
    ws.on('message', handshake);
  });
}

// ---------------------------------------------------------------------------------------------------------

/** This process's connections by slot (0 .. count-1); a slot is opened again after a loss on `reconnect`. */
const conns: Conn[] = [];
let sampled = 0;

/** Opens the given slots, `concurrency` at a time; returns how many opened and failed. */
async function openSlots(slots: number[]): Promise<{ opened: number; failed: number }> {
  let next = 0;
  let opened = 0;
  let failedHere = 0;
  const worker = async () => {
    while (next < slots.length) {
      const slot = slots[next++] as number;
      const i = first + slot;
      const isSampled = !senders && i % sample === 0;
      const userId = senders ? `sender-${i}` : `viewer-${i}`;
      try {
        const conn =
          target === 'chat'
            ? await openChat(userId, senders || isSampled, isSampled)
            : client === 'ws'
              ? await openSocketIoWs(userId, senders || isSampled, isSampled)
              : await openSocketIo(userId, senders || isSampled, isSampled);
        if (isSampled && conns[slot] === undefined) sampled++;
        conns[slot] = conn;
        opened++;
      } catch (error) {
        failedHere++;
        noteError(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, slots.length) }, worker));
  return { opened, failed: failedHere };
}

async function connectAll(): Promise<void> {
  const progress = setInterval(() => send({ type: 'progress', joined, failed }), 500);
  const result = await openSlots(Array.from({ length: count }, (_, slot) => slot));
  joined += result.opened;
  failed += result.failed;
  clearInterval(progress);
  send({ type: 'connected', joined, failed, errors });
}

async function reconnectLost(): Promise<void> {
  const lost = Array.from({ length: count }, (_, slot) => slot).filter((slot) => !conns[slot]?.isOpen());
  const result = await openSlots(lost);
  send({ type: 'reconnected', reopened: result.opened, failed: result.failed });
}

// Senders: messages spread evenly in time, round-robin over the sender connections.
let sendTimer: NodeJS.Timeout | undefined;
let skipped = 0;
function setRate(rate: number, phase: number): void {
  clearTimeout(sendTimer);
  // Slots that never connected are holes in `conns`.
  const live = conns.filter((conn): conn is Conn => conn !== undefined);
  if (rate <= 0 || live.length === 0) return;
  const interval = 1000 / rate;
  let due = performance.now();
  let k = 0;
  const tick = () => {
    const t = performance.now();
    // Behind by more than 200 ms (this process was starved): skip rather than send a burst.
    if (t - due > 200) {
      const missed = Math.floor((t - due) / interval);
      skipped += missed;
      due += missed * interval;
    }
    while (due <= t) {
      (live[k++ % live.length] as Conn).send(`${phase}:${now()}`);
      sent[phase] = (sent[phase] ?? 0) + 1;
      due += interval;
    }
    sendTimer = setTimeout(tick, Math.max(0, due - performance.now()));
  };
  tick();
}

function snapshot(histPhase: number | undefined): Snapshot {
  const cpu = process.cpuUsage();
  return {
    open,
    joined,
    failed,
    sampled,
    closed,
    frames,
    events,
    sent,
    sampledDeliveries,
    hist: histPhase === undefined ? [] : (hists.get(histPhase)?.pairs() ?? []),
    maxLatencyMs,
    other: skipped ? { ...other, 'sends skipped (sender starved)': skipped } : other,
    errors,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

process.on('message', (command: Command) => {
  switch (command.type) {
    case 'connect':
      secret = new TextEncoder().encode(command.secret);
      void connectAll();
      break;
    case 'rate':
      setRate(command.rate, command.phase);
      break;
    case 'reconnect':
      void reconnectLost();
      break;
    case 'snapshot':
      send({ type: 'snapshot', id: command.id, ...snapshot(command.hist) });
      break;
    case 'exit':
      clearTimeout(sendTimer);
      for (const conn of conns) conn?.close();
      setTimeout(() => process.exit(0), 200);
      break;
  }
});
// The parent is gone: nothing left to do.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
