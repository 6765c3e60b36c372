// The users of a chaos soak: a publisher that behaves like OBS (reconnects with the same key about 2 s after
// its connection drops), a viewer that polls a stream's HLS and LL-HLS playlists and fetches what they list,
// and a chat member that sends, keeps what was acknowledged, and resumes after a drop. Each records what it
// saw; chaos.ts turns that into gaps per fault and invariant violations.

import { ChatClient } from './chat.js';
import { startPublisher } from './ffmpeg.js';
import { readLlPlaylist } from './llhls.js';
import type { Child } from './process.js';

/** OBS's reconnect delay (Settings > Advanced > Automatically Reconnect: retry delay, 2 s by default here). */
export const OBS_RECONNECT_MS = 2000;

export class ObsPublisher {
  /** Wall times its connection dropped and came back (a new publish). */
  readonly drops: number[] = [];
  readonly reconnects: number[] = [];
  private child: Child;
  private stopped = false;
  private upSince = Date.now();

  constructor(
    private readonly url: string,
    private readonly source: { width: number; height: number },
  ) {
    this.child = this.start();
  }

  private start(): Child {
    const child = startPublisher({ url: this.url, ...this.source, gopSeconds: 1 });
    this.upSince = Date.now();
    void child.exited.then(() => {
      if (this.stopped) return;
      this.drops.push(Date.now());
      setTimeout(() => {
        if (this.stopped) return;
        this.child = this.start();
        this.reconnects.push(Date.now());
      }, OBS_RECONNECT_MS);
    });
    return child;
  }

  /** Since when it has been publishing (null while it waits to reconnect). */
  liveSince(): number | null {
    return this.child.hasExited() ? null : this.upSince;
  }

  /** Cuts its connection the hard way: the process dies, as a network cut or an encoder crash. */
  cut(): void {
    this.child.signal('SIGKILL');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.child.stop('SIGTERM', 2000);
  }
}

/** One observation of a playlist's newest media: segment (msn, epoch) and, for LL-HLS, part count. */
export interface NewMedia {
  at: number;
  /** Wall time since the previous new media of this playlist. */
  gapMs: number;
  msn: number;
  epoch: number;
}

export interface PlaylistWatch {
  readonly path: string;
  /** Every time the newest segment (or, with parts, the newest part) moved on. */
  readonly news: NewMedia[];
  /** Broken rules seen: an ENDLIST, going backwards, an older epoch after a newer one, a lost segment. */
  readonly violations: {
    at: number;
    kind: 'endlist' | 'backwards' | 'older_epoch' | 'lost_segment';
    detail: string;
  }[];
  lastNewAt: number;
  reads: number;
  errors: number;
}

const epochOf = (uri: string | undefined): number =>
  Number(/(?:^|\/)(\d+)\/[^/]+\/[^/]+$/.exec(uri ?? '')?.[1] ?? 0);
const segmentNumber = (uri: string | undefined): number | null => {
  const m = /seg_(\d+)\.m4s$/.exec(uri ?? '');
  return m ? Number(m[1]) : null;
};

/**
 * Polls one media playlist (HLS or LL-HLS) through the origin and fetches the newest segment (or part) it
 * lists. `parts`: count a new part as new media (LL-HLS), not only a new segment.
 */
export class PlaylistViewer {
  readonly watch: PlaylistWatch;
  private timer: NodeJS.Timeout | undefined;
  private newestKey: [number, number] = [-1, -1];
  /** The part a blocking reload asks for: the one after the newest listed. */
  private nextPart: [number, number] | null = null;
  private newestEpoch = 0;
  private lastSegment = new Map<number, number>();
  private polling = false;
  private stopped = false;

  constructor(
    private readonly base: string,
    path: string,
    private readonly parts: boolean,
    private readonly pollMs = 200,
  ) {
    this.watch = { path, news: [], violations: [], lastNewAt: Date.now(), reads: 0, errors: 0 };
  }

