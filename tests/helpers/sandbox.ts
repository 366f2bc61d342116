// The provider sandboxes' control API lives in scripts/local/sandbox_control.ts, shared with the
// benchmarks; tests import it from here.
export * from "../../scripts/local/sandbox_control.ts";
