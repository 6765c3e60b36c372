import { type FSWatcher, watch } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { OrderedPublisher } from '@live/bus';
import { type Rendition, type SegmentEvent, type SourceInfo, segmentEvent, subjects } from '@live/contracts';
import { cacheControl, type Storage } from '@live/storage';
import { parse } from 'hls-parser';
import type { MediaPlaylist } from 'hls-parser/types.js';
import type { Logger } from 'pino';
import { type FfmpegExit, type FfmpegHandle, type Progress, startFfmpeg } from '../ffmpeg/ffmpeg-process.js';
import { INIT_SEGMENT, ladderCommand, PLAYLIST, renditionDir } from '../ffmpeg/ladder-args.js';
import { codecsOfInit } from './codecs.js';

export interface StreamJobOptions {
  streamId: string;
  epoch: number;
  source: SourceInfo;
  ladder: Rendition[];
  workerId: string;
  workRoot: string;
  segmentSeconds: number;
  preset: string;
  storage: Storage;
  media: OrderedPublisher;
  logger: Logger;
  /** ffmpeg ended without being asked to (crash, source gone). */
  onExit: (job: StreamJob, exit: FfmpegExit) => void;
}

export class StreamJob {
  readonly streamId: string;
  readonly epoch: number;
  state: 'starting' | 'running' | 'stopping' = 'starting';
  progress: Progress = { frames: 0, mediaTimeMs: 0, speed: 0 };
  lastSegmentAt: number | null = null;
  segmentsAnnounced = 0;
  private ffmpeg: FfmpegHandle | undefined;
  private readonly watchers: FSWatcher[] = [];
  private readonly workDir: string;
  private readonly log: Logger;

  constructor(private readonly o: StreamJobOptions) {
    this.streamId = o.streamId;
    this.epoch = o.epoch;
    this.workDir = join(o.workRoot, `${o.streamId}-${o.epoch}`);
    this.log = o.logger.child({ streamId: o.streamId, epoch: o.epoch });
  }

  get pid(): number | undefined {
    return this.ffmpeg?.pid;
  }

  async start(): Promise<void> {
    await rm(this.workDir, { recursive: true, force: true });
    for (const r of this.o.ladder) {
      const dir = renditionDir(this.workDir, r);
      await mkdir(dir, { recursive: true });
      this.watchRendition(r, dir);
    }
    const command = ladderCommand({
      input: this.o.source.url,
      ladder: this.o.ladder,
      workDir: this.workDir,
      segmentSeconds: this.o.segmentSeconds,
      preset: this.o.preset,
      hasAudio: this.o.source.audio !== null,
      sourceFps: this.o.source.video.fps,
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
      // Let the watchers see ffmpeg's last playlist write before they close.
      await new Promise((r) => setTimeout(r, 100));
      this.closeWatchers();
      if (!exit.requested) this.o.onExit(this, exit);
      await rm(this.workDir, { recursive: true, force: true }).catch(() => {});
    });
  }

  /** Graceful stop: ffmpeg closes its segments (announced), then exits. */
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

  private closeWatchers(): void {
    for (const w of this.watchers.splice(0)) w.close();
  }

  private watchRendition(rendition: Rendition, dir: string): void {
    let lastSequence = -1;
    let codecs = '';
    let busy = false;
    let again = false;
    const scan = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          const text = await readFile(join(dir, PLAYLIST), 'utf8').catch(() => null);
          if (!text) continue;
          const playlist = parse(text) as MediaPlaylist;
          for (const segment of playlist.segments) {
            if (segment.mediaSequenceNumber <= lastSequence) continue;
            const completedAt = Date.now();
            if (!codecs) {
              const init = await readFile(join(dir, INIT_SEGMENT));
              codecs = codecsOfInit(init);
              await this.publish(rendition, 'init', 0, init, null, 0, codecs, completedAt);
            }
            const bytes = await readFile(join(dir, segment.uri));
            await this.publish(
              rendition,
              'media',
              segment.mediaSequenceNumber,
              bytes,
              segment.programDateTime ?? null,
              segment.duration * 1000,
              codecs,
              completedAt,
            );
            lastSequence = segment.mediaSequenceNumber;
          }
        } while (again);
      } catch (error) {
        this.log.error({ rendition: rendition.name, err: (error as Error).message }, 'segment upload failed');
      } finally {
        busy = false;
      }
    };
    const watcher = watch(dir, (_event, file) => {
      if (file === PLAYLIST) void scan();
    });
    this.watchers.push(watcher);
  }

  private async publish(
    rendition: Rendition,
    kind: 'init' | 'media',
    sequence: number,
    data: Buffer,
    programDateTime: Date | null,
    durationMs: number,
    codecs: string,
    completedAt: number,
  ): Promise<void> {
    const file = kind === 'init' ? INIT_SEGMENT : `seg_${sequence}.m4s`;
    const key = `${this.streamId}/${this.epoch}/${rendition.name}/${file}`;
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
      codecs,
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
