import { main } from '../../src/main';
import { failFrom, FaultyDisk } from '../helpers/faulty-disk';

/**
 * The real server (main's config, signal and fatal-exit handling) over a disk whose
 * fdatasync fails with EIO from call FAULT_FSYNC_FROM on. A test program, not a product switch.
 */
const disk = new FaultyDisk();
const from = Number(process.env.FAULT_FSYNC_FROM ?? '1');
disk.fault = failFrom('fdatasync', from, 'EIO');
void main(process.env, { disk });
