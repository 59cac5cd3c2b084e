import { expect } from 'chai';
import fc from 'fast-check';
import { bulkResponse, decodeBulk } from '../../src/protocols/elastic-bulk';

const NOW = '2025-10-23T12:00:00.000Z';

describe('Elasticsearch bulk mapping', () => {
  it('maps create/index pairs: topic from the index, event_id from _id, timestamp from @timestamp', () => {
    const body = [
      '{"create":{"_index":"web","_id":"r1"}}',
      '{"@timestamp":"2025-10-23T10:00:00.5Z","host":{"name":"web-1"},"message":"a"}',
      '{"index":{}}',
      '{"@timestamp":1761213600000,"host":"db-2","message":"b"}',
      '{"index":{"_index":"other"}}',
      '{"message":"c"}',
      '',
    ].join('\n');
    const actions = decodeBulk(body, 'fallback', 10, NOW);
    expect(actions.map((a) => a.slot)).to.deep.equal([
      {
        topic: 'web',
        event_id: 'r1',
        timestamp: '2025-10-23T10:00:00.5Z',
        source: 'web-1',
        payload: { '@timestamp': '2025-10-23T10:00:00.5Z', host: { name: 'web-1' }, message: 'a' },
      },
      {
        topic: 'fallback',
        event_id: actions[1]!.id,
        timestamp: '2025-10-23T10:00:00.000Z',
        source: 'db-2',
        payload: { '@timestamp': 1761213600000, host: 'db-2', message: 'b' },
      },
      { topic: 'other', event_id: actions[2]!.id, timestamp: NOW, source: 'elasticsearch', payload: { message: 'c' } },
    ]);
    expect(actions[1]!.id).to.match(/^[0-9a-f]{64}$/);
  });

  it('derives the same _id from the same source line and different ones from different lines (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), {
          minLength: 1,
          maxLength: 6,
          selector: (d) => JSON.stringify(d),
        }),
        (docs) => {
          const body = docs.map((doc) => `{"index":{}}\n${JSON.stringify(doc)}\n`).join('');
          const ids = decodeBulk(body, 'i', 100, NOW).map((a) => a.id);
          expect(decodeBulk(body, 'i', 100, NOW).map((a) => a.id)).to.deep.equal(ids);
          expect(new Set(ids).size).to.equal(docs.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fails unsupported actions and missing indexes per item, malformed lines for the whole request', () => {
    const actions = decodeBulk(
      '{"delete":{"_index":"a","_id":"1"}}\n{"update":{"_index":"a","_id":"2"}}\n{"doc":{}}\n{"create":{"_id":"3"}}\n{}\n',
      null,
      10,
      NOW,
    );
    expect(actions.map((a) => ('error' in a.slot ? `${a.op} ${a.slot.error.status} ${a.slot.error.type}` : a.op))).to.deep.equal([
      'delete 400 illegal_argument_exception',
      'update 400 illegal_argument_exception',
      'create 400 action_request_validation_exception',
    ]);
    expect(() => decodeBulk('{"create":{}}\n', 'a', 10, NOW)).to.throw(/line 1: the \[create\] action has no source line/);
    expect(() => decodeBulk('{"create":{},"index":{}}\n{}\n', 'a', 10, NOW)).to.throw(
      /line 1: an action line must be an object with one key/,
    );
    expect(() => decodeBulk('{"create":{}}\n[1]\n', 'a', 10, NOW)).to.throw(/line 2: the source line must be a JSON object/);
    expect(() => decodeBulk('{"index":{}}\n{}\n'.repeat(3), 'a', 2, NOW)).to.throw(/BATCH_EVENTS_MAX/);
  });

  it('answers like Elasticsearch: 201 created, 409 version_conflict_engine_exception for an existing create, 200 noop for an existing index', () => {
    const actions = decodeBulk('{"create":{"_id":"a"}}\n{}\n{"create":{"_id":"b"}}\n{}\n{"index":{"_id":"c"}}\n{}\n', 'logs', 10, NOW);
    const answer = bulkResponse(
      actions,
      [
        { status: 'accepted', seq: 7 },
        { status: 'duplicate', seq: 3 },
        { status: 'duplicate', seq: 4 },
      ],
      3,
    ) as any;
    expect(answer.errors).to.equal(true);
    expect(answer.items[0].create).to.deep.include({ _index: 'logs', _id: 'a', status: 201, result: 'created', _seq_no: 7 });
    expect(answer.items[1].create).to.deep.include({ _id: 'b', status: 409 });
    expect(answer.items[1].create.error).to.deep.include({
      type: 'version_conflict_engine_exception',
      reason: '[b]: version conflict, document already exists (current version [1])',
    });
    expect(answer.items[2].index).to.deep.include({ _id: 'c', status: 200, result: 'noop' });
  });
});
