import { expect } from 'chai';
import request from 'supertest';
import type { Express } from 'express';
import { ERROR_CATALOGUE } from '../../src/errors';
import type { Aggregator } from '../../src/ingest/aggregator';
import { makeEvent, withoutReceivedAt } from '../helpers/events';
import { openTestService } from '../helpers/service';
import { waitFor } from '../../src/cli/wait';
import { statsBody } from '../../src/http/status';

describe('HTTP API', () => {
  let app: Express;
  let aggregator: Aggregator;

  beforeEach(async () => {
    ({ app, aggregator } = await openTestService({
      BATCH_EVENTS_MAX: '5',
      BODY_BYTES_MAX: '4096',
      PAYLOAD_DEPTH_MAX: '4',
      PAYLOAD_BYTES_MAX: '200',
    }));
  });
  afterEach(async () => {
    await aggregator.close();
  });

  const idle = () => waitFor(() => aggregator.queueSize() === 0, { what: 'queue to drain' });

  describe('POST /publish', () => {
    it('accepts one event with the seed answer shape plus per-event results', async () => {
      const res = await request(app).post('/publish').send(makeEvent('user.login', 'evt-001'));
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({
        received: 1,
        accepted: 1,
        duplicates: 0,
        conflicts: 0,
        message: 'Received 1 events, accepted 1, rejected 0 duplicates',
        results: [{ status: 'accepted', seq: 1 }],
      });
    });

    it('counts duplicates inside one batch and names the stored original', async () => {
      const a = makeEvent('t', 'a');
      const res = await request(app)
        .post('/publish')
        .send({ events: [a, makeEvent('t', 'b'), a, a] });
      expect(res.status).to.equal(200);
      expect(res.body).to.include({ received: 4, accepted: 2, duplicates: 2 });
      expect(res.body.results).to.deep.equal([
        { status: 'accepted', seq: 1 },
        { status: 'accepted', seq: 2 },
        { status: 'duplicate', seq: 1 },
        { status: 'duplicate', seq: 1 },
      ]);
    });

    it('counts duplicates against everything stored before, once indexed', async () => {
      await request(app).post('/publish').send(makeEvent('t', 'a')).expect(200);
      await idle();
      const res = await request(app).post('/publish').send(makeEvent('t', 'a')).expect(200);
      expect(res.body.results).to.deep.equal([{ status: 'duplicate', seq: 1 }]);
    });

    it('counts exactly across concurrent requests with the same keys', async () => {
      const events = Array.from({ length: 5 }, (_, i) => makeEvent('race', `e${i}`));
      const answers = await Promise.all(Array.from({ length: 20 }, () => request(app).post('/publish').send({ events })));
      const accepted = answers.reduce((sum, r) => sum + (r.body.accepted as number), 0);
      const duplicates = answers.reduce((sum, r) => sum + (r.body.duplicates as number), 0);
      expect(answers.every((r) => r.status === 200)).to.equal(true);
      expect(accepted).to.equal(5);
      expect(duplicates).to.equal(95);
    });

    it('flags a duplicate whose content differs as a conflict and keeps the first payload', async () => {
      await request(app)
        .post('/publish')
        .send(makeEvent('t', 'a', { v: 1 }))
        .expect(200);
      const res = await request(app)
        .post('/publish')
        .send(makeEvent('t', 'a', { v: 2 }))
        .expect(200);
      expect(res.body.results).to.deep.equal([{ status: 'duplicate', seq: 1, conflict: true }]);
      expect(res.body.conflicts).to.equal(1);
      await idle();
      const stored = await request(app).get('/events?topic=t').expect(200);
      expect(stored.body.events[0].payload).to.deep.equal({ v: 1 });
      const stats = await request(app).get('/stats').expect(200);
      expect(stats.body.conflicts).to.equal(1);
    });

    it('accepts timestamps with an offset, as syslog-ng sends them', async () => {
      const event = { ...makeEvent('t', 'a'), timestamp: '2025-10-23T10:00:00.123456+00:00' };
      await request(app).post('/publish').send(event).expect(200);
    });

    it('answers 400 invalid_json for malformed JSON', async () => {
      const res = await request(app).post('/publish').set('content-type', 'application/json').send('{"topic": ');
      expect(res.status).to.equal(400);
      expect(res.body.error).to.equal('invalid_json');
    });

    it('answers 400 validation_failed for an empty JSON body (read as {})', async () => {
      const res = await request(app).post('/publish').set('content-type', 'application/json').send('');
      expect(res.status).to.equal(400);
      expect(res.body.error).to.equal('validation_failed');
      expect(res.body.details.map((d: { path: string }) => d.path)).to.include('topic');
    });

    it('answers 400 with index, path and message for each problem, and writes nothing of the batch', async () => {
      const bad = { topic: 'x'.repeat(256), event_id: '', timestamp: '2025-13-45T10:00:00Z', source: 's' };
      const res = await request(app)
        .post('/publish')
        .send({ events: [makeEvent('t', 'ok'), bad] });
      expect(res.status).to.equal(400);
      expect(res.body.error).to.equal('validation_failed');
      const paths = (res.body.details as Array<{ index: number; path: string }>).map((d) => `${d.index}:${d.path}`).sort();
      expect(paths).to.deep.equal(['1:event_id', '1:timestamp', '1:topic']);
      await idle();
      const stats = await request(app).get('/stats').expect(200);
      expect(stats.body).to.include({ received: 0, unique_processed: 0 });
    });

    for (const [name, event, path] of [
      ['a missing field', { topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z' }, 'source'],
      ['a number for a string', { ...makeEvent('t', 'e'), source: 5 }, 'source'],
      ['a timestamp without offset', { ...makeEvent('t', 'e'), timestamp: '2025-10-23T10:00:00' }, 'timestamp'],
      ['an impossible date', { ...makeEvent('t', 'e'), timestamp: '2025-02-30T10:00:00Z' }, 'timestamp'],
      ['a payload that is an array', { ...makeEvent('t', 'e'), payload: [1] }, 'payload'],
      ['a payload nested too deep', { ...makeEvent('t', 'e'), payload: { a: { b: { c: { d: {} } } } } }, 'payload'],
      ['a payload over its byte limit', { ...makeEvent('t', 'e'), payload: { s: 'x'.repeat(300) } }, 'payload'],
    ] as const) {
      it(`answers 400 validation_failed for ${name}`, async () => {
        const res = await request(app).post('/publish').send(event);
        expect(res.status).to.equal(400);
        expect(res.body.error).to.equal('validation_failed');
        expect(res.body.details.map((d: { path: string }) => d.path)).to.include(path);
      });
    }

    it('answers 413 body_too_large over BODY_BYTES_MAX', async () => {
      const res = await request(app)
        .post('/publish')
        .send({ ...makeEvent('t', 'e'), payload: { s: 'x'.repeat(5000) } });
      expect(res.status).to.equal(413);
      expect(res.body.error).to.equal('body_too_large');
    });

    it('answers 413 batch_too_large over BATCH_EVENTS_MAX', async () => {
      const events = Array.from({ length: 6 }, (_, i) => makeEvent('t', `e${i}`, {}));
      const res = await request(app).post('/publish').send({ events });
      expect(res.status).to.equal(413);
      expect(res.body.error).to.equal('batch_too_large');
    });

    it('answers 415 unsupported_media_type for a body that is not JSON', async () => {
      const res = await request(app).post('/publish').set('content-type', 'text/plain').send('hello');
      expect(res.status).to.equal(415);
      expect(res.body.error).to.equal('unsupported_media_type');
    });

    it('answers 415 for an unsupported Content-Encoding', async () => {
      const res = await request(app).post('/publish').set('content-type', 'application/json').set('content-encoding', 'x-zip').send('{}');
      expect(res.status).to.equal(415);
      expect(res.body.error).to.equal('unsupported_media_type');
    });

    it('answers 503 backlog_full with Retry-After and writes nothing past QUEUE_MAX_SIZE', async () => {
      const small = await openTestService({ QUEUE_MAX_SIZE: '2' });
      try {
        const events = Array.from({ length: 3 }, (_, i) => makeEvent('t', `e${i}`));
        const res = await request(small.app).post('/publish').send({ events });
        expect(res.status).to.equal(503);
        expect(res.body.error).to.equal('backlog_full');
        expect(res.headers['retry-after']).to.equal('1');
        expect(statsBody(small.aggregator)).to.include({ received: 0 });
      } finally {
        await small.aggregator.close();
      }
    });

    it('answers 405 for a known path with the wrong method and 404 elsewhere', async () => {
      const wrong = await request(app).get('/publish');
      expect(wrong.status).to.equal(405);
      expect(wrong.body.error).to.equal('method_not_allowed');
      const missing = await request(app).get('/nope');
      expect(missing.status).to.equal(404);
      expect(missing.body.error).to.equal('not_found');
    });
  });

  describe('GET /events', () => {
    beforeEach(async () => {
      const events = [
        { ...makeEvent('a', '1'), timestamp: '2025-10-23T10:00:00Z', source: 'x' },
        { ...makeEvent('b', '1'), timestamp: '2025-10-23T11:00:00+01:00', source: 'y' },
        { ...makeEvent('a', '2'), timestamp: '2025-10-23T12:00:00Z', source: 'y' },
        { ...makeEvent('a', '3'), timestamp: '2025-10-23T13:00:00Z', source: 'x' },
      ];
      await request(app).post('/publish').send({ events }).expect(200);
      await idle();
    });

    it('returns the events of a topic in publish order with the seed fields and payload intact', async () => {
      const res = await request(app).get('/events?topic=a&limit=10').expect(200);
      expect(res.body.topic).to.equal('a');
      expect(res.body.count).to.equal(3);
      expect(res.body.events.map((e: { event_id: string }) => e.event_id)).to.deep.equal(['1', '2', '3']);
      expect(withoutReceivedAt(res.body.events[0] as object)).to.deep.equal({ seq: 1, ...makeEvent('a', '1'), source: 'x' });
      expect(res.body.next_cursor).to.equal(null);
    });

    it('pages through everything with next_cursor', async () => {
      const first = await request(app).get('/events?limit=3').expect(200);
      expect(first.body.count).to.equal(3);
      expect(first.body.next_cursor).to.equal('3');
      const second = await request(app).get(`/events?limit=3&after=${first.body.next_cursor}`).expect(200);
      expect(second.body.events.map((e: { seq: number }) => e.seq)).to.deep.equal([4]);
      expect(second.body.next_cursor).to.equal(null);
    });

    it('filters by source and by instant (since inclusive, until exclusive, offsets honoured)', async () => {
      const bySource = await request(app).get('/events?source=y').expect(200);
      expect(bySource.body.events.map((e: { seq: number }) => e.seq)).to.deep.equal([2, 3]);
      // b/1 is 11:00+01:00 = 10:00Z, the same instant as a/1.
      const window = await request(app).get('/events?since=2025-10-23T10:00:00Z&until=2025-10-23T13:00:00Z').expect(200);
      expect(window.body.events.map((e: { seq: number }) => e.seq)).to.deep.equal([1, 2, 3]);
    });

    for (const query of [
      'limit=0',
      'limit=1001',
      'limit=abc',
      'after=-1',
      'since=yesterday',
      'topic=',
      `topic=${'x'.repeat(256)}`,
      'source=a&source=b',
    ]) {
      it(`answers 400 invalid_query for ${query.slice(0, 30)}`, async () => {
        const res = await request(app).get(`/events?${query}`);
        expect(res.status).to.equal(400);
        expect(res.body.error).to.equal('invalid_query');
      });
    }
  });

  describe('GET /stats and /health', () => {
    it('reports the seed fields and received = unique_processed + duplicate_dropped at rest', async () => {
      await request(app)
        .post('/publish')
        .send({ events: [makeEvent('t', 'a'), makeEvent('t', 'a'), makeEvent('u', 'b')] })
        .expect(200);
      await idle();
      const res = await request(app).get('/stats').expect(200);
      expect(res.body).to.include({ received: 3, unique_processed: 2, duplicate_dropped: 1 });
      expect(res.body.topics).to.deep.equal(['t', 'u']);
      expect(res.body.uptime_seconds).to.be.a('number');
      expect(res.body.uptime_human).to.match(/^\d+h \d+m \d+s$/);
    });

    it('says healthy with the seed fields', async () => {
      const res = await request(app).get('/health').expect(200);
      expect(res.body).to.include({ status: 'healthy', consumer_running: true, queue_size: 0 });
      expect(Number.isNaN(Date.parse(res.body.timestamp))).to.equal(false);
    });

    it('answers 503 shutting_down on /publish and non-200 on /health once closed', async () => {
      await aggregator.close();
      const res = await request(app).post('/publish').send(makeEvent('t', 'late'));
      expect(res.status).to.equal(503);
      expect(res.body.error).to.equal('shutting_down');
      expect(res.headers['retry-after']).to.equal('1');
      const health = await request(app).get('/health');
      expect(health.status).to.equal(503);
    });
  });

  it('has a status for every catalogue code', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      expect(entry.status, code).to.be.within(400, 599);
    }
  });
});
