// Child processes for tests and the local launcher: tied to their parent (setpriv --pdeathsig KILL, so a
// crashed test run leaves no orphan), stopped by pid, with the last output lines kept for error reports.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export interface ChildOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with each output line (stdout and stderr). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How many output lines to keep for `tail()`. */
  keepLines?: number;
  /**
   * Run it in a process group of its own, so a signal to the parent's group (Ctrl-C in a terminal, a
   * process manager signalling the group) does not reach it: the parent stops it, once, in order.
   */
  ownProcessGroup?: boolean;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** The last output lines, newest last. */
  tail(): string[];
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM (or `sig`), then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(sig?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

const PDEATHSIG = existsSync('/usr/bin/setpriv');

export function startChild(options: ChildOptions): Child {
  const { name, command, args, env, cwd, onLine, keepLines = 200, ownProcessGroup = false } = options;
  // setpriv makes the kernel SIGKILL the child when this process dies, even by SIGKILL.
  const [cmd, argv] = PDEATHSIG
    ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, args];
  const child = spawn(cmd, argv, {
    env: env ?? process.env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: ownProcessGroup,
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const lines: string[] = [];
  let exitedFlag = false;
  const collect = (stream: 'stdout' | 'stderr') => {
    let partial = '';
    return (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (lines.length > keepLines) lines.shift();
        onLine?.(line, stream);
      }
    };
  };
  child.stdout?.on('data', collect('stdout'));
  child.stderr?.on('data', collect('stderr'));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal });
    });
  });
  const pid = child.pid;
  const signal = (sig: NodeJS.Signals) => {
    if (!exitedFlag) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  return {
    name,
    pid,
    process: child,
    exited,
    hasExited: () => exitedFlag,
    tail: () => [...lines],
    signal,
    async stop(sig = 'SIGTERM', graceMs = 5000) {
      if (exitedFlag) return exited;
      signal(sig);
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Pids of running processes whose command line (argv joined by NUL) satisfies `match` (reads /proc). */
export function pidsByCommandLine(match: (commandLine: string) => boolean): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (match(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}
