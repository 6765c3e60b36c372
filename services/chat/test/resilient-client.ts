// A chat client that behaves as the protocol asks: on a `reconnect` frame (close 4000) it waits the
// suggested delay, connects again through the balancer and resumes from the last seq it saw. It checks
// what it receives: every room event exactly once, in order, with no gap.
import { CHAT_CLOSE } from '@live/contracts';
import WebSocket from 'ws';

interface Frame {
  type: string;
  seq: number;
  delayMs: number;
  cid?: string;
}

export class ResilientChatClient {
  lastSeq = -1;
  gaps = 0;
  duplicates = 0;
  reconnects = 0;
  unexpectedCloses: number[] = [];
  received = 0;
  joined = false;
  private ws: WebSocket | undefined;
  private stopped = false;
  private delayMs = 0;
  /** Acks of this client's sends, by cid. */
  readonly acks = new Map<string, number>();

  constructor(
    private readonly url: () => string,
    private readonly token: string,
  ) {}

  start(): Promise<void> {
    return new Promise((resolve) => this.open(resolve));
  }

  /** Sends if joined (a sender that is between pods skips a beat, as a person would retype). */
  send(frame: { type: 'send'; text: string; cid?: string }): boolean {
    if (!this.joined || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close();
  }

  private onFrame(frame: Frame, onJoined?: () => void): void {
    if (frame.type === 'welcome') {
      if (this.lastSeq < 0) this.lastSeq = frame.seq;
      this.joined = true;
      onJoined?.();
    } else if (frame.type === 'msg' || frame.type === 'deleted') {
      if (frame.seq <= this.lastSeq) this.duplicates++;
      else {
        if (frame.seq !== this.lastSeq + 1) this.gaps++;
        this.lastSeq = frame.seq;
        this.received++;
      }
    } else if (frame.type === 'ack' && frame.cid) {
      this.acks.set(frame.cid, frame.seq);
    } else if (frame.type === 'reconnect') {
      this.delayMs = frame.delayMs;
    }
  }

  private open(onJoined?: () => void): void {
    const ws = new WebSocket(this.url(), { perMessageDeflate: false });
    this.ws = ws;
    this.joined = false;
    ws.on('open', () =>
      ws.send(
        JSON.stringify({
          type: 'join',
          token: this.token,
          ...(this.lastSeq >= 0 ? { since: this.lastSeq } : {}),
        }),
      ),
    );
    ws.on('message', (data) => {
      // A JSON array is a batch of room events, handled like the events one after another.
      const parsed = JSON.parse(data.toString()) as Frame | Frame[];
      for (const frame of Array.isArray(parsed) ? parsed : [parsed]) this.onFrame(frame, onJoined);
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.joined = false;
      if (this.stopped) return;
      if (code !== CHAT_CLOSE.reconnect) this.unexpectedCloses.push(code);
      // Told to reconnect: the server's delay. Refused or cut (a pod going away): a short random backoff.
      const delay = code === CHAT_CLOSE.reconnect ? this.delayMs : 100 + Math.random() * 400;
      this.reconnects++;
      setTimeout(() => this.open(onJoined), delay);
    });
  }
}
