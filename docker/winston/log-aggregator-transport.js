'use strict';
/**
 * winston -> log-aggregator with winston's own built-in Http transport (no plugin).
 *
 * Two settings make the transport speak this service's schema:
 *   - `format: toEvent(...)` turns each log entry into one event
 *     {topic, event_id, timestamp, source, payload}; the Http transport sends the entry
 *     object itself as JSON, so whatever this format returns is what the service receives.
 *   - `replacer`: with `batch: true` the transport sends a top-level JSON array of entries;
 *     its documented `replacer` option (handed to its JSON serialiser, which calls it first
 *     with the key '' and the whole body) wraps that array as {"events": [...]}.
 * Without `batch` every log call is one POST of one event, which the service accepts as is.
 *
 * Dedup: give an entry an `event_id` in its metadata and a re-sent entry is stored once;
 * entries without one get a random UUID (each call is then a new event).
 */
const { randomUUID } = require('node:crypto');
const winston = require('winston');

const LEVEL = Symbol.for('level');
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** A winston format that maps a log entry to one log-aggregator event. */
const toEvent = winston.format((info, options) => {
  const { level, message, topic, event_id: eventId, timestamp, source, ...rest } = info;
  return {
    topic: String(topic ?? options.topic),
    event_id: String(eventId ?? randomUUID()),
    timestamp: typeof timestamp === 'string' && RFC3339.test(timestamp) ? timestamp : new Date().toISOString(),
    source: String(source ?? options.source),
    payload: { level, message, ...rest },
    // winston-transport filters on this symbol; JSON.stringify never sends symbol keys.
    [LEVEL]: info[LEVEL],
  };
});

/** Wraps the array body of a batch as {"events": [...]}; anything else is sent unchanged. */
function batchReplacer(key, value) {
  return key === '' && Array.isArray(value) ? { events: value } : value;
}

/**
 * The Http transport for a log-aggregator at `url` (e.g. http://127.0.0.1:8080/publish).
 * `apiKey` is sent as Authorization: Bearer (publish scope) when given.
 */
function logAggregatorTransport({
  url,
  apiKey,
  topic = 'app.log',
  source = 'winston',
  batch = true,
  batchCount = 100,
  batchInterval = 1000,
  level,
}) {
  const target = new URL(url);
  return new winston.transports.Http({
    host: target.hostname,
    port: Number(target.port || 80),
    path: target.pathname,
    auth: apiKey === undefined ? undefined : { bearer: apiKey },
    batch,
    batchCount,
    batchInterval,
    replacer: batchReplacer,
    format: toEvent({ topic, source }),
    level,
  });
}

module.exports = { logAggregatorTransport, toEvent, batchReplacer };

// Example: node docker/winston/log-aggregator-transport.js http://127.0.0.1:8080/publish [api-key]
if (require.main === module) {
  const logger = winston.createLogger({
    transports: [
      logAggregatorTransport({ url: process.argv[2] ?? 'http://127.0.0.1:8080/publish', apiKey: process.argv[3], batchCount: 2 }),
    ],
  });
  logger.info('user logged in', { topic: 'app.auth', event_id: 'login-0001', user: 'u-1' });
  logger.warn('password expires soon', { topic: 'app.auth', event_id: 'login-0002', user: 'u-1' });
}
