// The lines a local edge worker (./edge_worker.ts) writes on stdout when it takes on or finishes a
// background task, so the gateway (./functions.ts) can charge CPU to it. One module for both, as
// the gateway must not import the worker (importing it would start one).
export const BACKGROUND_MARK = { started: "\u001eedge:task+", ended: "\u001eedge:task-" };
