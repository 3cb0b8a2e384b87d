/**
 * Runs services as separate processes, as an operator would, for end-to-end tests. Each
 * child's output is kept so a failing test can show it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export type ServiceName = 'ingress' | 'greylist' | 'queue-store' | 'delivery-worker' | 'admin-api';

export class ServiceProcess {
  readonly output: string[] = [];
  private readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(
    readonly name: ServiceName,
    readonly child: ChildProcess,
  ) {
    const collect = (chunk: Buffer) => {
      this.output.push(chunk.toString('utf8'));
      if (this.output.length > 5000) {
        this.output.shift();
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  /** Resolves when a log line matches; rejects after timeoutMs or when the process exits. */
  async waitForLog(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (pattern.test(this.output.join(''))) {
        return;
      }
      if (this.exitCode !== undefined) {
        throw new Error(
          `${this.name} exited with ${this.exitCode} before logging ${pattern}:\n${this.tail()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${this.name} did not log ${pattern} within ${timeoutMs} ms:\n${this.tail()}`);
  }

  tail(lines = 40): string {
    return this.output.join('').split('\n').slice(-lines).join('\n');
  }

  /** Sends SIGTERM and resolves with the exit code; SIGKILL after timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.exitCode !== undefined) {
      return this.exitCode;
    }
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  wait(): Promise<number | null> {
    return this.exited;
  }
}

export function startService(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${name}/src/main.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ServiceProcess(name, child);
}
