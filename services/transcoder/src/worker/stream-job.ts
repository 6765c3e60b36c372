import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { type NatsConnection, type OrderedPublisher, publishCore, subscribeValidated } from '@live/bus';
import {
  llWatch,
  PARTS_WANTED_MS,
  type PartEvent,
  partEvent,
  type Rendition,
  type SegmentEvent,
  type SourceInfo,
  segmentEvent,
  subjects,
} from '@live/contracts';
import { cacheControl, type Storage } from '@live/storage';
import type { Logger } from 'pino';
import { type CutterEvent, PartCutter } from '../cmaf/part-cutter.js';
import { type FfmpegExit, type FfmpegHandle, type Progress, startFfmpeg } from '../ffmpeg/ffmpeg-process.js';
import { ladderCommand, renditionSocket } from '../ffmpeg/ladder-args.js';
import { codecsOfInit } from './codecs.js';
import type { PartServer } from './part-server.js';

export interface StreamJobOptions {
  streamId: string;
  epoch: number;
  source: SourceInfo;
  ladder: Rendition[];
  workerId: string;
  workRoot: string;
  segmentSeconds: number;
  /** LL-HLS part duration target (ms). */
  partMs: number;
  preset: string;
  storage: Storage;
  /** Segment events (JetStream, ordered). */
  media: OrderedPublisher;
  /** Part events (core NATS). */
  nc: NatsConnection;
  parts: PartServer;
  logger: Logger;
  /** ffmpeg ended without being asked to (crash, source gone, malformed output). */
  onExit: (job: StreamJob, exit: FfmpegExit) => void;
}

/** A unix socket path longer than this is cut by the kernel (sun_path is 108 bytes). */
const MAX_SOCKET_PATH = 100;
/** After ffmpeg exits, how long the last bytes and uploads may take before the job reports its exit. */
const FLUSH_TIMEOUT_MS = 5000;

/**
 * The job's folder name: `<streamId>-<epoch>` (what `ps` shows in ffmpeg's arguments), shortened with a hash
 * for long stream ids (up to 64 characters), since the sockets inside must fit a unix socket path.
 */
export function jobDirName(streamId: string, epoch: number): string {
  const name =
    streamId.length <= 24
      ? streamId
      : `${streamId.slice(0, 15)}~${createHash('sha1').update(streamId).digest('hex').slice(0, 8)}`;
  return `${name}-${epoch}`;
}

/** An init or media segment the cutter completed, to store and announce. */
interface CompletedSegment {
  kind: 'init' | 'media';
  sequence: number;
  data: Buffer;
  programDateTime: Date | null;
  durationMs: number;
  /** When the cutter completed it (ms since epoch). */
  completedAt: number;
}

/** One rendition's fMP4 stream: the cutter, and the uploads in order. */
interface RenditionOutput {
  rendition: Rendition;
  server: Server;
  socket?: Socket;
  cutter: PartCutter;
  codecs: string;
  /** Init and segment uploads, one after another (a segment event never precedes its init's). */
  uploads: Promise<void>;
  /** Resolves when ffmpeg closed the socket and every upload is done. */
  done: Promise<void>;
  finish: () => void;
}

export class StreamJob {
  readonly streamId: string;
  readonly epoch: number;
  state: 'starting' | 'running' | 'stopping' = 'starting';
  progress: Progress = { frames: 0, mediaTimeMs: 0, speed: 0 };
  lastSegmentAt: number | null = null;
  segmentsAnnounced = 0;
  partsAnnounced = 0;
  private ffmpeg: FfmpegHandle | undefined;
  private readonly outputs: RenditionOutput[] = [];
  private readonly workDir: string;
  private readonly log: Logger;
  /** Wall clock (ms) of media time 0: program date times are this plus the media time. */
  private clockAnchor: number | undefined;
  /** Start time (s) of each segment sequence in the first rendition that cut it: all renditions must agree. */
  private readonly segmentStarts = new Map<number, number>();
  private failure: string | undefined;
  private startedAt = 0;
  /** Part events go out until then: an origin watches the stream in LL (llWatch), or the job is new. */
  private partsWantedUntil = 0;
  private watches: { unsubscribe(): void } | undefined;
  private finish: () => void = () => {};
  /** Resolves once ffmpeg has exited and its last parts and segments are stored and announced (or given up). */
  readonly finished = new Promise<void>((resolve) => {
    this.finish = resolve;
  });

  constructor(private readonly o: StreamJobOptions) {
    this.streamId = o.streamId;
    this.epoch = o.epoch;
    this.workDir = join(o.workRoot, jobDirName(o.streamId, o.epoch));
    this.log = o.logger.child({ streamId: o.streamId, epoch: o.epoch });
  }

  get pid(): number | undefined {
    return this.ffmpeg?.pid;
  }

