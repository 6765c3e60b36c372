// A real WebSocket chat client for tests: keeps every frame it received, waits for a frame matching a
// predicate (a fact, never a fixed time), and records how the server closed the connection.
import WebSocket from 'ws';
import { WaitTimeoutError } from './wait.js';

// biome-ignore lint/suspicious/noExplicitAny: frames are JSON the test inspects field by field
export type Frame = Record<string, any>;

export class ChatClient {
  readonly frames: Frame[] = [];
  /** WebSocket messages received (a batch of events is one). */
  rawFrames = 0;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters = new Set<() => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`upgrade refused: ${res.statusCode}`)),
      );
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.notify();
      });
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.rawFrames++;
      // A JSON array is a batch of room events: the same as receiving them one by one.
      const parsed = JSON.parse(data.toString()) as Frame | Frame[];
      this.frames.push(...(Array.isArray(parsed) ? parsed : [parsed]));
      this.notify();
    });
  }

  static async connect(url: string): Promise<ChatClient> {
    const client = new ChatClient(url);
    await client.opened;
    return client;
  }

  /** Connects and joins; resolves with the welcome frame. */
  static async join(
    url: string,
    token: string,
    since?: number,
  ): Promise<{ client: ChatClient; welcome: Frame }> {
    const client = await ChatClient.connect(url);
    client.send({ type: 'join', token, ...(since === undefined ? {} : { since }) });
    const welcome = await client.waitFor((f) => f.type === 'welcome' || f.type === 'error', 'welcome');
    if (welcome.type !== 'welcome') throw new Error(`join refused: ${JSON.stringify(welcome)}`);
    return { client, welcome };
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** The room events (msg, deleted) received, in order. */
  events(): Frame[] {
    return this.frames.filter((f) => f.type === 'msg' || f.type === 'deleted');
  }

  /** Resolves with the first frame (from `from` on) matching; rejects after timeoutMs or when the socket closes. */
  waitFor(match: (frame: Frame) => boolean, what = 'a frame', timeoutMs = 10_000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.slice(from).find(match);
        if (found) return done(() => resolve(found));
        if (this.ws.readyState === WebSocket.CLOSED)
          return done(() => reject(new Error(`connection closed while waiting for ${what}`)));
      };
      const timer = setTimeout(() => done(() => reject(new WaitTimeoutError(what, timeoutMs))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.ws.close();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
