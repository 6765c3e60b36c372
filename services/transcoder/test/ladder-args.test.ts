import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFfmpegCommand, parseStats } from '../src/ffmpeg/ffmpeg-process.js';
import { ladderCommand, toArgv } from '../src/ffmpeg/ladder-args.js';
import { jobDirName } from '../src/worker/stream-job.js';

const ladder = [
  { name: '720p', width: 1280, height: 720, fps: 30, videoKbps: 2800, audioKbps: 128 },
  { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 },
];
const command = ladderCommand({
  input: 'rtmp://ingest:1935/src/demo?token=t',
  ladder,
  workDir: '/w/demo-3',
  segmentSeconds: 1,
  partMs: 200,
  preset: 'veryfast',
  hasAudio: true,
});

test('golden: the ladder command, flag by flag', () => {
  const rendition = (name: string, index: number, kbps: number, max: number, buf: number, audio: number) => [
    '-map',
    `[v${index}]`,
    '-map',
    '0:a:0',
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-tune',
    'zerolatency',
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    `${kbps}k`,
    '-maxrate',
    `${max}k`,
    '-bufsize',
    `${buf}k`,
    '-g',
    '30',
    '-keyint_min',
    '30',
    '-sc_threshold',
    '0',
    '-force_key_frames',
    'expr:gte(t,n_forced*1)',
    '-c:a',
    'aac',
    '-b:a',
    `${audio}k`,
    '-ac',
    '2',
    '-ar',
    '48000',
    '-f',
    'mp4',
    '-movflags',
    'frag_keyframe+empty_moov+delay_moov+default_base_moof+cmaf',
    '-frag_duration',
    '200000',
    '-flush_packets',
    '1',
    `unix:/w/demo-3/${name}.sock`,
  ];
  assert.deepEqual(toArgv(command), [
    '-rw_timeout',
    '15000000',
    '-analyzeduration',
    '200000',
    '-loglevel',
    'warning',
    '-stats',
    '-stats_period',
    '0.2',
    '-nostdin',
    '-i',
    'rtmp://ingest:1935/src/demo?token=t',
    '-filter_complex',
    '[0:v]split=2[s0][s1];[s0]scale=1280:720,fps=30[v0];[s1]scale=640:360,fps=30[v1]',
    ...rendition('720p', 0, 2800, 2996, 4200, 128),
    ...rendition('360p', 1, 800, 856, 1200, 96),
  ]);
});

test('fluent-ffmpeg runs exactly that argv (plus its -y)', () => {
  const args = (buildFfmpegCommand(command) as unknown as { _getArguments(): string[] })._getArguments();
  assert.deepEqual(
    args.filter((a) => a !== '-y'),
    toArgv(command),
  );
});

test('a source without audio maps no audio; every rendition gets a constant frame rate', () => {
  const c = ladderCommand({
    ...{ input: 'rtmp://x/src/a', workDir: '/w', segmentSeconds: 2, partMs: 250, preset: 'ultrafast' },
    ladder: [ladder[1] as (typeof ladder)[1]],
    hasAudio: false,
  });
  const argv = toArgv(c);
  assert.ok(!argv.includes('0:a:0') && !argv.includes('aac'));
  assert.equal(c.filter, '[0:v]split=1[s0];[s0]scale=640:360,fps=30[v0]');
  assert.deepEqual(argv.slice(argv.indexOf('-g'), argv.indexOf('-g') + 2), ['-g', '60']);
});

test('progress is read from ffmpeg stats lines', () => {
  assert.deepEqual(
    parseStats('frame=  150 fps= 30 q=28.0 q=27.0 size=N/A time=00:00:05.02 bitrate=N/A speed=1.01x'),
    { frames: 150, mediaTimeMs: 5020, speed: 1.01 },
  );
  assert.equal(parseStats('[hls @ 0x5] Opening /w/seg_1.m4s for writing'), null);
});

test('job folders stay short enough for unix socket paths, also for 64-character stream ids', () => {
  assert.equal(jobDirName('alice', 3), 'alice-3');
  const long = 'a'.repeat(64);
  const name = jobDirName(long, 12);
  assert.match(name, /^a{15}~[0-9a-f]{8}-12$/);
  assert.notEqual(name, jobDirName(`${'a'.repeat(63)}b`, 12), 'different ids, different folders');
  // The local default work folder, a long id, the longest preset name: within the 100-byte limit.
  assert.ok(`/home/someone/src/live/.data/transcode/local-1/${name}/1080p.sock`.length <= 100);
});
