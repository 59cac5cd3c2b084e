import { connect, nanos, StorageType, StringCodec } from 'nats';
import { canonicalEventJson } from '../src/wal/record';
import { benchEvent } from './events';

/**
 * The peer, run as its own process: NATS JetStream with the same events, on a file-storage
 * stream of its own (created here with a unique name, deleted at the end) whose duplicate
 * window is JetStream's default 2 minutes; `Nats-Msg-Id` is the event_id, so a re-send
 * inside the window is dropped like ours. `inFlight` publishers each await their ack
 * before the next publish (1: awaiting each ack; 512: a window of 512 acks in flight).
 * A JetStream ack means the server stored the message in its file store, not that it
 * fsynced it (sync_interval defaults to 2 minutes), which is a weaker promise than ours.
 * argv[2] is {url, prefix, inFlight, seconds, warmupSeconds, resendPercent}.
 */
interface PeerSpec {
  url: string;
  prefix: string;
  inFlight: number;
  seconds: number;
  warmupSeconds: number;
  resendPercent: number;
}

/** What one peer run measured; printed as one JSON line. */
export interface PeerResult {
  eventsPerSecond: number;
  acked: number;
  duplicates: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  clientCpuMicrosPerEvent: number;
  stream: string;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as PeerSpec;
  const nc = await connect({ servers: spec.url });
  const jsm = await nc.jetstreamManager();
  const stream = `LOGAGG_BENCH_${process.pid}_${Date.now()}`;
  const subjectRoot = `logagg-bench.${stream}`;
  await jsm.streams.add({
    name: stream,
    subjects: [`${subjectRoot}.*`],
    storage: StorageType.File,
    duplicate_window: nanos(120_000),
  });
  const js = nc.jetstream();
  const codec = StringCodec();
  try {
    const run = async (
      prefix: string,
      seconds: number,
    ): Promise<{ acked: number; duplicates: number; latencies: number[]; elapsed: number }> => {
      let sent = 0;
      let acked = 0;
      let duplicates = 0;
      const latencies: number[] = [];
      const started = performance.now();
      const deadline = started + seconds * 1000;
      const publisher = async (): Promise<void> => {
        while (performance.now() < deadline) {
          const resend = sent > 0 && Math.random() * 100 < spec.resendPercent;
          const n = resend ? Math.floor(Math.random() * sent) : sent++;
          const event = benchEvent(prefix, n);
          const t = performance.now();
          const ack = await js.publish(`${subjectRoot}.${event.topic}`, codec.encode(canonicalEventJson(event)), { msgID: event.event_id });
          latencies.push(performance.now() - t);
          acked += 1;
          if (ack.duplicate) duplicates += 1;
        }
      };
      await Promise.all(Array.from({ length: spec.inFlight }, () => publisher()));
      return { acked, duplicates, latencies, elapsed: (performance.now() - started) / 1000 };
    };
    if (spec.warmupSeconds > 0) await run(`${spec.prefix}-warmup`, spec.warmupSeconds);
    const cpuBefore = process.cpuUsage();
    const measured = await run(spec.prefix, spec.seconds);
    const cpu = process.cpuUsage(cpuBefore);
    measured.latencies.sort((a, b) => a - b);
    const at = (q: number): number =>
      measured.latencies[Math.min(measured.latencies.length - 1, Math.floor(q * measured.latencies.length))] ?? 0;
    const result: PeerResult = {
      eventsPerSecond: measured.acked / measured.elapsed,
      acked: measured.acked,
      duplicates: measured.duplicates,
      latencyP50Ms: at(0.5),
      latencyP99Ms: at(0.99),
      clientCpuMicrosPerEvent: (cpu.user + cpu.system) / measured.acked,
      stream,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await jsm.streams.delete(stream);
    await nc.drain();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`peer: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
