import { streamScopeMessages } from './messages/stream-scope.messages.js';
import { startupMessages } from './messages/startup.messages.js';
import { positionStoreMessages } from './messages/position-store.messages.js';
import { leaseMessages } from './messages/lease.messages.js';
import { shutdownMessages } from './messages/shutdown.messages.js';
import { handlerMessages } from './messages/handler.messages.js';
import { streamMessages } from './messages/stream.messages.js';
import { decoratorMessages } from './messages/decorator.messages.js';
import { testingModuleMessages } from './messages/testing-module.messages.js';
import { headroomMessages } from './messages/headroom.messages.js';
import { controlMessages } from './messages/control.messages.js';
import { backfillMessages } from './messages/backfill.messages.js';

/** Log and error texts in one place, so they stay consistent and greppable (one file a section of docs/troubleshooting.md). */
export const messages = {
  ...streamScopeMessages,
  ...startupMessages,
  ...positionStoreMessages,
  ...leaseMessages,
  ...shutdownMessages,
  ...handlerMessages,
  ...streamMessages,
  ...decoratorMessages,
  ...testingModuleMessages,
  ...headroomMessages,
  ...controlMessages,
  ...backfillMessages,
};
