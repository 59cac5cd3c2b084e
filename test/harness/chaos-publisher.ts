import type { Random } from '../../src/cli/random';

/** One event as the chaos publishers send it; `payloadJson` is the exact payload text sent. */
export interface SentEvent {
  topic: string;
  eventId: string;
  body: Record<string, unknown>;
  payloadJson: string;
}

/** What the publishers know about one (topic, event_id) they sent. */
export interface KeyRecord {
  event: SentEvent;
  /** Seq named by the first 200 that covered this key; null while no 200 covered it. */
  ackedSeq: number | null;
}

/** Counters of the publishers' side of a campaign. */
export interface PublisherFigures {
  requests: number;
  ok: number;
  unavailable: number;
  networkErrors: number;
  /** Answers that broke the contract: 4xx for a valid request, a conflict flag, a seq that changed. */
  violations: string[];
  /** Events re-sent on purpose after their acknowledgement. */
  resentAcked: number;
  /** Duplicates counted in 200 answers. */
  duplicatesAcked: number;
}

/** The shared state of every publisher of a campaign, kept across server restarts. */
export class PublisherLedger {
  readonly keys = new Map<string, KeyRecord>();
  readonly figures: PublisherFigures = {
    requests: 0,
    ok: 0,
    unavailable: 0,
    networkErrors: 0,
    violations: [],
    resentAcked: 0,
    duplicatesAcked: 0,
  };
  private readonly acked: string[] = [];

  static keyOf(topic: string, eventId: string): string {
    return `${topic}\u0000${eventId}`;
  }

  register(event: SentEvent): void {
    this.keys.set(PublisherLedger.keyOf(event.topic, event.eventId), { event, ackedSeq: null });
  }

  /** A random acknowledged event, for deliberate re-sends. */
  pickAcked(random: Random): SentEvent | null {
    if (this.acked.length === 0) return null;
    return this.keys.get(this.acked[random.int(this.acked.length)]!)!.event;
  }

  get ackedCount(): number {
    return this.acked.length;
  }

  violation(message: string): void {
    if (this.figures.violations.length < 100) this.figures.violations.push(message);
  }

  /** Checks one 200 answer against what was sent and what earlier answers said. */
  recordAnswer(
    events: SentEvent[],
    answer: { results?: Array<{ status: string; seq: number; conflict?: boolean }>; duplicates?: number },
  ): void {
    const results = answer.results;
    if (!Array.isArray(results) || results.length !== events.length) {
      this.violation(`200 answer without one result per event: ${JSON.stringify(answer).slice(0, 200)}`);
      return;
    }
    this.figures.duplicatesAcked += answer.duplicates ?? 0;
    const seenInRequest = new Map<string, number>();
    events.forEach((event, index) => {
      const result = results[index]!;
      const key = PublisherLedger.keyOf(event.topic, event.eventId);
      const record = this.keys.get(key)!;
      if (result.conflict === true) this.violation(`conflict flagged for ${key} although every send had the same content`);
      const earlierInRequest = seenInRequest.get(key);
      if (earlierInRequest !== undefined && (result.status !== 'duplicate' || result.seq !== earlierInRequest)) {
        this.violation(`second copy of ${key} in one batch answered ${JSON.stringify(result)}, first had seq ${earlierInRequest}`);
      }
      seenInRequest.set(key, result.seq);
      if (record.ackedSeq === null) {
        record.ackedSeq = result.seq;
        this.acked.push(key);
      } else if (record.ackedSeq !== result.seq || result.status !== 'duplicate') {
        this.violation(`${key} acknowledged with seq ${record.ackedSeq}, later answered ${JSON.stringify(result)}`);
      }
    });
  }
}
