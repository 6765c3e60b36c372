// A process kept running the way Kubernetes keeps a container running: when it exits for any reason it is
// started again after a back-off (1 s, doubling to 30 s, reset once it has stayed up for a minute), and
// every restart is counted. Used by `npm start` and the chaos soak, so one death never stops the platform.
import { type Child, type ChildOptions, type Exit, startChild } from './process.js';

export interface RestartPolicy {
  /** Delay before the first restart after a healthy run. */
  initialDelayMs: number;
  /** The back-off doubles per consecutive crash up to this. */
  maxDelayMs: number;
  /** A run at least this long counts as healthy: the next crash starts the back-off again. */
  healthyAfterMs: number;
}

/** Kubernetes' CrashLoopBackOff, scaled to a laptop: 10 s -> 5 min there, 1 s -> 30 s here. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
  healthyAfterMs: 60_000,
};

export interface ProcessStatus {
  name: string;
  pid: number | null;
  /** 'running', 'backoff' (exited, waiting to be started again) or 'stopped' (asked to stop). */
  state: 'running' | 'backoff' | 'stopped';
  restarts: number;
  startedAt: number;
  lastExit: (Exit & { at: number }) | null;
}

export interface RestartingProcess {
  readonly name: string;
  /** The process running now (the last one started, possibly exited and waiting for its restart). */
  current(): Child;
  status(): ProcessStatus;
  /** Resolves with the next process started after this call (a restart). */
  nextStart(): Promise<Child>;
  /** Stops it for good (no restart): `sig`, then SIGKILL after `graceMs`. */
  stop(sig?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface RestartingOptions extends ChildOptions {
  policy?: RestartPolicy;
  /** Called once per unexpected exit, with the delay before the restart. */
  onExit?: (exit: Exit, restarts: number, delayMs: number) => void;
  /** Called for every start after the first. */
  onRestart?: (child: Child, restarts: number) => void;
}

/** The back-off before restart number `crashes` (1 = the first crash since a healthy run). */
export function restartDelayMs(policy: RestartPolicy, crashes: number): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, crashes - 1));
}

export function startRestarting(options: RestartingOptions): RestartingProcess {
  const { policy = DEFAULT_RESTART_POLICY, onExit, onRestart, ...childOptions } = options;
  let child = startChild(childOptions);
  let startedAt = Date.now();
  let restarts = 0;
  let crashes = 0;
  let stopped = false;
  let lastExit: ProcessStatus['lastExit'] = null;
  let timer: NodeJS.Timeout | undefined;
  let waiters: ((c: Child) => void)[] = [];

  const watch = (running: Child) => {
    void running.exited.then((exit) => {
      if (stopped || running !== child) return;
      lastExit = { ...exit, at: Date.now() };
      crashes = Date.now() - startedAt >= policy.healthyAfterMs ? 1 : crashes + 1;
      const delayMs = restartDelayMs(policy, crashes);
      onExit?.(exit, restarts, delayMs);
      timer = setTimeout(() => {
        if (stopped) return;
        child = startChild(childOptions);
        startedAt = Date.now();
        restarts++;
        watch(child);
        onRestart?.(child, restarts);
        const started = waiters;
        waiters = [];
        for (const resolve of started) resolve(child);
      }, delayMs);
    });
  };
  watch(child);

  return {
    name: childOptions.name,
    current: () => child,
    status: () => ({
      name: childOptions.name,
      pid: child.hasExited() ? null : child.pid,
      state: stopped ? 'stopped' : child.hasExited() ? 'backoff' : 'running',
      restarts,
      startedAt,
      lastExit,
    }),
    nextStart: () => new Promise((resolve) => waiters.push(resolve)),
    async stop(sig = 'SIGTERM', graceMs = 8000) {
      stopped = true;
      clearTimeout(timer);
      await child.stop(sig, graceMs);
    },
  };
}
