import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';

/** Spawns `command` and resolves once a line of its output matches `ready`; rejects on exit or timeout. */
export function spawnUntilReady(
  command: string,
  args: string[],
  ready: RegExp,
  timeoutMs: number,
  options: SpawnOptions = {},
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    let output = '';
    const timer = setTimeout(
      () => fail(new Error(`${command} not ready after ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve(child);
      }
    };
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', fail);
    child.on('exit', (code) =>
      fail(new Error(`${command} exited with ${code} before it was ready:\n${output}`)),
    );
  });
}

/** Stops a child and waits for it to be gone. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    [child.stdin, child.stdout, child.stderr].forEach((stream) => stream?.destroy());
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  // Open pipes would keep the test runner alive after its last test.
  [child.stdin, child.stdout, child.stderr].forEach((stream) => stream?.destroy());
}
