import { describe, expect, it } from '@jest/globals';
import { classifyOpenError, isHistoryLost } from '../../lib/stream/history-lost.js';
import { networkError, serverError } from '../fixtures/fake-change-stream.js';

const labelled = (error: Error, ...labels: string[]) =>
  Object.assign(error, { errorLabels: labels });

describe('classifyOpenError: what an error at open says about the stored position', () => {
  it.each([
    [
      'ChangeStreamHistoryLost (286)',
      serverError(
        286,
        'Resume of change stream was not possible, as the resume point may no longer be in the oplog',
      ),
      'history-lost',
    ],
    [
      'CappedPositionLost (136)',
      serverError(136, 'CollectionScan died due to position in capped collection being deleted'),
      'history-lost',
    ],
    ['InvalidResumeToken (260)', serverError(260, 'Invalid resume token'), 'history-lost'],
    [
      'ChangeStreamFatalError (280), token not found',
      serverError(280, 'cannot resume stream; the resume token was not found. {_data: "8263"}'),
      'token-not-found',
    ],
    [
      'ChangeStreamFatalError (280), another cause',
      serverError(280, 'change stream fatal error: something else'),
      'other',
    ],
    ['FailedToParse (9)', serverError(9, "Unrecognized pipeline stage name: '$nope'"), 'other'],
    ['a server error without a code', serverError(undefined, 'odd error without a code'), 'other'],
    [
      '286 labelled ResumableChangeStreamError',
      labelled(serverError(286, 'history lost'), 'ResumableChangeStreamError'),
      'other',
    ],
    ['a network error', networkError(), 'other'],
    [
      'a network error with a history-lost code',
      Object.assign(networkError(), { code: 286 }),
      'other',
    ],
    ['not an error object', 'boom', 'other'],
  ] as const)('%s', (_case, error, kind) => {
    expect(classifyOpenError(error)).toBe(kind);
    expect(isHistoryLost(error)).toBe(kind !== 'other');
  });
});
