import { CATCH_UP_REPORT_EVERY_MS } from '../options/defaults.js';
import { duration } from './duration.js';
import { plural } from './plural.js';

/** A stream opening, reading, reopening and losing its history. */
export const streamMessages = {
  streamOpened: (key: string, from: 'token' | 'time' | 'invalidate' | 'now') =>
    ({
      token: `Stream ${key} opened, resuming after the stored token.`,
      time: `Stream ${key} opened, starting at a cluster time (startAtOperationTime, inclusive), not after a token: a start point stored before any event was acknowledged, another stream's position after a switch of "streams" (see the line before), or the fallback for a token the server no longer finds.`,
      invalidate: `Stream ${key} opened, starting after the invalidate event (the collection was dropped or renamed).`,
      now: `Stream ${key} opened with no stored token: starting from now.`,
    })[from],
  streamReconnecting: (key: string, attempt: number, delayMs: number, error: string) =>
    `Stream ${key} broke (${error}); reopening from the last checkpoint in ${delayMs} ms (attempt ${attempt}).`,
  streamClosedByServer: () => 'the server closed the cursor without an error',
  historyLost: (key: string, detail: string) =>
    `the stored position of ${key} cannot be resumed from (${detail}): the oplog no longer holds it, or the server rejected the token. ` +
    `With the "fail" policy the stored value is kept: resync the data, then delete the key to start from now.`,
  historyLostRestart: (key: string, reason: string) =>
    `DATA LOSS on ${key}: ${reason}. Policy "restart-from-now": reading goes on from now; changes since the lost position are NOT delivered.`,
  invalidated: (key: string) =>
    `Stream ${key} was invalidated (collection dropped or renamed); reopening after the invalidate event.`,
  catchingUp: (
    key: string,
    handled: number,
    lagMs: number,
    perSecond: number,
    headroomMs: number | null = null,
  ) =>
    `${key}: ${handled.toLocaleString('en-US')} ${plural(handled, 'event')} handled, ${duration(lagMs)} behind, catching up at ${Math.round(perSecond).toLocaleString('en-US')}/s` +
    (headroomMs === null ? '.' : `, history headroom ${duration(Math.max(0, headroomMs))}.`),
  fallingBehind: (
    key: string,
    handled: number,
    lagMs: number,
    inFlightMs: number,
    headroomMs: number | null = null,
  ) =>
    `${key}: ${handled.toLocaleString('en-US')} ${plural(handled, 'event')} handled, ${duration(lagMs)} behind, and no event finished in the last ${CATCH_UP_REPORT_EVERY_MS / 1000} s: the current one has been running for ${duration(inFlightMs)} (a stuck handler? see handlerStuck)` +
    (headroomMs === null ? '.' : `; history headroom ${duration(Math.max(0, headroomMs))}.`),
  tokenNotFoundResumingAtTime: (key: string, time: { t: number; i: number }, error: string) =>
    `Stream ${key}: the server did not find the stored resume token (${error}); its server-side filter changed since (a handler with other operationTypes or pipeline?). ` +
    `Resuming at the token's cluster time Timestamp({ t: ${time.t}, i: ${time.i} }) instead: events at that time are delivered again.`,
  eventTooLarge: (key: string, error: string) =>
    `Stream ${key} cannot pass an event larger than 16 MB (${error}). Set "splitLargeEvents: true" in the @OnChange options of a handler of this collection ` +
    `(MongoDB 7.0+ or 6.0.9+), or leave out pre- and post-images ("fullDocument", "fullDocumentBeforeChange") that make events this large.`,
  eventTooLargeEvenSplit: (key: string, error: string) =>
    `Stream ${key} cannot pass an event larger than 16 MB although "splitLargeEvents" is set (${error}): a single field of the event (a document in ` +
    `"fullDocument" or "fullDocumentBeforeChange", or "updateDescription") is over 16 MB by itself, which the server cannot split. Leave out the pre- or post-image that holds it.`,
  splitUnsupported: (key: string, error: string) =>
    `Stream ${key}: the server refused "splitLargeEvents" ($changeStreamSplitLargeEvent needs MongoDB 7.0+ or 6.0.9+): ${error}. Remove the option or upgrade the server.`,
  splitEventIncomplete: (key: string, detail: string) =>
    `Stream ${key}: a split event's fragments did not arrive in order (${detail}); reopening from the last acknowledged event.`,
  driverTooOld: (version: string) =>
    `ChangeStreamModule: mongoose uses the MongoDB driver ${version}, whose tryNext() does not cache resume tokens (NODE-4763/NODE-7042, fixed in mongodb 6.20.0): ` +
    `after a network error or a primary step-down the driver resumes from an older token and events are delivered again, many under load. Upgrade mongoose to 8.19+ or 9.x.`,
  streamFailed: (key: string, reason: string) => `Stream ${key} failed: ${reason}`,
  collectionHistoryFellOff: (
    key: string,
    collection: string,
    recordKey: string,
    lostAt: string,
    oldestAt: string,
    startAt: string,
  ) =>
    `the newest stored position for collection '${collection}' in stream ${key} (${lostAt}, under ${recordKey}) is older than the oplog's oldest entry (${oldestAt}): ` +
    `the history of '${collection}' fell off the oplog, while the stream itself can resume from its other collections' positions, at ${startAt}. ` +
    `Changes to '${collection}' from ${lostAt} up to ${startAt} cannot be delivered: those before ${oldestAt} can no longer be read, and the stream starts at ${startAt} (starting earlier would repeat the other collections' events).`,
  collectionHistoryLostRestart: (
    key: string,
    collection: string,
    reason: string,
    startAt: string,
  ) =>
    `DATA LOSS on ${key} for collection '${collection}': ${reason} Policy "restart-from-now": '${collection}' goes on from the stream's start (${startAt}) with its other collections; its changes before that are NOT delivered.`,
  collectionsHistoryLostFailed: (
    key: string,
    lost: Array<{ collection: string; at: string; ownKey: string | null }>,
  ) => {
    const owned = lost.filter((l) => l.ownKey !== null).map((l) => l.ownKey);
    const one = lost.length === 1;
    return (
      `the history of ${lost.map((l) => `collection '${l.collection}' (${l.at})`).join(', ')} fell off the oplog; stream ${key} itself could resume from its other collections' positions. ` +
      `With the "fail" policy nothing is stored and the stream does not start. Resync what the handlers of ${one ? 'that collection' : 'those collections'} maintain, ` +
      `then restart with an onHistoryLost callback that returns 'restart-from-now' when HistoryLost.collection is ${one ? 'it' : 'one of them'}` +
      (owned.length > 0
        ? `, or delete ${owned.length === 1 ? 'the key' : 'the keys'} ${owned.join(', ')} (${owned.length === 1 ? 'that collection starts' : 'they start'} with the stream then)`
        : '') +
      `. Do not delete ${key}: the other collections' position is in it.`
    );
  },
};
