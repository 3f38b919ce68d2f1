// Package fault holds the crash points of fault-injection tests.
//
// A crash point is a named step of an operation (for example
// "sandbox.run.after-cni"). In a daemon built with the faultinject build
// tag, Crash kills the process with SIGKILL when the environment variable
// CRISERVER_FAULT_CRASH names that point, so that tests can check that a
// restart after a kill -9 at that instant leaves nothing half-made. In a
// normal build Crash does nothing and compiles away.
//
// CRISERVER_FAULT_CRASH holds one point name, a comma-separated list of
// names, or "random:<seed>:<percent>", which crashes at each point reached
// with that probability (a pseudo-random sequence seeded by seed).
package fault

// EnvCrash is the environment variable that selects the crash points.
const EnvCrash = "CRISERVER_FAULT_CRASH"
