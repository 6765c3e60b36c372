// The one module that runs ffmpeg, through fluent-ffmpeg. Its pitfalls (facts.md) are handled here:
// no `progress` listener (it would run ffprobe and open a second RTMP play); progress is parsed from the
// stats lines instead; a stop we asked for is not reported as a failure; kill() is given a signal
// explicitly (its default is SIGKILL); ffmpeg runs through bin/ffmpeg-guarded so it dies with the worker.
import { fileURLToPath } from 'node:url';
import ffmpeg from 'fluent-ffmpeg';
import { GLOBAL_OPTIONS, type LadderCommand } from './ladder-args.js';

const GUARDED_FFMPEG = fileURLToPath(new URL('../../bin/ffmpeg-guarded', import.meta.url));

export interface Progress {
  frames: number;
  mediaTimeMs: number;
  speed: number;
}

export interface FfmpegExit {
  /** True when we asked it to stop. */
  requested: boolean;
  code: number | null;
  signal: string | null;
  /** The last stderr lines (for the error event). */
  lastLines: string[];
}

export interface FfmpegHandle {
  readonly pid: number | undefined;
  readonly exited: Promise<FfmpegExit>;
  /** SIGTERM (ffmpeg finishes its segments), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<FfmpegExit>;
  kill(): void;
  /** Freeze / thaw (tests inject stalls with these). */
  signal(sig: NodeJS.Signals): void;
}

const STATS = /frame=\s*(\d+).*?time=(-?)(\d+):(\d+):([\d.]+).*?speed=\s*([\d.]+)x/;

export function parseStats(line: string): Progress | null {
  const m = STATS.exec(line);
  if (!m) return null;
  const [, frames, negative, h, min, s, speed] = m;
  const ms = negative ? 0 : (Number(h) * 3600 + Number(min) * 60 + Number(s)) * 1000;
  return { frames: Number(frames), mediaTimeMs: Math.round(ms), speed: Number(speed) };
}

/**
 * fluent-ffmpeg checks every command against ffmpeg's format and encoder lists, which it gets by running
 * `ffmpeg -formats` and `ffmpeg -encoders` once per process (~100 ms each, measured) and then caches. Left
 * to the first job, that is ~200 ms added to the standby's first job: to a failover. So the worker fills the
 * cache before it says it is ready.
 */
export async function warmUpFfmpeg(): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    ffmpeg.getAvailableFormats((e) => (e ? reject(e) : resolve())),
  );
  await new Promise<void>((resolve, reject) =>
    ffmpeg.getAvailableEncoders((e) => (e ? reject(e) : resolve())),
  );
}

/** The fluent-ffmpeg command for a ladder (not started): argv = toArgv(command) plus fluent's -y. */
export function buildFfmpegCommand(command: LadderCommand): ffmpeg.FfmpegCommand {
  const cmd = ffmpeg({ stdoutLines: 0 })
    .setFfmpegPath(GUARDED_FFMPEG)
    .input(command.input)
    .inputOptions(command.inputOptions);
  // fluent-ffmpeg has no slot for global options; they are valid anywhere before the first output.
  cmd.inputOptions(GLOBAL_OPTIONS);
  cmd.complexFilter(command.filter);
  for (const output of command.outputs) cmd.output(output.target).outputOptions(output.options);
  return cmd;
}

export function startFfmpeg(
  command: LadderCommand,
  handlers: { onLine: (line: string) => void; onProgress: (p: Progress) => void; keepLines?: number },
): FfmpegHandle {
  const keep = handlers.keepLines ?? 30;
  const lastLines: string[] = [];
  let requested = false;
  const cmd = buildFfmpegCommand(command);
  cmd.on('stderr', (line: string) => {
    const progress = parseStats(line);
    if (progress) {
      handlers.onProgress(progress);
      return;
    }
    lastLines.push(line);
    if (lastLines.length > keep) lastLines.shift();
    handlers.onLine(line);
  });
  const exited = new Promise<FfmpegExit>((resolve) => {
    cmd.on('end', () => resolve({ requested, code: 0, signal: null, lastLines }));
    cmd.on('error', (error: Error) => {
      const proc = (cmd as unknown as { ffmpegProc?: { exitCode: number | null; signalCode: string | null } })
        .ffmpegProc;
      resolve({
        requested,
        code: proc?.exitCode ?? null,
        signal: proc?.signalCode ?? null,
        lastLines: [...lastLines, error.message],
      });
    });
  });
  cmd.run();
  const proc = () => (cmd as unknown as { ffmpegProc?: { pid?: number } }).ffmpegProc;
  return {
    get pid() {
      return proc()?.pid;
    },
    exited,
    async stop(graceMs = 3000) {
      requested = true;
      cmd.kill('SIGTERM');
      const timer = setTimeout(() => cmd.kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
    kill() {
      requested = true;
      cmd.kill('SIGKILL');
    },
    signal(sig) {
      const pid = proc()?.pid;
      if (pid) process.kill(pid, sig);
    },
  };
}
