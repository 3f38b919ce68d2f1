// Package oci turns CRI container configs into OCI runtime specs and runs
// them with an OCI runtime (runc or crun) under conmon.
//
// Spec generation (spec*.go, user*.go, caps*.go, mounts*.go, seccomp*.go,
// cgroup*.go) is a pure function of its input: GenerateSpec reads only the
// files it is pointed at (the image's /etc/passwd and /etc/group, seccomp
// profiles, the host's mount table and /dev) and never writes anything.
// Errors caused by the caller's request wrap ErrInvalid so the cri layer
// can answer InvalidArgument.
//
// Runtime invocation (runtime*.go, monitor*.go, exec*.go, stats*.go) starts
// one conmon per container, which holds stdio, writes the CRI log and the
// exit file.
package oci
