import { NodeDisk, type FileHandleId } from '../../src/wal/disk';
import { errnoError } from '../harness/power-loss-disk';

/** The calls of FaultyDisk that a fault can hit. */
export type FaultyOperation = 'write' | 'fdatasync';

/**
 * The real disk with injected failures: `fault` is asked before each write and fdatasync
 * and may return an error to throw. A failing write first writes half its bytes, as a
 * write that runs out of space does. It counts the calls, to show that nothing is retried.
 */
export class FaultyDisk extends NodeDisk {
  fault: ((operation: FaultyOperation) => NodeJS.ErrnoException | null) | null = null;
  readonly calls = { write: 0, fdatasync: 0 };

  override async write(handle: FileHandleId, data: Buffer, position: number): Promise<void> {
    this.calls.write += 1;
    const error = this.fault?.('write') ?? null;
    if (error !== null) {
      await super.write(handle, data.subarray(0, Math.floor(data.length / 2)), position);
      throw error;
    }
    return super.write(handle, data, position);
  }

  override async fdatasync(handle: FileHandleId): Promise<void> {
    this.calls.fdatasync += 1;
    const error = this.fault?.('fdatasync') ?? null;
    if (error !== null) throw error;
    return super.fdatasync(handle);
  }
}

/** A fault that hits the `n`-th call of `operation` (1-based) and every later one. */
export function failFrom(operation: FaultyOperation, n: number, code: string): (op: FaultyOperation) => NodeJS.ErrnoException | null {
  let seen = 0;
  return (op) => {
    if (op !== operation) return null;
    seen += 1;
    return seen >= n ? errnoError(code, `injected ${op} failure`) : null;
  };
}
