//go:build !faultinject

package fault

// Crash does nothing in a build without the faultinject tag.
func Crash(string) {}
