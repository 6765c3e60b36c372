// Real ffmpeg processes for tests and benchmarks: a synthetic RTMP publisher and ffprobe.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type Child, startChild } from './process.js';

export interface PublisherOptions {
  /** rtmp://host:port/app/name */
  url: string;
  width?: number;
  height?: number;
  fps?: number;
  /** Keyframe interval in seconds. */
  gopSeconds?: number;
  /** Stop after this many seconds (default: run until stopped). */
  durationSec?: number;
  /** Video pixel format; yuv444p lets tests send what the ladder must refuse. */
  pixelFormat?: string;
  /** Omit the audio track. */
  noAudio?: boolean;
  /** Publish a pre-encoded file with -c copy instead of encoding (cheap: for many publishers). */
  inputFile?: string;
  /** Loop inputFile forever (default true). */
  loop?: boolean;
  /**
   * Draw a clock as a barcode across the top (see clockBarcodeFilter): true or 'media' for the frame's media
   * time, 'wallclock' for the wall clock when the frame was made (glass-to-glass latency).
   */
  clockBarcode?: boolean | 'media' | 'wallclock';
  /** x264 preset for the synthetic source (default ultrafast). */
  preset?: string;
}

/** Bits of the clock barcode: time in 10 ms units, 16 bits (655.36 s before it wraps). */
export const BARCODE_BITS = 16;

/**
 * A machine-readable clock burnt into the picture: BARCODE_BITS white/black blocks across the top 1/8 of
 * the frame, bit i = floor(t * 100 / 2^i) mod 2, where t is the frame's media time in seconds ('media') or
 * the wall clock in seconds (ffmpeg's expression function time(0), read as the frame is filtered, which
 * with -re is when it is made: 'wallclock', modulo the 655.36 s the barcode holds). Blocks are large so
 * they survive scaling and compression; readClockBarcode reads them back.
 */
export function clockBarcodeFilter(
  width: number,
  height: number,
  clock: 'media' | 'wallclock' = 'media',
): string {
  const t = clock === 'media' ? 't' : `mod(time(0),${2 ** BARCODE_BITS / 100})`;
  const block = Math.floor(width / BARCODE_BITS);
  const strip = Math.floor(height / 8);
  const boxes = Array.from(
    { length: BARCODE_BITS },
    (_, i) =>
      `drawbox=x=${i * block}:y=0:w=${block}:h=${strip}:color=white:t=fill:enable='eq(mod(floor(${t}*100/${2 ** i}),2),1)'`,
  );
  return [`drawbox=x=0:y=0:w=${block * BARCODE_BITS}:h=${strip}:color=black:t=fill`, ...boxes].join(',');
}

/** Reads the clock barcode from a frame's luma plane (8-bit gray, `width` x `height`): media time in ms. */
export function readClockBarcode(gray: Buffer, width: number, height: number): number {
  const block = width / BARCODE_BITS;
  const y = Math.floor(height / 16);
  let value = 0;
  for (let i = 0; i < BARCODE_BITS; i++) {
    const x = Math.floor(i * block + block / 2);
    if ((gray[y * width + x] ?? 0) > 128) value += 2 ** i;
  }
  return value * 10;
}

/** Arguments of the synthetic publisher, kept pure so a test can read them. */
export function publisherArgs(o: PublisherOptions): string[] {
  const { width = 640, height = 360, fps = 30, gopSeconds = 1 } = o;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'warning'];
  if (o.inputFile) {
    // -re: read at native speed like a live encoder; -stream_loop -1: loop the clip forever.
    args.push('-re', ...(o.loop === false ? [] : ['-stream_loop', '-1']), '-i', o.inputFile, '-c', 'copy');
  } else {
    args.push('-re', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`);
    if (!o.noAudio) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
    if (o.clockBarcode)
      args.push(
        '-vf',
        clockBarcodeFilter(width, height, o.clockBarcode === 'wallclock' ? 'wallclock' : 'media'),
      );
    args.push(
      '-c:v',
      'libx264',
      '-preset',
      o.preset ?? 'ultrafast',
      '-tune',
      'zerolatency',
      '-pix_fmt',
      o.pixelFormat ?? 'yuv420p',
      '-g',
      String(Math.max(1, Math.round(fps * gopSeconds))),
    );
    if (!o.noAudio) args.push('-c:a', 'aac', '-b:a', '64k');
  }
  if (o.durationSec !== undefined) args.push('-t', String(o.durationSec));
  // Like OBS (librtmp sets TCP_NODELAY): without it Nagle holds ffmpeg's small header writes for the
  // receiver's delayed ACK (~40 ms).
  args.push('-tcp_nodelay', '1', '-f', 'flv', o.url);
  return args;
}

export function startPublisher(options: PublisherOptions): Child {
  return startChild({ name: 'publisher', command: 'ffmpeg', args: publisherArgs(options) });
}

/** Encodes a clip for `inputFile` publishers: H.264 (2 s GOP) + AAC at a constant bitrate. */
export async function encodeClip(path: string, seconds = 10, kbps = 2400, size = '640x360'): Promise<void> {
  await promisify(execFile)('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${size}:rate=30`,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-g',
    '60',
    '-b:v',
    `${kbps}k`,
    '-minrate',
    `${kbps}k`,
    '-maxrate',
    `${kbps}k`,
    '-bufsize',
    `${kbps}k`,
    // nal-hrd=cbr pads with filler so the bitrate really is constant, like a streamer's CBR encoder.
    '-x264-params',
    'nal-hrd=cbr',
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-f',
    'flv',
    path,
  ]);
}

export interface ProbeStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
}

export async function ffprobe(url: string, timeoutMs = 10_000): Promise<ProbeStream[]> {
  const { stdout } = await promisify(execFile)(
    'ffprobe',
    ['-v', 'error', '-rw_timeout', String(timeoutMs * 1000), '-show_streams', '-of', 'json', url],
    { timeout: timeoutMs + 2000 },
  );
  return (JSON.parse(stdout) as { streams: ProbeStream[] }).streams;
}
