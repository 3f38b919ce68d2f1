package e2e

import "golang.org/x/sys/unix"

type unixStatfs struct{ unix.Statfs_t }

func (s *unixStatfs) size() int64 { return int64(s.Blocks) * s.Bsize }

func statfs(path string, s *unixStatfs) error { return unix.Statfs(path, &s.Statfs_t) }
