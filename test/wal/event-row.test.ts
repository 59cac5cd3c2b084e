import { expect } from 'chai';
import { rowFromEventJson } from '../../src/wal/event-row';
import { canonicalEventJson } from '../../src/wal/record';
import { makeEvent } from '../helpers/events';

describe('rowFromEventJson', () => {
  it('reads the same fields as JSON.parse, escapes and odd characters included', () => {
    const tricky = [
      makeEvent('plain', 'id-1'),
      makeEvent('quote " and \\ backslash', 'tab\there', { nested: { '"topic"': 'x' } }),
      makeEvent('unicode ✓ 日本', '\u2028line\u0000nul', {}),
      { topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00.123+02:00', source: 's' },
    ];
    for (const event of tricky) {
      const json = canonicalEventJson(event);
      const row = rowFromEventJson(9, json);
      expect(row).to.deep.equal({
        seq: 9,
        topic: event.topic,
        eventId: event.event_id,
        source: event.source,
        tsMs: Date.parse(event.timestamp),
        receivedMs: null,
        body: json,
      });
    }
  });

  it('falls back to a full parse for JSON in another key order', () => {
    const json = '{"event_id":"e","topic":"t","source":"s","timestamp":"2025-10-23T10:00:00Z"}';
    expect(rowFromEventJson(1, json)).to.include({ topic: 't', eventId: 'e', source: 's', tsMs: Date.parse('2025-10-23T10:00:00Z') });
  });
});
