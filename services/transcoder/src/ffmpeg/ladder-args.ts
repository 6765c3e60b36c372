// The ffmpeg command of one transcode job, built by a pure function so a golden test can pin it. One input
// (the source pulled from ingest over RTMP), one filter graph scaling it to every rendition, and one HLS
// output per rendition writing CMAF (fMP4) segments into a work folder that the worker watches.
import type { Rendition } from '@live/contracts';

export interface LadderCommandOptions {
  /** rtmp://ingest/src/<streamId>?token=... */
  input: string;
  ladder: Rendition[];
  /** Folder holding one sub-folder per rendition. */
  workDir: string;
  segmentSeconds: number;
  /** x264 preset: speed vs. quality; veryfast is the usual live choice on CPU. */
  preset: string;
  hasAudio: boolean;
  /** Source frame rate (0 = unknown): renditions above it are not possible, below it get an fps filter. */
  sourceFps: number;
}

export interface LadderCommand {
  input: string;
  inputOptions: string[];
  filter: string;
  outputs: { target: string; options: string[] }[];
}

export const renditionDir = (workDir: string, r: Rendition) => `${workDir}/${r.name}`;
export const PLAYLIST = 'index.m3u8';
export const INIT_SEGMENT = 'init.mp4';

export function ladderCommand(o: LadderCommandOptions): LadderCommand {
  const inputOptions = [
    // Give up on a source that sends nothing for 15 s (microseconds). Longer than ingest's reconnect grace
    // (10 s): a streamer who comes back is still the same pull.
    '-rw_timeout',
    '15000000',
    // Probe at most 1 s of input: ingest hands over codec headers and a GOP at once, more only adds delay.
    '-analyzeduration',
    '1000000',
  ];
  // One decode, split to every rendition: scale to its size, drop frames if its rate is below the source's.
  const branches = o.ladder.map((r, i) => {
    const fps = o.sourceFps === 0 || r.fps < o.sourceFps ? `,fps=${r.fps}` : '';
    return `[s${i}]scale=${r.width}:${r.height}${fps}[v${i}]`;
  });
  const filter = `[0:v]split=${o.ladder.length}${o.ladder.map((_, i) => `[s${i}]`).join('')};${branches.join(';')}`;
  const gop = (r: Rendition) => String(Math.round(r.fps * o.segmentSeconds));
  const outputs = o.ladder.map((r, i) => {
    const dir = renditionDir(o.workDir, r);
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
      '-f',
      'hls',
      // Target segment length; segments cut at the forced keyframes.
      '-hls_time',
      String(o.segmentSeconds),
      // CMAF: fMP4 segments plus one init segment per rendition.
      '-hls_segment_type',
      'fmp4',
      '-hls_fmp4_init_filename',
      INIT_SEGMENT,
      '-hls_segment_filename',
      `${dir}/seg_%d.m4s`,
      // ffmpeg's own playlist is only our completion signal: a short list, old files deleted by ffmpeg.
      '-hls_list_size',
      '6',
      // temp_file: a segment appears under its name only when complete; program_date_time: wall clock of
      // each segment's start (latency measurement, EXT-X-PROGRAM-DATE-TIME downstream).
      '-hls_flags',
      'delete_segments+temp_file+program_date_time+independent_segments',
    ];
    return { target: `${dir}/${PLAYLIST}`, options };
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