  start(): void {
    if (this.parts) void this.followBlocking();
    else this.timer = setInterval(() => void this.poll(), this.pollMs);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async poll(query = ''): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const res = await fetch(`${this.base}${this.watch.path}${query}`, {
        signal: AbortSignal.timeout(5000),
      });
      if (res.status === 404) {
        await res.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, this.pollMs));
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.see(await res.text());
    } catch {
      this.watch.errors++;
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    } finally {
      this.polling = false;
    }
  }

  /**
   * LL-HLS as hls.js plays it: each reload asks for the part after the newest one it has (blocking playlist
   * reload, `_HLS_msn`/`_HLS_part`), so the origin answers once that part is listed.
   */
  private async followBlocking(): Promise<void> {
    while (!this.stopped) {
      const next = this.nextPart;
      await this.poll(next ? `?_HLS_msn=${next[0]}&_HLS_part=${next[1]}` : '');
    }
  }

  private see(text: string): void {
    const now = Date.now();
    const list = readLlPlaylist(text);
    this.watch.reads++;
    const violation = (kind: PlaylistWatch['violations'][number]['kind'], detail: string) =>
      this.watch.violations.push({ at: now, kind, detail: `${this.watch.path}: ${detail}` });
    if (list.endlist)
      violation(
        'endlist',
        `EXT-X-ENDLIST while the publisher is live (media sequence ${list.mediaSequence})`,
      );
    const complete = list.entries.filter((e) => e.uri !== undefined);
    const newest = list.entries.at(-1);
    if (!newest) return;
    this.nextPart = newest.uri === undefined ? [newest.msn, newest.parts.length] : [newest.msn + 1, 0];
    // Newest media: the last complete segment, or (LL-HLS) the last part of the segment being cut.
    const key: [number, number] = this.parts
      ? [newest.msn, newest.parts.length]
      : [complete.at(-1)?.msn ?? -1, 0];
    const epoch = epochOf(complete.at(-1)?.uri ?? newest.parts.at(-1)?.uri);
    if (epoch < this.newestEpoch) violation('older_epoch', `epoch ${epoch} after ${this.newestEpoch}`);
    this.newestEpoch = Math.max(this.newestEpoch, epoch);
    const [msn, part] = key;
    const [oldMsn, oldPart] = this.newestKey;
    if (msn < oldMsn || (msn === oldMsn && part < oldPart && !this.parts)) {
      violation('backwards', `newest media sequence ${msn} after ${oldMsn}`);
    } else if (msn > oldMsn || part > oldPart) {
      if (oldMsn >= 0) this.watch.news.push({ at: now, gapMs: now - this.watch.lastNewAt, msn, epoch });
      this.watch.lastNewAt = now;
      this.newestKey = key;
      const uri = this.parts ? (newest.parts.at(-1)?.uri ?? newest.uri) : complete.at(-1)?.uri;
      if (uri) void this.fetchMedia(uri);
    }
    // Segments of one epoch are numbered one after another: a hole means a segment was never listed.
    for (const entry of complete) {
      const n = segmentNumber(entry.uri);
      const e = epochOf(entry.uri);
      if (n === null) continue;
      const last = this.lastSegment.get(e);
      if (last !== undefined && n > last + 1)
        violation('lost_segment', `epoch ${e}: seg_${last + 1}..${n - 1} never listed`);
      if (last === undefined || n > last) this.lastSegment.set(e, n);
    }
  }

  private async fetchMedia(uri: string): Promise<void> {
    const url = new URL(uri, `${this.base}${this.watch.path}`);
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch(() => null);
    if (!res?.ok) this.watch.errors++;
    await res?.body?.cancel().catch(() => undefined);
  }
}

/**
 * A chat member: joins a room through the chat balancer, sends a message every `sendEveryMs`, keeps the
 * seqs acknowledged to it and every seq it received, and on a dropped connection joins again (any pod)
 * with `since` = the newest seq it saw, as the chat's reconnect protocol asks.
 */
export class ChatMember {
  readonly acked: number[] = [];
  readonly received = new Set<number>();
  gaps = 0;
  reconnects = 0;
  private client: ChatClient | undefined;
  private sendTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private sent = 0;

  constructor(
    private readonly url: string,
    private readonly token: () => Promise<string>,
    private readonly name: string,
    private readonly sendEveryMs = 3000,
  ) {}

  async start(): Promise<void> {
    await this.connect();
    this.sendTimer = setInterval(() => this.send(), this.sendEveryMs);
  }

  /** Stops sending; the connection stays to receive what others send. */
  quiet(): void {
    clearInterval(this.sendTimer);
  }

  close(): void {
    this.stopped = true;
    this.quiet();
    this.client?.close();
  }

  private newest(): number {
    return Math.max(0, ...this.received);
  }

  private send(): void {
    if (!this.client?.isOpen) return;
    this.client.send({ type: 'send', text: `${this.name} ${++this.sent}`, cid: `${this.name}-${this.sent}` });
  }

  private async connect(): Promise<void> {
    while (!this.stopped) {
      try {
        const { client } = await ChatClient.join(this.url, await this.token(), this.newest());
        this.client = client;
        let read = 0;
        let reconnectHintMs: number | undefined;
        const readNew = () => {
          for (; read < client.frames.length; read++) {
            const frame = client.frames[read] as Record<string, unknown>;
            if (frame.type === 'ack' && typeof frame.seq === 'number' && frame.seq > 0)
              this.acked.push(frame.seq);
            if ((frame.type === 'msg' || frame.type === 'deleted') && typeof frame.seq === 'number')
              this.received.add(frame.seq);
            if (frame.type === 'gap') this.gaps++;
            if (frame.type === 'reconnect' && typeof frame.delayMs === 'number')
              reconnectHintMs = frame.delayMs;
          }
        };
        readNew();
        // ChatClient's own listener (registered first) has parsed the frame by the time this one runs.
        client.ws.on('message', readNew);
        void client.closed.then(() => {
          if (this.stopped) return;
          this.reconnects++;
          // The server's `reconnect` frame names a delay; a pod that died says nothing: retry after 500 ms.
          setTimeout(() => void this.connect(), Math.min(reconnectHintMs ?? 500, 3000));
        });
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}
