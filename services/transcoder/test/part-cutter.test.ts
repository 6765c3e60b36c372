// The CMAF part cutter against real ffmpeg 5.1 writing fragmented MP4 to a pipe: parts of 200 ms of media,
// 1 s segments starting on independent parts, segments byte-identical to their parts and decodable by
// ffprobe; malformed input refused clearly; the wall-clock cadence of parts from a live (-re) encoder.
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { within } from '@live/testing';
import { fmp4OutputArgs } from '../src/cmaf/fmp4-args.js';
import {
  type CutterEvent,
  cutParts,
  PartCutter,
  type PartEvent,
  type SegmentEvent,
} from '../src/cmaf/part-cutter.js';

const dir = mkdtempSync(join(tmpdir(), 'part-cutter-'));
const running = new Set<ChildProcessByStdio<null, Readable, Readable>>();

after(async () => {
  // Every ffmpeg this file started is stopped by its pid, also when a test failed.
  await Promise.all(
    [...running].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }),
  );
  rmSync(dir, { recursive: true, force: true });
});

interface EncoderOptions {
  seconds: number;
  /** Read the synthetic input at its native rate, like a live source. */
  live?: boolean;
  gopSeconds?: number;
  /** Overrides gopSeconds: a keyframe every this many frames. */
  gopFrames?: number;
  audio?: boolean;
  size?: string;
}

