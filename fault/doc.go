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
//
// The points, in the order an operation reaches them:
//
//	sandbox.run.after-<step>     after each RunPodSandbox step: cgroup, namespaces
//	                             (pins made), shm, network (CNI ADD done), files,
//	                             sysctls, infra
//	sandbox.run.before-record    all steps done, READY record not yet written
//	sandbox.stop.after-cni       CNI DEL done, record not yet updated (Stop/Remove)
//	sandbox.remove.before-record pod torn down, record not yet deleted
//	container.create.after-rootfs   writable layer mounted, record marked incomplete
//	container.create.before-conmon  spec and volume dirs made, conmon not started
//	container.create.after-conmon   conmon and runtime create done, record still incomplete
//	container.start.after-runtime   runtime start done, RUNNING not yet recorded
//	container.stop.after-signal     stop signal sent, no wait or SIGKILL yet
//	container.stop.after-runtime    exit file written, exit not yet picked up
//	container.exit.after-runtime-delete  exit recorded, container deleted from the
//	                                     runtime (at the exit or in the stop)
//	container.remove.after-runtime-delete  runtime state gone, rootfs not yet removed
//	container.remove.after-rootfs-trash    writable layer moved to the trash, still
//	                                       mounted; not yet unmounted and deleted
//	container.remove.before-record  rootfs removed, record not yet deleted
//	image.pull.after-layer       a layer committed
//	image.pull.before-record     all layers committed, image record not yet written
//
// test/e2e/crash_test.go kills the daemon at each of them.
package fault

// EnvCrash is the environment variable that selects the crash points.
const EnvCrash = "CRISERVER_FAULT_CRASH"
