// The LL-HLS origin: every packager replica runs one, built from shared state only (part events on core NATS,
// segment events, the live-assignments bucket), so any replica answers any stream and replicas need no
// coordination: a load balancer can send a viewer's requests to any of them.
// - Part events are heard only for watched streams (an LL request for the stream on this replica within
//   PACKAGER_LL_WATCH_MS): one subscription to live.part.<streamId> each, made by the first request and
//   dropped by the sweep once the stream is unwatched. Every replica hearing every part of every stream cost
//   ~0.3 ms of CPU per event here: 15 events a second per 3-rendition stream, several cores per replica at
//   1,000 streams, almost all of them watched in plain HLS only. Segment events and assignments are heard
//   for every stream (3 a second per stream): LL playlists keep their segments and numbering while unwatched.
// - The first LL request of an unwatched stream: its playlist lists segments only until parts are listed
//   again from a segment start (ll-playlist.ts, about a segment later); a playlist request is held until
//   then and until that segment is complete (blocking-reload.ts), so even the first viewer starts with a
//   segment of parts and a preload hint. A part this replica has not heard of and would not hold, or a
//   segment it cannot assemble (announced before it started listening), is fetched through the stream's
//   owner, which lists it (forwarded like playlists).
// - Parts of a watched stream: on a part event the origin fetches the part's bytes (and the rendition's
//   init segment, once) from the worker that cut it, keeps them in memory, and only then lists the part: a
//   listed part is served at once. Media bytes never go through NATS. A part that arrives after the watch
//   ended but before the sweep unsubscribes is listed from its announcement and fetched only if asked for
//   (the worker keeps parts 10 s).
// - Numbering: every replica numbers a stream's segments as its owner replica does (live-ll-numbering: the
//   owner writes where a rendition's numbering starts or moves, e.g. a failover; the others renumber to
//   match), so a stream can change owner (rolling update, replica lost) without its players seeing a jump.
// - Fencing: a part of an epoch older than the stream's current one is not even fetched (a zombie worker's
//   parts never appear). A failover (a new assignment without handoverFrom) raises the epoch at once; a
//   planned move switches at the new epoch's first part (make-before-break, like plain HLS).
// - Serving (/ll/<streamId>/...): master.m3u8 (the packager's plain master: its variant URIs are relative,
//   so they resolve to the LL media playlists here), <rendition>.m3u8 with blocking reload
//   (blocking-reload.ts), <epoch>/<rendition>/part_<n>.m4s (a request for the next parts is held until they
//   exist: the preload hint), seg_<n>.m4s (its parts concatenated while they are in memory, else the same
//   object from storage: byte-identical), init.mp4.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  encode,
  type KvWatch,
  type NatsConnection,
  publishCore,
  subscribeValidated,
  watchKv,
} from '@live/bus';
import {
  type AssignmentRecord,
  assignmentRecord,
  buckets,
  LL_NUMBERING_REFRESH_MS,
  LL_WATCH_REPEAT_MS,
  type LlNumberingRecord,
  llNumberingKey,
  llNumberingRecord,
  llWatch,
  type PartEvent,
  partEvent,
  type Rendition,
  type SegmentEvent,
  segmentEvent,
  subjects,
} from '@live/contracts';
import { proxyHttp, type RequestTarget } from '@live/runtime';
import type { Storage } from '@live/storage';
import { type KV, Kvm } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { advancePartLimit, playlistResponse } from './blocking-reload.js';
import { type AcceptResult, LlStream, type Numbering, sameNumbering } from './ll-playlist.js';
import type { OriginRing } from './origin-ring.js';

export interface LlOriginOptions {
  nc: NatsConnection;
  storage: Storage;
  logger: Logger;
  /** The transcoder's part duration target (TRANSCODER_PART_MS): PART-TARGET is derived from it. */
  partMs: number;
  /** PART-HOLD-BACK (ms): how far behind the live edge players stay; their buffer for riding a failover. */
  partHoldBackMs: number;
  /** EXT-X-TARGETDURATION (the transcoder's segment duration, whole seconds). */
  targetDuration: number;
  /** Parts and init segments stay in memory this long (ms): the playlist window plus a margin for players. */
  keepMs: number;
  /** A part fetch from the worker gives up after this long (ms); the part is then not listed. */
  fetchTimeoutMs: number;
  /** Parts are fetched ahead only while the stream had an LL request within this long (ms). */
  watchMs: number;
  /** After the stream's `ended`, ENDLIST is written once no part arrived for this long (ms). */
  endSettleMs: number;
  /** Which replica answers which stream's playlists (absent: this one answers all, e.g. a single replica). */
  ring?: OriginRing;
  /** This replica's id (PACKAGER_ORIGIN_ID): playlists it answers say so in `x-ll-origin`. */
  originId: string;
  metrics: { parts: Counter; forwarded: Counter; fetchedOnRequest: Counter };
}

