// The ffmpeg command of one transcode job, built by a pure function so a golden test can pin it. One input
// (the source pulled from ingest over RTMP), one filter graph scaling it to every rendition, and one output
// per rendition writing fragmented MP4 (one fragment per LL-HLS part) to a unix socket the worker listens on;
// the worker's part cutter turns that byte stream into init, parts and segments (cmaf/part-cutter.ts).
import type { Rendition } from '@live/contracts';
import { fmp4OutputArgs } from '../cmaf/fmp4-args.js';

export interface LadderCommandOptions {
  /** rtmp://ingest/src/<streamId>?token=... */
  input: string;
  ladder: Rendition[];
  /** Folder holding one unix socket per rendition. */
  workDir: string;
  segmentSeconds: number;
  /** LL-HLS part duration target (ms): ffmpeg writes one fragment per part. */
  partMs: number;
  /** x264 preset: speed vs. quality; veryfast is the usual live choice on CPU. */
  preset: string;
  hasAudio: boolean;
}

export interface LadderCommand {
  input: string;
  inputOptions: string[];
  filter: string;
  outputs: { target: string; options: string[] }[];
}

/** The unix socket a rendition's fMP4 goes to (ffmpeg connects; the worker listens). */
export const renditionSocket = (workDir: string, r: Rendition) => `${workDir}/${r.name}.sock`;

export function ladderCommand(o: LadderCommandOptions): LadderCommand {
  const inputOptions = [
    // Give up on a source that sends nothing for 15 s (microseconds). Longer than ingest's reconnect grace
    // (10 s): a streamer who comes back is still the same pull.
    '-rw_timeout',
    '15000000',
    // Probe at most 200 ms of input: ingest sends both codec headers (AVC and AAC sequence headers) first,
    // then its cached GOP, so the streams are known at once. Every ms here is a ms a failover costs viewers
    // (1 s measured 1025 ms to the first part; 200 ms: see docs/architecture.md, LL-HLS).
    '-analyzeduration',
    '200000',
  ];
  // One decode, split to every rendition: scale to its size, then a constant frame rate: the rendition's
  // (drops frames when it is below the source's). Always, also at the source's rate: without it the
  // encoder's time base comes from ffmpeg's frame rate guess, which a 200 ms probe gets slightly wrong
  // (29.92 for 30 fps, measured), and every frame is then one tick of that: the video timeline ran 0.28 %
  // slow (1.0028 s per 1 s segment), drifting from the audio and from the wall clock.
  const branches = o.ladder.map((r, i) => `[s${i}]scale=${r.width}:${r.height},fps=${r.fps}[v${i}]`);
  const filter = `[0:v]split=${o.ladder.length}${o.ladder.map((_, i) => `[s${i}]`).join('')};${branches.join(';')}`;
  const gop = (r: Rendition) => String(Math.round(r.fps * o.segmentSeconds));
  const outputs = o.ladder.map((r, i) => {
    const options = [
      '-map',
      `[v${i}]`,
      ...(o.hasAudio ? ['-map', '0:a:0'] : []),
      '-c:v',
      'libx264',
      '-preset',
      o.preset,
      // No B-frame lookahead or frame threads delay: each frame leaves the encoder as soon as it can.
      '-tune',
      'zerolatency',
      // At most High profile, 8-bit 4:2:0: what every HLS player decodes (x264 signals the lowest profile
      // its preset's features need, e.g. Constrained Baseline for ultrafast).
      '-profile:v',
      'high',
      '-pix_fmt',
      'yuv420p',
      // Capped VBR: the bitrate the master playlist advertises, with a 1.5 s buffer.
      '-b:v',
      `${r.videoKbps}k`,
      '-maxrate',
      `${Math.round(r.videoKbps * 1.07)}k`,
      '-bufsize',
      `${Math.round(r.videoKbps * 1.5)}k`,
      // Keyframes exactly at every segment boundary, identical in every rendition (same timestamps), and
      // nowhere else (no scene-cut keyframes), so players can switch rendition at any segment.
      '-g',
      gop(r),
      '-keyint_min',
      gop(r),
      '-sc_threshold',
      '0',
      '-force_key_frames',
      `expr:gte(t,n_forced*${o.segmentSeconds})`,
      ...(o.hasAudio
        ? [
            // AAC-LC stereo 48 kHz, the HLS baseline.
            '-c:a',
            'aac',
            '-b:a',
            `${r.audioKbps}k`,
            '-ac',
            '2',
            '-ar',
            '48000',
          ]
        : []),
      // Fragmented MP4, a fragment at every keyframe and every partMs (see fmp4-args.ts for each flag).
      ...fmp4OutputArgs({ partTargetMs: o.partMs }),
    ];
    return { target: `unix:${renditionSocket(o.workDir, r)}`, options };
  });
  return { input: o.input, inputOptions, filter, outputs };
}

/** Options placed before the outputs: logging and progress for the heartbeat. */
export const GLOBAL_OPTIONS = [
  // Warnings and errors only on stderr, plus a progress line every 200 ms (frames, time, speed).
  '-loglevel',
  'warning',
  '-stats',
  '-stats_period',
  '0.2',
  '-nostdin',
];

/** The whole argv, as ffmpeg receives it (for the golden test and the logs). */
export function toArgv(command: LadderCommand): string[] {
  return [
    ...command.inputOptions,
    ...GLOBAL_OPTIONS,
    '-i',
    command.input,
    '-filter_complex',
    command.filter,
    ...command.outputs.flatMap((o) => [...o.options, o.target]),
  ];
}
