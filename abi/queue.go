package abi

// Durable queues (SPEC.md section 15): a handler that lists a queue in its
// config (plugins[].queues) is handed the queue's messages as sends; these
// are the names a plugin sees.

// QueueSubjectPrefix starts every subject of a durable queue: a message is
// enqueued on "$queue.NAME.METHOD" and delivered under that same subject.
// Subjects starting with '$' are the host's: no plugin serves one.
const QueueSubjectPrefix = "$queue."

// HeaderQueueID is the header the host sets on a queued message it
// delivers: the message's id in its queue (decimal), the same on every
// delivery of the message, so a consumer can tell a redelivery of what it
// already did.
const HeaderQueueID = "pycomms-queue-id"

// HeaderAttempt is the header the host sets on a queued message it
// delivers: 1 on the first delivery, 2 on the first retry, and so on.
const HeaderAttempt = "pycomms-attempt"