  /** An LL-HLS origin hears this stream's parts (or the job started within PARTS_WANTED_MS). */
  get partsWanted(): boolean {
    return Date.now() < this.partsWantedUntil;
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    this.partsWantedUntil = this.startedAt + PARTS_WANTED_MS;
    await rm(this.workDir, { recursive: true, force: true });
    await mkdir(this.workDir, { recursive: true });
    for (const rendition of this.o.ladder) await this.listen(rendition);
    const command = ladderCommand({
      input: this.o.source.url,
      ladder: this.o.ladder,
      workDir: this.workDir,
      segmentSeconds: this.o.segmentSeconds,
      partMs: this.o.partMs,
      preset: this.o.preset,
      hasAudio: this.o.source.audio !== null,
    });
    this.watches = subscribeValidated({
      nc: this.o.nc,
      logger: this.log,
      subject: subjects.llWatch(this.streamId),
      schema: llWatch,
      name: 'transcoder-ll-watch',
      handler: () => {
        this.partsWantedUntil = Date.now() + PARTS_WANTED_MS;
      },
    });
    const ffmpegLog = this.log.child({ component: 'ffmpeg' });
    this.ffmpeg = startFfmpeg(command, {
      onLine: (line) => ffmpegLog.warn(line),
      onProgress: (p) => {
        this.progress = p;
      },
    });
    this.log.info({ pid: this.ffmpeg.pid, renditions: this.o.ladder.map((r) => r.name) }, 'transcoding');
    void this.ffmpeg.exited.then(async (exit) => {
      // ffmpeg's last fragments may still be in the sockets: cut, upload and announce them first. An output
      // ffmpeg never connected to (it failed before writing) has nothing to wait for.
      for (const out of this.outputs) if (!out.socket) out.finish();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(this.outputs.map((out) => out.done)),
        new Promise((resolve) => {
          timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const out of this.outputs) {
        out.socket?.destroy();
        out.server.close();
      }
      this.o.parts.expire(`${this.streamId}/${this.epoch}/`);
      const failed = this.failure ? { ...exit, lastLines: [...exit.lastLines, this.failure] } : exit;
      if (!exit.requested) this.o.onExit(this, failed);
      this.watches?.unsubscribe();
      await rm(this.workDir, { recursive: true, force: true }).catch(() => {});
      this.finish();
    });
  }

  /** Graceful stop: ffmpeg closes its last fragments (cut and announced), then exits. */
  async stop(): Promise<void> {
    this.state = 'stopping';
    await this.ffmpeg?.stop();
  }

  /** Immediate stop (fencing, failover). */
  kill(): void {
    this.state = 'stopping';
    this.ffmpeg?.kill();
  }

  signalFfmpeg(sig: NodeJS.Signals): void {
    this.ffmpeg?.signal(sig);
  }

  /** Opens the rendition's unix socket; ffmpeg connects to it once and writes the whole fMP4 stream. */
  private async listen(rendition: Rendition): Promise<void> {
    const path = renditionSocket(this.workDir, rendition);
    if (path.length > MAX_SOCKET_PATH) {
      throw new Error(
        `socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter TRANSCODER_WORK_DIR`,
      );
    }
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const out: RenditionOutput = {
      rendition,
      server: createServer(),
      cutter: new PartCutter({ segmentTargetMs: this.o.segmentSeconds * 1000 }),
      codecs: '',
      uploads: Promise.resolve(),
      done,
      finish,
    };
    out.server.on('connection', (socket) => {
      if (out.socket) {
        socket.destroy(); // only ffmpeg, once
        return;
      }
      out.socket = socket;
      socket.on('data', (chunk: Buffer) => this.onBytes(out, () => out.cutter.push(chunk)));
      socket.on('end', () => this.onBytes(out, () => out.cutter.end()));
      socket.on('close', () => {
        void out.uploads.then(out.finish);
      });
      socket.on('error', (error) =>
        this.log.warn({ rendition: rendition.name, err: error.message }, 'fMP4 socket error'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      out.server.once('error', reject);
      out.server.listen(path, () => resolve());
    });
    this.outputs.push(out);
  }

  private onBytes(out: RenditionOutput, cut: () => CutterEvent[]): void {
    let events: CutterEvent[];
    try {
      events = cut();
    } catch (error) {
      // A stream cut short by a stop we asked for (SIGKILL for fencing or failover) is expected.
      if (this.state === 'stopping') {
        this.log.debug(
          { rendition: out.rendition.name, err: (error as Error).message },
          'fMP4 output cut short',
        );
        return;
      }
      // Malformed fMP4 from our own ffmpeg: nothing after it can be trusted. Stop ffmpeg; the exit reports it.
      if (!this.failure) {
        this.failure = `${out.rendition.name}: ${(error as Error).message}`;
        this.log.error(
          { rendition: out.rendition.name, err: (error as Error).message },
          'fMP4 output rejected',
        );
        this.ffmpeg?.kill();
      }
      return;
    }
    for (const event of events) {
      if (event.type === 'init') {
        out.codecs = codecsOfInit(event.bytes);
        this.o.parts.put(this.partKey(out.rendition, 'init.mp4'), event.bytes, 24 * 3600_000);
        this.upload(out, {
          kind: 'init',
          sequence: 0,
          data: event.bytes,
          programDateTime: null,
          durationMs: 0,
          completedAt: Date.now(),
        });
      } else if (event.type === 'part') {
        this.announcePart(out, event);
      } else {
        this.checkAligned(out.rendition, event.sequence, event.startTime);
        this.upload(out, {
          kind: 'media',
          sequence: event.sequence,
          data: event.bytes,
          programDateTime: new Date(this.anchor(event.startTime, 0) + event.startTime * 1000),
          durationMs: event.duration * 1000,
          completedAt: Date.now(),
        });
      }
    }
  }

  /** Wall clock of media time 0, fixed by the first part: it ended (was cut) about now. */
  private anchor(startTime: number, duration: number): number {
    this.clockAnchor ??= Date.now() - (startTime + duration) * 1000;
    return this.clockAnchor;
  }

  private announcePart(out: RenditionOutput, part: Extract<CutterEvent, { type: 'part' }>): void {
    const pdt = this.anchor(part.startTime, part.duration) + part.startTime * 1000;
    // Nobody watches the stream in LL: the part is neither announced nor kept (no origin can list a part it
    // never heard of, and ten seconds of parts held for nobody only grow the heap the GC walks).
    if (!this.partsWanted) return;
    const url = this.o.parts.put(this.partKey(out.rendition, `part_${part.number}.m4s`), part.bytes);
    const event: PartEvent = {
      type: 'part',
      streamId: this.streamId,
      epoch: this.epoch,
      workerId: this.o.workerId,
      rendition: out.rendition.name,
      sequence: part.segment,
      index: part.index,
      number: part.number,
      durationMs: Math.round(part.duration * 1e6) / 1000,
      independent: part.independent,
      programDateTime: new Date(pdt).toISOString(),
      url,
      initUrl: this.o.parts.url(this.partKey(out.rendition, 'init.mp4')),
      bytes: part.bytes.length,
      completedAt: Date.now(),
    };
    // A job still stopping while its worker shuts down: the part is kept, only not announced.
    if (!publishCore(this.o.nc, partEvent, subjects.mediaPart(this.streamId), event)) return;
    // How fast a job gets going is what a failover costs viewers: logged once per job.
    if (this.partsAnnounced === 0) {
      this.log.info({ rendition: out.rendition.name, ms: event.completedAt - this.startedAt }, 'first part');
    }
    this.partsAnnounced++;
  }

  private partKey(rendition: Rendition, file: string): string {
    return `${this.streamId}/${this.epoch}/${rendition.name}/${file}`;
  }

  /** Renditions must cut segments at the same media times, or players cannot switch at every boundary. */
  private checkAligned(rendition: Rendition, sequence: number, startTime: number): void {
    const first = this.segmentStarts.get(sequence);
    if (first === undefined) {
      this.segmentStarts.set(sequence, startTime);
      this.segmentStarts.delete(sequence - 10);
    } else if (Math.abs(first - startTime) > 0.001) {
      this.log.warn(
        { rendition: rendition.name, sequence, startTime, expected: first },
        'segment boundaries differ between renditions',
      );
    }
  }

  /** Queues the upload and announcement of an init or media segment behind the rendition's earlier ones. */
  private upload(out: RenditionOutput, segment: CompletedSegment): void {
    out.uploads = out.uploads.then(() =>
      this.publishSegment(out, segment).catch((error) =>
        this.log.error(
          { rendition: out.rendition.name, sequence: segment.sequence, err: (error as Error).message },
          'segment upload failed',
        ),
      ),
    );
  }

  private async publishSegment(out: RenditionOutput, segment: CompletedSegment): Promise<void> {
    const { kind, sequence, data, programDateTime, durationMs, completedAt } = segment;
    const { rendition } = out;
    const file = kind === 'init' ? 'init.mp4' : `seg_${sequence}.m4s`;
    const key = this.partKey(rendition, file);
    await this.o.storage.put(key, data, {
      contentType: kind === 'init' ? 'video/mp4' : 'video/iso.segment',
      cacheControl: cacheControl.segment,
    });
    const event: SegmentEvent = {
      type: 'segment',
      id: `${this.streamId}-${this.epoch}-${rendition.name}-${kind}-${sequence}`,
      streamId: this.streamId,
      epoch: this.epoch,
      workerId: this.o.workerId,
      rendition,
      kind,
      sequence,
      durationMs,
      key,
      bytes: data.length,
      programDateTime: programDateTime ? programDateTime.toISOString() : null,
      codecs: out.codecs,
      completedAt,
    };
    void this.o.media.publish(segmentEvent, subjects.mediaSegment(this.streamId), event, event.id);
    if (kind === 'media') {
      this.state = this.state === 'starting' ? 'running' : this.state;
      this.lastSegmentAt = Date.now();
      this.segmentsAnnounced++;
    }
  }
}
