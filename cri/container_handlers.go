package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerRuntimeHandlers is what Status reports in runtime_handlers:
// the default handler (empty name) and every configured one, each with the
// features that work for it here, probed from the runtime (`<runtime>
// features`) and the kernel (oci.ProbeFeatures).
func (s *Service) containerRuntimeHandlers(ctx context.Context) []*runtime.RuntimeHandler {
	if s.opts.Runtime == nil {
		return nil
	}
	names := append([]string{""}, s.opts.Runtime.Config().HandlerNames()...)
	out := make([]*runtime.RuntimeHandler, 0, len(names))
	for _, n := range names {
		f := s.opts.Runtime.Features(ctx, n)
		out = append(out, &runtime.RuntimeHandler{
			Name: n,
			Features: &runtime.RuntimeHandlerFeatures{
				RecursiveReadOnlyMounts: f.RecursiveReadOnly,
				UserNamespaces:          f.UserNamespaces,
			},
		})
	}
	return out
}

// containerRuntimeFeatures is what Status reports in features: spec
// generation applies both supplemental groups policies (Merge, Strict),
// and a pod may have a user namespace on the host's network (its
// containers then get the host's /sys bound, as they cannot mount sysfs).
func containerRuntimeFeatures() *runtime.RuntimeFeatures {
	return &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true, UserNamespacesHostNetwork: true}
}