interface StreamState {
  ll: LlStream;
  epoch: number;
  /** Fetched resources: `<epoch>/<rendition>/<file>` -> bytes and when they came. */
  files: Map<string, { bytes: Buffer; at: number }>;
  /** Where each announced resource is on its worker (fetched on request while the stream is not watched). */
  urls: Map<string, { url: string; at: number }>;
  /** Fetches in flight, by resource path (a request and a prefetch of the same part share one). */
  fetching: Map<string, Promise<boolean>>;
  /** Until when parts are heard and fetched ahead (ms): the last LL request for this stream plus watchMs. */
  watchedUntil: number;
  /** This replica's subscription to the stream's part events, while it is watched. */
  parts?: { unsubscribe(): void };
  /** Part requests held until the part exists (the preload hint), by resource path. */
  waiters: Map<string, Set<() => void>>;
  /** Init fetches in flight or done, by `<epoch>/<rendition>`. */
  inits: Map<string, Promise<boolean>>;
  /** Per rendition: parts are listed in the order they were announced, whatever order their fetches end in. */
  queues: Map<string, Promise<void>>;
  endTimer?: NodeJS.Timeout;
  endedAt?: number;
}

/** A rendition's entry in live-ll-numbering: when it was written (rewritten hourly by the owner), its revision. */
interface SharedNumbering {
  record: LlNumberingRecord;
  writtenAt: number;
  /** The bucket's revision of the entry (0 while this replica's own write is in flight, or failed). */
  revision: number;
}

/** `<streamId>.<rendition>` (stream ids and rendition names have no dots). */
function splitNumberingKey(key: string): { streamId: string; rendition: string } {
  const dot = key.indexOf('.');
  return { streamId: key.slice(0, dot), rendition: key.slice(dot + 1) };
}

// Stream ids as the contracts allow them (nothing else reaches a storage key), then the resource.
const PATH =
  /^\/ll\/([a-z0-9][a-z0-9_-]{0,63})\/(?:(master|[a-z0-9]+)\.m3u8|(\d+)\/([a-z0-9]+)\/(init\.mp4|part_(\d+)\.m4s|seg_(\d+)\.m4s))$/;

/** rfc8216bis: every part is at most PART-TARGET. A part holds whole frames, so at f fps it lasts ceil(t*f)/f. */
export function partTargetFor(partMs: number, ladder: Pick<Rendition, 'fps'>[]): number {
  const longest = Math.max(
    partMs / 1000,
    ...ladder.map((r) => Math.ceil((partMs / 1000) * r.fps - 1e-6) / r.fps),
  );
  return Math.ceil(longest * 1000) / 1000;
}

export class LlOrigin {
  private readonly streams = new Map<string, StreamState>();
  private readonly log: Logger;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly subscriptions: { unsubscribe(): void }[] = [];
  private assignments: { stop(): void } | undefined;
  /** The shared LL numbering (live-ll-numbering), by stream and rendition. */
  private readonly numbering = new Map<string, Map<string, SharedNumbering>>();
  private numberingKv: KV | undefined;
  private numberingWatch: KvWatch | undefined;

  constructor(private readonly o: LlOriginOptions) {
    this.log = o.logger.child({ component: 'll-origin' });
  }

