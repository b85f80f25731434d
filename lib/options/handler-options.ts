import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import type {
  FullDocumentBeforeChangeMode,
  FullDocumentMode,
  ChangeOperationType,
  MatchStage,
  OnChangeOptions,
} from '../interfaces/on-change-options.interface.js';
import { keyNames, unknownKeys } from './known-keys.js';
import { describeCollection, type SchemaClass } from '../common/stored-collection.js';

// The one validator of `@OnChange` options. The decorator checks what it can when the class is
// defined (`validateDeclaration`); the values are checked at startup (`validateHandlerOptions`,
// called by `planStreams` for the module and the testing module alike).

export const HANDLER_OPTIONS = {
  operationTypes: true,
  pipeline: true,
  fullDocument: true,
  fullDocumentBeforeChange: true,
  splitLargeEvents: true,
  connectionName: true,
  retries: true,
  concurrency: true,
  onFailure: true,
  enabled: true,
  backfill: true,
} as const satisfies Record<keyof OnChangeOptions, true>;

const FULL_DOCUMENT = keyNames({
  default: true,
  updateLookup: true,
  whenAvailable: true,
  required: true,
} satisfies Record<FullDocumentMode, true>);
const FULL_DOCUMENT_BEFORE_CHANGE = keyNames({
  off: true,
  whenAvailable: true,
  required: true,
} satisfies Record<FullDocumentBeforeChangeMode, true>);

// Every operation type the driver declares; a value outside it (`'inserted'`) would match no event.
const OPERATION_TYPES = keyNames({
  insert: true,
  update: true,
  replace: true,
  delete: true,
  drop: true,
  rename: true,
  dropDatabase: true,
  invalidate: true,
  create: true,
  modify: true,
  createIndexes: true,
  dropIndexes: true,
  shardCollection: true,
  reshardCollection: true,
  refineCollectionShardKey: true,
} satisfies Record<ChangeOperationType, true>);

/**
 * What `@OnChange(collection, options)` on `where` (`Class.member`) can check when the class is
 * defined. `collection` is what the decorator stores (`undefined`: the source was not usable).
 */
export function validateDeclaration(
  collection: string | SchemaClass | undefined,
  where: string,
  member: unknown,
  options: object,
  source?: unknown,
): void {
  if (collection === undefined)
    throw new ChangeStreamConfigError(messages.onChangeBadSource(where, typeName(source)));
  const label = describeCollection(collection);
  if (typeof member !== 'function')
    throw new ChangeStreamConfigError(messages.onChangeNotMethod(label, where));
  if (typeof collection === 'string' && collection.trim() === '')
    throw new ChangeStreamConfigError(messages.onChangeNoCollection(where));
  checkKeys(label, where, options);
}

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/** Every option of one handler (`Class.method`), at startup: a bad value fails `app.init()`. */
export function validateHandlerOptions(
  collection: string,
  handler: string,
  options: OnChangeOptions,
): void {
  checkKeys(collection, handler, options);
  const invalid = (option: keyof OnChangeOptions, rule: string) =>
    new ChangeStreamConfigError(messages.onChangeOptionInvalid(collection, handler, option, rule));
  const {
    operationTypes,
    pipeline,
    fullDocument,
    fullDocumentBeforeChange,
    splitLargeEvents,
    concurrency,
    retries,
    onFailure,
    enabled,
  } = options;
  if (
    operationTypes !== undefined &&
    (!Array.isArray(operationTypes) ||
      operationTypes.length === 0 ||
      operationTypes.some((t) => typeof t !== 'string'))
  ) {
    throw invalid('operationTypes', 'must be a non-empty array of operation type names');
  }
  const unknownType = operationTypes?.find((type) => !OPERATION_TYPES.includes(type));
  if (unknownType !== undefined) {
    throw new ChangeStreamConfigError(
      messages.onChangeUnknownOperationType(
        collection,
        handler,
        unknownType,
        OPERATION_TYPES,
        closestName(unknownType, OPERATION_TYPES),
      ),
    );
  }
  if (pipeline !== undefined && (!Array.isArray(pipeline) || !pipeline.every(isMatchStage))) {
    throw invalid(
      'pipeline',
      'may hold only { $match: {…} } stages (other stages can drop the resume token or reorder events)',
    );
  }
  if (fullDocument !== undefined && !FULL_DOCUMENT.includes(fullDocument)) {
    throw invalid('fullDocument', `must be one of ${FULL_DOCUMENT.join(', ')}`);
  }
  if (
    fullDocumentBeforeChange !== undefined &&
    !FULL_DOCUMENT_BEFORE_CHANGE.includes(fullDocumentBeforeChange)
  ) {
    throw invalid(
      'fullDocumentBeforeChange',
      `must be one of ${FULL_DOCUMENT_BEFORE_CHANGE.join(', ')}`,
    );
  }
  if (splitLargeEvents !== undefined && typeof splitLargeEvents !== 'boolean')
    throw invalid('splitLargeEvents', 'must be true or false');
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
    throw invalid('concurrency', 'must be an integer >= 1');
  if (retries !== undefined && (!Number.isInteger(retries) || retries < 0))
    throw invalid('retries', 'must be an integer >= 0');
  if (onFailure !== undefined && !isHandlerFailurePolicy(onFailure))
    throw invalid('onFailure', 'must be "stop", "dead-letter" or a function');
  if (enabled !== undefined && typeof enabled !== 'boolean')
    throw invalid('enabled', 'must be true or false');
  const backfillRule = backfillProblem(options.backfill);
  if (backfillRule) throw invalid('backfill', backfillRule);
}

/** What is wrong with a `backfill` option, or null. */
function backfillProblem(value: unknown): string | null {
  if (value === undefined || typeof value === 'boolean') return null;
  const rule =
    'must be true, false or { batchSize?: integer >= 1, filter?: object, projection?: object }';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return rule;
  const { batchSize, filter, projection, ...rest } = value as Record<string, unknown>;
  const isObject = (v: unknown) =>
    v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v));
  const sizeOk =
    batchSize === undefined || (Number.isInteger(batchSize) && (batchSize as number) >= 1);
  return Object.keys(rest).length === 0 && sizeOk && isObject(filter) && isObject(projection)
    ? null
    : rule;
}

/** The known name `value` most likely meant (`'inserted'` → `insert`, `'Update'` → `update`), or undefined. */
function closestName(value: string, known: readonly string[]): string | undefined {
  const lower = value.toLowerCase();
  return (
    known.find((name) => name.toLowerCase() === lower) ??
    known
      .filter(
        (name) => lower.startsWith(name.toLowerCase()) || name.toLowerCase().startsWith(lower),
      )
      .sort((a, b) => b.length - a.length)[0]
  );
}

export function isHandlerFailurePolicy(value: unknown): value is HandlerFailurePolicy {
  return value === 'stop' || value === 'dead-letter' || typeof value === 'function';
}

function checkKeys(collection: string, where: string, options: object): void {
  const unknown = unknownKeys(options, HANDLER_OPTIONS);
  if (unknown.length > 0)
    throw new ChangeStreamConfigError(
      messages.onChangeUnknownOptions(collection, where, unknown, keyNames(HANDLER_OPTIONS)),
    );
}

function isMatchStage(stage: unknown): stage is MatchStage {
  if (typeof stage !== 'object' || stage === null) return false;
  const keys = Object.keys(stage);
  const match = (stage as MatchStage).$match;
  return (
    keys.length === 1 &&
    keys[0] === '$match' &&
    typeof match === 'object' &&
    match !== null &&
    !Array.isArray(match)
  );
}