/** Synthetic source -> x264/AAC -> fragmented MP4 on stdout. Every flag says why. */
function encoderArgs({
  seconds,
  live = false,
  gopSeconds = 1,
  gopFrames,
  audio = true,
  size = '640x360',
}: EncoderOptions) {
  const fps = 30;
  const gop = String(gopFrames ?? fps * gopSeconds);
  return [
    '-hide_banner',
    '-nostdin',
    // Errors only: stderr is kept for the failure message.
    '-loglevel',
    'error',
    // -re paces reading at the input's frame rate, so parts leave at the pace of a live encoder.
    ...(live ? ['-re'] : []),
    // A moving test picture with a clock, and a sine tone: synthetic, deterministic, no files needed.
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${size}:rate=${fps}`,
    ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'] : []),
    // A short clip keeps the test cheap on a shared 2-core machine.
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    // The cheapest x264 preset (tests), and no lookahead/B-frames so frames leave as they are encoded.
    '-preset',
    'ultrafast',
    '-tune',
    'zerolatency',
    '-pix_fmt',
    'yuv420p',
    // A keyframe exactly every gopSeconds (fixed GOP, no scene-cut keyframes): where segments may start.
    '-g',
    gop,
    '-keyint_min',
    gop,
    '-sc_threshold',
    '0',
    ...(audio ? ['-c:a', 'aac', '-b:a', '64k'] : []),
    // The muxer options under test (fmp4-args.ts), writing to stdout: a non-seekable pipe.
    ...fmp4OutputArgs({ partTargetMs: 200 }),
    'pipe:1',
  ];
}

interface Encoder {
  stdout: Readable;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startEncoder(options: EncoderOptions): Encoder {
  // setpriv: the kernel kills ffmpeg if this test process dies, even by SIGKILL.
  const child = spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', 'ffmpeg', ...encoderArgs(options)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  return { stdout: child.stdout, exited, stderr: () => stderr };
}

/** The whole output of an encoder run, as one buffer. */
async function encode(options: EncoderOptions): Promise<Buffer> {
  const encoder = startEncoder(options);
  const chunks: Buffer[] = [];
  for await (const chunk of encoder.stdout) chunks.push(chunk as Buffer);
  const code = await within(encoder.exited, 30_000, 'ffmpeg to exit');
  assert.equal(code, 0, `ffmpeg failed: ${encoder.stderr()}`);
  return Buffer.concat(chunks);
}

/** A small seeded PRNG (mulberry32): random chunk sizes that a failure can reproduce. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Feeds `bytes` in random-sized chunks (1 byte to 8 KiB, many below a box header's 16 bytes). */
function cutInChunks(bytes: Buffer, seed: number, cutter = new PartCutter()): CutterEvent[] {
  const next = random(seed);
  const events: CutterEvent[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = next() < 0.3 ? 1 + Math.floor(next() * 16) : 1 + Math.floor(next() * 8192);
    events.push(...cutter.push(bytes.subarray(at, at + n)));
    at += n;
  }
  events.push(...cutter.end());
  return events;
}

const parts = (events: CutterEvent[]) => events.filter((e): e is PartEvent => e.type === 'part');
const segments = (events: CutterEvent[]) => events.filter((e): e is SegmentEvent => e.type === 'segment');

interface Probe {
  streams: {
    codec_type: string;
    width?: number;
    height?: number;
    nb_read_frames?: string;
    start_time: string;
  }[];
  format: { duration: string; start_time: string };
}

/** ffprobe decoding every frame of a file (-count_frames), so an undecodable segment fails here. */
async function probe(path: string): Promise<Probe> {
  const { stdout } = await promisify(execFile)(
    'ffprobe',
    ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', path],
    { timeout: 20_000 },
  );
  return JSON.parse(stdout) as Probe;
}

let recorded: Buffer | undefined;
/** One 5 s A/V encode shared by the tests that only read it. */
async function recording(): Promise<Buffer> {
  recorded ??= await encode({ seconds: 5 });
  return recorded;
}

test('golden: the fragmented MP4 output options', () => {
  assert.deepEqual(fmp4OutputArgs({ partTargetMs: 333 }), [
    '-f',
    'mp4',
    '-movflags',
    'frag_keyframe+empty_moov+delay_moov+default_base_moof+cmaf',
    '-frag_duration',
    '333000',
    '-flush_packets',
    '1',
  ]);
});

test('ffmpeg fMP4 cut in random chunks: 200 ms parts, 1 s segments on independent parts, byte-identical', async () => {
  const bytes = await recording();
  const seed = 0x5eed;
  const events = cutInChunks(bytes, seed);
  assert.equal(events[0]?.type, 'init', 'the init segment comes first');
  const init = events[0]?.type === 'init' ? events[0] : assert.fail('no init');
  assert.deepEqual(
    init.tracks.map((t) => t.handler),
    ['vide', 'soun'],
  );
  assert.equal(events.filter((e) => e.type === 'init').length, 1);

  const ps = parts(events);
  const ss = segments(events);
  // 5 s of media in 200 ms parts, 1 s segments.
  assert.equal(ps.length, 25, `seed ${seed}: ${ps.length} parts`);
  assert.equal(ss.length, 5);
  ps.forEach((p, i) => {
    assert.equal(p.number, i);
    // Parts follow each other every 200 ms of media time, without gap or overlap.
    assert.ok(Math.abs(p.duration - 0.2) < 0.001, `part ${i} lasts ${p.duration} s`);
    assert.ok(Math.abs(p.startTime - i * 0.2) < 0.001, `part ${i} starts at ${p.startTime} s`);
    // Only the first part of a segment starts on a keyframe (keyframes every 1 s, 5 parts each).
    assert.equal(p.independent, p.index === 0, `part ${i} (index ${p.index}) independent=${p.independent}`);
  });
  for (const s of ss) {
    const own = ps.filter((p) => p.segment === s.sequence);
    assert.equal(own.length, s.partCount);
    assert.equal(own[0]?.independent, true, `segment ${s.sequence} starts with an independent part`);
    assert.ok(Math.abs(s.duration - 1) < 0.001, `segment ${s.sequence} lasts ${s.duration} s`);
    assert.ok(
      Buffer.concat(own.map((p) => p.bytes)).equals(s.bytes),
      'a segment is its parts concatenated, byte for byte',
    );
  }
  // Nothing lost or added: init + segments give back every byte ffmpeg wrote except its final mfra index.
  const total = init.bytes.length + ss.reduce((sum, s) => sum + s.bytes.length, 0);
  assert.ok(bytes.subarray(total, total + 8).toString('latin1', 4, 8) === 'mfra', 'only the mfra is left');

  // Segment events come right before the next segment's first part (and at the end).
  const order = events.map((e) => (e.type === 'part' ? `p${e.segment}.${e.index}` : e.type));
  assert.equal(order.indexOf('p1.0') - 1, order.indexOf('segment'));

  // Another random chunking gives exactly the same output.
  const again = cutInChunks(bytes, 42);
  assert.deepEqual(
    parts(again).map((p) => [p.segment, p.index, p.bytes.length]),
    ps.map((p) => [p.segment, p.index, p.bytes.length]),
  );
});

test('a keyframe a little before the segment target still starts a segment (no 2 s segments)', async () => {
  // Keyframes every 29 frames (967 ms): the worker's forced keyframes drift this way against the fMP4
  // timeline (30 frames measured at 1.0028 s). Each one must start a segment, not every other one.
  const events = cutInChunks(await encode({ seconds: 5, gopFrames: 29 }), 7);
  const segments = events.filter((e) => e.type === 'segment');
  assert.ok(segments.length >= 4, `${segments.length} segments`);
  for (const segment of segments.slice(0, -1)) {
    assert.ok(Math.abs(segment.duration - 29 / 30) < 0.01, `segment of ${segment.duration} s`);
  }
});

test('ffprobe decodes init + each segment, and init + a single part', async () => {
  const events = new PartCutter().push(await recording());
  const init = events.find((e) => e.type === 'init');
  assert.ok(init);
  writeFileSync(join(dir, 'init.mp4'), init.bytes);
  // The last segment closes at end(); the first four are closed by the next segment's first part.
  const closed = segments(events);
  assert.equal(closed.length, 4);
  for (const s of closed) {
    const path = join(dir, `seg_${s.sequence}.mp4`);
    writeFileSync(path, Buffer.concat([init.bytes, s.bytes]));
    const info = await probe(path);
    const video = info.streams.find((st) => st.codec_type === 'video');
    assert.equal(video?.width, 640);
    assert.equal(video?.height, 360);
    assert.equal(video?.nb_read_frames, '30', `segment ${s.sequence}: 1 s at 30 fps decodes as 30 frames`);
    assert.ok(info.streams.some((st) => st.codec_type === 'audio'));
    // ffprobe's durations are end times: the segment starts where its parts said, and spans ~1 s (audio
    // frames of 21.3 ms overhang the video by less than one frame).
    assert.ok(Math.abs(Number(video?.start_time) - s.startTime) < 0.001, `starts at ${video?.start_time}`);
    const span = Number(info.format.duration) - Number(info.format.start_time);
    assert.ok(Math.abs(span - 1) < 0.1, `segment ${s.sequence} spans ${span} s`);
  }
  // A part alone (the first of segment 2: independent) decodes too: 200 ms = 6 frames.
  const part = parts(events).find((p) => p.segment === 2 && p.index === 0);
  assert.ok(part);
  const partPath = join(dir, 'part.mp4');
  writeFileSync(partPath, Buffer.concat([init.bytes, part.bytes]));
  const info = await probe(partPath);
  assert.equal(info.streams.find((st) => st.codec_type === 'video')?.nb_read_frames, '6');
});

test('64-bit box sizes are read (an mdat rewritten with a largesize header)', async () => {
  const bytes = await recording();
  const reference = cutInChunks(bytes, 7);
  const init = reference.find((e) => e.type === 'init');
  assert.ok(init);
  // The first mdat follows init + first moof; rewrite its 8-byte header as a 16-byte one.
  const moofSize = bytes.readUInt32BE(init.bytes.length);
  const at = init.bytes.length + moofSize;
  assert.equal(bytes.toString('latin1', at + 4, at + 8), 'mdat');
  const size = bytes.readUInt32BE(at);
  const header = Buffer.alloc(16);
  header.writeUInt32BE(1, 0);
  header.write('mdat', 4, 'latin1');
  header.writeBigUInt64BE(BigInt(size + 8), 8);
  const rewritten = Buffer.concat([bytes.subarray(0, at), header, bytes.subarray(at + 8)]);
  const events = cutInChunks(rewritten, 8);
  const first = parts(events)[0];
  assert.equal(first?.bytes.length, (parts(reference)[0]?.bytes.length ?? 0) + 8);
  assert.ok(first?.bytes.subarray(moofSize, moofSize + 16).equals(header));
  assert.equal(parts(events).length, parts(reference).length);
});

test('malformed input is refused with a clear CmafError, never a hang or an unbounded buffer', async () => {
  const bytes = await recording();
  const init = new PartCutter().push(bytes.subarray(0, 4096)).find((e) => e.type === 'init');
  assert.ok(init);
  const initLength = init.bytes.length;

  // Truncated: the stream stops inside an mdat.
  const truncated = new PartCutter();
  truncated.push(bytes.subarray(0, bytes.length - 5000));
  assert.throws(() => truncated.end(), { name: 'CmafError', message: /stream ended inside a box 'mdat'/ });

  // An absurd 32-bit size is refused as soon as the header is in, not after buffering 4 GB.
  const absurd = new PartCutter();
  absurd.push(init.bytes);
  const huge = Buffer.from([0xff, 0xff, 0xff, 0xf0, ...Buffer.from('mdat')]);
  assert.throws(() => absurd.push(huge), { name: 'CmafError', message: /declares 4294967280 bytes, above/ });
  // ... and the cutter stays failed: every later push throws the same error.
  assert.throws(() => absurd.push(Buffer.alloc(10)), /declares 4294967280 bytes/);

  // An absurd 64-bit size.
  const huge64 = Buffer.alloc(16);
  huge64.writeUInt32BE(1, 0);
  huge64.write('moof', 4, 'latin1');
  huge64.writeBigUInt64BE(2n ** 62n, 8);
  assert.throws(() => new PartCutter().push(Buffer.concat([init.bytes, huge64])), /absurd|above the/);

  // A size smaller than the header, size 0, garbage, a missing ftyp, an mdat without moof.
  const box = (size: number, type: string) => {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(size, 0);
    b.write(type, 4, 'latin1');
    return b;
  };
  assert.throws(() => new PartCutter().push(box(4, 'ftyp')), /smaller than its 8-byte header/);
  assert.throws(() => new PartCutter().push(box(0, 'ftyp')), /size 0/);
  assert.throws(
    () => new PartCutter().push(Buffer.from('\x00\x00\x00\x10\x01\x02\x03\x04garbage!')),
    /not an MP4 box/,
  );
  assert.throws(() => new PartCutter().push(box(16, 'moov')), /expected 'ftyp' first, got 'moov'/);
  assert.throws(() => new PartCutter().push(Buffer.concat([init.bytes, box(8, 'mdat')])), /'mdat' without/);

  // A moof whose trun claims more samples than it holds.
  const moofSize = bytes.readUInt32BE(initLength);
  const corrupt = Buffer.from(
    bytes.subarray(0, initLength + moofSize + bytes.readUInt32BE(initLength + moofSize)),
  );
  const trun = corrupt.indexOf('trun', initLength, 'latin1');
  corrupt.writeUInt32BE(0x7fffffff, trun + 8); // sample_count, after the type and version/flags
  assert.throws(() => new PartCutter().push(corrupt), {
    name: 'CmafError',
    message: /'trun' claims 2147483647/,
  });

  // A stream without keyframes for longer than maxSegmentMs (a source GOP far above the segment target).
  const noKeyframes = await encode({ seconds: 3, gopSeconds: 10, audio: false, size: '320x180' });
  const cutter = new PartCutter({ maxSegmentMs: 1500 });
  assert.throws(() => cutter.push(noKeyframes), {
    name: 'CmafError',
    message: /no independent fragment for/,
  });
});

test('live (-re) encoder: wall-clock cadence of parts (measured, printed)', async (t) => {
  const encoder = startEncoder({ seconds: 5, live: true });
  const arrivals: { at: number; part: PartEvent }[] = [];
  const start = performance.now();
  let firstPartMs = 0;
  for await (const event of cutParts(encoder.stdout)) {
    if (event.type !== 'part') continue;
    if (arrivals.length === 0) firstPartMs = performance.now() - start;
    arrivals.push({ at: performance.now(), part: event });
  }
  assert.equal(await within(encoder.exited, 15_000, 'ffmpeg to exit'), 0, encoder.stderr());
  assert.equal(arrivals.length, 25);
  // Intervals between parts after the first (the first waits for encoder start-up).
  const intervals = arrivals.slice(1).map((a, i) => a.at - (arrivals[i]?.at ?? 0));
  const mean = intervals.reduce((s, v) => s + v, 0) / intervals.length;
  const jitter = Math.sqrt(intervals.reduce((s, v) => s + (v - mean) ** 2, 0) / intervals.length);
  const sorted = [...intervals].sort((a, b) => a - b);
  const summary =
    `parts ${arrivals.length}, first after ${firstPartMs.toFixed(0)} ms, interval mean ${mean.toFixed(1)} ms, ` +
    `jitter (stdev) ${jitter.toFixed(1)} ms, min ${sorted[0]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms`;
  t.diagnostic(summary);
  console.log(`part cadence (live, 640x360 ultrafast, 200 ms parts): ${summary}`);
  // Loose sanity only: a live encoder cannot emit 200 ms parts much faster than real time.
  assert.ok(mean > 100 && mean < 400, summary);
});