  async start(): Promise<void> {
    this.numberingKv = await new Kvm(this.o.nc).open(buckets.llNumbering);
    this.numberingWatch = await watchKv({
      nc: this.o.nc,
      logger: this.log,
      bucket: buckets.llNumbering,
      schema: llNumberingRecord,
      onPut: (record, entry) => this.onNumbering(entry.key, record, entry.revision, entry.created.getTime()),
      // Entries expire (a TTL): see watchKv.
      initialValuesTimeoutMs: 5000,
      onDelete: (key) => {
        const { streamId, rendition } = splitNumberingKey(key);
        this.numbering.get(streamId)?.delete(rendition);
      },
    });
    // Known before the first segment is numbered: a restarted replica continues the numbers players saw.
    await this.numberingWatch.initialized;
    this.assignments = await watchKv({
      nc: this.o.nc,
      logger: this.log,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      onPut: (record) => this.onAssignment(record),
    });
    this.subscriptions.push(
      // Segment events as they are stored in LIVE_MEDIA (a core subscription sees them too; no consumer).
      subscribeValidated({
        nc: this.o.nc,
        logger: this.log,
        subject: subjects.allMedia,
        schema: segmentEvent,
        name: 'll-origin',
        handler: (event) => this.onSegment(event),
      }),
    );
    this.sweeper = setInterval(() => this.sweep(), LL_WATCH_REPEAT_MS);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const subscription of this.subscriptions.splice(0)) subscription.unsubscribe();
    this.assignments?.stop();
    this.numberingWatch?.stop();
    for (const state of this.streams.values()) {
      clearTimeout(state.endTimer);
      state.parts?.unsubscribe();
    }
  }

  /** Someone watches the stream in LL through this replica: hear its parts (again) from now on. */
  private watch(streamId: string, state: StreamState): void {
    state.watchedUntil = Date.now() + this.o.watchMs;
    if (state.parts || state.endedAt !== undefined) return;
    state.ll.followParts();
    state.parts = subscribeValidated({
      nc: this.o.nc,
      logger: this.log,
      subject: subjects.mediaPart(streamId),
      schema: partEvent,
      name: 'll-origin',
      handler: (event) => this.onPart(event),
    });
    // Subscribed first (the server has the subscription before the worker hears this): no part is missed.
    this.announceWatch(streamId);
  }

  /** Tells the stream's worker that this replica hears its parts (the worker announces parts only then). */
  private announceWatch(streamId: string): void {
    publishCore(this.o.nc, llWatch, subjects.llWatch(streamId), {
      streamId,
      originId: this.o.originId,
      at: Date.now(),
    });
  }

  /** Nobody watched the stream in LL for watchMs: stop hearing its parts. */
  private unwatch(state: StreamState): void {
    state.parts?.unsubscribe();
    state.parts = undefined;
    state.ll.stopFollowingParts();
  }

  /** A segment is in storage: completes the stream's last segment (the one no next part will close). */
  private onSegment(event: SegmentEvent): void {
    const state = this.streams.get(event.streamId);
    if (!state || event.kind !== 'media') return;
    // ffmpeg's last segments are still coming after `ended` (parts refresh this too, when heard).
    state.endTimer?.refresh();
    state.ll.rendition(event.rendition.name).completeSegment({
      epoch: event.epoch,
      sequence: event.sequence,
      duration: event.durationMs / 1000,
      ...(event.programDateTime ? { programDateTime: new Date(event.programDateTime) } : {}),
    });
  }

  private onAssignment(record: AssignmentRecord): void {
    let state = this.streams.get(record.streamId);
    if (record.state === 'ended') {
      if (state && !state.endTimer && !state.endedAt) this.scheduleEnd(record.streamId, state);
      // A stream that ended before this replica built it: its numbering is not needed here.
      if (!state) this.numbering.delete(record.streamId);
      return;
    }
    // A stream that ended and is live again (a new session) starts new LL playlists.
    if (!state || (state.endedAt !== undefined && record.epoch > state.epoch)) {
      state = this.newStream(record.streamId, record.ladder);
    }
    if (record.epoch > state.epoch) {
      state.epoch = record.epoch;
      // A fault fences the old epoch now; a planned move switches at the new epoch's first part.
      if (!record.handoverFrom)
        for (const playlist of state.ll.renditions.values()) playlist.raiseEpoch(record.epoch);
    }
    for (const r of record.ladder) state.ll.rendition(r.name);
  }

  /** The shared numbering of a rendition was written (by its owner, maybe this replica): numbers follow it. */
  private onNumbering(key: string, record: LlNumberingRecord, revision: number, writtenAt: number): void {
    const { streamId, rendition } = splitNumberingKey(key);
    const renditions = this.numberingOf(streamId);
    // Not older than what this replica has (the late echo of its own earlier write must not undo a newer one).
    if (revision <= (renditions.get(rendition)?.revision ?? 0)) return;
    renditions.set(rendition, { record, writtenAt, revision });
    this.streams.get(streamId)?.ll.renditions.get(rendition)?.align(record);
  }

  private numberingOf(streamId: string): Map<string, SharedNumbering> {
    let renditions = this.numbering.get(streamId);
    if (!renditions) {
      renditions = new Map();
      this.numbering.set(streamId, renditions);
    }
    return renditions;
  }

  /** Whether this replica owns the stream: its LL numbering is the one shared. */
  private owns(streamId: string): boolean {
    return !this.o.ring?.owner(streamId);
  }

  /**
   * A segment was numbered here. The stream's owner shares its numbering where it starts or moves (a new
   * epoch, a gap), or once an hour (the bucket's entries expire after a day), and follows it at once
   * (whether or not the write succeeds); other replicas only follow. Two replicas that both believe they
   * own the stream (all just started, none warm; or for a moment while the replicas' heartbeats disagree)
   * both write: every replica follows the last entry written, so they end up alike, but the players of
   * the one whose numbering lost see it jump once.
   */
  private shareNumbering(streamId: string, rendition: string, n: Numbering): void {
    const renditions = this.numberingOf(streamId);
    const known = renditions.get(rendition);
    if (known && sameNumbering(known.record, n) && Date.now() - known.writtenAt < LL_NUMBERING_REFRESH_MS)
      return;
    if (!this.owns(streamId)) return;
    const record: LlNumberingRecord = { epoch: n.epoch, sequence: n.sequence, msn: n.msn, dsn: n.dsn };
    const shared = { record, writtenAt: Date.now(), revision: known?.revision ?? 0 };
    renditions.set(rendition, shared);
    this.streams.get(streamId)?.ll.renditions.get(rendition)?.align(record);
    const key = llNumberingKey(streamId, rendition);
    const failed = (error: Error) => {
      // Written again at the next segment.
      if (renditions.get(rendition) === shared) shared.writtenAt = 0;
      this.log.warn({ streamId, rendition, err: error.message }, 'LL numbering not shared');
    };
    try {
      this.numberingKv?.put(key, encode(llNumberingRecord, record)).then((revision) => {
        shared.revision = Math.max(shared.revision, revision);
      }, failed);
    } catch (error) {
      failed(error as Error); // encode refused the record: logged, and the playlist goes on
    }
  }

  private newStream(streamId: string, ladder: Pick<Rendition, 'fps'>[]): StreamState {
    const previous = this.streams.get(streamId);
    if (previous) {
      clearTimeout(previous.endTimer);
      previous.parts?.unsubscribe();
    }
    const ll = new LlStream({
      partTarget: partTargetFor(this.o.partMs, ladder),
      targetDuration: this.o.targetDuration,
      partHoldBack: this.o.partHoldBackMs / 1000,
      numbering: {
        get: (rendition) => this.numbering.get(streamId)?.get(rendition)?.record,
        owns: () => this.owns(streamId),
        segmentStarted: (rendition, n) => this.shareNumbering(streamId, rendition, n),
      },
    });
    // Parts are heard once someone watches the stream in LL here (watch()).
    ll.stopFollowingParts();
    const state: StreamState = {
      ll,
      epoch: 0,
      files: new Map(),
      urls: new Map(),
      fetching: new Map(),
      watchedUntil: 0,
      waiters: new Map(),
      inits: new Map(),
      queues: new Map(),
    };
    this.streams.set(streamId, state);
    return state;
  }

  private scheduleEnd(streamId: string, state: StreamState): void {
    // The worker's last parts (ffmpeg's final fragments) are still coming: end once they stop.
    state.endTimer = setTimeout(() => {
      state.endTimer = undefined;
      state.endedAt = Date.now();
      for (const playlist of state.ll.renditions.values()) playlist.end();
      // Nothing of it is listed any more (players polling for ENDLIST keep it watched, but hear nothing new).
      this.unwatch(state);
      this.log.info({ streamId }, 'LL-HLS playlists ended');
    }, this.o.endSettleMs);
  }

  private onPart(event: PartEvent): void {
    const state = this.streams.get(event.streamId);
    if (!state) return; // unsubscribed with the stream's state (a new session); a message already in flight
    const playlist = state.ll.rendition(event.rendition);
    if (state.endedAt !== undefined || event.epoch < playlist.epoch) {
      this.o.metrics.parts.inc({ result: state.endedAt !== undefined ? 'ended' : 'fenced' });
      return;
    }
    state.endTimer?.refresh();
    const base = `${event.epoch}/${event.rendition}`;
    const partPath = `${base}/part_${event.number}.m4s`;
    const now = Date.now();
    state.urls.set(`${base}/init.mp4`, { url: event.initUrl, at: now });
    state.urls.set(partPath, { url: event.url, at: now });
    const watched = now < state.watchedUntil;
    const initKey = base;
    let init = state.inits.get(initKey);
    if (!init && watched) {
      init = this.fetchInto(state, `${base}/init.mp4`, event.initUrl);
      state.inits.set(initKey, init);
    }
    // Not watched: listed now, in order, and fetched if asked for.
    const bytes = watched ? this.fetchInto(state, partPath, event.url) : Promise.resolve(true);
    const previous = state.queues.get(event.rendition) ?? Promise.resolve();
    const listed = previous.then(async () => {
      const [initOk, partOk] = await Promise.all([init ?? true, bytes]);
      let result: AcceptResult | 'fetch-failed' = 'fetch-failed';
      if (initOk && partOk) {
        result = playlist.addPart({
          epoch: event.epoch,
          sequence: event.sequence,
          index: event.index,
          number: event.number,
          duration: event.durationMs / 1000,
          independent: event.independent,
          programDateTime: new Date(event.programDateTime),
        });
      }
      if (result === 'fetch-failed' && !initOk) state.inits.delete(initKey);
      this.o.metrics.parts.inc({ result });
      // queued: listened to since mid-segment (listed from the next segment); unfollowed: just unwatched.
      if (result !== 'accepted' && result !== 'duplicate' && result !== 'queued' && result !== 'unfollowed') {
        this.log.warn(
          {
            streamId: event.streamId,
            rendition: event.rendition,
            epoch: event.epoch,
            number: event.number,
            result,
          },
          'part not listed',
        );
      }
    });
    state.queues.set(event.rendition, listed);
  }

  /** Fetches a worker's resource into memory (one fetch per resource at a time); false (logged) when it cannot. */
  private fetchInto(state: StreamState, path: string, url: string): Promise<boolean> {
    const inFlight = state.fetching.get(path);
    if (inFlight) return inFlight;
    const fetched = (async () => {
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(this.o.fetchTimeoutMs) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const bytes = Buffer.from(await response.arrayBuffer());
        state.files.set(path, { bytes, at: Date.now() });
        for (const wake of state.waiters.get(path) ?? []) wake();
        state.waiters.delete(path);
        return true;
      } catch (error) {
        this.log.warn({ url, err: (error as Error).message }, 'part fetch failed');
        return false;
      } finally {
        state.fetching.delete(path);
      }
    })();
    state.fetching.set(path, fetched);
    return fetched;
  }

  /** A listed resource not in memory (announced while the stream was not watched): fetched from its worker now. */
  private async fetchListed(state: StreamState, path: string): Promise<Buffer | undefined> {
    const known = state.urls.get(path);
    if (!known) return undefined;
    // A request joining a fetch-ahead already in flight (a watched stream) is not a fetch on request.
    if (!state.fetching.has(path)) this.o.metrics.fetchedOnRequest.inc();
    return (await this.fetchInto(state, path, known.url)) ? state.files.get(path)?.bytes : undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [streamId, state] of this.streams) {
      for (const [path, file] of state.files) {
        // Init segments stay while their epoch is current (new players need them).
        const isCurrentInit = path.endsWith('/init.mp4') && path.startsWith(`${state.epoch}/`);
        if (!isCurrentInit && now - file.at > this.o.keepMs) state.files.delete(path);
      }
      for (const [path, known] of state.urls) if (now - known.at > this.o.keepMs) state.urls.delete(path);
      if (state.parts && now >= state.watchedUntil) this.unwatch(state);
      // Every second (LL_WATCH_REPEAT_MS) while watched, so the worker (a new one after a failover too) goes on.
      else if (state.parts) this.announceWatch(streamId);
      if (state.endedAt !== undefined && now - state.endedAt > this.o.keepMs) {
        this.unwatch(state);
        this.streams.delete(streamId);
        this.numbering.delete(streamId);
      }
    }
  }

  /** Streams whose part events this replica hears and fetches ahead (an LL request within watchMs). */
  watchedStreams(): number {
    return [...this.streams.values()].filter((s) => s.parts !== undefined).length;
  }

  /** Handles a GET/HEAD under /ll/; false if the path is not an LL-HLS one. */
  handle(req: IncomingMessage, res: ServerResponse, url: RequestTarget): boolean {
    const m = PATH.exec(url.pathname);
    if (!m) return false;
    const [, streamId = '', playlistName, epoch, rendition, file, partNumber, segmentSequence] = m;
    const state = this.streams.get(streamId);
    // Someone watches this stream in LL through this replica: hear and fetch its parts ahead from now on.
    if (state) this.watch(streamId, state);
    const send = (status: number, headers: Record<string, string | number>, body?: Buffer | string) => {
      res.writeHead(status, headers).end(req.method === 'HEAD' ? undefined : body);
    };
    const notFound = (why: string) =>
      send(404, { 'content-type': 'text/plain', 'cache-control': 'no-cache' }, `${why}\n`);
    if (playlistName === 'master') {
      void this.fromStorage(`${streamId}/master.m3u8`).then((bytes) =>
        bytes
          ? send(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' }, bytes)
          : notFound('no such stream'),
      );
      return true;
    }
    // Passes the request to the replica that owns the stream, if another one does: false if this one does.
    // A forwarded request is marked so it is never forwarded again (replicas briefly disagreeing on the
    // owner). Looked up only when needed: not for the parts and segments served from memory.
    const toOwner = (fallback: () => void): boolean => {
      const owner = req.headers['x-ll-forwarded'] ? null : this.o.ring?.owner(streamId);
      if (owner) this.forward(owner.url, req, res, url, fallback);
      return Boolean(owner);
    };
    // Playlists of a stream another replica owns come from that replica (one numbering per stream).
    if (playlistName) {
      const answer = () => this.answerPlaylist(streamId, playlistName, url, send, notFound);
      if (!toOwner(answer)) answer();
      return true;
    }
    if (!state) {
      const missing = () => notFound('no LL-HLS stream with this id');
      if (!toOwner(missing)) missing();
      return true;
    }
    const path = `${epoch}/${rendition}/${file}`;
    const media = (bytes: Buffer) =>
      send(
        200,
        {
          'content-type': file === 'init.mp4' ? 'video/mp4' : 'video/iso.segment',
          // Parts and segments never change once they exist; they are only fetched near the live edge.
          'cache-control': 'public, max-age=60, immutable',
          'content-length': bytes.length,
        },
        bytes,
      );
    const segmentParts = segmentSequence
      ? this.segmentParts(state, Number(epoch), rendition ?? '', Number(segmentSequence))
      : undefined;
    const inMemory =
      state.files.get(path)?.bytes ?? this.concat(segmentParts?.map((p) => state.files.get(p)?.bytes));
    if (inMemory) {
      media(inMemory);
      return true;
    }
    if (partNumber !== undefined) {
      const known = state.urls.has(path);
      // Not heard of here and not one of the next ones (which would be held): announced before this replica
      // started listening to the stream. The owner listed it, so the owner has it.
      const holdable = !known && this.canHold(state, Number(epoch), rendition ?? '', Number(partNumber));
      if (!known && !holdable && toOwner(() => notFound('no such part'))) return true;
      // Announced (listed unwatched, or being fetched): from its worker; else maybe the next one (held).
      const bytes = known
        ? this.fetchListed(state, path)
        : this.holdPart(state, Number(epoch), rendition ?? '', Number(partNumber), path);
      bytes.then(
        (b) => (b ? media(b) : notFound('no such part')),
        () => notFound('no such part'),
      );
      return true;
    }
    // Segments and init: the stored copy, or (not uploaded yet) from the worker.
    void this.fromStorage(`${streamId}/${path}`)
      .then(async (stored) => {
        if (stored) return stored;
        if (file === 'init.mp4') return this.fetchListed(state, path);
        if (!segmentParts) return undefined;
        return this.concat(
          await Promise.all(segmentParts.map((p) => state.files.get(p)?.bytes ?? this.fetchListed(state, p))),
        );
      })
      .then((bytes) => {
        if (bytes) media(bytes);
        // A segment whose parts this replica did not hear, not in storage yet: the owner listed it.
        else if (!toOwner(() => notFound('not found'))) notFound('not found');
      });
    return true;
  }

  private concat(parts: (Buffer | undefined)[] | undefined): Buffer | undefined {
    if (!parts || parts.length === 0 || parts.some((p) => p === undefined)) return undefined;
    return Buffer.concat(parts as Buffer[]);
  }

  private answerPlaylist(
    streamId: string,
    rendition: string,
    url: RequestTarget,
    send: (status: number, headers: Record<string, string>, body?: string) => void,
    notFound: (why: string) => void,
  ): void {
    const state = this.streams.get(streamId);
    if (!state) {
      notFound('no LL-HLS stream with this id');
      return;
    }
    playlistResponse(state.ll, rendition, url.searchParams)
      // Which replica answered (through a forward too): for operators, and the tests of owner changes.
      .then((r) => send(r.status, { ...r.headers, 'x-ll-origin': this.o.originId }, r.body))
      .catch((error: Error) => {
        this.log.error({ streamId, err: error.message }, 'playlist response failed');
        send(500, {}, 'internal error\n');
      });
  }

  /**
   * Passes a playlist request to the replica that owns the stream and streams its answer back (status,
   * type, cache headers). If that replica cannot be reached, this one answers (`fallback`).
   */
  private forward(
    base: string,
    req: IncomingMessage,
    res: ServerResponse,
    url: RequestTarget,
    fallback: () => void,
  ): void {
    this.o.metrics.forwarded.inc();
    proxyHttp(new URL(url.pathname + url.search, base), req, res, {
      headers: { 'x-ll-forwarded': '1' },
      passHeaders: ['content-type', 'content-length', 'cache-control', 'retry-after', 'x-ll-origin'],
      // Longer than the owner's 3-target-duration hold: the owner answers (maybe 503) before this gives up.
      timeoutMs: 10_000,
      onError: (error) => {
        this.log.warn({ owner: base, err: error.message }, 'LL owner unreachable: answering here');
        fallback();
      },
    });
  }

  /** The parts of a complete listed segment (paths): their concatenation is the segment, byte for byte. */
  private segmentParts(
    state: StreamState,
    epoch: number,
    rendition: string,
    sequence: number,
  ): string[] | undefined {
    const playlist = state.ll.renditions.get(rendition);
    const segment = playlist?.segments.find((s) => s.epoch === epoch && s.sequence === sequence);
    return segment?.parts.map((p) => `${epoch}/${rendition}/part_${p.number}.m4s`);
  }

  /**
   * A part not fetched yet: if it is one of the next few of the current epoch (the preload hint, or a player
   * a little ahead), the request waits until it is in memory, at most 3 target durations; otherwise 404.
   */
  private holdPart(
    state: StreamState,
    epoch: number,
    rendition: string,
    number: number,
    path: string,
  ): Promise<Buffer | undefined> {
    const playlist = state.ll.renditions.get(rendition);
    if (!playlist || !this.canHold(state, epoch, rendition, number)) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiters = state.waiters.get(path) ?? new Set<() => void>();
      state.waiters.set(path, waiters);
      const wake = () => {
        clearTimeout(timer);
        resolve(state.files.get(path)?.bytes);
      };
      const timer = setTimeout(
        () => {
          waiters.delete(wake);
          resolve(undefined);
        },
        3 * playlist.targetDuration * 1000,
      );
      waiters.add(wake);
    });
  }

  /**
   * Whether a part not fetched yet is one of the next few of the current epoch as this replica lists them
   * (the preload hint, or a player a little ahead). Not while its parts are out of sync (just started
   * listening): the next part's number is not known then.
   */
  private canHold(state: StreamState, epoch: number, rendition: string, number: number): boolean {
    const playlist = state.ll.renditions.get(rendition);
    if (!playlist || playlist.ended || epoch < playlist.epoch || !playlist.partsInSync) return false;
    const next = epoch > playlist.epoch ? 0 : playlist.nextPartNumber();
    return number >= next && number <= next + advancePartLimit(playlist.partTarget);
  }

  private async fromStorage(key: string): Promise<Buffer | null> {
    try {
      return await this.o.storage.get(key);
    } catch (error) {
      this.log.error({ key, err: (error as Error).message }, 'storage read failed');
      return null;
    }
  }
}
